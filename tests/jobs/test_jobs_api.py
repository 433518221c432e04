"""The jobs API against a real server with tiny.en: a job answers exactly what /v1/audio/transcriptions
answers, in every format; events; cancel; idempotency; bad uploads refused at submit; the key on every
route; webhooks signed as the openai SDK checks them, retried; a worker killed mid-job."""

from __future__ import annotations

import contextlib
import http.server
import json
import os
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import httpx
import openai
import pytest
from jobs_helpers import HEADERS, KEY, decoding, finished, submit, wait_for
from openai.types.audio import TranscriptionDiarized, TranscriptionVerbose

from conftest import TEXT, Recording, ServerProcess, assert_transcript, speech, start_server
from diarization_helpers import data_url, labels
from voxhost.api.jobs import event_lines
from voxhost.audio import encode_audio
from voxhost.benchmarks.conversations import EXCHANGE, Conversation, converse
from voxhost.formats import RESPONSE_FORMATS
from voxhost.harness.wer import word_errors

SECRET = "whsec_" + "c2VjcmV0LWZvci10aGUtam9icy10ZXN0cw=="  # base64 of a test secret
_ = speech  # the session fixture, used by name below


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, cache_dir: Path) -> Iterator[ServerProcess]:
    folder = tmp_path_factory.mktemp("jobs")
    proc = start_server(
        folder, cache_dir, "--model", "tiny.en", "--preload", "--api-key", KEY, "--data-dir",
        str(folder / "data"), "--webhook-secret", SECRET, "--max-queued-jobs", "1", "--batch-size", "1",
        "--parallel", "1",
        health_headers=HEADERS,
    )  # fmt: skip
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def client(server: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, headers=HEADERS, timeout=60) as client:
        yield client


@pytest.fixture(scope="module")
def long_talk_wav(long_talk: Recording) -> tuple[Recording, bytes]:
    return long_talk, encode_audio(long_talk.audio, 16000, "wav")


FORM = {"timestamp_granularities[]": ["word", "segment"], "language": "en"}


def test_a_job_answers_exactly_what_the_transcription_route_answers(
    client: httpx.Client, speech: Any
) -> None:
    wav = speech.encoded("wav")
    response = submit(client, wav, response_format="srt", **FORM)
    assert response.status_code == 202, response.text
    job = response.json()
    assert job["object"] == "transcription.job"
    assert job["status"] in ("queued", "running")
    assert job["duration"] == pytest.approx(speech.seconds, abs=0.05)
    done = wait_for(client, job["id"], finished, "the job's end")
    assert done["status"] == "completed", done
    assert done["progress"] == {"audio_seconds": done["duration"], "fraction": 1.0}
    # its own format by default, any other on asking, each as the transcription route answers it
    own = client.get(f"/v1/jobs/{job['id']}/result")
    assert own.headers["content-type"].startswith("application/x-subrip")
    assert "-->" in own.text
    # a job submitted without speakers has none: diarized_json is refused, every other format answered
    no_speakers = client.get(f"/v1/jobs/{job['id']}/result", params={"response_format": "diarized_json"})
    assert no_speakers.status_code == 400
    assert "no speakers" in no_speakers.json()["error"]["message"]
    for fmt in (f for f in RESPONSE_FORMATS if f != "diarized_json"):
        direct = client.post(
            "/v1/audio/transcriptions", files={"file": ("a.wav", wav)}, data={**FORM, "response_format": fmt}
        )
        result = client.get(f"/v1/jobs/{job['id']}/result", params={"response_format": fmt})
        assert result.status_code == direct.status_code == 200
        assert result.headers["content-type"] == direct.headers["content-type"]
        assert result.content == direct.content, fmt
    assert_transcript(client.get(f"/v1/jobs/{job['id']}/result?response_format=text").text, TEXT)
    # a late follower gets it all: progress, the text, the done event, the job's end
    events = event_lines(client.get(f"/v1/jobs/{job['id']}/events").text)
    assert [e["type"] for e in events] == [
        "transcription.job.progress", "transcript.text.delta", "transcript.text.done",
        "transcription.job.completed",
    ]  # fmt: skip
    assert events[1]["delta"] == events[2]["text"]
    listed = client.get("/v1/jobs", params={"status": "completed"}).json()
    assert listed["object"] == "list"
    assert job["id"] in [j["id"] for j in listed["data"]]
    metrics = client.get("/metrics").text
    assert 'voxhost_jobs{status="completed"}' in metrics
    seconds = [line for line in metrics.splitlines() if line.startswith("voxhost_job_audio_seconds_total")]
    assert seconds
    assert float(seconds[0].split()[-1]) >= speech.seconds - 0.05


