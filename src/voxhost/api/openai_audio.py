"""OpenAI's audio endpoints: `/v1/audio/transcriptions` and `/v1/audio/translations`: the form's fields
parsed into the manager's request, or declined with the reason; the answer in the format asked for."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass
from typing import Any, TypeVar

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse

from voxhost.api.deps import get_manager
from voxhost.api.errors import error_body, error_responses
from voxhost.api.multipart import Form, UploadedFile, read_form
from voxhost.api.observe import disconnected
from voxhost.diarization import DiarizedUpdate, DiarizeOptions
from voxhost.errors import BadRequest, VoxhostError
from voxhost.formats import (
    CONTENT_TYPES,
    GRANULARITIES,
    LOGPROB_FORMATS,
    RESPONSE_FORMATS,
    ResponseFormat,
    check_response_format,
    check_stream_format,
    delta_event,
    done_event,
    render,
    sse,
)
from voxhost.manager import ModelManager, longform, speakers
from voxhost.manager.requests import TranscribeRequest
from voxhost.results import Task, TranscribeOptions, TranscriptUpdate, VadParameters
from voxhost.speaker_formats import render_diarized, stream_events

router = APIRouter(tags=["audio"])
U = TypeVar("U")  # an update of a stream (text, or speaker segments)
log = logging.getLogger("voxhost.http")

# The fields of OpenAI's forms (the SDK's TranscriptionCreateParams and TranslationCreateParams) that
# this front-end reads; an array field also comes as `NAME[]`, the chunking object as `NAME[KEY]`.
TRANSCRIPTION_FIELDS: tuple[str, ...] = (
    "file", "model", "prompt", "response_format", "temperature", "language", "stream",
    "timestamp_granularities", "include", "keywords", "languages", "chunking_strategy",
    "known_speaker_names", "known_speaker_references",
)  # fmt: skip
TRANSLATION_FIELDS: tuple[str, ...] = ("file", "model", "prompt", "response_format", "temperature")
# voxhost's extensions (documented in the README): speaker labels in the other formats, and how many
SPEAKER_FIELDS: tuple[str, ...] = ("diarize", "num_speakers", "min_speakers", "max_speakers")
CHUNKING_FIELDS: tuple[str, ...] = ("type", "threshold", "prefix_padding_ms", "silence_duration_ms")
# The fields it declines, and why: a request that sends one is answered 400 with the reason.
DECLINED_FIELDS: dict[str, str] = {}
# What the stream events (the SDK's TranscriptionStreamEvent) carry, and what they never do.
STREAM_EVENT_FIELDS: dict[str, tuple[str, ...]] = {
    "transcript.text.delta": ("type", "delta", "logprobs"),
    "transcript.text.done": ("type", "text", "languages", "logprobs", "usage"),
    "transcript.text.segment": ("type", "id", "start", "end", "speaker", "text"),
}
DECLINED_EVENT_FIELDS: dict[str, str] = {
    "transcript.text.delta.segment_id": "a diarized stream sends whole segments (transcript.text.segment), "
    "not deltas",
}
INCLUDES: tuple[str, ...] = ("logprobs",)
MAX_CHUNKING_MS = 60_000


def form_schema(task: Task, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The form's OpenAPI request body (`extra`: fields of a route that takes more, as jobs do)."""
    properties: dict[str, Any] = {
        "file": {
            "type": "string",
            "format": "binary",
            "description": "Audio: wav, mp3, flac, ogg/opus, m4a, webm...",
        },
        "model": {
            "type": "string",
            "description": "Model id or alias (e.g. whisper-1, gpt-4o-transcribe); default model if omitted.",
        },
        "prompt": {"type": "string"},
        "response_format": {"type": "string", "enum": list(RESPONSE_FORMATS), "default": "json"},
        "temperature": {"type": "number", "minimum": 0, "maximum": 1, "default": 0},
        "language": {"type": "string", "description": "ISO-639-1 code of the spoken language."},
        "stream": {
            "type": "boolean",
            "default": False,
            "description": "Send the text as Server-Sent Events as it is decoded (json, text or "
            "diarized_json).",
        },
        "diarize": {
            "type": "boolean",
            "default": False,
            "description": "voxhost: label speakers in verbose_json (segments and words), srt ([A] ...) "
            "and vtt (<v A>); implied by response_format=diarized_json.",
        },
        "num_speakers": {"type": "integer", "minimum": 1, "description": "voxhost: the number of speakers."},
        "min_speakers": {"type": "integer", "minimum": 1},
        "max_speakers": {"type": "integer", "minimum": 1},
    }
    if task == "transcribe":
        properties |= {
            "languages[]": {
                "type": "array",
                "items": {"type": "string"},
                "description": "Languages the audio may be in; the likeliest of them is decoded.",
            },
            "timestamp_granularities[]": {
                "type": "array",
                "items": {"type": "string", "enum": list(GRANULARITIES)},
            },
            "include[]": {
                "type": "array",
                "items": {"type": "string", "enum": list(INCLUDES)},
                "description": "logprobs: each output token's log-probability (json, verbose_json, stream).",
            },
            "keywords[]": {
                "type": "array",
                "items": {"type": "string"},
                "description": "Words or names to favour while decoding (Whisper's hotwords).",
            },
            "known_speaker_names[]": {
                "type": "array",
                "items": {"type": "string"},
                "description": "Names of known speakers (diarization), one per reference.",
            },
            "known_speaker_references[]": {
                "type": "array",
                "items": {"type": "string"},
                "description": "Data URLs of 1.5-15 s voice samples, one per name.",
            },
            "chunking_strategy": {
                "type": "string",
                "description": "auto, or a server_vad object (as JSON or as chunking_strategy[KEY] fields: "
                "threshold, silence_duration_ms, prefix_padding_ms): voice activity detection finds the "
                "speech that is decoded.",
            },
        }
    properties |= extra or {}
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


