"""No word lost at the end of a window: what no decoded word reaches is decoded again.

Whisper can end a window early (an end-of-text token before the window's last speech; which window
depends on the CPU's float arithmetic), and a batched decode can skip a sentence. Every decode of the
faster-whisper engine is checked against the speech (`audio.chunks.uncovered`), and the speech that came
back as no words is decoded again on its own: sequentially, with timestamps, conditioned on the text
before it (then without it), bounded, else said so in the log. A mixin of `FasterWhisperEngine`: it
needs the engine's one sequential decode (`_decode`) and its tokenizer (`_encode`).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from voxhost.audio.chunks import SpeechMap, shift, uncovered
from voxhost.engines.sentences import Piece
from voxhost.engines.vad import speech_timestamps, vad_options
from voxhost.results import Segment, TokenLogprob, TranscribeOptions, VadParameters, Word

SAMPLE_RATE = 16000
PROMPT_TOKENS = 223  # the text before a window that conditions it, as faster-whisper keeps it
# Speech that comes back as no words is decoded again (`audio.chunks.uncovered`): a stretch of a window's
# speech this long with no word reaching it (a word reaches `COVER_PAD` around itself, as voice
# activity detection pads speech), or, in a sequential decode, speech of at least `MIN_SPEECH` found in
# a gap of at least `GAP_SECONDS` between segments.
COVER_PAD = 0.3
MIN_UNCOVERED = 1.0
GAP_SECONDS = 0.5
MIN_SPEECH = 0.25
# A word reaches no further than a slow speaker takes to say it: `WORD_SECONDS` plus
# `LETTER_SECONDS` a letter, at most `MAX_WORD_SECONDS` (an alignment of text cut short stretches the
# window's last words over speech that was never decoded, and leaves the last of them no time at all).
WORD_SECONDS = 0.5
LETTER_SECONDS = 0.2
MAX_WORD_SECONDS = 2.0
RECOVERIES = 4  # decodes again, at most, of one call's sequential audio or one batched window

log = logging.getLogger("voxhost.engines.faster_whisper")


class WhisperCoverage:
    """The checks and the decodes again; mixed into the engine, which gives the two below."""

    def _decode(
        self,
        audio: np.ndarray,
        options: TranscribeOptions,
        progress: Callable[[float], None] | None = None,
    ) -> tuple[list[tuple[Segment, list[TokenLogprob]]], Any]:
        """One sequential decode: each segment with its tokens' log-probabilities, and the decoder's info."""
        raise NotImplementedError

    def _encode(self, text: str) -> list[int]:
        """The model's text tokens of `text`."""
        raise NotImplementedError

    def _cover_gaps(
        self, audio: np.ndarray, decoded: list[tuple[Segment, list[TokenLogprob]]], options: TranscribeOptions
    ) -> list[tuple[Segment, list[TokenLogprob]]]:
        """A sequential decode with the speech it left out decoded again: where no segment reaches,
        voice activity detection (the request's own, if it set one) looks for speech; from the first
        speech found to the end of its gap, the audio is decoded on its own (`_recover`), and the
        segments go in time order with the rest; again while speech is left without words (at most
        `RECOVERIES` times a call, never twice from the same place)."""
        duration = len(audio) / SAMPLE_RATE
        tried: set[float] = set()
        while len(tried) < RECOVERIES:
            spans = [span for seg, _ in decoded for span in _spans(seg)]
            gaps = uncovered([(0.0, duration)], spans, pad=COVER_PAD, minimum=GAP_SECONDS)
            found = (
                (speech[0], hi) for lo, hi in gaps for speech in self._speech(audio, lo, hi, options.vad)
            )
            start, hi = next(((t, hi) for t, hi in found if round(t, 2) not in tried), (None, 0.0))
            if start is None:
                break
            tried.add(round(start, 2))
            before = "".join(seg.text for seg, _ in decoded if seg.start < start)
            lo = max(0.0, start - COVER_PAD)
            recovered = self._recover(
                audio[round(lo * SAMPLE_RATE) : round(hi * SAMPLE_RATE)], before, options
            )
            moved = shift([seg for seg, _ in recovered], lo, 0, limit=hi - lo)
            again = [(seg, scored) for seg, (_, scored) in zip(moved, recovered, strict=True)]
            decoded = sorted([*decoded, *again], key=lambda item: item[0].start)
        return decoded

    def _speech(
        self, audio: np.ndarray, lo: float, hi: float, vad: VadParameters | None
    ) -> list[tuple[float, float]]:
        """Stretches of at least `MIN_SPEECH` seconds of speech in [lo, hi) seconds of `audio`."""
        start = round(lo * SAMPLE_RATE)
        options = vad_options(vad, min_silence_duration_ms=500, speech_pad_ms=0)
        found = speech_timestamps(audio[start : round(hi * SAMPLE_RATE)], options)
        return [
            ((start + a) / SAMPLE_RATE, (start + b) / SAMPLE_RATE)
            for a, b in found
            if b - a >= MIN_SPEECH * SAMPLE_RATE
        ]

    def _recover(
        self, clip: np.ndarray, before: str, options: TranscribeOptions, words: bool = False
    ) -> list[tuple[Segment, list[TokenLogprob]]]:
        """Speech that came back as no words, decoded again on its own: sequentially, with timestamps,
        conditioned on the text before it, then (if that gives nothing) without it. Segments on the
        clip's own clock. Speech that holds no words both times is said so in the log."""
        context = self._encode(before)[-PROMPT_TOKENS:] if before.strip() else []
        for tokens in [context, []] if context else [[]]:
            again = dataclasses.replace(
                options,
                word_timestamps=words or options.word_timestamps,
                vad_filter=False,
                vad=None,
                context_tokens=tuple(tokens) or None,
                context_text=before.strip() or None if tokens else None,
            )
            decoded, _ = self._decode(clip, again)
            found = [(seg, scored) for seg, scored in decoded if seg.text.strip()]
            if found:
                return found
        log.warning(
            "%.2f s of speech decoded to no words, with and without the text before it",
            len(clip) / SAMPLE_RATE,
        )
        return []

    def _cover_windows(
        self,
        audio: np.ndarray,
        windows: list[list[tuple[int, int]]],
        timeline: SpeechMap,
        pieces: list[list[Piece]],
        options: TranscribeOptions,
    ) -> None:
        """A batch decode with the speech it left out decoded again. A window with speech that no word
        reaches (Whisper ended it early, or skipped a sentence) is decoded again on its own from there
        to its end (`_recover`), its words from there on replaced (an alignment of text cut short
        places words where they were not said); again while speech is left without words (at most
        `RECOVERIES` times a window, each from further on)."""
        for index, window in enumerate(windows):
            regions = [(start / SAMPLE_RATE, end / SAMPLE_RATE) for start, end in window]
            window_end = timeline.to_packed(regions[-1][1]) if regions else 0
            done = -1.0
            for _ in range(RECOVERIES):
                covered = _covered(w for piece in pieces[index] for w in piece.words)
                gaps = uncovered(regions, covered, pad=COVER_PAD, minimum=MIN_UNCOVERED)
                lo = next((start for start, _ in gaps if start > done), None)
                if lo is None:
                    break
                done = lo
                kept = [head for piece in pieces[index] if (head := piece.split(lo)[0]).words]
                earlier = (w for window in pieces[:index] for piece in window for w in piece.words)
                before = "".join(w.word for w in [*earlier, *(w for p in kept for w in p.words)])
                first = timeline.to_packed(lo)
                pieces[index] = kept
                for seg, scored in self._recover(audio[first:window_end], before, options, words=True):
                    at = first / SAMPLE_RATE
                    moved = []
                    for w in seg.words or []:
                        start, end = timeline.word_to_file(at + w.start, at + w.end)
                        moved.append(dataclasses.replace(w, start=start, end=end))
                    pieces[index].append(Piece(moved, scored, seg.avg_logprob, seg.no_speech_prob))


def _reach(word: Word) -> tuple[float, float]:
    """The time a decoded word accounts for: what a slow speaker takes to say it at most (an alignment
    can stretch a window's last words over speech that was never decoded). A word given no time at all
    accounts for none (such a word ends an alignment that ran out of text; said anywhere else, the words
    beside it reach its time)."""
    letters = sum(char.isalnum() for char in word.word)
    longest = min(MAX_WORD_SECONDS, WORD_SECONDS + LETTER_SECONDS * letters)
    return word.start, word.start if word.end <= word.start else min(word.end, word.start + longest)


def _covered(words: Iterable[Word]) -> list[tuple[float, float]]:
    """The times decoded words account for (`_reach`), less the words given none."""
    return [span for span in map(_reach, words) if span[1] > span[0]]


def _spans(segment: Segment) -> list[tuple[float, float]]:
    """The time a decoded segment accounts for: its words' where it has words, else its own (Whisper's
    timestamp tokens, which no alignment stretches)."""
    return _covered(segment.words) if segment.words else [(segment.start, segment.end)]
