"""Property-based tests: whatever bytes or fields arrive, decoding and request parsing answer with a clear
4xx (or valid audio), never a crash or a 5xx.

Bounded: each property runs a fixed number of examples; the HTTP ones go through the real app in-process
(httpx's ASGI transport) with only tiny.en configured, so no input here ever reaches a model."""

from __future__ import annotations

import asyncio
import json
from typing import Any
from urllib.parse import quote

import httpx
import numpy as np
import pytest
from fastapi import FastAPI
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from conftest import Speech
from voxhost.api.http import create_app
from voxhost.audio import decode_audio
from voxhost.audio.decode import PcmConverter
from voxhost.errors import BadAudio
from voxhost.manager.registry import TRANSCRIPTION_MODEL_NAMES
from voxhost.settings import Settings

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


FORMATS = ("flac", "mp3", "ogg", "wav")


def _check_audio(data: bytes) -> None:
    try:
        audio = decode_audio(data, max_seconds=60)
    except BadAudio:
        return
    assert audio.dtype == np.float32
    assert audio.ndim == 1
    assert len(audio) > 0
    assert np.isfinite(audio).all()


@FUZZ
@given(st.binary(max_size=4096))
def test_decoding_random_bytes_is_valid_audio_or_bad_audio(data: bytes) -> None:
    _check_audio(data)


@pytest.fixture(scope="module")
def real_files(short_speech: Speech) -> dict[str, bytes]:
    return {fmt: short_speech.encoded(fmt) for fmt in FORMATS}


@FUZZ
@given(
    fmt=st.sampled_from(FORMATS),
    cut=st.integers(0, 10_000),  # where to cut, in ten-thousandths of the file
    damage=st.lists(st.tuples(st.integers(0, 2**24), st.integers(0, 255)), max_size=40),
)
def test_decoding_damaged_real_files_is_valid_audio_or_bad_audio(
    real_files: dict[str, bytes], fmt: str, cut: int, damage: list[tuple[int, int]]
) -> None:
    # every draw is made up front, none from what the test has seen (hypothesis replays choices)
    raw = bytearray(real_files[fmt])
    for position, value in damage:
        raw[position % len(raw)] = value
    _check_audio(bytes(raw[: len(raw) * cut // 10_000]))


@FUZZ
@given(
    rate=st.integers(-10, 400_000),
    width=st.integers(-1, 8),
    channels=st.integers(-1, 12),
    chunks=st.lists(st.binary(max_size=2048), max_size=5),
)
def test_pcm_conversion_of_any_format_and_bytes(
    rate: int, width: int, channels: int, chunks: list[bytes]
) -> None:
    try:
        converter = PcmConverter(rate, width, channels)
        outputs = [converter.convert(chunk) for chunk in chunks] + [converter.flush()]
    except BadAudio:
        return
    for out in outputs:
        assert out.dtype == np.float32
        assert np.isfinite(out).all()


@pytest.fixture(scope="module")
def app(cache_dir: object) -> FastAPI:
    return create_app(Settings(models=["tiny.en"], cache_dir=cache_dir, wyoming=False, max_upload_mb=0.05))


def _request(app: FastAPI, method: str, path: str, **kwargs: Any) -> httpx.Response:
    async def send() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost", timeout=30) as client:
            return await client.request(method, path, **kwargs)

    return asyncio.run(send())


def _assert_clean_4xx(response: httpx.Response) -> None:
    assert 400 <= response.status_code < 500, (response.status_code, response.text)
    error = response.json()["error"]
    assert isinstance(error["message"], str)
    assert error["message"]
    assert error["type"]


text = st.text(max_size=40)
form_values = st.one_of(
    text, st.sampled_from(["json", "text", "srt", "vtt", "verbose_json", "0", "1.5", "-1"])
)


@FUZZ
@given(
    audio=st.binary(max_size=3000),
    filename=st.text(max_size=30),
    fields=st.dictionaries(
        st.sampled_from(
            ["model", "language", "prompt", "response_format", "temperature", "timestamp_granularities[]",
             "stream", "other"]
        ),
        form_values,
        max_size=6,
    ),
)  # fmt: skip
def test_transcription_requests_with_any_fields_get_a_clean_4xx(
    app: FastAPI, audio: bytes, filename: str, fields: dict[str, str]
) -> None:
    response = _request(
        app, "POST", "/v1/audio/transcriptions", files={"file": (filename or "a", audio)}, data=fields
    )
    _assert_clean_4xx(response)


@FUZZ
@given(body=st.binary(max_size=2000), content_type=st.sampled_from(
    ["multipart/form-data; boundary=x", "multipart/form-data", "application/json", "text/plain", ""]
))  # fmt: skip
def test_raw_bodies_to_the_upload_endpoint_get_a_clean_4xx(
    app: FastAPI, body: bytes, content_type: str
) -> None:
    headers = {"content-type": content_type} if content_type else {}
    _assert_clean_4xx(_request(app, "POST", "/v1/audio/transcriptions", content=body, headers=headers))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)


@FUZZ
@given(
    body=st.dictionaries(
        st.sampled_from(
            ["model", "input", "voice", "response_format", "speed", "sample_rate", "language", "x"]
        ),
        json_values,
        max_size=6,
    )
)
def test_speech_requests_with_any_json_get_a_clean_4xx(app: FastAPI, body: dict[str, Any]) -> None:
    # no TTS model is configured here, so every request must be refused before synthesis
    response = _request(app, "POST", "/v1/audio/speech", content=json.dumps(body).encode(),
                        headers={"content-type": "application/json"})  # fmt: skip
    _assert_clean_4xx(response)


@FUZZ
@given(model=st.text(min_size=1, max_size=60))
def test_any_model_name_is_looked_up_never_opened(app: FastAPI, model: str) -> None:
    assume(model not in (".", ".."))  # dot segments: clients resolve them before sending the path
    response = _request(app, "GET", "/v1/models/" + quote(model, safe=""))
    if response.status_code == 200:  # a served model, or one of OpenAI's names for it (as asked)
        assert response.json()["id"] == model
        assert model == "tiny.en" or model in TRANSCRIPTION_MODEL_NAMES
    else:
        _assert_clean_4xx(response)
