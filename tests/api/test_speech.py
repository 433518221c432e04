"""OpenAI's speech API as clients send it today, through the official SDK against a live server: every
OpenAI voice name on every model, `voice` as an object, `instructions`, `stream_format="sse"` (events
decoded back into speech and transcribed on the same server), the voice and model listings UIs read, and
a conformance check that walks the installed SDK's speech parameters and event types."""

from __future__ import annotations

import base64
import functools
import importlib
import inspect
import json
import math
import os
import pkgutil
import signal
import time
import types
import typing
from collections.abc import Iterator, Mapping
from typing import Any, Literal, Union

import httpx
import numpy as np
import openai
import openai.types.audio
import pytest
import typing_extensions
from openai.types.audio.speech_create_params import SpeechCreateParams

from conftest import LONG_TEXT, TEXT, ServerProcess, assert_transcript, start_server
from voxhost.api.openai_speech import SpeechRequest, VoiceRef
from voxhost.audio import decode_audio, encode_audio
from voxhost.engines.kokoro import FEMALE_ALIASES, MALE_ALIASES, KokoroEngine

SHORT = "The quick brown fox jumps over the lazy dog."  # for Kokoro, slower than Piper on a CPU
PIPER, KOKORO = "en_US-joe-medium", "kokoro"
MAX_EVENTS = 10_000  # every read of a stream is bounded

# --- what voxhost does with each part of the SDK's speech API ------------------------------------------
# Fields of `SpeechCreateParams` that voxhost declines, with the reason (the rest it handles: its
# `SpeechRequest` has a field of that name). A field the SDK gains fails the conformance test until it
# is handled or listed here.
DECLINED_FIELDS: dict[str, str] = {}
# Accepted and answered, but not followed: the request succeeds as if the field were absent.
NOT_FOLLOWED = {
    "instructions": "Piper and Kokoro voices cannot be steered by instructions (tone, accent, pace)",
}
# SDK speech model names voxhost does not serve as aliases (none: every one means a served model).
DECLINED_MODELS: dict[str, str] = {}
# Resources of `client.audio` and what voxhost does with them.
AUDIO_RESOURCES = {
    "speech": "handled: POST /v1/audio/speech",
    "transcriptions": "handled: POST /v1/audio/transcriptions",
    "translations": "handled: POST /v1/audio/translations",
    "voices": "declined: custom voices (cloned from audio samples or made from prompts) need a voice-"
    "cloning model, which no engine here is; creating or deleting one is a 4xx",
    "voice_consents": "declined: there are no custom voices to consent to",
}
# The speech stream events voxhost sends and their fields, as OpenAI's API reference documents them
# (SpeechAudioDeltaEvent, SpeechAudioDoneEvent); the SDK's own types, when it has them, are checked too.
EVENT_FIELDS = {"speech.audio.delta": {"type", "audio"}, "speech.audio.done": {"type", "usage"}}
USAGE_FIELDS = {"input_tokens", "output_tokens", "total_tokens"}
DECLINED_EVENT_FIELDS: dict[tuple[str, str], str] = {}


@pytest.fixture(scope="module")
def speech_server(tmp_path_factory: pytest.TempPathFactory, cache_dir: object) -> Iterator[ServerProcess]:
    server = start_server(
        tmp_path_factory.mktemp("speech"),
        cache_dir,  # type: ignore[arg-type]
        "--model", "tiny.en", "--model", PIPER, "--model", KOKORO, "--preload",
    )  # fmt: skip
    yield server
    server.stop()


@pytest.fixture(scope="module")
def client(speech_server: ServerProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=speech_server.url + "/v1", api_key="unused", max_retries=0, timeout=120)


@pytest.fixture(scope="module")
def served_models(speech_server: ServerProcess) -> dict[str, dict[str, Any]]:
    """/v1/audio/models, by id."""
    body = httpx.get(speech_server.url + "/v1/audio/models", timeout=30).json()
    return {m["id"]: m for m in body["models"]}


