"""The small interface every engine implements.

An engine wraps one model library. The model manager only ever talks to this interface: it loads an
engine once inside a worker process and then calls its task method (`transcribe` for ASR) for every
request. Engine modules must be cheap to import; the model library itself is imported in `load`.
"""

from __future__ import annotations

import functools
import importlib.metadata
import importlib.util
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import numpy as np

from voxhost.errors import BadRequest
from voxhost.results import TranscribeOptions, Transcription

if TYPE_CHECKING:
    from voxhost.diarization import Diarization, DiarizeOptions

TaskKind = Literal["asr", "tts", "diarize", "wake"]


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
    # words to favour in every transcription, after a request's own (engines that take hotwords)
    vocabulary: tuple[str, ...] = ()
    # speaker diarization's segmentation model (issue 24): "auto" / "on" / "off", and which model
    diarization_segmentation: str = "auto"
    segmentation_model: str = "segmentation-3.0"
    diarization_clustering: str = "spectral"  # how the speakers are counted (speaker/cluster.py)
    diarization_nice: int = 5  # the diarizer's lower CPU priority (`DiarizeEngine.nice`)


@dataclass(frozen=True, slots=True)
class EmbeddedModel:
    """A model shipped inside Python packages, so it works with no model hub."""

    name: str
    packages: tuple[str, ...]  # the first ships the model's files: its version and source are the model's
    description: str
    locate: Callable[[Path], Path] = field(repr=False)
    multilingual: bool = True
    assembled: str | None = None  # the folder in the cache its parts are joined into, if any

    def assembled_dir(self, cache_dir: Path) -> Path | None:
        return cache_dir / self.assembled if self.assembled else None

    @property
    def installed(self) -> bool:
        return all(importlib.util.find_spec(p) is not None for p in self.packages)

    def shipped(self) -> tuple[str | None, str | None]:
        """The version of the package that ships the model, and where that package says it is from."""
        return package_source(self.packages[0])


def package_source(package: str) -> tuple[str | None, str | None]:
    """An installed package's version and where its metadata says it is from (a `Model source` or
    `Source` project URL, else its home page); None for what it does not say, or is not installed."""
    try:
        meta = importlib.metadata.metadata(package)
    except importlib.metadata.PackageNotFoundError:
        return None, None
    labelled = (entry.partition(",") for entry in meta.get_all("Project-URL") or [])
    urls = {label.strip().casefold(): url.strip() for label, _, url in labelled if url.strip()}
    url = next((urls[k] for k in ("model source", "source", "homepage", "repository") if k in urls), None)
    return meta["Version"], url or next(iter(meta.get_all("Home-page") or []), None)


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


@dataclass(frozen=True, slots=True)
class VoiceInfo:
    """One voice of a loaded TTS model."""

    id: str
    language: str  # as the engine names it, and takes it back (Piper: en-us, Kokoro: en-us, ja, cmn...)
    gender: str | None = None
    # The language as a locale tag, the same for every engine (en_US, ja_JP: Piper's voices' own
    # `language.code`), as Home Assistant groups voices by language; None when the engine cannot tell.
    locale: str | None = None


