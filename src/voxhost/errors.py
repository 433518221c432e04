"""The project's exceptions.

Everything below the API layers raises these; each API front-end maps them to its own error shape in
one place (HTTP: `voxhost.api.errors`). `status` is the HTTP status the error stands for and `code`
the machine-readable code OpenAI-style clients see.
"""

from __future__ import annotations


class VoxhostError(Exception):
    status: int = 500
    code: str = "internal_error"
    error_type: str = "server_error"

    def __init__(self, message: str, *, param: str | None = None, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.retry_after = retry_after  # seconds a client should wait before retrying (429/503)


class BadRequest(VoxhostError):
    status = 400
    code = "invalid_request"
    error_type = "invalid_request_error"


class BadAudio(BadRequest):
    code = "invalid_audio"


class StreamTooLong(BadRequest):
    """A live stream went past the session limit; the server ends it."""

    code = "stream_too_long"


class ModelNotFound(VoxhostError):
    status = 404
    code = "model_not_found"
    error_type = "invalid_request_error"


class PayloadTooLarge(VoxhostError):
    status = 413
    code = "payload_too_large"
    error_type = "invalid_request_error"


class AudioTooLong(PayloadTooLarge):
    """The audio is longer than the server's `max_audio_seconds`."""

    code = "audio_too_long"


class ModelLoadError(VoxhostError):
    """The model could not be loaded; it stays unloaded and the next request tries again."""

    status = 503
    code = "model_load_failed"


class WorkerCrashed(VoxhostError):
    """The worker process serving the request died before answering."""

    status = 503
    code = "worker_crashed"


class WorkerTimeout(VoxhostError):
    """The worker did not answer within the request timeout; it was replaced."""

    status = 504
    code = "worker_timeout"


class EngineError(VoxhostError):
    """The engine raised while handling a request (the worker itself is fine)."""

    status = 500
    code = "engine_error"


class ShuttingDown(VoxhostError):
    status = 503
    code = "shutting_down"


class QueueFull(VoxhostError):
    """The model's queue is full: the request is refused at once instead of waiting without bound."""

    status = 429
    code = "queue_full"
    error_type = "rate_limit_exceeded"


class QueueTimeout(VoxhostError):
    """The request waited in the model's queue for longer than its timeout and gave up."""

    status = 503
    code = "queue_timeout"


class MemoryBudgetExceeded(ModelLoadError):
    """Loading the model would exceed the workers' memory budget, even after evicting idle models."""

    code = "memory_budget_exceeded"


class ClientGone(VoxhostError):
    """The client disconnected before its answer was ready; its work was cancelled."""

    status = 499
    code = "client_closed_request"
    error_type = "invalid_request_error"


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
