"""Live transcription over WebSocket (voxhost's protocol, and OpenAI's beta Realtime protocol as its
clients speak it), real speech. The GA Realtime API is in test_realtime.py."""

from __future__ import annotations

import base64
import itertools
import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from websockets.sync.client import ClientConnection, connect

from conftest import ServerProcess, Speech, assert_transcript, start_server, synthesize
from voxhost.audio import encode_audio
from voxhost.audio.decode import PcmConverter, float_to_pcm16
from voxhost.manager.live import agreed_prefix

FIRST = "The quick brown fox jumps over the lazy dog. Please call Stella."
SECOND = "Turn on the lights in the kitchen."


@pytest.fixture(scope="module")
def live_server(tmp_path_factory: pytest.TempPathFactory, cache_dir: object) -> Iterator[ServerProcess]:
    server = start_server(tmp_path_factory.mktemp("live"), cache_dir, "--model", "tiny.en", "--preload")  # type: ignore[arg-type]
    yield server
    server.stop()


def pcm(speech: Speech, rate: int) -> bytes:
    converter = PcmConverter(speech.sample_rate, 2, 1, sample_rate=rate)
    audio = np.concatenate([converter.convert(float_to_pcm16(speech.audio)), converter.flush()])
    return float_to_pcm16(audio)


@pytest.fixture(scope="module")
def utterances() -> tuple[Speech, Speech]:
    return synthesize(FIRST), synthesize(SECOND)


def silence(seconds: float, rate: int) -> bytes:
    return bytes(2 * int(seconds * rate))


class Reader:
    """Collects server messages in a thread, noting how much audio had been sent when each arrived."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.sent = 0.0  # seconds of audio sent so far
        self.messages: list[tuple[float, dict[str, Any]]] = []
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            for raw in self.ws:
                self.messages.append((self.sent, json.loads(raw)))
        except Exception:
            return

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [m for _, m in self.messages if m.get("type") == kind]

    def wait_for(self, kind: str, count: int = 1, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while len(self.of(kind)) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(self.of(kind)) >= count, f"no {count} {kind} in {[m for _, m in self.messages]}"


def stream(
    ws: ClientConnection, reader: Reader, data: bytes, rate: int, pace: float, step: float = 0.1
) -> None:
    """Send PCM in `step`-second chunks; `pace` 1.0 is real time, 0 as fast as possible."""
    size = 2 * int(step * rate)
    for i in range(0, len(data), size):
        ws.send(data[i : i + size])
        reader.sent += step
        if pace:
            time.sleep(step * pace)


def file_text(server: ServerProcess, speech: Speech) -> str:
    response = httpx.post(
        server.url + "/v1/audio/transcriptions", files={"file": ("a.wav", speech.encoded("wav"))}, timeout=60
    )
    return str(response.json()["text"])


def test_live_at_real_time_pace(live_server: ServerProcess, utterances: tuple[Speech, Speech]) -> None:
    first, second = utterances
    rate = 16000
    with connect(
        live_server.url.replace("http", "ws") + "/v1/audio/transcriptions/live?language=en", max_size=None
    ) as ws:
        reader = Reader(ws)
        stream(ws, reader, silence(0.5, rate), rate, pace=1.0)
        stream(ws, reader, pcm(first, rate), rate, pace=1.0)
        speech_end = reader.sent
        stream(ws, reader, silence(1.5, rate) + pcm(second, rate) + silence(1.5, rate), rate, pace=1.0)
        ws.send(json.dumps({"type": "stop"}))
        reader.wait_for("done")
    assert reader.of("ready")
    partials = [(sent, m) for sent, m in reader.messages if m["type"] == "partial" and m["utterance"] == 0]
    assert partials, "no partial results"
    # words appeared while the first sentence was still being spoken (how soon: bench/live_latency.py)
    assert partials[0][0] < speech_end
    # committed text only grows: what was shown as stable never changes
    committed = [m["committed"].split() for _, m in partials]
    for before, after in itertools.pairwise(committed):
        assert agreed_prefix(before, after) == len(before)
    finals = reader.of("final")
    assert [f["utterance"] for f in finals] == [0, 1]
    assert_transcript(finals[0]["text"], file_text(live_server, first))
    assert_transcript(finals[1]["text"], SECOND)
    assert finals[0]["end"] < finals[1]["start"]
    assert finals[0]["start"] == pytest.approx(0.5, abs=0.4)


def test_live_faster_than_real_time_and_commit(
    live_server: ServerProcess, utterances: tuple[Speech, Speech]
) -> None:
    first, second = utterances
    rate = 22050  # any declared rate is resampled
    with connect(
        live_server.url.replace("http", "ws") + f"/v1/audio/transcriptions/live?sample_rate={rate}"
    ) as ws:
        reader = Reader(ws)
        stream(ws, reader, pcm(first, rate) + silence(1.0, rate) + pcm(second, rate), rate, pace=0)
        ws.send(json.dumps({"type": "commit"}))  # no trailing silence: the client ends the turn
        reader.wait_for("final", 2)
        ws.send(json.dumps({"type": "stop"}))
        reader.wait_for("done")
    finals = reader.of("final")
    assert_transcript(finals[0]["text"], FIRST)
    assert_transcript(finals[1]["text"], SECOND)


def test_live_bad_messages_and_parameters(live_server: ServerProcess) -> None:
    base = live_server.url.replace("http", "ws") + "/v1/audio/transcriptions/live"
    with connect(base) as ws:
        assert json.loads(ws.recv())["type"] == "ready"
        for bad in ("not json", json.dumps({"type": "dance"}), json.dumps([1, 2])):
            ws.send(bad)
            assert json.loads(ws.recv())["type"] == "error"
        ws.send(b"\x01")  # half a sample: kept until the next byte comes
        ws.send(json.dumps({"type": "stop"}))
        assert json.loads(ws.recv())["type"] == "done"
    with connect(base + "?model=nope") as ws:
        message = json.loads(ws.recv())
        assert message["type"] == "error"
        assert message["code"] == "model_not_found"
    with connect(base + "?sample_rate=abc") as ws:
        assert json.loads(ws.recv())["type"] == "error"
    assert httpx.get(live_server.url + "/health").status_code == 200


def test_live_disconnect_frees_the_worker(
    live_server: ServerProcess, utterances: tuple[Speech, Speech]
) -> None:
    first, _ = utterances
    with connect(live_server.url.replace("http", "ws") + "/v1/audio/transcriptions/live") as ws:
        reader = Reader(ws)
        stream(ws, reader, pcm(first, 16000), 16000, pace=0)
    for _ in range(200):
        if httpx.get(live_server.url + "/health").json()["models"]["tiny.en"]["in_flight"] == 0:
            break
        time.sleep(0.05)
    assert httpx.get(live_server.url + "/health").json()["models"]["tiny.en"]["in_flight"] == 0
    assert_transcript(file_text(live_server, first), FIRST)


def _realtime(server: ServerProcess) -> ClientConnection:
    """A beta client: it announces the beta with OpenAI's header."""
    url = server.url.replace("http", "ws") + "/v1/realtime?intent=transcription"
    return connect(url, max_size=None, additional_headers={"OpenAI-Beta": "realtime=v1"})


