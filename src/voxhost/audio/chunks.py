"""Long audio in pieces: where to cut, how to group speech into decode windows, and how to put the
results back together on the file's clock.

A long file would hold an inference slot for as long as its whole transcription takes, and every live
stream and short request behind it would wait. So a long file is always worked on in bounded calls, each
a separate job for the scheduler, and other requests get their turn between them. Two ways:

- **batched** (the default): voice activity detection finds the speech; speech regions are packed into
  windows of at most 30 s (Whisper's input), silence left out; a handful of windows is decoded together
  in one call. Windows are independent, so calls may run side by side on idle slots.
- **sequential**: the file is cut at pauses into pieces of about `chunk_seconds`, decoded in order, each
  conditioned on the previous piece's tokens, as Whisper does between its own 30-second windows.

Everything here is plain arithmetic on sample offsets; the engines do the decoding.
"""

from __future__ import annotations

import bisect
import dataclasses
import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from voxhost.results import Segment, TokenLogprob, Transcription, TranscriptUpdate

SAMPLE_RATE = 16000
WINDOW_SECONDS = 30.0  # Whisper's input length: one window of speech
_FRAME = 320  # 20 ms energy frames
_SEARCH = 0.3  # look for the pause in the last 30% of each chunk
# how far past the join of two regions a word's end may be decoded and still end before the pause
# (Whisper's word times are 20 ms steps: an end one step late must not reach over hours of silence)
JOIN_SLACK = 0.2

Region = tuple[int, int]  # [start, end) in samples on the file's clock


def split_points(audio: np.ndarray, chunk_seconds: float, sample_rate: int = SAMPLE_RATE) -> list[int]:
    """Sample offsets where chunks start: [0, ...], each chunk at most `chunk_seconds` long and cut at
    the quietest 100 ms in the last 30% of its span."""
    size = len(audio)
    limit = int(chunk_seconds * sample_rate)
    if limit <= 0 or size <= limit:
        return [0]
    starts = [0]
    start = 0
    while size - start > limit:
        lo = start + int(limit * (1 - _SEARCH))
        hi = start + limit
        cut = _quietest(audio, lo, hi)
        starts.append(cut)
        start = cut
    return starts


def spans(audio: np.ndarray, chunk_seconds: float, sample_rate: int = SAMPLE_RATE) -> list[Region]:
    """The file as consecutive [start, end) spans of at most `chunk_seconds`, cut at pauses."""
    bounds = [*split_points(audio, chunk_seconds, sample_rate), len(audio)]
    return list(itertools.pairwise(bounds))


def true_runs(flags: np.ndarray) -> list[Region]:
    """[start, end) index ranges where `flags` (booleans) are true, in order."""
    edges = np.flatnonzero(np.diff(np.concatenate(([0], flags.astype(np.int8), [0]))))
    return list(zip(edges[0::2].tolist(), edges[1::2].tolist(), strict=True))