@pytest.fixture(scope="module")
def conversation() -> Conversation:
    return converse(EXCHANGE)


def test_a_diarized_job_says_who_said_what_in_every_format(
    client: httpx.Client, conversation: Conversation
) -> None:
    """Known speakers are kept with the job (as their voices' embeddings) and named in its result."""
    known = {
        "known_speaker_names[]": "Joe",
        "known_speaker_references[]": data_url("joe", "This is Joe speaking, a sample of my voice."),
    }
    response = submit(client, conversation.wav(), response_format="diarized_json", **FORM, **known)
    assert response.status_code == 202, response.text
    job = response.json()
    following = client.stream("GET", f"/v1/jobs/{job['id']}/events")
    with following as events_response:
        events = event_lines(events_response.read().decode())
    done = wait_for(client, job["id"], finished, "the diarized job's end")
    assert done["status"] == "completed", done
    body = client.get(f"/v1/jobs/{job['id']}/result").json()
    diarized = TranscriptionDiarized.model_validate(body)
    assert labels(conversation, [(s.start, s.end, s.speaker) for s in diarized.segments]) == {
        "joe": "Joe", "jf_alpha": "A", "jm_kumo": "B",
    }  # fmt: skip
    assert "walk in the park" in diarized.text.lower()
    # followers got each labelled segment as it was decoded, then the text
    told = [e for e in events if e["type"] == "transcript.text.segment"]
    assert [(e["speaker"], e["text"]) for e in told] == [(s.speaker, s.text) for s in diarized.segments]
    # the labelled formats of diarize=true, from the same job
    verbose = TranscriptionVerbose.model_validate(
        client.get(f"/v1/jobs/{job['id']}/result", params={"response_format": "verbose_json"}).json()
    )
    segments = [s.model_dump() for s in verbose.segments or []]
    labels(conversation, [(s["start"], s["end"], s["speaker"]) for s in segments])
    assert {w.model_dump()["speaker"] for w in verbose.words or []} == {"Joe", "A", "B"}
    srt = client.get(f"/v1/jobs/{job['id']}/result", params={"response_format": "srt"}).text
    assert "[Joe] Hello there" in srt
    vtt = client.get(f"/v1/jobs/{job['id']}/result", params={"response_format": "vtt"}).text
    assert "<v Joe>Hello there" in vtt
    assert (
        client.get(f"/v1/jobs/{job['id']}/result", params={"response_format": "text"}).text.strip()
        == body["text"]
    )


def test_a_repeated_submit_with_an_idempotency_key_returns_the_same_job(
    client: httpx.Client, speech: Any
) -> None:
    wav = speech.encoded("wav")
    before = len(client.get("/v1/jobs", params={"limit": 100}).json()["data"])
    headers = {"Idempotency-Key": "meeting-2026-12-04"}
    first = client.post("/v1/jobs", files={"file": ("a.wav", wav)}, headers=headers)
    again = client.post("/v1/jobs", files={"file": ("a.wav", wav)}, headers=headers)
    assert (first.status_code, again.status_code) == (202, 200)
    assert first.json()["id"] == again.json()["id"]
    assert len(client.get("/v1/jobs", params={"limit": 100}).json()["data"]) == before + 1
    wait_for(client, first.json()["id"], finished, "the job's end")
    # pages, newest first: `after` the last of one page comes the next
    newest = client.get("/v1/jobs", params={"limit": 1}).json()
    assert newest["data"][0]["id"] == first.json()["id"]
    assert newest["has_more"]
    older = client.get("/v1/jobs", params={"limit": 1, "after": newest["last_id"]}).json()
    assert older["data"][0]["created_at"] <= newest["data"][0]["created_at"]
    assert older["first_id"] != newest["first_id"]


