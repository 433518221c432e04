"""Who said it (`--speakers DIR`): two voices enrolled from short recordings of other sentences (Piper's
joe, and Kokoro's jm_kumo speaking English), then the wake phrase spoken by each carries that person's
name in the Wyoming `detection` (the real `wyoming` client), a voice not enrolled carries none; and a
diarized transcription that names no speakers labels the enrolled voices by name (the real `openai`
SDK). One server (Whisper tiny.en, the wake models, the speaker model) for the module."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import openai
import pytest
from test_wyoming_wake import _stream, detections
from wyoming.wake import Detection

from conftest import ServerProcess, start_server
from voxhost.audio import SAMPLE_RATE, decode_audio, encode_audio
from voxhost.audio.decode import float_to_pcm16
from voxhost.benchmarks.conversations import EXCHANGE, Conversation, converse, say
from voxhost.manager.enrolment import EnrolmentError, read_recording, recordings

# (voice, enrolled as, wake word, its phrase); None: not enrolled (the control)
SPEAKERS = (
    ("joe", "Joe", "hey_jarvis", "Hey Jarvis."),
    ("jm_kumo", "Kumo", "hey_mycroft", "Hey Mycroft."),
    ("jf_nezumi", None, "alexa", "Alexa."),
)
ENROL = (
    "I would like the lights a little dimmer tonight, please.",
    "Remind me to water the plants before the weekend.",
)


@pytest.fixture(scope="module")
def speakers_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Joe as one file (`Joe.wav`), Kumo as a folder of two (`Kumo/*.wav|flac`): both rules."""
    folder = tmp_path_factory.mktemp("speakers")
    (folder / "Joe.wav").write_bytes(encode_audio(say("joe", " ".join(ENROL)), SAMPLE_RATE, "wav"))
    (folder / "Kumo").mkdir()
    for i, (text, fmt) in enumerate(zip(ENROL, ("wav", "flac"), strict=True)):
        (folder / "Kumo" / f"{i}.{fmt}").write_bytes(encode_audio(say("jm_kumo", text), SAMPLE_RATE, fmt))
    (folder / ".hidden.wav").write_bytes(b"skipped")
    return folder


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, cache_dir: Path, speakers_dir: Path
) -> Iterator[ServerProcess]:
    proc = start_server(
        tmp_path_factory.mktemp("wake-speakers"), cache_dir,
        "--model", "tiny.en", "--model", "microwakeword", "--speakers", str(speakers_dir), "--preload",
    )  # fmt: skip
    yield proc
    proc.stop()


def _phrase(voice: str, text: str) -> bytes:
    """The phrase after half a second of silence and with two seconds after it, as a satellite sends."""
    silence = np.zeros(SAMPLE_RATE // 2, np.float32)
    return float_to_pcm16(np.concatenate([silence, say(voice, text), silence, silence, silence, silence]))


def test_a_detection_says_who_said_it(server: ServerProcess) -> None:
    async def main() -> list[list[Detection]]:
        found = []
        for voice, _, word, text in SPEAKERS:
            events, _ = await _stream(server.wyoming_uri, _phrase(voice, text), names=[word])
            found.append(detections(events))
        return found

    results = asyncio.run(main())
    for (voice, name, word, _), found in zip(SPEAKERS, results, strict=True):
        assert [d.name for d in found] == [word], voice
        assert found[0].speaker == name, voice  # the voice not enrolled: no one


@pytest.fixture(scope="module")
def conversation() -> Conversation:
    return converse(EXCHANGE)  # joe, jf_alpha, jm_kumo


def test_diarized_transcription_names_the_enrolled(server: ServerProcess, conversation: Conversation) -> None:
    client = openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0, timeout=120)
    result = client.audio.transcriptions.create(
        model="whisper-1", file=("talk.wav", conversation.wav()), response_format="diarized_json"
    )
    labels: dict[str, set[str]] = {}
    for segment in result.segments:
        middle = (segment.start + segment.end) / 2
        turn = min(
            conversation.turns, key=lambda t: 0 if t.start <= middle <= t.end else abs(t.start - middle)
        )
        labels.setdefault(turn.speaker, set()).add(segment.speaker)
    assert labels == {"joe": {"Joe"}, "jm_kumo": {"Kumo"}, "jf_alpha": {"A"}}


def test_bad_recordings_are_named(tmp_path: Path) -> None:
    with pytest.raises(EnrolmentError, match="not a folder"):
        recordings(tmp_path / "missing")
    with pytest.raises(EnrolmentError, match="no recordings"):
        recordings(tmp_path)
    noise = tmp_path / "Noise.wav"
    noise.write_bytes(b"RIFF not really a wave file")
    short = tmp_path / "Short.wav"
    short.write_bytes(encode_audio(say("joe", "Hi."), SAMPLE_RATE, "wav"))
    assert recordings(tmp_path) == {"Noise": [noise], "Short": [short]}
    with pytest.raises(EnrolmentError, match=r"Noise\.wav is not audio"):
        read_recording(noise, 1 << 20, decode_audio)
    with pytest.raises(EnrolmentError, match=r"Short\.wav is 0\.\d s long"):
        read_recording(short, 1 << 20, decode_audio)
    with pytest.raises(EnrolmentError, match="upload limit"):
        read_recording(short, 10, decode_audio)
