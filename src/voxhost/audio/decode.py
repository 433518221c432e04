"""Decode any container/codec PyAV knows into float32 mono at the rate an engine wants."""

from __future__ import annotations

import io
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar, Literal

import av
import numpy as np

from voxhost.audio import g711
from voxhost.errors import AudioTooLong, BadAudio

log = logging.getLogger("voxhost.audio")

SAMPLE_RATE = 16000
Codec = Literal["pcm", "pcmu", "pcma"]  # linear PCM, or G.711 mu-law / A-law
# WAV and FLAC declare everything in their first bytes; skipping FFmpeg's long format probe saves ~6 ms a
# request. Other formats (MP3 with big ID3 tags, MP4 with the index at the end) keep the full probe.
_FAST_PROBE = {"probesize": "32768", "analyzeduration": "0"}


def decode_audio(
    data: bytes,
    sample_rate: int = SAMPLE_RATE,
    max_seconds: float | None = None,
    admit: Callable[[int], None] | None = None,
) -> np.ndarray:
    """Decode an audio file held in memory to float32 mono samples at `sample_rate`.

    Raises BadAudio for empty input, data no demuxer understands, files without an audio stream and
    audio with no samples; AudioTooLong (413) for audio longer than `max_seconds`, before decoding when
    the file declares its duration. Samples go straight into one buffer sized from that duration, so a
    three-hour file is held once, not once in pieces and again joined (`admit`, if given, is told the
    samples the buffer is about to hold in all, before each allocation). A file that breaks off after
    some audio (a truncated or damaged tail) gives the audio before the damage. Blocking: call it off the
    event loop.
    """
    if not data:
        raise BadAudio("the uploaded file is empty", param="file")
    max_samples = None if max_seconds is None else int(max_seconds * sample_rate)
    buffer = _Buffer(admit)
    try:
        options = _FAST_PROBE if data[:4] in (b"RIFF", b"fLaC") else {}
        with av.open(io.BytesIO(data), mode="r", options=options, metadata_errors="ignore") as container:
            if not container.streams.audio:
                raise BadAudio("the uploaded file has no audio stream", param="file")
            stream = container.streams.audio[0]
            declared = _declared_seconds(container, stream, len(data))
            if max_seconds is not None and declared is not None and declared > max_seconds + 1:
                raise _too_long(max_seconds)
            buffer.reserve(int((declared or 0) * sample_rate) + sample_rate)
            resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
            try:
                for frame in container.decode(stream):
                    for out in resampler.resample(frame):
                        buffer.append(out.to_ndarray().reshape(-1))
                    if max_samples is not None and buffer.size > max_samples:
                        raise _too_long(max_seconds)
            except (av.FFmpegError, ValueError, IndexError, EOFError) as exc:
                if buffer.size < sample_rate:
                    raise
                log.warning(
                    "the audio breaks off after %.1fs (%s); using what decoded",
                    buffer.size / sample_rate,
                    exc,
                )
            for out in resampler.resample(None):
                buffer.append(out.to_ndarray().reshape(-1))
    except BadAudio:
        raise
    except (av.FFmpegError, ValueError, IndexError, EOFError) as exc:
        raise BadAudio(f"could not decode the audio file: {exc}", param="file") from None
    audio = buffer.result()
    if audio.size == 0:
        raise BadAudio("the uploaded file contains no audio samples", param="file")
    if not np.isfinite(audio).all():
        raise BadAudio("the audio contains invalid (non-finite) samples", param="file")
    return audio


def _too_long(max_seconds: float | None) -> AudioTooLong:
    return AudioTooLong(f"the audio is longer than the limit of {max_seconds:g}s", param="file")


