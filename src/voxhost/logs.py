"""Logging set-up shared by the CLI commands, and the request context every log line carries.

Each HTTP request, WebSocket session and Wyoming connection runs with a `RequestContext` in a context
variable: its id (from the client's `X-Request-ID` or made up) goes on every log line written while it
is handled, by the server and by the model manager alike, and the model it used goes into the metrics.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import re
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

_SAFE_ID = re.compile(r"^[\w.:-]{1,64}$")


@dataclass(slots=True)
class RequestContext:
    id: str
    model: str = ""


_current: contextvars.ContextVar[RequestContext | None] = contextvars.ContextVar(
    "voxhost_request", default=None
)


def new_request_id(given: str | None = None) -> str:
    """The client's id when it is a sane token, else a fresh one."""
    if given and _SAFE_ID.match(given):
        return given
    return uuid.uuid4().hex[:16]


def current_request() -> RequestContext | None:
    return _current.get()


def note_model(model: str) -> None:
    """Record which model the current request used (for its metrics and access log line)."""
    context = _current.get()
    if context is not None:
        context.model = model


@contextlib.contextmanager
def request_context(request_id: str | None = None) -> Iterator[RequestContext]:
    context = RequestContext(new_request_id(request_id))
    token = _current.set(context)
    try:
        yield context
    finally:
        _current.reset(token)


# API keys wherever a client may put them, whoever logs them (a library's debug log of a handshake
# included): `api_key=` in a query string, the `openai-insecure-api-key.` WebSocket subprotocol, and a
# bearer token
_API_KEY_QUERY = re.compile(
    r"(?i)((?:^|[?&;\s\"'])api[_-]?key=|openai-insecure-api-key\.|\bbearer\s+)[^&\s\"',#]+"
)
# control characters (and the C1 set, DEL included): a path with %0a must not forge a second log line
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def redact(text: str) -> str:
    """`text` as a log line may show it: API keys in query strings replaced, control characters escaped."""
    lowered = text.lower()
    if "key" in lowered or "bearer" in lowered:
        text = _API_KEY_QUERY.sub(r"\1[redacted]", text)
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


class RedactingFilter(logging.Filter):
    """On the handler every logger writes through (uvicorn's and the libraries' included): each message
    and string `extra` field is `redact`ed before any formatter sees it."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        for key, value in list(record.__dict__.items()):
            if key not in _STANDARD_FIELDS and isinstance(value, str):
                setattr(record, key, redact(value))
        return True


class _RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        context = _current.get()
        record.request_id = context.id if context else "-"
        return True


_STANDARD_FIELDS = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request id, and any `extra` fields."""

    _STANDARD = _STANDARD_FIELDS

    def format(self, record: logging.LogRecord) -> str:
        body = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in self._STANDARD and not key.startswith("_"):
                body[key] = value
        if record.exc_info:
            body["exception"] = self.formatException(record.exc_info)
        return json.dumps(body, default=str)


def configure_logging(level: str, fmt: str = "text") -> None:
    handler = logging.StreamHandler()
    handler.addFilter(RedactingFilter())
    handler.addFilter(_RequestIdFilter())
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s")
        )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