def _append(ws: ClientConnection, data: bytes, step: int = 4800, pace: float = 0) -> None:
    """Append 24 kHz PCM in 100 ms messages; `pace` 1.0 is real time, 0 as fast as possible."""
    for i in range(0, len(data), step):
        chunk = base64.b64encode(data[i : i + step]).decode()
        ws.send(json.dumps({"type": "input_audio_buffer.append", "audio": chunk}))
        time.sleep(step / 2 / 24000 * pace)


def test_openai_realtime_transcription_with_server_vad(
    live_server: ServerProcess, utterances: tuple[Speech, Speech]
) -> None:
    first, second = utterances
    with _realtime(live_server) as ws:
        reader = Reader(ws)
        reader.wait_for("transcription_session.created")
        ws.send(json.dumps({
            "type": "transcription_session.update",
            "session": {
                "input_audio_format": "pcm16",
                "input_audio_transcription": {"model": "whisper-1", "language": "en"},
                "turn_detection": {"type": "server_vad", "threshold": 0.5, "silence_duration_ms": 500},
            },
        }))  # fmt: skip
        reader.wait_for("transcription_session.updated")
        _append(
            ws,
            silence(0.3, 24000)
            + pcm(first, 24000)
            + silence(1.0, 24000)
            + pcm(second, 24000)
            + silence(1.0, 24000),
            pace=1.0,  # real time: at twice that, a busy machine may decode only one partial per utterance
        )
        reader.wait_for("conversation.item.input_audio_transcription.completed", 2)
    session = reader.of("transcription_session.updated")[0]["session"]
    assert session["turn_detection"]["silence_duration_ms"] == 500
    kinds = [m["type"] for _, m in reader.messages]
    assert kinds.index("input_audio_buffer.speech_started") < kinds.index("input_audio_buffer.speech_stopped")
    assert kinds.index("input_audio_buffer.committed") < kinds.index(
        "conversation.item.input_audio_transcription.completed"
    )
    completed = reader.of("conversation.item.input_audio_transcription.completed")
    assert_transcript(completed[0]["transcript"], FIRST)
    assert_transcript(completed[1]["transcript"], SECOND)
    assert completed[0]["item_id"] != completed[1]["item_id"]
    deltas = [
        m
        for m in reader.of("conversation.item.input_audio_transcription.delta")
        if m["item_id"] == completed[0]["item_id"]
    ]
    assert len(deltas) >= 2, "no incremental deltas"
    # the deltas add up to the transcript
    assert agreed_prefix(
        "".join(d["delta"] for d in deltas).split(), completed[0]["transcript"].split()
    ) == len(completed[0]["transcript"].split())
    assert all(m.get("event_id") for _, m in reader.messages)


