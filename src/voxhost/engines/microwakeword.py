"""Wake word detection with microWakeWord models (`pymicro-wakeword`: TFLite streaming models).

A model here is one or more wake words, each a microWakeWord `.json` (phrase, cut-off, sliding window,
languages) beside its `.tflite`: the four words `pymicro-wakeword` ships (embedded, together as
`microwakeword` or each on its own), a local `.json` or a folder of them, or a word of the models'
own project (downloaded into the cache). Every stream has its own feature frontend and its own
interpreter per word (the models are stateful: their internal state is the stream's recent past);
both are small (a few hundred KB) and made when the stream's first audio arrives.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from voxhost.engines.assets import file_lock, package_dir
from voxhost.engines.base import (
    EmbeddedModel,
    EngineConfig,
    EngineInfo,
    ModelInfo,
    WakeDetection,
    WakeEngine,
    WakeWordInfo,
)
from voxhost.errors import BadRequest

SAMPLE_RATE = 16000
FRAME_MS = 10  # one feature frame of the microWakeWord frontend
BUILTIN_WORDS = ("okay_nabu", "hey_jarvis", "hey_mycroft", "alexa")
# The models' own project: each word is models/v2/<name>.json beside its .tflite.
PROJECT_URL = "https://github.com/esphome/micro-wake-word-models/raw/main/models/v2"
HUB_WORDS = (*BUILTIN_WORDS, "stop")
DOWNLOAD_TIMEOUT = 30.0
STALE_STREAM = 300.0  # seconds a stream may go unfed before its worker forgets it (its end was lost)


def _builtin(word: str | None) -> Any:
    def locate(cache_dir: Path) -> Path:
        models = package_dir("pymicro_wakeword") / "models"
        return models / f"{word}.json" if word else models

    return locate


EMBEDDED = {
    "microwakeword": EmbeddedModel(
        name="microwakeword",
        packages=("pymicro_wakeword", "pymicro_features"),
        description="microWakeWord: okay nabu, hey jarvis, hey mycroft, alexa",
        locate=_builtin(None),
        multilingual=False,
    ),
    **{
        word: EmbeddedModel(
            name=word,
            packages=("pymicro_wakeword", "pymicro_features"),
            description=f"microWakeWord {word.replace('_', ' ')}",
            locate=_builtin(word),
            multilingual=False,
        )
        for word in BUILTIN_WORDS
    },
}


@dataclass(frozen=True, slots=True)
class WordConfig:
    """One wake word as its `.json` describes it."""

    name: str
    phrase: str
    tflite: Path
    cutoff: float
    window: int
    languages: tuple[str, ...]

    @classmethod
    def read(cls, path: Path) -> WordConfig:
        config = json.loads(path.read_text(encoding="utf-8"))
        micro = config["micro"]
        tflite = path.parent / config["model"]
        return cls(
            name=path.stem,
            phrase=str(config["wake_word"]),
            tflite=tflite,
            cutoff=float(micro["probability_cutoff"]),
            window=int(micro["sliding_window_size"]),
            languages=tuple(config.get("trained_languages") or ()),
        )

    def info(self) -> WakeWordInfo:
        return WakeWordInfo(self.name, self.phrase, self.languages)


def _is_word(path: Path) -> bool:
    if path.suffix != ".json" or not path.is_file():
        return False
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
        return "micro" in config and (path.parent / str(config["model"])).is_file()
    except (OSError, ValueError, KeyError, TypeError):
        return False


def find_words(path: Path) -> list[Path]:
    """The microWakeWord `.json` files at `path` (one file, or those in a folder), each with its model."""
    if path.is_dir():
        return [p for p in sorted(path.glob("*.json")) if _is_word(p)]
    return [path] if _is_word(path) else []


def _model_info(words: list[WordConfig]) -> ModelInfo:
    languages = tuple(dict.fromkeys(lang for w in words for lang in w.languages))
    return ModelInfo(SAMPLE_RATE, languages, words=tuple(w.info() for w in words))


@dataclass
class _Stream:
    """One client's stream: its features frontend, an interpreter per word, and the audio clock."""

    features: Any
    detectors: dict[str, Any]
    frames: int = 0  # feature frames (10 ms each) seen
    quiet_until: dict[str, int] = field(default_factory=dict)  # a word is not reported before this frame
    last_fed: float = field(default_factory=time.monotonic)


