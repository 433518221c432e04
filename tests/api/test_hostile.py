"""Safe by default (issue 23): each attack of the issue's table, tried by a hostile client on loopback
against a server with the default protections, bounded in bytes and time; then what a friendly client
does still works. The limits are lowered where the default would make a test slow (connection counts,
timeouts); the rules are the defaults' rules."""

from __future__ import annotations

import asyncio
import contextlib
import json
import select
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect
from wyoming.client import AsyncClient
from wyoming.event import async_read_event
from wyoming.info import Describe
from wyoming.tts import SynthesizeChunk, SynthesizeStart

from conftest import ServerProcess, Speech, start_server, synthesize
from voxhost.audio import decode_audio
from voxhost.errors import ClientGone, ServerBusy
from voxhost.manager.limits import AudioBudget, HeldAudio, RequestLimits
from voxhost.manager.live import LiveEvent, LiveTranscriber, VadConfig
from voxhost.results import TranscribeOptions, Transcription
from voxhost.settings import Settings

KEY = "sk-hostile-test-key"
INPUT_CHARS = 2000
HEADER_TIMEOUT = 2
MAX_CONNECTIONS = 24
WYOMING_CONNECTIONS = 4
EVIL = "https://evil.example"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, cache_dir: Path) -> Iterator[ServerProcess]:
    """The README's server (keyless, loopback, Wyoming on), with connection limits small enough to
    reach in a test."""
    proc = start_server(
        tmp_path_factory.mktemp("hostile"), cache_dir, "--model", "tiny.en", "--model", "en_US-joe-medium",
        "--max-input-chars", str(INPUT_CHARS), "--max-connections", str(MAX_CONNECTIONS),
        "--header-timeout", str(HEADER_TIMEOUT), "--keep-alive-timeout", "1",
        "--wyoming-idle-timeout", str(HEADER_TIMEOUT),
        "--wyoming-max-connections", str(WYOMING_CONNECTIONS), "--max-live-sessions", "2",
    )  # fmt: skip
    yield proc
    proc.stop()


def _address(server: ServerProcess) -> tuple[str, int]:
    host, port = server.url.removeprefix("http://").split(":")
    return host, int(port)


def _wyoming_address(server: ServerProcess) -> tuple[str, int]:
    assert server.wyoming_uri is not None
    host, port = server.wyoming_uri.removeprefix("tcp://").split(":")
    return host, int(port)


def _raw(server: ServerProcess) -> socket.socket:
    return socket.create_connection(_address(server), timeout=30)


