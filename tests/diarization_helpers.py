"""What the diarization tests share: a known speaker's sample as a data URL, and the check that every
segment of a built conversation has the label of the voice speaking in it."""

from __future__ import annotations

import base64

from voxhost.audio import SAMPLE_RATE, encode_audio
from voxhost.benchmarks.conversations import Conversation, say


def data_url(voice: str, text: str) -> str:
    wav = encode_audio(say(voice, text), SAMPLE_RATE, "wav")
    return "data:audio/wav;base64," + base64.b64encode(wav).decode()


def voice_at(conversation: Conversation, start: float, end: float) -> str:
    middle = (start + end) / 2
    return min(
        conversation.turns, key=lambda t: 0 if t.start <= middle <= t.end else abs(t.start - middle)
    ).speaker


def labels(conversation: Conversation, segments: list[tuple[float, float, str]]) -> dict[str, str]:
    """voice -> label, asserting every segment has the label of the voice speaking in it, one label
    per voice."""
    mapping: dict[str, str] = {}
    for start, end, label in segments:
        voice = voice_at(conversation, start, end)
        assert mapping.setdefault(voice, label) == label, (voice, label, mapping)
    assert len(set(mapping.values())) == len(mapping), mapping
    return mapping
