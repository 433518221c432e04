"""OpenAI's Realtime API for transcription against a live `voxhost serve` (tiny.en), with real speech: the
GA protocol through the official SDK (`client.realtime.connect`), and the beta protocol as older clients
speak it. Every event the server sends is validated against the SDK's own types."""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import openai
import pytest
from openai.types.realtime import realtime_server_event
from pydantic import TypeAdapter
from websockets.sync.client import ClientConnection, connect

from conftest import ServerProcess, Speech, assert_transcript, start_server, synthesize
from voxhost.audio import g711
from voxhost.audio.decode import PcmConverter, float_to_pcm16
from voxhost.harness.wer import words

FIRST = "The quick brown fox jumps over the lazy dog."
SECOND = "Turn on the lights in the kitchen."
LONG = "The quick brown fox jumps over the lazy dog. Ask her to bring these things with her from the store."
ITEM = "conversation.item.input_audio_transcription"
SERVER_EVENT = TypeAdapter(realtime_server_event.RealtimeServerEvent)
WAIT = 60  # seconds any one expected event may take
# the openai SDK opens its socket without the context manager websockets 17 asks for
pytestmark = pytest.mark.filterwarnings(
    "ignore:connect\\(\\) must be used as a context manager:DeprecationWarning"
)


@pytest.fixture(scope="module")
def realtime_server(tmp_path_factory: pytest.TempPathFactory, cache_dir: Path) -> Iterator[ServerProcess]:
    server = start_server(tmp_path_factory.mktemp("realtime"), cache_dir, "--model", "tiny.en", "--preload")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def sentences() -> tuple[Speech, Speech]:
    return synthesize(FIRST), synthesize(SECOND)


@pytest.fixture(scope="module")
def long_turn() -> Speech:
    """About five seconds in one turn (Piper's pause between the sentences is shorter than 500 ms)."""
    return synthesize(LONG)


def pcm(speech: Speech, rate: int) -> bytes:
    converter = PcmConverter(speech.sample_rate, 2, 1, sample_rate=rate)
    audio = np.concatenate([converter.convert(float_to_pcm16(speech.audio)), converter.flush()])
    return float_to_pcm16(audio)


def silence(seconds: float, rate: int = 24000) -> bytes:
    return bytes(2 * int(seconds * rate))


def telephone(data: bytes, codec: g711.Codec) -> bytes:
    """8 kHz 16-bit PCM as G.711."""
    return g711.encode(np.frombuffer(data, "<i2"), codec)


class Events:
    """The server's events, read in a thread as they come; waits are bounded."""

    def __init__(self, receive: Any) -> None:
        self.receive = receive
        self.seen: list[dict[str, Any]] = []
        self.ended: BaseException | None = None  # why the reading stopped (the socket closed)
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            while True:
                self.seen.append(json.loads(self.receive()))
        except Exception as exc:
            self.ended = exc

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.seen if e["type"] == kind]

    def wait_for(self, kind: str, count: int = 1, timeout: float = WAIT) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while len(self.of(kind)) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        seen = [e["type"] for e in self.seen]
        assert len(self.of(kind)) >= count, f"no {count} {kind} in {seen} (reading ended: {self.ended!r})"
        return self.of(kind)

    def validated(self) -> None:
        """Every GA event is one the SDK's types accept as they are."""
        for event in self.seen:
            if not event["type"].startswith("transcription_session."):  # beta: untyped in the SDK
                SERVER_EVENT.validate_python(event)


def _client(server: ServerProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0)


def _append(connection: Any, data: bytes, step: int, pace: float) -> None:
    """Append in `step`-byte messages; `pace` is the seconds to wait after each."""
    for i in range(0, len(data), step):
        connection.input_audio_buffer.append(audio=base64.b64encode(data[i : i + step]).decode())
        if pace:
            time.sleep(pace)


def _transcription_session(**audio_input: Any) -> dict[str, Any]:
    return {"type": "transcription", "audio": {"input": audio_input}}