@pytest.mark.parametrize(
    ("files", "data", "status", "param"),
    [
        ({"file": ("a.wav", b"RIFF....not audio at all")}, {}, 400, None),
        ({}, {"model": "tiny.en"}, 400, "file"),
        (None, {"response_format": "docx"}, 400, "response_format"),
        (None, {"model": "no-such-model"}, 404, None),
        (None, {"task": "summarize"}, 400, "task"),
        (None, {"webhook_url": "ftp://example.org/hook"}, 400, "webhook_url"),
        (None, {"stream": "true"}, 400, "stream"),
        (None, {"temperature": "7"}, 400, "temperature"),
    ],
    ids=["not-audio", "no-file", "format", "model", "task", "webhook", "stream", "temperature"],
)
def test_a_bad_upload_is_refused_at_submit_and_makes_no_job(
    client: httpx.Client, speech: Any, files: Any, data: dict[str, str], status: int, param: str | None
) -> None:
    before = client.get("/v1/jobs", params={"limit": 100}).json()["data"]
    files = {"file": ("a.wav", speech.encoded("wav"))} if files is None else files
    if not files:
        files = {"other": ("x.txt", b"x")}
    response = client.post("/v1/jobs", files=files, data=data)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["message"]
    assert param is None or error["param"] == param
    assert client.get("/v1/jobs", params={"limit": 100}).json()["data"] == before


def test_every_jobs_route_wants_the_key(server: ServerProcess, client: httpx.Client, speech: Any) -> None:
    job_id = client.get("/v1/jobs").json()["data"][0]["id"]
    routes = [
        ("POST", "/v1/jobs"), ("GET", "/v1/jobs"), ("GET", f"/v1/jobs/{job_id}"),
        ("GET", f"/v1/jobs/{job_id}/result"), ("GET", f"/v1/jobs/{job_id}/events"),
        ("DELETE", f"/v1/jobs/{job_id}"),
    ]  # fmt: skip
    for method, path in routes:
        for headers in ({}, {"Authorization": "Bearer wrong"}):
            response = httpx.request(method, server.url + path, headers=headers, timeout=10)
            assert response.status_code == 401, (method, path)
            assert response.json()["error"]["code"]
    assert client.get(f"/v1/jobs/{job_id}").status_code == 200  # nothing was deleted


def test_cancel_while_queued_and_while_running_and_the_queue_limit(
    client: httpx.Client, long_talk_wav: tuple[Recording, bytes], speech: Any
) -> None:
    _, wav = long_talk_wav
    running = submit(client, wav).json()
    wait_for(client, running["id"], lambda j: j["status"] == "running", "the job running")
    queued = submit(client, speech.encoded("wav")).json()
    assert queued["status"] == "queued"
    full = submit(client, speech.encoded("wav"))  # --max-queued-jobs 1
    assert full.status_code == 429
    assert full.json()["error"]["code"] == "jobs_full"
    assert client.delete(f"/v1/jobs/{queued['id']}").json()["status"] == "cancelled"
    cancelled = client.delete(f"/v1/jobs/{running['id']}").json()
    assert cancelled["status"] == "cancelled"
    assert cancelled["progress"]["fraction"] < 1
    assert client.get(f"/v1/jobs/{running['id']}/result").status_code == 409
    # once finished, DELETE removes it
    deleted = client.delete(f"/v1/jobs/{running['id']}").json()
    assert deleted == {"id": running["id"], "object": "transcription.job.deleted", "deleted": True}
    assert client.get(f"/v1/jobs/{running['id']}").status_code == 404
    assert client.delete(f"/v1/jobs/{running['id']}").status_code == 404


