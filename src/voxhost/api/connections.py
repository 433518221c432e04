"""HTTP connections bounded, below the ASGI app: how many may be open at once, how long a client may take
to send a request's headers, and how large they may be.

uvicorn closes a keep-alive connection that stays idle between requests (`timeout_keep_alive`), but it
keeps a connection that has sent half a request (or nothing) open for as long as the client likes, and
its `limit_concurrency` only answers 503 to a request whose headers have all arrived. So a flood of
idle or half-sent requests held every connection the process could open. Here, uvicorn's own HTTP
protocol (httptools when installed, else h11) is subclassed: past `--max-connections` a new connection
gets a 503 and is closed at once; one that has not sent a whole request's headers within
`--header-timeout` seconds of connecting (or of its last answer) is closed; headers past
`MAX_HEADER_BYTES` get a 431.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

log = logging.getLogger("voxhost.connections")

MAX_HEADER_BYTES = 64 * 1024  # all of one request's header names and values (h11: its own 16 KiB bound)


def _plain_response(status: bytes, text: bytes) -> bytes:
    return (
        b"HTTP/1.1 " + status + b"\r\ncontent-type: text/plain; charset=utf-8\r\nconnection: close\r\n"
        b"content-length: " + str(len(text)).encode() + b"\r\n\r\n" + text
    )


BUSY = _plain_response(b"503 Service Unavailable", b"too many open connections\n")
HEADERS_TOO_LARGE = _plain_response(b"431 Request Header Fields Too Large", b"request headers too large\n")


def bounded_protocol(max_connections: int, header_timeout: float) -> type[asyncio.Protocol]:
    """uvicorn's HTTP protocol class with the bounds above (pass it as `uvicorn.Config(http=...)`)."""
    base: Any
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as base
    except ImportError:  # httptools is optional in uvicorn
        from uvicorn.protocols.http.h11_impl import H11Protocol as base

    class BoundedHttpProtocol(base):  # type: ignore[misc]
        _header_timer: asyncio.TimerHandle | None = None
        _header_bytes = 0
        _refused = False

        def connection_made(self, transport: asyncio.Transport) -> None:
            if len(self.connections) >= max_connections:
                log.warning("refused a connection: %d are open (--max-connections)", len(self.connections))
                transport.write(BUSY)
                transport.close()
                self._refused = True  # nothing more is read from it
                return
            super().connection_made(transport)
            self._expect_headers()

        def _expect_headers(self) -> None:
            """From now, the client has `header_timeout` seconds to send a whole request's headers."""
            if self._header_timer is not None:
                self._header_timer.cancel()
            self._header_bytes = 0
            waiting_since = self.cycle
            self._header_timer = self.loop.call_later(header_timeout, self._headers_late, waiting_since)

        def _headers_late(self, waiting_since: object) -> None:
            self._header_timer = None
            transport = self.transport
            if self.cycle is not waiting_since or transport.is_closing():
                return  # a request's headers came
            if transport.get_protocol() is not self:
                return  # upgraded to a WebSocket: no longer ours
            if waiting_since is not None and not getattr(waiting_since, "response_complete", True):
                return  # still answering the last request
            log.info("closed a connection that sent no whole request in %gs", header_timeout)
            transport.close()

        def on_header(self, name: bytes, value: bytes) -> None:  # httptools only
            self._header_bytes += len(name) + len(value)
            if self._header_bytes > MAX_HEADER_BYTES:
                if not self.transport.is_closing():
                    self.transport.write(HEADERS_TOO_LARGE)
                    self.transport.close()
                return
            super().on_header(name, value)

        def data_received(self, data: bytes) -> None:
            if not self._refused:
                super().data_received(data)

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing():
                self._expect_headers()

        def connection_lost(self, exc: Exception | None) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None
            if not self._refused:
                super().connection_lost(exc)

    return BoundedHttpProtocol