@pytest.fixture(scope="module")
def tts_model(served_models: dict[str, dict[str, Any]]) -> str:
    """The model name today's clients send: gpt-4o-mini-tts where the registry serves it, else tts-1."""
    return "gpt-4o-mini-tts" if "gpt-4o-mini-tts" in served_models else "tts-1"


def transcribe(client: openai.OpenAI, audio: bytes, name: str) -> str:
    return client.audio.transcriptions.create(model="tiny.en", file=(name, audio)).text


def as_wav(pcm: bytes, rate: int = 24000) -> bytes:
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768
    return encode_audio(samples, rate, "wav")


def sdk_literals(annotation: Any) -> set[str]:
    """The literal values in a type of the SDK (through unions)."""
    if typing.get_origin(annotation) is Literal:
        return {str(value) for value in typing.get_args(annotation)}
    if typing.get_origin(annotation) in (Union, types.UnionType):
        return set().union(*(sdk_literals(arg) for arg in typing.get_args(annotation)))
    return set()


def sdk_typeddicts(annotation: Any) -> list[Any]:
    if typing_extensions.is_typeddict(annotation):
        return [annotation]
    if typing.get_origin(annotation) in (Union, types.UnionType):
        return [t for arg in typing.get_args(annotation) for t in sdk_typeddicts(arg)]
    return []


SDK_FIELDS = typing.get_type_hints(SpeechCreateParams)
OPENAI_VOICE_NAMES = sorted(sdk_literals(SDK_FIELDS["voice"]))


def read_events(lines: Iterator[str]) -> Iterator[dict[str, Any]]:
    """The JSON events of a Server-Sent Events body, as they arrive (at most MAX_EVENTS)."""
    count = 0
    for line in lines:
        if line.startswith("data:"):
            yield json.loads(line[len("data:") :])
            count += 1
            if count >= MAX_EVENTS:
                raise AssertionError("the stream did not end")


def sse_speech(client: openai.OpenAI, **params: Any) -> tuple[list[dict[str, Any]], Mapping[str, str]]:
    """One `stream_format="sse"` request through the SDK: its events and the response headers."""
    with client.audio.speech.with_streaming_response.create(stream_format="sse", **params) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        return list(read_events(response.iter_lines())), response.headers


def joined_audio(events: list[dict[str, Any]]) -> bytes:
    return b"".join(base64.b64decode(e["audio"]) for e in events if e["type"] == "speech.audio.delta")


def _in_flight(server: ServerProcess, model: str) -> int:
    return int(httpx.get(server.url + "/health", timeout=10).json()["models"][model]["in_flight"])


def _wait_idle(server: ServerProcess, model: str) -> None:
    for _ in range(400):
        if _in_flight(server, model) == 0:
            return
        time.sleep(0.05)
    raise AssertionError(f"{model} still busy")


# --- voices ------------------------------------------------------------------------------------------
def test_every_openai_voice_name_means_a_voice_of_every_model(speech_server: ServerProcess) -> None:
    assert len(OPENAI_VOICE_NAMES) >= 13
    assert {"marin", "cedar"} <= set(OPENAI_VOICE_NAMES)
    voices = httpx.get(speech_server.url + "/v1/audio/voices", timeout=60).json()["data"]
    for model in (PIPER, KOKORO):
        named = {alias for v in voices if v["model"] == model for alias in v["aliases"]}
        assert set(OPENAI_VOICE_NAMES) <= named, (model, set(OPENAI_VOICE_NAMES) - named)
    gender = {v["id"]: v.get("gender") for v in voices if v["model"] == KOKORO}
    for v in voices:
        if v["model"] == KOKORO:
            female = {"alloy", "coral", "nova", "sage", "shimmer", "marin"} & set(v["aliases"])
            male = {"ash", "ballad", "echo", "fable", "onyx", "verse", "cedar"} & set(v["aliases"])
            assert not (female and gender[v["id"]] == "male"), v
            assert not (male and gender[v["id"]] == "female"), v


