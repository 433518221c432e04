"""The project's exceptions.

Everything below the API layers raises these; each API front-end maps them to its own error shape in
one place (HTTP: `voxhost.api.errors`). `status` is the HTTP status the error stands for and `code`
the machine-readable code OpenAI-style clients see; a class states them in its `class` line (as
keywords, `__init_subclass__`), and what it leaves out it inherits from its base.
"""

from __future__ import annotations

from typing import Any, ClassVar


class VoxhostError(Exception):
    """The base of every error below; raised as itself, an internal error (500)."""

    status: ClassVar[int] = 500
    code: ClassVar[str] = "internal_error"
    error_type: ClassVar[str] = "server_error"

    def __init_subclass__(
        cls, *, status: int | None = None, code: str | None = None, error_type: str | None = None, **kw: Any
    ) -> None:
        super().__init_subclass__(**kw)
        cls.status = cls.status if status is None else status
        cls.code = cls.code if code is None else code
        cls.error_type = cls.error_type if error_type is None else error_type

    def __init__(self, message: str, *, param: str | None = None, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.retry_after = retry_after  # seconds a client should wait before retrying (429/503)


class BadRequest(VoxhostError, status=400, code="invalid_request", error_type="invalid_request_error"):
    """The request itself is wrong: a missing or invalid field, flag or option."""


class BadAudio(BadRequest, code="invalid_audio"):
    """The uploaded audio could not be decoded."""


class StreamTooLong(BadRequest, code="stream_too_long"):
    """A live stream went past the session limit; the server ends it."""


class BadJson(BadRequest, code="invalid_json"):
    """A message that should be JSON is not."""


class ModelNotFound(VoxhostError, status=404, code="model_not_found", error_type="invalid_request_error"):
    """The request names a model that is not served (nor an alias of one)."""


class PayloadTooLarge(VoxhostError, status=413, code="payload_too_large", error_type="invalid_request_error"):
    """The upload, message or text is larger than the server accepts."""


class AudioTooLong(PayloadTooLarge, code="audio_too_long"):
    """The audio is longer than the server's `max_audio_seconds`."""


class ModelLoadError(VoxhostError, status=503, code="model_load_failed"):
    """The model could not be loaded; it stays unloaded and the next request tries again."""


class WorkerCrashed(VoxhostError, status=503, code="worker_crashed"):
    """The worker process serving the request died before answering."""


class WorkerTimeout(VoxhostError, status=504, code="worker_timeout"):
    """The worker did not answer within the request timeout; it was replaced."""


class EngineError(VoxhostError, status=500, code="engine_error"):
    """The engine raised while handling a request (the worker itself is fine)."""


class ShuttingDown(VoxhostError, status=503, code="shutting_down"):
    """The server is stopping and takes no new requests."""


class QueueFull(VoxhostError, status=429, code="queue_full", error_type="rate_limit_exceeded"):
    """The model's queue is full: the request is refused at once instead of waiting without bound."""


class QueueTimeout(VoxhostError, status=503, code="queue_timeout"):
    """The request waited in the model's queue for longer than its timeout and gave up."""


class ServerBusy(VoxhostError, status=503, code="server_busy"):
    """A server-wide bound is reached (decoded audio held at once); retry in a moment."""


class TooManySessions(VoxhostError, status=429, code="too_many_sessions", error_type="rate_limit_exceeded"):
    """Every live-transcription session slot is taken (--max-live-sessions)."""


class MemoryBudgetExceeded(ModelLoadError, code="memory_budget_exceeded"):
    """Loading the model would exceed the workers' memory budget, even after evicting idle models."""


class ClientGone(VoxhostError, status=499, code="client_closed_request", error_type="invalid_request_error"):
    """The client disconnected before its answer was ready; its work was cancelled."""


def file_error(exc: VoxhostError | OSError) -> str:
    """What went wrong with one input file, for a person: voxhost's message, or the OS's reason."""
    return exc.message if isinstance(exc, VoxhostError) else exc.strerror or str(exc)


def to_wire(exc: BaseException) -> tuple[str, str, str | None]:
    """An exception as plain data that survives the worker pipe."""
    if isinstance(exc, VoxhostError):
        return (type(exc).__name__, exc.message, exc.param)
    return ("EngineError", f"{type(exc).__name__}: {exc}", None)


def from_wire(wire: tuple[str, str, str | None]) -> VoxhostError:
    name, message, param = wire
    cls = _BY_NAME.get(name, EngineError)
    return cls(message, param=param)


def _subclasses(cls: type[VoxhostError]) -> list[type[VoxhostError]]:
    found = [cls]
    for sub in cls.__subclasses__():
        found.extend(_subclasses(sub))
    return found


_BY_NAME: dict[str, type[VoxhostError]] = {cls.__name__: cls for cls in _subclasses(VoxhostError)}
