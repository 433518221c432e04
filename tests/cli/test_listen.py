"""`voxhost listen` in this process: wake words in a file, and the words said after them."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from conftest import synthesize
from voxhost.cli import app


def test_listen_to_a_file_in_process(tmp_path: Path, cache_dir: Path) -> None:
    wav = tmp_path / "command.wav"
    wav.write_bytes(synthesize("Alexa. Turn on the kitchen lights.").encoded("wav"))
    runner = CliRunner()
    args = [
        "listen",
        str(wav),
        "--cache-dir",
        str(cache_dir),
        "--model",
        "microwakeword",
        "--model",
        "tiny.en",
    ]
    result = runner.invoke(app, [*args, "--transcribe"])
    assert result.exit_code == 0, result.output
    detection, transcript = result.stdout.splitlines()
    assert detection.split("\t")[0] == "alexa"
    assert "kitchen lights" in transcript.lower()
    # listening for another word only: nothing heard, exit status 1
    other = runner.invoke(app, [*args, "--names", "okay_nabu"])
    assert other.exit_code == 1, other.output
    assert other.stdout == ""
