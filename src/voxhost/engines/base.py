"""The small interface every engine implements.

An engine wraps one model library. The model manager only ever talks to this interface: it loads an
engine once inside a worker process and then calls its task method (`transcribe` for ASR) for every
request. Engine modules must be cheap to import; the model library itself is imported in `load`.
"""

from __future__ import annotations

import functools
import importlib.util
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np

from voxhost.errors import BadRequest
from voxhost.results import TranscribeOptions, Transcription

TaskKind = Literal["asr", "tts"]


@functools.cache
def _libc() -> Any:
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    return ctypes.CDLL(name) if name else None


def trim_memory() -> None:
    """Give the memory freed by a large call back to the system (glibc keeps it otherwise): a batch of
    windows needs hundreds of MB of attention scores for a moment, and a worker's resident size should
    say what it holds between requests, for the memory budget and the RSS cap."""
    libc = _libc()
    trim = getattr(libc, "malloc_trim", None)
    if trim is not None:
        trim(0)


@dataclass(frozen=True, slots=True)
class EngineConfig:
    """Per-process engine settings, taken from `Settings` and sent to the worker once."""

    device: str = "auto"
    compute_type: str = "default"
    threads: int = 0  # CPU threads per inference
    parallel: int = 1  # inferences the worker runs at once
    beam_size: int = 5
    cache_dir: Path = Path(".")
    offline: bool = False
    voice_files: tuple[Path, ...] = ()  # extra voice files for engines whose voices are data (Kokoro)
    tts_language: str = "en-us"  # language engines like Kokoro phonemize text in
    tts_quick_start: bool = True  # speak a long first sentence's first phrase on its own (audio/text.py)


@dataclass(frozen=True, slots=True)
class EmbeddedModel:
    """A model shipped inside Python packages, so it works with no model hub."""

    name: str
    packages: tuple[str, ...]
    description: str
    locate: Callable[[Path], Path] = field(repr=False)
    multilingual: bool = True
    assembled: str | None = None  # the folder in the cache its parts are joined into, if any

    def assembled_dir(self, cache_dir: Path) -> Path | None:
        return cache_dir / self.assembled if self.assembled else None

    @property
    def installed(self) -> bool:
        return all(importlib.util.find_spec(p) is not None for p in self.packages)


@dataclass(frozen=True, slots=True)
class EngineInfo:
    """What an engine is, before any model is loaded: for `voxhost doctor`, the Wyoming `info`, error
    messages that say what to install. Set on the engine class as `about`."""

    library: str  # the model library's import name (checked without importing it)
    distribution: str  # its package on the index, for versions and install hints
    extra: str  # the voxhost extra that installs it ("" when voxhost itself depends on it)
    attribution: str  # who made the models and the library
    url: str
    required: bool = False  # the server is of little use without it (doctor fails rather than warns)

    @property
    def install(self) -> str:
        return f"pip install 'voxhost[{self.extra}]'" if self.extra else "pip install voxhost"

    @property
    def installed(self) -> bool:
        return importlib.util.find_spec(self.library) is not None