def test_kokoro_maps_the_names_by_gender_within_the_text_language() -> None:
    """With Kokoro's full voice set: American voices for en-us text, a voice named after an OpenAI one
    is that one's, and the genders match (the served Japanese set is the case of no en-us voices)."""
    names = ["af_alloy", "af_bella", "af_nova", "am_adam", "am_echo", "bf_emma", "bm_fable"]
    names += ["jf_alpha", "jm_kumo"]
    styles = {name: np.zeros((510, 1, 256), dtype=np.float32) for name in names}
    english = KokoroEngine(None, styles, "en-us").voice_aliases()
    assert set(english) == set(OPENAI_VOICE_NAMES)
    assert (english["alloy"], english["nova"], english["echo"]) == ("af_alloy", "af_nova", "am_echo")
    assert {english[name] for name in FEMALE_ALIASES} <= {"af_alloy", "af_bella", "af_nova"}
    assert {english[name] for name in MALE_ALIASES} <= {"am_adam", "am_echo"}
    japanese = KokoroEngine(None, styles, "ja").voice_aliases()
    assert {japanese[name] for name in FEMALE_ALIASES} == {"jf_alpha"}
    assert {japanese[name] for name in MALE_ALIASES} == {"jm_kumo"}


@pytest.mark.parametrize(
    ("model", "voice"),
    [(None, "marin"), ("tts-1-hd", "marin"), ("tts-1-hd", "cedar"), (None, {"id": "cedar"})],
    ids=["default-marin", "kokoro-marin", "kokoro-cedar", "default-cedar-object"],
)
def test_sdk_speaks_with_the_new_voice_names(
    client: openai.OpenAI, tts_model: str, model: str | None, voice: Any
) -> None:
    text = SHORT if model == "tts-1-hd" else TEXT
    audio = client.audio.speech.create(
        model=model or tts_model, voice=voice, input=text, response_format="wav"
    )
    assert_transcript(transcribe(client, audio.content, "a.wav"), text, max_errors=2)


def test_voice_as_an_object(client: openai.OpenAI, speech_server: ServerProcess) -> None:
    """`voice={"id": ...}`, the shape of OpenAI's custom voices, with any voice name voxhost knows."""
    with client.audio.speech.with_streaming_response.create(
        model=KOKORO, voice={"id": "jm_kumo"}, input=SHORT, response_format="mp3"
    ) as response:
        assert response.headers["x-voxhost-model"] == KOKORO
        data = response.read()
    assert_transcript(transcribe(client, data, "a.mp3"), SHORT)
    # a custom voice of OpenAI's, or an object without an id: a 400 in OpenAI's error shape
    with pytest.raises(openai.BadRequestError) as unknown:
        client.audio.speech.create(model="tts-1", voice={"id": "voice_1234"}, input=TEXT)
    assert unknown.value.param == "voice"
    for bad in ({"name": "alloy"}, {"id": ""}, {"id": 7}, ["alloy"]):
        refused = httpx.post(
            speech_server.url + "/v1/audio/speech", json={"input": TEXT, "voice": bad}, timeout=60
        )
        assert refused.status_code == 400, (bad, refused.text)
        assert refused.json()["error"]["param"].startswith("voice"), bad


def test_an_openai_model_name_with_another_models_voice_speaks_with_that_voice(
    client: openai.OpenAI, speech_server: ServerProcess
) -> None:
    """Open WebUI lists every model's voices and sends its one configured model name (tts-1): a voice
    only Kokoro has is spoken by Kokoro. A model named by its own id keeps to its own voices."""
    with client.audio.speech.with_streaming_response.create(
        model="tts-1", voice="jf_alpha", input=SHORT, response_format="mp3"
    ) as response:
        assert response.headers["x-voxhost-model"] == KOKORO
        data = response.read()
    assert_transcript(transcribe(client, data, "a.mp3"), SHORT)
    with pytest.raises(openai.BadRequestError) as refused:
        client.audio.speech.create(model=PIPER, voice="jf_alpha", input=SHORT)
    assert refused.value.param == "voice"


