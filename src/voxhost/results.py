"""Typed requests and results that cross the worker boundary.

They are plain dataclasses of builtins and numpy arrays, so they pickle cheaply over the worker pipe and
mean the same thing to every API front-end.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from voxhost.languages import normalize_language

Task = Literal["transcribe", "translate"]


@dataclass(frozen=True, slots=True)
class VadParameters:
    """How voice activity detection finds the speech that is decoded (OpenAI's `chunking_strategy`);
    a field left None keeps the default of the path that decodes the audio."""

    threshold: float | None = None  # speech probability (Silero VAD) above which a frame is speech
    silence_ms: int | None = None  # a pause at least this long ends a stretch of speech
    padding_ms: int | None = None  # audio kept around each stretch of speech


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
    hotwords: str | None = None  # words to favour (OpenAI's `keywords`), as faster-whisper's `hotwords`
    logprobs: bool = False  # return the output's log-probabilities (OpenAI's `include[]=logprobs`)
    # The languages the audio may be in (OpenAI's `languages`): detection picks among them.
    languages: tuple[str, ...] | None = None
    # Voice activity detection over the whole request (OpenAI's `chunking_strategy`): silence is left
    # out of what is decoded. None: a short file is decoded as one block, a long one as the server's
    # long-file path finds its speech.
    vad: VadParameters | None = None
    # For the pieces of a long file decoded in order: the previous piece's output tokens (timestamp
    # tokens included), which condition this piece as Whisper conditions its own windows, and the text
    # of its last segment (a piece that only repeats it over silence is an echo).
    context_tokens: tuple[int, ...] | None = None
    context_text: str | None = None

    def __post_init__(self) -> None:
        # the one place a requested language is read: a code or English name, any case; None detects
        object.__setattr__(self, "language", normalize_language(self.language))
        if self.languages is not None:
            found = (normalize_language(code) for code in self.languages)
            object.__setattr__(self, "languages", tuple(dict.fromkeys(c for c in found if c)) or None)


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
class TokenLogprob:
    """One output token and its log-probability, as OpenAI's `logprobs` entries: the token's text and
    its UTF-8 bytes (a token may hold part of a character)."""

    token: str
    logprob: float
    bytes: list[int]


@dataclass(frozen=True, slots=True)
class Transcription:
    text: str
    language: str
    language_probability: float
    duration: float
    task: Task = "transcribe"
    segments: list[Segment] = field(default_factory=list)
    logprobs: list[TokenLogprob] | None = None  # when asked for (`TranscribeOptions.logprobs`)

    @property
    def words(self) -> list[Word]:
        return [w for s in self.segments for w in (s.words or [])]


@dataclass(frozen=True, slots=True)
class TranscriptUpdate:
    """Progress of one transcription, in file order: the text decoded since the previous update and how
    far into the audio it reaches. The last update carries the whole result."""

    text: str
    seconds: float
    result: Transcription | None = None
    logprobs: list[TokenLogprob] | None = None  # those of `text`, when they were asked for
    # the segments decoded since the previous update (a long file's; the last update's result holds all)
    segments: list[Segment] = field(default_factory=list)


def is_echo(segment: Segment, previous_text: str | None, has_speech: Callable[[float, float], bool]) -> bool:
    """Whether `segment` is Whisper repeating the segment before it (`previous_text`) over silence: the
    same words again where the audio holds no speech. A classic hallucination on trailing silence (and
    on a silent piece prompted with the text before it). The audio decides, not the model's own
    no-speech probability: a speaker who really repeats a sentence ("yes, okay... yes, okay") is heard
    saying it, however quiet the window around it."""
    if previous_text is None or not _words(segment.text) or _words(segment.text) != _words(previous_text):
        return False
    return not has_speech(segment.start, segment.end)


def _words(text: str) -> list[str]:
    return "".join(c.lower() if c.isalnum() or c.isspace() else " " for c in text).split()
