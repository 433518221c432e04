"""The Realtime protocol against the installed openai SDK, field by field and event by event, and fuzzed.

In-process (the app over Starlette's test client) with a manager whose transcriptions are canned, so no
input here reaches a model: these tests are about what the protocol accepts, refuses and sends. The
real-speech tests are in test_realtime.py.

The conformance tests walk the SDK's pydantic types: a session field or an event that voxhost neither
handles nor explicitly declines (`api/realtime/ga.py`, `beta.py`, `events.py`) fails here, so the next
API change shows up as a failing test.
"""

from __future__ import annotations

import base64
import json
import types
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openai.types.beta.realtime import realtime_client_event as beta_client_event
from openai.types.beta.realtime import realtime_server_event as beta_server_event
from openai.types.beta.realtime.transcription_session_update import Session as BetaSession
from openai.types.realtime import realtime_client_event, realtime_server_event
from openai.types.realtime.realtime_transcription_session_create_request import (
    RealtimeTranscriptionSessionCreateRequest,
)
from openai.types.realtime.realtime_transcription_session_create_response import (
    RealtimeTranscriptionSessionCreateResponse,
)
from openai.types.realtime.session_update_event import SessionUpdateEvent
from pydantic import BaseModel, TypeAdapter
from starlette.testclient import TestClient, WebSocketTestSession

from voxhost.api.http import create_app
from voxhost.api.realtime import beta, events, ga
from voxhost.api.realtime.config import SessionConfig
from voxhost.api.realtime.fields import Fields
from voxhost.errors import BadRequest
from voxhost.manager import ModelManager
from voxhost.manager.requests import TranscribeRequest
from voxhost.results import Segment, TokenLogprob, Transcription
from voxhost.settings import Settings

FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
SOCKET_FUZZ = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
SERVER_EVENT = TypeAdapter(realtime_server_event.RealtimeServerEvent)


class CannedManager(ModelManager):
    """Every transcription is the same short sentence, and no worker ever starts."""

    async def transcribe(self, request: TranscribeRequest, gone: object = None) -> Transcription:
        seconds = len(request.audio) / 16000
        segment = Segment(0, 0, 0.0, seconds, " Canned words.", [50364, 1], 0.0, -0.1, 1.0, 0.0)
        logprobs = [TokenLogprob(" Canned", -0.1, list(b" Canned"))] if request.options.logprobs else None
        return Transcription("Canned words.", "en", 1.0, seconds, segments=[segment], logprobs=logprobs)


WS = "ws://localhost"


@pytest.fixture(scope="module")
def client(cache_dir: Path) -> TestClient:
    app_settings = Settings(models=["tiny.en"], cache_dir=cache_dir, wyoming=False)
    # the app answers loopback names only (a server bound to 127.0.0.1): not TestClient's "testserver"
    return TestClient(create_app(app_settings, CannedManager(app_settings)), base_url="http://localhost")


def _connect(client: TestClient, headers: dict[str, str] | None = None) -> Any:
    return client.websocket_connect(WS + "/v1/realtime?intent=transcription", headers=dict(headers or {}))


def _reply(ws: WebSocketTestSession, event: dict[str, Any]) -> dict[str, Any]:
    """Send one event and return the server's answer to it (the probe's `cleared` ends the wait)."""
    ws.send_text(json.dumps(event))
    ws.send_text(json.dumps({"type": "input_audio_buffer.clear"}))
    answers = _until_cleared(ws)
    assert len(answers) <= 1, answers
    return answers[0] if answers else {}


def _validate(message: dict[str, Any]) -> None:
    """Every GA event voxhost sends is one the SDK's types accept (beta's session objects lack the
    `client_secret` only OpenAI's hosted sessions have; voxhost's PCM at other rates than 24 kHz is an
    extension the SDK's `rate` does not type)."""
    if message["type"].startswith("transcription_session."):
        return
    if message["type"].startswith("session."):
        message = json.loads(json.dumps(message))
        audio_format = message["session"]["audio"]["input"]["format"]
        if "rate" in audio_format:
            audio_format["rate"] = 24000
    SERVER_EVENT.validate_python(message)


