"""`voxhost batch` with the local resident workers: every format written, failures reported per file
without stopping the batch, and a rerun skips what is done (resumable)."""

from __future__ import annotations

import contextlib
import io
import json
import re
import subprocess
import sys
from collections.abc import AsyncGenerator
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from rich.progress import Progress

from conftest import Recording, Speech, assert_transcript
from voxhost.audio import encode_audio
from voxhost.batch.job import BatchJob, FileResult, _Tally, find_inputs, output_paths, run_batch
from voxhost.manager import longform
from voxhost.results import TranscriptUpdate
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


def test_batch_long_file_takes_the_batched_path_with_progress_in_audio_seconds(
    tmp_path: Path,
    cache_dir: Path,
    long_talk: Recording,
    short_speech: Speech,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    source, out = tmp_path / "in", tmp_path / "out"
    source.mkdir()
    (source / "long.wav").write_bytes(encode_audio(long_talk.audio, 16000, "wav"))
    (source / "short.flac").write_bytes(short_speech.encoded("flac"))
    reached: list[float] = []  # how far each update of a batched long file got
    batched = longform.batched

    async def recording_batched(*args: Any, **kwargs: Any) -> AsyncGenerator[TranscriptUpdate, None]:
        async with contextlib.aclosing(batched(*args, **kwargs)) as updates:
            async for update in updates:
                reached.append(update.seconds)
                yield update

    monkeypatch.setattr(longform, "batched", recording_batched)
    drawn = io.StringIO()
    console = Console(file=drawn, force_terminal=True, width=200)
    job = BatchJob(source, out)
    settings = Settings(models=["tiny.en"], cache_dir=cache_dir, log_level="warning")

    assert run_batch(job, settings, console) == 0
    assert reached  # the long file (only: the short one is one whole call), to its end
    assert reached[-1] == pytest.approx(long_talk.seconds)
    outputs = output_paths(job, source / "long.wav")
    assert_transcript(outputs["txt"].read_text(), long_talk.text, max_errors=3)
    verbose = json.loads(outputs["json"].read_text())
    assert verbose["duration"] == pytest.approx(long_talk.seconds, abs=0.01)
    assert (
        verbose["words"][-1]["end"] > long_talk.seconds - 6
    )  # the second window's words, on the file's clock
    assert_transcript(output_paths(job, source / "short.flac")["txt"].read_text(), short_speech.text)
    summary = json.loads((out / "summary.json").read_text())
    total = long_talk.seconds + short_speech.seconds
    assert summary["audio_seconds"] == pytest.approx(total, abs=0.02)
    # the bar as it was last drawn: both files done, all their audio, and the speed
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]|\r", "", drawn.getvalue())
    whole = round(total)
    assert re.search(rf"2/2 files .*{whole}/{whole} s \d+\.\dx real time", text), text


def test_batch_bar_replaces_estimated_lengths_with_real_ones(tmp_path: Path, short_speech: Speech) -> None:
    """The bar's total starts from the lengths the files' headers declare; each finished file's real
    length (nothing for a failure) replaces its estimate, so the bar ends full however the guesses were."""
    a, b, broken = tmp_path / "a.wav", tmp_path / "b.wav", tmp_path / "broken.ogg"
    a.write_bytes(short_speech.encoded("wav"))
    b.write_bytes(short_speech.encoded("wav"))
    broken.write_bytes(b"not audio" * 100)
    progress = Progress(console=Console(file=io.StringIO()))
    tally = _Tally(progress, [a, b, broken])
    (task,) = progress.tasks
    seconds = short_speech.seconds
    assert task.total == pytest.approx(2 * seconds, abs=0.01)  # the broken file declares nothing
    tally.advance(a, 1.0)
    tally.advance(b, 2.0)
    tally.advance(a, 0.5)  # an update never takes the bar back
    assert task.completed == pytest.approx(3.0)
    tally.advance(a, seconds + 5)  # never past what the file is thought to hold
    assert task.completed == pytest.approx(seconds + 2.0)
    tally.finish(FileResult(a, audio_seconds=seconds - 0.25))  # shorter than its header said
    assert (task.completed, task.total) == pytest.approx((seconds - 0.25 + 2.0, 2 * seconds - 0.25))
    tally.finish(FileResult(b, error="could not decode"))  # failed half way: its audio leaves the total
    tally.finish(FileResult(broken, error="could not decode"))
    assert (task.completed, task.total) == pytest.approx((seconds - 0.25, seconds - 0.25))
    assert task.description == "3/3 files"