def _values(form: Form, name: str) -> list[str]:
    """An array field's values (`NAME[]` or `NAME`), stripped, empty ones left out."""
    return [v.strip() for v in form.get_all(f"{name}[]", name) if v.strip()]


def _decline(form: Form) -> None:
    for name, reason in DECLINED_FIELDS.items():
        if _values(form, name):
            raise BadRequest(reason, param=name)


def _chunking(form: Form) -> VadParameters | None:
    """`chunking_strategy`: "auto" (voice activity detection with voxhost's settings), or a server_vad
    object, as JSON or as `chunking_strategy[KEY]` fields (the SDK's way); absent: None."""
    param = "chunking_strategy"
    strategy: dict[str, Any] = {
        key[len(param) + 1 : -1]: value
        for key, values in form.fields.items()
        if key.startswith(param + "[") and key.endswith("]")
        for value in values[-1:]
    }
    raw = (form.get(param) or "").strip()
    if not strategy:
        if raw in ("", "null"):
            return None
        if raw == "auto":
            return VadParameters()
        try:
            strategy = json.loads(raw) if raw.startswith("{") else {}
        except ValueError:
            strategy = {}
        if not isinstance(strategy, dict) or not strategy:
            raise BadRequest("chunking_strategy must be 'auto' or a server_vad object", param=param)
    if strategy.get("type") != "server_vad":
        raise BadRequest(
            f"chunking_strategy's type must be server_vad, not {strategy.get('type')!r}", param=param
        )
    unknown = sorted(set(strategy) - set(CHUNKING_FIELDS))
    if unknown:
        raise BadRequest(
            f"chunking_strategy has no field {unknown[0]!r} (it takes {', '.join(CHUNKING_FIELDS)})",
            param=param,
        )
    threshold = strategy.get("threshold")
    if threshold is not None:
        threshold = _number(threshold, f"{param}.threshold", 0.0, 1.0)
    return VadParameters(
        threshold=threshold,
        silence_ms=_milliseconds(strategy.get("silence_duration_ms"), f"{param}.silence_duration_ms"),
        padding_ms=_milliseconds(strategy.get("prefix_padding_ms"), f"{param}.prefix_padding_ms"),
    )


def _number(value: object, param: str, low: float, high: float) -> float:
    try:
        number = float(str(value))
    except ValueError:
        raise BadRequest(f"{param} must be a number", param=param) from None
    if not low <= number <= high:
        raise BadRequest(f"{param} must be between {low:g} and {high:g}", param=param)
    return number


def _milliseconds(value: object, param: str) -> int | None:
    if value is None:
        return None
    number = _number(value, param, 0, MAX_CHUNKING_MS)
    if not number.is_integer():
        raise BadRequest(f"{param} must be a whole number of milliseconds", param=param)
    return int(number)


