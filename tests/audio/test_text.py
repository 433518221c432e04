"""How text is cut for speech: sentences, long sentences, and the quick start's first phrase."""

from __future__ import annotations

import pytest

from voxhost.audio.text import speech_chunks, split_sentences


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Hello world. How are you? Fine!", ["Hello world.", "How are you?", "Fine!"]),
        ('He said "stop." Then left.', ['He said "stop."', "Then left."]),
        ("Pi is 3.14 exactly.\nNext line", ["Pi is 3.14 exactly.", "Next line"]),
        ("こんにちは。元気です。", ["こんにちは。", "元気です。"]),
        ("", []),
    ],
)
def test_sentence_splitting(text: str, expected: list[str]) -> None:
    assert split_sentences(text) == expected


def test_long_sentences_are_cut() -> None:
    pieces = split_sentences("word, " * 200, max_chars=100)
    assert all(len(p) <= 100 for p in pieces)
    assert " ".join(pieces).split() == ("word, " * 200).split()


def test_long_first_sentence_is_spoken_clause_first() -> None:
    text = "Before we start the meeting today, let me share the agenda with all of you. Then we begin."
    assert speech_chunks(text) == [
        "Before we start the meeting today,",
        "let me share the agenda with all of you.",
        "Then we begin.",
    ]
    assert speech_chunks("Short one, really. Next.") == ["Short one, really.", "Next."]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("The quick brown fox jumps over a fence.", ["The quick brown fox jumps", "over a fence."]),
        ("Ask her to bring these things with her now.", ["Ask her to bring these things", "with her now."]),
        ("Turn on the lights in the kitchen, please.", ["Turn on the lights", "in the kitchen, please."]),
        # no phrase word where a pause would be natural and early enough: the sentence stays whole
        ("I think that we should go to the park later.", ["I think that we should go to the park later."]),
        ("The weather is nice.", ["The weather is nice."]),  # short: nothing to gain
    ],
)  # fmt: skip
def test_quick_start_speaks_the_first_phrase_alone(text: str, expected: list[str]) -> None:
    assert speech_chunks(text) == expected
    assert speech_chunks(text, quick_start=False) == split_sentences(text)
