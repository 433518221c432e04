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

from voxhost.engines.base import TaskKind
from voxhost.results import TranscribeOptions


@dataclass(frozen=True, slots=True)
class TranscribeRequest:
    """Audio to transcribe (or translate): float32 mono 16 kHz samples, as `voxhost.audio` decodes them."""

    audio: np.ndarray
    options: TranscribeOptions = field(default_factory=TranscribeOptions)
    model: str | None = None  # a model id or alias; None is the default ASR model
    live: bool = False  # a live stream's decode: served before every other request


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


@dataclass(frozen=True, slots=True)
class ModelCard:
    """What a served model is, for `describe` answers (Wyoming `info`): who made it, its languages,
    and its voices (TTS)."""

    id: str
    task: TaskKind
    engine: str
    description: str
    attribution: str
    url: str
    languages: tuple[str, ...] = ()
    voices: tuple[Voice, ...] = ()