def _declared_seconds(
    container: av.container.InputContainer, stream: av.audio.stream.AudioStream, size: int
) -> float | None:
    """The duration the file declares (its header or index), if any, but never more than its bytes can
    hold at its bit rate: a WAV written while recording often declares the largest size there is."""
    declared = None
    if stream.duration is not None and stream.time_base is not None:
        declared = float(stream.duration * stream.time_base)
    elif container.duration is not None:
        declared = float(container.duration) / av.time_base
    # PyAV's stream raises AttributeError for a bit rate its codec context does not have (a damaged header)
    bit_rate = getattr(stream, "bit_rate", None) or container.bit_rate
    if declared is not None and bit_rate:
        declared = min(declared, size * 8 / bit_rate)
    return declared


class _Buffer:
    """Samples appended into one growing float32 array (grown by half when a guess was short)."""

    def __init__(self, admit: Callable[[int], None] | None = None) -> None:
        self._data = np.zeros(0, dtype=np.float32)
        self.size = 0
        self._admit = admit

    def reserve(self, samples: int) -> None:
        if samples > len(self._data):
            if self._admit is not None:
                self._admit(samples)
            grown = np.empty(samples, dtype=np.float32)
            grown[: self.size] = self._data[: self.size]
            self._data = grown

    def append(self, chunk: np.ndarray) -> None:
        end = self.size + chunk.size
        if end > len(self._data):
            self.reserve(max(end, len(self._data) * 3 // 2))
        self._data[self.size : end] = chunk
        self.size = end

    def result(self) -> np.ndarray:
        if self.size < len(self._data) * 0.9:  # a guess well off: keep only what is used
            return self._data[: self.size].copy()
        return self._data[: self.size]


def probe_seconds(path: Path) -> float | None:
    """How long the audio in a file is, as its header declares it (see `_declared_seconds`), read
    without decoding: for progress bars, not for the audio's real length. None when the file declares
    none or cannot be read."""
    try:
        with path.open("rb") as handle:
            options = _FAST_PROBE if handle.read(4) in (b"RIFF", b"fLaC") else {}
            handle.seek(0)
            size = os.fstat(handle.fileno()).st_size
            with av.open(handle, mode="r", options=options, metadata_errors="ignore") as container:
                if not container.streams.audio:
                    return None
                return _declared_seconds(container, container.streams.audio[0], size)
    except (OSError, av.FFmpegError, ValueError, IndexError, EOFError):
        return None


class PcmConverter:
    """Convert raw interleaved PCM chunks (as Wyoming and streaming clients send them, linear or G.711) to
    float32 mono at `sample_rate`, keeping the resampler's state across chunks of one stream."""

    SAMPLE_FORMATS: ClassVar[dict[int, str]] = {1: "u8", 2: "s16", 4: "s32"}

    def __init__(
        self, rate: int, width: int, channels: int, sample_rate: int = SAMPLE_RATE, codec: Codec = "pcm"
    ) -> None:
        """`codec` "pcm" is linear PCM of `width` bytes; "pcmu" / "pcma" are G.711 (one byte a sample)."""
        if codec != "pcm" and width != 1:
            raise BadAudio(f"{codec} has one byte a sample, not {width}")
        if width not in self.SAMPLE_FORMATS:
            raise BadAudio(f"unsupported sample width {width} bytes (use 1, 2 or 4)")
        if not 1 <= channels <= 8:
            raise BadAudio(f"unsupported channel count {channels}")
        if not 1000 <= rate <= 384000:
            raise BadAudio(f"unsupported sample rate {rate}")
        self.rate, self.width, self.channels, self.codec = rate, width, channels, codec
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
        if self.codec == "pcm":
            dtype = {1: "u1", 2: "<i2", 4: "<i4"}[self.width]
            samples = np.frombuffer(data[:usable], dtype=dtype).reshape(1, -1)
            sample_format = self.SAMPLE_FORMATS[self.width]
        else:
            samples, sample_format = g711.decode(data[:usable], self.codec).reshape(1, -1), "s16"
        frame = av.AudioFrame.from_ndarray(samples, format=sample_format, layout=self._layout)
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
