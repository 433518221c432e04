"""A request's work stops the moment its client goes away, whatever the protocol.

A front-end says how it sees a hang-up (`Gone`: a coroutine that returns when the client has left: an
HTTP `http.disconnect`, a Wyoming socket at end of file); the manager races the request's work against
it. A request waiting in the queue is dropped, one running in a worker is cancelled between two items,
and the caller gets `ClientGone`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from voxhost.errors import ClientGone

T = TypeVar("T")
Gone = Callable[[], Coroutine[Any, Any, None]]

GONE = "the client disconnected; its request was cancelled"


async def _first(work: asyncio.Future[T], watcher: asyncio.Future[None]) -> T:
    """The result of `work`, unless `watcher` finishes first: then `work` is cancelled, ClientGone."""
    racing: set[asyncio.Future[Any]] = {work, watcher}
    try:
        await asyncio.wait(racing, return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        # the caller is cancelled: stop the work and wait for it, so that the generator behind it is
        # not closed while it is still running
        work.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await work
        raise
    if work.done():
        return work.result()
    work.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await work
    raise ClientGone(GONE)


async def unless_gone(work: Awaitable[T], gone: Gone | None) -> T:
    """Await `work`, cancelling it if the client goes first."""
    if gone is None:
        return await work
    watcher = asyncio.ensure_future(gone())
    try:
        return await _first(asyncio.ensure_future(work), watcher)
    finally:
        watcher.cancel()


async def while_present(items: AsyncGenerator[T, None], gone: Gone | None) -> AsyncGenerator[T, None]:
    """The items of `items` for as long as the client stays; when it goes, the generator is closed at
    once (cancelling the work behind it, not just the next write) and ClientGone is raised."""
    async with contextlib.aclosing(items):
        if gone is None:
            async for item in items:
                yield item
            return
        watcher = asyncio.ensure_future(gone())
        try:
            while True:
                try:
                    item = await _first(asyncio.ensure_future(anext(items)), watcher)
                except StopAsyncIteration:
                    return
                yield item
        finally:
            watcher.cancel()