def test_openai_realtime_manual_commit_and_errors(
    live_server: ServerProcess, utterances: tuple[Speech, Speech]
) -> None:
    _, second = utterances
    with _realtime(live_server) as ws:
        reader = Reader(ws)
        ws.send(json.dumps({"type": "transcription_session.update", "session": {"turn_detection": None}}))
        reader.wait_for("transcription_session.updated")
        ws.send(json.dumps({"type": "input_audio_buffer.commit"}))  # nothing buffered yet
        reader.wait_for("error")
        ws.send("{broken")
        ws.send(json.dumps({"type": "input_audio_buffer.append", "audio": "***"}))
        ws.send(json.dumps({"type": "response.create"}))
        ws.send(
            json.dumps({"type": "transcription_session.update", "session": {"input_audio_format": "opus"}})
        )
        reader.wait_for("error", 5)
        _append(ws, pcm(second, 24000) + silence(1.5, 24000))
        ws.send(json.dumps({"type": "input_audio_buffer.commit"}))
        reader.wait_for("conversation.item.input_audio_transcription.completed")
        # no server VAD: nothing was transcribed before the client's commit
        kinds = [m["type"] for _, m in reader.messages]
        done = kinds.index("conversation.item.input_audio_transcription.completed")
        assert kinds.index("input_audio_buffer.committed") < done, kinds
    assert_transcript(
        reader.of("conversation.item.input_audio_transcription.completed")[0]["transcript"], SECOND
    )
    codes = [m["error"]["code"] for m in reader.of("error")]
    assert "invalid_json" in codes
    assert all(m["error"]["message"] for m in reader.of("error"))


@pytest.mark.parametrize("remote", [False, True], ids=["in-process", "url"])
def test_cli_live(
    live_server: ServerProcess, utterances: tuple[Speech, Speech], tmp_path: Path, remote: bool
) -> None:
    first, second = utterances
    audio = tmp_path / "two.wav"
    both = np.concatenate([first.audio, np.zeros(first.sample_rate, dtype=np.float32), second.audio])
    audio.write_bytes(encode_audio(both, first.sample_rate, "wav"))
    command = [sys.executable, "-m", "voxhost", "transcribe", "--live", str(audio), "--pace", "0"]
    if remote:
        command += ["--url", live_server.url]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 2, lines
    assert_transcript(lines[0], FIRST)
    assert_transcript(lines[1], SECOND)


def test_many_streams_at_once_share_the_worker(
    live_server: ServerProcess, utterances: tuple[Speech, Speech]
) -> None:
    first, second = utterances
    results: dict[int, list[dict[str, Any]]] = {}

    def one(index: int) -> None:
        speech = first if index % 2 else second
        url = live_server.url.replace("http", "ws") + "/v1/audio/transcriptions/live"
        with connect(url) as ws:
            reader = Reader(ws)
            stream(ws, reader, pcm(speech, 16000) + silence(1.0, 16000), 16000, pace=0.25)
            reader.wait_for("final", timeout=120)
            ws.send(json.dumps({"type": "stop"}))
            reader.wait_for("done", timeout=120)
            results[index] = reader.of("final")

    threads = [threading.Thread(target=one, args=(i,)) for i in range(3)]
    for thread in threads:
        thread.start()
    # a file request in the middle of the streams is served too
    response = httpx.post(
        live_server.url + "/v1/audio/transcriptions",
        files={"file": ("a.wav", first.encoded("wav"))},
        timeout=120,
    )
    for thread in threads:
        thread.join(180)
    assert_transcript(response.json()["text"], FIRST)
    assert sorted(results) == [0, 1, 2]
    for index, finals in results.items():
        assert_transcript(" ".join(f["text"] for f in finals), FIRST if index % 2 else SECOND)
