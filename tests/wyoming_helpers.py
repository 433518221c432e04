"""Wyoming client helpers the tests share: speech as PCM in any format, a whole transcription, and
reading events until an answer (or an error) arrives."""

from __future__ import annotations

import asyncio

import numpy as np
from wyoming.asr import Transcribe
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.client import AsyncClient
from wyoming.event import Event

from conftest import Speech
from voxhost.audio.decode import PcmConverter, float_to_pcm16

TIMEOUT = 120  # seconds to wait for any one answer


async def events_until(client: AsyncClient, last: str) -> list[Event]:
    events: list[Event] = []
    while True:
        event = await asyncio.wait_for(client.read_event(), TIMEOUT)
        assert event is not None, f"connection closed; got {[e.type for e in events]}"
        events.append(event)
        if event.type in (last, "error"):
            return events


def pcm_of(speech: Speech, rate: int, width: int = 2, channels: int = 1) -> bytes:
    """The speech as interleaved PCM in the given format."""
    converter = PcmConverter(speech.sample_rate, 2, 1, sample_rate=rate)
    mono = np.concatenate([converter.convert(float_to_pcm16(speech.audio)), converter.flush()])
    frames = np.repeat(mono[:, None], channels, axis=1).reshape(-1)
    if width == 1:
        return bytes((np.clip(frames, -1, 1) * 127 + 128).astype("u1").tobytes())
    if width == 4:
        # in float64: float32 rounds 2**31 - 1 up to 2**31, which overflows int32
        return bytes((np.clip(frames, -1, 1).astype(np.float64) * (2**31 - 1)).astype("<i4").tobytes())
    return float_to_pcm16(frames)


async def transcribe(
    uri: str, pcm: bytes, rate: int, width: int, channels: int, model: str | None = None
) -> list[Event]:
    async with AsyncClient.from_uri(uri) as client:
        await client.write_event(Transcribe(name=model, language="en").event())
        await client.write_event(AudioStart(rate=rate, width=width, channels=channels).event())
        step = rate * width * channels // 10  # 100 ms chunks
        for i in range(0, len(pcm), step):
            await client.write_event(
                AudioChunk(rate=rate, width=width, channels=channels, audio=pcm[i : i + step]).event()
            )
        await client.write_event(AudioStop().event())
        return await events_until(client, "transcript")