def _until_cleared(ws: WebSocketTestSession) -> list[dict[str, Any]]:
    answers = []
    for _ in range(100):
        message = ws.receive_json()
        _validate(message)
        if message["type"] == "input_audio_buffer.cleared":
            return answers
        answers.append(message)
    raise AssertionError(f"no input_audio_buffer.cleared after {answers}")


# --- the SDK's types, walked ----------------------------------------------------------------------
def _models(annotation: Any) -> list[type[BaseModel]]:
    origin = get_origin(annotation)
    if origin is typing.Annotated:
        return _models(get_args(annotation)[0])
    if origin in (Union, types.UnionType, list):
        return [m for arg in get_args(annotation) for m in _models(arg)]
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return []


def _leaves(model: type[BaseModel], path: str, chain: tuple[type[BaseModel], ...] = ()) -> Iterator[Any]:
    """(dotted path, the models from the root down to the field's own, its annotation) for every field."""
    chain = (*chain, model)
    for name, info in model.model_fields.items():
        yield f"{path}.{name}", chain, info.annotation
        for sub in _models(info.annotation):
            yield from _leaves(sub, f"{path}.{name}", chain)


def _paths(model: type[BaseModel], path: str = "session") -> set[str]:
    return {leaf for leaf, _, _ in _leaves(model, path)}


def _event_types(union: Any) -> set[str]:
    return {get_args(m.model_fields["type"].annotation)[0] for m in _models(union)}


def test_every_sdk_session_field_is_handled_or_declined() -> None:
    assert RealtimeTranscriptionSessionCreateRequest in _models(
        SessionUpdateEvent.model_fields["session"].annotation
    )
    for module, session_models in (
        (ga, [RealtimeTranscriptionSessionCreateRequest, RealtimeTranscriptionSessionCreateResponse]),
        (beta, [BetaSession]),
    ):
        sdk = set().union(*(_paths(m) for m in session_models))
        known = [module.HANDLED_FIELDS, set(module.IGNORED_FIELDS), set(module.DECLINED_FIELDS)]
        assert sdk - set().union(*known) == set(), f"{module.__name__}: SDK fields voxhost does not know"
        assert set().union(*known) - sdk == set(), f"{module.__name__}: fields the SDK no longer has"
        for one, other in ((0, 1), (0, 2), (1, 2)):
            assert not known[one] & known[other]
        assert all(module.IGNORED_FIELDS.values())
        assert all(module.DECLINED_FIELDS.values())
        assert not module.NULLABLE_FIELDS - sdk


def test_every_sdk_event_is_handled_or_declined() -> None:
    client_events = _event_types(realtime_client_event.RealtimeClientEvent) | _event_types(
        beta_client_event.RealtimeClientEvent
    )
    known = set(events.CLIENT_EVENTS) | set(events.DECLINED_CLIENT_EVENTS)
    assert client_events - known == set(), "client events voxhost does not know"
    assert not set(events.CLIENT_EVENTS) & set(events.DECLINED_CLIENT_EVENTS)
    assert known - client_events == set()
    server_events = _event_types(realtime_server_event.RealtimeServerEvent) | _event_types(
        beta_server_event.RealtimeServerEvent
    )
    known = set(events.SERVER_EVENTS) | set(events.DECLINED_SERVER_EVENTS)
    assert server_events - known == set(), "server events voxhost does not know"
    assert not set(events.SERVER_EVENTS) & set(events.DECLINED_SERVER_EVENTS)
    # beta's transcription_session.created was sent by OpenAI's servers but never typed in the SDK
    assert known - server_events == {"transcription_session.created"}


# --- each field on its own ------------------------------------------------------------------------
SAMPLES: dict[str, Any] = {
    "model": "gpt-4o-transcribe", "language": "en", "prompt": "Kitchen lights.", "languages": ["en"],
    "keywords": ["Stella"], "threshold": 0.6, "strength": 0.5, "rate": 24000, "expires_at": 0,
    "id": "sess_1", "object": "realtime.transcription_session", "seconds": 600, "include": [ga.LOGPROBS],
}  # fmt: skip