def _options(form: Form, task: Task) -> tuple[TranscribeOptions, tuple[str, ...]]:
    temperature = 0.0
    raw_temperature = form.get("temperature")
    if raw_temperature:
        temperature = _number(raw_temperature, "temperature", 0.0, 1.0)
    granularities = tuple(dict.fromkeys(form.get_all("timestamp_granularities[]", "timestamp_granularities")))
    for granularity in granularities:
        if granularity not in GRANULARITIES:
            raise BadRequest(
                f"timestamp_granularities must be among {', '.join(GRANULARITIES)}, not {granularity!r}",
                param="timestamp_granularities",
            )
    include = _values(form, "include")
    for item in include:
        if item not in INCLUDES:
            raise BadRequest(f"include takes {', '.join(INCLUDES)}, not {item!r}", param="include")
    keywords = _values(form, "keywords")
    options = TranscribeOptions(
        task=task,
        language=form.get("language"),
        prompt=form.get("prompt") or None,
        temperature=temperature or None,
        word_timestamps="word" in granularities,
        hotwords=", ".join(keywords) or None,
        logprobs="logprobs" in include,
        languages=tuple(_values(form, "languages")) or None,
        vad=_chunking(form),
    )
    return options, granularities


def _flag(form: Form, name: str) -> bool:
    value = (form.get(name) or "false").strip().lower()
    if value not in ("true", "false", "1", "0"):
        raise BadRequest(f"{name} must be true or false, not {value!r}", param=name)
    return value in ("true", "1")


def _count(form: Form, name: str) -> int | None:
    raw = (form.get(name) or "").strip()
    if not raw:
        return None
    if not raw.isdigit():
        raise BadRequest(f"{name} must be a whole number", param=name)
    return int(raw)


async def _diarize_options(
    form: Form, task: Task, response_format: str, manager: ModelManager
) -> DiarizeOptions | None:
    """What a request asks of diarization (None: nothing), checked before any audio is decoded."""
    names, references = _values(form, "known_speaker_names"), _values(form, "known_speaker_references")
    wanted = response_format == "diarized_json" or _flag(form, "diarize")
    if not wanted:
        if names or references:
            raise BadRequest(
                "known speakers label a diarized transcript: ask for response_format=diarized_json "
                "(or diarize=true)",
                param="known_speaker_names" if names else "known_speaker_references",
            )
        return None
    if task == "translate" and response_format == "diarized_json":
        raise BadRequest(
            "translations label speakers with diarize=true in verbose_json, srt or vtt",
            param="response_format",
        )
    speakers.available(manager)
    num, low, high = speakers.speaker_counts(
        _count(form, "num_speakers"), _count(form, "min_speakers"), _count(form, "max_speakers")
    )
    known = await asyncio.to_thread(speakers.known_speakers, manager, names, references)
    if not known:  # none named: the enrolled people (--speakers), if any
        known = await manager.enrolled.known()
    return DiarizeOptions(num, low, high, known)


@dataclass(frozen=True, slots=True)
class TranscriptionForm:
    """A transcription form, parsed and checked: what `/v1/audio/transcriptions` (and a job, which
    takes the same form) decodes and how it answers."""

    upload: UploadedFile
    model: str  # the served model's id
    options: TranscribeOptions
    response_format: ResponseFormat
    granularities: tuple[str, ...]
    stream: bool
    diarize: DiarizeOptions | None = None  # speakers asked for (diarized_json, or diarize=true)

    @property
    def languages(self) -> bool:
        """The json answer says which language was decoded (asked for with `languages`)."""
        return self.options.languages is not None


async def parse_form(
    form: Form, task: Task, manager: ModelManager, *, streams: bool = True
) -> TranscriptionForm:
    """The one reading of a transcription form's fields (the route's and a job's): every field checked,
    the model resolved (unknown: 404 before anything is decoded), known speakers' samples read.
    `streams`: `stream` may be asked for."""
    upload = form.files.get("file")
    if upload is None:
        raise BadRequest("the form has no 'file' part with the audio", param="file")
    _decline(form)
    response_format = check_response_format(form.get("response_format") or "json")
    stream = _flag(form, "stream")
    if stream and not streams:
        raise BadRequest("stream is not taken here; GET the job's events instead", param="stream")
    if stream:
        check_stream_format(response_format)
    options, granularities = _options(form, task)
    if options.logprobs and not stream and response_format not in LOGPROB_FORMATS:
        raise BadRequest(
            f"include=logprobs comes in the json and verbose_json answers (and stream events), "
            f"not with response_format {response_format}",
            param="include",
        )
    model = manager.resolve(form.get("model") or None, "asr").id  # unknown model: 404 before decoding
    diarize = await _diarize_options(form, task, response_format, manager)
    return TranscriptionForm(upload, model, options, response_format, granularities, stream, diarize)


