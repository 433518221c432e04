"""The messages between the server (`WorkerProcess`) and a worker process (`worker_main`), in one place.

On the pipe a message is a plain tuple: its kind (a `Kind` value, sent as a plain `str`) and then its
fields, all builtins, so pickling one is cheap and needs nothing from voxhost to read it. The
`NamedTuple` of each kind below names and documents its fields; `encode` makes the tuple that is sent,
`decode_request` / `decode_reply` turn a received tuple back into the named message.

Server -> worker (`Request`):

- `Call(request_id, method, kwargs)`: run `engine.<method>(**kwargs)` on the worker's thread pool.
- `Cancel(request_id)`: the caller of a streaming call went away; stop its generator.
- `Ping(request_id)`: ask for the worker's stats.
- `Shutdown()`: exit now.

Worker -> server (`Reply`):

- `Ready(info)`, once, after the model loaded (its `ModelInfo` as plain data); or `LoadFailed(error)`,
  once, and the worker exits.
- `Chunk(request_id, item)`: one item of a streaming call.
- `Result(request_id, value, timing)`: a call's return value (None after a stream) and its
  (started, finished) on the worker's `time.monotonic` clock, which is system-wide.
- `Error(request_id, error)`: a call failed; `error` is `voxhost.errors.to_wire(exc)`.
- `Pong(request_id, stats)`: the answer to a ping (pid, loads, requests, rss_bytes).

The rules:

- Every answer carries the id of the request it answers; the server matches answers by id, never by
  order. Ids are unique per worker (the server counts them up from 1).
- A call is answered by `Chunk`* (only for a method that returns an iterator) and then exactly one
  `Result` or `Error`. Nothing follows that for the same id.
- `Cancel` stops a generator between two items (the item being made is finished, not sent); the call
  then ends with its `Result` as usual. A cancel for a request no longer running is ignored.
- The worker's main thread only reads the pipe; calls run on a thread pool, so a ping is answered at
  once even while every inference thread is busy.
- The pipe closing (either side gone) ends the conversation: the worker exits, the server fails every
  request still waiting on that worker.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, NamedTuple, TypeVar

# The form of a message on the pipe: (kind, *fields).
Wire = tuple[Any, ...]
# `voxhost.errors.to_wire`: (error class name, message, param).
WireError = tuple[str, str, str | None]


class Kind(StrEnum):
    # server -> worker
    CALL = "call"
    CANCEL = "cancel"
    PING = "ping"
    SHUTDOWN = "shutdown"
    # worker -> server
    READY = "ready"
    LOAD_FAILED = "load_failed"
    CHUNK = "chunk"
    RESULT = "result"
    ERROR = "error"
    PONG = "pong"


class ProtocolError(ValueError):
    """A tuple that is not a message of the expected direction (unknown kind or wrong fields)."""


# --- server -> worker --------------------------------------------------------------------------------
class Call(NamedTuple):
    """Run `engine.<method>(**kwargs)`; answered by `Chunk`* then `Result` or `Error`."""

    request_id: int
    method: str
    kwargs: dict[str, Any]


class Cancel(NamedTuple):
    """Stop the streaming call `request_id` between two items (ignored if it is not running)."""

    request_id: int


class Ping(NamedTuple):
    """Ask for the worker's stats; answered by `Pong`, even while the worker is busy."""

    request_id: int


class Shutdown(NamedTuple):
    """Exit now (calls still running are abandoned)."""


# --- worker -> server --------------------------------------------------------------------------------
class Ready(NamedTuple):
    """The model loaded: `engine.describe()` as plain data (`ModelInfo.to_wire`)."""

    info: dict[str, Any]


class LoadFailed(NamedTuple):
    """The model did not load; the worker exits right after sending this."""

    error: WireError


class Chunk(NamedTuple):
    """One item of a streaming call, sent as soon as it is made."""

    request_id: int
    item: Any


class Result(NamedTuple):
    """A call's return value (None at the end of a stream) and its (started, finished) times on the
    worker's `time.monotonic` clock."""

    request_id: int
    value: Any
    timing: tuple[float, float] | None = None


class Error(NamedTuple):
    """A call failed; `error` is `voxhost.errors.to_wire(exc)` (`from_wire` makes the exception again)."""

    request_id: int
    error: WireError


class Pong(NamedTuple):
    """The answer to a ping: the worker's pid, loads, requests served and RSS in bytes."""

    request_id: int
    stats: dict[str, Any]


Request = Call | Cancel | Ping | Shutdown
Reply = Ready | LoadFailed | Chunk | Result | Error | Pong
Message = Request | Reply

_REQUESTS: dict[str, type[Request]] = {
    Kind.CALL.value: Call,
    Kind.CANCEL.value: Cancel,
    Kind.PING.value: Ping,
    Kind.SHUTDOWN.value: Shutdown,
}
_REPLIES: dict[str, type[Reply]] = {
    Kind.READY.value: Ready,
    Kind.LOAD_FAILED.value: LoadFailed,
    Kind.CHUNK.value: Chunk,
    Kind.RESULT.value: Result,
    Kind.ERROR.value: Error,
    Kind.PONG.value: Pong,
}
# The kind of each message class, as the plain str that goes on the pipe (a StrEnum member would
# pickle as a reference to `Kind`).
_KINDS: dict[type[Message], str] = {cls: kind for kind, cls in (_REQUESTS | _REPLIES).items()}


def kind_of(message: Message) -> Kind:
    return Kind(_KINDS[type(message)])


def encode(message: Message) -> Wire:
    """The tuple to send for `message`: (kind, *fields)."""
    return (_KINDS[type(message)], *message)


def decode_request(wire: Wire) -> Request:
    """A message the worker received. Raises ProtocolError for anything else."""
    return _decode(wire, _REQUESTS)


def decode_reply(wire: Wire) -> Reply:
    """A message the server received from a worker. Raises ProtocolError for anything else."""
    return _decode(wire, _REPLIES)


_M = TypeVar("_M", Request, Reply)


def _decode(wire: Wire, types: dict[str, type[_M]]) -> _M:
    try:
        return types[wire[0]](*wire[1:])
    except (KeyError, IndexError, TypeError) as exc:  # unknown kind, too few or too many fields
        raise ProtocolError(f"not a message here: {str(wire)[:200]}") from exc
