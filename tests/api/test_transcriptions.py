"""The transcription form as OpenAI's SDK sends it today, field by field, against a live `voxhost serve`
(conftest's `server`: tiny.en and Whisper base, preloaded): the model names, `include=["logprobs"]`,
`keywords`, `languages`, `chunking_strategy`, the declined diarization fields, and a conformance check
that fails when the installed SDK grows a field that voxhost neither handles nor declines."""

from __future__ import annotations

import math
from typing import Any

import httpx
import numpy as np
import openai
import pytest
from openai.types.audio import (
    TranscriptionTextDeltaEvent,
    TranscriptionTextDoneEvent,
    TranscriptionTextSegmentEvent,
)
from openai.types.audio.transcription_create_params import (
    ChunkingStrategyVadConfig,
    TranscriptionCreateParamsBase,
    TranscriptionCreateParamsStreaming,
)
from openai.types.audio.translation_create_params import TranslationCreateParams

from conftest import ServerProcess, Speech, assert_transcript, synthesize
from voxhost.api import openai_audio
from voxhost.audio import encode_audio
from voxhost.formats import render
from voxhost.harness.wer import words
from voxhost.manager.registry import SPEECH_MODEL_NAMES, TRANSCRIPTION_MODEL_NAMES
from voxhost.results import Transcription

# Said to tiny.en without help, each name comes back wrong ("Cheboygan", "new end", "Joe Quinn"); with
# it as a keyword, right (measured on this Piper voice, whose speech is the same every run).
KEYWORD_CASES = (
    ("We drove to Sheboygan on Tuesday.", "Sheboygan"),
    ("The meeting with Nguyen starts at noon.", "Nguyen"),
    ("We met Joaquin at the conference.", "Joaquin"),
)


@pytest.fixture(scope="module")
def client(server: ServerProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0, timeout=120)


def _wav(speech: Speech) -> tuple[str, bytes]:
    return ("speech.wav", speech.encoded("wav"))


def _error(response: httpx.Response, param: str) -> str:
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == param, error
    return str(error["message"])


def _post(server: ServerProcess, speech: Speech, data: dict[str, Any]) -> httpx.Response:
    return httpx.post(
        server.url + "/v1/audio/transcriptions", files={"file": _wav(speech)}, data=data, timeout=120
    )


# --- model names ---------------------------------------------------------------------------------
def test_every_openai_transcription_model_name_transcribes(client: openai.OpenAI, speech: Speech) -> None:
    listed = {m.id: m.model_dump() for m in client.models.list()}
    for name in TRANSCRIPTION_MODEL_NAMES:
        assert listed[name]["alias_of"] == "tiny.en", name
    for name in ("gpt-4o-mini-transcribe", "gpt-transcribe", "gpt-4o-transcribe-diarize"):
        result = client.audio.transcriptions.create(model=name, file=_wav(speech))
        assert_transcript(result.text, speech.text)
    assert not set(SPEECH_MODEL_NAMES) & set(listed)  # this server has no TTS model
    with pytest.raises(openai.NotFoundError):
        client.audio.transcriptions.create(model="gpt-9-transcribe", file=_wav(speech))


# --- include=["logprobs"] ----------------------------------------------------------------------------
def _check_logprobs(entries: list[Any], text: str) -> None:
    assert entries
    assert "".join(e.token for e in entries).strip() == text
    for entry in entries:
        assert entry.logprob <= 0.0
        assert bytes(int(b) for b in entry.bytes).decode() == entry.token
    # clear synthetic speech: the decoder is sure of most tokens
    assert math.exp(sum(e.logprob for e in entries) / len(entries)) > 0.6


def test_logprobs_in_the_json_answer(client: openai.OpenAI, speech: Speech) -> None:
    result = client.audio.transcriptions.create(
        model="gpt-4o-mini-transcribe", file=_wav(speech), include=["logprobs"]
    )
    assert_transcript(result.text, speech.text)
    assert result.logprobs is not None
    _check_logprobs(result.logprobs, result.text)
    # the same words as without them, and none unless asked for
    plain = client.audio.transcriptions.create(model="gpt-4o-mini-transcribe", file=_wav(speech))
    assert plain.text == result.text
    assert plain.logprobs is None
    verbose = client.audio.transcriptions.create(
        model="whisper-1", file=_wav(speech), include=["logprobs"], response_format="verbose_json"
    )
    assert [e["token"] for e in verbose.model_dump()["logprobs"]] == [e.token for e in result.logprobs]


def test_logprobs_in_the_stream_events(client: openai.OpenAI, speech: Speech) -> None:
    events = list(
        client.audio.transcriptions.create(
            model="gpt-4o-mini-transcribe", file=_wav(speech), include=["logprobs"], stream=True
        )
    )
    deltas = [e for e in events if isinstance(e, TranscriptionTextDeltaEvent)]
    done = events[-1]
    assert isinstance(done, TranscriptionTextDoneEvent)
    assert deltas
    assert done.logprobs is not None
    _check_logprobs(done.logprobs, done.text)
    assert [lp.model_dump() for d in deltas for lp in d.logprobs or []] == [
        lp.model_dump() for lp in done.logprobs
    ]


