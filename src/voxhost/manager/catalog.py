"""What the served models are and which voice a name means, for every front-end: the voices of the TTS
models, the languages of the ASR models, and the cards `describe` answers with (Wyoming `info`)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

from voxhost.engines import engine_class
from voxhost.engines.base import ModelInfo, TaskKind, VoiceInfo
from voxhost.errors import BadRequest, ModelNotFound
from voxhost.languages import LANGUAGES
from voxhost.manager.registry import ModelSpec
from voxhost.manager.requests import ModelCard, Voice
from voxhost.manager.state import Entry


def loaded_info(entry: Entry) -> ModelInfo | None:
    """What the model is, as a live worker of it said when it loaded; None while none is loaded."""
    return next((r.worker.info for r in entry.replicas if r.alive and r.worker and r.worker.info), None)


def _voice(entry: Entry, info: ModelInfo, voice: VoiceInfo) -> Voice:
    aliases = tuple(info.aliases_of(voice.id))
    spec = entry.spec
    return Voice(voice.id, spec.id, voice.language, voice.gender, info.sample_rate, aliases, voice.locale)


def _source(spec: ModelSpec) -> tuple[str | None, str | None]:
    """The version and the address of what a model comes in: the package that ships an embedded model
    (its metadata), the hub page of a downloaded one; None for what is not known (a local folder)."""
    engine = engine_class(spec.engine)
    if spec.origin == "embedded":
        embedded = engine.embedded_models().get(spec.source)
        return embedded.shipped() if embedded is not None else (None, None)
    if spec.origin == "hub":
        return None, engine.hub_page(spec.source)
    return None, None


class Catalog:
    def __init__(
        self,
        entries: dict[str, Entry],
        lookup: Callable[[str | None, TaskKind], Entry],
        load: Callable[[Entry], Awaitable[ModelInfo]],
        read_files: Callable[[Entry], ModelInfo | None],
    ) -> None:
        self._entries = entries
        self._entry = lookup
        self._load = load
        self._read_files = read_files
        self._from_files: dict[str, ModelInfo | None] = {}
        self._sources: dict[str, tuple[str | None, str | None]] = {}

    async def info(self, entry: Entry) -> ModelInfo:
        """What the model is (`ModelInfo`), from a live worker, or loading one."""
        info = loaded_info(entry)
        return info if info is not None else await self._load(entry)

    async def listed(self, entry: Entry) -> ModelInfo:
        """What the model is, for listings: from a live worker, else from its files (read once, no
        model loaded: a `describe` that Home Assistant sends at every set-up loads nothing), else by
        loading it (an engine whose files cannot tell)."""
        info = loaded_info(entry)
        if info is not None:
            return info
        model = entry.spec.id
        if model not in self._from_files:
            self._from_files[model] = await asyncio.to_thread(self._read_files, entry)
        return self._from_files[model] or await self._load(entry)

    def _tts(self) -> list[Entry]:
        return [e for e in self._entries.values() if e.spec.task == "tts"]

    async def voice(self, model: str | None, voice: str | None) -> tuple[Entry, str]:
        """The model and voice id a request means. With a model: one of its voices (its id, an OpenAI
        voice name, or the default for none). Without: the default model's voice of that name, else
        the model of that name (a Wyoming client may name a model as its voice), else the served model
        that has a voice of that name."""
        if model or not voice:
            entry = self._entry(model, "tts")
            info = await self.info(entry)
            if voice and not info.has_voice(voice) and model != entry.spec.id:
                # an OpenAI model name (tts-1) with a voice another served model has: UIs list every
                # model's voices and send their one configured model name
                other = await self._having(voice, exclude=entry)
                if other is not None:
                    return other, voice
            return entry, info.voice_id(voice)
        default = self._entry(None, "tts")
        if (await self.info(default)).has_voice(voice):
            return default, (await self.info(default)).voice_id(voice)
        with contextlib.suppress(ModelNotFound):
            named = self._entry(voice, "tts")
            return named, (await self.info(named)).voice_id(None)
        found = await self._having(voice, exclude=default)
        if found is not None:
            return found, voice
        known = [v.id for e in self._tts() if (i := loaded_info(e)) for v in i.voices]
        raise BadRequest(f"unknown voice {voice!r}; the voices are {', '.join(known)}", param="voice")

    async def _having(self, voice: str, exclude: Entry) -> Entry | None:
        """The served TTS model (other than `exclude`) with a voice of that id; loaded models first."""
        others = [e for e in self._tts() if e is not exclude]
        others.sort(key=lambda e: loaded_info(e) is None)  # no load to look at a loaded one
        for entry in others:
            if any(v.id == voice for v in (await self.listed(entry)).voices):
                return entry
        return None

    async def voices(self, model: str | None = None) -> list[Voice]:
        """Every voice of the TTS model (or of every TTS model), loading them if needed."""
        found: list[Voice] = []
        for entry in [self._entry(model, "tts")] if model else self._tts():
            info = await self.listed(entry)
            found.extend(_voice(entry, info, v) for v in info.voices)
        return found

    async def voice_of(self, entry: Entry, voice_id: str) -> Voice:
        info = await self.listed(entry)
        return next(_voice(entry, info, v) for v in info.voices if v.id == voice_id)

    async def describe(self) -> list[ModelCard]:
        """Every served model: what it is, who made it and where it is from, its version, its languages
        and its voices (read from the models' files and packages: nothing is loaded to answer)."""
        cards = []
        for entry in self._entries.values():
            spec = entry.spec
            about = engine_class(spec.engine).about
            if spec.id not in self._sources:  # package metadata: small files, read once
                self._sources[spec.id] = await asyncio.to_thread(_source, spec)
            shipped_version, source_url = self._sources[spec.id]
            info = await self.listed(entry) if spec.task in ("tts", "wake") else loaded_info(entry)
            voices = tuple(_voice(entry, info, v) for v in info.voices) if info is not None else ()
            if spec.task == "tts":
                languages = tuple(dict.fromkeys(v.locale or v.language for v in voices))
            elif spec.task == "wake":
                languages = info.languages if info is not None else ()
            else:
                languages = self._asr_languages(entry)
            cards.append(
                ModelCard(
                    spec.id,
                    spec.task,
                    spec.engine,
                    spec.description,
                    about.attribution,
                    source_url or about.url,
                    languages=languages,
                    voices=voices,
                    version=(info.version if info is not None else None) or shipped_version,
                    installed=about.installed,
                    multi_speaker=info is not None and info.multi_speaker,
                    words=info.words if info is not None else (),
                )
            )
        return cards

    def _asr_languages(self, entry: Entry) -> tuple[str, ...]:
        """What an ASR model transcribes: as it said when it loaded, else as its package says (an
        embedded English-only model), else every language Whisper knows."""
        info = loaded_info(entry)
        if info is not None:
            return info.languages
        spec = entry.spec
        embedded = engine_class(spec.engine).embedded_models().get(spec.source)
        if spec.origin == "embedded" and embedded is not None and not embedded.multilingual:
            return ("en",)
        return tuple(LANGUAGES)
