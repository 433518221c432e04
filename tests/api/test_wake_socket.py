"""Wake word detection for clients that are not Home Assistant: the `/v1/audio/wake` WebSocket (with
the API key rules of every route) and `voxhost listen --url` against it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner
from websockets.exceptions import InvalidStatus
from websockets.sync.client import ClientConnection, connect

from conftest import ServerProcess, start_server, synthesize
from voxhost.audio import decode_audio
from voxhost.audio.decode import float_to_pcm16
from voxhost.cli import app

KEY = "sk-wake-test"
CHUNK = 2047  # bytes a message: odd, so samples are split between messages (they must join again)


@pytest.fixture(scope="module")
def keyed_server(tmp_path_factory: pytest.TempPathFactory, cache_dir: Path) -> Iterator[ServerProcess]:
    server = start_server(
        tmp_path_factory.mktemp("wake-socket"), cache_dir,
        "--model", "microwakeword", "--model", "tiny.en", "--api-key", KEY, "--wake-max-streams", "2",
        health_headers={"Authorization": f"Bearer {KEY}"},
    )  # fmt: skip
    yield server
    server.stop()


@pytest.fixture(scope="module")
def command_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("wake-audio") / "command.wav"
    path.write_bytes(synthesize("Hey Jarvis. Turn on the kitchen lights.").encoded("wav"))
    return path


def _socket(server: ServerProcess, query: str = "", key: str | None = KEY) -> ClientConnection:
    url = server.url.replace("http://", "ws://") + "/v1/audio/wake" + query
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return connect(url, additional_headers=headers, open_timeout=30)


def test_the_socket_hears_the_word_and_keeps_listening(
    keyed_server: ServerProcess, command_wav: Path
) -> None:
    pcm = float_to_pcm16(decode_audio(command_wav.read_bytes()))
    with _socket(keyed_server, "?names=hey_jarvis,alexa") as ws:
        ready = json.loads(ws.recv(timeout=30))
        assert ready == {"type": "ready", "sample_rate": 16000, "words": ["hey_jarvis", "alexa"]}
        for _ in range(2):  # the same phrase twice on one stream (a second apart): heard twice, once each
            for i in range(0, len(pcm), CHUNK):
                ws.send(pcm[i : i + CHUNK])
            ws.send(bytes(32000))
        ws.send(json.dumps({"type": "stop"}))
        messages = [json.loads(ws.recv(timeout=30)) for _ in range(3)]
    first, second, done = messages
    assert [first["type"], first["name"], first["model"]] == ["detection", "hey_jarvis", "microwakeword"]
    assert second["name"] == "hey_jarvis"
    seconds = len(pcm) / 2 / 16000 + 1.0
    assert 0 < first["timestamp_ms"] / 1000 < seconds
    assert seconds < second["timestamp_ms"] / 1000 < 2 * seconds  # on the stream's clock
    assert first["probability"] > 0.5
    assert first["speaker"] is None
    assert done == {"type": "done", "detected": 2}


def test_the_socket_needs_the_key_and_answers_bad_requests(keyed_server: ServerProcess) -> None:
    with pytest.raises(InvalidStatus):  # refused at the handshake, like the live socket
        _socket(keyed_server, key=None).close()
    with _socket(keyed_server, "?names=hey_computer") as ws:
        error = json.loads(ws.recv(timeout=30))
    assert error["type"] == "error"
    assert "hey_computer" in error["message"]
    with _socket(keyed_server) as ws:
        json.loads(ws.recv(timeout=30))
        ws.send("not json")
        assert json.loads(ws.recv(timeout=30))["code"] == "invalid_request"
        ws.send(b"\0" * 3201)  # an odd byte: the sample is completed by nothing, and nothing breaks
        ws.send(json.dumps({"type": "stop"}))
        assert json.loads(ws.recv(timeout=30)) == {"type": "done", "detected": 0}


def test_listen_through_the_server_with_the_transcript(
    keyed_server: ServerProcess, command_wav: Path
) -> None:
    result = CliRunner().invoke(
        app, ["listen", str(command_wav), "--url", keyed_server.url, "--api-key", KEY, "--transcribe"]
    )
    assert result.exit_code == 0, result.output
    detection, transcript = result.stdout.splitlines()
    name, seconds = detection.split("\t")
    assert name == "hey_jarvis"
    assert 0.3 < float(seconds) < 2.0
    assert "kitchen lights" in transcript.lower()
