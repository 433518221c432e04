"""The VAD skips long runs of digital silence and finds the same speech as on the whole file."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from conftest import Recording, public_domain_text, read_aloud
from voxhost.engines import vad
from voxhost.engines.vad import FRAME, speech_timestamps, vad_options

# the options of every caller: faster-whisper's defaults, the batched path's regions, the diarizer's
# speech, the coverage check's
OPTIONS = [
    {},
    {"max_speech_duration_s": 30, "min_silence_duration_ms": 160},
    {"threshold": 0.4, "min_speech_duration_ms": 150, "min_silence_duration_ms": 250, "speech_pad_ms": 60},
    {"min_silence_duration_ms": 500, "speech_pad_ms": 0},
]


@pytest.fixture(scope="module")
def reading() -> Recording:
    """Eight sentences with pauses of digital silence from 0.3 to 12 s."""
    return read_aloud(public_domain_text()[:8], pauses=(0.3, 12.0), seed=3)


def _run(
    audio: np.ndarray, options: Any, monkeypatch: pytest.MonkeyPatch
) -> tuple[list[tuple[int, int]], int]:
    """The regions, and how many samples the VAD itself was given."""
    from faster_whisper import vad as silero

    original, given = silero.get_speech_timestamps, []

    def counted(audio: np.ndarray, *args: Any, **kwargs: Any) -> Any:
        given.append(len(audio))
        return original(audio, *args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(silero, "get_speech_timestamps", counted)
        found = speech_timestamps(audio, options)
    return found, sum(given)


@pytest.mark.parametrize("asked", OPTIONS)
def test_the_same_regions_for_less_work(
    reading: Recording, asked: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from faster_whisper.vad import get_speech_timestamps

    options = vad_options(None, **asked)
    whole = [(int(r["start"]), int(r["end"])) for r in get_speech_timestamps(reading.audio, options)]
    found, given = _run(reading.audio, options, monkeypatch)
    # Silero's own state differs a little after skipped silence (as it does at its batches' edges on
    # the whole file): a region may start or end a frame apart
    assert len(found) == len(whole), (found, whole)
    assert all(
        abs(a - c) <= FRAME and abs(b - d) <= FRAME for (a, b), (c, d) in zip(found, whole, strict=True)
    )
    assert given < 0.95 * len(reading.audio)  # the longest pauses were left out
    # the control: the pauses at -60 dBFS (a quiet room, not digital silence) are all looked at
    rng = np.random.default_rng(0)
    room = (reading.audio + rng.normal(0, 1e-3, len(reading.audio))).astype(np.float32)
    assert _run(room, options, monkeypatch)[1] == len(room)


def test_dither_is_silence_and_a_quiet_room_is_not() -> None:
    rng = np.random.default_rng(1)
    seconds = 20 * 16000
    dither = rng.integers(-1, 2, seconds).astype(np.float32) / 32768
    room = rng.normal(0, 3e-4, seconds).astype(np.float32)  # about -70 dBFS
    assert vad.silent_frames(dither).all()
    assert not vad.silent_frames(room).any()
    options = vad_options(None)
    kept = vad.sounding(dither, options)
    assert sum(hi - lo for lo, hi in kept) < seconds / 4
    assert vad.sounding(room, options) == [(0, seconds)]
    assert speech_timestamps(np.zeros(0, dtype=np.float32), options) == []
