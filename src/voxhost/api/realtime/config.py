"""A Realtime transcription session's settings, as the client gave them, in either protocol version.

`ga.py` and `beta.py` read a client's session update onto a `SessionConfig` and render it back, each in
its own shape (a `Dialect`); the session core (`session.py`) turns it into what the manager takes:
`TranscribeOptions`, a `VadConfig` (OpenAI's turn detection read by `manager/live.py`) and the
converter for the audio format.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from voxhost.api.realtime.fields import Fields
from voxhost.audio.decode import Codec, PcmConverter
from voxhost.errors import BadRequest
from voxhost.manager.live import VadConfig, semantic_vad, server_vad
from voxhost.results import TranscribeOptions

OPENAI_RATE = 24000  # OpenAI's PCM rate; G.711 is 8 kHz
TurnType = Literal["server_vad", "semantic_vad"]


@dataclass(frozen=True, slots=True)
class Turn:
    """Turn detection (`turn_detection`) as the client set it; None fields: OpenAI's defaults."""

    type: TurnType = "server_vad"
    threshold: float | None = None
    prefix_padding_ms: int | None = None
    silence_duration_ms: int | None = None
    eagerness: str | None = None

    def vad(self) -> VadConfig:
        if self.type == "semantic_vad":
            return semantic_vad(self.eagerness)
        return server_vad(self.threshold, self.prefix_padding_ms, self.silence_duration_ms)

    def checked(self, path: str) -> Turn:
        """This turn detection, if the VAD takes its values; else BadRequest naming the field."""
        try:
            self.vad()
        except BadRequest as exc:  # the VAD's message starts with the field's name
            raise BadRequest(f"{path}.{exc.message}", param=f"{path}.{exc.param}") from None
        return self

    def render(self) -> dict[str, Any]:
        """The settings in effect, in OpenAI's shape (the same in both protocol versions)."""
        if self.type == "semantic_vad":
            return {"type": "semantic_vad", "eagerness": self.eagerness or "auto"}
        vad = self.vad()
        return {
            "type": "server_vad",
            "threshold": vad.threshold,
            "prefix_padding_ms": round(vad.prefix_padding * 1000),
            "silence_duration_ms": round(vad.min_silence * 1000),
        }


@dataclass(frozen=True, slots=True)
class SessionConfig:
    model: str | None = None  # as the client named it; None: the server's default ASR model
    language: str | None = None
    languages: tuple[str, ...] = ()  # the languages the audio may be in
    prompt: str | None = None
    keywords: tuple[str, ...] = ()
    codec: Codec = "pcm"
    rate: int = OPENAI_RATE
    turn: Turn | None = field(default_factory=Turn)  # None: the client commits each turn
    logprobs: bool = False  # include item.input_audio_transcription.logprobs
    # accepted and reported back, not applied (see the protocol modules' IGNORED_FIELDS)
    noise_reduction: dict[str, Any] | None = None
    delay: str | None = None

    def options(self) -> TranscribeOptions:
        return TranscribeOptions(
            language=self.language,
            languages=self.languages or None,  # detection picks among them
            prompt=self.prompt or None,
            hotwords=", ".join(self.keywords) or None,
            logprobs=self.logprobs,
        )

    def vad(self) -> VadConfig:
        return VadConfig(enabled=False) if self.turn is None else self.turn.vad()

    def converter(self) -> PcmConverter:
        return PcmConverter(self.rate, 2 if self.codec == "pcm" else 1, 1, codec=self.codec)


@dataclass(frozen=True)
class Dialect:
    """One version of the protocol: its session events and the shape of its session object."""

    name: Literal["ga", "beta"]
    created: str  # the server event that opens the session
    updated: str  # the server event that answers an update
    parse: Callable[[SessionConfig, Fields], SessionConfig]  # an update's `session` onto the settings
    render: Callable[[SessionConfig, str], dict[str, Any]]  # the settings as the session object
    details: bool  # the transcript's extras GA has (segment events, detected languages)
