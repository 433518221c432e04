"""The server's vocabulary (`--vocabulary`) reaches every front-end: a live `voxhost serve --vocabulary`
(tiny.en) hears names right over Wyoming, the OpenAI HTTP API (whole and streamed) and the live WebSocket
with no keywords from the client, which the same model without it hears wrong."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from websockets.sync.client import connect

from conftest import ServerProcess, Speech, assert_transcript, start_server, synthesize
from voxhost.audio import decode_audio
from voxhost.engines import EngineConfig
from voxhost.engines.faster_whisper import FasterWhisperEngine
from voxhost.harness.wer import words
from voxhost.manager.registry import parse_entry
from voxhost.results import TranscribeOptions
from wyoming_helpers import pcm_of, transcribe

# tiny.en on this Piper voice hears them "Cheboygan", "new end" and "Joe Quinn" unhelped (checked below).
CASES = (
    ("We drove to Sheboygan on Tuesday.", "Sheboygan"),
    ("The meeting with Nguyen starts at noon.", "Nguyen"),
    ("We met Joaquin at the conference.", "Joaquin"),
)
RATE = 16000


@pytest.fixture(scope="module")
def vocabulary_server(tmp_path_factory: pytest.TempPathFactory, cache_dir: Path) -> Iterator[ServerProcess]:
    """One server for the module: tiny.en, a vocabulary given as a list in one flag and as another flag.
    Joaquin is not the list's last name: one spoken that ends the list can make Whisper skip the audio
    up to it (docs/benchmarks.md, "Vocabulary")."""
    server = start_server(
        tmp_path_factory.mktemp("vocabulary"), cache_dir, "--model", "tiny.en", "--preload",
        "--vocabulary", "Sheboygan, Nguyen", "--vocabulary", "Joaquin, Living Room, Kitchen",
    )  # fmt: skip
    yield server
    server.stop()


@pytest.fixture(scope="module")
def unhelped() -> FasterWhisperEngine:
    """tiny.en in this process without a vocabulary: what the server would hear without one."""
    config = EngineConfig(threads=2)
    return FasterWhisperEngine.load(parse_entry("tiny.en").location(config), config)


@pytest.fixture(scope="module")
def spoken() -> dict[str, Speech]:
    return {name: synthesize(sentence) for sentence, name in CASES}


def _pcm16(data: bytes) -> np.ndarray:
    return np.frombuffer(data, "<i2").astype(np.float32) / 32768


def _heard_wrong(engine: FasterWhisperEngine, audio: np.ndarray, name: str) -> None:
    text = engine.transcribe(audio, TranscribeOptions(language="en")).text
    assert name.lower() not in words(text), text  # else the case proves nothing


def _heard_right(text: str, sentence: str, name: str) -> None:
    assert name.lower() in words(text), text
    assert_transcript(text, sentence, max_errors=0)


@pytest.mark.parametrize(("sentence", "name"), CASES)
def test_wyoming_hears_the_names_of_the_vocabulary(
    vocabulary_server: ServerProcess,
    unhelped: FasterWhisperEngine,
    spoken: dict[str, Speech],
    sentence: str,
    name: str,
) -> None:
    pcm = pcm_of(spoken[name], RATE)
    _heard_wrong(unhelped, _pcm16(pcm), name)
    assert vocabulary_server.wyoming_uri is not None
    events = asyncio.run(transcribe(vocabulary_server.wyoming_uri, pcm, RATE, 2, 1))
    assert events[-1].type == "transcript", events[-1]
    _heard_right(str(events[-1].data["text"]), sentence, name)


@pytest.mark.parametrize(("sentence", "name"), CASES)
def test_http_hears_the_names_without_keywords_from_the_client(
    vocabulary_server: ServerProcess,
    unhelped: FasterWhisperEngine,
    spoken: dict[str, Speech],
    sentence: str,
    name: str,
) -> None:
    wav = spoken[name].encoded("wav")
    _heard_wrong(unhelped, decode_audio(wav), name)
    url = vocabulary_server.url + "/v1/audio/transcriptions"
    response = httpx.post(url, files={"file": ("a.wav", wav)}, data={"model": "whisper-1"}, timeout=60)
    assert response.status_code == 200, response.text
    _heard_right(response.json()["text"], sentence, name)
    # a client's own keywords are joined with the server's words, not put in their place
    keyed = httpx.post(
        url, files={"file": ("a.wav", wav)}, data={"keywords[]": ["Wisconsin", name]}, timeout=60
    )
    assert keyed.status_code == 200, keyed.text
    _heard_right(keyed.json()["text"], sentence, name)


def test_streamed_and_live_transcriptions_hear_the_names_too(
    vocabulary_server: ServerProcess, spoken: dict[str, Speech]
) -> None:
    sentence, name = CASES[1]
    url = vocabulary_server.url + "/v1/audio/transcriptions"
    files = {"file": ("a.wav", spoken[name].encoded("wav"))}
    with httpx.stream("POST", url, files=files, data={"stream": "true"}, timeout=60) as response:
        events = [json.loads(line[6:]) for line in response.iter_lines() if line.startswith("data: ")]
    assert events[-1]["type"] == "transcript.text.done", events[-1]
    _heard_right(events[-1]["text"], sentence, name)

    live = vocabulary_server.url.replace("http", "ws") + "/v1/audio/transcriptions/live?language=en"
    with connect(live) as ws:
        ws.send(pcm_of(spoken[name], RATE))
        ws.send(json.dumps({"type": "commit"}))
        final = next(m for m in map(json.loads, ws) if m.get("type") in ("final", "error"))
        ws.send(json.dumps({"type": "stop"}))
    assert final["type"] == "final", final
    _heard_right(final["text"], sentence, name)
