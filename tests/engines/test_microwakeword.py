"""The microWakeWord engine's model resolution (embedded, a local .json, a word of the models' project
already in the cache) and its streams, on real models and Piper speech."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from conftest import synthesize
from voxhost.audio import decode_audio
from voxhost.audio.decode import float_to_pcm16
from voxhost.engines.base import EngineConfig, WakeEngine
from voxhost.engines.microwakeword import MicroWakeWordEngine
from voxhost.errors import BadRequest
from voxhost.manager.registry import parse_entry, resolve_source


def _copy_word(word: str, folder: Path, name: str) -> Path:
    """The package's `word` as a microWakeWord model named `name` in `folder` (.json beside .tflite)."""
    import pymicro_wakeword

    models = Path(pymicro_wakeword.__file__).parent / "models"
    folder.mkdir(parents=True, exist_ok=True)
    config = json.loads((models / f"{word}.json").read_text())
    shutil.copy(models / config["model"], folder / f"{name}.tflite")
    config["model"] = f"{name}.tflite"
    (folder / f"{name}.json").write_text(json.dumps(config))
    return folder / f"{name}.json"


def test_models_resolve_embedded_local_and_from_the_cache(tmp_path: Path) -> None:
    embedded = resolve_source("microwakeword")
    assert (embedded.origin, embedded.task) == ("embedded", "wake")
    one = resolve_source("hey_jarvis")
    info = one.describe_files(EngineConfig(cache_dir=tmp_path))
    assert info is not None
    assert [w.name for w in info.words] == ["hey_jarvis"]

    local = _copy_word("alexa", tmp_path / "mine", "computer")
    spec = parse_entry(f"kitchen={local.parent}")
    assert (spec.id, spec.origin, spec.engine) == ("kitchen", "local", "microwakeword")
    assert resolve_source(str(local)).origin == "local"
    assert not MicroWakeWordEngine.detect_local(tmp_path / "nothing.json")

    # a word of the models' project, already downloaded: loads offline from the cache
    assert MicroWakeWordEngine.is_hub_name("stop")
    _copy_word("okay_nabu", tmp_path / "cache" / "microwakeword", "stop")
    engine = MicroWakeWordEngine.load("stop", EngineConfig(cache_dir=tmp_path / "cache", offline=True))
    assert [w.name for w in engine.describe().words] == ["stop"]
    with pytest.raises(FileNotFoundError, match="downloads are off"):
        MicroWakeWordEngine.load("stop", EngineConfig(cache_dir=tmp_path / "empty", offline=True))


def test_streams_are_separate_and_the_refractory_period_holds(tmp_path: Path) -> None:
    engine = resolve_source("microwakeword").load(EngineConfig(cache_dir=tmp_path))
    assert isinstance(engine, WakeEngine)
    pcm = float_to_pcm16(decode_audio(synthesize("Hey Mycroft.").encoded("wav")))
    step = 2048
    # two streams fed in turns, chunk by chunk: each hears the word once
    heard: dict[str, list[str]] = {"a": [], "b": []}
    for i in range(0, len(pcm), step):
        for stream in heard:
            heard[stream] += [d["name"] for d in engine.detect(stream, pcm[i : i + step])]
    assert heard == {"a": ["hey_mycroft"], "b": ["hey_mycroft"]}
    # the phrase again at once: within a refractory period as long as the stream, no second detection
    again = [d["name"] for d in engine.detect("a", pcm, refractory=60.0)]
    assert again == []
    # said twice with two seconds between: heard twice with a one-second refractory period
    pause = bytes(2 * 16000 * 2)
    assert [d["name"] for d in engine.detect("c", pcm + pause + pcm, refractory=1.0)] == ["hey_mycroft"] * 2
    with pytest.raises(BadRequest, match="hey_computer"):
        engine.detect("d", pcm, ["hey_computer"])
    engine.end_stream("a")
    assert [d["name"] for d in engine.detect("a", pcm)] == ["hey_mycroft"]  # a fresh stream
