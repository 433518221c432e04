"""Response shaping in OpenAI's formats, and how transcripts of pieces are put together."""

from __future__ import annotations

import pytest

from voxhost.audio.chunks import Assembler
from voxhost.errors import BadRequest
from voxhost.formats import check_response_format, render
from voxhost.languages import normalize_language
from voxhost.results import Segment, Transcription, Word, is_echo


def _result() -> Transcription:
    words1 = [Word(" Hello", 0.0, 0.4, 0.9), Word(" there.", 0.4, 0.9, 0.8)]
    return Transcription(
        text="Hello there. Second line.",
        language="en",
        language_probability=1.0,
        duration=3661.5,
        segments=[
            Segment(0, 0, 0.0, 0.9, " Hello there.", [1, 2], 0.0, -0.2, 1.1, 0.01, words1),
            Segment(1, 0, 3600.25, 3661.5, " Second line.", [3], 0.0, -0.3, 1.2, 0.02, []),
        ],
    )


def test_srt_and_vtt_timestamps() -> None:
    srt = render(_result(), "srt")
    assert srt == (
        "1\n00:00:00,000 --> 00:00:00,900\nHello there.\n\n2\n01:00:00,250 --> 01:01:01,500\nSecond line.\n"
    )
    vtt = render(_result(), "vtt")
    assert vtt == (
        "WEBVTT\n\n00:00:00.000 --> 00:00:00.900\nHello there.\n\n"
        "01:00:00.250 --> 01:01:01.500\nSecond line.\n"
    )


def test_json_text_and_verbose_json() -> None:
    assert render(_result(), "json") == {
        "text": "Hello there. Second line.",
        "usage": {"type": "duration", "seconds": 3662},
    }
    assert render(_result(), "text") == "Hello there. Second line.\n"
    verbose = render(_result(), "verbose_json", ("segment", "word"))
    assert isinstance(verbose, dict)
    assert verbose["language"] == "english"
    assert verbose["task"] == "transcribe"
    assert [s["id"] for s in verbose["segments"]] == [0, 1]
    assert verbose["words"] == [
        {"word": "Hello", "start": 0.0, "end": 0.4},
        {"word": "there.", "start": 0.4, "end": 0.9},
    ]
    default = render(_result(), "verbose_json")
    assert isinstance(default, dict)
    assert "segments" in default
    assert "words" not in default


def test_response_format_is_checked() -> None:
    with pytest.raises(BadRequest):
        check_response_format("xml")


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("en", "en"),
        ("EN", "en"),
        ("English", "en"),
        ("en-US", "en"),
        ("pt_BR", "pt"),
        ("", None),
        (None, None),
        ("xx", "xx"),
    ],
)
def test_language_normalization(given: str | None, expected: str | None) -> None:
    assert normalize_language(given) == expected


def _segment(text: str, no_speech: float, start: float = 0.0) -> Segment:
    return Segment(0, 0, start, start + 1, text, [1], 0.0, -0.5, 1.0, no_speech, None)


def test_an_echo_is_a_repeat_where_the_audio_holds_no_speech() -> None:
    said = " We will meet again tomorrow."
    repeat = _segment(" We will meet again, tomorrow!", 0.7)
    assert is_echo(repeat, said, has_speech=lambda start, end: False)  # Whisper repeating over silence
    # the speaker said it twice: kept, however likely the model thought silence was
    assert not is_echo(repeat, said, has_speech=lambda start, end: True)
    assert not is_echo(_segment(" Something else.", 0.9), said, has_speech=lambda start, end: False)
    assert not is_echo(repeat, None, has_speech=lambda start, end: False)


def test_merging_pieces_puts_them_on_the_file_clock_and_numbers_them() -> None:
    first = Transcription("a", "en", 1.0, 5.0, segments=[_segment(" We will meet again tomorrow.", 0.01)])
    after = Transcription("c", "en", 1.0, 5.0, segments=[_segment(" Bye.", 0.02, start=1.5)])
    assembler = Assembler(15.0)
    assembler.add(first, 0.0)
    assembler.add(after, 10.0)
    merged = assembler.result()
    assert merged.text == "We will meet again tomorrow. Bye."
    assert [(s.id, s.start, s.end) for s in merged.segments] == [(0, 0.0, 1.0), (1, 11.5, 12.5)]
    assert merged.segments[1].seek == 1000
    assert merged.duration == 15.0


def test_a_requested_language_is_read_in_one_place_for_every_front_end() -> None:
    import dataclasses

    from voxhost.results import TranscribeOptions

    assert TranscribeOptions(language="English").language == "en"
    assert TranscribeOptions(language=" pt_BR ").language == "pt"
    assert TranscribeOptions(language="").language is None
    assert dataclasses.replace(TranscribeOptions(language="EN"), prompt="x").language == "en"