def test_instructions_are_accepted_and_not_followed(client: openai.OpenAI, tts_model: str) -> None:
    audio = client.audio.speech.create(
        model=tts_model,
        voice="marin",
        input=TEXT,
        instructions="Speak in a cheerful and positive tone, like a pirate.",
        response_format="flac",
    )
    assert_transcript(transcribe(client, audio.content, "a.flac"), TEXT, max_errors=2)


# --- stream_format="sse" -----------------------------------------------------------------------------
@pytest.mark.parametrize(("model", "fmt"), [(PIPER, "mp3"), (PIPER, "pcm"), (PIPER, "aac"), (KOKORO, "opus")])
def test_sse_events_decode_back_to_the_speech(client: openai.OpenAI, model: str, fmt: str) -> None:
    text = SHORT if model == KOKORO else TEXT
    events, headers = sse_speech(client, model=model, voice="marin", input=text, response_format=fmt)
    kinds = [e["type"] for e in events]
    assert kinds[-1] == "speech.audio.done"
    assert set(kinds[:-1]) == {"speech.audio.delta"}
    assert len(kinds) >= 3
    audio = joined_audio(events)
    if fmt == "pcm":
        assert headers["x-sample-rate"] == "24000"
        seconds = len(audio) / 2 / 24000
        audio = as_wav(audio)
    else:
        seconds = len(decode_audio(audio)) / 16000
    assert_transcript(transcribe(client, audio, f"a.{'wav' if fmt == 'pcm' else fmt}"), text, max_errors=2)
    usage = events[-1]["usage"]
    assert set(usage) == USAGE_FIELDS
    assert usage["input_tokens"] == math.ceil(len(text) / 4)  # text tokens, four characters each
    assert usage["output_tokens"] == pytest.approx(seconds * 20, abs=4)  # audio tokens, one per 50 ms
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]


def test_sse_audio_is_the_same_file_as_the_audio_stream(client: openai.OpenAI, tts_model: str) -> None:
    events, _ = sse_speech(client, model=tts_model, voice="alloy", input=TEXT, response_format="wav")
    streamed = client.audio.speech.create(model=tts_model, voice="alloy", input=TEXT, response_format="wav")
    from_events = joined_audio(events)
    assert from_events[:44] == streamed.content[:44]  # the same WAV header: the same file
    # Piper draws fresh noise for each synthesis: the same length, give or take its timing
    assert len(decode_audio(from_events)) / 16000 == pytest.approx(
        len(decode_audio(streamed.content)) / 16000, abs=0.35
    )


def test_sse_client_leaving_cancels_the_synthesis(
    speech_server: ServerProcess, client: openai.OpenAI
) -> None:
    with client.audio.speech.with_streaming_response.create(
        model=KOKORO, voice="nova", input=LONG_TEXT * 3, response_format="pcm", stream_format="sse"
    ) as response:
        events_in = read_events(response.iter_lines())  # held: closing it would close the response
        first = next(events_in)
        assert first["type"] == "speech.audio.delta"
        # the first phrase, sent while the server still synthesizes the rest (a minute of speech)
        assert len(base64.b64decode(first["audio"])) / 2 / 24000 < 4
        assert _in_flight(speech_server, KOKORO) == 1
    # the stream is abandoned after one event: the worker stops and serves the next request
    _wait_idle(speech_server, KOKORO)
    audio = client.audio.speech.create(model=KOKORO, voice="nova", input="Still here.", response_format="wav")
    assert_transcript(transcribe(client, audio.content, "a.wav"), "Still here.")


