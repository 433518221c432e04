"""voxhost on a local Ray (2 CPUs, a small object store): batch transcription on Ray Data, then the
OpenAI API through Ray Serve, with the real tiny.en model and Piper voice. Skipped when Ray is not
installed (`pip install voxhost[ray]`; the test extra installs it, so CI runs these)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import openai
import pytest

from conftest import Recording, Speech, assert_transcript, free_port
from voxhost.audio import encode_audio
from voxhost.batch import BatchJob, output_paths, run_batch
from voxhost.engines.faster_whisper import FasterWhisperEngine
from voxhost.manager.registry import parse_entry
from voxhost.settings import Settings

ray = pytest.importorskip("ray")
serve = pytest.importorskip("ray.serve")
vserve = pytest.importorskip("voxhost.scale.serve")
pytestmark = pytest.mark.ray


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    vserve.start_ray(None, num_cpus=2, object_store_memory=100 * 2**20, include_dashboard=False)
    yield
    serve.shutdown()
    ray.shutdown()


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


@pytest.fixture(scope="module")
def serve_url(local_ray: None, cache_dir: Path) -> Iterator[str]:
    port = free_port()
    settings = Settings(
        models=["tiny.en", "en_US-joe-medium"], host="127.0.0.1", port=port, cache_dir=cache_dir, threads=1
    )
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
    yield url
    serve.delete(vserve.APP_NAME)


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
