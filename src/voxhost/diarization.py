"""Who spoke when: the typed options and result of speaker diarization, and how a transcript's words
are given their speakers.

Plain dataclasses (they cross the worker pipe). A diarization is a list of speaker turns on the file's
clock; `attribute` splits a transcription's segments where the speaker changes, giving each word the
speaker whose turn covers most of it. Speakers are labelled `A`, `B`, ... in order of first speech, or
by the name of the known speaker (`known_speaker_names[]`) their voice matched.
"""

from __future__ import annotations

import string
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from voxhost.results import Segment, Transcription, Word


@dataclass(frozen=True, slots=True)
class KnownSpeaker:
    """A speaker named by the client, with a short sample of their voice (16 kHz float32)."""

    name: str
    audio: np.ndarray
    # The voice's embedding when it is known already (an enrolled person: `--speakers`); else the
    # model embeds `audio`.
    vector: np.ndarray | None = None


@dataclass(frozen=True, slots=True)
class DiarizeOptions:
    num_speakers: int | None = None  # exactly this many (when told)
    min_speakers: int | None = None
    max_speakers: int | None = None
    known: tuple[KnownSpeaker, ...] = ()
    threshold: float | None = None  # cosine similarity of one speaker (None: the model's own)
    # speaker segmentation (overlaps, changes without a pause) or 1.5 s windows (None: the model's own)
    segmentation: bool | None = None


@dataclass(frozen=True, slots=True)
class SpeakerTurn:
    start: float
    end: float
    speaker: str


@dataclass(frozen=True, slots=True)
class Diarization:
    turns: list[SpeakerTurn]
    duration: float
    speakers: list[str] = field(default_factory=list)  # in order of first speech


def letter(index: int) -> str:
    """`A`, `B`, ... `Z`, `AA`, `AB`, ...: the label of the index-th speaker."""
    letters = string.ascii_uppercase
    label = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        label = letters[rest] + label
    return label


def speaker_at(turns: list[SpeakerTurn], start: float, end: float) -> str | None:
    """The speaker whose turns cover most of [start, end); for a span no turn covers, the nearest turn's
    (a word the VAD trimmed still belongs to someone)."""
    if not turns:
        return None
    covered: dict[str, float] = {}
    for turn in turns:
        overlap = min(end, turn.end) - max(start, turn.start)
        if overlap > 0:
            covered[turn.speaker] = covered.get(turn.speaker, 0.0) + overlap
    if covered:
        return max(covered, key=lambda s: covered[s])
    middle = (start + end) / 2
    nearest = min(
        turns,
        key=lambda t: 0.0 if t.start <= middle <= t.end else min(abs(t.start - middle), abs(t.end - middle)),
    )
    return nearest.speaker


@dataclass(frozen=True, slots=True)
class SpeakerSegment:
    """A stretch of one speaker's words: the diarized transcript's unit."""

    id: int
    start: float
    end: float
    speaker: str
    text: str
    words: list[Word] | None = None
    segment: Segment | None = None  # the transcription segment it comes from (for verbose fields)


@dataclass(frozen=True, slots=True)
class DiarizedTranscription:
    """A transcription with its speakers: the turns, and the transcript cut into speaker segments."""

    transcription: Transcription
    diarization: Diarization
    segments: list[SpeakerSegment]


@dataclass(frozen=True, slots=True)
class DiarizedUpdate:
    """Progress of a diarized transcription, in file order: the text decoded since the previous update
    and how far into the audio it reaches (as `TranscriptUpdate`), and the speaker segments settled
    since the previous update (none until the speakers are known). The last update carries the whole
    result."""

    text: str
    seconds: float
    segments: list[SpeakerSegment]
    result: DiarizedTranscription | None = None


def attribute(transcription: Transcription, diarization: Diarization) -> list[SpeakerSegment]:
    """The transcription's segments split where the speaker changes. With word timestamps each word
    goes to the speaker covering most of it; without, each segment to the speaker covering most of it."""
    return attribute_segments(transcription.segments, diarization.turns)


def attribute_segments(
    segments: Sequence[Segment], turns: list[SpeakerTurn], first_id: int = 0
) -> list[SpeakerSegment]:
    """`attribute` for some of a transcription's segments (those decoded so far, in a stream): the
    speaker segments made of them, numbered from `first_id`."""
    out: list[SpeakerSegment] = []
    for segment in segments:
        words = segment.words or []
        if not words:
            speaker = speaker_at(turns, segment.start, segment.end) or letter(0)
            index, text = first_id + len(out), segment.text.strip()
            out.append(SpeakerSegment(index, segment.start, segment.end, speaker, text, None, segment))
            continue
        run: list[Word] = []
        run_speaker: str | None = None
        for word in words:
            speaker = speaker_at(turns, word.start, word.end) or letter(0)
            if run and speaker != run_speaker:
                out.append(_run(first_id + len(out), run, run_speaker or speaker, segment))
                run = []
            run.append(word)
            run_speaker = speaker
        if run:
            out.append(_run(first_id + len(out), run, run_speaker or letter(0), segment))
    return out


def _run(index: int, words: list[Word], speaker: str, segment: Segment) -> SpeakerSegment:
    text = "".join(w.word for w in words).strip()
    return SpeakerSegment(index, words[0].start, words[-1].end, speaker, text, list(words), segment)


def speaker_turns(segments: Iterable[Mapping[str, Any]]) -> list[SpeakerTurn]:
    """Who spoke when, from the segments of a `diarized_json` answer (each speaker's run of segments
    one turn): the turns of a transcript diarized elsewhere (a server's, a job's)."""
    turns: list[SpeakerTurn] = []
    for segment in segments:
        start, end, speaker = float(segment["start"]), float(segment["end"]), str(segment["speaker"])
        if turns and turns[-1].speaker == speaker:
            turns[-1] = SpeakerTurn(turns[-1].start, end, speaker)
        else:
            turns.append(SpeakerTurn(start, end, speaker))
    return turns


def rttm(diarization: Diarization, file_id: str) -> str:
    """The turns as RTTM lines (`SPEAKER file 1 start duration <NA> <NA> speaker <NA> <NA>`), the format
    diarization scoring tools read."""
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in file_id) or "audio"
    return "".join(
        f"SPEAKER {safe} 1 {t.start:.3f} {t.end - t.start:.3f} <NA> <NA> {t.speaker} <NA> <NA>\n"
        for t in diarization.turns
    )
