"""Transcription jobs over HTTP, in the OpenAI API's style: `POST /v1/jobs` takes the form of
`/v1/audio/transcriptions` (read by the same code) plus `task` and `webhook_url`, checks the upload and
answers 202 with the job; then the job, the list, the result (the body the transcription route would
have answered), its events as Server-Sent Events, and DELETE (cancel, or delete once finished). The
runner (`voxhost.jobs.runner`) does the work."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from voxhost.api.deps import get_manager
from voxhost.api.errors import error_body, error_responses
from voxhost.api.multipart import read_form
from voxhost.api.openai_audio import form_schema, parse_form, rendered
from voxhost.errors import BadRequest, ShuttingDown, VoxhostError
from voxhost.formats import RESPONSE_FORMATS, sse
from voxhost.jobs.runner import JobRunner, Submission, check_task
from voxhost.manager import ModelManager, speakers

router = APIRouter(tags=["jobs"])

SAMPLE_RATE = 16000
MAX_KEY = 255  # characters of an Idempotency-Key
JobStatus = Literal["queued", "running", "completed", "failed", "cancelled"]
Format = Literal["json", "text", "srt", "vtt", "verbose_json", "diarized_json"]
assert set(RESPONSE_FORMATS) == set(Format.__args__)  # type: ignore[attr-defined]

JOB_FIELDS: dict[str, Any] = {
    "task": {"type": "string", "enum": ["transcribe", "translate"], "default": "transcribe"},
    "webhook_url": {
        "type": "string",
        "description": "Where to POST the signed event when the job ends (Standard Webhooks headers).",
    },
}
JOB_SCHEMA: dict[str, Any] = form_schema("transcribe", JOB_FIELDS)
JOB_SCHEMA["parameters"] = [
    {
        "name": "Idempotency-Key",
        "in": "header",
        "required": False,
        "schema": {"type": "string", "maxLength": MAX_KEY},
        "description": "A repeated submit with the same key returns the job the first one made.",
    }
]


def get_jobs(request: Request) -> JobRunner:
    runner: JobRunner = request.app.state.jobs
    if not runner.started:
        raise ShuttingDown("transcription jobs are not available right now (the server starts or stops)")
    return runner


@router.post(
    "/v1/jobs",
    summary="Submit a recording to transcribe as a job",
    status_code=202,
    openapi_extra=JOB_SCHEMA,
    responses=error_responses(400, 404, 413, 429),
)
async def submit_job(
    request: Request, manager: ModelManager = Depends(get_manager), runner: JobRunner = Depends(get_jobs)
) -> JSONResponse:
    """202 with the job once its upload is checked (format, length, limits); a repeated
    `Idempotency-Key` answers 200 with the job it made."""
    key = request.headers.get("idempotency-key")
    if key is not None:
        key = key.strip()
        if not key or len(key) > MAX_KEY:
            raise BadRequest(f"Idempotency-Key must be 1 to {MAX_KEY} characters", param="Idempotency-Key")
        existing = runner.store.by_key(key)
        if existing is not None:
            return JSONResponse(runner.describe(existing), status_code=200)
    form = await read_form(request, manager.limits.upload_bytes)
    task = check_task(form.get("task"))
    parsed = await parse_form(
        form, "transcribe" if task == "transcribe" else "translate", manager, streams=False
    )
    webhook_url = (form.get("webhook_url") or "").strip() or None
    if webhook_url is not None:
        runner.allowed.check_url(webhook_url)
    held = await manager.limits.decoded(parsed.upload.data)  # checked within the decoded-audio budget
    samples = len(held.audio)
    held.release()
    if not samples:
        raise BadRequest("the file holds no audio", param="file")
    manager.limits.audio(samples)
    # known speakers are kept with the job as their voices' embeddings (bounded, and a resumed job has them)
    diarize = None if parsed.diarize is None else await speakers.embedded(manager, parsed.diarize)
    submission = Submission(
        audio=parsed.upload.data, filename=parsed.upload.filename[:255], model=parsed.model, task=task,
        options=parsed.options, response_format=parsed.response_format, granularities=parsed.granularities,
        languages=parsed.languages, duration=samples / SAMPLE_RATE, webhook_url=webhook_url,
        idempotency_key=key, diarize=diarize,
    )  # fmt: skip
    job, created = await runner.submit(submission)
    return JSONResponse(runner.describe(job), status_code=202 if created else 200)


@router.get("/v1/jobs", summary="List jobs, newest first", responses=error_responses(400))
async def list_jobs(
    limit: int = Query(20, ge=1, le=100),
    after: str | None = Query(None, max_length=64, description="Jobs older than this one."),
    status: JobStatus | None = Query(None),
    runner: JobRunner = Depends(get_jobs),
) -> dict[str, Any]:
    jobs, more = runner.store.page(limit=limit, after=after, status=status)
    data = [runner.describe(job) for job in jobs]
    return {
        "object": "list",
        "data": data,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
        "has_more": more,
    }


@router.get("/v1/jobs/{job_id}", summary="A job: status, progress, error", responses=error_responses(404))
async def get_job(job_id: str, runner: JobRunner = Depends(get_jobs)) -> dict[str, Any]:
    return runner.describe(runner.get(job_id))


@router.get(
    "/v1/jobs/{job_id}/result",
    summary="A completed job's transcription, as /v1/audio/transcriptions answers it",
    response_class=Response,
    responses={
        200: {
            "description": "The transcription in the job's response_format (or the one asked for).",
            "content": {"application/json": {}, "text/plain": {}},
        },
        **error_responses(400, 404, 409),
    },
)
async def job_result(
    job_id: str, response_format: Format | None = Query(None), runner: JobRunner = Depends(get_jobs)
) -> Response:
    body, fmt = await asyncio.to_thread(runner.result, job_id, response_format)
    return rendered(body, fmt)


@router.get(
    "/v1/jobs/{job_id}/events",
    summary="A job's progress and text as Server-Sent Events, until it ends",
    response_class=StreamingResponse,
    responses={
        200: {"description": "Server-Sent Events", "content": {"text/event-stream": {}}},
        **error_responses(404),
    },
)
async def job_events(job_id: str, runner: JobRunner = Depends(get_jobs)) -> StreamingResponse:
    runner.get(job_id)  # 404 before the stream starts

    async def stream() -> AsyncIterator[bytes]:
        try:
            async for event in runner.events(job_id):
                yield sse(event)
        except VoxhostError as exc:  # deleted while followed: the status line is long gone
            yield sse(error_body(exc))
        yield b"data: [DONE]\n\n"

    return StreamingResponse(stream(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})


@router.delete(
    "/v1/jobs/{job_id}",
    summary="Cancel a queued or running job; delete a finished one with its audio and result",
    responses=error_responses(404),
)
async def delete_job(job_id: str, runner: JobRunner = Depends(get_jobs)) -> dict[str, Any]:
    job, deleted = await runner.delete(job_id)
    if deleted:
        return {"id": job.id, "object": "transcription.job.deleted", "deleted": True}
    return runner.describe(job)


def event_lines(text: str) -> list[dict[str, Any]]:
    """The events of an SSE body (for clients: the CLI, the tests)."""
    events = []
    for line in text.splitlines():
        if line.startswith("data: ") and line != "data: [DONE]":
            events.append(json.loads(line[6:]))
    return events
