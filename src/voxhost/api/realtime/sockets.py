"""What the live WebSockets share: the subprotocol answered at the handshake, and a sender that keeps
frames whole when the receive loop and background decodes send at once."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import WebSocket, WebSocketDisconnect

Send = Callable[[dict[str, Any]], Coroutine[Any, Any, None]]


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
