"""API keys, CORS and the checks that keep a server from being opened to the network by accident."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import httpx
import openai
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from conftest import ServerFactory, ServerProcess, Speech, assert_transcript
from voxhost.api.auth import KeyChecker, is_loopback, load_keys
from voxhost.server import check_exposure
from voxhost.settings import Settings

KEYS = ("sk-first-key", "sk-second-key")


@pytest.fixture(scope="module")
def keyed_server(tmp_path_factory: pytest.TempPathFactory, cache_dir: Path) -> ServerProcess:
    from conftest import start_server

    server = start_server(
        tmp_path_factory.mktemp("keyed"), cache_dir, "--model", "tiny.en", "--api-key", KEYS[0],
        env={"VOXHOST_API_KEY": "ignored-when-flags-are-given"},
        health_headers={"Authorization": f"Bearer {KEYS[0]}"},
    )  # fmt: skip
    yield server
    server.stop()


def test_requests_without_a_valid_key_get_401_in_openai_shape(keyed_server: ServerProcess) -> None:
    missing = httpx.get(keyed_server.url + "/v1/models")
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"].startswith("Bearer")
    assert missing.json()["error"]["code"] == "invalid_api_key"
    assert "didn't provide" in missing.json()["error"]["message"]
    wrong = httpx.get(keyed_server.url + "/v1/models", headers={"Authorization": "Bearer sk-wrong"})
    assert wrong.status_code == 401
    assert wrong.json()["error"]["message"] == "Incorrect API key provided."
    not_bearer = httpx.get(keyed_server.url + "/v1/models", headers={"Authorization": f"Basic {KEYS[0]}"})
    assert not_bearer.status_code == 401
    for path in ("/health", "/metrics", "/status", "/v1/audio/voices"):
        assert httpx.get(keyed_server.url + path).status_code == 401, path
    upload = httpx.post(keyed_server.url + "/v1/audio/transcriptions", files={"file": ("a.wav", b"x")})
    assert upload.status_code == 401


def test_probes_and_docs_need_no_key(keyed_server: ServerProcess) -> None:
    assert httpx.get(keyed_server.url + "/health/live").status_code == 200
    assert httpx.get(keyed_server.url + "/health/ready").status_code == 200
    assert httpx.get(keyed_server.url + "/openapi.json").status_code == 200


def test_the_openai_sdk_works_with_the_key(keyed_server: ServerProcess, speech: Speech) -> None:
    client = openai.OpenAI(base_url=keyed_server.url + "/v1", api_key=KEYS[0], max_retries=0, timeout=120)
    result = client.audio.transcriptions.create(model="whisper-1", file=("a.wav", speech.encoded("wav")))
    assert_transcript(result.text, speech.text)
    bad = openai.OpenAI(base_url=keyed_server.url + "/v1", api_key="sk-nope", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        bad.models.list()


def test_websockets_take_the_key_as_header_subprotocol_or_query(keyed_server: ServerProcess) -> None:
    ws_url = keyed_server.url.replace("http://", "ws://") + "/v1/realtime?intent=transcription"
    with pytest.raises(InvalidStatus) as refused:
        connect(ws_url, open_timeout=10).close()
    assert refused.value.response.status_code == 403
    with connect(ws_url, additional_headers={"Authorization": f"Bearer {KEYS[0]}"}, open_timeout=10) as ws:
        assert json.loads(ws.recv(timeout=10))["type"] == "session.created"
    protocols = ["realtime", f"openai-insecure-api-key.{KEYS[0]}"]
    with connect(ws_url, subprotocols=protocols, open_timeout=10) as ws:  # type: ignore[arg-type]
        assert ws.subprotocol == "realtime"
        assert json.loads(ws.recv(timeout=10))["type"] == "session.created"
    live = keyed_server.url.replace("http://", "ws://") + f"/v1/audio/transcriptions/live?api_key={KEYS[0]}"
    with connect(live, open_timeout=10) as ws:
        assert json.loads(ws.recv(timeout=10))["type"] == "ready"


def test_keys_from_a_file_and_the_environment(server_factory: ServerFactory, tmp_path: Path) -> None:
    key_file = tmp_path / "keys"
    key_file.write_text(f"# voxhost keys\n{KEYS[1]}  # the laptop\n\n")
    server = server_factory(
        "--model", "tiny.en", "--api-key-file", str(key_file),
        env={"VOXHOST_API_KEY": "sk-env-a,sk-env-b"},
        health_headers={"Authorization": f"Bearer {KEYS[1]}"},
    )  # fmt: skip
    for key in (KEYS[1], "sk-env-a", "sk-env-b"):
        response = httpx.get(server.url + "/v1/models", headers={"Authorization": f"Bearer {key}"})
        assert response.status_code == 200, key
    assert httpx.get(server.url + "/v1/models", headers={"Authorization": "Bearer sk-env"}).status_code == 401


def test_cors_is_off_unless_configured(server_factory: ServerFactory, server: ServerProcess) -> None:
    preflight = {"Origin": "http://app.example", "Access-Control-Request-Method": "POST"}
    off = httpx.options(server.url + "/v1/audio/transcriptions", headers=preflight)
    assert "access-control-allow-origin" not in off.headers
    keyed = server_factory(
        "--model", "tiny.en", "--cors-origin", "http://app.example", "--api-key", KEYS[0],
        health_headers={"Authorization": f"Bearer {KEYS[0]}"},
    )  # fmt: skip
    allowed = httpx.options(keyed.url + "/v1/audio/transcriptions", headers=preflight)
    assert allowed.status_code == 200  # answered before the key check: preflights carry no key
    assert allowed.headers["access-control-allow-origin"] == "http://app.example"
    other = httpx.options(
        keyed.url + "/v1/audio/transcriptions",
        headers={**preflight, "Origin": "http://evil.example"},
    )
    assert other.headers.get("access-control-allow-origin") != "http://evil.example"


def test_key_checking_and_loading(tmp_path: Path) -> None:
    checker = KeyChecker(["alpha", "beta"])
    assert checker.valid("alpha")
    assert checker.valid("beta")
    for wrong in ("", None, "alph", "alphaa", "ALPHA", "alpha "):
        assert not checker.valid(wrong)
    assert not KeyChecker([])
    key_file = tmp_path / "keys"
    key_file.write_text("one\n# two\n three # comment\n")
    assert load_keys([" x ", ""], key_file) == ["x", "one", "three"]


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("127.0.0.1", True), ("::1", True), ("localhost", True), ("0.0.0.0", False), ("", False),
     ("192.168.1.5", False), ("::", False), ("myhost", False)],
)  # fmt: skip
def test_loopback_addresses(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_exposure_checks(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="voxhost"):
        check_exposure(Settings(host="0.0.0.0"))
    assert "no API key" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="voxhost"):
        check_exposure(Settings(host="0.0.0.0", api_key=["k"]))
        check_exposure(Settings())
    assert caplog.text == ""
    exposed = {"api_key": ["k"], "wyoming_uri": "tcp://0.0.0.0:10300"}
    with pytest.raises(SystemExit, match="wyoming-open"):
        check_exposure(Settings(**exposed))
    with caplog.at_level(logging.WARNING, logger="voxhost"):
        check_exposure(Settings(**exposed, wyoming_open=True))
    assert "no authentication" in caplog.text
    check_exposure(Settings(api_key=["k"], wyoming_uri="tcp://0.0.0.0:10300", wyoming=False))


def test_audio_longer_than_the_limit_is_refused(
    server_factory: ServerFactory, speech: Speech, short_speech: Speech
) -> None:
    import asyncio

    from wyoming_helpers import pcm_of, transcribe

    assert short_speech.seconds < 4 < speech.seconds
    server = server_factory("--model", "tiny.en", "--max-audio-seconds", "4")
    url = server.url + "/v1/audio/transcriptions"
    response = httpx.post(url, files={"file": ("a.wav", speech.encoded("wav"))}, timeout=60)
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "audio_too_long"
    assert "longer than the limit of 4s" in response.json()["error"]["message"]
    events = asyncio.run(transcribe(server.wyoming_uri, pcm_of(speech, 16000), 16000, 2, 1))
    assert events[-1].type == "error"
    assert "limit of 4s" in events[-1].data["text"]
    short = httpx.post(url, files={"file": ("a.wav", short_speech.encoded("wav"))}, timeout=60)
    assert short.status_code == 200, short.text


def test_live_streams_have_message_and_session_limits(server_factory: ServerFactory) -> None:
    import base64

    from websockets.exceptions import ConnectionClosed

    server = server_factory("--model", "tiny.en", "--max-stream-seconds", "2", "--max-ws-message-kb", "8")
    base = server.url.replace("http://", "ws://")
    silence = bytes(4000)  # 0.125 s of 16 kHz 16-bit silence (no speech: no model time)

    def errors_until_closed(ws: object, send: object, chunks: int) -> list[dict[str, object]]:
        seen = []
        try:
            for _ in range(chunks):
                send()  # type: ignore[operator]
            while True:
                message = json.loads(ws.recv(timeout=10))  # type: ignore[attr-defined]
                if message.get("type") == "error":  # voxhost's protocol: flat; Realtime: under "error"
                    seen.append(message.get("error") or message)
        except ConnectionClosed:
            return seen

    with connect(base + "/v1/audio/transcriptions/live", open_timeout=10) as ws:
        assert json.loads(ws.recv(timeout=10))["type"] == "ready"
        ws.send(bytes(16 * 1024))  # one message over 8 KiB: refused, the stream goes on
        too_big = json.loads(ws.recv(timeout=10))
        assert too_big["type"] == "error"
        assert "limited to 8192 bytes" in too_big["message"]
        seen = errors_until_closed(ws, lambda: ws.send(silence), 20)  # 2.5 s of audio: over the limit
    assert seen[-1]["code"] == "stream_too_long"
    assert ws.close_code == 1008

    with connect(base + "/v1/realtime?intent=transcription", open_timeout=10) as ws:
        json.loads(ws.recv(timeout=10))
        chunk = json.dumps(
            {"type": "input_audio_buffer.append", "audio": base64.b64encode(bytes(6000)).decode()}
        )
        seen = errors_until_closed(ws, lambda: ws.send(chunk), 20)  # 24 kHz: 20 x 0.125 s = 2.5 s
    assert seen[-1]["code"] == "stream_too_long"


def test_the_text_limit_is_one_rule_for_http_and_wyoming(server_factory: ServerFactory) -> None:
    import asyncio

    from wyoming.client import AsyncClient
    from wyoming.tts import Synthesize

    server = server_factory("--model", "en_US-joe-medium", "--max-input-chars", "20")
    text = "This sentence is longer than twenty characters."
    answer = httpx.post(server.url + "/v1/audio/speech", json={"input": text, "voice": "alloy"}, timeout=60)
    assert answer.status_code == 400
    message = answer.json()["error"]["message"]
    assert message == f"the text is {len(text)} characters; the limit is 20 (--max-input-chars)"

    async def wyoming() -> str:
        async with AsyncClient.from_uri(server.wyoming_uri) as client:
            await client.write_event(Synthesize(text=text).event())
            event = await asyncio.wait_for(client.read_event(), 30)
            assert event is not None
            assert event.type == "error"
            return str(event.data["text"])

    assert asyncio.run(wyoming()) == message
    short = httpx.post(
        server.url + "/v1/audio/speech", json={"input": "Hello there.", "voice": "alloy"}, timeout=60
    )
    assert short.status_code == 200
