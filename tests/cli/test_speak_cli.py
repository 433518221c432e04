"""`voxhost speak` and the serve flags, with real voices; speech is checked by transcribing it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from typer.testing import CliRunner

from conftest import ServerFactory, assert_transcript
from voxhost.audio import decode_audio
from voxhost.cli import app
from voxhost.engines.base import EngineConfig
from voxhost.engines.faster_whisper import FasterWhisperEngine
from voxhost.manager.registry import parse_entry
from voxhost.results import TranscribeOptions
from voxhost.settings import Settings, flag_name, reference_markdown

TEXT = "Good morning. The meeting starts at nine."


def _transcribe(path: Path) -> str:
    spec = parse_entry("tiny.en")
    engine = FasterWhisperEngine.load(spec.location(EngineConfig()), EngineConfig())
    return engine.transcribe(decode_audio(path.read_bytes()), TranscribeOptions()).text


def test_speak_locally_to_each_format(tmp_path: Path) -> None:
    runner = CliRunner()
    for name in ("a.wav", "a.mp3", "a.flac"):
        out = tmp_path / name
        result = runner.invoke(app, ["speak", TEXT, "-o", str(out)])
        assert result.exit_code == 0, result.output
        assert_transcript(_transcribe(out), TEXT)
    pcm = tmp_path / "a.pcm"
    assert runner.invoke(app, ["speak", TEXT, "-o", str(pcm)]).exit_code == 0
    samples = np.frombuffer(pcm.read_bytes(), dtype="<i2")
    assert 1.5 < len(samples) / 24000 < 6


def test_speak_reads_stdin_and_uses_kokoro(tmp_path: Path) -> None:
    out = tmp_path / "k.wav"
    result = CliRunner().invoke(app, ["speak", "-m", "kokoro", "--voice", "echo", "-o", str(out)], input=TEXT)
    assert result.exit_code == 0, result.output
    assert_transcript(_transcribe(out), TEXT)


def test_speak_through_a_server(tmp_path: Path, server_factory: ServerFactory) -> None:
    server = server_factory("--model", "en_US-joe-medium")
    out = tmp_path / "remote.opus"
    result = CliRunner().invoke(app, ["speak", TEXT, "--url", server.url, "--voice", "alloy", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert out.read_bytes()[:4] == b"OggS"
    assert_transcript(_transcribe(out), TEXT)
    bad = CliRunner().invoke(app, ["speak", TEXT, "--url", server.url, "--voice", "nobody", "-o", str(out)])
    assert bad.exit_code == 2
    assert "unknown voice" in bad.output


def test_speak_errors() -> None:
    runner = CliRunner()
    assert runner.invoke(app, ["speak", "   ", "-o", "/dev/null"]).exit_code == 2
    result = runner.invoke(app, ["speak", "hi", "-o", "x.xyz", "--format", "xyz"])
    assert result.exit_code == 2
    assert "unknown format" in result.output


def test_every_setting_is_a_serve_flag() -> None:
    help_text = subprocess.run(
        [sys.executable, "-m", "voxhost", "serve", "--help"],
        capture_output=True, text=True, check=True, env={"COLUMNS": "200", "PATH": ""},
    ).stdout  # fmt: skip
    for field in Settings.model_fields:
        assert flag_name(field) in help_text, f"setting {field} has no serve flag {flag_name(field)}"


def test_the_readme_settings_reference_is_generated_from_the_settings() -> None:
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    start = readme.index("| flag | environment | default | meaning |")
    end = readme.index("<!-- end of settings reference -->")
    assert readme[start:end] == reference_markdown(), "README is stale: voxhost config --reference"
    printed = subprocess.run(
        [sys.executable, "-m", "voxhost", "config", "--reference"], capture_output=True, text=True, check=True
    ).stdout
    assert printed == reference_markdown()
    assert len(printed.splitlines()) == len(Settings.model_fields) + 2
    values = json.loads(
        subprocess.run(
            [sys.executable, "-m", "voxhost", "config"], capture_output=True, text=True, check=True,
            env={**os.environ, "VOXHOST_MAX_QUEUE": "7"},
        ).stdout
    )  # fmt: skip
    assert values["max_queue"] == 7