class Engine(ABC):
    """One loaded model. Subclasses set `name`, `task` and `about`; every concrete engine class in a
    module of `voxhost.engines` is found by its `name` (`voxhost.engines.engine_class`)."""

    name: ClassVar[str]
    task: ClassVar[TaskKind]
    about: ClassVar[EngineInfo]
    # How many inferences one loaded model may run at once from different threads.
    max_parallel: ClassVar[int] = 1
    # Whether `download` draws its own progress bars (else `voxhost models pull` shows a spinner).
    download_shows_progress: ClassVar[bool] = False

    @classmethod
    def default_parallel(cls, device: str, cores: int) -> int:
        """Inferences per worker when the settings leave it to voxhost."""
        return 1

    @classmethod
    def embedded_models(cls) -> dict[str, EmbeddedModel]:
        """Models this engine can serve from installed packages, by name."""
        return {}

    @classmethod
    @abstractmethod
    def detect_local(cls, path: Path) -> bool:
        """Whether the directory (or file) at `path` holds a model for this engine."""

    @classmethod
    def is_hub_name(cls, name: str) -> bool:
        """Whether `name` is something this engine's own download logic can fetch."""
        return False

    @classmethod
    def hub_models(cls, cache_dir: Path) -> dict[str, bool]:
        """Names the engine can download, each with whether it is already in the cache."""
        return {}

    @classmethod
    def download(cls, name: str, cache_dir: Path) -> Path:
        """Fetch a hub model into the cache with the engine's own download logic (`voxhost models
        pull`); returns where it is. Raises OSError when the hub cannot be reached."""
        raise BadRequest(f"the {cls.name} engine downloads no models")

    @classmethod
    def hub_cache_paths(cls, name: str, cache_dir: Path) -> list[Path]:
        """The files or folders in the cache that hold the downloaded hub model `name` (may not exist)."""
        return []

    @classmethod
    @abstractmethod
    def load(cls, location: str, config: EngineConfig) -> Engine:
        """Load the model from a local path or hub name. Runs once per worker process."""

    @abstractmethod
    def describe(self) -> dict[str, Any]:
        """Plain-data facts about the loaded model (languages, sample rate, voices...)."""


class ASREngine(Engine):
    task: ClassVar[TaskKind] = "asr"
    # Whether the engine decodes long audio in batches of speech windows (`speech_regions` and
    # `transcribe_windows`); otherwise long files go in pieces through `transcribe`, one after another.
    batched: ClassVar[bool] = False

    @abstractmethod
    def transcribe(
        self,
        audio: np.ndarray,
        options: TranscribeOptions,
        progress: Callable[[float], None] | None = None,
    ) -> Transcription:
        """Transcribe float32 mono 16 kHz audio. `progress` gets the seconds of audio done so far."""

    def speech_regions(self, audio: np.ndarray) -> list[tuple[int, int]]:
        """Where the audio holds speech, as [start, end) sample offsets (batched engines)."""
        raise BadRequest(f"the {self.name} engine does not decode in batches")

    def transcribe_windows(
        self, audio: np.ndarray, windows: list[list[tuple[int, int]]], options: TranscribeOptions
    ) -> Transcription:
        """Decode several windows of speech in one batch. `audio` holds the windows' speech back to back;
        `windows` the speech regions of each on the file's clock. Segments come back on the file's clock
        (batched engines)."""
        raise BadRequest(f"the {self.name} engine does not decode in batches")


class TTSEngine(Engine):
    """Text to speech. `synthesize` yields audio as each sentence is ready, so callers can stream."""

    task: ClassVar[TaskKind] = "tts"

    @property
    @abstractmethod
    def sample_rate(self) -> int:
        """The rate of the float32 mono chunks `synthesize` yields."""

    @abstractmethod
    def voices(self) -> list[dict[str, Any]]:
        """The voices one loaded model serves: dicts with at least `id`, plus `language`, `gender`."""

    @abstractmethod
    def voice_aliases(self) -> dict[str, str]:
        """OpenAI voice names (alloy, echo, ...) mapped onto this model's voices."""

    @abstractmethod
    def synthesize(
        self, text: str, voice: str | None = None, speed: float = 1.0, language: str | None = None
    ) -> Iterator[np.ndarray]:
        """Yield float32 mono audio at `sample_rate`, one chunk per sentence (or finer)."""

    def resolve_voice(self, voice: str | None) -> str:
        """A voice id of this model for a requested name: its own id, an OpenAI alias, or the default."""
        ids: list[str] = [str(v["id"]) for v in self.voices()]
        if voice is None or voice == "":
            return ids[0]
        if voice in ids:
            return voice
        aliases = self.voice_aliases()
        if voice in aliases:
            return aliases[voice]
        raise BadRequest(
            f"unknown voice {voice!r}; this model has {', '.join(ids)} "
            f"(and the OpenAI names {', '.join(sorted(aliases))})",
            param="voice",
        )
