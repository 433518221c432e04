"""Encode float32 mono audio to common containers with PyAV (no ffmpeg binary needed)."""

from __future__ import annotations

import io
from dataclasses import dataclass

import av
import numpy as np

from voxhost.errors import BadRequest


@dataclass(frozen=True, slots=True)
class AudioFormat:
    container: str
    codec: str
    content_type: str
    sample_format: str
    rates: tuple[int, ...] = ()  # rates the codec accepts; empty: any


FORMATS: dict[str, AudioFormat] = {
    "wav": AudioFormat("wav", "pcm_s16le", "audio/wav", "s16"),
    "flac": AudioFormat("flac", "flac", "audio/flac", "s16"),
    "mp3": AudioFormat(
        "mp3", "libmp3lame", "audio/mpeg", "s16p", (8000, 16000, 22050, 24000, 32000, 44100, 48000)
    ),
    "opus": AudioFormat("ogg", "libopus", "audio/ogg", "s16", (8000, 12000, 16000, 24000, 48000)),
    "ogg": AudioFormat("ogg", "libopus", "audio/ogg", "s16", (8000, 12000, 16000, 24000, 48000)),
    "aac": AudioFormat("adts", "aac", "audio/aac", "fltp", (8000, 16000, 22050, 24000, 32000, 44100, 48000)),
    "m4a": AudioFormat("ipod", "aac", "audio/mp4", "fltp", (8000, 16000, 22050, 24000, 32000, 44100, 48000)),
    "webm": AudioFormat("webm", "libopus", "audio/webm", "s16", (8000, 12000, 16000, 24000, 48000)),
}


def _pick_rate(rate: int, allowed: tuple[int, ...]) -> int:
    if not allowed or rate in allowed:
        return rate
    higher = [r for r in allowed if r >= rate]
    return min(higher) if higher else max(allowed)


def encode_audio(audio: np.ndarray, sample_rate: int, fmt: str) -> bytes:
    """Encode float32 mono samples in [-1, 1] as a whole file of format `fmt` (see FORMATS)."""
    spec = FORMATS.get(fmt)
    if spec is None:
        raise BadRequest(f"unknown audio format {fmt!r}; choose one of {', '.join(FORMATS)}")
    out_rate = _pick_rate(sample_rate, spec.rates)
    samples = np.clip(np.asarray(audio, dtype=np.float32).reshape(1, -1), -1.0, 1.0)
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format=spec.container) as container:
        stream = container.add_stream(spec.codec, rate=out_rate, layout="mono")
        assert isinstance(stream, av.AudioStream)
        resampler = av.AudioResampler(format=spec.sample_format, layout="mono", rate=out_rate)
        frame = av.AudioFrame.from_ndarray(samples, format="flt", layout="mono")
        frame.sample_rate = sample_rate
        frames = [*resampler.resample(frame), *resampler.resample(None)]
        for out in frames:
            for packet in stream.encode(out):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return buffer.getvalue()
