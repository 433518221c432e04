"""Job webhooks: when a job ends, a POST of an event to its `webhook_url`, signed as the Standard
Webhooks spec (and OpenAI's own webhooks) sign: headers `webhook-id`, `webhook-timestamp` and
`webhook-signature` (`v1,` + base64 of HMAC-SHA256 over `ID.TIMESTAMP.BODY`, with the secret's bytes:
base64 after `whsec_`), so that `openai.OpenAI(webhook_secret=...).webhooks.unwrap` accepts it.

A delivery that fails (no answer, or a status other than 2xx) is retried with exponential backoff for
a while; how it went is kept on the job (`webhook`). Which hosts may be reached is `--webhook-allow`.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import ipaddress
import json
import logging
import secrets
import socket
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlparse

import httpx

from voxhost.errors import BadRequest

log = logging.getLogger("voxhost.jobs")

ATTEMPTS = 10  # the first delivery and nine retries
FIRST_DELAY = 1.0  # seconds before the first retry; doubled for each next one (1, 2, 4 ... 256: 8.5 min)
TIMEOUT = 10.0  # seconds a receiver has to answer one delivery
MAX_URL = 2048


def secret_bytes(secret: str) -> bytes:
    """The HMAC key: base64 after `whsec_` (Standard Webhooks, OpenAI), else the text's own bytes.
    ValueError if it is empty or not base64 after `whsec_` (`--webhook-secret` is checked at start)."""
    key = base64.b64decode(secret[6:], validate=True) if secret.startswith("whsec_") else secret.encode()
    if not key:
        raise ValueError("the webhook secret is empty")
    return key


def sign(secret: str, webhook_id: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret_bytes(secret), f"{webhook_id}.{timestamp}.".encode() + body, hashlib.sha256)
    return "v1," + base64.b64encode(mac.digest()).decode()


def headers(secret: str | None, webhook_id: str, body: bytes, now: float | None = None) -> dict[str, str]:
    timestamp = int(now if now is not None else time.time())
    sent = {
        "content-type": "application/json",
        "webhook-id": webhook_id,
        "webhook-timestamp": str(timestamp),
    }
    if secret:
        sent["webhook-signature"] = sign(secret, webhook_id, timestamp, body)
    return sent


class Allowed:
    """`--webhook-allow`: host names and networks (CIDR or single addresses); empty: any host."""

    def __init__(self, entries: list[str]) -> None:
        self.names: set[str] = set()
        self.networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
        for entry in entries:
            try:
                self.networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                self.names.add(entry.lower().rstrip("."))

    def check_url(self, url: str) -> None:
        """A webhook URL a job may take: http(s), a host, and (the name, or an address) allowed."""
        if len(url) > MAX_URL:
            raise BadRequest(f"webhook_url is longer than {MAX_URL} characters", param="webhook_url")
        parsed = urlparse(url)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise BadRequest("webhook_url must be an http:// or https:// URL", param="webhook_url")
        try:
            parsed.port  # noqa: B018 (raises on a bad port)
        except ValueError:
            raise BadRequest("webhook_url has a bad port", param="webhook_url") from None
        if not self.names and not self.networks:
            return
        host = parsed.hostname.lower().rstrip(".")
        if host in self.names:
            return
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            if self.networks:  # a name: checked against the networks when it is resolved, at delivery
                return
            raise self._refused(host) from None
        if not any(address in network for network in self.networks):
            raise self._refused(host)

    @staticmethod
    def _refused(host: str) -> BadRequest:
        return BadRequest(f"webhook_url's host {host} is not in --webhook-allow", param="webhook_url")

    async def check_delivery(self, url: str) -> None:
        """At delivery, a host name's addresses must all be allowed (unless the name itself is)."""
        host = (urlparse(url).hostname or "").lower().rstrip(".")
        if (not self.names and not self.networks) or host in self.names:
            return
        infos = await asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_STREAM)
        addresses = {ipaddress.ip_address(info[4][0]) for info in infos}
        if not addresses or not all(any(a in n for n in self.networks) for a in addresses):
            raise PermissionError(f"{host} resolves outside --webhook-allow")


def event(kind: str, job: dict[str, Any]) -> tuple[str, bytes]:
    """An event's id and body: `{"id", "object": "event", "type", "created_at", "data"}`, as OpenAI's."""
    webhook_id = "evt_" + secrets.token_hex(12)
    body = {"id": webhook_id, "object": "event", "type": kind, "created_at": int(time.time()), "data": job}
    return webhook_id, json.dumps(body, separators=(",", ":")).encode()


async def deliver(
    url: str,
    body: bytes,
    webhook_id: str,
    secret: str | None,
    allowed: Allowed,
    *,
    attempts: int = ATTEMPTS,
    first_delay: float = FIRST_DELAY,
    sleep: Callable[[float], Any] = asyncio.sleep,
) -> dict[str, Any]:
    """Deliver one event, retrying with backoff; returns how it went (kept on the job)."""
    outcome: dict[str, Any] = {"id": webhook_id, "url": url, "attempts": 0, "delivered": False, "error": None}
    delay = first_delay
    async with httpx.AsyncClient(timeout=TIMEOUT, follow_redirects=False, trust_env=False) as client:
        for attempt in range(1, attempts + 1):
            outcome["attempts"] = attempt
            try:
                await allowed.check_delivery(url)
                # signed anew each time: a retry hours later is within the receiver's tolerance
                response = await client.post(url, content=body, headers=headers(secret, webhook_id, body))
                if 200 <= response.status_code < 300:
                    outcome |= {"delivered": True, "error": None, "status_code": response.status_code}
                    return outcome
                outcome |= {"error": f"the receiver answered {response.status_code}",
                            "status_code": response.status_code}  # fmt: skip
            except PermissionError as exc:
                outcome["error"] = str(exc)
                return outcome  # not allowed: retrying will not change that
            except (httpx.HTTPError, OSError) as exc:
                outcome["error"] = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            if attempt < attempts:
                error = outcome["error"]
                log.info("webhook %s to %s failed (%s); retrying in %gs", webhook_id, url, error, delay)
                await sleep(delay)
                delay *= 2
    log.warning("webhook %s to %s failed for good: %s", webhook_id, url, outcome["error"])
    return outcome
