"""`voxhost transcribe --diarize` and `voxhost batch --diarize` on the tests' three-voice conversation:
speaker-labelled subtitles, and RTTM for scoring tools."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from voxhost.benchmarks.conversations import EXCHANGE, converse
from voxhost.cli import app


@pytest.fixture
def talk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cache_dir: Path) -> Path:
    for name in list(os.environ):
        if name.startswith("VOXHOST_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("VOXHOST_CACHE_DIR", str(cache_dir))
    path = tmp_path / "in" / "talk.wav"
    path.parent.mkdir()
    path.write_bytes(converse(EXCHANGE).wav())
    return path


def _speakers(rttm: str) -> list[str]:
    return [line.split()[7] for line in rttm.splitlines()]


def test_transcribe_and_batch_label_speakers(talk: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    srt = runner.invoke(app, ["transcribe", str(talk), "--diarize", "-f", "srt"], catch_exceptions=False)
    assert srt.exit_code == 0, srt.output
    assert "[A] Hello there" in srt.stdout
    assert "[C] Can I come along" in srt.stdout
    out = tmp_path / "out"
    batch = runner.invoke(
        app, ["batch", str(talk.parent), "-o", str(out), "--diarize"], catch_exceptions=False
    )
    assert batch.exit_code == 0, batch.output
    rttm = (out / "talk.wav.rttm").read_text()
    assert all(line.startswith("SPEAKER talk 1 ") for line in rttm.splitlines())
    assert list(dict.fromkeys(_speakers(rttm))) == ["A", "B", "C"]
    assert _speakers(rttm)[:4] == ["A", "B", "A", "C"]
    assert "<v B>I am fine" in (out / "talk.wav.vtt").read_text()