def test_a_worker_killed_mid_job_is_retried_and_the_job_completes(
    server: ServerProcess, client: httpx.Client, long_talk_wav: tuple[Recording, bytes]
) -> None:
    recording, wav = long_talk_wav
    job = submit(client, wav, response_format="json").json()
    wait_for(client, job["id"], decoding, "some calls done")
    pid = client.get("/health").json()["models"]["tiny.en"]["pid"]
    os.kill(pid, signal.SIGKILL)
    # a follower that connects now gets the text so far, then the rest: the deltas make the text
    events = event_lines(client.get(f"/v1/jobs/{job['id']}/events", timeout=120).text)
    done = wait_for(client, job["id"], finished, "the job's end")
    assert done["status"] == "completed", done
    assert client.get("/health").json()["models"]["tiny.en"]["restarts"] >= 1
    text = client.get(f"/v1/jobs/{job['id']}/result").json()["text"]
    assert "".join(e["delta"] for e in events if e["type"] == "transcript.text.delta") == text
    assert events[-1]["type"] == "transcription.job.completed"
    assert word_errors(text, recording.text) <= len(recording.text.split()) * 0.05, text
    direct = client.post("/v1/audio/transcriptions", files={"file": ("a.wav", wav)}, timeout=120)
    assert direct.json()["text"] == text


class _Receiver(http.server.BaseHTTPRequestHandler):
    """Fails the first delivery (500), accepts the others; keeps what came."""

    received: ClassVar[list[tuple[bytes, dict[str, str]]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["content-length"]))
        self.received.append((body, dict(self.headers)))
        self.send_response(500 if len(self.received) == 1 else 200)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextlib.contextmanager
def receiver() -> Iterator[tuple[str, list[tuple[bytes, dict[str, str]]]]]:
    handler = type("Receiver", (_Receiver,), {"received": []})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/hooks/voxhost", handler.received
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(10)


def test_a_webhook_is_signed_for_the_openai_sdk_and_retried(client: httpx.Client, speech: Any) -> None:
    with receiver() as (url, received):
        job = submit(client, speech.encoded("wav"), webhook_url=url).json()
        done = wait_for(client, job["id"], lambda j: (j["webhook"] or {}).get("delivered") is True,
                        "the webhook delivered")  # fmt: skip
    assert done["webhook"]["attempts"] == 2
    assert len(received) == 2
    body, headers = received[-1]
    sdk = openai.OpenAI(api_key="unused", webhook_secret=SECRET)
    event = sdk.webhooks.unwrap(body, headers)
    assert event.type == "transcription.job.completed"  # type: ignore[comparison-overlap]
    data: Any = event.data
    job_object = data if isinstance(data, dict) else data.model_dump()
    assert job_object["id"] == job["id"]
    assert job_object["status"] == "completed"
    with pytest.raises(openai.InvalidWebhookSignatureError):
        sdk.webhooks.verify_signature(body, headers, secret="whsec_" + "d3Jvbmctc2VjcmV0")
    assert received[0][1]["webhook-id"] == headers["webhook-id"]  # the retry is the same event