def test_sse_errors(speech_server: ServerProcess, client: openai.OpenAI) -> None:
    """Before the first event: a status, as for any request. After it: an `error` event that ends the
    stream (here the worker is killed mid-synthesis), in OpenAI's error shape, and no `done`."""
    with pytest.raises(openai.BadRequestError):
        sse_speech(client, model=KOKORO, voice="nobody", input=TEXT)
    with pytest.raises(openai.NotFoundError):
        sse_speech(client, model="no-such-model", voice="alloy", input=TEXT)
    pid = httpx.get(speech_server.url + "/health", timeout=10).json()["models"][KOKORO]["pid"]
    with client.audio.speech.with_streaming_response.create(
        model=KOKORO, voice="nova", input=LONG_TEXT * 4, response_format="mp3", stream_format="sse"
    ) as response:
        events_in = read_events(response.iter_lines())
        assert next(events_in)["type"] == "speech.audio.delta"
        os.kill(pid, signal.SIGKILL)
        rest = list(events_in)
    assert rest[-1]["type"] == "error", [e["type"] for e in rest]
    assert {e["type"] for e in rest[:-1]} <= {"speech.audio.delta"}
    error = rest[-1]["error"]
    assert error["code"] == "worker_crashed"
    assert error["message"]
    assert error["type"] == "server_error"
    audio = client.audio.speech.create(model=KOKORO, voice="nova", input="Back again.", response_format="wav")
    assert_transcript(transcribe(client, audio.content, "a.wav"), "Back again.")


# --- listings ----------------------------------------------------------------------------------------
def test_voice_listing_in_both_shapes(speech_server: ServerProcess) -> None:
    body = httpx.get(speech_server.url + "/v1/audio/voices", timeout=60).json()
    assert body["object"] == "list"
    assert body["voices"] == body["data"]
    # what Open WebUI does with it
    by_id = {voice["id"]: voice["name"] for voice in body.get("voices", [])}
    assert {PIPER, "jf_alpha", "jm_kumo"} <= set(by_id)
    kumo = next(v for v in body["voices"] if v["id"] == "jm_kumo")
    assert kumo["language"] == "ja"
    assert kumo["gender"] == "male"
    assert kumo["model"] == KOKORO
    assert {"echo", "cedar"} <= set(kumo["aliases"])
    joe = next(v for v in body["voices"] if v["id"] == PIPER)
    assert joe["language"].startswith("en")
    assert "gender" not in joe
    only = httpx.get(speech_server.url + "/v1/audio/voices", params={"model": "tts-1-hd"}, timeout=60).json()
    assert {v["model"] for v in only["voices"]} == {KOKORO}


def test_model_listing_in_both_shapes(speech_server: ServerProcess, served_models: dict[str, Any]) -> None:
    body = httpx.get(speech_server.url + "/v1/audio/models", timeout=30).json()
    assert body["object"] == "list"
    assert body["models"] == body["data"]
    # what Open WebUI does with it: every id is a model name /v1/audio/speech takes
    ids = [model["id"] for model in body.get("models", [])]
    everything = httpx.get(speech_server.url + "/v1/models", timeout=30).json()["data"]
    speech_names = {m["id"] for m in everything if m["task"] == "tts"}  # the models and their aliases
    assert set(ids) == speech_names
    assert len(ids) == len(speech_names)
    assert {PIPER, KOKORO, "tts-1", "tts-1-hd"} <= set(ids)
    assert "tiny.en" not in ids
    assert "whisper-1" not in ids
    assert served_models["tts-1-hd"]["alias_of"] == KOKORO
    assert "tts-1" in served_models[PIPER]["aliases"]