def _response(sock: socket.socket) -> tuple[int, bytes]:
    """The status and body of the HTTP answer on `sock` (read until the server closes or 30 s)."""
    data = b""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            chunk = sock.recv(65536)
        except (ConnectionResetError, TimeoutError):
            break
        if not chunk:
            break
        data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        length = [
            int(line.split(b":")[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        ]
        if length and len(body) >= length[0]:
            break
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), body


async def _describe_works(server: ServerProcess) -> bool:
    async with AsyncClient.from_uri(server.wyoming_uri or "") as client:
        await client.write_event(Describe().event())
        event = await asyncio.wait_for(client.read_event(), 30)
        return event is not None and event.type == "info"


def _log_until(server: ServerProcess, text: str) -> str:
    """The server's log once it shows `text` (polled, 10 s at most)."""
    for _ in range(200):
        log = server.log()
        if text in log:
            return log
        time.sleep(0.05)
    raise AssertionError(f"{text!r} never appeared in the log:\n{server.log_tail()}")


# --- 1. a Wyoming header declaring a 300 MiB payload -----------------------------------------------
def test_a_wyoming_frame_larger_than_its_event_may_carry_is_refused_before_its_payload(
    server: ServerProcess,
) -> None:
    async def attack() -> tuple[str, bytes]:
        reader, writer = await asyncio.open_connection(*_wyoming_address(server))
        header = {"type": "audio-chunk", "data": {"rate": 16000, "width": 2, "channels": 1},
                  "payload_length": 300 * 2**20}  # fmt: skip
        writer.write(json.dumps(header).encode() + b"\n")  # and not one byte of the payload
        await writer.drain()
        event = await asyncio.wait_for(async_read_event(reader), 30)
        rest = await asyncio.wait_for(reader.read(), 30)  # the server closed the connection
        writer.close()
        assert event is not None
        return event.type + ": " + str(event.data.get("text")), rest

    answer, rest = asyncio.run(attack())
    assert answer.startswith("error: a Wyoming audio-chunk event may carry at most 26214400 bytes of payload")
    assert rest == b""
    assert asyncio.run(_describe_works(server))


# --- 2. live WebSockets opened from another site's page --------------------------------------------
def test_websockets_from_another_origin_are_refused_at_the_handshake(server: ServerProcess) -> None:
    base = server.url.replace("http://", "ws://")
    for path in ("/v1/audio/transcriptions/live", "/v1/realtime?intent=transcription"):
        with pytest.raises(InvalidStatus) as refused:
            connect(base + path, origin=EVIL, open_timeout=10).close()  # type: ignore[arg-type]
        assert refused.value.response.status_code == 403, path
    # the playground's own page (same origin) and clients that send no Origin are served
    with connect(base + "/v1/audio/transcriptions/live", origin=server.url, open_timeout=10) as ws:  # type: ignore[arg-type]
        assert json.loads(ws.recv(timeout=10))["type"] == "ready"
    with connect(base + "/v1/realtime?intent=transcription", open_timeout=10) as ws:
        assert json.loads(ws.recv(timeout=10))["type"] == "session.created"


# --- 3. DNS rebinding: a request for 127.0.0.1 under the attacker's name ---------------------------
def test_a_foreign_host_name_is_refused(server: ServerProcess) -> None:
    port = _address(server)[1]
    rebound = httpx.get(server.url + "/status", headers={"Host": f"attacker.example:{port}"}, timeout=10)
    assert rebound.status_code == 403
    assert rebound.json()["error"]["code"] == "forbidden_origin"
    assert "host name" in rebound.json()["error"]["message"]
    for name in ("localhost", "127.0.0.1", "[::1]", "voxhost.localhost"):
        assert (
            httpx.get(server.url + "/status", headers={"Host": f"{name}:{port}"}, timeout=10).status_code
            == 200
        )


# --- 4. "simple" cross-site requests that need no preflight ----------------------------------------
def test_state_changing_and_data_requests_from_another_origin_are_refused(
    server: ServerProcess, short_speech: Speech
) -> None:
    cross_site = {"Origin": EVIL, "Content-Type": "text/plain"}
    for action in ("load", "unload"):
        answer = httpx.post(
            f"{server.url}/v1/models/tiny.en/{action}", headers=cross_site, content=b"x", timeout=30
        )
        assert answer.status_code == 403, action
    status = httpx.get(server.url + "/status", timeout=10).json()
    assert {m["id"]: m["state"] for m in status["models"]}["tiny.en"] != "ready"  # the load never ran
    upload = httpx.post(
        server.url + "/v1/audio/transcriptions", headers={"Origin": EVIL},
        files={"file": ("a.wav", short_speech.encoded("wav"))}, timeout=30,
    )  # fmt: skip
    assert upload.status_code == 403
    assert httpx.get(server.url + "/v1/models", headers={"Origin": "null"}, timeout=10).status_code == 403
    # the same request without an Origin (curl, the SDKs, Home Assistant) is served
    assert httpx.post(f"{server.url}/v1/models/tiny.en/load", timeout=120).status_code == 200


# --- 5. a 200 MiB JSON body ----------------------------------------------------------------------
def test_json_bodies_are_bounded_by_content_length_and_while_streaming(server: ServerProcess) -> None:
    limit = INPUT_CHARS * 12 + 64 * 1024
    with _raw(server) as sock:  # declares 200 MiB, sends 1 KiB: refused on the declaration
        sock.sendall(
            b"POST /v1/audio/speech HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Content-Length: " + str(200 * 2**20).encode() + b"\r\n\r\n" + b'{"input": "' + b"a" * 1024
        )
        status, body = _response(sock)
    assert status == 413
    assert json.loads(body)["error"]["code"] == "payload_too_large"
    with _raw(server) as sock:  # the declaration is refused on every route, one that reads no body too
        sock.sendall(
            b"POST /v1/models/tiny.en/unload HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/plain\r\n"
            b"Content-Length: " + str(200 * 2**20).encode() + b"\r\n\r\n"
        )
        assert _response(sock)[0] == 413
    with _raw(server) as sock:  # chunked, no length: refused once past the bound
        sock.sendall(
            b"POST /v1/audio/speech HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n"
        )
        piece = b"%x\r\n%s\r\n" % (65536, b" " * 65536)
        sent = 0
        for _ in range(800):  # 50 MiB at most
            if select.select([sock], [], [], 0)[0]:
                break  # answered
            try:
                sock.sendall(piece)
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += 65536
        status, body = _response(sock)
    assert status == 413
    assert limit < sent < 800 * 65536
    assert json.loads(body)["error"]["message"] == (
        f"the request body is larger than the limit of {limit} bytes (from --max-input-chars)"
    )
    speech = httpx.post(
        server.url + "/v1/audio/speech", json={"input": "Hello there.", "voice": "alloy"}, timeout=60
    )
    assert speech.status_code == 200


# --- 6. the API key of a WebSocket URL in the log ------------------------------------------------
def test_api_keys_in_websocket_urls_are_not_logged(tmp_path: Path, cache_dir: Path) -> None:
    keyed = start_server(
        tmp_path, cache_dir, "--model", "tiny.en", "--api-key", KEY, "--log-level", "debug",
        health_headers={"Authorization": f"Bearer {KEY}"},
    )  # fmt: skip
    try:
        url = (
            keyed.url.replace("http://", "ws://") + f"/v1/audio/transcriptions/live?language=en&api_key={KEY}"
        )
        with connect(url, open_timeout=10) as ws:
            assert json.loads(ws.recv(timeout=10))["type"] == "ready"
        with pytest.raises(InvalidStatus):
            connect(url.replace(KEY, KEY + "-wrong"), open_timeout=10).close()
        plain = url.split("?")[0]
        with connect(plain, subprotocols=[f"openai-insecure-api-key.{KEY}"], open_timeout=10) as ws:  # type: ignore[list-item]
            assert json.loads(ws.recv(timeout=10))["type"] == "ready"
        with connect(plain, additional_headers={"Authorization": f"Bearer {KEY}"}, open_timeout=10) as ws:
            assert json.loads(ws.recv(timeout=10))["type"] == "ready"
        log = _log_until(keyed, "WebSocket /v1/audio/transcriptions/live?language=en&api_key=[redacted]")
    finally:
        keyed.stop()
    assert KEY not in keyed.log()
    assert log.count("api_key=[redacted]") >= 2


# --- 7. streamed Wyoming synthesis text that never ends a sentence --------------------------------
def test_streamed_synthesis_text_is_bounded(server: ServerProcess) -> None:
    async def chunks(size: int, count: int) -> list[str]:
        seen: list[str] = []
        async with AsyncClient.from_uri(server.wyoming_uri or "") as client:
            await client.write_event(SynthesizeStart().event())
            with contextlib.suppress(ConnectionError):  # the server may stop reading
                for _ in range(count):
                    await client.write_event(SynthesizeChunk(text="word " * (size // 5)).event())
            for _ in range(count):
                event = await asyncio.wait_for(client.read_event(), 30)
                if event is None:
                    seen.append("closed")
                    break
                seen.append(f"{event.type}: {event.data.get('text')}")
                if event.type == "error":
                    break
        return seen

    # 1.25 MiB in one chunk: more data than any event may carry, refused before it is read
    huge = asyncio.run(chunks(int(1.25 * 2**20), 1))
    assert huge[0].startswith("error: a Wyoming synthesize-chunk event may carry at most")
    # small chunks without a sentence end: refused once the held text passes --max-input-chars
    held = asyncio.run(chunks(500, 40))
    assert len(held) == 1
    assert held[0] == (
        f"error: the streamed text has 2500 characters without a sentence end; the limit is {INPUT_CHARS} "
        "(--max-input-chars)"
    )
    assert asyncio.run(_describe_works(server))


# --- 8. a forged access-log line --------------------------------------------------------------------
def test_control_characters_in_paths_are_escaped_in_the_log(server: ServerProcess) -> None:
    with _raw(server) as sock:
        sock.sendall(
            b"GET /nothing%0aforged-line%1b[31m HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
        )
        assert _response(sock)[0] == 404
    log = _log_until(server, "/nothing\\x0aforged-line\\x1b[31m 404")
    assert not any(line.startswith("forged-line") for line in log.splitlines())
    assert "\x1b" not in log


# --- 9. idle and half-sent connections --------------------------------------------------------------
def test_idle_and_half_sent_connections_are_bounded(server: ServerProcess) -> None:
    flood = [_raw(server) for _ in range(MAX_CONNECTIONS + 6)]
    try:
        for sock in flood:  # half a request each: the headers never end
            sock.sendall(b"GET /health/live HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        started = time.monotonic()
        answers = []
        for sock in flood:  # every one is answered (503 past the cap) or closed, none kept
            sock.settimeout(HEADER_TIMEOUT * 10)
            answers.append(sock.recv(4096))
        waited = time.monotonic() - started
        refused = [a for a in answers if a.startswith(b"HTTP/1.1 503")]
        assert len(refused) >= 6
        assert all(a == b"" or a.startswith(b"HTTP/1.1 503") for a in answers)
        assert waited < HEADER_TIMEOUT * 10
    finally:
        for sock in flood:
            sock.close()
    assert httpx.get(server.url + "/health/live", timeout=10).status_code == 200
    with _raw(server) as sock:  # headers without end, each line complete: refused past 64 KiB
        sock.sendall(b"GET /health/live HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            for index in range(100):  # 100 KiB at most
                sock.sendall(b"X-Pad-%d: %s\r\n" % (index, b"a" * 1000))
        assert _response(sock)[0] == 431

    async def wyoming_flood() -> tuple[list[str], list[bytes]]:
        opened = [
            await asyncio.open_connection(*_wyoming_address(server)) for _ in range(WYOMING_CONNECTIONS)
        ]
        for reader, writer in opened:  # each is served (so the server has seen all of them), then idles
            writer.write(b'{"type": "describe"}\n')
            answer = await asyncio.wait_for(async_read_event(reader), 30)
            assert answer is not None
            assert answer.type == "info"
        reader, writer = await asyncio.open_connection(*_wyoming_address(server))  # one too many
        extra = await asyncio.wait_for(async_read_event(reader), 30)
        writer.close()
        # the idle ones are closed by the server after the idle timeout
        ends = [await asyncio.wait_for(r.read(), HEADER_TIMEOUT * 10) for r, _ in opened]
        for _, w in opened:
            w.close()
        return [f"{extra.type}: {extra.data.get('text')}" if extra else "closed"], ends

    extra, ends = asyncio.run(wyoming_flood())
    assert extra == [f"error: the server has its limit of {WYOMING_CONNECTIONS} Wyoming connections open"]
    assert ends == [b""] * WYOMING_CONNECTIONS
    assert asyncio.run(_describe_works(server))


# --- 10. live sessions: how many, and audio far ahead of real time ------------------------------------
def test_live_sessions_are_capped(server: ServerProcess) -> None:
    base = server.url.replace("http://", "ws://")
    with contextlib.ExitStack() as sessions:
        live = sessions.enter_context(connect(base + "/v1/audio/transcriptions/live", open_timeout=10))
        sessions.enter_context(connect(base + "/v1/realtime?intent=transcription", open_timeout=10))
        with pytest.raises(InvalidStatus) as refused:
            connect(base + "/v1/audio/transcriptions/live", open_timeout=10).close()
        assert refused.value.response.status_code == 429
        assert b"--max-live-sessions" in refused.value.response.body
        assert json.loads(live.recv(timeout=10))["type"] == "ready"
        with pytest.raises(TimeoutError):  # an open session outlives the header timeout: nothing closes it
            live.recv(timeout=HEADER_TIMEOUT * 1.5)
        live.send(json.dumps({"type": "stop"}))
        assert json.loads(live.recv(timeout=10))["type"] == "done"
    for _ in range(100):  # the slots come back once the sessions have ended
        try:
            with connect(base + "/v1/audio/transcriptions/live", open_timeout=10) as ws:
                assert json.loads(ws.recv(timeout=10))["type"] == "ready"
                return
        except InvalidStatus:
            time.sleep(0.05)
    raise AssertionError("the live-session slots never came back")


def test_a_live_client_far_ahead_of_real_time_is_pushed_back() -> None:
    """Speech fed with no pause for breath while every decode waits: `feed` stops taking audio once the
    finals waiting hold `max_backlog` seconds (plus the utterance that crossed it), and goes on when the
    decodes do."""
    sentence = decode_audio(synthesize("The quick brown fox jumps over the lazy dog.").encoded("wav"))
    pause = np.zeros(16000, dtype=np.float32)
    utterance = np.concatenate([sentence, pause])
    gate = asyncio.Event()
    decodes = 0

    async def transcribe(audio: np.ndarray, options: TranscribeOptions) -> Transcription:
        nonlocal decodes
        decodes += 1
        await gate.wait()
        return Transcription("The quick brown fox.", "en", 1.0, len(audio) / 16000)

    finals: list[LiveEvent] = []

    async def emit(event: LiveEvent) -> None:
        if event.kind == "final":
            finals.append(event)

    async def hostile() -> tuple[float, float, int]:
        backlog = 3 * len(utterance) / 16000
        live = LiveTranscriber(transcribe, emit, vad=VadConfig(), partial_interval=0, max_backlog=backlog)
        feeding = asyncio.create_task(_feed_all(live, utterance, 20))
        for _ in range(3000):  # until the finals waiting pass the bound
            await asyncio.sleep(0.01)
            if live.backlog > backlog or feeding.done():
                break
        assert live.backlog > backlog
        for _ in range(20):  # the feed that crossed it ends; the next one waits
            await asyncio.sleep(0.01)
        stopped_at = live.now
        for _ in range(20):
            await asyncio.sleep(0.01)
        assert live.now == stopped_at  # no audio taken while the decodes are behind
        assert not feeding.done()
        held = live.backlog
        gate.set()
        await asyncio.wait_for(feeding, 120)
        await live.finish()
        return stopped_at, held, len(finals)

    stopped_at, held, count = asyncio.run(hostile())
    seconds = len(utterance) / 16000
    assert held <= 4 * seconds  # the bound plus the utterance that crossed it
    assert stopped_at < 20 * seconds / 2
    assert count == 20  # nothing was lost: every utterance got its final once the decodes ran


async def _feed_all(live: LiveTranscriber, utterance: np.ndarray, times: int) -> None:
    for _ in range(times):
        for start in range(0, len(utterance), 1600):
            await live.feed(utterance[start : start + 1600])


# --- decoded audio: a server-wide budget -------------------------------------------------------------
def test_decoded_audio_is_held_within_a_server_wide_budget(speech: Speech) -> None:
    """Two uploads that together do not fit the budget: the second waits for room (here: past its wait,
    ServerBusy, a 503), and fits once the first is released."""
    wav = speech.encoded("wav")
    one = len(decode_audio(wav)) * 4
    limits = RequestLimits(Settings(max_decoded_audio_mb=1.5 * one / 2**20, queue_timeout=0.5))
    assert isinstance(limits.audio_budget, AudioBudget)

    async def uploads() -> tuple[int, str, int]:
        first = await limits.decoded(wav)
        held = limits.audio_budget.held
        try:
            await limits.decoded(wav)
            refused = ""
        except ServerBusy as exc:
            refused = exc.message
        first.release()
        second = await limits.decoded(wav)
        after = limits.audio_budget.held
        second.release()
        return held, refused, after

    held, refused, after = asyncio.run(uploads())
    assert one <= held <= one * 1.5
    assert "--max-decoded-audio-mb" in refused
    assert after == held
    assert limits.audio_budget.held == 0

    # a decode whose request went away stops at its next allocation and keeps no room
    gone = HeldAudio(limits.audio_budget)
    gone.admit(1000)
    gone.release()
    with pytest.raises(ClientGone):
        gone.admit(2000)
    assert limits.audio_budget.held == 0

    # one waiting upload gets in as soon as room is given back
    budget = AudioBudget(100, wait=30)
    budget.take(80)
    taken = threading.Event()
    waiter = threading.Thread(target=lambda: (budget.take(50), taken.set()), daemon=True)
    waiter.start()
    assert not taken.wait(0.2)
    budget.give(80)
    assert taken.wait(30)
    assert budget.held == 50


# --- the rules themselves, for the set-ups a test server cannot take (other interfaces, names) -------
@pytest.mark.parametrize(
    ("allowed", "bind", "host", "answered"),
    [
        ([], "127.0.0.1", "localhost", True), ([], "127.0.0.1", "127.0.0.5", True), ([], "::1", "::1", True),
        ([], "127.0.0.1", "attacker.example", False), ([], "127.0.0.1", "192.168.1.5", False),
        ([], "127.0.0.1", "", False), ([], "0.0.0.0", "voxhost.lan", True), ([], "", "anything", True),
        (["voxhost.lan"], "0.0.0.0", "voxhost.lan", True), (["voxhost.lan"], "0.0.0.0", "other.lan", False),
        (["voxhost.lan"], "0.0.0.0", "localhost", True), (["*.home.arpa"], "0.0.0.0", "box.home.arpa", True),
        (["*.home.arpa"], "0.0.0.0", "home.arpa", True), (["*.home.arpa"], "0.0.0.0", "evilhome.arpa", False),
        (["*"], "127.0.0.1", "attacker.example", True),
    ],
)  # fmt: skip
def test_the_host_rule(allowed: list[str], bind: str, host: str, answered: bool) -> None:
    from voxhost.api.origin import HostRule

    assert HostRule(allowed, bind).allows(host) is answered


@pytest.mark.parametrize(
    ("cors", "origin", "host", "allowed"),
    [
        ([], "http://127.0.0.1:8000", "127.0.0.1:8000", True),
        ([], "http://localhost:8000", "localhost:8000", True),
        ([], "http://127.0.0.1:9000", "127.0.0.1:8000", False), ([], "null", "127.0.0.1:8000", False),
        ([], "https://evil.example", "127.0.0.1:8000", False), ([], "file://", "127.0.0.1:8000", False),
        (["https://app.example"], "https://app.example", "127.0.0.1:8000", True),
        (["https://app.example/"], "https://APP.example", "127.0.0.1:8000", True),
        (["https://app.example"], "https://evil.example", "127.0.0.1:8000", False),
        (["*"], "https://evil.example", "127.0.0.1:8000", True),
    ],
)  # fmt: skip
def test_the_origin_rule(cors: list[str], origin: str, host: str, allowed: bool) -> None:
    from voxhost.api.origin import OriginRule

    assert OriginRule(cors).allows(origin, host) is allowed


def test_log_lines_are_redacted_and_escaped() -> None:
    from voxhost.logs import redact

    assert redact('1.2.3.4:5 - "WebSocket /v1/realtime?api_key=sk-1&x=2" 403') == (
        '1.2.3.4:5 - "WebSocket /v1/realtime?api_key=[redacted]&x=2" 403'
    )
    assert redact("GET /a?x=1&API_KEY=sk-2 HTTP/1.1") == "GET /a?x=1&API_KEY=[redacted] HTTP/1.1"
    assert redact("GET /a\nforged\r\x1b[2J\x7f") == "GET /a\\x0aforged\\x0d\\x1b[2J\\x7f"
    assert redact("the monkey=banana") == "the monkey=banana"
    assert redact("< Sec-WebSocket-Protocol: realtime, openai-insecure-api-key.sk-3") == (
        "< Sec-WebSocket-Protocol: realtime, openai-insecure-api-key.[redacted]"
    )
    assert redact("< Authorization: Bearer sk-4") == "< Authorization: Bearer [redacted]"
