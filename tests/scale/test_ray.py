"""voxhost on a local Ray (2 CPUs, a small object store): batch transcription on Ray Data (with speakers
too), then every front-end through one Ray Serve app (the OpenAI API with speakers, Wyoming, the live
WebSocket and OpenAI Realtime), with the real tiny.en model and Piper voice. Skipped when Ray is not
installed (`pip install voxhost[ray]`; the test extra installs it, so CI runs these)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import openai
import psutil
import pytest
from openai.types.audio import TranscriptionDiarized
from websockets.sync.client import ClientConnection, connect
from websockets.typing import Subprotocol
from wyoming.asr import Transcript
from wyoming.audio import AudioChunk, AudioStart
from wyoming.client import AsyncClient
from wyoming.info import Describe, Info
from wyoming.tts import Synthesize

from conftest import Recording, Speech, assert_transcript
from diarization_helpers import labels
from voxhost.audio import encode_audio
from voxhost.audio.decode import PcmConverter, float_to_pcm16
from voxhost.batch.job import BatchJob, output_paths, run_batch
from voxhost.benchmarks.conversations import EXCHANGE, Conversation, converse
from voxhost.engines.faster_whisper import FasterWhisperEngine
from voxhost.harness import free_ports
from voxhost.manager.registry import parse_entry
from voxhost.settings import Settings
from wyoming_helpers import events_until, pcm_of, transcribe

ray = pytest.importorskip("ray")
serve = pytest.importorskip("ray.serve")
vserve = pytest.importorskip("voxhost.scale.serve")
pytestmark = pytest.mark.ray


@pytest.fixture(scope="module")
def two_voices() -> Conversation:
    return converse(EXCHANGE[:2])  # joe, then jf_alpha


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    vserve.start_ray(None, num_cpus=2, object_store_memory=100 * 2**20, include_dashboard=False)
    yield
    serve.shutdown()
    ray.shutdown()


def test_a_local_ray_stays_on_loopback_and_sends_no_usage_statistics(local_ray: None) -> None:
    """Ray's GCS, raylet, dashboard agent and workers run code for whoever reaches their ports: the Ray
    voxhost starts is this machine's alone (on Linux, Ray would bind the machine's address)."""
    from ray._common.usage import usage_lib

    nodes = ray.nodes()
    assert nodes
    assert {node["NodeManagerAddress"] for node in nodes} == {"127.0.0.1"}
    assert ray.util.get_node_ip_address() == "127.0.0.1"
    assert not usage_lib.usage_stats_enabled()
    # every port Ray's processes listen on is on loopback (its GCS, raylet, agents, workers)
    listening = set()
    for process in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.Error):
            listening |= {
                (process.name(), c.laddr.ip)
                for c in process.net_connections(kind="inet")
                if c.status == psutil.CONN_LISTEN
            }
    assert any(name == "gcs_server" for name, _ in listening), listening
    assert {ip.removeprefix("::ffff:") for _, ip in listening} == {"127.0.0.1"}, listening


def test_deployment_options_come_from_the_settings() -> None:
    settings = Settings(models=["tiny.en", "en_US-joe-medium"], parallel=2, max_queue=7, replicas=2)
    asr = vserve.deployment_options(settings, "asr")
    assert (asr["num_replicas"], asr["max_ongoing_requests"], asr["max_queued_requests"]) == (2, 2, 7)
    tts = vserve.deployment_options(settings.model_copy(update={"ray_max_replicas": 5}), "tts")
    assert tts["max_ongoing_requests"] == 1  # Piper runs one synthesis at a time, as in a local worker
    assert tts["autoscaling_config"] == {"min_replicas": 2, "max_replicas": 5, "target_ongoing_requests": 1}
    assert "num_replicas" not in tts
    # the ingress admits as many requests at once as all replicas can run, then queues
    scaled = settings.model_copy(update={"ray_max_replicas": 5})
    gateway = vserve.Gateway(scaled, {})
    assert gateway.layout(scaled, parse_entry("tiny.en")).slots == 2 * 5
    assert gateway.layout(scaled, parse_entry("en_US-joe-medium")).slots == 1 * 5


def test_exposure_is_checked_with_the_real_wyoming_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    """Wyoming runs on Ray too, so an open Wyoming listener beside API keys is refused before Ray starts."""

    def no_ray(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("started Ray despite an unprotected Wyoming listener")

    monkeypatch.setattr(vserve, "start_ray", no_ray)
    settings = Settings(models=["tiny.en"], api_key="secret", wyoming_uri="tcp://0.0.0.0:10300")
    with pytest.raises(SystemExit, match="--wyoming-open"):
        vserve.run(settings, blocking=False)


# Ray Data first: it needs the CPUs that the Serve deployments below hold once they are up.
def test_batch_on_ray_data(
    local_ray: None, tmp_path: Path, cache_dir: Path, short_speech: Speech, long_talk: Recording
) -> None:
    source, out = tmp_path / "in", tmp_path / "out"
    source.mkdir()
    for name in ("a.wav", "b.wav"):
        (source / name).write_bytes(short_speech.encoded("wav"))
    (source / "c.mp3").write_bytes(short_speech.encoded("mp3"))
    (source / "long.wav").write_bytes(encode_audio(long_talk.audio, 16000, "wav"))
    (source / "broken.flac").write_bytes(b"not audio" * 50)
    job = BatchJob(source, out, ray=True, actors=1)
    settings = Settings(models=["tiny.en"], cache_dir=cache_dir, threads=1)

    assert run_batch(job, settings) == 1
    for name in ("a.wav", "b.wav", "c.mp3"):
        outputs = output_paths(job, source / name)
        assert_transcript(outputs["txt"].read_text(), short_speech.text)
        assert json.loads(outputs["json"].read_text())["words"]
    long = output_paths(job, source / "long.wav")
    assert_transcript(long["txt"].read_text(), long_talk.text, max_errors=3)
    assert json.loads(long["json"].read_text())["duration"] == pytest.approx(long_talk.seconds, abs=0.01)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["runner"] == "ray data, 1 actors"
    assert summary["transcribed"] == 4
    assert [f["file"] for f in summary["failed"]] == ["broken.flac"]
    (source / "broken.flac").unlink()
    assert run_batch(job, settings) == 0  # resumed: nothing left to do
    assert json.loads((out / "summary.json").read_text())["transcribed"] == 0


def test_batch_on_ray_data_labels_speakers(
    local_ray: None, tmp_path: Path, cache_dir: Path, two_voices: Conversation
) -> None:
    """--diarize --ray: each actor holds the diarization model too; every output labelled, FILE.rttm."""
    source, out = tmp_path / "in", tmp_path / "out"
    source.mkdir()
    (source / "talk.wav").write_bytes(two_voices.wav())
    job = BatchJob(source, out, ray=True, actors=1, diarize=True)
    assert run_batch(job, Settings(models=["tiny.en"], cache_dir=cache_dir, threads=1)) == 0
    outputs = output_paths(job, source / "talk.wav")
    rttm = [line.split() for line in outputs["rttm"].read_text().splitlines()]
    assert [(fields[1], fields[7]) for fields in rttm] == [("talk", "A"), ("talk", "B")]
    assert float(rttm[1][3]) == pytest.approx(two_voices.turns[1].start, abs=0.5)
    srt = outputs["srt"].read_text()
    assert "[A] Hello there" in srt
    assert "[B] I am fine" in srt
    assert [s["speaker"] for s in json.loads(outputs["json"].read_text())["segments"]] == ["A", "B"]


def test_ray_data_actor_decodes_a_long_file_in_batched_windows(
    tmp_path: Path, cache_dir: Path, long_talk: Recording, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The actor (run here in this process, as Ray would run it) puts a long file on the server's
    batched plan: speech found, 30 s windows decoded together."""
    from voxhost.scale.data import Transcriber

    decoded: list[int] = []  # windows per batched call
    transcribe_windows = FasterWhisperEngine.transcribe_windows

    def recording(self: FasterWhisperEngine, audio: Any, windows: Any, options: Any) -> Any:
        decoded.append(len(windows))
        return transcribe_windows(self, audio, windows, options)

    monkeypatch.setattr(FasterWhisperEngine, "transcribe_windows", recording)
    path = tmp_path / "long.wav"
    path.write_bytes(encode_audio(long_talk.audio, 16000, "wav"))
    settings = Settings(models=["tiny.en"], cache_dir=cache_dir, threads=1)
    actor = Transcriber(settings, None, BatchJob(tmp_path, tmp_path / "out").options())
    rows = actor({"path": np.array([str(path)], dtype=object)})
    assert rows["error"] == [""]
    assert decoded == [2]
    assert_transcript(rows["txt"][0], long_talk.text, max_errors=3)
    assert rows["audio_seconds"] == [pytest.approx(long_talk.seconds)]


