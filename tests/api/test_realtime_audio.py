"""What the Realtime API's audio goes through: G.711 decoding (against Python's own `audioop` tables),
and the turn detection OpenAI's settings map onto (`manager/live.py`): server VAD's silence, semantic
VAD's eagerness and sentence ends, and blips too short to transcribe. Real speech, with a scripted
transcriber in place of the model so that each turn's text, and so its end, is known."""

from __future__ import annotations

import asyncio
import audioop

import numpy as np
import pytest

from conftest import Speech
from voxhost.audio import decode_audio, g711
from voxhost.audio.decode import PcmConverter, float_to_pcm16
from voxhost.errors import BadAudio, BadRequest
from voxhost.manager.live import (
    LiveEvent,
    LiveTranscriber,
    VadConfig,
    ends_sentence,
    semantic_vad,
    server_vad,
)
from voxhost.results import TranscribeOptions, Transcription

CODES = bytes(range(256))


def test_g711_decoding_is_the_standard_tables() -> None:
    assert np.array_equal(g711.decode(CODES, "pcmu"), np.frombuffer(audioop.ulaw2lin(CODES, 2), "<i2"))
    assert np.array_equal(g711.decode(CODES, "pcma"), np.frombuffer(audioop.alaw2lin(CODES, 2), "<i2"))
    assert g711.decode(b"", "pcmu").dtype == np.int16


@pytest.mark.parametrize("codec", ["pcmu", "pcma"])
def test_g711_encoding_round_trips(codec: g711.Codec) -> None:
    levels = g711.decode(CODES, codec)
    assert np.array_equal(g711.decode(g711.encode(levels, codec), codec), levels)  # each level is kept
    linear = np.arange(-32768, 32768, dtype=np.int16)
    back = g711.decode(g711.encode(linear, codec), codec).astype(np.int32)
    # G.711's steps grow with the level (logarithmic): the error stays under a sixteenth of it
    assert np.all(np.abs(back - linear) <= 16 + np.abs(linear.astype(np.int32)) / 16)
    agree = np.frombuffer(g711.encode(linear, codec), np.uint8) == np.frombuffer(
        (audioop.lin2ulaw if codec == "pcmu" else audioop.lin2alaw)(linear.tobytes(), 2), np.uint8
    )
    assert agree.mean() > 0.99  # the same codes, but for which side of a step a boundary value goes


@pytest.mark.parametrize("codec", ["pcmu", "pcma"])
def test_g711_speech_through_the_pcm_converter(short_speech: Speech, codec: g711.Codec) -> None:
    to_8k = PcmConverter(short_speech.sample_rate, 2, 1, sample_rate=8000)
    raw = float_to_pcm16(np.concatenate([to_8k.convert(float_to_pcm16(short_speech.audio)), to_8k.flush()]))
    linear = PcmConverter(8000, 2, 1)
    expected = np.concatenate([linear.convert(raw), linear.flush()])
    encoded = g711.encode(np.frombuffer(raw, "<i2"), codec)
    telephone = PcmConverter(8000, 1, 1, codec=codec)
    pieces = [telephone.convert(encoded[i : i + 333]) for i in range(0, len(encoded), 333)]
    decoded = np.concatenate([*pieces, telephone.flush()])
    assert len(decoded) == len(expected)
    assert np.corrcoef(decoded, expected)[0, 1] > 0.999
    with pytest.raises(BadAudio):
        PcmConverter(8000, 2, 1, codec=codec)


# --- turn detection -------------------------------------------------------------------------------
class Script:
    """Transcribes every piece of audio as the same text at once, counting the calls."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.calls = 0

    async def __call__(self, audio: np.ndarray, options: TranscribeOptions) -> Transcription:
        self.calls += 1
        return Transcription(self.text, "en", 1.0, len(audio) / 16000)


def _turns(
    speech: Speech, vad: VadConfig, text: str, silence: float = 3.0
) -> tuple[list[LiveEvent], list[float], Script]:
    """Feed 0.3 s of silence, the speech and `silence` seconds more in 32 ms pieces; the events, and
    for each `speech_stopped` how long after the speech ended it came (seconds of audio fed since)."""
    audio = decode_audio(speech.encoded("wav"))
    audio = np.concatenate([np.zeros(4800, np.float32), audio, np.zeros(int(silence * 16000), np.float32)])
    script = Script(text)
    seen: list[tuple[float, LiveEvent]] = []

    async def run() -> None:
        async def emit(event: LiveEvent) -> None:
            seen.append((live.now, event))

        live = LiveTranscriber(script, emit, vad=vad, partial_interval=0)
        for i in range(0, len(audio), 512):
            await live.feed(audio[i : i + 512])
            await asyncio.sleep(0)  # the speculative decode runs as it would beside a real stream
        await live.drain()

    asyncio.run(run())
    stops = [now - (event.end or 0) for now, event in seen if event.kind == "speech_stopped"]
    return [event for _, event in seen], stops, script


def test_server_vad_ends_the_turn_after_its_silence(short_speech: Speech) -> None:
    events, stops, _ = _turns(short_speech, server_vad(silence_duration_ms=700), "Unfinished and")
    assert [e.kind for e in events] == ["speech_started", "speech_stopped", "final"]
    assert stops[0] == pytest.approx(0.7, abs=0.1)  # whatever the text says
    assert events[-1].result is not None
    assert events[-1].result.text == "Unfinished and"


@pytest.mark.parametrize(
    ("eagerness", "text", "after"),
    [
        ("high", "The quick brown fox jumps over the lazy dog.", 0.3),  # a finished sentence: the short pause
        ("low", "The quick brown fox jumps over the lazy dog.", 1.0),
        ("high", "The quick brown fox jumps over the", 2.0),  # unfinished: the longest pause
        ("high", "The quick brown fox jumps over the...", 2.0),  # trailing off
    ],
)
def test_semantic_vad_waits_while_the_sentence_is_unfinished(
    short_speech: Speech, eagerness: str, text: str, after: float
) -> None:
    events, stops, script = _turns(short_speech, semantic_vad(eagerness), text)
    assert [e.kind for e in events] == ["speech_started", "speech_stopped", "final"]
    assert stops[0] == pytest.approx(after, abs=0.15)
    assert events[-1].text == text
    assert script.calls <= 3  # the speculative decode is the final when nothing was said since


def test_a_blip_too_short_to_transcribe_is_dropped(short_speech: Speech) -> None:
    events, _, script = _turns(short_speech, VadConfig(min_speech=30.0), "never said")
    assert [e.kind for e in events] == ["speech_started", "speech_stopped", "dropped"]
    assert script.calls <= 1  # at most the speculative decode, never a final


def test_the_vad_settings_are_checked() -> None:
    assert semantic_vad("auto") == semantic_vad(None) == semantic_vad("medium")
    for call, param in (
        (lambda: server_vad(threshold=1.5), "threshold"),
        (lambda: server_vad(silence_duration_ms=0), "silence_duration_ms"),
        (lambda: server_vad(prefix_padding_ms=-1), "prefix_padding_ms"),
        (lambda: semantic_vad("eager"), "eagerness"),
    ):
        with pytest.raises(BadRequest) as refused:
            call()
        assert refused.value.param == param
    assert ends_sentence("Done.")
    assert ends_sentence('He said "yes."')
    assert ends_sentence("")
    assert not ends_sentence("and then")
    assert not ends_sentence("and then\u2026")
