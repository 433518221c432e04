"""Who may call the HTTP API: the Host header (against DNS rebinding) and the browser's Origin (against
other web sites), for every route and WebSocket, before anything else looks at the request.

A web page the user opens on another site can send requests to a server on their machine: "simple"
requests (a form POST, `text/plain`) need no CORS preflight, and WebSockets have no CORS at all. Browsers
say where such a request comes from in `Origin`; clients that are not browsers (curl, the SDKs, Home
Assistant) send none. So:

- a request with an `Origin` that is neither this server's own (the playground) nor one of
  `--cors-origin` is refused with 403 (a WebSocket: its handshake), whatever the route;
- a `Host` that is not one of the server's names is refused with 403 (a DNS-rebinding page reaches
  127.0.0.1 under its own name). `--allowed-host` lists the names; by default a server bound to
  loopback answers only loopback names and addresses, one bound beyond it any name (Docker and add-on
  clients reach it by names it cannot know).
"""

from __future__ import annotations

import ipaddress
import logging
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Receive, Scope, Send

from voxhost.api.auth import is_loopback
from voxhost.api.errors import error_response
from voxhost.settings import Settings

log = logging.getLogger("voxhost.origin")


def _hostname(netloc: str) -> str:
    """The host of a `Host` header or an origin's authority, lower case, without its port or brackets."""
    try:
        host = urlsplit("//" + netloc).hostname
    except ValueError:
        return ""
    return (host or "").lower().rstrip(".")


def is_loopback_name(host: str) -> bool:
    """localhost (and *.localhost, which resolve to loopback), or a loopback address."""
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class HostRule:
    """Which Host headers the server answers (see the module's doc)."""

    def __init__(self, allowed: list[str], bind_host: str) -> None:
        names = [name.strip().lower().rstrip(".") for name in allowed if name.strip()]
        self.any = "*" in names or (not names and not is_loopback(bind_host))
        self._exact = {n for n in names if not n.startswith("*.")}
        self._domains = tuple(n[1:] for n in names if n.startswith("*."))  # ".example.com"

    def allows(self, host: str) -> bool:
        if self.any or is_loopback_name(host):
            return True
        return host in self._exact or host.endswith(self._domains) or ("." + host) in self._domains


class OriginRule:
    """Which browser origins may call: the server's own (same scheme-less authority as the Host header)
    and `--cors-origin`'s (* for any)."""

    def __init__(self, cors_origins: list[str]) -> None:
        self.any = "*" in cors_origins
        self._allowed = {o.strip().rstrip("/").lower() for o in cors_origins}

    def allows(self, origin: str, host_header: str) -> bool:
        origin = origin.strip().lower()
        if self.any or origin in self._allowed:
            return True
        parts = urlsplit(origin)
        # same origin: the page was served by this server, under the name the request is sent to
        return parts.scheme in ("http", "https") and parts.netloc == host_header.strip().lower()


class OriginGuard:
    """Plain ASGI middleware: 403 in OpenAI's error shape for a foreign Host or Origin (a WebSocket:
    refused at its handshake)."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.hosts = HostRule(settings.allowed_hosts, settings.host)
        self.origins = OriginRule(settings.cors_origins)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        host_header = headers.get(b"host", b"").decode("latin-1")
        origin = headers.get(b"origin")
        reason = None
        if not self.hosts.allows(_hostname(host_header)):
            reason = "this server does not answer to that host name (see --allowed-host)"
        elif origin is not None and not self.origins.allows(origin.decode("latin-1"), host_header):
            reason = "requests from other web sites are refused (see --cors-origin)"
        if reason is None:
            await self.app(scope, receive, send)
            return
        log.info("refused %s %s: %s", scope["type"], scope.get("path", ""), reason)
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008, "reason": reason})
            return
        response = error_response(403, reason, error_type="invalid_request_error", code="forbidden_origin")
        await response(scope, receive, send)
