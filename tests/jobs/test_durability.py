"""Nothing lost: a server SIGKILLed mid-job and started again on the same data dir resumes the job from
its last completed call; one server per data dir; finished jobs go after --job-retention and the disk
they may take is bounded (--jobs-disk-mb)."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from jobs_helpers import HEADERS, KEY, decoding, finished, submit, wait_for

from conftest import Recording, ServerProcess, free_port, start_server
from voxhost import server as server_module
from voxhost.audio import encode_audio
from voxhost.harness.wer import word_errors
from voxhost.jobs.store import DataDirLocked, Job, JobStore
from voxhost.settings import Settings

FLAGS = ("--model", "tiny.en", "--preload", "--api-key", KEY, "--batch-size", "1", "--parallel", "1")


def serve(folder: Path, cache_dir: Path, data: Path, *flags: str) -> ServerProcess:
    return start_server(folder, cache_dir, *FLAGS, "--data-dir", str(data), *flags, health_headers=HEADERS)


def calls_by_run(data: Path, job_id: str) -> dict[int, int]:
    """How many completed calls of the job each run made, read from the store's database."""
    with sqlite3.connect(f"file:{data / 'jobs.sqlite3'}?mode=ro", uri=True) as db:
        rows = db.execute("SELECT run, COUNT(*) FROM calls WHERE job_id = ? GROUP BY run", (job_id,))
        return dict(rows.fetchall())


def test_one_store_per_data_dir_and_leftovers_of_a_crash_are_removed(tmp_path: Path) -> None:
    store = JobStore.open(tmp_path)
    try:
        with pytest.raises(DataDirLocked, match="another voxhost server"):
            JobStore.open(tmp_path)
        job = Job(
            id="job_a", seq=0, created_at=time.time(), status="queued", model="tiny.en",
            task="transcribe", response_format="json", filename="a.wav", params={}, duration=1.0,
        )  # fmt: skip
        store.create(job, b"audio")
        (tmp_path / "jobs" / "job_crashed").mkdir()  # its audio was written, its row never committed
    finally:
        store.close()
    store = JobStore.open(tmp_path)  # the lock went with the first store
    try:
        assert sorted(p.name for p in (tmp_path / "jobs").iterdir()) == ["job_a"]
        assert store.audio("job_a") == b"audio"
        assert store.count("queued") == 1
    finally:
        store.close()


def test_a_server_killed_mid_job_resumes_it_from_its_last_completed_call(
    tmp_path: Path, cache_dir: Path, long_talk: Recording, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "data"
    wav = encode_audio(long_talk.audio, 16000, "wav")
    first = serve(tmp_path, cache_dir, data)
    with first, httpx.Client(base_url=first.url, headers=HEADERS, timeout=60) as client:
        # a second server on the same data dir is refused, before it listens, while this one holds it
        monkeypatch.setattr(server_module, "configure_logging", lambda *args: None)
        with pytest.raises(SystemExit, match="another voxhost server uses the data dir"):
            server_module.run_server(Settings(models=["tiny.en"], data_dir=data, port=free_port()))
        # with speakers: they are found first and kept, so the resumed job does not look for them again
        job = submit(client, wav, response_format="verbose_json", diarize="true").json()
        before = wait_for(client, job["id"], decoding, "some calls done")
        first.processes()  # its workers are noted, to be killed with it
        first.process.kill()
        first.process.wait(10)
    kept = calls_by_run(data, job["id"])
    assert set(kept) == {1}
    assert kept[1] >= 2  # the voice activity call and at least one decode call

    second = serve(tmp_path, cache_dir, data)
    with second, httpx.Client(base_url=second.url, headers=HEADERS, timeout=60) as client:
        done = wait_for(client, job["id"], finished, "the resumed job's end")
        assert done["status"] == "completed", done
        assert done["runs"] == 2
        assert done["progress"]["audio_seconds"] >= before["progress"]["audio_seconds"]
        result = client.get(f"/v1/jobs/{job['id']}/result").json()
        second_models = client.get("/status").json()["models"]
    # the calls done before the kill were not made again: only the rest were
    after = calls_by_run(data, job["id"])
    assert after[1] == kept[1]
    assert after.get(2, 0) >= 1
    assert f"{after.get(2, 0)} calls run, {kept[1]} from before" in second.log()
    assert f"job {job['id']}: its speakers from before" in second.log()
    assert {m["id"]: m["loads"] for m in second_models}["speakers"] == 0  # the diarizer never needed
    # and the transcript is whole
    assert result["duration"] == pytest.approx(long_talk.seconds, abs=0.05)
    assert word_errors(result["text"], long_talk.text) <= len(long_talk.text.split()) * 0.05, result["text"]
    starts = [segment["start"] for segment in result["segments"]]
    assert starts == sorted(starts)
    assert {segment["speaker"] for segment in result["segments"]} == {"A"}  # one voice reads it all


def test_finished_jobs_go_after_the_retention_and_the_disk_is_bounded(
    tmp_path: Path, cache_dir: Path, speech: Any
) -> None:
    wav = speech.encoded("wav")
    disk_mb = 1.5 * len(wav) / 2**20  # room for one upload, not two
    retention_hours = 1.5 / 3600
    flags = ("--jobs-disk-mb", f"{disk_mb:.4f}", "--job-retention", f"{retention_hours:.6f}")
    server = serve(tmp_path, cache_dir, tmp_path / "data", *flags)
    with server, httpx.Client(base_url=server.url, headers=HEADERS, timeout=60) as client:
        first = submit(client, wav)
        assert first.status_code == 202
        refused = submit(client, wav)
        assert refused.status_code == 429
        assert "--jobs-disk-mb" in refused.json()["error"]["message"]
        job_id = first.json()["id"]
        assert wait_for(client, job_id, finished, "the job's end")["status"] == "completed"
        # removed once past the retention, its files with it; then there is room again
        for _ in range(300):
            if client.get(f"/v1/jobs/{job_id}").status_code == 404:
                break
            time.sleep(0.05)
        assert client.get(f"/v1/jobs/{job_id}").status_code == 404
        assert not (tmp_path / "data" / "jobs" / job_id).exists()
        assert submit(client, wav).status_code == 202