def _sample(name: str, annotation: Any) -> Any:
    if _models(annotation):
        return {}  # an object
    if name in SAMPLES:
        return SAMPLES[name]
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Literal:
        return args[0]
    if origin in (Union, types.UnionType):
        return _sample(name, next(a for a in args if a is not type(None)))
    if origin is list:
        return [_sample(name, args[0])]
    if annotation is bool:
        return True
    if annotation is int:
        return 500
    if annotation is float:
        return 0.5
    raise AssertionError(f"no sample for {name}: {annotation}")


def _variant(model: type[BaseModel]) -> Any:
    """The `type` a model of a union must carry, if it has one value only (ServerVad, AudioPCMU...)."""
    field = model.model_fields.get("type")
    kinds = get_args(next(iter(_literals(field.annotation)), None)) if field else ()
    return kinds[0] if len(kinds) == 1 else None


def _literals(annotation: Any) -> list[Any]:
    if get_origin(annotation) is Literal:
        return [annotation]
    return [a for arg in get_args(annotation) for a in _literals(arg)]


def _update(
    path: str, chain: tuple[type[BaseModel], ...], value: Any, root: dict[str, Any]
) -> dict[str, Any]:
    """A session holding `value` at `path`, with the variant `type` of every object on the way."""
    session = dict(root)
    node = session
    names = path.split(".")[1:]
    for name, model in zip(names[:-1], chain[1:], strict=True):
        node[name] = dict(node.get(name, {}))
        node = node[name]
        if _variant(model) is not None and names[-1] != "type":
            node["type"] = _variant(model)
    if names[-2:-1] == ["turn_detection"] and names[-1] != "type":  # beta's one object for both kinds
        node.setdefault("type", "semantic_vad" if names[-1] == "eagerness" else "server_vad")
    node[names[-1]] = value
    return session


CASES = [
    ("session.update", ga, RealtimeTranscriptionSessionCreateRequest, {"type": "transcription"}),
    ("transcription_session.update", beta, BetaSession, {}),
]


@pytest.mark.parametrize(("kind", "module", "model", "root"), CASES, ids=["ga", "beta"])
def test_each_sdk_field_alone_null_and_beside_an_unknown_one(
    client: TestClient, kind: str, module: Any, model: type[BaseModel], root: dict[str, Any]
) -> None:
    updated = "session.updated" if module is ga else "transcription_session.updated"
    with _connect(client) as ws:
        ws.receive_json()
        for path, chain, annotation in _leaves(model, "session"):
            name = path.rsplit(".", 1)[1]
            if path == "session.type":
                continue
            sample = _sample(name, annotation)
            inner = _models(annotation)
            if sample == {} and inner and _variant(inner[0]) is not None:
                sample = {"type": _variant(inner[0])}  # an object of a union: its first kind
            answer = _reply(ws, {"type": kind, "session": _update(path, chain, sample, root)})
            if path in module.DECLINED_FIELDS and sample is not None:
                assert answer["type"] == "error", (path, answer)
                assert answer["error"]["param"] == path
            else:
                assert answer["type"] == updated, (path, sample, answer)
            answer = _reply(ws, {"type": kind, "session": _update(path, chain, None, root)})
            assert (answer["type"] == updated) == (path in module.NULLABLE_FIELDS), (path, answer)
            if answer["type"] == "error":
                assert answer["error"]["param"] == path, answer
            if isinstance(sample, dict):  # an object: an unknown field in it is refused by name
                answer = _reply(
                    ws,
                    {
                        "type": kind,
                        "session": _update(f"{path}.bogus", (*chain, *inner[:1]), 1, root),
                    },
                )
                assert answer["type"] == "error", (path, answer)
                assert answer["error"]["param"] == f"{path}.bogus"
        answer = _reply(ws, {"type": kind, "session": {**root, "bogus": 1}, "event_id": "evt_7"})
        assert answer["error"]["param"] == "session.bogus"
        assert answer["error"]["event_id"] == "evt_7"


