"""The server <-> worker messages (`voxhost.manager.protocol`): each kind through a real multiprocessing
pipe, and the worker's serve loop (`_Worker`, in a thread, with a stub engine) keeping the rules: answers
by request id, a stream is chunks then a result, a cancel stops a generator between items, pings are
answered while a call is busy. No model, no subprocess: every test here takes milliseconds."""

from __future__ import annotations

import multiprocessing
import os
import pickle
import threading
from collections.abc import Iterator
from multiprocessing.connection import Connection
from typing import Any

import pytest

from voxhost.errors import BadRequest, from_wire, to_wire
from voxhost.manager import protocol
from voxhost.manager.protocol import (
    Call,
    Cancel,
    Chunk,
    Error,
    Kind,
    LoadFailed,
    Ping,
    Pong,
    ProtocolError,
    Ready,
    Result,
    Shutdown,
)
from voxhost.manager.registry import ModelSpec
from voxhost.manager.worker import _Worker

WAIT = 10.0  # seconds: the most any single wait here takes

REQUESTS: list[protocol.Request] = [
    Call(7, "transcribe", {"audio": b"\x00\x01" * 8, "language": "en"}),
    Cancel(7),
    Ping(8),
    Shutdown(),
]
REPLIES: list[protocol.Reply] = [
    Ready({"engine": "stub", "pid": 123, "load_seconds": 0.5}),
    LoadFailed(("ModelLoadError", "no such file", None)),
    Chunk(7, {"text": "hello"}),
    Result(7, {"text": "hello world"}, (1.0, 2.5)),
    Error(7, ("BadRequest", "bad language", "language")),
    Pong(8, {"pid": 123, "loads": 1, "requests": 4, "rss_bytes": 1 << 20}),
]


@pytest.fixture
def pipe() -> Iterator[tuple[Connection, Connection]]:
    here, there = multiprocessing.Pipe(duplex=True)
    yield here, there
    here.close()
    there.close()


def test_every_kind_has_one_message_and_one_direction() -> None:
    request_kinds = {protocol.kind_of(m) for m in REQUESTS}
    reply_kinds = {protocol.kind_of(m) for m in REPLIES}
    assert request_kinds | reply_kinds == set(Kind)
    assert not request_kinds & reply_kinds
    assert request_kinds == {Kind.CALL, Kind.CANCEL, Kind.PING, Kind.SHUTDOWN}


@pytest.mark.parametrize("message", REQUESTS, ids=lambda m: protocol.kind_of(m).value)
def test_requests_round_trip_through_a_pipe(
    pipe: tuple[Connection, Connection], message: protocol.Request
) -> None:
    here, there = pipe
    here.send(protocol.encode(message))
    assert there.poll(WAIT)
    received = protocol.decode_request(there.recv())
    assert received == message
    assert type(received) is type(message)


@pytest.mark.parametrize("message", REPLIES, ids=lambda m: protocol.kind_of(m).value)
def test_replies_round_trip_through_a_pipe(
    pipe: tuple[Connection, Connection], message: protocol.Reply
) -> None:
    here, there = pipe
    there.send(protocol.encode(message))
    assert here.poll(WAIT)
    received = protocol.decode_reply(here.recv())
    assert received == message
    assert type(received) is type(message)


@pytest.mark.parametrize("message", REQUESTS + REPLIES, ids=lambda m: protocol.kind_of(m).value)
def test_on_the_wire_a_message_is_a_plain_tuple_of_builtins(message: protocol.Message) -> None:
    wire = protocol.encode(message)
    assert type(wire) is tuple
    assert type(wire[0]) is str  # not the enum member: that would pickle as a reference to `Kind`
    assert wire == (protocol.kind_of(message).value, *message)
    assert b"voxhost" not in pickle.dumps(wire, protocol=pickle.HIGHEST_PROTOCOL)


def test_a_result_without_timing_reads_as_none() -> None:
    assert protocol.decode_reply(("result", 3, "text")) == Result(3, "text", None)


@pytest.mark.parametrize(
    "wire",
    [
        ("result", 1, None, (0.0, 1.0)),  # a reply is not a request
        ("nonsense", 1),
        ("call", 1, "transcribe"),  # a field missing
        ("ping", 1, 2),  # one too many
        (),
    ],
)
def test_decode_request_refuses_what_is_not_a_request(wire: tuple[Any, ...]) -> None:
    with pytest.raises(ProtocolError):
        protocol.decode_request(wire)


@pytest.mark.parametrize("wire", [("call", 1, "transcribe", {}), ("shutdown",), ("pong", 1), ("error", 1)])
def test_decode_reply_refuses_what_is_not_a_reply(wire: tuple[Any, ...]) -> None:
    with pytest.raises(ProtocolError):
        protocol.decode_reply(wire)