def test_logprobs_with_a_format_that_has_no_place_for_them_is_a_400(
    server: ServerProcess, speech: Speech
) -> None:
    message = _error(_post(server, speech, {"include[]": "logprobs", "response_format": "srt"}), "include")
    assert "json" in message
    _error(_post(server, speech, {"include[]": "everything"}), "include")


# --- keywords --------------------------------------------------------------------------------------
@pytest.mark.parametrize(("sentence", "name"), KEYWORD_CASES)
def test_keywords_bring_an_unusual_name_back_spelt_right(
    client: openai.OpenAI, sentence: str, name: str
) -> None:
    spoken = synthesize(sentence)
    plain = client.audio.transcriptions.create(model="gpt-transcribe", file=_wav(spoken))
    keyed = client.audio.transcriptions.create(
        model="gpt-transcribe", file=_wav(spoken), keywords=[name, "Wisconsin"]
    )
    assert name.lower() not in words(plain.text), plain.text  # else the case proves nothing
    assert name.lower() in words(keyed.text), keyed.text
    assert_transcript(keyed.text, sentence, max_errors=0)


def test_keywords_too_long_for_the_prompt_are_a_400(server: ServerProcess, speech: Speech) -> None:
    many = [f"Name{i}" for i in range(60)]
    message = _error(_post(server, speech, {"keywords[]": many}), "keywords")
    assert "tokens" in message


# --- languages -------------------------------------------------------------------------------------
def test_languages_choose_among_the_likely_ones(client: openai.OpenAI, speech: Speech) -> None:
    result = client.audio.transcriptions.create(model="base", file=_wav(speech), languages=["fr", "en"])
    assert_transcript(result.text, speech.text)
    assert result.languages is not None
    assert [language.code for language in result.languages] == ["en"]
    english_only = client.audio.transcriptions.create(
        model="tiny.en", file=_wav(speech), languages=["en", "de"]
    )
    assert_transcript(english_only.text, speech.text)
    with pytest.raises(openai.BadRequestError, match="none of the languages"):
        client.audio.transcriptions.create(model="tiny.en", file=_wav(speech), languages=["de", "fr"])


def test_the_json_answer_has_every_field_of_the_sdks_transcription(
    server: ServerProcess, speech: Speech
) -> None:
    from openai.types.audio import Transcription as SdkTranscription

    data = {"model": "gpt-transcribe", "include[]": "logprobs", "languages[]": ["en"]}
    body = _post(server, speech, data).json()
    assert set(body) == set(SdkTranscription.model_fields)
    assert SdkTranscription.model_validate(body).usage is not None


# --- chunking_strategy -----------------------------------------------------------------------------
def test_chunking_strategy_auto_and_server_vad(client: openai.OpenAI, speech: Speech) -> None:
    # speech after ten seconds of quiet noise: voice activity detection leaves the quiet out
    rng = np.random.default_rng(1)
    quiet = (rng.standard_normal(speech.sample_rate * 10) * 0.003).astype(np.float32)
    late = Speech(speech.text, np.concatenate([quiet, speech.audio]), speech.sample_rate)
    for strategy in ("auto", {"type": "server_vad"}, {"type": "server_vad", "threshold": 0.3,
                     "silence_duration_ms": 300, "prefix_padding_ms": 200}):  # fmt: skip
        result = client.audio.transcriptions.create(
            model="whisper-1",
            file=_wav(late),
            chunking_strategy=strategy,  # type: ignore[arg-type]
            response_format="verbose_json",
        )
        assert_transcript(result.text, speech.text)
        assert result.segments
        assert result.segments[0].start > 9.0, (strategy, result.segments[0])  # on the file's clock
    # a threshold no frame reaches: nothing is speech, nothing is decoded
    deaf = client.audio.transcriptions.create(
        model="whisper-1", file=_wav(late), chunking_strategy={"type": "server_vad", "threshold": 1.0}
    )
    assert deaf.text == ""


def test_chunking_strategy_is_checked(server: ServerProcess, speech: Speech) -> None:
    vad = {"chunking_strategy[type]": "server_vad"}
    cases: list[tuple[dict[str, str], str]] = [
        ({"chunking_strategy": "sometimes"}, "chunking_strategy"),
        ({"chunking_strategy": '{"type": "client_vad"}'}, "chunking_strategy"),
        ({**vad, "chunking_strategy[eagerness]": "high"}, "chunking_strategy"),
        ({**vad, "chunking_strategy[threshold]": "2"}, "chunking_strategy.threshold"),
        ({**vad, "chunking_strategy[silence_duration_ms]": "-5"}, "chunking_strategy.silence_duration_ms"),
        ({**vad, "chunking_strategy[prefix_padding_ms]": "1.5"}, "chunking_strategy.prefix_padding_ms"),
    ]
    for data, param in cases:
        assert "chunking_strategy" in _error(_post(server, speech, data), param)
    as_json = _post(server, speech, {"chunking_strategy": '{"type": "server_vad", "threshold": 0.5}'})
    assert as_json.status_code == 200, as_json.text
    assert_transcript(as_json.json()["text"], speech.text)


