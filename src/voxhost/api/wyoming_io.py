"""Wyoming events read with every byte bounded before it is held, and a connection's read loop.

The `wyoming` package's reader (`wyoming.event.async_read_event`) takes whatever `data_length` and
`payload_length` a header declares: a header claiming 300 MiB made the server read and hold 300 MiB
before anyone looked. Here the header line (capped by the stream reader's line limit, 64 KiB) is parsed
first, its declared sizes are checked against what its event type may carry (`RequestLimits.event`),
and only then is the rest read; a refused header gets a Wyoming `error` event and the connection is
closed (what follows it on the wire cannot be framed). A connection that sends no event for
`idle_timeout` seconds (or stalls inside one) is closed too.

`BoundedEventHandler` is `wyoming.server.AsyncEventHandler` with this read loop: every Wyoming handler of
voxhost derives from it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any

from wyoming.error import Error
from wyoming.event import Event
from wyoming.server import AsyncEventHandler

from voxhost.errors import BadRequest, PayloadTooLarge, VoxhostError
from voxhost.manager.limits import RequestLimits

log = logging.getLogger("voxhost.wyoming")
LINGER = 1.0  # seconds a refused connection's further bytes are read and dropped before it is closed
LINGER_BYTES = 4 * 2**20


def _length(header: dict[str, Any], key: str) -> int:
    value = header.get(key)
    if value is None:
        return 0
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise BadRequest(f"the event header's {key} must be a whole number of bytes")
    return value


async def read_event(reader: asyncio.StreamReader, limits: RequestLimits) -> Event | None:
    """The next event, or None at the end of the stream. Raises BadRequest for a header that is not a
    JSON object with a type, PayloadTooLarge for one declaring more than its type may carry (nothing
    after the header line is read then), asyncio.IncompleteReadError for a stream cut mid-event."""
    try:
        line = await reader.readline()
    except ValueError:  # asyncio's LimitOverrunError: a line longer than the reader's limit
        raise BadRequest("an event header line is longer than the limit") from None
    if not line:
        return None
    try:
        header = json.loads(line)
    except ValueError:
        raise BadRequest("an event header is not JSON") from None
    if not isinstance(header, dict) or not isinstance(header.get("type"), str):
        raise BadRequest("an event header must be a JSON object with a type")
    event_type: str = header["type"]
    data_length = _length(header, "data_length")
    payload_length = _length(header, "payload_length")
    limits.event(event_type, data_length, payload_length)
    data = header.get("data") or {}
    if not isinstance(data, dict):
        raise BadRequest(f"the data of a {event_type} event must be a JSON object")
    if data_length:
        try:
            extra = json.loads(await reader.readexactly(data_length))
        except ValueError:
            raise BadRequest(f"the data of a {event_type} event is not JSON") from None
        if not isinstance(extra, dict):
            raise BadRequest(f"the data of a {event_type} event must be a JSON object")
        data.update(extra)
    payload = await reader.readexactly(payload_length) if payload_length else None
    return Event(type=event_type, data=data, payload=payload)


class BoundedEventHandler(AsyncEventHandler):
    """A Wyoming connection's handler whose events are read by `read_event`, with an idle timeout."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, limits: RequestLimits, idle: float
    ) -> None:
        super().__init__(reader, writer)
        self.limits = limits
        self.idle_timeout = idle

    async def run(self) -> None:
        self._is_running = True
        try:
            while self._is_running:
                try:
                    async with asyncio.timeout(self.idle_timeout):
                        event = await read_event(self.reader, self.limits)
                except TimeoutError:
                    log.info("closing a Wyoming connection idle for %gs", self.idle_timeout)
                    break
                except (BadRequest, PayloadTooLarge) as exc:
                    await self.refuse(exc)
                    break
                if event is None or not await self.handle_event(event):
                    break
        finally:
            await self.disconnect()
            self.writer.close()

    async def refuse(self, exc: VoxhostError) -> None:
        """An event that cannot be read: the client is told why, then the connection ends. What the
        client still sends is read and dropped for a moment (LINGER, at most LINGER_BYTES), so that its
        socket is not reset before it reads the error."""
        log.info("closing a Wyoming connection: %s", exc.message)
        with contextlib.suppress(OSError, TimeoutError):  # ConnectionError is an OSError
            await self.write_event(Error(text=exc.message, code=exc.code).event())
            if self.writer.can_write_eof():
                self.writer.write_eof()
            dropped = 0
            async with asyncio.timeout(LINGER):
                while dropped < LINGER_BYTES and (piece := await self.reader.read(65536)):
                    dropped += len(piece)