def test_the_null_threshold_that_dropped_the_beta_socket(client: TestClient) -> None:
    with _connect(client) as ws:
        ws.receive_json()
        turn = {"type": "server_vad", "threshold": None, "silence_duration_ms": 500}
        answer = _reply(ws, {"type": "transcription_session.update", "session": {"turn_detection": turn}})
        assert answer["type"] == "error"
        assert answer["error"]["param"] == "session.turn_detection.threshold"
        answer = _reply(ws, {"type": "transcription_session.update", "session": {"turn_detection": None}})
        assert answer["type"] == "transcription_session.updated"
        assert answer["session"]["turn_detection"] is None


def test_which_version_greets_and_answers(client: TestClient) -> None:
    with _connect(client) as ws:
        created = ws.receive_json()
        assert created["type"] == "session.created"
        assert created["session"]["type"] == "transcription"
        assert created["session"]["audio"]["input"]["format"] == {"type": "audio/pcm", "rate": 24000}
        update = {"type": "transcription_session.update", "session": {"input_audio_format": "g711_alaw"}}
        assert _reply(ws, update)["session"]["input_audio_format"] == "g711_alaw"
        answer = _reply(ws, {"type": "session.update", "session": {"type": "transcription"}})
        assert answer["session"]["audio"]["input"]["format"] == {"type": "audio/pcma"}  # one session
    for headers in (
        {"OpenAI-Beta": "realtime=v1"},
        {"sec-websocket-protocol": "realtime, openai-beta.realtime-v1"},
    ):
        with _connect(client, headers) as ws:
            created = ws.receive_json()
            assert created["type"] == "transcription_session.created"
            assert created["session"]["input_audio_format"] == "pcm16"


def test_refused_events_and_urls(client: TestClient) -> None:
    with _connect(client) as ws:
        ws.receive_json()
        for event, param in (
            ({"type": "response.create"}, "type"),
            ({"type": "conversation.item.create", "item": {}}, "type"),
            ({"type": "dance"}, "type"),
            ({"event_id": "x"}, "type"),
            ({"type": "input_audio_buffer.append", "audio": "***"}, "audio"),
            ({"type": "input_audio_buffer.append"}, "audio"),
            ({"type": "input_audio_buffer.commit", "extra": 1}, "extra"),
            ({"type": "input_audio_buffer.commit"}, None),  # nothing to commit
            ({"type": "session.update"}, "session"),
            ({"type": "session.update", "session": {"type": "realtime"}}, "session.type"),
            ({"type": "session.update", "session": {}}, "session.type"),
            (
                {
                    "type": "session.update",
                    "session": {
                        "type": "transcription",
                        "audio": {"input": {"transcription": {"model": "nope"}}},
                    },
                },
                "model",
            ),
        ):
            answer = _reply(ws, event)
            assert answer["type"] == "error", event
            assert answer["error"]["param"] == param, (event, answer)
            assert answer["error"]["message"]
        ws.send_bytes(b"\x00\x01")
        ws.send_text("{broken")
        ws.send_text("[" * 100_000)
        ws.send_text('{"type": "input_audio_buffer.append", "audio": 1' + "0" * 5000 + "}")
        ws.send_text(json.dumps({"type": "input_audio_buffer.clear"}))
        answers = _until_cleared(ws)
        assert [a["type"] for a in answers] == ["error"] * 4
        assert [a["error"]["code"] for a in answers[1:]] == ["invalid_json"] * 3
    for query, param in (
        ("model=nope", "model"),
        ("intent=conversation", "intent"),
        ("call_id=rtc_1", "call_id"),
    ):
        with client.websocket_connect(f"{WS}/v1/realtime?{query}") as ws:
            message = ws.receive_json()
            assert message["type"] == "error"
            assert message["error"]["param"] == param
            assert ws.receive()["code"] == 1008