# --- declined: diarization -------------------------------------------------------------------------
def test_known_speakers_without_diarization_or_bad_are_a_clear_400(
    client: openai.OpenAI, speech: Speech
) -> None:
    # diarized answers themselves: tests/api/test_diarization.py
    asks: list[tuple[dict[str, Any], str, str]] = [
        ({"known_speaker_names": ["agent"]}, "known_speaker_names", "diarized_json"),
        (
            {"response_format": "diarized_json", "known_speaker_names": ["agent"],
             "known_speaker_references": ["data:audio/wav;base64,UklGRg=="]},
            "known_speaker_references", "not audio",
        ),
    ]  # fmt: skip
    for ask, param, message in asks:
        with pytest.raises(openai.BadRequestError, match=message) as caught:
            client.audio.transcriptions.create(model="gpt-4o-transcribe-diarize", file=_wav(speech), **ask)
        assert caught.value.param == param
    # the diarize model's name without diarization is a plain transcription
    plain = client.audio.transcriptions.create(model="gpt-4o-transcribe-diarize", file=_wav(speech))
    assert_transcript(plain.text, speech.text)


# --- translations ----------------------------------------------------------------------------------
@pytest.mark.filterwarnings("ignore:deprecated:DeprecationWarning")
def test_a_translation_says_its_language_is_english(client: openai.OpenAI, speech: Speech) -> None:
    verbose = client.audio.translations.create(
        model="base", file=_wav(speech), response_format="verbose_json"
    )
    assert verbose.language == "english"
    # whatever was spoken: the text of a translation is English (OpenAI's answer)
    german = Transcription("Hello.", "de", 0.9, 1.0, task="translate")
    body = render(german, "verbose_json")
    assert isinstance(body, dict)
    assert body["language"] == "english"
    heard = render(Transcription("Hallo.", "de", 0.9, 1.0), "verbose_json")
    assert isinstance(heard, dict)
    assert heard["language"] == "german"


# --- conformance with the installed SDK ------------------------------------------------------------
def _fields(typed_dict: Any) -> set[str]:
    return set(typed_dict.__required_keys__ | typed_dict.__optional_keys__)


def test_every_sdk_request_field_is_handled_or_declined() -> None:
    """A field the installed `openai` SDK sends that voxhost neither reads nor declines fails here."""
    handled = set(openai_audio.TRANSCRIPTION_FIELDS)
    declined = set(openai_audio.DECLINED_FIELDS)
    assert not handled & declined
    transcription = _fields(TranscriptionCreateParamsBase) | _fields(TranscriptionCreateParamsStreaming)
    assert transcription - handled - declined == set(), "a transcription field voxhost does not know"
    translation = _fields(TranslationCreateParams)
    assert translation - set(openai_audio.TRANSLATION_FIELDS) == set(), "a translation field"
    assert _fields(ChunkingStrategyVadConfig) == set(openai_audio.CHUNKING_FIELDS), "a chunking field"
    assert all(reason for reason in openai_audio.DECLINED_FIELDS.values())


def test_every_sdk_stream_event_field_is_sent_or_declined() -> None:
    events: dict[str, type[Any]] = {
        "transcript.text.delta": TranscriptionTextDeltaEvent,
        "transcript.text.done": TranscriptionTextDoneEvent,
        "transcript.text.segment": TranscriptionTextSegmentEvent,
    }
    declined = openai_audio.DECLINED_EVENT_FIELDS
    for kind, model in events.items():
        if kind in declined:
            assert kind not in openai_audio.STREAM_EVENT_FIELDS
            continue
        sent = set(openai_audio.STREAM_EVENT_FIELDS[kind])
        unknown = {f for f in model.model_fields if f not in sent and f"{kind}.{f}" not in declined}
        assert unknown == set(), f"{kind} has fields voxhost neither sends nor declines"


def test_the_stream_events_carry_the_fields_they_claim(client: openai.OpenAI, speech: Speech) -> None:
    events = list(
        client.audio.transcriptions.create(
            model="base", file=_wav(speech), include=["logprobs"], languages=["en", "de"], stream=True
        )
    )
    for event in events:
        sent = set(openai_audio.STREAM_EVENT_FIELDS[event.type])
        present = {f for f in event.model_fields_set if getattr(event, f) is not None}
        assert present == sent, (event.type, present)


def test_known_speakers_need_a_diarized_answer_over_raw_http(server: ServerProcess) -> None:
    # known_speaker_* parts in the raw form (as curl sends them) without asking for speakers are refused
    # before any audio is decoded
    silence = encode_audio(np.zeros(16000, dtype=np.float32), 16000, "wav")
    for name in ("known_speaker_names", "known_speaker_references"):
        response = httpx.post(
            server.url + "/v1/audio/transcriptions",
            files={"file": ("a.wav", silence)},
            data={f"{name}[]": "agent"},
            timeout=60,
        )
        assert "diarized_json" in _error(response, name)
