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


def _lowered() -> bool:
    return sys.platform == "linux"  # where one thread can be lowered alone


async def in_lower_thread(nice: int, work: Callable[[], T]) -> T:
    """`work()` in a thread of its own at a priority `nice` lower, in this process (the in-process
    commands' diarization, beside their decode). A thread of its own: a lowered thread cannot be raised
    again without privileges, so it is never one that other work reuses. Where one thread cannot be
    lowered alone (not Linux), an ordinary thread at this process's priority."""
    if not nice or not _lowered():
        return await asyncio.to_thread(work)
    executor = ThreadPoolExecutor(1, "lower", initializer=_lower_this_thread, initargs=(nice,))
    try:
        return await asyncio.get_running_loop().run_in_executor(executor, work)
    finally:
        executor.shutdown(wait=False)


def load_lower(nice: int, load: Callable[[], T]) -> T:
    """`load()` (a model's, in this process) in a lowered thread of its own, waited for: the threads the
    model's library starts there (onnxruntime's pool) inherit the lower priority."""
    if not nice or not _lowered():
        return load()
    with ThreadPoolExecutor(1, "lower", initializer=_lower_this_thread, initargs=(nice,)) as executor:
        return executor.submit(load).result()
