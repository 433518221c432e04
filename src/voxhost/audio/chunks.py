"""Long audio in pieces: split at pauses, transcribe piece by piece, put the results back together.

A long file would hold an inference slot for as long as its whole transcription takes, and every live
stream and short request behind it would wait. Cut into pieces of at most about `chunk_seconds`, each
piece is a separate job for the scheduler, so other requests get their turn between pieces. Cuts go at
the quietest moment near the target length (a pause between words), never mid-word when a pause exists;
each piece is decoded with the previous piece's text as its prompt, as Whisper does between its own
30-second windows.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from voxhost.results import Segment, Transcription, is_echo

SAMPLE_RATE = 16000
_FRAME = 320  # 20 ms energy frames
_SEARCH = 0.3  # look for the pause in the last 30% of each chunk


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


def _quietest(audio: np.ndarray, lo: int, hi: int) -> int:
    """The sample offset in [lo, hi) at the centre of the quietest 100 ms."""
    span = audio[lo:hi].astype(np.float32)
    frames = len(span) // _FRAME
    if frames < 5:
        return hi
    energy = np.square(span[: frames * _FRAME]).reshape(frames, _FRAME).mean(axis=1)
    smooth = np.convolve(energy, np.ones(5) / 5, mode="valid")  # 100 ms windows
    best = int(np.argmin(smooth))
    return lo + (best + 2) * _FRAME + _FRAME // 2


def shift(result: Transcription, offset: float, first_id: int) -> list[Segment]:
    """A piece's segments on the whole file's clock, numbered from `first_id`."""
    segments = []
    for index, seg in enumerate(result.segments):
        words = None
        if seg.words is not None:
            words = [dataclasses.replace(w, start=w.start + offset, end=w.end + offset) for w in seg.words]
        segments.append(
            dataclasses.replace(
                seg,
                id=first_id + index,
                seek=seg.seek + round(offset * 100),
                start=seg.start + offset,
                end=seg.end + offset,
                words=words,
            )
        )
    return segments


def merge(pieces: list[tuple[float, Transcription]], duration: float) -> Transcription:
    """One transcription from pieces given as (offset in seconds, result)."""
    segments: list[Segment] = []
    for offset, result in pieces:
        own = result.segments
        if own and segments and is_echo(own[0], segments[-1]):  # a silent piece repeating its prompt
            own = own[1:]
        segments.extend(shift(dataclasses.replace(result, segments=own), offset, len(segments)))
    first = pieces[0][1]
    return Transcription(
        text="".join(s.text for s in segments).strip(),
        language=first.language,
        language_probability=first.language_probability,
        duration=duration,
        task=first.task,
        segments=segments,
    )


def prompt_from(text: str, limit: int = 200) -> str | None:
    """The tail of the text so far, cut at a word boundary, as the next piece's prompt."""
    text = text.strip()
    if not text:
        return None
    if len(text) <= limit:
        return text
    tail = text[-limit:]
    return tail[tail.find(" ") + 1 :] if " " in tail else tail
