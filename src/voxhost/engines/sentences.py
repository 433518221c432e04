"""Sentence-sized segments built from word timestamps.

Decoded without timestamp tokens (which on long audio lose words: Whisper skips sentences inside long
timestamp-free stretches, and with timestamp tokens on, the batched decoder drops text), a window comes
back as one piece of text with word times. Subtitles and `verbose_json` want about a sentence per
segment, as sequential decoding gives them, so the words are grouped again: a segment ends after a word
that ends a sentence, at a long pause, at the end of a window, and, failing those, at a clause break or
a hard length limit, so that no cue outlasts what a reader can follow.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from voxhost.results import Segment, TokenLogprob, Word

SENTENCE_END = (".", "?", "!", "…", "。", "？", "！")
CLAUSE_END = (",", ";", ":", "、", "，", "；", "：")
PAUSE_SECONDS = 1.2  # a silence this long between two words ends the segment
CLAUSE_SECONDS = 8.0  # past this length, a clause break ends the segment
MAX_SECONDS = 15.0  # no segment is longer (unless a single word is)


@dataclass(frozen=True, slots=True)
class DecodedWindow:
    """One decoded window: its words on the file's clock and the decoder's figures for it."""

    words: Sequence[Word]
    avg_logprob: float
    no_speech_prob: float
    temperature: float = 0.0


def _ends(word: Word, marks: tuple[str, ...]) -> bool:
    text = word.word.strip().rstrip("\"')]}”’»")
    return text.endswith(marks)


def group_words(words: Sequence[Word]) -> list[list[Word]]:
    """Consecutive words grouped into sentence-sized runs (see the module's rules)."""
    groups: list[list[Word]] = []
    current: list[Word] = []
    for index, word in enumerate(words):
        following = words[index + 1] if index + 1 < len(words) else None
        if current and word.end - current[0].start > MAX_SECONDS:
            groups.append(current)
            current = []
        current.append(word)
        length = word.end - current[0].start
        if following is None:
            break
        if (
            _ends(word, SENTENCE_END)
            or following.start - word.end >= PAUSE_SECONDS
            or (length >= CLAUSE_SECONDS and _ends(word, CLAUSE_END))
        ):
            groups.append(current)
            current = []
    if current:
        groups.append(current)
    return groups


def compression_ratio(text: str) -> float:
    data = text.encode("utf-8")
    return len(data) / len(zlib.compress(data)) if data else 0.0


def sentence_segments(
    windows: Sequence[DecodedWindow],
    encode: Callable[[str], list[int]],
    *,
    first_id: int = 0,
    frames_per_second: int = 100,
) -> list[Segment]:
    """Segments of about a sentence from decoded windows; a segment never spans two windows. `encode`
    gives the model's text tokens of a segment's text (its `tokens`)."""
    segments: list[Segment] = []
    for window in windows:
        for group in group_words(window.words):
            text = "".join(w.word for w in group)
            if not text.strip():
                continue
            segments.append(
                Segment(
                    id=first_id + len(segments),
                    seek=round(group[0].start * frames_per_second),
                    start=group[0].start,
                    end=max(group[-1].end, group[0].start),
                    text=text,
                    tokens=encode(text),
                    temperature=window.temperature,
                    avg_logprob=window.avg_logprob,
                    compression_ratio=compression_ratio(text),
                    no_speech_prob=window.no_speech_prob,
                    words=list(group),
                )
            )
    return segments


@dataclass(slots=True)
class Piece:
    """One decoded stretch of a window: its words on the file's clock, in order, and the
    log-probabilities of its tokens (empty unless asked for)."""

    words: list[Word]
    logprobs: list[TokenLogprob]
    avg_logprob: float
    no_speech_prob: float

    def split(self, at: float) -> tuple[Piece, Piece]:
        """The words before `at` and the rest; the log-probabilities cut where the earlier words'
        text ends (tokens spell the words' text byte for byte)."""
        head = [w for w in self.words if w.start < at]
        size = len("".join(w.word for w in head).encode("utf-8"))
        cut, seen = 0, 0
        while cut < len(self.logprobs) and seen < size:
            seen += len(self.logprobs[cut].bytes)
            cut += 1
        return (
            Piece(head, self.logprobs[:cut], self.avg_logprob, self.no_speech_prob),
            Piece(self.words[len(head) :], self.logprobs[cut:], self.avg_logprob, self.no_speech_prob),
        )
