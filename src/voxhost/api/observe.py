"""Request ids, access log lines and request metrics for every HTTP request and WebSocket session,
and how an HTTP client's hang-up is seen (the manager cancels the request's work on it).

A plain ASGI middleware (not Starlette's BaseHTTPMiddleware), so streamed responses and WebSockets pass
through untouched and the request context is the same task's context the handlers run in.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from voxhost.api.errors import error_response
from voxhost.errors import ShuttingDown
from voxhost.logs import request_context
from voxhost.manager.cancel import Gone
from voxhost.manager.metrics import Metrics

log = logging.getLogger("voxhost.access")
QUIET_ROUTES = frozenset({"/health", "/health/live", "/health/ready", "/metrics"})


class RequestObserver:
    def __init__(self, app: ASGIApp, metrics: Metrics, draining: Callable[[], bool] = lambda: False) -> None:
        self.app = app
        self.metrics = metrics
        self.draining = draining

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        given = headers.get(b"x-request-id", b"").decode("latin-1") or None
        status: int | str = 500 if scope["type"] == "http" else "ws"
        started = time.perf_counter()
        with request_context(given) as context:

            async def send_with_id(message: Message) -> None:
                nonlocal status
                if message["type"] == "http.response.start":
                    status = message["status"]
                    message.setdefault("headers", [])
                    message["headers"] = [*message["headers"], (b"x-request-id", context.id.encode())]
                await send(message)

            try:
                if self.draining() and scope["path"] not in QUIET_ROUTES:
                    await _refuse(scope, receive, send_with_id)
                else:
                    await self.app(scope, receive, send_with_id)
            except asyncio.CancelledError:
                status = 499
                raise
            finally:
                route = getattr(scope.get("route"), "path", None) or "unmatched"
                record(
                    self.metrics,
                    scope["type"],
                    route,
                    f"{scope.get('method', 'WS')} {scope.get('path', '')}",
                    status,
                    time.perf_counter() - started,
                    context.model,
                    logging.DEBUG if route in QUIET_ROUTES else logging.INFO,
                )


def record(
    metrics: Metrics,
    protocol: str,
    route: str,
    request: str,
    status: int | str,
    seconds: float,
    model: str,
    level: int = logging.INFO,
) -> None:
    """One answered request of any front-end, in the request metrics and as one access-log line
    (`request` says what it was: "POST /v1/audio/transcriptions", "WYOMING transcribe")."""
    metrics.request(protocol, route, model, status, seconds)
    log.log(
        level,
        "%s %s %.3fs%s",
        request,
        status,
        seconds,
        f" model={model}" if model else "",
        extra={"route": route, "status": status, "seconds": round(seconds, 4), "model": model},
    )


async def _refuse(scope: Scope, receive: Receive, send: Send) -> None:
    """A request that arrives while the server stops: 503 (a WebSocket: refused at the handshake)."""
    if scope["type"] == "websocket":
        await send({"type": "websocket.close", "code": 1012, "reason": "the server is restarting"})
        return
    error = ShuttingDown("the server is shutting down; retry in a moment", retry_after=5)
    response = error_response(
        error.status, error.message, error_type=error.error_type, code=error.code, retry_after=5
    )
    await response(scope, receive, send)


def disconnected(request: Request) -> Gone:
    """How the manager sees this HTTP client hang up (`manager/cancel.py`): an `http.disconnect`.
    Pass it once the request body has been read."""

    async def gone() -> None:
        while True:
            message = await request.receive()
            if message["type"] == "http.disconnect":
                return

    return gone