def test_the_jobs_command_submits_waits_lists_shows_and_fetches(
    server: ServerProcess, client: httpx.Client, speech: Any, tmp_path: Path
) -> None:
    from typer.testing import CliRunner

    from voxhost.cli.commands import app

    audio = tmp_path / "talk.wav"
    audio.write_bytes(speech.encoded("wav"))
    where = ["--url", server.url, "--api-key", KEY]
    runner = CliRunner()
    submitted = runner.invoke(app, ["jobs", "submit", str(audio), "-f", "srt", *where])
    assert submitted.exit_code == 0, submitted.output
    assert "-->" in submitted.stdout
    assert_transcript(submitted.stdout.split("\n", 2)[-1], TEXT)
    job_id = client.get("/v1/jobs", params={"limit": 1}).json()["data"][0]["id"]
    assert job_id in submitted.stderr
    listed = runner.invoke(app, ["jobs", "list", *where])
    assert job_id in listed.stdout
    shown = runner.invoke(app, ["jobs", "show", job_id, *where])
    assert json.loads(shown.stdout)["status"] == "completed"
    text = runner.invoke(app, ["jobs", "result", job_id, "-f", "text", *where])
    assert_transcript(text.stdout, TEXT)
    assert runner.invoke(app, ["jobs", "cancel", job_id, *where]).stdout.strip() == f"{job_id}: deleted"
    missing = runner.invoke(app, ["jobs", "show", job_id, *where])
    assert missing.exit_code == 1
    assert "404" in missing.stderr
    unauthorized = runner.invoke(app, ["jobs", "list", "--url", server.url])
    assert unauthorized.exit_code == 1
    assert "401" in unauthorized.stderr


def test_batch_sends_a_folder_as_jobs_and_resumes(server: ServerProcess, speech: Any, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from voxhost.cli.commands import app

    folder, out = tmp_path / "in", tmp_path / "out"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "talk.wav").write_bytes(speech.encoded("wav"))
    (folder / "broken.wav").write_bytes(b"not audio at all")
    command = ["batch", str(folder), "-o", str(out), "--url", server.url, "--api-key", KEY]
    first = CliRunner().invoke(app, command)
    assert first.exit_code == 1, first.output  # the broken file failed, the other was transcribed
    outputs = sorted(p.name for p in (out / "sub").iterdir())
    assert outputs == ["talk.wav.json", "talk.wav.srt", "talk.wav.txt", "talk.wav.vtt"]
    assert_transcript((out / "sub" / "talk.wav.txt").read_text(), TEXT)
    assert json.loads((out / "sub" / "talk.wav.json").read_text())["words"]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["transcribed"] == 1
    assert summary["failed"][0]["file"] == "broken.wav"
    again = CliRunner().invoke(app, command)
    assert "1 done before" in " ".join(again.stderr.split())  # the console wraps long paths' lines


def test_the_jobs_command_and_a_batch_of_jobs_label_speakers(server: ServerProcess, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from voxhost.cli.commands import app

    two = converse(EXCHANGE[:2])  # joe, then jf_alpha
    folder, out = tmp_path / "in", tmp_path / "out"
    folder.mkdir()
    (folder / "talk.wav").write_bytes(two.wav())
    where = ["--url", server.url, "--api-key", KEY]
    submitted = CliRunner().invoke(
        app, ["jobs", "submit", str(folder / "talk.wav"), "--diarize", "-f", "srt", *where]
    )
    assert submitted.exit_code == 0, submitted.output
    assert "[A] Hello there" in submitted.stdout
    assert "[B] I am fine" in submitted.stdout
    batch = CliRunner().invoke(app, ["batch", str(folder), "-o", str(out), "--diarize", *where])
    assert batch.exit_code == 0, batch.output
    assert sorted(p.name for p in out.iterdir() if p.name.startswith("talk")) == [
        "talk.wav.json", "talk.wav.rttm", "talk.wav.srt", "talk.wav.txt", "talk.wav.vtt",
    ]  # fmt: skip
    rttm = [line.split() for line in (out / "talk.wav.rttm").read_text().splitlines()]
    assert [(fields[1], fields[7]) for fields in rttm] == [("talk", "A"), ("talk", "B")]
    assert float(rttm[1][3]) == pytest.approx(two.turns[1].start, abs=0.5)  # B starts where jf_alpha does
    assert "<v B>" in (out / "talk.wav.vtt").read_text()
    segments = json.loads((out / "talk.wav.json").read_text())["segments"]
    assert [s["speaker"] for s in segments] == ["A", "B"]
