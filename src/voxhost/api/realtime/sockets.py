"""What the live WebSockets share: the subprotocol answered at the handshake, and a sender that keeps
frames whole when the receive loop and background decodes send at once."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import WebSocket, WebSocketDisconnect

from voxhost.api.deps import get_manager
from voxhost.api.errors import error_response
from voxhost.errors import TooManySessions

Send = Callable[[dict[str, Any]], Coroutine[Any, Any, None]]
Route = Callable[[WebSocket], Coroutine[Any, Any, None]]
log = logging.getLogger("voxhost.live")


def counted_session(route: Route) -> Route:
    """A live WebSocket route that takes one of the server's live-session slots while it is open
    (`--max-live-sessions`); when none is free the handshake is refused with 429 in OpenAI's error shape
    (a server that cannot send a refusal's body: closed with 1013, "try again later", and the reason)."""

    @functools.wraps(route)
    async def session(websocket: WebSocket) -> None:
        try:
            with get_manager(websocket).limits.live_sessions.hold():
                await route(websocket)
        except TooManySessions as exc:
            log.warning("refused a live session: %s", exc.message)
            if "websocket.http.response" in websocket.scope.get("extensions", {}):
                refusal = error_response(
                    429, exc.message, error_type=exc.error_type, code=exc.code, retry_after=exc.retry_after
                )
                await websocket.send_denial_response(refusal)
            else:
                await websocket.close(code=1013, reason=exc.message)

    return session


def sender(websocket: WebSocket) -> Send:
    """Send JSON from the receive loop and from background decodes without interleaving frames."""
    lock = asyncio.Lock()

    async def send(message: dict[str, Any]) -> None:
        async with lock:
            with contextlib.suppress(WebSocketDisconnect, RuntimeError):  # the client may be gone
                await websocket.send_json(message)

    return send


def offered_subprotocols(websocket: WebSocket) -> list[str]:
    header = websocket.headers.get("sec-websocket-protocol", "")
    return [p.strip() for p in header.split(",") if p.strip()]


def subprotocol(websocket: WebSocket) -> str | None:
    """The subprotocol to answer with: browsers send the API key as one (`openai-insecure-api-key.KEY`,
    beside `realtime`), and a handshake that offers subprotocols must have one chosen."""
    offered = offered_subprotocols(websocket)
    if not offered:
        return None
    if "realtime" in offered:
        return "realtime"
    return next((p for p in offered if not p.startswith("openai-insecure-api-key.")), offered[0])
