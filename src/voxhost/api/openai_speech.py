"""OpenAI's `/v1/audio/speech`, streamed: audio goes out as each sentence is synthesized."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any, Literal

from fastapi import APIRouter, Depends, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from voxhost.api.deps import get_manager
from voxhost.api.errors import error_responses
from voxhost.api.observe import unless_disconnected
from voxhost.audio.encode import PCM_RATE, SPEECH_FORMATS, StreamEncoder
from voxhost.errors import BadRequest, VoxhostError
from voxhost.manager import ModelManager

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
    text = request.input.strip()
    if not text:
        raise BadRequest("input is empty", param="input")
    chunks = manager.synthesize(request.model, text, request.voice, request.speed, request.language)
    try:
        spec, info = await manager.tts_info(request.model)
    except BaseException:
        await chunks.aclose()
        raise
    encoder = StreamEncoder(
        request.response_format, info["sample_rate"], _output_rate(request, info["sample_rate"])
    )
    try:
        # The first sentence is awaited before answering, so that an unknown voice or a failed model
        # is a proper error status rather than a broken stream.
        first = await unless_disconnected(http_request, anext(chunks))
    except StopAsyncIteration:
        first = None
    except BaseException:
        await chunks.aclose()
        raise
    headers = {"X-Sample-Rate": str(encoder.sample_rate), "X-Voxhost-Model": spec.id}
    return StreamingResponse(_body(chunks, first, encoder), media_type=encoder.content_type, headers=headers)


async def _body(chunks: Any, first: Any, encoder: StreamEncoder) -> AsyncIterator[bytes]:
    async with contextlib.aclosing(chunks):
        if first is not None:
            yield await asyncio.to_thread(encoder.encode, first)
            try:
                async for chunk in chunks:
                    data = await asyncio.to_thread(encoder.encode, chunk)
                    if data:
                        yield data
            except VoxhostError as exc:
                # the status line is long gone: end the audio cleanly where it got to, and say why
                log.error("speech stream ended early: %s", exc.message)
        yield await asyncio.to_thread(encoder.close)


@router.get("/v1/audio/voices", summary="Voices of the TTS models", responses=error_responses(404))
async def voices(model: str | None = None, manager: ModelManager = Depends(get_manager)) -> dict[str, Any]:
    """The voices each TTS model serves (loading it if needed), with OpenAI voice names mapped onto them."""
    names = [model] if model else [s.id for s in manager.status() if s.task == "tts"]
    data = []
    for name in names:
        spec, info = await manager.tts_info(name)
        for voice in info["voices"]:
            aliases = [a for a, v in info["voice_aliases"].items() if v == voice["id"]]
            data.append({**voice, "model": spec.id, "sample_rate": info["sample_rate"], "aliases": aliases})
    return {"object": "list", "data": data}