class MicroWakeWordEngine(WakeEngine):
    name: ClassVar[str] = "microwakeword"
    about: ClassVar[EngineInfo] = EngineInfo(
        library="pymicro_wakeword",
        distribution="pymicro-wakeword",
        extra="wake",
        attribution="microWakeWord (Kevin Ahrendt), pymicro-wakeword (rhasspy)",
        url="https://github.com/kahrendt/microWakeWord",
    )
    # Every stream has interpreters of its own: streams run side by side (TFLite releases the GIL).
    max_parallel: ClassVar[int] = 4

    def __init__(self, words: list[WordConfig], library: Path) -> None:
        self._words = {w.name: w for w in words}
        self._library = library
        self._streams: dict[str, _Stream] = {}
        self._lock = threading.Lock()

    @classmethod
    def default_parallel(cls, device: str, cores: int) -> int:
        return min(cores, cls.max_parallel)

    @classmethod
    def embedded_models(cls) -> dict[str, EmbeddedModel]:
        return EMBEDDED

    @classmethod
    def detect_local(cls, path: Path) -> bool:
        return bool(find_words(path))

    @classmethod
    def is_hub_name(cls, name: str) -> bool:
        return name in HUB_WORDS

    @classmethod
    def hub_page(cls, name: str) -> str | None:
        return "https://github.com/esphome/micro-wake-word-models"

    @classmethod
    def hub_cache_paths(cls, name: str, cache_dir: Path) -> list[Path]:
        folder = cache_dir / "microwakeword"
        return [folder / f"{name}.json", folder / f"{name}.tflite"]

    @classmethod
    def hub_models(cls, cache_dir: Path) -> dict[str, bool]:
        return {name: cls.hub_cache_paths(name, cache_dir)[0].is_file() for name in HUB_WORDS}

    @classmethod
    def download(cls, name: str, cache_dir: Path) -> Path:
        return cls._download(name, EngineConfig(cache_dir=cache_dir))

    @classmethod
    def _download(cls, name: str, config: EngineConfig) -> Path:
        """The word's `.json` and `.tflite` from the models' project, into the cache, once."""
        target, model = cls.hub_cache_paths(name, config.cache_dir)
        with file_lock(target.parent / ".lock"):
            if _is_word(target):
                return target
            if config.offline:
                raise FileNotFoundError(f"wake word {name} is not in {target.parent} and downloads are off")
            for path in (model, target):  # the model first: a .json alone is not a word
                with urllib.request.urlopen(f"{PROJECT_URL}/{path.name}", timeout=DOWNLOAD_TIMEOUT) as answer:
                    data = answer.read()
                partial = path.with_name(path.name + ".part")
                partial.write_bytes(data)
                partial.replace(path)
        return target

    @classmethod
    def _locate(cls, location: str, config: EngineConfig) -> list[Path]:
        path = Path(location)
        if not path.exists() and cls.is_hub_name(location):
            path = cls._download(location, config)
        found = find_words(path)
        if not found:
            raise FileNotFoundError(f"no microWakeWord model (.json beside its .tflite) at {location}")
        return found

    @classmethod
    def describe_files(cls, location: str, config: EngineConfig) -> ModelInfo | None:
        path = Path(location)
        found = find_words(path) if path.exists() else []
        return _model_info([WordConfig.read(p) for p in found]) if found else None

    @classmethod
    def load(cls, location: str, config: EngineConfig) -> MicroWakeWordEngine:
        from pymicro_wakeword import MicroWakeWord

        paths = cls._locate(location, config)
        # The library finds its TFLite runtime itself: a check load of each word, and that path kept.
        library = Path()
        for path in paths:
            probe = MicroWakeWord.from_config(path)
            library = probe.libtensorflowlite_c_path
            probe.close()
        return cls([WordConfig.read(p) for p in paths], library)

    def describe(self) -> ModelInfo:
        return _model_info(list(self._words.values()))

    # --- streams ---------------------------------------------------------------------------------
    def _open(self, words: list[str] | None) -> _Stream:
        from pymicro_wakeword import MicroWakeWord, MicroWakeWordFeatures

        names = list(self._words) if not words else list(dict.fromkeys(words))
        unknown = [n for n in names if n not in self._words]
        if unknown:
            raise BadRequest(
                f"unknown wake word {', '.join(unknown)}; this model has {', '.join(self._words)}",
                param="names",
            )
        detectors = {}
        for name in names:
            word = self._words[name]
            detectors[name] = MicroWakeWord(
                name,
                wake_word=word.phrase,
                tflite_model=word.tflite,
                probability_cutoff=word.cutoff,
                sliding_window_size=word.window,
                trained_languages=list(word.languages),
                libtensorflowlite_c_path=self._library,
            )
        return _Stream(MicroWakeWordFeatures(), detectors)

    def _stream(self, stream: str, words: list[str] | None) -> _Stream:
        now = time.monotonic()
        with self._lock:
            state = self._streams.get(stream)
            stale = [k for k, s in self._streams.items() if now - s.last_fed > STALE_STREAM]
            for key in stale:
                self._forget(key)
        if state is None:
            state = self._open(words)
            with self._lock:
                self._streams[stream] = state
        state.last_fed = now
        return state

    def detect(
        self, stream: str, audio: bytes, words: list[str] | None = None, refractory: float = 2.0
    ) -> list[dict[str, Any]]:
        state = self._stream(stream, words)
        refractory_frames = max(1, round(refractory * 1000 / FRAME_MS))
        found: list[dict[str, Any]] = []
        for features in state.features.process_streaming(audio):
            state.frames += 1
            for name, detector in state.detectors.items():
                probability = detector.process_streaming_prob(features)
                if probability is None or probability <= detector.probability_cutoff:
                    continue
                # The model stays above its cut-off for a second or so after a phrase (and may dip
                # under it for a frame): a word is reported when it rises above the cut-off after
                # `refractory` seconds under it, so that one phrase is one detection.
                quiet, state.quiet_until[name] = (
                    state.quiet_until.get(name, 0),
                    state.frames + refractory_frames,
                )
                if state.frames < quiet:
                    continue
                heard = WakeDetection(name, detector.wake_word, state.frames * FRAME_MS, float(probability))
                found.append(heard.to_wire())
        return found

    def end_stream(self, stream: str) -> None:
        with self._lock:
            self._forget(stream)

    def _forget(self, stream: str) -> None:
        state = self._streams.pop(stream, None)
        if state is not None:
            for detector in state.detectors.values():
                detector.close()

    @property
    def open_streams(self) -> int:
        return len(self._streams)
