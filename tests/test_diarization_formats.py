"""How a transcript's words get their speakers, and the diarized formats (vtt voices, RTTM), on
hand-made results: the HTTP tests (tests/api/test_diarization.py) cover the real models."""

from __future__ import annotations

from voxhost.diarization import (
    Diarization,
    DiarizedTranscription,
    DiarizedUpdate,
    SpeakerTurn,
    attribute,
    attribute_segments,
    letter,
    rttm,
)
from voxhost.results import Segment, Transcription, Word
from voxhost.speaker_formats import render_diarized, stream_events


def _result() -> DiarizedTranscription:
    words = [Word(" Hi", 0.0, 0.4, 1.0), Word(" there.", 0.4, 0.9, 1.0), Word(" Hello!", 1.3, 1.9, 1.0)]
    segment = Segment(0, 0, 0.0, 1.9, " Hi there. Hello!", [1, 2, 3], 0.0, -0.1, 1.0, 0.0, words)
    transcription = Transcription("Hi there. Hello!", "en", 1.0, 2.5, segments=[segment])
    turns = [SpeakerTurn(0.0, 1.0, "A"), SpeakerTurn(1.2, 2.0, "Ann")]
    diarization = Diarization(turns, 2.5, ["A", "Ann"])
    return DiarizedTranscription(transcription, diarization, attribute(transcription, diarization))


def test_a_segment_is_split_where_the_speaker_changes() -> None:
    result = _result()
    assert [(s.speaker, s.text, s.start, s.end) for s in result.segments] == [
        ("A", "Hi there.", 0.0, 0.9),
        ("Ann", "Hello!", 1.3, 1.9),
    ]
    # a stream's segments, attributed as they are decoded, number on from those before
    later = attribute_segments(result.transcription.segments, result.diarization.turns, first_id=5)
    assert [(s.id, s.speaker) for s in later] == [(5, "A"), (6, "Ann")]


def test_diarized_formats() -> None:
    result = _result()
    vtt = render_diarized(result, "vtt")
    assert (
        vtt == "WEBVTT\n\n00:00:00.000 --> 00:00:00.900\n<v A>Hi there.</v>\n\n"
        "00:00:01.300 --> 00:00:01.900\n<v Ann>Hello!</v>\n"
    )
    srt = render_diarized(result, "srt")
    assert srt.startswith("1\n00:00:00,000 --> 00:00:00,900\n[A] Hi there.\n")
    first, rest = result.segments[:1], result.segments[1:]
    events = stream_events(DiarizedUpdate("Hi there.", 1.0, first)) + stream_events(
        DiarizedUpdate(" Hello!", 2.5, rest, result)
    )
    assert [e["type"] for e in events] == ["transcript.text.segment"] * 2 + ["transcript.text.done"]
    assert [e.get("id") for e in events] == ["seg_0", "seg_1", None]
    assert rttm(result.diarization, "my talk.wav").splitlines() == [
        "SPEAKER my_talk.wav 1 0.000 1.000 <NA> <NA> A <NA> <NA>",
        "SPEAKER my_talk.wav 1 1.200 0.800 <NA> <NA> Ann <NA> <NA>",
    ]
    assert [letter(i) for i in (0, 1, 25, 26, 27)] == ["A", "B", "Z", "AA", "AB"]


def test_der_maps_speakers_and_counts_each_error() -> None:
    from voxhost.benchmarks.der import der, speaker_wer

    reference = [(0.0, 2.0, "joe"), (2.0, 4.0, "ann")]
    assert der(reference, [(0.0, 2.0, "B"), (2.0, 4.0, "A")]).der == 0.0  # any labels, mapped
    merged = der(reference, [(0.0, 4.0, "A")])
    assert merged.confusion == 0.5
    assert merged.der == 0.5
    late = der(reference, [(0.5, 2.0, "A"), (2.0, 4.0, "B")])
    assert late.missed == 0.125
    assert der(reference, [(0.5, 2.0, "A"), (2.0, 4.0, "B")], collar=0.25).missed < late.missed
    mapping = {"A": "joe", "B": "ann"}
    assert (
        speaker_wer([("joe", "hi there"), ("ann", "hello")], [("A", "hi there"), ("B", "hello")], mapping)
        == 0
    )
    swapped = speaker_wer(
        [("joe", "hi there"), ("ann", "hello")], [("B", "hi there"), ("A", "hello")], mapping
    )
    assert swapped == 4 / 3  # each speaker's words went to the other: 2 + 2 errors over 3 words


def test_missed_speech_and_known_names_are_scored_where_they_are() -> None:
    """The benchmarks' split of missed speech (nobody found / fewer found / beyond two at once) and
    their known-speaker shares (of all the speech, of the speech found, other voices named)."""
    from voxhost.benchmarks.der import der, misnamed, missed_parts, named_shares

    # joe 0-4 s, ann 2-4 s, kim 3-4 s: 7 s of speech, 1 s of it a third voice at once
    reference = [(0.0, 4.0, "joe"), (2.0, 4.0, "ann"), (3.0, 4.0, "kim")]
    found = [(1.0, 4.0, "A"), (2.0, 3.0, "B")]  # nobody at 0-1; one voice only at 3-4
    parts = missed_parts(reference, found)
    assert [round(x * 7, 6) for x in (parts.nobody, parts.fewer, parts.beyond_two)] == [1, 2, 1]
    assert round(parts.nobody + parts.fewer, 9) == round(der(reference, found).missed, 9)
    # "joe" given 1-4 s of his 0-4 s (someone found throughout); then only 1-3 s (nobody found elsewhere)
    assert named_shares(reference, [(1.0, 4.0, "joe"), (0.0, 1.0, "C")], {"joe"}) == (0.75, 0.75)
    assert named_shares(reference, [(1.0, 3.0, "joe")], {"joe"}) == (0.5, 1.0)
    # "ann" given 1-3 s: 1-2 s is joe's alone (misnamed), 2-3 s hers; 4-5 s nobody speaks (not counted)
    assert misnamed(reference, [(1.0, 3.0, "ann"), (4.0, 5.0, "ann")], {"ann"}) == 1.0
