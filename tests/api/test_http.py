"""The OpenAI-compatible HTTP API of a live `voxhost serve`, through the `openai` SDK and raw HTTP."""

from __future__ import annotations

import io
import os
import signal
import time

import httpx
import openai
import psutil
import pytest

from conftest import ServerFactory, ServerProcess, Speech, assert_transcript, until

FORMATS = ("wav", "mp3", "flac", "opus", "m4a", "webm", "aac")


@pytest.fixture(scope="module")
def client(server: ServerProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0, timeout=120)


def _upload(speech: Speech, fmt: str = "wav") -> tuple[str, bytes]:
    return (f"speech.{fmt}", speech.encoded(fmt))


def assert_words_match(text: str, expected: str) -> None:
    assert_transcript(text, expected)


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_input_format_transcribes(client: openai.OpenAI, speech: Speech, fmt: str) -> None:
    result = client.audio.transcriptions.create(model="whisper-1", file=_upload(speech, fmt))
    assert_words_match(result.text, speech.text)


def test_sdk_json_and_text(client: openai.OpenAI, speech: Speech) -> None:
    result = client.audio.transcriptions.create(model="tiny.en", file=_upload(speech), response_format="json")
    assert_words_match(result.text, speech.text)
    text = client.audio.transcriptions.create(model="tiny.en", file=_upload(speech), response_format="text")
    assert isinstance(text, str)
    assert_words_match(text, speech.text)


def test_sdk_verbose_json_with_segments_and_words(client: openai.OpenAI, speech: Speech) -> None:
    result = client.audio.transcriptions.create(
        model="whisper-1",
        file=_upload(speech),
        response_format="verbose_json",
        timestamp_granularities=["segment", "word"],
    )
    assert result.language == "english"
    assert result.duration == pytest.approx(speech.seconds, abs=0.1)
    assert_words_match(result.text, speech.text)
    assert result.segments
    assert result.words
    assert_transcript(" ".join(w.word for w in result.words), speech.text)
    starts = [w.start for w in result.words]
    assert starts == sorted(starts)
    assert result.words[-1].end <= speech.seconds + 0.1
    segment = result.segments[0]
    assert segment.end > segment.start >= 0
    assert isinstance(segment.tokens, list)
    assert segment.tokens


def test_sdk_words_only_granularity_omits_segments(client: openai.OpenAI, speech: Speech) -> None:
    result = client.audio.transcriptions.create(
        model="whisper-1",
        file=_upload(speech),
        response_format="verbose_json",
        timestamp_granularities=["word"],
    )
    assert result.words
    assert not result.segments


@pytest.mark.parametrize("fmt", ["srt", "vtt"])
def test_sdk_subtitles(client: openai.OpenAI, speech: Speech, fmt: str) -> None:
    body = client.audio.transcriptions.create(model="whisper-1", file=_upload(speech), response_format=fmt)
    assert isinstance(body, str)
    if fmt == "vtt":
        assert body.startswith("WEBVTT\n\n")
        assert "00:00:00.000 --> " in body
    else:
        assert body.startswith("1\n00:00:00,000 --> ")
    cue_text = " ".join(
        line for line in body.splitlines() if line and "-->" not in line and not line.isdigit()
    )
    assert_words_match(cue_text.replace("WEBVTT", ""), speech.text)


# Recent `openai` releases mark the translations resource deprecated; the endpoint is still OpenAI's.
@pytest.mark.filterwarnings("ignore:deprecated:DeprecationWarning")
def test_translation_with_multilingual_model(client: openai.OpenAI, speech: Speech) -> None:
    result = client.audio.translations.create(model="base", file=_upload(speech))
    assert_transcript(result.text, speech.text, max_errors=3)
    verbose = client.audio.translations.create(
        model="base", file=_upload(speech), response_format="verbose_json"
    )
    assert verbose.model_dump()["task"] == "translate"


def test_base_model_detects_language(client: openai.OpenAI, speech: Speech) -> None:
    result = client.audio.transcriptions.create(
        model="base", file=_upload(speech), response_format="verbose_json"
    )
    assert result.language == "english"


def test_prompt_temperature_and_language_are_accepted(client: openai.OpenAI, speech: Speech) -> None:
    result = client.audio.transcriptions.create(
        model="whisper-1", file=_upload(speech), prompt="The store.", temperature=0.2, language="en"
    )
    assert_words_match(result.text, speech.text)


def test_models_list_and_get(client: openai.OpenAI) -> None:
    ids = {m.id for m in client.models.list()}
    assert {"tiny.en", "base", "whisper-1", "gpt-4o-mini-transcribe", "gpt-transcribe"} <= ids
    assert {"gpt-realtime-whisper", "gpt-live-transcribe"} <= ids  # Realtime's, resolved the same way
    model = client.models.retrieve("whisper-1")
    assert model.model_dump()["alias_of"] == "tiny.en"
    assert client.models.retrieve("gpt-4o-mini-transcribe-2025-12-15").model_dump()["alias_of"] == "tiny.en"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("no-such-model")


