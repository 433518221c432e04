"""OpenAI's audio endpoints: `/v1/audio/transcriptions` and `/v1/audio/translations`."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from voxhost.api.deps import get_manager, get_settings
from voxhost.api.errors import error_responses
from voxhost.api.multipart import Form, read_form
from voxhost.api.observe import unless_disconnected
from voxhost.audio import decode_audio
from voxhost.errors import BadRequest
from voxhost.formats import CONTENT_TYPES, GRANULARITIES, RESPONSE_FORMATS, check_response_format, render
from voxhost.languages import normalize_language
from voxhost.manager import ModelManager
from voxhost.results import Task, TranscribeOptions
from voxhost.settings import Settings

router = APIRouter(tags=["audio"])


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
    if (form.get("stream") or "false").lower() == "true":
        raise BadRequest("stream=true is not supported on this endpoint yet", param="stream")
    options = TranscribeOptions(
        task=task,
        language=normalize_language(form.get("language")),
        prompt=form.get("prompt") or None,
        temperature=temperature or None,
        word_timestamps="word" in granularities,
    )
    return options, granularities


async def _handle(request: Request, task: Task, manager: ModelManager, settings: Settings) -> Response:
    form = await read_form(request, settings.max_upload_bytes)
    upload = form.files.get("file")
    if upload is None:
        raise BadRequest("the form has no 'file' part with the audio", param="file")
    response_format = check_response_format(form.get("response_format") or "json")
    options, granularities = _options(form, task)
    spec = manager.resolve(form.get("model") or None, "asr")  # unknown model: 404 before any decoding
    audio = await asyncio.to_thread(decode_audio, upload.data, max_seconds=settings.max_audio_seconds)
    result = await unless_disconnected(request, manager.transcribe(spec.id, audio, options))
    body = render(result, response_format, granularities)
    if isinstance(body, dict):
        return JSONResponse(body)
    return PlainTextResponse(body, media_type=CONTENT_TYPES[response_format])


@router.post(
    "/v1/audio/transcriptions",
    summary="Transcribe audio into the input language",
    openapi_extra=_form_schema("transcribe"),
    responses=error_responses(400, 404, 413, 429, 504),
)
async def transcriptions(
    request: Request,
    manager: ModelManager = Depends(get_manager),
    settings: Settings = Depends(get_settings),
) -> Response:
    return await _handle(request, "transcribe", manager, settings)


@router.post(
    "/v1/audio/translations",
    summary="Translate audio into English text",
    openapi_extra=_form_schema("translate"),
    responses=error_responses(400, 404, 413, 429, 504),
)
async def translations(
    request: Request,
    manager: ModelManager = Depends(get_manager),
    settings: Settings = Depends(get_settings),
) -> Response:
    return await _handle(request, "translate", manager, settings)