@dataclass(frozen=True, slots=True)
class WakeWordInfo:
    """One wake word of a loaded wake model: its name (what a client asks for and a detection names),
    the phrase a speaker says, and the languages it was trained on."""

    name: str
    phrase: str
    languages: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """What a loaded model is and can do: an engine's `describe()`, sent once by its worker (as plain
    data, `to_wire`) and read by the manager and the front-ends."""

    sample_rate: int  # of the audio the model takes (ASR) or makes (TTS)
    languages: tuple[str, ...] = ()  # ASR: what it transcribes; TTS: what its voices speak
    multilingual: bool = False  # ASR: may detect the language and translate
    voices: tuple[VoiceInfo, ...] = ()  # TTS: the first is the default
    voice_aliases: Mapping[str, str] = field(default_factory=dict)  # OpenAI voice names -> voice ids
    device: str | None = None
    compute_type: str | None = None
    version: str | None = None  # the model's own version, as its files say (None: they do not)
    multi_speaker: bool = False  # TTS: the voices are the speakers of one voice (a multi-speaker Piper model)
    words: tuple[WakeWordInfo, ...] = ()  # wake: the wake words it listens for

    @classmethod
    def of_voices(
        cls,
        sample_rate: int,
        voices: list[VoiceInfo],
        aliases: dict[str, str],
        version: str | None = None,
        multi_speaker: bool = False,
    ) -> ModelInfo:
        """A TTS model's info: its voices, their languages and the OpenAI names onto them."""
        languages = tuple(dict.fromkeys(v.language for v in voices))
        return cls(
            sample_rate,
            languages,
            voices=tuple(voices),
            voice_aliases=aliases,
            version=version,
            multi_speaker=multi_speaker,
        )

    def to_wire(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> ModelInfo:
        return cls(
            sample_rate=int(data["sample_rate"]),
            languages=tuple(data.get("languages", ())),
            multilingual=bool(data.get("multilingual", False)),
            voices=tuple(VoiceInfo(**voice) for voice in data.get("voices", ())),
            voice_aliases=dict(data.get("voice_aliases", {})),
            device=data.get("device"),
            compute_type=data.get("compute_type"),
            version=data.get("version"),
            multi_speaker=bool(data.get("multi_speaker", False)),
            words=tuple(
                WakeWordInfo(w["name"], w["phrase"], tuple(w.get("languages", ())))
                for w in data.get("words", ())
            ),
        )

    def has_voice(self, name: str) -> bool:
        return any(v.id == name for v in self.voices) or name in self.voice_aliases

    def voice_id(self, name: str | None) -> str:
        """The voice id a requested name means: a voice's own id, an OpenAI voice name, or (for none)
        the default voice."""
        if not self.voices:
            raise BadRequest("this model has no voices", param="voice")
        if not name:
            return self.voices[0].id
        if any(v.id == name for v in self.voices):
            return name
        if name in self.voice_aliases:
            return self.voice_aliases[name]
        raise BadRequest(
            f"unknown voice {name!r}; this model has {', '.join(v.id for v in self.voices)} "
            f"(and the OpenAI names {', '.join(sorted(self.voice_aliases))})",
            param="voice",
        )

    def aliases_of(self, voice: str) -> list[str]:
        """The OpenAI voice names that mean `voice`."""
        return [alias for alias, target in self.voice_aliases.items() if target == voice]


class Engine(ABC):
    """One loaded model. Subclasses set `name`, `task` and `about`; every concrete engine class in a
    module of `voxhost.engines` is found by its `name` (`voxhost.engines.engine_class`)."""

    name: ClassVar[str]
    task: ClassVar[TaskKind]
    about: ClassVar[EngineInfo]
    # The methods a request may call through the worker pipe (set by each kind's base class below).
    methods: ClassVar[frozenset[str]] = frozenset()
    # How many inferences one loaded model may run at once from different threads.
    max_parallel: ClassVar[int] = 1
    # Worker processes one model may have (1 for engines that keep per-stream state in their worker).
    max_replicas: ClassVar[int] = 64
    # The share of the machine's cores an inference's threads may take (a model whose inferences run
    # beside another model's takes less: `manager/layout.py`).
    core_share: ClassVar[float] = 1.0
    # Whether `download` draws its own progress bars (else `voxhost models pull` shows a spinner).
    download_shows_progress: ClassVar[bool] = False

    @classmethod
    def nice(cls, config: EngineConfig) -> int:
        """How much lower its worker's CPU priority is than the server's (a Unix nice increment): a model
        whose work runs beside another's on the same request lets that one keep the cores it uses."""
        return 0

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
    def describe(self) -> ModelInfo:
        """What the loaded model is and can do (sample rate, languages, voices...)."""

    @classmethod
    def describe_files(cls, location: str, config: EngineConfig) -> ModelInfo | None:
        """What `describe` would say, read from the model's files without loading it (cheap: no model
        library, no weights), so that listings answer at once; None when the files cannot tell."""
        return None

    @classmethod
    def hub_page(cls, name: str) -> str | None:
        """Where the hub model `name` is published (its source, for listings); None when not known."""
        return None


class ASREngine(Engine):
    task: ClassVar[TaskKind] = "asr"
    methods: ClassVar[frozenset[str]] = frozenset({"transcribe", "speech_regions", "transcribe_windows"})
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
    methods: ClassVar[frozenset[str]] = frozenset({"synthesize", "voices"})

    @property
    @abstractmethod
    def sample_rate(self) -> int:
        """The rate of the float32 mono chunks `synthesize` yields."""

    @abstractmethod
    def voices(self) -> list[VoiceInfo]:
        """The voices one loaded model serves; the first is its default."""

    @abstractmethod
    def voice_aliases(self) -> dict[str, str]:
        """OpenAI voice names (alloy, echo, ...) mapped onto this model's voices."""

    def describe(self) -> ModelInfo:
        return ModelInfo.of_voices(self.sample_rate, self.voices(), self.voice_aliases())

    @abstractmethod
    def synthesize(
        self, text: str, voice: str | None = None, speed: float = 1.0, language: str | None = None
    ) -> Iterator[np.ndarray]:
        """Yield float32 mono audio at `sample_rate`, one chunk per sentence (or finer)."""

    def resolve_voice(self, voice: str | None) -> str:
        """A voice id of this model for a requested name: its own id, an OpenAI alias, or the default."""
        return self.describe().voice_id(voice)


@dataclass(frozen=True, slots=True)
class WakeDetection:
    """A wake word heard in a stream: which, and when (ms of the stream's audio at the moment it was
    heard). Plain data on the worker pipe (`to_wire`)."""

    name: str
    phrase: str
    timestamp_ms: int
    probability: float
    # Who said it (a later speaker model fills it: issue "who said what"); None until then.
    speaker: str | None = None

    def to_wire(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> WakeDetection:
        return cls(**data)


class WakeEngine(Engine):
    """Wake word detection on live streams. A stream's state (features, the model's internal state, the
    refractory clock) lives in the worker, keyed by a stream id the manager chooses: `detect` feeds it
    16 kHz 16-bit mono PCM and returns what was heard; `end_stream` forgets it. A stream the worker does
    not know (a fresh worker after a crash) starts afresh. Streams stay on their worker, so a wake model
    runs in one worker process."""

    task: ClassVar[TaskKind] = "wake"
    methods: ClassVar[frozenset[str]] = frozenset({"detect", "detect_many", "end_stream"})
    max_replicas: ClassVar[int] = 1

    @abstractmethod
    def detect(
        self, stream: str, audio: bytes, words: list[str] | None = None, refractory: float = 2.0
    ) -> list[dict[str, Any]]:
        """Feed the stream `audio` (16 kHz s16le mono); the `WakeDetection`s (`to_wire`) it completed:
        a word when it is heard after `refractory` seconds of audio without it. `words`: the wake words
        to listen for (None: every word of the model); fixed by the stream's first call."""

    def detect_many(
        self, items: list[dict[str, Any]]
    ) -> list[list[dict[str, Any]] | tuple[str, str, str | None]]:
        """`detect` for the chunks of several streams in one call (each item `detect`'s arguments): each
        item's detections, or its error (`voxhost.errors.to_wire`), which fails that stream alone."""
        from voxhost.errors import to_wire

        answers: list[list[dict[str, Any]] | tuple[str, str, str | None]] = []
        for item in items:
            try:
                answers.append(self.detect(**item))
            except Exception as exc:
                answers.append(to_wire(exc))
        return answers

    @abstractmethod
    def end_stream(self, stream: str) -> None:
        """Forget the stream (no-op when unknown)."""


class DiarizeEngine(Engine):
    """Who speaks when (speaker diarization), from a speaker-embedding model. `embed` and `identify` also
    serve other features that need to tell voices apart (e.g. who said a wake word)."""

    task: ClassVar[TaskKind] = "diarize"
    methods: ClassVar[frozenset[str]] = frozenset({"diarize", "embed", "identify"})
    # A diarization runs beside the decode of the same request (a diarized transcription): half the cores
    # each. On 2 cores one thread does the same work with a quarter less CPU than two (threads that wait
    # on each other and on busy cores), CPU the decode beside it needs (docs/benchmarks.md).
    core_share: ClassVar[float] = 0.5

    @classmethod
    def nice(cls, config: EngineConfig) -> int:
        """`--diarization-nice` (5): the decode is the request's longer part, and its threads work in
        lockstep (each step waits for the slowest), so a diarization thread that takes a core from one of
        them stalls them all. Niced, the diarization runs in the cores the decode leaves idle, and still
        gets a quarter of a core against each busy thread of another model when the machine is full
        (docs/benchmarks.md, "The diarizer at a lower priority")."""
        return config.diarization_nice

    @abstractmethod
    def diarize(self, audio: np.ndarray, options: DiarizeOptions) -> Diarization:
        """Speaker turns of float32 mono 16 kHz audio, labelled A, B, ... or by the known speakers."""

    @abstractmethod
    def embed(self, audio: np.ndarray) -> np.ndarray:
        """One unit-length embedding of the voice in a clip (float32 16 kHz, at least half a second)."""

    def identify(
        self, audio: np.ndarray, enrolled: Mapping[str, np.ndarray], threshold: float | None = None
    ) -> tuple[str | None, float]:
        """Which enrolled speaker (name -> `embed` output) speaks in `audio`, with the cosine similarity
        of the best match; None when no one is alike enough (`threshold`, the engine's own by default)."""
        if not enrolled:
            return None, 0.0
        vector = self.embed(audio)
        scores = {name: float(np.dot(vector, ref)) for name, ref in enrolled.items()}
        best = max(scores, key=lambda name: scores[name])
        limit = self.same_speaker if threshold is None else threshold
        return (best if scores[best] >= limit else None), scores[best]

    # Cosine similarity above which two clips are taken to be the same speaker.
    same_speaker: ClassVar[float] = 0.5
