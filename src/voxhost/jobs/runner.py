"""Running jobs: the queue, at most `--max-running-jobs` at once, each through the model manager in the
batch lane (live streams and short requests go first); resume after a restart, cancellation,
retention, the disk limit, webhooks when a job ends, and events for those who follow a job.

A job that was running when the server stopped (SIGTERM, SIGKILL, power loss) is queued again at the
next start and runs its plan again: the calls the store holds are answered from it (`calls.Recorder`),
so it resumes from its last completed call. A worker that dies mid-call is the manager's to retry, as
for any request; a job that fails for good keeps the error.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import Counter
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from voxhost.diarization import Diarization, DiarizedTranscription, DiarizedUpdate, DiarizeOptions
from voxhost.errors import BadRequest, QueueFull, ShuttingDown, VoxhostError
from voxhost.formats import ResponseFormat, check_response_format, done_event, render
from voxhost.jobs import webhooks
from voxhost.jobs.calls import (
    Recorder,
    diarization_from_json,
    diarization_to_json,
    diarize_options_from_json,
    diarize_options_to_json,
    options_from_json,
    options_to_json,
    result_from_json,
    result_to_json,
)
from voxhost.jobs.store import FINISHED, STATUSES, Job, JobStore, Status, new_id
from voxhost.manager import ModelManager, speakers
from voxhost.manager.requests import TranscribeRequest
from voxhost.results import TranscribeOptions, Transcription, TranscriptUpdate
from voxhost.speaker_formats import render_diarized, segment_event

log = logging.getLogger("voxhost.jobs")

SAMPLE_RATE = 16000
OBJECT = "transcription.job"
HOUR = 3600.0


class JobsFull(QueueFull, code="jobs_full"):
    """Too many jobs waiting, or their files would pass `--jobs-disk-mb`."""


class JobNotFound(VoxhostError, status=404, code="job_not_found", error_type="invalid_request_error"):
    pass


class JobNotReady(VoxhostError, status=409, code="job_not_completed", error_type="invalid_request_error"):
    pass


@dataclass(slots=True)
class Submission:
    """A checked job, as the front-end hands it over."""

    audio: bytes
    filename: str
    model: str
    task: str
    options: TranscribeOptions
    response_format: ResponseFormat
    granularities: tuple[str, ...]
    languages: bool
    duration: float
    webhook_url: str | None = None
    idempotency_key: str | None = None
    # speakers asked for; known speakers by their voices' embeddings (`speakers.embedded`)
    diarize: DiarizeOptions | None = None


@dataclass(slots=True)
class _Live:
    """A running job's state in memory, and who follows it."""

    task: asyncio.Task[None]
    followers: set[asyncio.Queue[dict[str, Any] | None]] = field(default_factory=set)
    cancelling: bool = False


class _JobsCollector(Collector):
    def __init__(self, runner: JobRunner) -> None:
        self.runner = runner

    def collect(self) -> list[Metric]:
        jobs = GaugeMetricFamily("voxhost_jobs", "Transcription jobs held, by status.", labels=["status"])
        counts = self.runner.store.counts() if self.runner.started else dict.fromkeys(STATUSES, 0)
        for status in STATUSES:
            jobs.add_metric([status], counts.get(status, 0))
        return [jobs]