@dataclass(frozen=True)
class RayServer:
    url: str  # HTTP, through Serve's proxy
    wyoming_uri: str  # the listener in the ingress replica

    @property
    def ws_url(self) -> str:
        return self.url.replace("http", "ws", 1)


@pytest.fixture(scope="module")
def ray_server(
    local_ray: None, cache_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RayServer]:
    """One Serve app for the module (Serve starts slowly): HTTP and Wyoming on free local ports."""
    port, wyoming_port = free_ports(2)
    settings = Settings(
        models=["tiny.en", "en_US-joe-medium"], host="127.0.0.1", port=port, cache_dir=cache_dir, threads=1,
        wyoming_uri=f"tcp://127.0.0.1:{wyoming_port}", data_dir=tmp_path_factory.mktemp("ray-jobs"),
    )  # fmt: skip
    vserve.run(settings, blocking=False)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/health/ready", timeout=5).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    else:
        raise AssertionError("Ray Serve did not become ready in 180 s")
    yield RayServer(url, settings.wyoming_uri)
    serve.delete(vserve.APP_NAME)


@pytest.fixture(scope="module")
def serve_url(ray_server: RayServer) -> str:
    return ray_server.url


def test_openai_sdk_through_ray_serve(serve_url: str, speech: Speech) -> None:
    client = openai.OpenAI(base_url=serve_url + "/v1", api_key="unused", max_retries=0, timeout=120)
    assert {m.id for m in client.models.list()} >= {"tiny.en", "en_US-joe-medium", "whisper-1", "tts-1"}
    transcript = client.audio.transcriptions.create(model="whisper-1", file=("a.wav", speech.encoded("wav")))
    assert_transcript(transcript.text, speech.text)
    # speech from the TTS deployment, streamed, heard by the ASR deployment
    spoken = client.audio.speech.create(
        model="tts-1", voice="alloy", input=speech.text, response_format="wav"
    )
    again = client.audio.transcriptions.create(model="tiny.en", file=("b.wav", spoken.content))
    assert_transcript(again.text, speech.text, max_errors=2)


