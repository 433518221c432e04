"""Silero VAD (faster-whisper's) for every engine that looks for speech, with digital silence skipped.

Silero costs the same on every 32 ms of audio, speech or not (about 600x real time on one core): an hour
of a recording that is mostly muted (a meeting's dead air, a file padded with zeros, a device that sends
zeros while the line is quiet) costs as much as an hour of talk. Runs of digital silence (a peak below
2 of 32768, what a 16-bit recording holds when nothing is heard) long enough that the VAD would end a
speech region inside them anyway are left out; the VAD runs on what remains, each piece with a margin of
the silence around it, so that it finds the regions it would find on the whole file (to a frame: its
state after the skipped silence differs a little). After minutes of zeros it starts a region as at a
file's start, where on the whole file its state makes it up to 0.7 s late (bench/vad_silence.py).
Audio with no such run is handed to it as it is.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from voxhost.audio import SAMPLE_RATE
from voxhost.audio.chunks import true_runs
from voxhost.results import VadParameters

FRAME = 512  # Silero's frame at 16 kHz; pieces start on the file's frame grid, as it would see them
SILENT = 2 / 32768  # the peak of digital silence (two steps of 16-bit audio: dither included)
BLOCK = FRAME * 2048  # frames' peaks are found this many samples at a time (bounded extra memory)


def vad_options(vad: VadParameters | None, **defaults: Any) -> Any:
    """faster-whisper's `VadOptions`: its defaults, then `defaults`, then what the request set."""
    from faster_whisper.vad import VadOptions

    asked = {} if vad is None else {
        "threshold": vad.threshold,
        "min_silence_duration_ms": vad.silence_ms,
        "speech_pad_ms": vad.padding_ms,
    }  # fmt: skip
    return VadOptions(**{**defaults, **{name: value for name, value in asked.items() if value is not None}})


def speech_timestamps(audio: np.ndarray, options: Any) -> list[tuple[int, int]]:
    """Where `audio` (16 kHz float32) holds speech by Silero VAD with faster-whisper's `VadOptions`:
    [start, end) sample offsets, in order."""
    from faster_whisper.vad import get_speech_timestamps

    found: list[tuple[int, int]] = []
    for lo, hi in sounding(audio, options):
        regions = get_speech_timestamps(audio[lo:hi], options)
        found += [(lo + int(r["start"]), lo + int(r["end"])) for r in regions]
    return found


def sounding(audio: np.ndarray, options: Any) -> list[tuple[int, int]]:
    """[lo, hi) spans of `audio` that together hold all but its long runs of digital silence. Each span
    keeps a margin of the silence around it, long enough for the VAD to end a speech region in it (its
    shortest silence) and pad it as it would in the whole file; a run goes when it holds a second more
    than the margins on both sides."""
    margin = _frames((options.speech_pad_ms + options.min_silence_duration_ms) / 1000 + 0.5)
    least = 2 * margin + _frames(1.0)
    silent = silent_frames(audio)
    spans: list[tuple[int, int]] = []
    start = 0  # the frame where the current span starts
    for first, end in true_runs(silent):
        if end - first < least:
            continue
        if first > 0:  # (a run at the very start needs no margin before it)
            spans.append((start * FRAME, (first + margin) * FRAME))
        start = end - margin
    spans.append((start * FRAME, len(audio)))
    return spans


def silent_frames(audio: np.ndarray) -> np.ndarray:
    """For each whole frame of `audio`, whether its peak is digital silence."""
    frames = len(audio) // FRAME
    silent = np.empty(frames, dtype=bool)
    for at in range(0, frames, BLOCK // FRAME):
        count = min(BLOCK // FRAME, frames - at)
        block = audio[at * FRAME : (at + count) * FRAME].reshape(count, FRAME)
        silent[at : at + count] = digital_silence(block)
    return silent


def digital_silence(rows: np.ndarray, level: float = SILENT) -> np.ndarray:
    """For each row of `rows` (pieces of audio), whether its peak is under `level`."""
    result: np.ndarray = (rows.max(axis=-1) < level) & (rows.min(axis=-1) > -level)
    return result


def _frames(seconds: float) -> int:
    return int(np.ceil(seconds * SAMPLE_RATE / FRAME))
