"""OpenAI's `/v1/audio/speech`, streamed: audio goes out as each sentence is synthesized, as raw audio
(`stream_format=audio`) or as Server-Sent Events (`stream_format=sse`); and the listings speech UIs read:
`/v1/audio/voices` and `/v1/audio/models`."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import math
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from fastapi import APIRouter, Depends, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field, field_validator

from voxhost.api.deps import get_manager
from voxhost.api.errors import error_body, error_responses
from voxhost.api.models import model_object
from voxhost.api.observe import disconnected
from voxhost.audio.encode import PCM_RATE, SPEECH_FORMATS, StreamEncoder
from voxhost.errors import BadRequest, ClientGone, VoxhostError
from voxhost.formats import sse
from voxhost.manager import ModelManager
from voxhost.manager.requests import SpeakRequest, Speech, Voice

router = APIRouter(tags=["audio"])
log = logging.getLogger("voxhost.http")

# Usage in `speech.audio.done`, in OpenAI's units (voxhost bills nothing; clients that show usage get
# figures of the right size): text tokens estimated at OpenAI's rule of thumb of four characters a token,
# audio tokens at the rate OpenAI counts its voices' output audio, one token per 50 ms.
CHARS_PER_TEXT_TOKEN = 4
SPEECH_TOKENS_PER_SECOND = 20


class VoiceRef(BaseModel):
    """A voice given as an object, as OpenAI's custom voices are: `{"id": "alloy"}`."""

    id: str = Field(min_length=1, description="A voice id of a served model, or an OpenAI voice name.")


class SpeechRequest(BaseModel):
    model: str | None = Field(
        None, description="TTS model id or alias (tts-1, tts-1-hd, ...); default if omitted."
    )
    input: str = Field(min_length=1, description="The text to speak (the limit is --max-input-chars).")
    voice: str | VoiceRef | None = Field(
        None,
        description="A voice of the model or an OpenAI voice name (alloy, ash, ballad, cedar, coral, echo, "
        'fable, marin, nova, onyx, sage, shimmer, verse), as a string or as {"id": ...}; every OpenAI name '
        "maps onto a voice of every model (GET /v1/audio/voices lists them). Default: the model's first.",
    )
    response_format: Literal["mp3", "opus", "aac", "flac", "wav", "pcm"] = "mp3"
    speed: float = Field(1.0, ge=0.25, le=4.0)
    instructions: str | None = Field(
        None,
        description="Accepted for compatibility and not followed: Piper and Kokoro voices cannot be "
        "steered by instructions (tone, accent, pace); choose the voice and speed instead.",
    )
    stream_format: Literal["audio", "sse"] = Field(
        "audio",
        description="audio: the audio file itself, streamed. sse: Server-Sent Events, a speech.audio.delta "
        "(base64 audio in response_format) per piece of audio as it is ready, then speech.audio.done with "
        "the usage; an error after the first event comes as an error event. Both work with every model.",
    )
    sample_rate: int | Literal["native"] | None = Field(
        None,
        description="voxhost extension: output rate in Hz, or 'native' for the voice's own rate. Default: "
        "24000 for pcm (as OpenAI documents), the voice's rate for the other formats.",
    )
    language: str | None = Field(None, description="voxhost extension: language for Kokoro (e.g. en-us, ja).")

    @field_validator("voice", mode="before")
    @classmethod
    def _voice_shape(cls, value: Any) -> Any:
        # one clear message for a voice of the wrong shape, rather than one per member of the union
        if value is None or isinstance(value, str):
            return value
        if isinstance(value, dict) and isinstance(value.get("id"), str) and value["id"]:
            return value
        raise ValueError('a voice is a name, or an object with its id: {"id": "alloy"}')

    @property
    def voice_name(self) -> str | None:
        return self.voice.id if isinstance(self.voice, VoiceRef) else self.voice


def _output_rate(request: SpeechRequest, native: int) -> int:
    if request.sample_rate == "native":
        return native
    if isinstance(request.sample_rate, int):
        if not 8000 <= request.sample_rate <= 48000:
            raise BadRequest("sample_rate must be between 8000 and 48000", param="sample_rate")
        return request.sample_rate
    return PCM_RATE if request.response_format == "pcm" else native


@router.post(
    "/v1/audio/speech",
    summary="Generate speech from text (streamed as it is synthesized)",
    response_class=StreamingResponse,
    responses={
        200: {
            "content": {content_type: {} for content_type in [*SPEECH_FORMATS.values(), "text/event-stream"]}
        },
        **error_responses(400, 404, 429, 504),
    },
)
async def speech(
    request: SpeechRequest,
    http_request: Request,
    manager: ModelManager = Depends(get_manager),
) -> StreamingResponse:
    """The text spoken by the model's voice, sent as each sentence is synthesized: the audio file itself
    (`stream_format=audio`), or OpenAI's speech events (`stream_format=sse`). Errors before the first
    audio are statuses; the headers say the model that speaks and the audio's sample rate."""
    wanted = SpeakRequest(request.input, request.model, request.voice_name, request.speed, request.language)
    speech = await manager.speak(wanted, gone=disconnected(http_request))
    rate = speech.sample_rate
    try:
        encoder = StreamEncoder(request.response_format, rate, _output_rate(request, rate))
        # The first sentence is awaited before answering, so that a failed model or text it cannot
        # speak is a proper error status rather than a broken stream.
        first = await anext(speech.chunks, None)
    except BaseException:
        await speech.aclose()
        raise
    headers = {"X-Sample-Rate": str(encoder.sample_rate), "X-Voxhost-Model": speech.model}
    if request.stream_format == "sse":
        events = _events(speech, first, encoder, request.input)
        headers["Cache-Control"] = "no-cache"
        return StreamingResponse(events, media_type="text/event-stream", headers=headers)
    return StreamingResponse(_body(speech, first, encoder), media_type=encoder.content_type, headers=headers)


