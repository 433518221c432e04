"""`voxhost batch` with the local resident workers: every format written, failures reported per file
without stopping the batch, and a rerun skips what is done (resumable)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from conftest import Speech, assert_transcript
from voxhost.batch import BatchJob, find_inputs, output_paths, run_batch
from voxhost.settings import Settings


def make_inputs(folder: Path, speech: Speech) -> None:
    (folder / "sub").mkdir(parents=True)
    (folder / "talk.wav").write_bytes(speech.encoded("wav"))
    (folder / "talk.mp3").write_bytes(speech.encoded("mp3"))  # same stem: its own outputs
    (folder / "sub" / "again.flac").write_bytes(speech.encoded("flac"))
    (folder / "broken.ogg").write_bytes(b"not audio" * 100)
    (folder / "notes.txt").write_text("not an audio file name")


def test_batch_writes_every_format_reports_failures_and_resumes(
    tmp_path: Path, cache_dir: Path, short_speech: Speech
) -> None:
    source, out = tmp_path / "in", tmp_path / "out"
    make_inputs(source, short_speech)
    job = BatchJob(source, out)
    settings = Settings(models=["tiny.en"], cache_dir=cache_dir, log_level="warning")
    assert [p.relative_to(source).as_posix() for p in find_inputs(source)] == [
        "broken.ogg", "sub/again.flac", "talk.mp3", "talk.wav",
    ]  # fmt: skip

    assert run_batch(job, settings) == 1  # one file failed; the others are done
    for name in ("talk.wav", "talk.mp3", "sub/again.flac"):
        outputs = output_paths(job, source / name)
        assert_transcript(outputs["txt"].read_text(), short_speech.text)
        verbose = json.loads(outputs["json"].read_text())
        assert verbose["segments"]
        assert verbose["words"]
        assert outputs["srt"].read_text().startswith("1\n00:00:00,")
        assert outputs["vtt"].read_text().startswith("WEBVTT")
    assert not any(out.rglob("*.partial"))
    summary = json.loads((out / "summary.json").read_text())
    assert summary["transcribed"] == 3
    assert [f["file"] for f in summary["failed"]] == ["broken.ogg"]
    assert "decode" in summary["failed"][0]["error"]

    # resumable: the done files are skipped, the failed one is tried again
    (source / "broken.ogg").write_bytes(short_speech.encoded("ogg"))
    done_before = output_paths(job, source / "talk.wav")["json"].stat().st_mtime_ns
    assert run_batch(job, settings) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["transcribed"], len(summary["skipped"]), summary["failed"]) == (1, 3, [])
    assert output_paths(job, source / "talk.wav")["json"].stat().st_mtime_ns == done_before


def test_batch_cli(tmp_path: Path, cache_dir: Path, short_speech: Speech) -> None:
    source, out = tmp_path / "in", tmp_path / "out"
    source.mkdir()
    (source / "one.wav").write_bytes(short_speech.encoded("wav"))
    command = [
        sys.executable,
        "-m",
        "voxhost",
        "batch",
        str(source),
        "-o",
        str(out),
        "--cache-dir",
        str(cache_dir),
    ]
    run = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert "transcribed 1, skipped 0, failed 0" in run.stderr
    assert_transcript((out / "one.wav.txt").read_text(), short_speech.text)
    missing = subprocess.run(
        [*command[:4], str(tmp_path / "nowhere"), "-o", str(out)], capture_output=True, text=True
    )
    assert missing.returncode == 2
    assert "is not a folder" in missing.stderr