def test_sdk_server_vad_turns(
    realtime_server: ServerProcess, sentences: tuple[Speech, Speech], long_turn: Speech
) -> None:
    _, second = sentences
    with _client(realtime_server).realtime.connect(extra_query={"intent": "transcription"}) as connection:
        events = Events(connection.recv_bytes)
        created = events.wait_for("session.created")[0]
        assert created["session"]["type"] == "transcription"
        assert created is events.seen[0]
        connection.session.update(
            session={
                "type": "transcription",
                "include": ["item.input_audio_transcription.logprobs"],
                "audio": {
                    "input": {
                        "format": {"type": "audio/pcm", "rate": 24000},
                        "transcription": {"model": "gpt-4o-transcribe", "language": "en", "prompt": ""},
                        "turn_detection": {
                            "type": "server_vad",
                            "threshold": 0.5,
                            "silence_duration_ms": 500,
                        },
                        "noise_reduction": {"type": "near_field"},
                    }
                },
            }
        )
        updated = events.wait_for("session.updated")[0]["session"]["audio"]["input"]
        assert updated["turn_detection"]["silence_duration_ms"] == 500
        assert updated["transcription"]["model"] == "gpt-4o-transcribe"
        # at real time: deltas come while the speaker talks
        audio = silence(0.3) + pcm(long_turn, 24000) + silence(1.0) + pcm(second, 24000) + silence(1.0)
        _append(connection, audio, 4800, 0.1)
        completed = events.wait_for(f"{ITEM}.completed", 2)
    events.validated()
    assert_transcript(completed[0]["transcript"], LONG)
    assert_transcript(completed[1]["transcript"], SECOND)
    first_item = completed[0]["item_id"]
    kinds = [e["type"] for e in events.seen if e.get("item_id") == first_item]
    assert kinds[0] == "input_audio_buffer.speech_started"
    assert kinds.index("input_audio_buffer.speech_stopped") < kinds.index("input_audio_buffer.committed")
    assert kinds[-1] == f"{ITEM}.completed"
    # the deltas add up to the transcript (how soon they come: bench/live_latency.py)
    assert f"{ITEM}.delta" in kinds, kinds
    deltas = [e["delta"] for e in events.of(f"{ITEM}.delta") if e["item_id"] == first_item]
    assert words("".join(deltas)) == words(completed[0]["transcript"])
    segments = [e["text"] for e in events.of(f"{ITEM}.segment") if e["item_id"] == first_item]
    assert words(" ".join(segments)) == words(completed[0]["transcript"])
    usage = completed[0]["usage"]
    assert usage["type"] == "tokens"
    assert usage["input_token_details"]["audio_tokens"] > 200  # about 5 s at 50 a second
    assert usage["output_tokens"] > 5
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]
    assert completed[0]["languages"] == [{"code": "en"}]
    logprobs = completed[0]["logprobs"]  # included: the final decode's, token by token
    assert logprobs
    assert all(p["logprob"] <= 0 and p["token"] and p["bytes"] for p in logprobs)
    assert words("".join(p["token"] for p in logprobs)) == words(completed[0]["transcript"])
    committed = events.of("input_audio_buffer.committed")
    assert committed[1]["previous_item_id"] == committed[0]["item_id"]


