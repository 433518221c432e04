"""Speaker diarization through the OpenAI API, with the real SDK, on a conversation of three distinct
synthetic voices (Piper's joe and two Kokoro voices): who said what, the speaker count, known speakers
named from samples, the stream events, the verbose_json / srt / vtt labels, and bad references."""

from __future__ import annotations

import base64
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
from openai.types.audio import TranscriptionDiarized, TranscriptionVerbose
from prometheus_client.parser import text_string_to_metric_families
from tests.conftest import start_server

from diarization_helpers import data_url, labels
from voxhost.audio import SAMPLE_RATE, encode_audio
from voxhost.benchmarks.conversations import EXCHANGE, Conversation, converse, say
from voxhost.harness import ServerProcess


@pytest.fixture(scope="module")
def conversation() -> Conversation:
    return converse(EXCHANGE)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, cache_dir: Path) -> Iterator[ServerProcess]:
    # one decode call per 30 s window, one at a time: a long file's segments come in several steps
    args = ("--model", "tiny.en", "--preload", "--batch-size", "1", "--parallel", "1")
    proc = start_server(tmp_path_factory.mktemp("diarize"), cache_dir, *args)
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def client(server: ServerProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0, timeout=120)


def test_diarized_json_says_who_said_what(client: openai.OpenAI, conversation: Conversation) -> None:
    result = client.audio.transcriptions.create(
        model="gpt-4o-transcribe-diarize",
        file=("talk.wav", conversation.wav()),
        response_format="diarized_json",
        chunking_strategy="auto",
    )
    assert isinstance(result, TranscriptionDiarized)
    assert result.task == "transcribe"
    assert result.duration == pytest.approx(conversation.seconds, abs=0.1)
    assert "walk in the park" in result.text.lower()
    spans = [(s.start, s.end, s.speaker) for s in result.segments]
    mapping = labels(conversation, spans)
    assert mapping == {"joe": "A", "jf_alpha": "B", "jm_kumo": "C"}  # letters in order of first speech
    assert all(s.type == "transcript.text.segment" and s.id and s.text for s in result.segments)
    # told there are two, it finds two
    two = client.audio.transcriptions.create(
        model="whisper-1",
        file=("talk.wav", conversation.wav()),
        response_format="diarized_json",
        extra_body={"num_speakers": 2},
    )
    assert {s.speaker for s in two.segments} == {"A", "B"}


def test_known_speakers_are_named(client: openai.OpenAI, conversation: Conversation) -> None:
    result = client.audio.transcriptions.create(
        model="gpt-4o-transcribe-diarize",
        file=("talk.wav", conversation.wav()),
        response_format="diarized_json",
        known_speaker_names=["Alpha", "Joe"],
        known_speaker_references=[
            data_url("jf_alpha", "My name is Alpha, and this is my voice."),
            data_url("joe", "This is Joe speaking, a sample of my voice."),
        ],
    )
    mapping = labels(conversation, [(s.start, s.end, s.speaker) for s in result.segments])
    assert mapping == {"joe": "Joe", "jf_alpha": "Alpha", "jm_kumo": "A"}


def _inferences(server: ServerProcess, model: str = "tiny.en") -> float:
    """How many calls the model's worker has completed (the server's own count, from /metrics)."""
    text = httpx.get(server.url + "/metrics", timeout=30).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "voxhost_inference_seconds_count" and sample.labels.get("model") == model:
                return sample.value
    return 0.0


