"""Text to speech through a live server: Piper and Kokoro, every output format, streaming, errors.
Speech is checked by transcribing it with tiny.en on the same server (a round trip)."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator

import httpx
import numpy as np
import openai
import pytest

from conftest import LONG_TEXT, TEXT, ServerProcess, assert_transcript, start_server, until
from voxhost.audio import decode_audio
from voxhost.audio.text import split_sentences


@pytest.fixture(scope="module")
def tts_server(tmp_path_factory: pytest.TempPathFactory, cache_dir: object) -> Iterator[ServerProcess]:
    server = start_server(
        tmp_path_factory.mktemp("tts"),
        cache_dir,  # type: ignore[arg-type]
        "--model", "tiny.en", "--model", "en_US-joe-medium", "--model", "kokoro", "--preload",
    )  # fmt: skip
    yield server
    server.stop()


@pytest.fixture(scope="module")
def client(tts_server: ServerProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=tts_server.url + "/v1", api_key="unused", max_retries=0, timeout=120)


def speak(server: ServerProcess, **body: object) -> httpx.Response:
    return httpx.post(server.url + "/v1/audio/speech", json={"input": TEXT, **body}, timeout=120)


def transcribe(server: ServerProcess, audio: bytes, name: str = "speech.wav") -> str:
    response = httpx.post(
        server.url + "/v1/audio/transcriptions",
        files={"file": (name, audio)},
        data={"model": "tiny.en"},
        timeout=120,
    )
    assert response.status_code == 200, response.text
    return str(response.json()["text"])


@pytest.mark.parametrize(
    ("model", "voice"),
    [
        ("en_US-joe-medium", None),
        ("tts-1", "alloy"),
        ("kokoro", "jf_alpha"),
        ("kokoro", "jm_kumo"),
        ("tts-1-hd", "echo"),
    ],
)
def test_round_trip_through_the_same_server(tts_server: ServerProcess, model: str, voice: str | None) -> None:
    body: dict[str, object] = {"model": model, "response_format": "wav"}
    if voice:
        body["voice"] = voice
    response = speak(tts_server, **body)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "audio/wav"
    assert_transcript(transcribe(tts_server, response.content), TEXT, max_errors=2)


def test_sdk_speech_and_streaming_response(client: openai.OpenAI, tts_server: ServerProcess) -> None:
    audio = client.audio.speech.create(model="tts-1", voice="alloy", input=TEXT, response_format="mp3")
    assert_transcript(transcribe(tts_server, audio.content, "a.mp3"), TEXT, max_errors=2)
    with client.audio.speech.with_streaming_response.create(
        model="tts-1", voice="nova", input=TEXT, response_format="opus"
    ) as response:
        data = b"".join(response.iter_bytes(4096))
    assert_transcript(transcribe(tts_server, data, "a.ogg"), TEXT, max_errors=2)


def test_every_response_format_decodes_to_the_same_audio(tts_server: ServerProcess) -> None:
    reference = speak(tts_server, model="en_US-joe-medium", response_format="wav")
    assert reference.headers["x-sample-rate"] == "22050"
    seconds = len(decode_audio(reference.content)) / 16000
    assert 4 < seconds < 12
    expected_types = {"mp3": "audio/mpeg", "opus": "audio/ogg", "aac": "audio/aac", "flac": "audio/flac"}
    for fmt, content_type in expected_types.items():
        response = speak(tts_server, model="en_US-joe-medium", response_format=fmt)
        assert response.status_code == 200, (fmt, response.text)
        assert response.headers["content-type"] == content_type
        decoded = decode_audio(response.content)
        # codecs pad a little; Piper's own timing varies slightly from run to run
        assert len(decoded) / 16000 == pytest.approx(seconds, abs=0.35), fmt
    # pcm: raw s16le mono at 24 kHz, as OpenAI documents
    pcm = speak(tts_server, model="en_US-joe-medium", response_format="pcm")
    assert pcm.headers["content-type"] == "audio/pcm"
    assert pcm.headers["x-sample-rate"] == "24000"
    samples = np.frombuffer(pcm.content, dtype="<i2")
    assert len(samples) / 24000 == pytest.approx(seconds, abs=0.35)
    assert np.abs(samples).max() > 3000  # real speech, not silence
    native = speak(tts_server, model="en_US-joe-medium", response_format="pcm", sample_rate="native")
    assert native.headers["x-sample-rate"] == "22050"
    assert len(native.content) / 2 / 22050 == pytest.approx(seconds, abs=0.35)
    kokoro = speak(tts_server, model="kokoro", response_format="pcm")
    assert kokoro.headers["x-sample-rate"] == "24000"


def test_speed_changes_duration(tts_server: ServerProcess) -> None:
    normal = len(speak(tts_server, model="en_US-joe-medium", response_format="pcm").content)
    fast = len(speak(tts_server, model="en_US-joe-medium", response_format="pcm", speed=2.0).content)
    assert fast < normal * 0.7


def _tts_in_flight(server: ServerProcess, model: str) -> int:
    return int(httpx.get(server.url + "/health").json()["models"][model]["in_flight"])


def test_first_audio_arrives_before_synthesis_finishes(tts_server: ServerProcess) -> None:
    assert len(split_sentences(LONG_TEXT)) == 6
    with httpx.stream(
        "POST", tts_server.url + "/v1/audio/speech",
        json={"model": "kokoro", "input": LONG_TEXT, "response_format": "pcm"}, timeout=120,
    ) as response:  # fmt: skip
        assert response.status_code == 200
        chunks = response.iter_raw()
        first = next(chunks)
        assert first
        # the server is still synthesizing the later sentences while we hold the first audio
        assert _tts_in_flight(tts_server, "kokoro") == 1
        rest = b"".join(chunks)
    total_seconds = (len(first) + len(rest)) / 2 / 24000
    assert len(first) / 2 / 24000 < total_seconds / 2
    assert _tts_in_flight(tts_server, "kokoro") == 0


def test_client_disconnect_mid_stream_frees_the_worker(tts_server: ServerProcess) -> None:
    with httpx.stream(
        "POST", tts_server.url + "/v1/audio/speech",
        json={"model": "kokoro", "input": LONG_TEXT * 3, "response_format": "pcm"}, timeout=120,
    ) as response:  # fmt: skip
        next(response.iter_raw())
    # the stream is abandoned: the worker stops generating and serves the next request
    for _ in range(200):
        if _tts_in_flight(tts_server, "kokoro") == 0:
            break
        time.sleep(0.05)
    assert _tts_in_flight(tts_server, "kokoro") == 0
    response = speak(tts_server, model="kokoro", response_format="wav", input="Still here.")
    assert response.status_code == 200
    assert_transcript(transcribe(tts_server, response.content), "Still here.")


def test_voices_listing(tts_server: ServerProcess) -> None:
    voices = httpx.get(tts_server.url + "/v1/audio/voices").json()["data"]
    by_model: dict[str, list[str]] = {}
    for voice in voices:
        by_model.setdefault(voice["model"], []).append(voice["id"])
    assert by_model["en_US-joe-medium"] == ["en_US-joe-medium"]
    assert set(by_model["kokoro"]) == {"jf_alpha", "jf_gongitsune", "jf_nezumi", "jf_tebukuro", "jm_kumo"}
    kumo = next(v for v in voices if v["id"] == "jm_kumo")
    assert "echo" in kumo["aliases"]
    only = httpx.get(tts_server.url + "/v1/audio/voices", params={"model": "tts-1"}).json()["data"]
    assert [v["model"] for v in only] == ["en_US-joe-medium"]
    models = {m["id"]: m for m in httpx.get(tts_server.url + "/v1/models").json()["data"]}
    assert models["tts-1"]["alias_of"] == "en_US-joe-medium"
    assert models["tts-1-hd"]["alias_of"] == "kokoro"


def test_bad_requests_are_4xx(tts_server: ServerProcess) -> None:
    cases: list[tuple[dict[str, object], int]] = [
        ({"input": ""}, 400),
        ({"input": "   "}, 400),
        ({"input": "x " * 3000}, 400),
        ({"voice": "nobody"}, 400),
        ({"model": "kokoro", "voice": "nobody"}, 400),
        ({"model": "no-such-model"}, 404),
        ({"model": "tiny.en"}, 404),  # not a speech model
        ({"response_format": "ogg-vorbis"}, 400),
        ({"speed": 5}, 400),
        ({"speed": 0.1}, 400),
        ({"speed": "fast"}, 400),
        ({"response_format": "pcm", "sample_rate": 100}, 400),
        ({"stream_format": "ndjson"}, 400),
        ({"voice": {"name": "alloy"}}, 400),
    ]
    for body, status in cases:
        response = httpx.post(tts_server.url + "/v1/audio/speech", json={"input": TEXT, **body}, timeout=60)
        assert response.status_code == status, (body, response.text)
        assert response.json()["error"]["message"]
    broken = httpx.post(
        tts_server.url + "/v1/audio/speech",
        content=b"{not json",
        headers={"content-type": "application/json"},
    )
    assert broken.status_code == 400
    assert speak(tts_server, response_format="wav").status_code == 200


def test_control_characters_are_not_spoken(tts_server: ServerProcess) -> None:
    """Found by schemathesis: a NUL in the text made espeak-ng fail (a 500)."""
    json_body = {"content-type": "application/json"}
    body = b'{"input": "Hello\\u0000 there.", "response_format": "wav"}'
    response = httpx.post(tts_server.url + "/v1/audio/speech", content=body, headers=json_body)
    assert response.status_code == 200, response.text
    assert len(decode_audio(response.content)) > 16000 // 2
    nothing = httpx.post(tts_server.url + "/v1/audio/speech", json={"input": "\u0000\u0001\u0002"})
    assert nothing.status_code == 400
    assert "nothing to speak" in nothing.json()["error"]["message"]
    # a lone surrogate is not text at all: refused with the request's other validation errors
    surrogate = b'{"input": "\\ud800Hello there."}'
    refused = httpx.post(tts_server.url + "/v1/audio/speech", content=surrogate, headers=json_body)
    assert refused.status_code == 400
    assert refused.json()["error"]["param"] == "input"


def test_killed_tts_worker_is_replaced(tts_server: ServerProcess) -> None:
    pid = httpx.get(tts_server.url + "/health").json()["models"]["en_US-joe-medium"]["pid"]
    os.kill(pid, signal.SIGKILL)

    def noticed() -> bool:
        return httpx.get(tts_server.url + "/health").json()["models"]["en_US-joe-medium"]["state"] != "ready"

    until(noticed, "the server notice the killed worker")
    response = speak(tts_server, model="tts-1", response_format="wav")
    assert response.status_code == 200
    assert_transcript(transcribe(tts_server, response.content), TEXT, max_errors=2)
    health = httpx.get(tts_server.url + "/health").json()["models"]["en_US-joe-medium"]
    assert health["pid"] != pid
    assert health["restarts"] >= 1
