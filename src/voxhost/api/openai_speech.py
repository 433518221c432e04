"""OpenAI's `/v1/audio/speech`, streamed: audio goes out as each sentence is synthesized."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any, Literal

import numpy as np
from fastapi import APIRouter, Depends, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from voxhost.api.deps import get_manager
from voxhost.api.errors import error_responses
from voxhost.api.observe import disconnected
from voxhost.audio.encode import PCM_RATE, SPEECH_FORMATS, StreamEncoder
from voxhost.errors import BadRequest, ClientGone, VoxhostError
from voxhost.manager import ModelManager
from voxhost.manager.requests import SpeakRequest, Speech

router = APIRouter(tags=["audio"])
log = logging.getLogger("voxhost.http")


class SpeechRequest(BaseModel):
    model: str | None = Field(
        None, description="TTS model id or alias (tts-1, tts-1-hd); default if omitted."
    )
    input: str = Field(min_length=1, description="The text to speak (the limit is --max-input-chars).")
    voice: str | None = Field(None, description="A voice of the model, or an OpenAI name (alloy, echo, ...).")
    response_format: Literal["mp3", "opus", "aac", "flac", "wav", "pcm"] = "mp3"
    speed: float = Field(1.0, ge=0.25, le=4.0)
    instructions: str | None = Field(
        None, description="Accepted for compatibility; not used by these models."
    )
    stream_format: Literal["audio"] = Field("audio", description="Only raw audio streaming is supported.")
    sample_rate: int | Literal["native"] | None = Field(
        None,
        description="voxhost extension: output rate in Hz, or 'native' for the voice's own rate. Default: "
        "24000 for pcm (as OpenAI documents), the voice's rate for the other formats.",
    )
    language: str | None = Field(None, description="voxhost extension: language for Kokoro (e.g. en-us, ja).")


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
        200: {"content": {content_type: {} for content_type in SPEECH_FORMATS.values()}},
        **error_responses(400, 404, 429, 504),
    },
)
async def speech(
    request: SpeechRequest,
    http_request: Request,
    manager: ModelManager = Depends(get_manager),
) -> StreamingResponse:
    wanted = SpeakRequest(request.input, request.model, request.voice, request.speed, request.language)
    speech = await manager.speak(wanted, gone=disconnected(http_request))
    rate = speech.sample_rate
    encoder = StreamEncoder(request.response_format, rate, _output_rate(request, rate))
    try:
        # The first sentence is awaited before answering, so that a failed model or text it cannot
        # speak is a proper error status rather than a broken stream.
        first = await anext(speech.chunks, None)
    except BaseException:
        await speech.aclose()
        raise
    headers = {"X-Sample-Rate": str(encoder.sample_rate), "X-Voxhost-Model": speech.model}
    return StreamingResponse(_body(speech, first, encoder), media_type=encoder.content_type, headers=headers)


async def _body(speech: Speech, first: np.ndarray | None, encoder: StreamEncoder) -> AsyncIterator[bytes]:
    async with contextlib.aclosing(speech.chunks) as chunks:
        if first is not None:
            yield await asyncio.to_thread(encoder.encode, first)
            try:
                async for chunk in chunks:
                    data = await asyncio.to_thread(encoder.encode, chunk)
                    if data:
                        yield data
            except ClientGone:
                return
            except VoxhostError as exc:
                # the status line is long gone: end the audio cleanly where it got to, and say why
                log.error("speech stream ended early: %s", exc.message)
        yield await asyncio.to_thread(encoder.close)


@router.get("/v1/audio/voices", summary="Voices of the TTS models", responses=error_responses(404))
async def voices(model: str | None = None, manager: ModelManager = Depends(get_manager)) -> dict[str, Any]:
    """The voices each TTS model serves (loading it if needed), with OpenAI voice names mapped onto them."""
    data = [
        {
            "id": v.id, "name": v.id, "language": v.language, **({"gender": v.gender} if v.gender else {}),
            "model": v.model, "sample_rate": v.sample_rate, "aliases": list(v.aliases),
        }
        for v in await manager.voices(model or None)
    ]  # fmt: skip
    return {"object": "list", "data": data}
