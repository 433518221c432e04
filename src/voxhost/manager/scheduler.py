"""Admission and priority for one model: a bounded, prioritized wait for one of its inference slots.

Every request for a model asks its `Scheduler` for a slot (one of `replicas x parallel`). A free slot is
granted at once; otherwise the request waits in a bounded queue, and a full queue refuses it at once
(`QueueFull`, HTTP 429 with Retry-After) rather than letting memory and latency grow without bound. A
request that waits longer than its timeout gives up (`QueueTimeout`); a caller that goes away (its task is
cancelled) leaves the queue at once, so nobody's work runs for a client that is gone.

When a slot frees up, the waiter of the most urgent lane goes first, in arrival order within a lane:
live streams, then interactive requests, then the chunks of long files. A batch chunk that has waited
longer than `aging` seconds counts as interactive, so a steady stream of short requests never starves
a long file.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from enum import IntEnum

from voxhost.errors import QueueFull, QueueTimeout


class Lane(IntEnum):
    """Scheduling priority: a lower value goes first."""

    LIVE = 0  # live transcription streams: a user is watching the words appear
    INTERACTIVE = 1  # short files, Wyoming requests, speech synthesis
    BATCH = 2  # chunks of long files


@dataclass(eq=False)
class _Waiter:
    lane: Lane
    seq: int
    since: float
    future: asyncio.Future[None] = field(repr=False)


class Scheduler:
    def __init__(self, capacity: int, max_queue: int, *, aging: float = 10.0, name: str = "") -> None:
        if capacity < 1:
            raise ValueError("a model needs at least one inference slot")
        self.name = name
        self.capacity = capacity
        self.max_queue = max_queue
        self.aging = aging
        self.running = 0
        self.peak_running = 0
        self.rejected = 0
        self.timed_out = 0
        self.cancelled = 0
        self._waiters: list[_Waiter] = []
        self._seq = itertools.count()

    # --- state -----------------------------------------------------------------------------------
    @property
    def waiting(self) -> int:
        return len(self._waiters)

    def waiting_by_lane(self) -> dict[str, int]:
        counts = {lane.name.lower(): 0 for lane in Lane}
        for waiter in self._waiters:
            counts[waiter.lane.name.lower()] += 1
        return counts

    def retry_after(self) -> int:
        """Seconds a refused client should wait: about one slot turnover per queued request."""
        return max(1, min(30, round(self.waiting / max(self.capacity, 1))))

    # --- slots -----------------------------------------------------------------------------------
    @contextlib.asynccontextmanager
    async def slot(self, lane: Lane, timeout: float | None, *, bounded: bool = True) -> AsyncIterator[float]:
        """Hold one slot for the body; yields the seconds spent waiting for it."""
        waited = await self.acquire(lane, timeout, bounded=bounded)
        try:
            yield waited
        finally:
            self.release()

    async def acquire(self, lane: Lane, timeout: float | None, *, bounded: bool = True) -> float:
        """Wait for a slot; returns the seconds waited. Raises QueueFull or QueueTimeout. `bounded=False`
        is for the later calls of a request already admitted (the next part of a long file): they wait
        their turn however long the queue is, as refusing them would throw away the work done so far."""
        if self.running < self.capacity and not self._waiters:
            self._grant()
            return 0.0
        if bounded and len(self._waiters) >= self.max_queue:
            self.rejected += 1
            raise QueueFull(
                f"{self.name or 'the model'} is busy: {self.running} requests running and "
                f"{len(self._waiters)} waiting (the queue limit); retry shortly",
                retry_after=self.retry_after(),
            )
        waiter = _Waiter(lane, next(self._seq), time.monotonic(), asyncio.get_running_loop().create_future())
        self._waiters.append(waiter)
        try:
            async with asyncio.timeout(timeout):
                await waiter.future
        except TimeoutError:
            self._leave(waiter)
            self.timed_out += 1
            raise QueueTimeout(
                f"waited {timeout:g}s for {self.name or 'the model'} without getting a turn; retry later",
                retry_after=self.retry_after(),
            ) from None
        except asyncio.CancelledError:
            self._leave(waiter)
            self.cancelled += 1
            raise
        return time.monotonic() - waiter.since

    def release(self) -> None:
        self.running -= 1
        self._dispatch()

    def resize(self, capacity: int) -> None:
        """Change the number of slots (e.g. replicas started or stopped); waiters get new slots at once."""
        self.capacity = max(1, capacity)
        self._dispatch()

    # --- internals -------------------------------------------------------------------------------
    def _grant(self) -> None:
        self.running += 1
        self.peak_running = max(self.peak_running, self.running)

    def _leave(self, waiter: _Waiter) -> None:
        """A waiter gives up. If it had just been granted a slot, pass that slot on."""
        if waiter in self._waiters:
            self._waiters.remove(waiter)
        elif waiter.future.done() and not waiter.future.cancelled():
            self.release()

    def _key(self, waiter: _Waiter, now: float) -> tuple[int, int]:
        lane = waiter.lane
        if lane == Lane.BATCH and now - waiter.since >= self.aging:
            lane = Lane.INTERACTIVE
        return (int(lane), waiter.seq)

    def _dispatch(self) -> None:
        now = time.monotonic()
        while self.running < self.capacity and self._waiters:
            best = min(self._waiters, key=lambda w: self._key(w, now))
            self._waiters.remove(best)
            if best.future.done():
                continue
            self._grant()
            best.future.set_result(None)