def test_speakers_through_ray_serve(serve_url: str, two_voices: Conversation) -> None:
    """The diarization model runs in the ASR deployment's replica, beside the speech model."""
    client = openai.OpenAI(base_url=serve_url + "/v1", api_key="unused", max_retries=0, timeout=120)
    result = client.audio.transcriptions.create(
        model="gpt-4o-transcribe-diarize",
        file=("talk.wav", two_voices.wav()),
        response_format="diarized_json",
    )
    assert isinstance(result, TranscriptionDiarized)
    assert labels(two_voices, [(s.start, s.end, s.speaker) for s in result.segments]) == {
        "joe": "A", "jf_alpha": "B",
    }  # fmt: skip
    assert "how are you" in result.text.lower()


def test_a_job_through_ray_serve(serve_url: str, speech: Speech) -> None:
    """The jobs' store lives with the ingress; the job's calls go to the ASR deployment."""
    with httpx.Client(base_url=serve_url, timeout=60) as client:
        job = client.post("/v1/jobs", files={"file": ("a.wav", speech.encoded("wav"))}).json()
        for _ in range(600):
            job = client.get(f"/v1/jobs/{job['id']}").json()
            if job["status"] in ("completed", "failed", "cancelled"):
                break
            time.sleep(0.1)
        assert job["status"] == "completed", job
        assert_transcript(client.get(f"/v1/jobs/{job['id']}/result").json()["text"], speech.text)


def test_errors_through_ray_serve_keep_the_api_shape(serve_url: str) -> None:
    bad_audio = httpx.post(
        serve_url + "/v1/audio/transcriptions", files={"file": ("a.wav", b"junk" * 100)}, timeout=60
    )
    assert bad_audio.status_code == 400
    assert bad_audio.json()["error"]["code"] == "invalid_audio"
    unknown_voice = httpx.post(
        serve_url + "/v1/audio/speech", json={"input": "hi", "voice": "nobody"}, timeout=60
    )
    assert unknown_voice.status_code == 400  # raised inside the engine replica, rebuilt on the ingress
    assert "voice" in unknown_voice.json()["error"]["message"]
    assert httpx.get(serve_url + "/v1/models/nope", timeout=30).status_code == 404


