"""Every HTTP request body bounded before it is held, for every route (those added later included):
refused with 413 in OpenAI's error shape by its Content-Length, or, when it has none or lies, as soon
as what has arrived passes the bound.

The bounds come from the request limits (`manager/limits.py: RequestLimits.body`): a multipart upload
may carry `--max-upload-mb` plus its form fields; any other body (JSON) what the largest speech request
needs, derived from `--max-input-chars`.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from voxhost.api.errors import error_response
from voxhost.manager.limits import RequestLimits


class _TooLarge(Exception):
    """Raised into the app's read of the body once the bound is passed (the 413 is already sent)."""


class BodyLimit:
    """Plain ASGI middleware; see the module's doc."""

    def __init__(self, app: ASGIApp, limits: RequestLimits) -> None:
        self.app = app
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        limit, what = self.limits.body(headers.get(b"content-type", b"").decode("latin-1"))
        declared = headers.get(b"content-length", b"")
        if declared.isdigit() and int(declared) > limit:
            await self._refuse(scope, receive, send, what)
            return
        received = 0
        started = False
        refused = False

        async def bounded_receive() -> Message:
            nonlocal received, refused
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    if not started:
                        refused = True
                        await self._refuse(scope, receive, send, what)
                    raise _TooLarge
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if refused:
                return  # the 413 went out: what the app answers to the broken read is dropped
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, bounded_receive, guarded_send)
        except _TooLarge:
            if not refused:
                raise

    @staticmethod
    async def _refuse(scope: Scope, receive: Receive, send: Send, what: str) -> None:
        response = error_response(413, what, error_type="invalid_request_error", code="payload_too_large")
        await response(scope, receive, send)