def test_sdk_manual_commits_in_g711(realtime_server: ServerProcess, sentences: tuple[Speech, Speech]) -> None:
    first, second = sentences
    with _client(realtime_server).realtime.connect(extra_query={"intent": "transcription"}) as connection:
        events = Events(connection.recv_bytes)
        events.wait_for("session.created")
        connection.session.update(
            session=_transcription_session(format={"type": "audio/pcmu"}, turn_detection=None)
        )
        events.wait_for("session.updated")
        _append(connection, telephone(pcm(second, 8000) + silence(1.5, 8000), "pcmu"), 1600, 0)
        connection.input_audio_buffer.commit()
        events.wait_for(f"{ITEM}.completed")
        # no VAD: the client ended the turn, nothing was transcribed before its commit
        kinds = [e["type"] for e in events.seen]
        assert kinds.index("input_audio_buffer.committed") < kinds.index(f"{ITEM}.completed"), kinds
        # another format mid-session: the next audio is A-law
        connection.session.update(session=_transcription_session(format={"type": "audio/pcma"}))
        events.wait_for("session.updated", 2)
        _append(connection, telephone(pcm(first, 8000), "pcma"), 1600, 0)
        connection.input_audio_buffer.commit()
        completed = events.wait_for(f"{ITEM}.completed", 2)
        connection.input_audio_buffer.commit()  # nothing left to commit
        events.wait_for("error")
        connection.input_audio_buffer.append(audio=base64.b64encode(b"\xff" * 800).decode())
        connection.input_audio_buffer.clear()
        events.wait_for("input_audio_buffer.cleared")
    events.validated()
    assert_transcript(completed[0]["transcript"], SECOND)
    assert_transcript(completed[1]["transcript"], FIRST)
    assert "logprobs" not in completed[0]  # not included
    assert not events.of("input_audio_buffer.speech_started")
    assert len(events.of("input_audio_buffer.committed")) == 2


def test_sdk_semantic_vad_ends_turns_at_sentence_ends(
    realtime_server: ServerProcess, sentences: tuple[Speech, Speech]
) -> None:
    """Eagerness "low": a finished sentence ends the turn after 1 s of silence, an unfinished one only
    after 8 s. The 3 s pause after the first sentence ends its turn (the 2 s to spare are for the
    decode that reads the sentence, on a busy machine); the second turn ends by either rule."""
    first, second = sentences
    with _client(realtime_server).realtime.connect(extra_query={"intent": "transcription"}) as connection:
        events = Events(connection.recv_bytes)
        events.wait_for("session.created")
        connection.session.update(
            session=_transcription_session(turn_detection={"type": "semantic_vad", "eagerness": "low"})
        )
        updated = events.wait_for("session.updated")[0]["session"]["audio"]["input"]
        assert updated["turn_detection"] == {"type": "semantic_vad", "eagerness": "low"}
        _append(connection, pcm(first, 24000) + silence(3.0) + pcm(second, 24000), 4800, 0.1)  # real time
        _append(connection, silence(8.5), 4800, 0)
        completed = events.wait_for(f"{ITEM}.completed", 2)
    events.validated()
    assert_transcript(completed[0]["transcript"], FIRST)
    assert_transcript(completed[1]["transcript"], SECOND)


def test_sdk_keywords_reach_the_decoder(realtime_server: ServerProcess) -> None:
    """`keywords` are Whisper's hotwords: said to tiny.en without them, the name comes back misspelt."""
    speech = synthesize("We drove to Sheboygan on Tuesday.")
    with _client(realtime_server).realtime.connect(extra_query={"intent": "transcription"}) as connection:
        events = Events(connection.recv_bytes)
        events.wait_for("session.created")
        transcription = {"model": "gpt-transcribe", "languages": ["en"], "keywords": ["Sheboygan"]}
        connection.session.update(
            session=_transcription_session(transcription=transcription, turn_detection=None)
        )
        updated = events.wait_for("session.updated")[0]["session"]["audio"]["input"]
        assert updated["transcription"]["keywords"] == ["Sheboygan"]
        _append(connection, pcm(speech, 24000), 24000, 0)
        connection.input_audio_buffer.commit()
        completed = events.wait_for(f"{ITEM}.completed")[0]
    events.validated()
    assert "Sheboygan" in completed["transcript"]


