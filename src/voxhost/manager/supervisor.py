"""ModelManager: the one owner of models and their workers.

Every front-end (HTTP, Wyoming, streaming, CLI) asks the manager for work by model id; the manager loads
the model once into its worker processes (lazily, or at start-up with `preload`), reuses them for every
request, unloads them after `ttl` idle seconds or on request, and replaces one when it dies.

Per model there are `replicas` worker processes, each running up to `parallel` inferences at once with
`threads` CPU threads each. A `Scheduler` admits requests to those slots: bounded queue (429 when full),
queue timeout, priority lanes (live streams, then short requests, then the pieces of long files).
Workers' memory is kept within `max_memory_mb` by evicting the least recently used idle model before a
load, and a worker whose RSS grows past `worker_max_rss_mb` is replaced between requests.

Beside it: `layout.py` (how a model runs), `state.py` (what is known of each model while it runs),
`status.py` (snapshots for the API), `longform.py` (long files), `scheduler.py` (admission).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import numpy as np

from voxhost.engines import engine_class
from voxhost.engines.base import ModelInfo, TaskKind
from voxhost.errors import (
    MemoryBudgetExceeded,
    ModelLoadError,
    ShuttingDown,
    WorkerCrashed,
)
from voxhost.logs import note_model
from voxhost.manager import longform
from voxhost.manager.cancel import Gone, while_present
from voxhost.manager.catalog import Catalog, loaded_info
from voxhost.manager.endpoint import Endpointer
from voxhost.manager.enrolment import Enrolled
from voxhost.manager.layout import Layout, engine_config, plan_layout
from voxhost.manager.limits import RequestLimits
from voxhost.manager.live import PARTIAL_INTERVAL, Emit, LiveTranscriber, VadConfig
from voxhost.manager.memory import MemoryBudget
from voxhost.manager.metrics import Metrics
from voxhost.manager.process import Worker, WorkerFactory, process_worker
from voxhost.manager.registry import ModelRegistry, ModelSpec
from voxhost.manager.requests import ModelCard, SpeakRequest, Speech, TranscribeRequest, Voice
from voxhost.manager.scheduler import Lane, Scheduler
from voxhost.manager.state import Entry, Replica, is_idle, process_rss
from voxhost.manager.status import ModelStatus, model_status
from voxhost.manager.wake import WakeStreams
from voxhost.results import TranscribeOptions, Transcription, TranscriptUpdate
from voxhost.settings import Settings

log = logging.getLogger("voxhost.manager")
__all__ = ["ModelManager", "ModelStatus"]

SAMPLE_RATE = 16000


LOAD_WATCH_INTERVAL = 0.05  # seconds between memory checks of a loading worker


class ModelManager:
    def __init__(
        self,
        settings: Settings,
        registry: ModelRegistry | None = None,
        metrics: Metrics | None = None,
        workers: WorkerFactory = process_worker,
        layouts: Callable[[Settings, ModelSpec], Layout] = plan_layout,
    ) -> None:
        self.settings = settings
        self._new_worker = workers
        self.registry = registry or ModelRegistry.from_settings(settings)
        self.metrics = metrics or Metrics()
        self.limits = RequestLimits(settings)
        self._entries: dict[str, Entry] = {}
        for spec in self.registry:
            layout = layouts(settings, spec)
            scheduler = Scheduler(
                layout.slots, settings.max_queue, aging=settings.batch_aging, name=repr(spec.id)
            )
            replicas = [Replica(i) for i in range(layout.replicas)]
            entry = Entry(spec, layout, scheduler, replicas)
            entry.idle.set()
            self._entries[spec.id] = entry
        self._ttl_task: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[Any]] = set()
        self._memory = MemoryBudget(settings, self._entries)
        self.catalog = Catalog(self._entries, self._entry, self._load_info, self._read_files)
        self._memory_lock: asyncio.Lock | None = None
        self._closing = False
        self._draining = False
        self.started_at = time.time()
        self.enrolled = Enrolled(self, settings.speakers)  # --speakers (manager/enrolment.py)
        self.wake = WakeStreams(  # wake word streams (manager/wake.py): `manager.wake.open(names)`
            self._entries, self.catalog.listed, self._wake_call, self._spawn,
            settings.wake_max_streams, settings.wake_refractory, self.metrics.wake_detected,
            self.enrolled.identify if self.enrolled else None,
        )  # fmt: skip
        self.metrics.bind(self)

    # --- start / stop ----------------------------------------------------------------------------
    async def start(self) -> None:
        self._memory_lock = asyncio.Lock()
        if self.settings.preload:  # not the models loaded on first use (`ModelSpec.on_demand`)
            preloaded = [model_id for model_id, e in self._entries.items() if not e.spec.on_demand]
            results = await asyncio.gather(
                *(self.load(model_id) for model_id in preloaded), return_exceptions=True
            )
            for model_id, result in zip(preloaded, results, strict=True):
                if isinstance(result, BaseException):
                    log.error("preloading %s failed: %s", model_id, result)
        if self.enrolled:  # the enrolled voices embedded now, not at the first wake word
            self._spawn(self.enrolled.warm(), "voxhost-enrol")
        if self.settings.ttl > 0:
            self._ttl_task = asyncio.create_task(self._unload_idle(), name="voxhost-ttl")

    async def close(self) -> None:
        self._closing = True
        for task in [self._ttl_task, *self._background]:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        await asyncio.gather(*(self._stop_all(e) for e in self._entries.values()))

    @property
    def closing(self) -> bool:
        return self._closing

    @property
    def draining(self) -> bool:
        """Set once the server begins to stop: front-ends refuse new requests, in-flight ones finish."""
        return self._draining

    def begin_drain(self) -> None:
        if not self._draining:
            log.info("stopping: new requests are refused, %d in flight finish", self.in_flight)
        self._draining = True

    def kill_all(self) -> None:
        """End every worker process now (SIGKILL): the server is stopping without waiting."""
        for entry in self._entries.values():
            for replica in entry.replicas:
                if replica.worker is not None:
                    replica.worker.kill()

    @property
    def in_flight(self) -> int:
        return sum(e.in_flight + e.scheduler.waiting for e in self._entries.values())

    async def __aenter__(self) -> ModelManager:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # --- lifecycle -------------------------------------------------------------------------------
    def _entry(self, name: str | None, task: TaskKind | None = None) -> Entry:
        return self._entries[self.registry.get(name, task).id]

    async def load(self, name: str) -> ModelStatus:
        """Start every replica of the model (no-op for those running)."""
        entry = self._entry(name)
        await asyncio.gather(*(self._ensure_worker(entry, r) for r in entry.replicas))
        return self._status(entry)

    async def unload(self, name: str) -> bool:
        """Stop the model's workers, after their in-flight requests finish. False if it was not loaded."""
        entry = self._entry(name)
        if not entry.loaded:
            return False
        await self._drain(entry, self.settings.request_timeout)
        await self._stop_all(entry)
        log.info("unloaded %s", entry.spec.id)
        return True

    async def _drain(self, entry: Entry, timeout: float) -> None:
        if entry.in_flight:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(entry.idle.wait(), timeout)

    async def _stop_all(self, entry: Entry) -> None:
        await asyncio.gather(*(self._stop_worker(r) for r in entry.replicas))

    async def _stop_worker(self, replica: Replica) -> None:
        worker, replica.worker = replica.worker, None
        replica.retiring = False
        if worker is not None:
            # Once detached, nobody else knows the worker: its stop finishes even if the caller is
            # cancelled (a recycle the closing manager cancels), or the process would outlive the server.
            stopping = asyncio.ensure_future(worker.stop())
            try:
                await asyncio.shield(stopping)
            except asyncio.CancelledError:
                await stopping  # bounded by the stop's own grace and kill
                raise

    async def _ensure_worker(self, entry: Entry, replica: Replica) -> Worker:
        """The replica's live worker, loading the model first if needed: one load however many ask."""
        worker = replica.worker
        if worker is not None and worker.alive:
            return worker
        async with replica.lock:
            if self._closing:
                raise ShuttingDown("the server is shutting down")
            if replica.worker is not None:
                if replica.worker.alive:
                    return replica.worker
                log.warning(
                    "worker for %s (pid %s) is gone; starting a fresh one", entry.spec.id, replica.worker.pid
                )
                entry.restarts += 1
                await self._stop_worker(replica)
            replica.loading = True
            try:
                return await self._start_worker(entry, replica)
            finally:
                replica.loading = False
                entry.changed.set()

    async def _start_worker(self, entry: Entry, replica: Replica) -> Worker:
        try:
            await self._make_room(entry)
        except MemoryBudgetExceeded as exc:
            entry.last_error = exc.message
            self.metrics.load_failed(entry.spec.id)
            raise
        config = engine_config(self.settings, entry.layout)
        worker = self._new_worker(entry.spec, config, entry.layout.parallel, self.settings.log_level)
        started = time.perf_counter()
        watch: asyncio.Task[MemoryBudgetExceeded | None] | None = None
        try:
            if self.settings.max_memory_mb > 0:
                watch = asyncio.create_task(self._watch_load(entry, worker))
            await worker.start(self.settings.load_timeout)
            if watch is not None:
                watch.cancel()
                over = await asyncio.to_thread(self._memory.over_budget, entry, worker)
                if over is not None:
                    raise over
        except BaseException as exc:
            await worker.stop(grace=1)
            if watch is not None and watch.done() and not watch.cancelled():
                exc = watch.result() or exc  # the load died because the watch stopped it
            entry.last_error = exc.message if isinstance(exc, ModelLoadError) else str(exc)
            self.metrics.load_failed(entry.spec.id)
            raise exc from None
        finally:
            if watch is not None:
                watch.cancel()
        seconds = time.perf_counter() - started
        replica.worker = worker
        replica.retiring = False
        replica.load_rss = process_rss(worker.pid)
        entry.rss_estimate = max(entry.rss_estimate or 0, replica.load_rss or 0) or None
        entry.loads += 1
        entry.last_error = None
        entry.last_used = time.monotonic()
        self.metrics.loaded(entry.spec.id, seconds)
        log.info(
            "model %s ready in worker pid %s (%.2fs; %d parallel x %d threads)",
            entry.spec.id,
            worker.pid,
            seconds,
            entry.layout.parallel,
            entry.layout.threads,
        )
        return worker

    async def _unload_idle(self) -> None:
        ttl = self.settings.ttl
        while True:
            await asyncio.sleep(min(max(ttl / 4, 0.05), 5.0))
            now = time.monotonic()
            for entry in self._entries.values():
                if entry.loaded and is_idle(entry) and now - entry.last_used >= ttl:
                    log.info("%s idle for %.0fs; unloading", entry.spec.id, now - entry.last_used)
                    await self._stop_all(entry)

    # --- memory (the rules: manager/memory.py) ------------------------------------------------------
    def workers_rss(self) -> int:
        """The summed RSS of every live worker process."""
        return self._memory.workers_rss()

    def memory_estimate(self, name: str) -> int:
        """Bytes one more worker of the model is expected to take (the memory budget's guess)."""
        return self._memory.estimate(self._entry(name))

    async def _make_room(self, entry: Entry) -> None:
        """Evict least recently used idle models until one more worker of `entry` fits the budget."""
        if self._memory.budget <= 0 or self._memory_lock is None:
            return
        async with self._memory_lock:
            while (victim := await asyncio.to_thread(self._memory.eviction, entry)) is not None:
                victim.evictions += 1
                await self._stop_all(victim)

    async def _watch_load(self, entry: Entry, worker: Worker) -> MemoryBudgetExceeded | None:
        """While a worker loads, stop it the moment the workers' memory passes the budget: the estimate
        `_make_room` went by is a guess (e.g. float32 compute of float16 weights doubles the memory)."""
        while True:
            await asyncio.sleep(LOAD_WATCH_INTERVAL)
            over = await asyncio.to_thread(self._memory.over_budget, entry, worker)
            if over is not None:
                worker.kill()
                return over

    def _after_request(self, entry: Entry, replica: Replica) -> None:
        """Between requests: note the worker's memory, and retire it if it grew past the cap."""
        if self._memory.should_retire(entry, replica):
            replica.retiring = True

    def _maybe_recycle(self, entry: Entry, replica: Replica) -> None:
        if not replica.retiring or replica.in_flight or self._closing:
            return

        async def recycle() -> None:
            async with replica.lock:
                if replica.retiring and not replica.in_flight:
                    entry.recycles += 1
                    await self._stop_worker(replica)
            entry.changed.set()
            with contextlib.suppress(Exception):  # a failed load is reported by the next request
                await self._ensure_worker(entry, replica)

        self._spawn(recycle(), f"recycle[{entry.spec.id}]")

    def _spawn(self, coro: Any, name: str) -> None:
        task = asyncio.create_task(coro, name=name)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # --- requests --------------------------------------------------------------------------------
    async def _reserve(self, entry: Entry) -> Replica:
        """A replica with a free inference slot (the scheduler guarantees one exists, or soon will: a
        retiring replica comes back once replaced). Prefers live workers, then the least busy."""
        while True:
            free = [r for r in entry.replicas if not r.retiring and r.in_flight < entry.layout.parallel]
            if free:
                return min(free, key=lambda r: (not r.alive, r.in_flight, r.index))
            entry.changed.clear()
            await entry.changed.wait()

    @contextlib.contextmanager
    def _counted(self, entry: Entry, replica: Replica) -> Iterator[None]:
        """Count a request on its replica and model: in-flight gauges, idle event (unload waits on it),
        TTL clock, the served count when it succeeds, and the recycling check once it is done."""
        replica.in_flight += 1
        entry.in_flight += 1
        entry.idle.clear()
        try:
            yield
            entry.requests += 1
        finally:
            replica.in_flight -= 1
            entry.in_flight -= 1
            entry.last_used = time.monotonic()
            if not entry.in_flight:
                entry.idle.set()
            self._after_request(entry, replica)
            self._maybe_recycle(entry, replica)
            entry.changed.set()

    def _queue_timeout(self) -> float | None:
        return self.settings.queue_timeout or None

    @contextlib.asynccontextmanager
    async def _admitted(self, entry: Entry, lane: Lane, follow_up: bool = False) -> AsyncIterator[None]:
        """Hold one of the entry's inference slots (queueing for it in `lane`) for the body. A follow-up
        (a later call of a long file already admitted) is neither refused by a full queue nor timed out."""
        note_model(entry.spec.id)
        timeout = None if follow_up else self._queue_timeout()
        async with entry.scheduler.slot(lane, timeout, bounded=not follow_up) as waited:
            self.metrics.queued(entry.spec.id, lane, waited)
            yield

    @contextlib.asynccontextmanager
    async def _on_worker(self, entry: Entry) -> AsyncIterator[Worker]:
        """A live worker with a free slot, counted as busy for the body (which holds a slot)."""
        replica = await self._reserve(entry)
        started = time.perf_counter()
        with self._counted(entry, replica):
            yield await self._ensure_worker(entry, replica)
        self.metrics.inferred(entry.spec.id, time.perf_counter() - started)

    async def _run(
        self, entry: Entry, method: str, lane: Lane, *, follow_up: bool = False, **kwargs: Any
    ) -> Any:
        """Run one request on one of the entry's workers, on a fresh worker once more if it died."""
        attempts = 2 if self.settings.retry_on_crash else 1
        async with self._admitted(entry, lane, follow_up):
            for attempt in range(1, attempts + 1):
                try:
                    async with self._on_worker(entry) as worker:
                        return await worker.call(method, self.settings.request_timeout, **kwargs)
                except WorkerCrashed as exc:
                    if attempt == attempts:
                        raise
                    log.warning("%s; retrying on a fresh worker", exc.message)
        raise AssertionError("unreachable")

    async def _stream(
        self, entry: Entry, method: str, lane: Lane, **kwargs: Any
    ) -> AsyncGenerator[Any, None]:
        """Like `_run` for generator methods. A crash before the first item is retried on a fresh
        worker; after it, the caller has partial output and gets the error. Use with `aclosing`."""
        attempts = 2 if self.settings.retry_on_crash else 1
        async with self._admitted(entry, lane):
            for attempt in range(1, attempts + 1):
                started = False
                try:
                    async with self._on_worker(entry) as worker:
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

    # --- the request API (typed in requests.py): every front-end's one way in ----------------------
    async def transcribe(self, request: TranscribeRequest, gone: Gone | None = None) -> Transcription:
        """The whole transcription of the request's audio at once (see `transcribe_stream`)."""
        return await longform.collect(self.transcribe_stream(request, gone))

    def transcribe_stream(
        self,
        request: TranscribeRequest,
        gone: Gone | None = None,
        *,
        calls: longform.CallWrapper | None = None,
    ) -> AsyncGenerator[TranscriptUpdate, None]:
        """Transcribe the request's audio, yielding text as it is decoded, in file order; the last
        update carries the whole result. Live streams' decodes go first; audio longer than
        `chunk_seconds` is a long file, worked on in bounded calls at batch priority so that it never
        holds up others (`manager/longform.py`); a `background` request (a job, admitted by the jobs'
        own queue) is all at batch priority and never refused by the model's queue. The work stops
        when the client is `gone` (or the generator is closed early), the calls not yet run are
        dropped. `calls` wraps each engine call (a job's store of done calls)."""
        entry = self._entry(request.model, "asr")
        self.limits.audio(len(request.audio))
        audio, options = request.audio, request.options
        long = longform.is_long(audio, self.settings)
        if request.live or not long:
            lane = Lane.LIVE if request.live else Lane.BATCH if request.background else Lane.INTERACTIVE
            if calls is None:
                return while_present(self._transcribe_whole(entry, audio, options, lane), gone)
            caller = self._caller(entry, lane, admitted=request.background)
            return while_present(longform.whole(calls(caller), audio, options), gone)
        call = self._caller(entry, Lane.BATCH, admitted=request.background)
        updates = longform.long_updates(
            call if calls is None else calls(call),
            audio,
            options,
            self.settings,
            engine=engine_class(entry.spec.engine),
            concurrency=entry.layout.slots,
            detects_language=self._detects_language(entry),
        )
        return while_present(self._logged(entry, len(audio) / SAMPLE_RATE, updates), gone)

    def _wake_call(self, entry: Entry, method: str, kwargs: dict[str, Any]) -> Awaitable[Any]:
        """One call of a wake stream (manager/wake.py): a follow-up of the admitted stream, live lane."""
        return self._run(entry, method, Lane.LIVE, follow_up=True, **kwargs)

    def _caller(self, entry: Entry, lane: Lane, *, admitted: bool = False) -> longform.Caller:
        """Runs each call of one transcription in `lane`. `admitted`: the request was queued already
        (a job, in the jobs' own queue): its calls wait their turn, never refused by a full model
        queue nor timed out in it."""

        def call(method: str, *, follow_up: bool, **kwargs: Any) -> Awaitable[Any]:
            return self._run(entry, method, lane, follow_up=follow_up or admitted, **kwargs)

        return call

    async def _transcribe_whole(
        self, entry: Entry, audio: np.ndarray, options: TranscribeOptions, lane: Lane
    ) -> AsyncGenerator[TranscriptUpdate, None]:
        result: Transcription = await self._run(entry, "transcribe", lane, audio=audio, options=options)
        yield TranscriptUpdate(result.text, result.duration, result)

    async def _logged(
        self, entry: Entry, seconds: float, updates: AsyncGenerator[TranscriptUpdate, None]
    ) -> AsyncGenerator[TranscriptUpdate, None]:
        started = time.perf_counter()
        async with contextlib.aclosing(updates):
            async for update in updates:
                if update.result is not None:
                    log.info(
                        "%s: transcribed %.0fs of audio (%s) in %.1fs; %d segments",
                        entry.spec.id,
                        seconds,
                        self.settings.long_audio,
                        time.perf_counter() - started,
                        len(update.result.segments),
                    )
                yield update

    def _detects_language(self, entry: Entry) -> bool:
        """Whether the model may detect a language (so a long file's first call must run alone)."""
        info = loaded_info(entry)
        return info.multilingual if info is not None else True

    async def diarizer(self, method: str, *, background: bool = False, **kwargs: Any) -> Any:
        """Run a method of the diarization model (`manager/speakers.py` is the request API on it).
        `background`: a job's call (admitted by the jobs' own queue), in the batch lane and never
        refused by a full queue nor timed out in it."""
        lane = Lane.BATCH if background else Lane.INTERACTIVE
        return await self._run(self._entry(None, "diarize"), method, lane, follow_up=background, **kwargs)

    def live_session(
        self,
        model: str | None,
        options: TranscribeOptions,
        vad: VadConfig,
        emit: Emit,
        partials: bool = True,
        clock: Callable[[], float] | None = None,
    ) -> LiveTranscriber:
        """A live transcription session (streaming VAD, partials, finals: `manager/live.py`) on one ASR
        model, resolved now, so that an unknown one is refused before the session starts."""
        model_id = self._entry(model, "asr").spec.id

        async def transcribe(audio: np.ndarray, opts: TranscribeOptions) -> Transcription:
            return await self.transcribe(TranscribeRequest(audio, opts, model_id, live=True))

        interval = PARTIAL_INTERVAL if partials else 0.0
        return LiveTranscriber(
            transcribe, emit, options, vad, partial_interval=interval, clock=clock,
            max_backlog=self.limits.live_backlog_seconds,
        )  # fmt: skip

    def endpointer(
        self, model: str | None, options: TranscribeOptions, silence: float, timeout: float
    ) -> Endpointer:
        """Server-side endpointing of a live stream (`manager/endpoint.py`): its utterance ends after
        `silence` seconds of silence after speech; a stream without speech for `timeout` seconds is
        answered empty. No utterance is cut short of the request's audio limit."""
        vad = VadConfig(min_silence=silence, max_utterance=self.limits.audio_seconds)

        def start(emit: Emit) -> LiveTranscriber:
            return self.live_session(model, options, vad, emit, partials=False, clock=time.monotonic)

        return Endpointer(start, timeout, options.language)

    async def speak(self, request: SpeakRequest, gone: Gone | None = None) -> Speech:
        """Speech for the request's text, streamed: the model and voice it means, its sample rate, and
        the audio chunk by chunk (one per sentence) as each is ready. The text's rules and the voice are
        checked here, before anything is queued (the model is loaded if needed: its voices are known
        once it is)."""
        if request.model is not None:
            self.resolve(request.model, "tts")  # an unknown model is a 404 before the text's rules
        text = self.limits.text(request.text)
        entry, voice = await self.catalog.voice(request.model, request.voice)
        info = await self.catalog.info(entry)
        chunks = self._stream(
            entry,
            "synthesize",
            Lane.INTERACTIVE,
            text=text,
            voice=voice,
            speed=request.speed,
            language=request.language,
        )
        # read ahead of the client: a slow reader holds the budget's room, not the model's slot
        chunks = self.limits.audio_budget.read_ahead(chunks)
        return Speech(entry.spec.id, voice, info.sample_rate, while_present(chunks, gone))

    async def voice(self, model: str | None, name: str | None) -> Voice:
        """The voice a request's model and voice name mean (`Catalog.voice`), e.g. to check a streamed
        request's voice before its text arrives."""
        entry, voice = await self.catalog.voice(model, name)
        return await self.catalog.voice_of(entry, voice)

    async def voices(self, model: str | None = None) -> list[Voice]:
        """Every voice of the TTS model (or of every TTS model), loading them if needed."""
        return await self.catalog.voices(model)

    async def describe(self) -> list[ModelCard]:
        """Every served model: what it is, who made it, its languages and its voices."""
        return await self.catalog.describe()

    def _read_files(self, entry: Entry) -> ModelInfo | None:
        return entry.spec.describe_files(engine_config(self.settings, entry.layout))

    async def _load_info(self, entry: Entry) -> ModelInfo:
        info = (await self._ensure_worker(entry, entry.replicas[0])).info
        assert info is not None, "a started worker knows its model"
        return info

    # --- status ----------------------------------------------------------------------------------
    def resolve(self, name: str | None, task: TaskKind | None = None) -> ModelSpec:
        return self.registry.get(name, task)

    def _status(self, entry: Entry) -> ModelStatus:
        return model_status(entry, self.registry.aliases_of(entry.spec.id))

    def status(self, name: str | None = None) -> list[ModelStatus]:
        if name is not None:
            return [self._status(self._entry(name))]
        return [self._status(e) for e in self._entries.values()]

    def memory(self, statuses: list[ModelStatus] | None = None) -> dict[str, Any]:
        """Workers' memory and its limits; from `statuses` when the caller has just read them."""
        used = self.workers_rss() if statuses is None else sum(s.rss_bytes or 0 for s in statuses)
        return {
            "workers_rss_bytes": used,
            "budget_bytes": self._memory.budget or None,
            "worker_max_rss_bytes": self._memory.cap or None,
        }

    def recent_inferences(self, name: str) -> list[dict[str, Any]]:
        """The latest requests each live worker ran: pid, and start and end on the system's monotonic
        clock (the worker's own reading), oldest first. Shows which requests ran side by side."""
        found = [
            {"pid": r.worker.pid, "replica": r.index, "started": started, "finished": finished}
            for r in self._entry(name).replicas
            if r.worker is not None
            for started, finished in r.worker.timings
        ]
        return sorted(found, key=lambda item: item["started"])

    async def worker_stats(self, name: str) -> dict[str, Any] | None:
        """Ask a loaded model's first live worker for its own stats; None when none answers."""
        stats = await self.all_worker_stats(name)
        return next((s for s in stats if s is not None), None)

    async def all_worker_stats(self, name: str) -> list[dict[str, Any] | None]:
        """Each live replica's own stats (pid, loads, requests, RSS), None for one that does not answer."""

        async def ping(worker: Worker) -> dict[str, Any] | None:
            try:
                return await worker.ping()
            except (TimeoutError, WorkerCrashed):
                return None

        workers = [r.worker for r in self._entry(name).replicas if r.alive and r.worker]
        return list(await asyncio.gather(*(ping(w) for w in workers)))
