"""Decode any container/codec PyAV knows into float32 mono at the rate an engine wants."""

from __future__ import annotations

import io

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
