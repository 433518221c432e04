"""Decode any container/codec PyAV knows into float32 mono at the rate an engine wants."""

from __future__ import annotations

import io
from typing import ClassVar

import av
import numpy as np

from voxhost.errors import BadAudio

SAMPLE_RATE = 16000
# WAV and FLAC declare everything in their first bytes; skipping FFmpeg's long format probe saves ~6 ms a
# request. Other formats (MP3 with big ID3 tags, MP4 with the index at the end) keep the full probe.
_FAST_PROBE = {"probesize": "32768", "analyzeduration": "0"}


def decode_audio(data: bytes, sample_rate: int = SAMPLE_RATE, max_seconds: float | None = None) -> np.ndarray:
    """Decode an audio file held in memory to float32 mono samples at `sample_rate`.

    Raises BadAudio for empty input, data no demuxer understands, files without an audio stream, audio
    with no samples, and audio longer than `max_seconds`. Blocking: call it off the event loop.
    """
    if not data:
        raise BadAudio("the uploaded file is empty", param="file")
    max_samples = None if max_seconds is None else int(max_seconds * sample_rate)
    chunks: list[np.ndarray] = []
    total = 0
    try:
        options = _FAST_PROBE if data[:4] in (b"RIFF", b"fLaC") else {}
        with av.open(io.BytesIO(data), mode="r", options=options, metadata_errors="ignore") as container:
            if not container.streams.audio:
                raise BadAudio("the uploaded file has no audio stream", param="file")
            stream = container.streams.audio[0]
            resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
            for frame in container.decode(stream):
                for out in resampler.resample(frame):
                    chunk = out.to_ndarray().reshape(-1)
                    chunks.append(chunk)
                    total += chunk.size
                if max_samples is not None and total > max_samples:
                    raise BadAudio(f"the audio is longer than the limit of {max_seconds:g}s", param="file")
            for out in resampler.resample(None):
                chunks.append(out.to_ndarray().reshape(-1))
    except BadAudio:
        raise
    except (av.FFmpegError, ValueError, IndexError, EOFError) as exc:
        raise BadAudio(f"could not decode the audio file: {exc}", param="file") from None
    if not chunks:
        raise BadAudio("the uploaded file contains no audio samples", param="file")
    audio = np.concatenate(chunks).astype(np.float32, copy=False)
    if audio.size == 0:
        raise BadAudio("the uploaded file contains no audio samples", param="file")
    if not np.isfinite(audio).all():
        raise BadAudio("the audio contains invalid (non-finite) samples", param="file")
    return audio


class PcmConverter:
    """Convert raw interleaved PCM chunks (as Wyoming and streaming clients send them) to float32 mono at
    `sample_rate`, keeping the resampler's state across chunks of one stream."""

    SAMPLE_FORMATS: ClassVar[dict[int, str]] = {1: "u8", 2: "s16", 4: "s32"}

    def __init__(self, rate: int, width: int, channels: int, sample_rate: int = SAMPLE_RATE) -> None:
        if width not in self.SAMPLE_FORMATS:
            raise BadAudio(f"unsupported sample width {width} bytes (use 1, 2 or 4)")
        if not 1 <= channels <= 8:
            raise BadAudio(f"unsupported channel count {channels}")
        if not 1000 <= rate <= 384000:
            raise BadAudio(f"unsupported sample rate {rate}")
        self.rate, self.width, self.channels = rate, width, channels
        self._frame_bytes = width * channels
        self._layout = {1: "mono", 2: "stereo"}.get(channels, f"{channels}c")
        self._resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
        self._rest = b""

    def convert(self, data: bytes) -> np.ndarray:
        data = self._rest + data
        usable = len(data) - len(data) % self._frame_bytes
        self._rest = data[usable:]
        if not usable:
            return np.zeros(0, dtype=np.float32)
        dtype = {1: "u1", 2: "<i2", 4: "<i4"}[self.width]
        samples = np.frombuffer(data[:usable], dtype=dtype).reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(
            samples, format=self.SAMPLE_FORMATS[self.width], layout=self._layout
        )
        frame.sample_rate = self.rate
        return self._collect(self._resampler.resample(frame))

    def flush(self) -> np.ndarray:
        return self._collect(self._resampler.resample(None))

    @staticmethod
    def _collect(frames: list[av.AudioFrame]) -> np.ndarray:
        if not frames:
            return np.zeros(0, dtype=np.float32)
        return np.concatenate([f.to_ndarray().reshape(-1) for f in frames]).astype(np.float32, copy=False)


def float_to_pcm16(audio: np.ndarray) -> bytes:
    """float32 samples in [-1, 1] as signed 16-bit little-endian PCM."""
    return bytes((np.clip(audio, -1.0, 1.0) * 32767).astype("<i2").tobytes())