@dataclass(slots=True)
class _Tally:
    samples: int = 0  # at the model's rate


async def _audio(
    speech: Speech, first: np.ndarray | None, encoder: StreamEncoder, tally: _Tally
) -> AsyncGenerator[bytes, None]:
    """The encoded audio as each chunk is synthesized, then the encoder's last bytes. An error of the
    synthesis (or the client's leaving, ClientGone) is raised where it happens."""
    async with contextlib.aclosing(speech.chunks) as chunks:
        chunk = first
        while chunk is not None:
            tally.samples += len(chunk)
            data = await asyncio.to_thread(encoder.encode, chunk)
            if data:
                yield data
            chunk = await anext(chunks, None)
    yield await asyncio.to_thread(encoder.close)


async def _body(speech: Speech, first: np.ndarray | None, encoder: StreamEncoder) -> AsyncIterator[bytes]:
    """`stream_format=audio`: the file's bytes as they are encoded."""
    async with contextlib.aclosing(_audio(speech, first, encoder, _Tally())) as audio:
        try:
            async for data in audio:
                yield data
        except ClientGone:
            return
        except VoxhostError as exc:
            # the status line is long gone: end the audio cleanly where it got to, and say why
            log.error("speech stream ended early: %s", exc.message)
            yield await asyncio.to_thread(encoder.close)


async def _events(
    speech: Speech, first: np.ndarray | None, encoder: StreamEncoder, text: str
) -> AsyncIterator[bytes]:
    """`stream_format=sse`: OpenAI's speech events. A `speech.audio.delta` for each piece of encoded audio
    (the deltas' audio, joined, is the whole file in `response_format`), then `speech.audio.done` with the
    usage. A failure after the first event is an `error` event (OpenAI's error object under `error`), and
    the stream ends there, without `speech.audio.done`."""
    tally = _Tally()
    async with contextlib.aclosing(_audio(speech, first, encoder, tally)) as audio:
        try:
            async for data in audio:
                if data:
                    yield sse({"type": "speech.audio.delta", "audio": base64.b64encode(data).decode("ascii")})
        except ClientGone:
            return
        except VoxhostError as exc:
            log.error("speech stream ended early: %s", exc.message)
            yield sse({"type": "error", **error_body(exc)})
            return
    yield sse({"type": "speech.audio.done", "usage": speech_usage(text, tally.samples / speech.sample_rate)})


def speech_usage(text: str, seconds: float) -> dict[str, int]:
    """The usage `speech.audio.done` carries, in OpenAI's units: `input_tokens` is the text's tokens,
    estimated at one per four characters (voxhost's voices have no token-based text encoder to count
    with); `output_tokens` is the audio's tokens, counted as OpenAI counts its voices' audio, one per
    50 ms of speech (20 a second), from the samples synthesized."""
    text_tokens = max(1, math.ceil(len(text) / CHARS_PER_TEXT_TOKEN))
    audio_tokens = math.ceil(seconds * SPEECH_TOKENS_PER_SECOND)
    return {
        "input_tokens": text_tokens,
        "output_tokens": audio_tokens,
        "total_tokens": text_tokens + audio_tokens,
    }


def _voice_object(voice: Voice) -> dict[str, Any]:
    body: dict[str, Any] = {"id": voice.id, "name": voice.id, "language": voice.language}
    if voice.gender and voice.gender != "unknown":
        body["gender"] = voice.gender
    body.update(model=voice.model, sample_rate=voice.sample_rate, aliases=list(voice.aliases))
    return body


@router.get("/v1/audio/voices", summary="Voices of the TTS models", responses=error_responses(404))
async def voices(model: str | None = None, manager: ModelManager = Depends(get_manager)) -> dict[str, Any]:
    """The voices each TTS model serves (loading it if needed), with the OpenAI voice names that mean
    each. Both shapes clients read: `data` (an OpenAI-style list) and `voices` (what Open WebUI and
    Kokoro-FastAPI's clients read: `id` and `name`), the same voices in each. `?model=` narrows it to one
    model (an id or alias)."""
    listed = [_voice_object(v) for v in await manager.voices(model or None)]
    return {"object": "list", "data": listed, "voices": listed}


@router.get(
    "/v1/audio/models", summary="The speech (TTS) models and their aliases", responses=error_responses()
)
async def speech_models(manager: ModelManager = Depends(get_manager)) -> dict[str, Any]:
    """The served TTS models, each followed by its aliases (OpenAI's model names among them), as
    `/v1/models` describes them. Both shapes: `data` (OpenAI-style) and `models` (what Open WebUI reads:
    `id`). Loads nothing; transcription models are in `/v1/models`."""
    listed = []
    for status in manager.status():
        if status.task == "tts":
            listed.append(model_object(status))
            listed.extend(model_object(status, alias_of=alias) for alias in status.aliases)
    return {"object": "list", "data": listed, "models": listed}