def test_wyoming_through_ray_serve(ray_server: RayServer, speech: Speech, short_speech: Speech) -> None:
    """The ingress replica ran the app's lifespan, so Wyoming listens there, on the Serve deployments."""

    async def describe() -> Info:
        async with AsyncClient.from_uri(ray_server.wyoming_uri) as client:
            await client.write_event(Describe().event())
            (event,) = await events_until(client, "info")
            return Info.from_event(event)

    async def synthesize(text: str) -> tuple[AudioStart, bytes]:
        async with AsyncClient.from_uri(ray_server.wyoming_uri) as client:
            await client.write_event(Synthesize(text=text).event())
            spoken = await events_until(client, "audio-stop")
        assert spoken[0].type == "audio-start", [e.type for e in spoken]
        pcm = b"".join(AudioChunk.from_event(e).audio for e in spoken if AudioChunk.is_type(e.type))
        return AudioStart.from_event(spoken[0]), pcm

    info = asyncio.run(describe())
    (asr,) = info.asr
    assert [m.name for m in asr.models] == ["tiny.en"]
    (tts,) = info.tts  # the voices come from the TTS deployment's replica
    assert [v.name for v in tts.voices] == ["en_US-joe-medium"]

    events = asyncio.run(transcribe(ray_server.wyoming_uri, pcm_of(speech, 22050), 22050, 2, 1))
    assert [e.type for e in events][-2:] == ["transcript-stop", "transcript"]
    assert_transcript(Transcript.from_event(events[-1]).text, speech.text)

    start, pcm = asyncio.run(synthesize(short_speech.text))
    assert start.rate == 22050
    assert len(pcm) / 2 / start.rate > 1.0
    heard = asyncio.run(transcribe(ray_server.wyoming_uri, pcm, start.rate, start.width, start.channels))
    assert_transcript(Transcript.from_event(heard[-1]).text, short_speech.text, max_errors=2)


def _pcm16(speech: Speech, rate: int) -> bytes:
    converter = PcmConverter(speech.sample_rate, 2, 1, sample_rate=rate)
    audio = np.concatenate([converter.convert(float_to_pcm16(speech.audio)), converter.flush()])
    return float_to_pcm16(audio)


def _messages_until(
    ws: ClientConnection, kind: str, count: int = 1, timeout: float = 120
) -> list[dict[str, Any]]:
    """The server's JSON messages up to the `count`th of `kind` (or raise after `timeout` s)."""
    messages: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while sum(m.get("type") == kind for m in messages) < count:
        left = deadline - time.monotonic()
        assert left > 0, f"no {count} {kind} in {messages}"
        try:
            messages.append(json.loads(ws.recv(timeout=left)))
        except TimeoutError:
            raise AssertionError(f"no {count} {kind} in {messages}") from None
    return messages


def test_live_websocket_through_ray_serve(ray_server: RayServer, speech: Speech) -> None:
    """Serve's proxy carries the WebSocket to the ingress; its decodes run on the ASR deployment."""
    rate = 16000
    audio = bytes(2 * rate // 2) + _pcm16(speech, rate) + bytes(2 * rate)  # speech, then 1 s of silence
    with connect(ray_server.ws_url + "/v1/audio/transcriptions/live?language=en", max_size=None) as ws:
        (ready,) = _messages_until(ws, "ready")
        assert ready["sample_rate"] == rate
        for i in range(0, len(audio), rate // 5):  # 100 ms messages, as fast as they go
            ws.send(audio[i : i + rate // 5])
        ws.send(json.dumps({"type": "stop"}))
        messages = _messages_until(ws, "done")
    finals = [m for m in messages if m["type"] == "final"]
    assert finals, messages
    assert_transcript(" ".join(f["text"] for f in finals), speech.text)
    assert not [m for m in messages if m["type"] == "error"]


def test_openai_realtime_through_ray_serve(ray_server: RayServer, short_speech: Speech) -> None:
    url = ray_server.ws_url + "/v1/realtime?intent=transcription"
    beta = {"OpenAI-Beta": "realtime=v1"}  # the beta protocol, as older clients announce it
    with connect(url, subprotocols=[Subprotocol("realtime")], additional_headers=beta, max_size=None) as ws:
        assert ws.subprotocol == "realtime"  # the proxy passes the handshake's choice on
        _messages_until(ws, "transcription_session.created")
        ws.send(json.dumps({
            "type": "transcription_session.update",
            "session": {
                "input_audio_transcription": {"model": "whisper-1", "language": "en"},
                "turn_detection": {"type": "server_vad", "silence_duration_ms": 500},
            },
        }))  # fmt: skip
        _messages_until(ws, "transcription_session.updated")
        audio = bytes(2 * 24000 // 4) + _pcm16(short_speech, 24000) + bytes(2 * 24000)
        for i in range(0, len(audio), 4800):
            chunk = base64.b64encode(audio[i : i + 4800]).decode()
            ws.send(json.dumps({"type": "input_audio_buffer.append", "audio": chunk}))
        messages = _messages_until(ws, "conversation.item.input_audio_transcription.completed")
    kinds = [m["type"] for m in messages]
    assert kinds.index("input_audio_buffer.speech_started") < kinds.index("input_audio_buffer.committed")
    (completed,) = [m for m in messages if m["type"].endswith(".completed")]
    assert_transcript(completed["transcript"], short_speech.text)
