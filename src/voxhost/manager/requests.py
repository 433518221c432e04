"""The manager's request API, typed: what a front-end asks for and what it gets back.

A front-end (OpenAI HTTP, Realtime, the live WebSocket, Wyoming, the CLI) parses its protocol into one of
these requests, calls the `ModelManager` (`transcribe`, `transcribe_stream`, `speak`, `live_session`,
`describe`, `voices`) and formats the answer. Every rule about a request (limits, model, voice and
language resolution, priorities, cancellation) is the manager's; none is written in a front-end.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass, field

import numpy as np

from voxhost.engines.base import TaskKind, WakeWordInfo
from voxhost.results import TranscribeOptions


@dataclass(frozen=True, slots=True)
class TranscribeRequest:
    """Audio to transcribe (or translate): float32 mono 16 kHz samples, as `voxhost.audio` decodes them."""

    audio: np.ndarray
    options: TranscribeOptions = field(default_factory=TranscribeOptions)
    model: str | None = None  # a model id or alias; None is the default ASR model
    live: bool = False  # a live stream's decode: served before every other request
    background: bool = False  # a job's: in the batch lane throughout, however short the audio


@dataclass(frozen=True, slots=True)
class SpeakRequest:
    """Text to speak."""

    text: str
    model: str | None = None  # a model id or alias; None: the model of `voice`, else the default
    voice: str | None = None  # a voice id of a served model, an OpenAI voice name, or a TTS model's name
    speed: float = 1.0
    language: str | None = None  # for engines that speak several (Kokoro)


@dataclass(slots=True)
class Speech:
    """A synthesis under way: which model and voice speak, at what rate, and the audio as float32 mono
    chunks (one per sentence, or finer) as each is ready. Close it (`aclose`) if not read to the end:
    that cancels the rest of the synthesis in the worker."""

    model: str
    voice: str
    sample_rate: int
    chunks: AsyncGenerator[np.ndarray, None]

    def __aiter__(self) -> AsyncIterator[np.ndarray]:
        return self.chunks

    async def aclose(self) -> None:
        await self.chunks.aclose()


@dataclass(frozen=True, slots=True)
class Voice:
    """One voice of a served TTS model, for listings (/v1/audio/voices, Wyoming `info`)."""

    id: str
    model: str
    language: str
    gender: str | None
    sample_rate: int
    aliases: tuple[str, ...]  # the OpenAI voice names that mean this voice on this model
    locale: str | None = None  # the language as a locale tag (en_US), the same for every engine


@dataclass(frozen=True, slots=True)
class ModelCard:
    """What a served model is, for `describe` answers (Wyoming `info`): who made it and where it is
    from, its version, its languages, and its voices (TTS). All of it from a live worker, else from the
    model's files and package (`Catalog.listed`): nothing is loaded to answer where they tell."""

    id: str
    task: TaskKind
    engine: str
    description: str
    attribution: str  # who made the model (and the library that runs it)
    url: str  # where the model is from: its package's or hub's page, else its engine's
    languages: tuple[str, ...] = ()  # ASR: Whisper's codes (en); TTS: its voices' locales (en_US)
    voices: tuple[Voice, ...] = ()
    version: str | None = None  # the model's own (its files'), else its package's; None: not known
    installed: bool = True  # its engine is installed (else it cannot load)
    multi_speaker: bool = False  # TTS: the voices are the speakers of one voice (a multi-speaker Piper model)
    words: tuple[WakeWordInfo, ...] = ()  # wake: the wake words it listens for