def _quietest(audio: np.ndarray, lo: int, hi: int) -> int:
    """Where to cut in [lo, hi): the middle of the longest quiet stretch (30 dB under the span's loud
    frames), so a cut falls in the pause between sentences rather than at a comma's short breath;
    without one, the centre of the quietest 100 ms."""
    span = audio[lo:hi].astype(np.float32)
    frames = len(span) // _FRAME
    if frames < 5:
        return hi
    energy = np.square(span[: frames * _FRAME]).reshape(frames, _FRAME).mean(axis=1)
    quiet = energy <= max(float(np.percentile(energy, 90)) * 1e-3, 1e-10)
    runs = np.array(true_runs(quiet), dtype=np.int64).reshape(-1, 2)  # runs of quiet frames: [start, end)
    starts, ends = runs[:, 0], runs[:, 1]
    if len(starts):
        longest = int(np.argmax((ends - starts)[::-1]))  # the last of the longest: pieces stay long
        index = len(starts) - 1 - longest
        if ends[index] - starts[index] >= 5:
            return lo + int((starts[index] + ends[index]) // 2) * _FRAME
    smooth = np.convolve(energy, np.ones(5) / 5, mode="valid")  # 100 ms windows
    best = int(np.argmin(smooth))
    return lo + (best + 2) * _FRAME + _FRAME // 2


# --- batched: speech regions packed into windows -------------------------------------------------
def pack_windows(
    regions: Iterable[Region], window_seconds: float = WINDOW_SECONDS, sample_rate: int = SAMPLE_RATE
) -> list[list[Region]]:
    """Speech regions (in order) packed into windows of at most `window_seconds` of speech each, as
    faster-whisper's batched pipeline packs them: a region that would overflow the window starts the
    next one. A region longer than a window (voice activity detection splits them at that length) is
    a window of its own."""
    limit = int(window_seconds * sample_rate)
    windows: list[list[Region]] = []
    current: list[Region] = []
    size = 0
    for start, end in regions:
        if end <= start:
            continue
        if current and size + (end - start) > limit:
            windows.append(current)
            current, size = [], 0
        current.append((start, end))
        size += end - start
    if current:
        windows.append(current)
    return windows


def speech_audio(audio: np.ndarray, windows: Sequence[list[Region]]) -> np.ndarray:
    """The speech samples of `windows`, back to back: what a decode call sends to the worker (only this
    batch's speech crosses the pipe, never the whole file)."""
    parts = [audio[start:end] for window in windows for start, end in window]
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.float32)


class SpeechMap:
    """Times on the clock of speech placed back to back (silence left out) mapped to the file's clock."""

    def __init__(self, regions: Sequence[Region], sample_rate: int = SAMPLE_RATE) -> None:
        self._rate = sample_rate
        self._packed_starts: list[int] = []  # where each region begins in the packed audio
        self._file_starts: list[int] = []
        self._lengths: list[int] = []
        packed = 0
        for start, end in regions:
            self._packed_starts.append(packed)
            self._file_starts.append(start)
            self._lengths.append(end - start)
            packed += end - start
        self.packed_samples = packed

    def to_file(self, seconds: float, *, is_end: bool = False) -> float:
        """The file time of `seconds` on the packed clock. An end that falls exactly on the join of two
        regions belongs to the earlier one (a word ends before the pause, not after it)."""
        if not self._lengths:
            return seconds
        sample = round(seconds * self._rate)
        index = bisect.bisect_right(self._packed_starts, sample) - 1
        if is_end and index > 0 and sample == self._packed_starts[index]:
            index -= 1
        index = max(0, min(index, len(self._lengths) - 1))
        into = min(max(sample - self._packed_starts[index], 0), self._lengths[index])
        return (self._file_starts[index] + into) / self._rate

    def word_to_file(self, start: float, end: float) -> tuple[float, float]:
        """A word's start and end on the packed clock, on the file's clock. An end decoded less than
        `JOIN_SLACK` past the end of the start's region is that region's end: the word ended before
        the pause that was left out there, however long."""
        first = self.to_file(start)
        index = bisect.bisect_right(self._packed_starts, round(start * self._rate)) - 1
        if 0 <= index < len(self._lengths):
            region_end = (self._packed_starts[index] + self._lengths[index]) / self._rate
            if region_end <= end < region_end + JOIN_SLACK:
                return first, (self._file_starts[index] + self._lengths[index]) / self._rate
        return first, self.to_file(end, is_end=True)

    def to_packed(self, seconds: float) -> int:
        """The sample of the packed audio that holds the file time `seconds` (a time in a pause is
        taken to the nearest edge of the region before it)."""
        if not self._lengths:
            return round(seconds * self._rate)
        sample = round(seconds * self._rate)
        index = max(0, min(bisect.bisect_right(self._file_starts, sample) - 1, len(self._lengths) - 1))
        into = min(max(sample - self._file_starts[index], 0), self._lengths[index])
        return self._packed_starts[index] + into


