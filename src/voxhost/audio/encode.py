"""Encode float32 mono audio to common containers with PyAV (no ffmpeg binary needed)."""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

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


# OpenAI's `pcm` is raw signed 16-bit little-endian mono at 24 kHz.
PCM_RATE = 24000
SPEECH_FORMATS: dict[str, str] = {
    "mp3": "audio/mpeg",
    "opus": "audio/ogg",
    "aac": "audio/aac",
    "flac": "audio/flac",
    "wav": "audio/wav",
    "pcm": "audio/pcm",
}


class _Sink:
    """A write-only, non-seekable file for PyAV: muxers then write streamable output."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []

    def write(self, data: bytes) -> int:
        self._parts.append(bytes(data))
        return len(data)

    def take(self) -> bytes:
        data = b"".join(self._parts)
        self._parts.clear()
        return data


def wav_stream_header(sample_rate: int) -> bytes:
    """A 16-bit mono WAV header for a stream of unknown length (sizes set to the maximum, as is usual)."""
    import struct

    return (
        b"RIFF" + struct.pack("<I", 0xFFFFFFFF) + b"WAVE"
        + b"fmt " + struct.pack("<IHHIIHH", 16, 1, 1, sample_rate, sample_rate * 2, 2, 16)
        + b"data" + struct.pack("<I", 0xFFFFFFFF)
    )  # fmt: skip


class StreamEncoder:
    """Encode float32 mono chunks as they come; each `encode` returns the bytes ready so far.

    `wav` and `pcm` are written directly (16-bit); the compressed formats go through a PyAV muxer on a
    non-seekable sink, so the bytes can be sent while later chunks are still being synthesized.
    """

    def __init__(self, fmt: str, sample_rate: int, out_rate: int | None = None) -> None:
        if fmt not in SPEECH_FORMATS:
            raise BadRequest(f"unknown response_format {fmt!r}; choose one of {', '.join(SPEECH_FORMATS)}")
        self.format = fmt
        self.content_type = SPEECH_FORMATS[fmt]
        self._in_rate = sample_rate
        spec = FORMATS["ogg" if fmt == "opus" else fmt] if fmt not in ("pcm",) else FORMATS["wav"]
        self.sample_rate = _pick_rate(out_rate or sample_rate, spec.rates)
        self._header: bytes = b""
        self._container: Any = None
        if fmt in ("wav", "pcm"):
            self._resampler = av.AudioResampler(format="s16", layout="mono", rate=self.sample_rate)
            if fmt == "wav":
                self._header = wav_stream_header(self.sample_rate)
            return
        self._sink = _Sink()
        options = {"page_duration": "100000"} if spec.container == "ogg" else {}
        self._container = av.open(self._sink, mode="w", format=spec.container, options=options)
        stream = self._container.add_stream(spec.codec, rate=self.sample_rate, layout="mono")
        assert isinstance(stream, av.AudioStream)
        self._stream = stream
        self._resampler = av.AudioResampler(format=spec.sample_format, layout="mono", rate=self.sample_rate)

    def _frames(self, chunk: np.ndarray | None) -> list[av.AudioFrame]:
        if chunk is None:
            return list(self._resampler.resample(None))
        samples = np.clip(np.asarray(chunk, dtype=np.float32).reshape(1, -1), -1.0, 1.0)
        frame = av.AudioFrame.from_ndarray(samples, format="flt", layout="mono")
        frame.sample_rate = self._in_rate
        return list(self._resampler.resample(frame))

    def _write(self, frames: list[av.AudioFrame], flush: bool = False) -> bytes:
        if self._container is None:
            header, self._header = self._header, b""
            return header + b"".join(bytes(f.to_ndarray().astype("<i2").tobytes()) for f in frames)
        for frame in frames:
            for packet in self._stream.encode(frame):
                self._container.mux(packet)
        if flush:
            for packet in self._stream.encode(None):
                self._container.mux(packet)
            self._container.close()
        return self._sink.take()

    def encode(self, chunk: np.ndarray) -> bytes:
        return self._write(self._frames(chunk))

    def close(self) -> bytes:
        """The last bytes: buffered samples, codec delay, container trailer."""
        return self._write(self._frames(None), flush=True)