def _error(response: httpx.Response, status: int) -> dict[str, object]:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["message"]
    return error  # type: ignore[no-any-return]


def test_bad_input_gives_clear_4xx_and_server_keeps_serving(server: ServerProcess, speech: Speech) -> None:
    url = server.url + "/v1/audio/transcriptions"
    wav = speech.encoded("wav")
    cases: list[tuple[dict[str, object], int, str]] = [
        ({"files": {"file": ("a.wav", b"")}}, 400, "invalid_audio"),
        ({"files": {"file": ("a.wav", b"RIFF....WAVEfmt garbage" * 40)}}, 400, "invalid_audio"),
        ({"files": {"file": ("a.txt", b"just some text, not audio at all\n" * 100)}}, 400, "invalid_audio"),
        ({"files": {"file": ("a.mp3", os.urandom(20000))}}, 400, "invalid_audio"),
        ({"files": {"file": ("a.wav", wav[:44])}}, 400, "invalid_audio"),  # header only, no samples
        ({"data": {"model": "whisper-1"}, "files": {"other": ("a.wav", wav)}}, 400, "invalid_request"),
        ({"data": {"response_format": "xml"}, "files": {"file": ("a.wav", wav)}}, 400, "invalid_request"),
        (
            {
                "data": {"response_format": "diarized_json", "num_speakers": "x"},
                "files": {"file": ("a.wav", wav)},
            },
            400,
            "invalid_request",
        ),
        ({"data": {"temperature": "hot"}, "files": {"file": ("a.wav", wav)}}, 400, "invalid_request"),
        ({"data": {"temperature": "3"}, "files": {"file": ("a.wav", wav)}}, 400, "invalid_request"),
        (
            {"data": {"timestamp_granularities[]": "char"}, "files": {"file": ("a.wav", wav)}},
            400,
            "invalid_request",
        ),
        ({"data": {"language": "xx"}, "files": {"file": ("a.wav", wav)}}, 400, "invalid_request"),
        ({"data": {"model": "nope"}, "files": {"file": ("a.wav", wav)}}, 404, "model_not_found"),
        ({"data": {"model": "../../etc/passwd"}, "files": {"file": ("a.wav", wav)}}, 404, "model_not_found"),
        ({"json": {"file": "a.wav"}}, 400, "invalid_request"),
        (
            {"content": b"--x\r\nbroken", "headers": {"content-type": "multipart/form-data; boundary=x"}},
            400,
            "",
        ),
    ]
    for kwargs, status, code in cases:
        response = httpx.post(url, timeout=60, **kwargs)  # type: ignore[arg-type]
        error = _error(response, status)
        if code:
            assert error["code"] == code, (kwargs.keys(), error)
    # translations with an English-only model: a clear 400, not a wrong answer
    response = httpx.post(
        server.url + "/v1/audio/translations",
        data={"model": "tiny.en"},
        files={"file": ("a.wav", wav)},
        timeout=60,
    )
    assert "English-only" in str(_error(response, 400)["message"])
    assert httpx.get(server.url + "/v1/nothing-here").status_code == 404
    _error(httpx.get(server.url + "/v1/nothing-here"), 404)
    # still serving
    good = httpx.post(url, files={"file": ("a.wav", wav)}, timeout=60)
    assert good.status_code == 200
    assert_words_match(good.json()["text"], speech.text)


def test_upload_over_limit_is_413(server_factory: ServerFactory, short_speech: Speech) -> None:
    server = server_factory("--max-upload-mb", "0.05")
    url = server.url + "/v1/audio/transcriptions"
    wav = short_speech.encoded("wav")
    assert 0.05 * 2**20 < len(wav) < 4 * 2**20
    error = _error(httpx.post(url, files={"file": ("a.wav", wav)}, timeout=60), 413)
    assert error["code"] == "payload_too_large"
    # far past the limit: refused from its Content-Length, before the body is read
    error = _error(httpx.post(url, files={"file": ("a.wav", wav * 40)}, timeout=60), 413)
    assert error["code"] == "payload_too_large"
    small = short_speech.encoded("mp3")
    assert len(small) < 0.05 * 2**20
    response = httpx.post(url, files={"file": ("a.mp3", small)}, timeout=60)
    assert response.status_code == 200
    assert_words_match(response.json()["text"], short_speech.text)