# --- putting results back together ---------------------------------------------------------------
def shift(
    segments: Sequence[Segment], offset: float, first_id: int, limit: float | None = None
) -> list[Segment]:
    """Segments on the whole file's clock (moved by `offset` seconds), numbered from `first_id`. With
    `limit` (the piece's length), no time goes past the piece's end: Whisper sometimes gives a piece's
    last segment an end in the padding after the audio."""

    def clock(t: float) -> float:
        return offset + (min(t, limit) if limit is not None else t)

    moved = []
    for index, seg in enumerate(segments):
        words = None
        if seg.words is not None:
            words = [dataclasses.replace(w, start=clock(w.start), end=clock(w.end)) for w in seg.words]
        moved.append(
            dataclasses.replace(
                seg,
                id=first_id + index,
                seek=seg.seek + round(offset * 100),
                start=clock(seg.start),
                end=clock(seg.end),
                words=words,
            )
        )
    return moved


@dataclass
class Assembler:
    """Collects the results of a long file's calls, in file order, into one transcription. Each piece's
    segments are renumbered; `since` gives what was added since the last look (stream deltas)."""

    duration: float
    segments: list[Segment] = dataclasses.field(default_factory=list)
    first: Transcription | None = None
    logprobs: list[TokenLogprob] | None = None  # when the pieces have them
    _told: int = 0
    _told_logprobs: int = 0

    def add(self, result: Transcription, offset: float = 0.0) -> None:
        if self.first is None:
            self.first = result
        self.segments.extend(shift(result.segments, offset, len(self.segments)))
        if result.logprobs is not None:
            self.logprobs = [*(self.logprobs or []), *result.logprobs]

    def segments_since(self) -> list[Segment]:
        """The segments added since the previous call."""
        new = self.segments[self._told :]
        self._told = len(self.segments)
        return new

    def since(self, seconds: float) -> TranscriptUpdate:
        """An update with the segments, their text (and log-probabilities) added since the previous
        one, `seconds` into the file."""
        logprobs = None
        if self.logprobs is not None:
            logprobs = self.logprobs[self._told_logprobs :]
            self._told_logprobs = len(self.logprobs)
        new = self.segments_since()
        return TranscriptUpdate("".join(s.text for s in new), seconds, logprobs=logprobs, segments=new)

    def result(self, task: str = "transcribe", language: str = "en") -> Transcription:
        first = self.first
        return Transcription(
            text="".join(s.text for s in self.segments).strip(),
            language=first.language if first else language,
            language_probability=first.language_probability if first else 0.0,
            duration=self.duration,
            task=first.task if first else task,  # type: ignore[arg-type]
            segments=list(self.segments),
            logprobs=self.logprobs,
        )


def context_tokens(segments: Sequence[Segment]) -> tuple[int, ...] | None:
    """The tokens that condition the next piece: the previous piece's own output, timestamp tokens
    included, as Whisper conditions each 30-second window on the one before. None after a decode that
    needed a high temperature (Whisper resets its prompt then, so one bad window does not spread)."""
    if not segments or any(s.temperature > 0.5 for s in segments):
        return None
    tokens = tuple(t for s in segments for t in s.tokens)
    return tokens or None


# --- coverage: every stretch of speech reached by decoded words -----------------------------------
Span = tuple[float, float]  # [start, end) in seconds


def uncovered(regions: Iterable[Span], covered: Iterable[Span], *, pad: float, minimum: float) -> list[Span]:
    """The parts of `regions` (speech, in seconds) that no `covered` span (decoded words or segments),
    widened by `pad` on each side, reaches; only parts at least `minimum` seconds long. Whisper can end
    a window early (an end-of-text token before its last speech): what this returns is speech that
    came back as no words."""
    reach = sorted((start - pad, end + pad) for start, end in covered if end >= start)
    merged: list[list[float]] = []
    for start, end in reach:
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    found: list[Span] = []
    for start, end in regions:
        at = start
        for lo, hi in merged:
            if hi <= at:
                continue
            if lo >= end:
                break
            if lo - at >= minimum:
                found.append((at, lo))
            at = max(at, hi)
        if end - at >= minimum:
            found.append((at, end))
    return found
