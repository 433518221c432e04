"""API keys: `Authorization: Bearer KEY` on every request, as OpenAI clients send it.

Off unless keys are configured (`--api-key`, repeatable; `VOXHOST_API_KEY`, comma-separated; or
`--api-key-file`, one key per line). With keys on, every HTTP route and WebSocket needs one, except the
probes `/health/live` and `/health/ready` (a load balancer has no key) and the API docs. Keys are compared
in constant time, each against every configured key, so timing tells nothing about a key.

WebSockets: browsers cannot set headers on a WebSocket, so the key may also come as the subprotocol
`openai-insecure-api-key.KEY` (what OpenAI's own browser clients send for the Realtime API) or as the
query parameter `api_key`. A WebSocket without a valid key is refused before it is accepted (HTTP 403).
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
from pathlib import Path
from urllib.parse import parse_qs

from starlette.types import ASGIApp, Receive, Scope, Send

from voxhost.api.errors import error_response

log = logging.getLogger("voxhost.auth")
OPEN_PATHS = frozenset(
    {"/health/live", "/health/ready", "/docs", "/docs/oauth2-redirect", "/openapi.json", "/"}
)
OPEN_PREFIXES = ("/playground/",)  # the playground's files: the page asks for the key itself
SUBPROTOCOL_PREFIX = "openai-insecure-api-key."


def load_keys(keys: list[str], key_file: Path | None) -> list[str]:
    """The configured keys: given directly, and one per line of the key file (# starts a comment)."""
    found = [k.strip() for k in keys if k.strip()]
    if key_file is not None:
        for line in key_file.read_text(encoding="utf-8").splitlines():
            key = line.split("#", 1)[0].strip()
            if key:
                found.append(key)
    return found


def is_loopback(host: str) -> bool:
    """Whether binding `host` keeps a port to this machine ("" and 0.0.0.0 mean every interface)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class KeyChecker:
    def __init__(self, keys: list[str]) -> None:
        self._keys = [k.encode() for k in keys]

    def __bool__(self) -> bool:
        return bool(self._keys)

    def valid(self, candidate: str | None) -> bool:
        if not candidate:
            return False
        given = candidate.encode()
        ok = False
        for key in self._keys:  # no early exit: the time taken does not depend on which key matched
            ok |= hmac.compare_digest(given, key)
        return ok


def _bearer(headers: dict[bytes, bytes]) -> str | None:
    value = headers.get(b"authorization", b"").decode("latin-1")
    scheme, _, token = value.partition(" ")
    return token.strip() if scheme.lower() == "bearer" else None


def _websocket_key(scope: Scope, headers: dict[bytes, bytes]) -> str | None:
    token = _bearer(headers)
    if token:
        return token
    protocols = headers.get(b"sec-websocket-protocol", b"").decode("latin-1")
    for protocol in protocols.split(","):
        protocol = protocol.strip()
        if protocol.startswith(SUBPROTOCOL_PREFIX):
            return protocol[len(SUBPROTOCOL_PREFIX) :]
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    values = query.get("api_key")
    return values[0] if values else None


class ApiKeyAuth:
    """Plain ASGI middleware: 401 in OpenAI's error shape for HTTP, a refused handshake for WebSockets."""

    def __init__(self, app: ASGIApp, checker: KeyChecker) -> None:
        self.app = app
        self.checker = checker

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if (
            scope["type"] not in ("http", "websocket")
            or not self.checker
            or path in OPEN_PATHS
            or path.startswith(OPEN_PREFIXES)
        ):
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        if scope["type"] == "websocket":
            if self.checker.valid(_websocket_key(scope, headers)):
                await self.app(scope, receive, send)
                return
            log.info("refused a WebSocket without a valid API key on %s", scope["path"])
            await send({"type": "websocket.close", "code": 1008, "reason": "invalid API key"})
            return
        if self.checker.valid(_bearer(headers)):
            await self.app(scope, receive, send)
            return
        given = b"authorization" in headers
        message = (
            "Incorrect API key provided."
            if given
            else "You didn't provide an API key. Send it as 'Authorization: Bearer KEY'."
        )
        response = error_response(401, message, error_type="invalid_request_error", code="invalid_api_key")
        response.headers["www-authenticate"] = 'Bearer realm="voxhost"'
        await response(scope, receive, send)