def test_a_turn_in_each_format_with_the_canned_model(client: TestClient) -> None:
    """The event sequence of a committed turn, without a model: committed, segment, completed."""
    with _connect(client) as ws:
        ws.receive_json()
        for audio_format, data in (
            ({"type": "audio/pcm", "rate": 24000}, bytes(9600)),  # 0.2 s each
            ({"type": "audio/pcmu"}, b"\xff" * 1600),
            ({"type": "audio/pcma"}, b"\xd5" * 1600),
            ({"type": "audio/pcm", "rate": 16000}, bytes(6400)),  # voxhost also takes other rates
        ):
            session = {"type": "transcription", "include": [ga.LOGPROBS],
                       "audio": {"input": {"format": audio_format, "turn_detection": None}}}  # fmt: skip
            assert _reply(ws, {"type": "session.update", "session": session})["type"] == "session.updated"
            ws.send_text(
                json.dumps({"type": "input_audio_buffer.append", "audio": base64.b64encode(data).decode()})
            )
            ws.send_text(json.dumps({"type": "input_audio_buffer.commit"}))
            seen = [ws.receive_json() for _ in range(4)]
            for message in seen:
                _validate(message)
            assert [m["type"] for m in seen] == [
                "input_audio_buffer.committed",
                f"{events.ITEM}.delta",
                f"{events.ITEM}.segment",
                f"{events.ITEM}.completed",
            ]
            for message in seen:
                _all_fields(message)
            completed = seen[-1]
            assert completed["transcript"] == "Canned words."
            assert completed["usage"]["type"] == "tokens"
            assert 9 <= completed["usage"]["input_token_details"]["audio_tokens"] <= 10  # 0.2 s, 50 a second
            assert completed["logprobs"] == [{"token": " Canned", "logprob": -0.1, "bytes": list(b" Canned")}]
            assert completed["languages"] == [{"code": "en"}]
            assert {m["item_id"] for m in seen} == {completed["item_id"]}


GA_EVENT_MODELS = {
    get_args(m.model_fields["type"].annotation)[0]: m
    for m in _models(realtime_server_event.RealtimeServerEvent)
}


def _all_fields(message: dict[str, Any]) -> None:
    """The event carries every field its SDK type has, but those voxhost declines (`events.py`)."""
    model = GA_EVENT_MODELS[message["type"]]
    declined = {
        f.rsplit(".", 1)[1] for f in events.DECLINED_EVENT_FIELDS if f.rsplit(".", 1)[0] == message["type"]
    }
    assert set(model.model_fields) - set(message) - declined == set(), message["type"]


def test_the_session_events_carry_every_field(client: TestClient) -> None:
    with _connect(client) as ws:
        _all_fields(ws.receive_json())
        _all_fields(_reply(ws, {"type": "session.update", "session": {"type": "transcription"}}))
        _all_fields(_reply(ws, {"type": "dance"}))
        ws.send_text(json.dumps({"type": "input_audio_buffer.clear"}))
        _all_fields(ws.receive_json())
    assert set(events.DECLINED_EVENT_FIELDS) <= {
        f"{t}.{f}" for t, m in GA_EVENT_MODELS.items() for f in m.model_fields
    }


# --- fuzzed ---------------------------------------------------------------------------------------
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=6,
)
# Sessions close to a valid one: each field of the template present or not, valid (one of a tuple's
# choices) or any JSON at all, with now and then a field of no known name.
GA_TEMPLATE: dict[str, Any] = {
    "type": ("transcription", "realtime"), "include": [ga.LOGPROBS],
    "audio": {"input": {
        "format": {"type": ("audio/pcm", "audio/pcmu", "audio/pcma"), "rate": (24000, 16000, 8000)},
        "transcription": {"model": ("whisper-1", "tiny.en", "nope"), "language": ("en", "de", ""),
                          "languages": ["en", "fr"], "prompt": "Kitchen.", "keywords": ["Stella"],
                          "delay": ("low", "xhigh")},
        "turn_detection": {"type": ("server_vad", "semantic_vad"), "threshold": (0.0, 0.5, 1.0),
                           "prefix_padding_ms": (0, 300), "silence_duration_ms": (200, 500),
                           "eagerness": ("low", "auto", "high"), "create_response": True,
                           "interrupt_response": False, "idle_timeout_ms": (None, 1000)},
        "noise_reduction": {"type": ("near_field", "far_field"), "strength": (0.0, 1.0)},
    }},
}  # fmt: skip
BETA_TEMPLATE: dict[str, Any] = {
    "input_audio_format": ("pcm16", "g711_ulaw", "g711_alaw"),
    "input_audio_transcription": {"model": ("whisper-1", "nope"), "language": ("en", None), "prompt": ""},
    "turn_detection": {"type": ("server_vad", "semantic_vad"), "threshold": (0.2, 0.9),
                       "prefix_padding_ms": 300, "silence_duration_ms": 500, "eagerness": "high"},
    "input_audio_noise_reduction": {"type": ("near_field", "far_field")},
    "include": [ga.LOGPROBS], "modalities": ["text"],
    "client_secret": {"expires_at": {"anchor": "created_at", "seconds": (10, 7200)}},
}  # fmt: skip