# --- the worker's serve loop, in a thread, over a real pipe -----------------------------------------
class _StubEngine:
    """Stands in for a model: `transcribe` blocks until released, `transcribe_windows` yields items
    one by one, each after the test lets it."""

    methods = frozenset({"transcribe", "transcribe_windows"})  # what the worker lets requests call

    def __init__(self) -> None:
        self.started = threading.Event()
        self.release = threading.Event()
        self.next_item = threading.Semaphore(0)
        self.closed = threading.Event()

    def transcribe(self, audio: bytes) -> dict[str, Any]:
        self.started.set()
        assert self.release.wait(WAIT)
        return {"text": f"{len(audio)} bytes"}

    def transcribe_windows(self, count: int) -> Iterator[int]:
        try:
            for index in range(count):
                assert self.next_item.acquire(timeout=WAIT)
                yield index
        finally:
            self.closed.set()


class _Conversation:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def send(self, message: protocol.Request) -> None:
        self.conn.send(protocol.encode(message))

    def receive(self) -> protocol.Reply:
        assert self.conn.poll(WAIT), "the worker did not answer"
        return protocol.decode_reply(self.conn.recv())


@pytest.fixture
def worker(pipe: tuple[Connection, Connection]) -> Iterator[tuple[_Conversation, _StubEngine]]:
    here, there = pipe
    engine = _StubEngine()
    spec = ModelSpec(id="stub", engine="stub", task="asr", origin="local", source="/nowhere")
    served = _Worker(there, spec, engine, parallel=2)  # type: ignore[arg-type]
    thread = threading.Thread(target=served.serve, name="serve", daemon=True)
    thread.start()
    conversation = _Conversation(here)
    yield conversation, engine
    engine.release.set()
    for _ in range(100):
        engine.next_item.release()
    conversation.send(Shutdown())
    thread.join(WAIT)
    assert not thread.is_alive(), "serve did not return on shutdown"
    served.pool.shutdown(wait=True)


def test_a_call_is_answered_with_its_result_and_timing(worker: tuple[_Conversation, _StubEngine]) -> None:
    conversation, engine = worker
    engine.release.set()
    conversation.send(Call(41, "transcribe", {"audio": b"1234"}))
    answer = conversation.receive()
    assert isinstance(answer, Result)
    assert (answer.request_id, answer.value) == (41, {"text": "4 bytes"})
    assert answer.timing is not None
    started, finished = answer.timing
    assert started <= finished


def test_a_failed_call_is_answered_with_its_error(worker: tuple[_Conversation, _StubEngine]) -> None:
    conversation, _ = worker
    conversation.send(Call(5, "synthesize", {"text": "not an asr method"}))
    answer = conversation.receive()
    assert isinstance(answer, Error)
    assert answer.request_id == 5
    error = from_wire(answer.error)
    assert isinstance(error, BadRequest)
    assert answer.error == to_wire(error)


def test_a_ping_is_answered_while_the_only_call_is_busy(worker: tuple[_Conversation, _StubEngine]) -> None:
    conversation, engine = worker
    conversation.send(Call(1, "transcribe", {"audio": b"xx"}))
    assert engine.started.wait(WAIT)
    conversation.send(Ping(2))
    pong = conversation.receive()  # before the call's result: the call is still blocked
    assert isinstance(pong, Pong)
    assert pong.request_id == 2
    assert pong.stats["pid"] == os.getpid()
    assert pong.stats["requests"] == 0
    engine.release.set()
    result = conversation.receive()
    assert isinstance(result, Result)
    assert result.request_id == 1


def test_a_stream_is_chunks_then_one_result(worker: tuple[_Conversation, _StubEngine]) -> None:
    conversation, engine = worker
    for _ in range(3):
        engine.next_item.release()
    conversation.send(Call(9, "transcribe_windows", {"count": 3}))
    answers = [conversation.receive() for _ in range(4)]
    assert answers[:3] == [Chunk(9, 0), Chunk(9, 1), Chunk(9, 2)]
    assert isinstance(answers[3], Result)
    assert (answers[3].request_id, answers[3].value) == (9, None)


def test_a_cancel_stops_the_generator_between_items(worker: tuple[_Conversation, _StubEngine]) -> None:
    conversation, engine = worker
    engine.next_item.release()
    conversation.send(Call(3, "transcribe_windows", {"count": 100}))
    assert conversation.receive() == Chunk(3, 0)
    conversation.send(Cancel(3))
    conversation.send(Ping(4))  # messages are read in order: once it is answered, the cancel is in
    pong = conversation.receive()
    assert isinstance(pong, Pong)
    engine.next_item.release()  # the item being made is finished but not sent
    end = conversation.receive()
    assert isinstance(end, Result)
    assert (end.request_id, end.value) == (3, None)
    assert engine.closed.wait(WAIT)  # the generator was closed, not left suspended
    conversation.send(Ping(5))  # nothing more came for request 3
    last = conversation.receive()
    assert isinstance(last, Pong)
    assert (last.request_id, last.stats["requests"]) == (5, 1)


def test_a_cancel_for_a_request_not_running_is_ignored(worker: tuple[_Conversation, _StubEngine]) -> None:
    conversation, engine = worker
    conversation.send(Cancel(77))
    engine.release.set()
    conversation.send(Call(78, "transcribe", {"audio": b""}))
    answer = conversation.receive()
    assert isinstance(answer, Result)
    assert answer.request_id == 78
