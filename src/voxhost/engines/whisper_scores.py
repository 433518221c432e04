"""Token log-probabilities for faster-whisper (OpenAI's `include[]=logprobs`): CTranslate2's beam search
gives no per-token scores, but the word-timestamp pass aligns each window's text tokens with the audio
and gives each token's probability; these classes keep them for the transcriptions that ask."""

from __future__ import annotations

import contextlib
import functools
import math
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class Run:
    """The text tokens of one aligned window and their probabilities."""

    tokens: list[int]
    probabilities: list[float]


@dataclass(slots=True)
class Scores:
    """The aligned windows of one transcription, in decoding order, read segment by segment."""

    runs: list[Run] = field(default_factory=list)
    _run: int = 0
    _at: int = 0

    def take(self, tokens: list[int]) -> list[float] | None:
        """The log-probabilities of a segment's text tokens: the next place they occur in the windows
        aligned so far (segments come in order; each is a stretch of its window's tokens)."""
        if not tokens:
            return []
        run, at = self._run, self._at
        while run < len(self.runs):
            found = self.runs[run]
            for start in range(at, len(found.tokens) - len(tokens) + 1):
                if found.tokens[start : start + len(tokens)] == tokens:
                    self._run, self._at = run, start + len(tokens)
                    chosen = found.probabilities[start : start + len(tokens)]
                    return [math.log(max(p, 1e-30)) for p in chosen]
            run, at = run + 1, 0
        return None


class AlignmentScores:
    """faster-whisper's CTranslate2 model with every call passed through, and `align`'s token
    probabilities kept for the transcriptions that ask for log-probabilities (on their thread).

    Word timestamps align each decoded window's text tokens with the audio (CTranslate2's `align`): a
    pass of the decoder over those tokens, which gives the probability of each one given the audio
    and the tokens before it in the window (faster-whisper averages them into word probabilities).
    CTranslate2's beam search returns no per-token scores, so these are the tokens' log-probabilities."""

    def __init__(self, model: Any) -> None:
        self._model = model
        self._local = threading.local()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._model, name)

    def align(
        self, features: Any, start_sequence: Any, text_tokens: Any, num_frames: Any, **kwargs: Any
    ) -> Any:
        results = self._model.align(features, start_sequence, text_tokens, num_frames, **kwargs)
        scores: Scores | None = getattr(self._local, "scores", None)
        if scores is not None:
            for tokens, result in zip(text_tokens, results, strict=False):
                probabilities = [float(p) for p in result.text_token_probs][: len(tokens)]
                scores.runs.append(Run([int(t) for t in tokens], probabilities))
        return results

    @contextlib.contextmanager
    def recording(self, wanted: bool) -> Iterator[Scores | None]:
        """The windows aligned on this thread while in the block (None when not `wanted`)."""
        if not wanted:
            yield None
            return
        scores = Scores()
        self._local.scores = scores
        try:
            yield scores
        finally:
            self._local.scores = None


@functools.cache
def byte_decoder() -> dict[str, int]:
    """The characters of GPT-2's byte-level alphabet (Whisper's tokenizer spells every byte as one
    printable character) back to their bytes."""
    printable = [
        *range(ord("!"), ord("~") + 1),
        *range(ord("¡"), ord("¬") + 1),
        *range(ord("®"), ord("ÿ") + 1),
    ]
    chars = list(printable)
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            chars.append(256 + extra)
            extra += 1
    return {chr(char): byte for byte, char in zip(printable, chars, strict=True)}