def test_sdk_errors_leave_the_session_open(realtime_server: ServerProcess, short_speech: Speech) -> None:
    with _client(realtime_server).realtime.connect(extra_query={"intent": "transcription"}) as connection:
        events = Events(connection.recv_bytes)
        events.wait_for("session.created")
        for session in (
            _transcription_session(turn_detection={"type": "server_vad", "threshold": None}),
            _transcription_session(turn_detection={"type": "server_vad", "threshold": 7}),
            _transcription_session(transcription={"model": "nope"}),
            _transcription_session(transcription={"langauge": "en"}),
            _transcription_session(format={"type": "audio/opus"}),
            {"type": "realtime"},
        ):
            connection.send({"type": "session.update", "session": session})
        connection.send({"type": "response.create"})
        errors = events.wait_for("error", 7)
        params = [e["error"]["param"] for e in errors]
        assert params == [
            "session.audio.input.turn_detection.threshold", "session.audio.input.turn_detection.threshold",
            "model", "session.audio.input.transcription.langauge", "session.audio.input.format.type",
            "session.type", "type",
        ]  # fmt: skip
        assert errors[2]["error"]["code"] == "model_not_found"
        assert not events.of("session.updated")
        # the session goes on, as it was
        connection.session.update(session=_transcription_session(turn_detection=None))
        events.wait_for("session.updated")
        _append(connection, pcm(short_speech, 24000), 24000, 0)
        connection.input_audio_buffer.commit()
        completed = events.wait_for(f"{ITEM}.completed")
    events.validated()
    assert_transcript(completed[0]["transcript"], short_speech.text)


def _raw(server: ServerProcess, query: str = "?intent=transcription", **kwargs: Any) -> ClientConnection:
    return connect(server.url.replace("http", "ws", 1) + "/v1/realtime" + query, max_size=None, **kwargs)


def test_urls_the_server_refuses(realtime_server: ServerProcess) -> None:
    for query, param in (("?model=nope", "model"), ("?intent=conversation", "intent")):
        with _raw(realtime_server, query) as ws:
            message = json.loads(ws.recv(timeout=10))
            assert message["type"] == "error"
            assert message["error"]["param"] == param
            with pytest.raises(Exception, match="1008"):
                ws.recv(timeout=10)
    with _raw(realtime_server, "?model=whisper-1") as ws:  # what the SDK sends with model=
        assert json.loads(ws.recv(timeout=10))["type"] == "session.created"


def test_beta_clients_still_work(realtime_server: ServerProcess, sentences: tuple[Speech, Speech]) -> None:
    """As OpenAI's beta clients spoke: the `OpenAI-Beta: realtime=v1` header, `transcription_session.*`,
    G.711 as `g711_ulaw`, server VAD."""
    first, _ = sentences
    with _raw(realtime_server, additional_headers={"OpenAI-Beta": "realtime=v1"}) as ws:
        events = Events(ws.recv)
        created = events.wait_for("transcription_session.created")[0]
        assert created is events.seen[0]
        update = {"type": "transcription_session.update", "session": {
            "input_audio_format": "g711_ulaw",
            "input_audio_transcription": {"model": "whisper-1", "language": "en"},
            "turn_detection": {"type": "server_vad", "threshold": None},  # dropped the socket once
        }}  # fmt: skip
        ws.send(json.dumps(update))
        assert events.wait_for("error")[0]["error"]["param"] == "session.turn_detection.threshold"
        update["session"]["turn_detection"] = {"type": "server_vad", "silence_duration_ms": 500}
        ws.send(json.dumps(update))
        session = events.wait_for("transcription_session.updated")[0]["session"]
        assert session["input_audio_format"] == "g711_ulaw"
        assert session["turn_detection"]["silence_duration_ms"] == 500
        audio = telephone(silence(0.3, 8000) + pcm(first, 8000) + silence(1.0, 8000), "pcmu")
        for i in range(0, len(audio), 800):
            ws.send(
                json.dumps(
                    {
                        "type": "input_audio_buffer.append",
                        "audio": base64.b64encode(audio[i : i + 800]).decode(),
                    }
                )
            )
        completed = events.wait_for(f"{ITEM}.completed")[0]
    events.validated()
    assert_transcript(completed["transcript"], FIRST)
    assert completed["usage"]["type"] == "tokens"
    assert not events.of(f"{ITEM}.segment")  # GA's only