def test_stream_sends_each_segment_as_it_is_decoded(client: openai.OpenAI, server: ServerProcess) -> None:
    """A long file (several 30 s windows of speech, one decode call each: the server runs with
    --batch-size 1 --parallel 1). Once the first window is decoded the ASR worker is held (SIGSTOP):
    the segments decoded so far must still go out, labelled, as soon as the speakers are known, while
    windows are left to decode (without streaming, none would come before the worker is let go).
    The hold only keeps the other windows from racing ahead: a first segment that comes before the
    holder has seen the first decode (it polls the server's metrics) shows the same, and then the
    worker is not held at all."""
    long = converse(EXCHANGE * 4, seed=5)
    assert httpx.post(server.url + "/v1/models/speakers/load", timeout=120).status_code == 200
    models = httpx.get(server.url + "/status", timeout=30).json()["models"]
    asr = next(m["pid"] for m in models if m["id"] == "tiny.en")
    before = _inferences(server)
    held, first_seen, order = threading.Event(), threading.Event(), threading.Lock()

    def hold_after_the_first_decode() -> None:
        deadline = time.monotonic() + 120
        while _inferences(server) < before + 1 and not first_seen.is_set() and time.monotonic() < deadline:
            time.sleep(0.01)
        with order:  # never stopped once the first segment is in (nothing would let it go)
            if first_seen.is_set():
                return
            os.kill(asr, signal.SIGSTOP)
            held.set()
        # a hang bound: a server that holds every segment until the end never sends one while the
        # worker is held; let it go after a minute so that the assertions below say so
        if not first_seen.wait(60):
            os.kill(asr, signal.SIGCONT)

    holder = threading.Thread(target=hold_after_the_first_decode, daemon=True)
    at_first: float | None = None  # the ASR calls completed when the first segment arrived
    events = []
    try:
        stream = client.audio.transcriptions.create(
            model="gpt-4o-transcribe-diarize",
            file=("long.wav", long.wav()),
            response_format="diarized_json",
            stream=True,
        )
        holder.start()
        for event in stream:
            if event.type == "transcript.text.segment" and at_first is None:
                at_first = _inferences(server)
                with order:
                    first_seen.set()
                    if held.is_set():
                        os.kill(asr, signal.SIGCONT)
            events.append(event)
    finally:
        holder.join(130)
        os.kill(asr, signal.SIGCONT)
    after = _inferences(server)
    assert at_first is not None
    assert before < at_first < after, (before, at_first, after)  # decoding went on after the first segment
    kinds = [e.type for e in events]
    assert kinds[-1] == "transcript.text.done"
    assert set(kinds[:-1]) == {"transcript.text.segment"}
    segments = [e for e in events if e.type == "transcript.text.segment"]
    assert len(segments) >= len(EXCHANGE) * 4
    assert [e.id for e in segments] == [f"seg_{i}" for i in range(len(segments))]
    assert [e.start for e in segments] == sorted(e.start for e in segments)
    # the labels (strictly checked on every segment by the tests above): on this two-minute exchange
    # a segment at a quick turn may take its neighbour's speaker
    mapping = labels(long, [(e.start, e.end, e.speaker) for e in segments], at_least=0.9)
    assert mapping == {"joe": "A", "jf_alpha": "B", "jm_kumo": "C"}
    assert "coat" in events[-1].text  # type: ignore[union-attr]


def test_speaker_labels_in_verbose_json_and_srt(client: openai.OpenAI, conversation: Conversation) -> None:
    verbose = client.audio.transcriptions.create(
        model="whisper-1",
        file=("talk.wav", conversation.wav()),
        response_format="verbose_json",
        timestamp_granularities=["word", "segment"],
        extra_body={"diarize": True},
    )
    assert isinstance(verbose, TranscriptionVerbose)
    segments = [s.model_dump() for s in verbose.segments or []]
    labels(conversation, [(s["start"], s["end"], s["speaker"]) for s in segments])
    words = [w.model_dump() for w in verbose.words or []]
    assert words
    assert all(w["speaker"] in {"A", "B", "C"} for w in words)
    srt = client.audio.transcriptions.create(
        model="whisper-1",
        file=("talk.wav", conversation.wav()),
        response_format="srt",
        extra_body={"diarize": True},
    )
    assert "[A] Hello there" in srt
    assert "[C]" in srt


def test_bad_references_and_counts_are_a_clear_400(server: ServerProcess, conversation: Conversation) -> None:
    url = server.url + "/v1/audio/transcriptions"
    short = encode_audio(say("joe", "Hi."), SAMPLE_RATE, "wav")
    good = data_url("joe", "This is Joe speaking, a sample of my voice.")
    cases = [
        ({"known_speaker_names[]": "Joe", "known_speaker_references[]": "data:audio/wav;base64,"
          + base64.b64encode(b"not audio at all" * 100).decode()}, "known_speaker_references", "not audio"),
        ({"known_speaker_names[]": "Joe", "known_speaker_references[]": "data:audio/wav;base64,"
          + base64.b64encode(short).decode()}, "known_speaker_references", "voice sample must be"),
        ({"known_speaker_names[]": ["Joe", "Ann"], "known_speaker_references[]": good},
         "known_speaker_references", "one reference per name"),
        ({"known_speaker_names[]": "Joe", "known_speaker_references[]": "https://example.com/a.wav"},
         "known_speaker_references", "data URL"),
        ({"num_speakers": "0"}, "num_speakers", "between 1"),
        ({"min_speakers": "3", "max_speakers": "2"}, "min_speakers", "more than max_speakers"),
    ]  # fmt: skip
    for fields, param, message in cases:
        data = {"response_format": "diarized_json", **fields}
        response = httpx.post(url, data=data, files={"file": ("a.wav", conversation.wav())}, timeout=60)
        assert response.status_code == 400, (fields, response.text)
        error = response.json()["error"]
        assert error["param"] == param, error
        assert message in error["message"], error
    # known speakers without asking for speakers
    response = httpx.post(
        url,
        data={"known_speaker_names[]": "Joe", "known_speaker_references[]": good},
        files={"file": ("a.wav", conversation.wav())},
        timeout=60,
    )
    assert response.status_code == 400
    assert "diarized_json" in response.json()["error"]["message"]
