"""ModelManager: the one owner of models and their workers.

Every front-end (HTTP, Wyoming, streaming, CLI) asks the manager for work by model id; the manager loads
the model once into a worker process (lazily, or at start-up with `preload`), reuses that worker for
every request, unloads it after `ttl` idle seconds or on request, and replaces it when it dies.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncGenerator, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from voxhost.engines import EngineConfig
from voxhost.engines.base import TaskKind
from voxhost.errors import ModelLoadError, ShuttingDown, WorkerCrashed
from voxhost.manager.process import WorkerProcess
from voxhost.manager.registry import ModelRegistry, ModelSpec
from voxhost.results import TranscribeOptions, Transcription
from voxhost.settings import Settings

log = logging.getLogger("voxhost.manager")

State = Literal["unloaded", "loading", "ready", "failed", "crashed"]


@dataclass(slots=True)
class ModelStatus:
    """A snapshot of one configured model, for /v1/models, /health and `voxhost models`."""

    id: str
    engine: str
    task: TaskKind
    origin: str
    source: str
    description: str
    aliases: list[str]
    state: State
    pid: int | None
    loads: int
    restarts: int
    requests: int
    in_flight: int
    rss_bytes: int | None
    last_error: str | None
    info: dict[str, Any] = field(default_factory=dict)


@dataclass(eq=False)
class _Entry:
    spec: ModelSpec
    slots: asyncio.Semaphore
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    idle: asyncio.Event = field(default_factory=asyncio.Event)  # set while nothing is in flight
    worker: WorkerProcess | None = None
    loading: bool = False
    loads: int = 0
    restarts: int = 0
    requests: int = 0
    in_flight: int = 0
    last_used: float = field(default_factory=time.monotonic)
    last_error: str | None = None

    @property
    def state(self) -> State:
        if self.loading:
            return "loading"
        if self.worker is not None:
            return "ready" if self.worker.alive else "crashed"
        return "failed" if self.last_error else "unloaded"


def engine_config(settings: Settings) -> EngineConfig:
    return EngineConfig(
        device=settings.device,
        compute_type=settings.compute_type,
        threads=settings.threads,
        beam_size=settings.beam_size,
        cache_dir=settings.cache_dir,
        offline=settings.offline,
        voice_files=tuple(settings.voice_files),
        tts_language=settings.tts_language,
    )


class ModelManager:
    def __init__(self, settings: Settings, registry: ModelRegistry | None = None) -> None:
        self.settings = settings
        self.registry = registry or ModelRegistry.from_entries(
            settings.models, settings.default_model, settings.hd_tts_model
        )
        self._config = engine_config(settings)
        # One inference at a time per worker for now; requests beyond that wait here, in the server,
        # so that a worker crash only ever takes the request it was running with it.
        self._entries = {spec.id: _Entry(spec, asyncio.Semaphore(1)) for spec in self.registry}
        self._ttl_task: asyncio.Task[None] | None = None
        self._closing = False

    # --- start / stop ----------------------------------------------------------------------------
    async def start(self) -> None:
        if self.settings.preload:
            results = await asyncio.gather(
                *(self.load(model_id) for model_id in self._entries), return_exceptions=True
            )
            for model_id, result in zip(self._entries, results, strict=True):
                if isinstance(result, BaseException):
                    log.error("preloading %s failed: %s", model_id, result)
        if self.settings.ttl > 0:
            self._ttl_task = asyncio.create_task(self._unload_idle(), name="voxhost-ttl")

    async def close(self) -> None:
        self._closing = True
        if self._ttl_task is not None:
            self._ttl_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ttl_task
        await asyncio.gather(*(self._stop_worker(e) for e in self._entries.values()))

    async def __aenter__(self) -> ModelManager:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # --- lifecycle -------------------------------------------------------------------------------
    def _entry(self, name: str | None, task: TaskKind | None = None) -> _Entry:
        return self._entries[self.registry.get(name, task).id]

    async def load(self, name: str) -> ModelStatus:
        entry = self._entry(name)
        await self._ensure_worker(entry)
        return self._status(entry)

    async def unload(self, name: str) -> bool:
        """Stop the model's worker, after its in-flight requests finish. False if it was not loaded."""
        entry = self._entry(name)
        async with entry.lock:
            if entry.worker is None:
                return False
            await self._drain(entry, self.settings.request_timeout)
            await self._stop_worker(entry)
        log.info("unloaded %s", entry.spec.id)
        return True

    async def _drain(self, entry: _Entry, timeout: float) -> None:
        if entry.in_flight:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(entry.idle.wait(), timeout)

    async def _stop_worker(self, entry: _Entry) -> None:
        worker, entry.worker = entry.worker, None
        if worker is not None:
            await worker.stop()

    async def _ensure_worker(self, entry: _Entry) -> WorkerProcess:
        """The entry's live worker, loading the model first if needed: one load however many ask."""
        worker = entry.worker
        if worker is not None and worker.alive:
            return worker
        async with entry.lock:
            if self._closing:
                raise ShuttingDown("the server is shutting down")
            if entry.worker is not None:
                if entry.worker.alive:
                    return entry.worker
                log.warning(
                    "worker for %s (pid %s) is gone; starting a fresh one", entry.spec.id, entry.worker.pid
                )
                entry.restarts += 1
                await self._stop_worker(entry)
            entry.loading = True
            worker = WorkerProcess(entry.spec, self._config, log_level=self.settings.log_level)
            started = time.perf_counter()
            try:
                await worker.start(self.settings.load_timeout)
            except BaseException as exc:
                await worker.stop(grace=1)
                entry.last_error = exc.message if isinstance(exc, ModelLoadError) else str(exc)
                raise
            finally:
                entry.loading = False
            entry.worker = worker
            entry.loads += 1
            entry.last_error = None
            entry.last_used = time.monotonic()
            log.info(
                "model %s ready in worker pid %s (%.2fs)",
                entry.spec.id,
                worker.pid,
                time.perf_counter() - started,
            )
            return worker

    async def _unload_idle(self) -> None:
        ttl = self.settings.ttl
        while True:
            await asyncio.sleep(min(max(ttl / 4, 0.05), 5.0))
            now = time.monotonic()
            for entry in self._entries.values():
                if entry.worker is not None and entry.in_flight == 0 and now - entry.last_used >= ttl:
                    log.info("%s idle for %.0fs; unloading", entry.spec.id, now - entry.last_used)
                    async with entry.lock:
                        if entry.in_flight == 0 and time.monotonic() - entry.last_used >= ttl:
                            await self._stop_worker(entry)

    # --- requests --------------------------------------------------------------------------------
    @contextlib.contextmanager
    def _in_flight(self, entry: _Entry) -> Iterator[None]:
        """Count a request on its worker: in-flight gauge, idle event (unload waits on it), TTL clock,
        and the served count when it succeeds."""
        entry.in_flight += 1
        entry.idle.clear()
        try:
            yield
            entry.requests += 1
        finally:
            entry.in_flight -= 1
            entry.last_used = time.monotonic()
            if not entry.in_flight:
                entry.idle.set()

    async def _run(self, entry: _Entry, method: str, **kwargs: Any) -> Any:
        """Run one request on the entry's worker, on a fresh worker once more if the first one died."""
        attempts = 2 if self.settings.retry_on_crash else 1
        async with entry.slots:
            for attempt in range(1, attempts + 1):
                worker = await self._ensure_worker(entry)
                try:
                    with self._in_flight(entry):
                        return await worker.call(method, self.settings.request_timeout, **kwargs)
                except WorkerCrashed as exc:
                    if attempt == attempts:
                        raise
                    log.warning("%s; retrying on a fresh worker", exc.message)
        raise AssertionError("unreachable")

    async def _stream(self, entry: _Entry, method: str, **kwargs: Any) -> AsyncGenerator[Any, None]:
        """Like `_run` for generator methods. A crash before the first item is retried on a fresh
        worker; after it, the caller has partial output and gets the error. Use with `aclosing`."""
        attempts = 2 if self.settings.retry_on_crash else 1
        async with entry.slots:
            for attempt in range(1, attempts + 1):
                worker = await self._ensure_worker(entry)
                started = False
                try:
                    with self._in_flight(entry):
                        items = worker.stream(method, self.settings.request_timeout, **kwargs)
                        async with contextlib.aclosing(items):
                            async for item in items:
                                started = True
                                yield item
                    return
                except WorkerCrashed as exc:
                    if started or attempt == attempts:
                        raise
                    log.warning("%s; retrying on a fresh worker", exc.message)

    def synthesize(
        self,
        model: str | None,
        text: str,
        voice: str | None = None,
        speed: float = 1.0,
        language: str | None = None,
    ) -> AsyncGenerator[np.ndarray, None]:
        """Stream float32 audio at the model's `sample_rate`, one chunk per sentence as each is ready."""
        entry = self._entry(model, "tts")
        return self._stream(entry, "synthesize", text=text, voice=voice, speed=speed, language=language)

    async def tts_info(self, model: str | None) -> tuple[ModelSpec, dict[str, Any]]:
        """A TTS model's spec and facts (sample rate, voices, voice aliases); loads it if needed."""
        entry = self._entry(model, "tts")
        worker = await self._ensure_worker(entry)
        return entry.spec, worker.info

    async def transcribe(
        self, model: str | None, audio: np.ndarray, options: TranscribeOptions
    ) -> Transcription:
        entry = self._entry(model, "asr")
        result: Transcription = await self._run(entry, "transcribe", audio=audio, options=options)
        return result

    # --- status ----------------------------------------------------------------------------------
    def resolve(self, name: str | None, task: TaskKind | None = None) -> ModelSpec:
        return self.registry.get(name, task)

    def _status(self, entry: _Entry) -> ModelStatus:
        worker = entry.worker
        alive = worker is not None and worker.alive
        rss = None
        if alive and worker is not None and worker.pid is not None:
            import psutil

            with contextlib.suppress(psutil.Error):
                rss = int(psutil.Process(worker.pid).memory_info().rss)
        info = {k: v for k, v in (worker.info if worker else {}).items() if k not in ("pid", "rss_bytes")}
        return ModelStatus(
            id=entry.spec.id,
            engine=entry.spec.engine,
            task=entry.spec.task,
            origin=entry.spec.origin,
            source=entry.spec.source,
            description=entry.spec.description,
            aliases=self.registry.aliases_of(entry.spec.id),
            state=entry.state,
            pid=worker.pid if alive and worker else None,
            loads=entry.loads,
            restarts=entry.restarts,
            requests=entry.requests,
            in_flight=entry.in_flight,
            rss_bytes=rss,
            last_error=entry.last_error,
            info=info,
        )

    def status(self, name: str | None = None) -> list[ModelStatus]:
        if name is not None:
            return [self._status(self._entry(name))]
        return [self._status(e) for e in self._entries.values()]

    async def worker_stats(self, name: str) -> dict[str, Any] | None:
        """Ask a loaded model's worker for its own stats; None when not loaded or not answering."""
        worker = self._entry(name).worker
        if worker is None or not worker.alive:
            return None
        try:
            return await worker.ping()
        except (TimeoutError, WorkerCrashed):
            return None
