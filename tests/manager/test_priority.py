"""The diarizer's lower CPU priority in this process (`voxhost transcribe --diarize`, Ray): its loading and
its work in a thread of their own, lowered, the threads they start lowered too, every other thread as
it was."""

from __future__ import annotations

import asyncio
import os
import sys
import threading

import pytest

from voxhost.manager.priority import in_lower_thread, lower_process, run_lower

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="a thread's own nice value is Linux's")


def _priority() -> int:
    return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())


def _seen() -> tuple[int, int, int]:
    """This thread's id and priority, and the priority of a thread it starts (the segmentation's)."""
    started: list[int] = []
    helper = threading.Thread(target=lambda: started.append(_priority()))
    helper.start()
    helper.join(timeout=30)
    return threading.get_native_id(), _priority(), started[0]


def test_work_runs_in_a_lowered_thread_of_its_own_and_leaves_every_other_thread_as_it_was() -> None:
    ours = _priority()
    if ours > 14:
        pytest.skip("this test runs at too low a priority to be lowered by 5")
    lower = ours + 5
    thread, priority, child = asyncio.run(in_lower_thread(5, _seen))
    assert thread != threading.get_native_id()
    assert (priority, child) == (lower, lower)
    # the caller, and the threads other work runs in afterwards, at the priority they had
    assert _priority() == ours
    assert asyncio.run(asyncio.to_thread(_priority)) == ours
    for _ in range(3):  # never a pool thread another call reuses, lowered again
        assert asyncio.run(in_lower_thread(5, _priority)) == lower
    # a model loaded in this process: the threads its library starts there (onnxruntime's) lowered too
    thread, priority, child = run_lower(5, _seen)
    assert thread != threading.get_native_id()
    assert (priority, child, _priority()) == (lower, lower, ours)
    # control: nice 0 is the caller's own priority
    assert asyncio.run(in_lower_thread(0, _priority)) == ours != lower
    assert run_lower(0, _priority) == ours


def test_a_sandbox_that_forbids_lowering_still_gets_the_work_done(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def forbidden(*args: object) -> int:
        raise PermissionError(1, "Operation not permitted")

    ours = _priority()
    monkeypatch.setattr(os, "nice", forbidden)
    monkeypatch.setattr(os, "setpriority", forbidden)
    lower_process(5)  # a worker about to load its model: goes on
    assert asyncio.run(in_lower_thread(5, _priority)) == ours
    assert run_lower(5, _priority) == ours
    assert _priority() == ours
    warnings = [r.getMessage() for r in caplog.records if "could not lower" in r.getMessage()]
    assert len(warnings) == 3, warnings
