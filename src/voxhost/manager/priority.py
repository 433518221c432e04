"""CPU priority: a model whose work runs beside another's on the same request (the diarizer, beside the
decode of a diarized request) takes a lower one (`Engine.nice`, `--diarization-nice`), so that the
other keeps the cores it is using (docs/benchmarks.md, "The diarizer at a lower priority").

On Linux a nice value is a thread's: threads inherit their creator's, and one thread can be lowered
without the rest of its process. Elsewhere it is the whole process's."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
log = logging.getLogger("voxhost.priority")


def lower_process(nice: int) -> None:
    """Lower this process's priority by `nice` (a worker, before its model loads): this thread, the
    threads started later (the model library's) inherit it, and those already running (numpy's BLAS
    threads, started when it was imported) are lowered one by one."""
    if not nice or not hasattr(os, "nice"):
        return
    try:
        priority = os.nice(nice)
    except OSError as exc:  # a sandbox that forbids it: the model still serves, at the usual priority
        log.warning("could not lower this worker's CPU priority by %d: %s", nice, exc)
        return
    with contextlib.suppress(OSError):  # no /proc/self/task: the nice value is the whole process's
        for task in os.listdir("/proc/self/task"):
            with contextlib.suppress(OSError):  # a thread that has ended since
                os.setpriority(os.PRIO_PROCESS, int(task), priority)


def _lower_this_thread(nice: int) -> None:
    me = threading.get_native_id()
    try:
        os.setpriority(os.PRIO_PROCESS, me, min(19, os.getpriority(os.PRIO_PROCESS, me) + nice))
    except OSError as exc:  # a sandbox that forbids it: the work still runs, at the usual priority
        log.warning("could not lower a diarization thread's CPU priority by %d: %s", nice, exc)


def run_lower(nice: int, work: Callable[[], T]) -> T:
    """`work()` in a thread of its own at a priority `nice` lower, waited for (a model's loading or a
    diarization, in this process): the threads it starts there (onnxruntime's pool, the segmentation's
    look-ahead) inherit the lower priority. A thread of its own: a lowered thread cannot be raised again
    without privileges, so it is never one that other work reuses. Where one thread cannot be lowered
    alone (not Linux), `work()` as it is, at this process's priority."""
    if not nice or sys.platform != "linux":
        return work()
    with ThreadPoolExecutor(1, "lower", initializer=_lower_this_thread, initargs=(nice,)) as executor:
        return executor.submit(work).result()


async def in_lower_thread(nice: int, work: Callable[[], T]) -> T:
    """`run_lower(nice, work)` off the event loop (the in-process commands' diarization, beside their
    decode)."""
    return await asyncio.to_thread(run_lower, nice, work)