def test_health_and_load_unload_endpoints(server_factory: ServerFactory, short_speech: Speech) -> None:
    server = server_factory("--model", "tiny.en")
    health = httpx.get(server.url + "/health").json()
    assert health["models"]["tiny.en"]["state"] == "unloaded"  # lazy by default
    loaded = httpx.post(server.url + "/v1/models/tiny.en/load", timeout=60).json()
    assert loaded["state"] == "ready"
    health = httpx.get(server.url + "/health").json()["models"]["tiny.en"]
    pid = health["pid"]
    assert health["state"] == "ready"
    assert health["worker"]["pid"] == pid
    assert health["rss_bytes"] > 50 * 2**20
    assert psutil.Process(pid).ppid() == server.process.pid
    # a worker killed behind the server's back shows in /health, and the next request recovers
    os.kill(pid, signal.SIGKILL)

    def crashed() -> bool:
        return httpx.get(server.url + "/health").json()["models"]["tiny.en"]["state"] == "crashed"

    until(crashed, "the killed worker shown as crashed in /health")
    response = httpx.post(
        server.url + "/v1/audio/transcriptions",
        files={"file": ("a.wav", short_speech.encoded("wav"))},
        timeout=60,
    )
    assert_words_match(response.json()["text"], short_speech.text)
    health = httpx.get(server.url + "/health").json()["models"]["tiny.en"]
    assert health["restarts"] == 1
    new_pid = health["pid"]
    assert new_pid != pid
    unloaded = httpx.post(server.url + "/v1/models/tiny.en/unload", timeout=60).json()
    assert unloaded["state"] == "unloaded"
    assert not psutil.pid_exists(new_pid)
    _error(httpx.post(server.url + "/v1/models/nope/load"), 404)


def test_openapi_docs_are_served(server: ServerProcess) -> None:
    spec = httpx.get(server.url + "/openapi.json").json()
    for path in ("/v1/audio/transcriptions", "/v1/audio/translations", "/v1/models", "/health"):
        assert path in spec["paths"]
    body = spec["paths"]["/v1/audio/transcriptions"]["post"]["requestBody"]["content"]["multipart/form-data"]
    assert "file" in body["schema"]["properties"]
    assert httpx.get(server.url + "/docs").status_code == 200


def test_sigterm_stops_server_and_workers(server_factory: ServerFactory) -> None:
    server = server_factory("--model", "tiny.en", "--preload")
    pid = httpx.get(server.url + "/health").json()["models"]["tiny.en"]["pid"]
    assert psutil.pid_exists(pid)
    # uvicorn shuts down cleanly, then re-raises SIGTERM so the exit status tells how it ended
    assert server.stop() in (0, -signal.SIGTERM)
    assert "Application shutdown complete" in server.log()
    for _ in range(50):
        if not psutil.pid_exists(pid):
            break
        time.sleep(0.1)
    assert not psutil.pid_exists(pid), "worker outlived the server"


def test_multipart_streaming_upload_without_length(server: ServerProcess, short_speech: Speech) -> None:
    # a chunked upload (no Content-Length) is parsed incrementally too
    boundary = "voxhostboundary"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.flac"\r\n'
            "Content-Type: audio/flac\r\n\r\n"
        ).encode()
        + short_speech.encoded("flac")
        + f"\r\n--{boundary}--\r\n".encode()
    )

    def chunks() -> io.BytesIO:
        return io.BytesIO(body)

    response = httpx.post(
        server.url + "/v1/audio/transcriptions",
        content=iter(lambda stream=chunks(): stream.read(4096), b""),
        headers={"content-type": f"multipart/form-data; boundary={boundary}"},
        timeout=60,
    )
    assert response.status_code == 200, response.text
    assert_words_match(response.json()["text"], short_speech.text)


def test_serve_with_no_model_flags_serves_the_embedded_defaults(server_factory: ServerFactory) -> None:
    server = server_factory()
    models = {m["id"]: m for m in httpx.get(server.url + "/v1/models").json()["data"]}
    assert models["tiny.en"]["task"] == "asr"
    assert models["en_US-joe-medium"]["task"] == "tts"
    assert models["whisper-1"]["alias_of"] == "tiny.en"
    assert models["gpt-4o-transcribe"]["alias_of"] == "tiny.en"
    assert models["tts-1"]["alias_of"] == "en_US-joe-medium"
    assert models["gpt-4o-mini-tts"]["alias_of"] == "en_US-joe-medium"
    assert models["tts-1-hd"]["alias_of"] == "en_US-joe-medium"  # no Kokoro served: the default voice
    speech = httpx.post(
        server.url + "/v1/audio/speech",
        json={
            "input": "Hello.",
            "model": "gpt-4o-mini-tts-2025-12-15",
            "voice": "alloy",
            "response_format": "wav",
        },
        timeout=60,
    )
    assert speech.status_code == 200
    text = httpx.post(
        server.url + "/v1/audio/transcriptions",
        files={"file": ("hello.wav", speech.content)},
        data={"model": "gpt-4o-mini-transcribe"},
        timeout=60,
    ).json()["text"]
    assert_transcript(text, "Hello.")