async def _handle(request: Request, task: Task, manager: ModelManager) -> Response:
    form = await read_form(request, manager.limits.upload_bytes)
    parsed = await parse_form(form, task, manager)
    held = await manager.limits.decoded(parsed.upload.data)  # within the server's budget of decoded audio
    wanted = TranscribeRequest(held.audio, parsed.options, parsed.model)
    diarize = parsed.diarize
    if diarize is not None and not (parsed.stream and parsed.response_format != "diarized_json"):
        if not parsed.stream:
            try:
                diarized = await speakers.transcribe_diarized(manager, wanted, diarize, disconnected(request))
            finally:
                held.release()
            body = render_diarized(diarized, parsed.response_format, parsed.granularities)
            return rendered(body, parsed.response_format)
        try:
            segments = speakers.transcribe_diarized_stream(manager, wanted, diarize, disconnected(request))
        except BaseException:
            held.release()
            raise
        del wanted
        return await _segment_stream(held.releasing(segments))
    updates = held.releasing(manager.transcribe_stream(wanted, gone=disconnected(request)))
    del held, wanted  # the stream holds the audio, and gives its room back when it ends
    if parsed.stream:
        return await _event_stream(updates, parsed.languages)
    result = await longform.collect(updates)
    body = render(result, parsed.response_format, parsed.granularities, languages=parsed.languages)
    return rendered(body, parsed.response_format)


def rendered(body: str | dict[str, Any], response_format: str) -> Response:
    """A rendered transcription as the HTTP answer `/v1/audio/transcriptions` gives."""
    if isinstance(body, dict):
        return JSONResponse(body)
    return PlainTextResponse(body, media_type=CONTENT_TYPES[response_format])


async def _first(updates: AsyncGenerator[U, None]) -> U:
    """A stream's first update; the stream closed when that fails (an error to answer with a status)."""
    try:
        return await anext(updates)
    except BaseException:
        await updates.aclose()
        raise


async def _segment_stream(updates: AsyncGenerator[DiarizedUpdate, None]) -> Response:
    """`stream=true` with `diarized_json`: each segment as soon as it is decoded and its speakers are
    known, then the text. The first update is awaited before answering (as in `_event_stream`)."""
    first = await _first(updates)
    return StreamingResponse(
        _segment_events(first, updates), media_type="text/event-stream", headers={"Cache-Control": "no-cache"}
    )


async def _segment_events(
    first: DiarizedUpdate, updates: AsyncGenerator[DiarizedUpdate, None]
) -> AsyncIterator[bytes]:
    async with contextlib.aclosing(updates):
        try:
            update: DiarizedUpdate | None = first
            while update is not None:
                for event in stream_events(update):
                    yield sse(event)
                update = await anext(updates, None)
        except VoxhostError as exc:  # the status line is long gone: an error event
            log.error("diarized stream ended early: %s", exc.message)
            yield sse(error_body(exc))


async def _event_stream(updates: AsyncGenerator[TranscriptUpdate, None], languages: bool) -> Response:
    """`stream=true`: text events as the audio is decoded. The first update is awaited before answering,
    so that a full queue or a failed model is a proper error status rather than a broken stream."""
    first = await _first(updates)
    return StreamingResponse(
        _events(first, updates, languages),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache"},
    )


async def _events(
    first: TranscriptUpdate, updates: AsyncGenerator[TranscriptUpdate, None], languages: bool
) -> AsyncIterator[bytes]:
    told = ""  # the first delta starts without the leading space, so the deltas add up to the text
    told_logprobs = 0
    async with contextlib.aclosing(updates):
        try:
            update: TranscriptUpdate | None = first
            while update is not None:
                delta = update.text if told else update.text.lstrip()
                logprobs = update.logprobs
                if logprobs is None and update.result is not None and update.result.logprobs is not None:
                    logprobs = update.result.logprobs[told_logprobs:]  # a file decoded in one call
                if delta:
                    told += delta
                    told_logprobs += len(logprobs or [])
                    yield sse(delta_event(delta, logprobs))
                if update.result is not None:
                    yield sse(done_event(update.result, languages))
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
    router.post(path, summary=summary, openapi_extra=form_schema(task), responses=responses)(endpoint)


_route("transcribe", "/v1/audio/transcriptions", "Transcribe audio into the input language")
_route("translate", "/v1/audio/translations", "Translate audio into English text")
