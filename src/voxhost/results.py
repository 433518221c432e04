"""Typed requests and results that cross the worker boundary.

They are plain dataclasses of builtins and numpy arrays, so they pickle cheaply over the worker pipe and
mean the same thing to every API front-end.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Task = Literal["transcribe", "translate"]


@dataclass(frozen=True, slots=True)
class TranscribeOptions:
    task: Task = "transcribe"
    language: str | None = None
    prompt: str | None = None
    # None: the Whisper fallback schedule (0.0, 0.2, ... 1.0), which is what OpenAI does for 0.
    temperature: float | None = None
    word_timestamps: bool = False
    beam_size: int | None = None  # None: the server's configured beam size
    vad_filter: bool = False


@dataclass(frozen=True, slots=True)
class Word:
    word: str
    start: float
    end: float
    probability: float


@dataclass(frozen=True, slots=True)
class Segment:
    id: int
    seek: int
    start: float
    end: float
    text: str
    tokens: list[int]
    temperature: float
    avg_logprob: float
    compression_ratio: float
    no_speech_prob: float
    words: list[Word] | None = None


@dataclass(frozen=True, slots=True)
class Transcription:
    text: str
    language: str
    language_probability: float
    duration: float
    task: Task = "transcribe"
    segments: list[Segment] = field(default_factory=list)

    @property
    def words(self) -> list[Word]:
        return [w for s in self.segments for w in (s.words or [])]


ECHO_NO_SPEECH = 0.5  # a repeated segment that Whisper itself thinks is this likely silence is an echo


def is_echo(segment: Segment, previous: Segment | None) -> bool:
    """Whether `segment` is Whisper repeating `previous` over silence: the same words again, where the
    model's own no-speech probability is high. A classic hallucination on trailing silence (and on a
    silent piece prompted with the text before it); a speaker who really repeats a sentence is heard
    with a low no-speech probability and kept."""
    if previous is None or segment.no_speech_prob < ECHO_NO_SPEECH:
        return False
    return _words(segment.text) == _words(previous.text) and bool(_words(segment.text))


def _words(text: str) -> list[str]:
    return "".join(c.lower() if c.isalnum() or c.isspace() else " " for c in text).split()