def _near(template: Any) -> st.SearchStrategy[Any]:
    if isinstance(template, dict):
        fields = st.fixed_dictionaries({}, optional={k: _near(v) for k, v in template.items()})
        extra = st.dictionaries(st.sampled_from(["bogus", "type", ""]), json_values, max_size=1)
        return st.one_of(fields, st.builds(lambda a, b: {**b, **a}, fields, extra), json_values)
    valid = st.sampled_from(template) if isinstance(template, tuple) else st.just(template)
    return st.one_of(valid, valid, json_values)


@FUZZ
@given(session=_near(GA_TEMPLATE))
def test_any_ga_session_is_settings_or_a_bad_request(session: Any) -> None:
    _check_parse(ga, session)


@FUZZ
@given(session=_near(BETA_TEMPLATE))
def test_any_beta_session_is_settings_or_a_bad_request(session: Any) -> None:
    _check_parse(beta, session)


def _check_parse(module: Any, session: Any) -> None:
    try:
        config = module.parse(SessionConfig(), Fields(session, "session"))
    except BadRequest as exc:
        refused: BadRequest | None = exc
    else:
        refused = None
    if refused is not None:
        assert refused.message
        return
    config.options()
    config.vad()
    config.converter()
    rendered = module.render(config, "sess_1")
    json.dumps(rendered, allow_nan=False)
    # a client may send the session object back as it came: the same settings
    again = module.parse(SessionConfig(), Fields(rendered, "session"))
    assert module.render(again, "sess_1") == rendered


audio = st.binary(max_size=300).map(lambda b: base64.b64encode(b).decode())
client_events = st.one_of(
    st.fixed_dictionaries({"type": st.just("session.update"), "session": _near(GA_TEMPLATE)}),
    st.fixed_dictionaries({"type": st.just("transcription_session.update"), "session": _near(BETA_TEMPLATE)}),
    st.fixed_dictionaries(
        {"type": st.just("input_audio_buffer.append"), "audio": st.one_of(audio, json_values)}
    ),
    st.fixed_dictionaries(
        {"type": st.sampled_from([*events.CLIENT_EVENTS, *events.DECLINED_CLIENT_EVENTS, "x"])},
        optional={"event_id": json_values, "audio": audio, "session": json_values, "item": json_values},
    ),
    json_values,
)


@SOCKET_FUZZ
@given(sent=st.lists(client_events, min_size=1, max_size=5), beta_header=st.booleans())
def test_no_event_closes_the_socket(client: TestClient, sent: list[Any], beta_header: bool) -> None:
    """Whatever the client sends, each event is done or answered with an error, and the session goes on
    (an exception in the handler would close it with 1011, and the test client raise it here)."""
    with _connect(client, {"OpenAI-Beta": "realtime=v1"} if beta_header else None) as ws:
        ws.receive_json()
        for event in sent:
            ws.send_text(json.dumps(event))
        ws.send_text(json.dumps({"type": "input_audio_buffer.clear"}))
        for message in _until_cleared(ws):
            if message["type"] == "error":
                assert message["error"]["message"]
                assert message["error"]["type"] == "invalid_request_error"