# --- conformance with the installed SDK --------------------------------------------------------------
def test_every_speech_parameter_of_the_sdk_is_handled_or_declined(served_models: dict[str, Any]) -> None:
    """Walks the installed SDK's `SpeechCreateParams`: each field is one voxhost's request has or one it
    declines (with a reason), and each value the SDK names for it is accepted."""
    handled = set(SpeechRequest.model_fields)
    unknown = set(SDK_FIELDS) - handled - set(DECLINED_FIELDS)
    assert not unknown, f"the SDK sends {sorted(unknown)}: handle them, or decline them in DECLINED_FIELDS"
    assert set(DECLINED_FIELDS) <= set(SDK_FIELDS)
    assert set(NOT_FOLLOWED) <= handled & set(SDK_FIELDS)
    for field, annotation in SDK_FIELDS.items():
        for value in sdk_literals(annotation):
            if field == "model":
                assert value in served_models or value in DECLINED_MODELS, f"model {value} is not served"
            elif field != "voice":  # the voice names: test_every_openai_voice_name_means_...
                SpeechRequest.model_validate({"input": "Hi.", field: value})
        for shape in sdk_typeddicts(annotation):  # voice={"id": ...}
            keys = set(typing.get_type_hints(shape))
            assert keys <= set(VoiceRef.model_fields), (field, keys)
            assert SpeechRequest.model_validate({"input": "Hi.", field: dict.fromkeys(keys, "x")})
    assert set(DECLINED_MODELS) <= sdk_literals(SDK_FIELDS["model"])


def _sdk_speech_event_types() -> dict[str, type[Any]]:
    """The SDK's speech stream event models, by their `type` (none in SDKs that have no such types)."""
    found: dict[str, type[Any]] = {}
    for module_info in pkgutil.iter_modules(openai.types.audio.__path__):
        if not module_info.name.startswith("speech"):
            continue
        module = importlib.import_module(f"openai.types.audio.{module_info.name}")
        for _, cls in inspect.getmembers(module, inspect.isclass):
            field = getattr(cls, "model_fields", {}).get("type")
            values = sdk_literals(field.annotation) if field is not None else set()
            found.update({value: cls for value in values if value.startswith("speech.")})
    return found


def test_speech_stream_events_are_the_documented_ones(client: openai.OpenAI, tts_model: str) -> None:
    """What voxhost sends in `stream_format="sse"` is what OpenAI's API reference documents, and, where
    the installed SDK has types for these events, every one of its fields (or declined in
    DECLINED_EVENT_FIELDS), and its models parse the events."""
    events, _ = sse_speech(
        client, model=tts_model, voice="marin", input="Hello there.", response_format="mp3"
    )
    for event in events:
        assert set(event) == EVENT_FIELDS[event["type"]], event
    assert set(events[-1]["usage"]) == USAGE_FIELDS
    for kind, cls in _sdk_speech_event_types().items():
        assert kind in EVENT_FIELDS, f"the SDK has a {kind} event that voxhost does not send"
        missing = (
            set(cls.model_fields) - EVENT_FIELDS[kind] - {f for k, f in DECLINED_EVENT_FIELDS if k == kind}
        )
        assert not missing, f"{kind} has fields voxhost does not send: {sorted(missing)}"
        for event in events:
            if event["type"] == kind:
                cls.model_validate(event)


def test_sdk_audio_resources_are_all_accounted_for(client: openai.OpenAI) -> None:
    resources = {
        name
        for name, value in vars(type(client.audio)).items()
        if isinstance(value, functools.cached_property | property) and not name.startswith("with_")
    }
    assert resources == set(AUDIO_RESOURCES), resources ^ set(AUDIO_RESOURCES)
    # the declined ones answer a clean 4xx in OpenAI's error shape
    with pytest.raises(openai.APIStatusError) as created:
        client.audio.voices.create(name="mine", type="prompt", prompt="a calm voice")
    assert 400 <= created.value.status_code < 500
    with pytest.raises(openai.NotFoundError):
        client.audio.voices.delete("voice_1234")
    with pytest.raises(openai.NotFoundError):
        client.audio.voice_consents.list()
