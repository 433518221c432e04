"""OpenAI's audio endpoints: `/v1/audio/transcriptions` and `/v1/audio/translations`."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse

from voxhost.api.deps import get_manager
from voxhost.api.errors import error_body, error_responses
from voxhost.api.multipart import Form, read_form
from voxhost.api.observe import disconnected
from voxhost.errors import BadRequest, VoxhostError
from voxhost.formats import (
    CONTENT_TYPES,
    GRANULARITIES,
    RESPONSE_FORMATS,
    check_response_format,
    check_stream_format,
    delta_event,
    done_event,
    render,
    sse,
)
from voxhost.manager import ModelManager, longform
from voxhost.manager.requests import TranscribeRequest
from voxhost.results import Task, TranscribeOptions, TranscriptUpdate

router = APIRouter(tags=["audio"])
log = logging.getLogger("voxhost.http")


def _form_schema(task: Task) -> dict[str, Any]:
    properties: dict[str, Any] = {
        "file": {
            "type": "string",
            "format": "binary",
            "description": "Audio: wav, mp3, flac, ogg/opus, m4a, webm...",
        },
        "model": {
            "type": "string",
            "description": "Model id or alias (e.g. whisper-1); default model if omitted.",
        },
        "prompt": {"type": "string"},
        "response_format": {"type": "string", "enum": list(RESPONSE_FORMATS), "default": "json"},
        "temperature": {"type": "number", "minimum": 0, "maximum": 1, "default": 0},
        "language": {"type": "string", "description": "ISO-639-1 code of the spoken language."},
        "stream": {
            "type": "boolean",
            "default": False,
            "description": "Send the text as Server-Sent Events as it is decoded (json or text only).",
        },
    }
    if task == "transcribe":
        properties["timestamp_granularities[]"] = {
            "type": "array",
            "items": {"type": "string", "enum": list(GRANULARITIES)},
        }
    return {
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {"type": "object", "required": ["file"], "properties": properties}
                }
            },
        }
    }


def _options(form: Form, task: Task) -> tuple[TranscribeOptions, tuple[str, ...]]:
    temperature = 0.0
    raw_temperature = form.get("temperature")
    if raw_temperature:
        try:
            temperature = float(raw_temperature)
        except ValueError:
            raise BadRequest("temperature must be a number", param="temperature") from None
        if not 0.0 <= temperature <= 1.0:
            raise BadRequest("temperature must be between 0 and 1", param="temperature")
    granularities = tuple(dict.fromkeys(form.get_all("timestamp_granularities[]", "timestamp_granularities")))
    for granularity in granularities:
        if granularity not in GRANULARITIES:
            raise BadRequest(
                f"timestamp_granularities must be among {', '.join(GRANULARITIES)}, not {granularity!r}",
                param="timestamp_granularities",
            )
    options = TranscribeOptions(
        task=task,
        language=form.get("language"),
        prompt=form.get("prompt") or None,
        temperature=temperature or None,
        word_timestamps="word" in granularities,
    )
    return options, granularities


def _stream_flag(form: Form) -> bool:
    value = (form.get("stream") or "false").strip().lower()
    if value not in ("true", "false", "1", "0"):
        raise BadRequest(f"stream must be true or false, not {value!r}", param="stream")
    return value in ("true", "1")


async def _handle(request: Request, task: Task, manager: ModelManager) -> Response:
    form = await read_form(request, manager.limits.upload_bytes)
    upload = form.files.get("file")
    if upload is None:
        raise BadRequest("the form has no 'file' part with the audio", param="file")
    response_format = check_response_format(form.get("response_format") or "json")
    stream = _stream_flag(form)
    if stream:
        check_stream_format(response_format)
    options, granularities = _options(form, task)
    model = manager.resolve(form.get("model") or None, "asr").id  # unknown model: 404 before decoding
    audio = await asyncio.to_thread(manager.limits.decode, upload.data)
    wanted = TranscribeRequest(audio, options, model)
    updates = manager.transcribe_stream(wanted, gone=disconnected(request))
    if stream:
        return await _event_stream(updates)
    result = await longform.collect(updates)
    body = render(result, response_format, granularities)
    if isinstance(body, dict):
        return JSONResponse(body)
    return PlainTextResponse(body, media_type=CONTENT_TYPES[response_format])


async def _event_stream(updates: AsyncGenerator[TranscriptUpdate, None]) -> Response:
    """`stream=true`: text events as the audio is decoded. The first update is awaited before answering,
    so that a full queue or a failed model is a proper error status rather than a broken stream."""
    try:
        first = await anext(updates)
    except BaseException:
        await updates.aclose()
        raise
    return StreamingResponse(
        _events(first, updates), media_type="text/event-stream", headers={"Cache-Control": "no-cache"}
    )


async def _events(
    first: TranscriptUpdate, updates: AsyncGenerator[TranscriptUpdate, None]
) -> AsyncIterator[bytes]:
    told = ""  # the first delta starts without the leading space, so the deltas add up to the text
    async with contextlib.aclosing(updates):
        try:
            update: TranscriptUpdate | None = first
            while update is not None:
                delta = update.text if told else update.text.lstrip()
                if delta:
                    told += delta
                    yield sse(delta_event(delta))
                if update.result is not None:
                    yield sse(done_event(update.result))
                    return
                update = await anext(updates, None)
        except VoxhostError as exc:
            # the status line is long gone: an error event, which OpenAI's SDK raises as an APIError
            log.error("transcription stream ended early: %s", exc.message)
            yield sse(error_body(exc))


def _route(task: Task, path: str, summary: str) -> None:
    """One of the two audio routes: the same form, the same handling, one task each."""

    async def endpoint(request: Request, manager: ModelManager = Depends(get_manager)) -> Response:
        return await _handle(request, task, manager)

    endpoint.__name__ = "transcriptions" if task == "transcribe" else "translations"
    responses = error_responses(400, 404, 413, 429, 504)
    router.post(path, summary=summary, openapi_extra=_form_schema(task), responses=responses)(endpoint)


_route("transcribe", "/v1/audio/transcriptions", "Transcribe audio into the input language")
_route("translate", "/v1/audio/translations", "Translate audio into English text")
