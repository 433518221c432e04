"""The admission queue on its own: priority lanes, bounded queue, timeouts, cancellation, aging.

Pure asyncio with no model: every check is about the order in which events happen."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

import pytest

from voxhost.errors import QueueFull, QueueTimeout
from voxhost.manager.scheduler import Lane, Scheduler

T = TypeVar("T")


def run(body: Callable[[], Awaitable[T]]) -> T:
    async def main() -> T:
        return await asyncio.wait_for(body(), 10)

    return asyncio.run(main())


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


def test_free_slots_are_granted_at_once_and_then_requests_wait() -> None:
    async def body() -> None:
        scheduler = Scheduler(capacity=2, max_queue=4)
        assert await scheduler.acquire(Lane.INTERACTIVE, None) == 0.0
        assert await scheduler.acquire(Lane.INTERACTIVE, None) == 0.0
        third = asyncio.create_task(scheduler.acquire(Lane.INTERACTIVE, None))
        await _settle()
        assert not third.done()
        assert (scheduler.running, scheduler.waiting) == (2, 1)
        scheduler.release()
        await third
        assert (scheduler.running, scheduler.waiting, scheduler.peak_running) == (2, 0, 2)

    run(body)


def test_lanes_go_in_priority_order_then_arrival_order() -> None:
    async def body() -> list[str]:
        scheduler = Scheduler(capacity=1, max_queue=10)
        await scheduler.acquire(Lane.INTERACTIVE, None)
        order: list[str] = []

        async def request(name: str, lane: Lane) -> None:
            async with scheduler.slot(lane, None):
                order.append(name)
                await asyncio.sleep(0)

        tasks = []
        for name, lane in [
            ("batch-1", Lane.BATCH),
            ("short-1", Lane.INTERACTIVE),
            ("batch-2", Lane.BATCH),
            ("live-1", Lane.LIVE),
            ("short-2", Lane.INTERACTIVE),
            ("live-2", Lane.LIVE),
        ]:
            tasks.append(asyncio.create_task(request(name, lane)))
            await _settle()
        assert scheduler.waiting_by_lane() == {"live": 2, "interactive": 2, "batch": 2}
        scheduler.release()
        await asyncio.gather(*tasks)
        return order

    assert run(body) == ["live-1", "live-2", "short-1", "short-2", "batch-1", "batch-2"]


def test_full_queue_refuses_at_once_with_a_retry_hint() -> None:
    async def body() -> None:
        scheduler = Scheduler(capacity=1, max_queue=2, name="'tiny.en'")
        await scheduler.acquire(Lane.INTERACTIVE, None)
        waiting = [asyncio.create_task(scheduler.acquire(Lane.INTERACTIVE, None)) for _ in range(2)]
        await _settle()
        with pytest.raises(QueueFull, match=r"tiny\.en") as refused:
            await scheduler.acquire(Lane.LIVE, None)
        assert refused.value.status == 429
        assert refused.value.retry_after is not None
        assert refused.value.retry_after >= 1
        assert scheduler.rejected == 1
        for _ in waiting:  # everything that was accepted still gets its turn
            scheduler.release()
        await asyncio.gather(*waiting)
        assert scheduler.running == 1

    run(body)


def test_a_request_that_waits_too_long_times_out_and_leaves_the_queue() -> None:
    async def body() -> None:
        scheduler = Scheduler(capacity=1, max_queue=2)
        await scheduler.acquire(Lane.INTERACTIVE, None)
        with pytest.raises(QueueTimeout) as timed_out:
            await scheduler.acquire(Lane.INTERACTIVE, 0.05)
        assert timed_out.value.status == 503
        assert (scheduler.waiting, scheduler.timed_out) == (0, 1)
        scheduler.release()
        assert scheduler.running == 0

    run(body)


def test_a_cancelled_waiter_leaves_the_queue_and_never_holds_a_slot() -> None:
    async def body() -> None:
        scheduler = Scheduler(capacity=1, max_queue=4)
        await scheduler.acquire(Lane.INTERACTIVE, None)
        gone = asyncio.create_task(scheduler.acquire(Lane.INTERACTIVE, None))
        stays = asyncio.create_task(scheduler.acquire(Lane.INTERACTIVE, None))
        await _settle()
        gone.cancel()  # the client disconnected while queued
        await _settle()
        assert (scheduler.waiting, scheduler.cancelled) == (1, 1)
        scheduler.release()
        await stays
        assert scheduler.running == 1

    run(body)


def test_a_slot_granted_to_a_waiter_cancelled_at_that_moment_passes_on() -> None:
    async def body() -> None:
        scheduler = Scheduler(capacity=1, max_queue=4)
        await scheduler.acquire(Lane.INTERACTIVE, None)
        first = asyncio.create_task(scheduler.acquire(Lane.INTERACTIVE, None))
        second = asyncio.create_task(scheduler.acquire(Lane.INTERACTIVE, None))
        await _settle()
        scheduler.release()  # grants `first`'s future, but `first` has not resumed yet...
        first.cancel()  # ...and is cancelled before it does
        await second  # the slot went on to the next waiter instead of leaking
        assert scheduler.running == 1

    run(body)


def test_batch_work_that_waited_past_the_aging_time_counts_as_interactive() -> None:
    async def body() -> list[str]:
        scheduler = Scheduler(capacity=1, max_queue=10, aging=0.05)
        await scheduler.acquire(Lane.INTERACTIVE, None)
        order: list[str] = []

        async def request(name: str, lane: Lane) -> None:
            async with scheduler.slot(lane, None):
                order.append(name)

        old_batch = asyncio.create_task(request("old-batch", Lane.BATCH))
        await asyncio.sleep(0.1)  # waited past `aging`
        short = asyncio.create_task(request("short", Lane.INTERACTIVE))
        await _settle()
        scheduler.release()
        await asyncio.gather(old_batch, short)
        return order

    assert run(body) == ["old-batch", "short"]


def test_resizing_grants_waiters_new_slots() -> None:
    async def body() -> None:
        scheduler = Scheduler(capacity=1, max_queue=4)
        await scheduler.acquire(Lane.INTERACTIVE, None)
        waiter = asyncio.create_task(scheduler.acquire(Lane.INTERACTIVE, None))
        await _settle()
        scheduler.resize(2)
        await waiter
        assert scheduler.running == 2

    run(body)