class JobRunner:
    def __init__(self, manager: ModelManager, store: JobStore | None = None) -> None:
        self.manager = manager
        self.settings = manager.settings
        self._store = store
        self.allowed = webhooks.Allowed(self.settings.webhook_allow)
        self._live: dict[str, _Live] = {}
        self._background: set[asyncio.Task[Any]] = set()
        self._wake = asyncio.Event()
        self._closing = False
        registry = manager.metrics.registry
        self.audio_seconds = Counter(
            "voxhost_job_audio_seconds", "Seconds of audio transcribed by jobs.", registry=registry
        )
        registry.register(_JobsCollector(self))

    @property
    def started(self) -> bool:
        return self._store is not None and not self._closing

    @property
    def store(self) -> JobStore:
        if self._store is None:
            raise ShuttingDown("the jobs store is not open")
        return self._store

    # --- start / stop --------------------------------------------------------------------------------
    async def start(self) -> None:
        if self._store is None:
            self._store = await asyncio.to_thread(JobStore.open, self.settings.data_dir)
        for job in self.store.with_status("running"):  # the server stopped while it ran: it resumes
            self.store.update(job.id, status="queued")
        for job in self.store.with_status(*FINISHED):  # an ending whose webhook was never sent
            if job.webhook_url and job.webhook is None:
                self._spawn(self._notify(job.id), f"webhook {job.id}")
        self._spawn(self._schedule(), "jobs")
        self._wake.set()  # the jobs queued before the start run now
        self._spawn(self._sweep(), "jobs retention")
        queued = self.store.count("queued")
        log.info("jobs in %s: %d queued", self.store.root, queued)

    async def close(self) -> None:
        """Stop: running jobs stay running in the store (they resume at the next start)."""
        self._closing = True
        live = [entry.task for entry in self._live.values()]
        for task in [*live, *self._background]:
            task.cancel()
        for task in [*live, *self._background]:
            with contextlib.suppress(BaseException):
                await task
        if self._store is not None:
            self._store.close()

    def _spawn(self, coro: Any, name: str) -> None:
        task = asyncio.create_task(coro, name=name)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # --- submit, look, cancel, delete ----------------------------------------------------------------
    async def submit(self, submission: Submission) -> tuple[Job, bool]:
        """The job made (queued), or the one an earlier submit with the same idempotency key made;
        and whether it is new."""
        store = self.store
        if submission.idempotency_key is not None:
            existing = store.by_key(submission.idempotency_key)
            if existing is not None:
                return existing, False
        if store.count("queued") >= self.settings.max_queued_jobs:
            raise JobsFull(
                f"{self.settings.max_queued_jobs} jobs are waiting already (--max-queued-jobs); retry later",
                retry_after=30,
            )
        limit = int(self.settings.jobs_disk_mb * 2**20)
        if store.disk_bytes() + len(submission.audio) > limit:
            raise JobsFull(
                f"the jobs' files would pass --jobs-disk-mb ({self.settings.jobs_disk_mb:g} MiB): delete "
                "finished jobs, or wait until they are removed (--job-retention)",
                retry_after=60,
            )
        params = {
            "options": options_to_json(submission.options),
            "granularities": list(submission.granularities),
            "languages": submission.languages,
        }
        if submission.diarize is not None:
            params["diarize"] = diarize_options_to_json(submission.diarize)
        job = Job(
            id=new_id(), seq=0, created_at=time.time(), status="queued", model=submission.model,
            task=submission.task, response_format=submission.response_format, filename=submission.filename,
            params=params, duration=submission.duration, webhook_url=submission.webhook_url,
            idempotency_key=submission.idempotency_key,
        )  # fmt: skip
        created = await asyncio.to_thread(store.create, job, submission.audio)
        if created.id != job.id:
            return created, False
        log.info("job %s queued: %.0fs of audio, %s", job.id, job.duration, job.model)
        self._wake.set()
        return created, True

    def get(self, job_id: str) -> Job:
        job = self.store.get(job_id)
        if job is None:
            raise JobNotFound(f"no job {job_id!r}", param="job_id")
        return job

    async def cancel(self, job_id: str) -> Job:
        job = self.get(job_id)
        live = self._live.get(job_id)
        if live is not None:
            live.cancelling = True
            live.task.cancel()
            with contextlib.suppress(BaseException):
                await asyncio.shield(live.task)
        elif job.status == "queued":
            self._end(job.id, "cancelled", error=None)
        return self.get(job_id)

    async def delete(self, job_id: str) -> tuple[Job, bool]:
        """A queued or running job is cancelled; a finished one deleted with its files. Returns the job
        and whether it was deleted."""
        job = self.get(job_id)
        if not job.finished:
            return await self.cancel(job_id), False
        await asyncio.to_thread(self.store.delete, job_id)
        return job, True

    def result(self, job_id: str, response_format: str | None) -> tuple[str | dict[str, Any], ResponseFormat]:
        """The job's result as `/v1/audio/transcriptions` answers it, in its format or `response_format`."""
        job = self.get(job_id)
        if job.status != "completed":
            raise JobNotReady(f"job {job_id} is {job.status}; its result comes once it is completed")
        fmt = check_response_format(response_format or job.response_format)
        result = result_from_json(json.loads(self.store.result(job_id)))
        granularities = tuple(job.params.get("granularities", ()))
        languages = bool(job.params.get("languages"))
        if isinstance(result, DiarizedTranscription) and fmt not in ("json", "text"):
            return render_diarized(result, fmt, granularities), fmt
        if fmt == "diarized_json":
            raise BadRequest(
                "this job has no speakers: submit it with response_format=diarized_json or diarize=true",
                param="response_format",
            )
        return render(_transcription(result), fmt, granularities, languages=languages), fmt

    # --- the object the API shows --------------------------------------------------------------------
    def describe(self, job: Job) -> dict[str, Any]:
        seconds = min(job.seconds_done, job.duration)
        return {
            "id": job.id,
            "object": OBJECT,
            "created_at": int(job.created_at),
            "started_at": None if job.started_at is None else int(job.started_at),
            "finished_at": None if job.finished_at is None else int(job.finished_at),
            "status": job.status,
            "model": job.model,
            "task": job.task,
            "response_format": job.response_format,
            "filename": job.filename,
            "duration": round(job.duration, 3),
            "progress": {
                "audio_seconds": round(seconds, 3),
                "fraction": round(seconds / job.duration, 4) if job.duration else 1.0,
            },
            "error": job.error,
            "webhook_url": job.webhook_url,
            "webhook": job.webhook,
            "runs": job.runs,
        }

    # --- following a job ----------------------------------------------------------------------------
    async def events(self, job_id: str) -> AsyncIterator[dict[str, Any]]:
        """What is done so far first (progress, the text as one delta), then each event as it comes,
        until the job ends. Ends early when the server stops. A diarized job's speaker segments come
        as they are decoded; those a late follower missed come at the end, before the text's."""
        queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        told = ""
        segments: set[str] = set()  # the ids of the speaker segments told
        live: _Live | None = None

        def catch_up(job: Job) -> list[dict[str, Any]]:
            """The text not told yet. Called in the same step as the follower is added, so that the
            queue's deltas start exactly where this ends."""
            nonlocal told
            events = [self._progress(job)]
            if len(job.text) > len(told):
                events.append({"type": "transcript.text.delta", "delta": job.text[len(told) :]})
                told = job.text
            return events

        try:
            while not self._closing and not self.manager.draining:
                if live is None:
                    job = self.get(job_id)
                    live = self._live.get(job_id)
                    if live is not None:
                        live.followers.add(queue)
                    for event in catch_up(job):
                        yield event
                    if job.finished:
                        for event in self._ending(job, segments):
                            yield event
                        return
                    if live is None:  # queued: look again in a moment
                        await asyncio.sleep(0.2)
                    continue
                try:
                    async with asyncio.timeout(1.0):
                        news = await queue.get()
                except TimeoutError:
                    continue
                if news is None:  # the job ended
                    for ending in self._ending(self.get(job_id), segments):
                        yield ending
                    return
                if news["type"] == "transcript.text.delta":
                    told += news["delta"]
                if news["type"] == "transcript.text.segment":
                    segments.add(news["id"])
                yield news
        finally:
            if live is not None:
                live.followers.discard(queue)

    def _progress(self, job: Job) -> dict[str, Any]:
        return {"type": "transcription.job.progress", **self.describe(job)["progress"], "status": job.status}

    def _ending(self, job: Job, segments_told: set[str]) -> list[dict[str, Any]]:
        events = []
        if job.status == "completed":
            result = result_from_json(json.loads(self.store.result(job.id)))
            if isinstance(result, DiarizedTranscription):
                segments = (segment_event(s) for s in result.segments)
                events += [event for event in segments if event["id"] not in segments_told]
            events.append(done_event(_transcription(result), bool(job.params.get("languages"))))
        events.append({"type": f"{OBJECT}.{job.status}", "job": self.describe(job)})
        return events

    def _tell(self, job_id: str, event: dict[str, Any] | None) -> None:
        live = self._live.get(job_id)
        for queue in live.followers if live is not None else ():
            queue.put_nowait(event)

    # --- running ------------------------------------------------------------------------------------
    async def _schedule(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            if self.manager.draining or self.manager.closing:
                continue
            room = self.settings.max_running_jobs - len(self._live)
            waiting = [job for job in self.store.with_status("queued") if job.id not in self._live]
            for job in waiting[: max(0, room)]:
                self._live[job.id] = _Live(asyncio.create_task(self._run(job), name=f"job {job.id}"))

    async def _run(self, job: Job) -> None:
        run = job.runs + 1
        store = self.store
        started = job.started_at or time.time()
        store.update(job.id, status="running", started_at=started, runs=run)
        told = job.text  # text already told (a resumed job's replayed calls say it again)
        done = job.seconds_done

        recorder = Recorder(store, job.id, run)
        try:
            # within the server's budget of decoded audio, given back when the job's stream ends
            held = await self.manager.limits.decoded(await asyncio.to_thread(store.audio, job.id))
            options = options_from_json(job.params["options"])
            request = TranscribeRequest(held.audio, options, job.model, background=True)
            try:
                updates = held.releasing(await self._updates(job, request, recorder))
            except BaseException:
                held.release()
                raise
            del held, request
            said = ""
            result: Transcription | DiarizedTranscription | None = None
            async with contextlib.aclosing(updates):
                async for update in updates:
                    said += update.text if said else update.text.lstrip()
                    values: dict[str, Any] = {}
                    if len(said) > len(told):
                        self._tell(job.id, {"type": "transcript.text.delta", "delta": said[len(told) :]})
                        told = said
                        values["text"] = told
                    for segment in update.segments if isinstance(update, DiarizedUpdate) else ():
                        self._tell(job.id, segment_event(segment))
                    if update.seconds > done:
                        self.audio_seconds.inc(update.seconds - done)
                        done = values["seconds_done"] = update.seconds
                    if values:
                        store.update(job.id, **values)
                        self._tell(job.id, self._progress(store.get(job.id) or job))
                    if update.result is not None:
                        result = update.result
            assert result is not None
            encoded = json.dumps(result_to_json(result)).encode()
            text = _transcription(result).text
            await asyncio.to_thread(
                store.finish, job.id, "completed", result=encoded, seconds_done=job.duration, text=text
            )
            made, reused = recorder.made, recorder.reused
            log.info("job %s completed (%d calls run, %d from before)", job.id, made, reused)
        except asyncio.CancelledError:
            live = self._live.get(job.id)
            if live is None or not live.cancelling:
                raise  # the server stops: the job stays running, and resumes at the next start
            self._end(job.id, "cancelled", error=None)
        except ShuttingDown:
            return
        except VoxhostError as exc:
            log.warning("job %s failed: %s", job.id, exc.message)
            self._end(job.id, "failed", error={"code": exc.code, "message": exc.message})
        except Exception as exc:
            log.exception("job %s failed", job.id)
            self._end(job.id, "failed", error={"code": "internal_error", "message": f"{type(exc).__name__}"})
        else:
            self._ended(job.id)
        finally:
            if not self._closing:
                self._tell(job.id, None)
                self._live.pop(job.id, None)
                self._wake.set()

    async def _updates(
        self, job: Job, request: TranscribeRequest, recorder: Recorder
    ) -> AsyncGenerator[TranscriptUpdate | DiarizedUpdate, None]:
        """The job's transcription, through its store of calls; a diarized job's with its speakers.
        The speakers come first (about 1 s of compute a minute of audio) and are kept in the store, so
        a job resumed after any of its decode calls never diarizes again, and its segments are
        labelled as they are decoded."""
        asked = job.params.get("diarize")
        if asked is None:
            return self.manager.transcribe_stream(request, calls=recorder)
        stored = await asyncio.to_thread(self.store.speakers, job.id)
        if stored is not None:
            diarization = diarization_from_json(json.loads(stored))
            log.info("job %s: its speakers from before", job.id)
        else:
            asked_for = diarize_options_from_json(asked)
            diarization = await speakers.diarize(self.manager, request.audio, asked_for, background=True)
            encoded = json.dumps(diarization_to_json(diarization)).encode()
            await asyncio.to_thread(self.store.save_speakers, job.id, encoded)

        async def turns() -> Diarization:
            return diarization

        options = DiarizeOptions()  # the diarization is done: the options were for it
        return speakers.transcribe_diarized_stream(
            self.manager, request, options, calls=recorder, turns=turns
        )

    def _end(self, job_id: str, status: Status, error: dict[str, Any] | None) -> None:
        self.store.finish(job_id, status, error=error)
        log.info("job %s %s", job_id, status)
        self._ended(job_id)

    def _ended(self, job_id: str) -> None:
        job = self.store.get(job_id)
        if job is not None and job.webhook_url:
            self._spawn(self._notify(job_id), f"webhook {job_id}")

    async def _notify(self, job_id: str) -> None:
        job = self.store.get(job_id)
        if job is None or job.webhook_url is None:
            return
        webhook_id, body = webhooks.event(f"{OBJECT}.{job.status}", self.describe(job))
        outcome = await webhooks.deliver(
            job.webhook_url, body, webhook_id, self.settings.webhook_secret, self.allowed
        )
        if self.store.get(job_id) is not None:
            self.store.update(job_id, webhook=outcome)

    async def _sweep(self) -> None:
        """Finished jobs older than `--job-retention` go, with their files."""
        retention = self.settings.job_retention * HOUR
        while True:
            for job_id in self.store.finished_before(time.time() - retention):
                await asyncio.to_thread(self.store.delete, job_id)
                log.info("job %s removed (older than --job-retention)", job_id)
            await asyncio.sleep(min(max(retention / 4, 0.5), 300))


def _transcription(result: Transcription | DiarizedTranscription) -> Transcription:
    return result.transcription if isinstance(result, DiarizedTranscription) else result


def check_task(value: str | None) -> str:
    task = (value or "transcribe").strip()
    if task not in ("transcribe", "translate"):
        raise BadRequest(f"task must be transcribe or translate, not {task!r}", param="task")
    return task
