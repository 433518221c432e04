"""OpenAI's Realtime API (GA) transcription session: `session.update` read onto the session's settings,
and the session object `session.created` / `session.updated` report.

`session.type` must be "transcription". Under `audio.input`: `format` (`audio/pcm` at 24 kHz, other
rates resampled too; `audio/pcmu`, `audio/pcma`: G.711 at 8 kHz), `transcription` (`model` through the
server's model names and aliases, `language`, `languages`, `prompt`, `keywords` as the decoder's
hotwords), `turn_detection` (`server_vad` with its `threshold`, `prefix_padding_ms`,
`silence_duration_ms`; `semantic_vad` with its `eagerness`, see `manager/live.py`; null: the client
commits each turn) and `noise_reduction` (accepted, not applied); `include` with
`item.input_audio_transcription.logprobs`. Only the fields an update holds change (nested objects too).
Null means something only where the tables below say so; every other null, wrong type or unknown field
is an `error` event and leaves the settings as they were.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from voxhost.api.realtime.config import OPENAI_RATE, Dialect, SessionConfig, Turn, TurnType
from voxhost.api.realtime.fields import UNSET, Fields
from voxhost.audio import g711
from voxhost.errors import BadRequest
from voxhost.manager.live import SEMANTIC_EAGERNESS

LOGPROBS = "item.input_audio_transcription.logprobs"
DEFAULT_MODEL = "whisper-1"  # reported when the client named none: the alias of the default ASR model
FORMATS = {"audio/pcm": "pcm", "audio/pcmu": "pcmu", "audio/pcma": "pcma"}
DELAYS = ("minimal", "low", "medium", "high", "xhigh")
INPUT = "session.audio.input"
TURN = f"{INPUT}.turn_detection"

# Every field of a GA transcription session, as the openai SDK types it (the conformance test checks).
HANDLED_FIELDS: frozenset[str] = frozenset({
    "session.type", "session.include", "session.audio", INPUT,
    f"{INPUT}.format", f"{INPUT}.format.type", f"{INPUT}.format.rate",
    f"{INPUT}.transcription", f"{INPUT}.transcription.model", f"{INPUT}.transcription.language",
    f"{INPUT}.transcription.languages", f"{INPUT}.transcription.prompt", f"{INPUT}.transcription.keywords",
    TURN, f"{TURN}.type", f"{TURN}.threshold", f"{TURN}.prefix_padding_ms", f"{TURN}.silence_duration_ms",
    f"{TURN}.eagerness",
})  # fmt: skip
_NO_RESPONSES = "a transcription session has no model responses to create or interrupt"
_ECHO = "the server's own field in session.created: a client may send the session object back"
# accepted (their values checked) and reported back, with no effect
IGNORED_FIELDS: dict[str, str] = {
    f"{INPUT}.noise_reduction": "voxhost filters no noise: Silero VAD and Whisper take the audio as sent",
    f"{INPUT}.noise_reduction.type": "voxhost filters no noise",
    f"{INPUT}.noise_reduction.strength": "voxhost filters no noise",
    f"{INPUT}.transcription.delay": "a latency setting of gpt-realtime-whisper; voxhost's deltas come as "
    "the speaker talks and its transcript right after the turn ends, whatever it says",
    f"{TURN}.create_response": _NO_RESPONSES,
    f"{TURN}.interrupt_response": _NO_RESPONSES,
    "session.id": _ECHO,
    "session.object": _ECHO,
    "session.expires_at": _ECHO,
}
# where null means something: turn detection off (manual commits), no noise filter, the default model,
# language detection, no prompt, no idle timeout; a null anywhere else is an error
NULLABLE_FIELDS: frozenset[str] = frozenset({
    TURN, f"{INPUT}.noise_reduction", f"{INPUT}.transcription.model", f"{INPUT}.transcription.language",
    f"{INPUT}.transcription.prompt", f"{TURN}.idle_timeout_ms",
})  # fmt: skip
# refused with an error event (the reason is its message)
DECLINED_FIELDS: dict[str, str] = {
    f"{TURN}.idle_timeout_ms": "it asks for a model response after a silence, and a transcription session "
    "has none (null is accepted)",
}


def parse(config: SessionConfig, session: Fields) -> SessionConfig:
    """A `session.update`'s `session` onto the settings; BadRequest (naming the field) if any is wrong."""
    kind = session.choice("type", ("transcription", "realtime"))
    if kind is UNSET:
        raise BadRequest('session.type is required: "transcription"', param="session.type")
    if kind == "realtime":
        raise BadRequest(
            'voxhost serves transcription sessions only: send session.type "transcription"',
            param="session.type",
        )
    changes: dict[str, Any] = {}
    include = session.strings("include")
    if include is not UNSET:
        changes["logprobs"] = read_include(include, "session.include")
    session.text("id")
    session.text("object")
    session.integer("expires_at")
    audio = session.object("audio")
    if audio is not UNSET:
        audio_input = audio.object("input")
        if audio_input is not UNSET:
            _input(config, audio_input, changes)
        audio.done()
    session.done(DECLINED_FIELDS)
    return dataclasses.replace(config, **changes)


def read_include(entries: list[str], param: str) -> bool:
    for entry in entries:
        if entry != LOGPROBS:
            raise BadRequest(f"{param}: unknown entry {entry!r} (the only one is {LOGPROBS!r})", param=param)
    return LOGPROBS in entries


def _input(config: SessionConfig, audio_input: Fields, changes: dict[str, Any]) -> None:
    audio_format = audio_input.object("format")
    if audio_format is not UNSET:
        changes["codec"], changes["rate"] = _format(audio_format)
    if audio_input.is_null("noise_reduction"):
        changes["noise_reduction"] = None
    else:
        noise = audio_input.object("noise_reduction")
        if noise is not UNSET:
            settings = dict(config.noise_reduction or {"strength": 1.0})  # omitted fields stay as they are
            noise_type = noise.choice("type", ("near_field", "far_field"))
            strength = noise.number("strength", 0.0, 100.0)
            if noise_type is not UNSET:
                settings["type"] = noise_type
            if strength is not UNSET:
                settings["strength"] = strength
            noise.done()
            changes["noise_reduction"] = settings
    if audio_input.is_null("transcription"):
        raise BadRequest(
            f"{INPUT}.transcription may not be null: a transcription session always transcribes",
            param=f"{INPUT}.transcription",
        )
    transcription = audio_input.object("transcription")
    if transcription is not UNSET:
        _transcription(transcription, changes)
    if audio_input.is_null("turn_detection"):
        changes["turn"] = None
    else:
        turn = audio_input.object("turn_detection")
        if turn is not UNSET:
            changes["turn"] = _turn(config.turn, turn)
    audio_input.done(DECLINED_FIELDS)


def _format(audio_format: Fields) -> tuple[str, int]:
    kind = audio_format.choice("type", tuple(FORMATS))
    codec = FORMATS["audio/pcm" if kind is UNSET else kind]
    rate = audio_format.integer("rate", 8000, 48000)
    audio_format.done()
    if codec == "pcm":
        return codec, OPENAI_RATE if rate is UNSET else rate
    if rate not in (UNSET, g711.RATE):
        param = audio_format.param("rate")
        raise BadRequest(f"{param}: G.711 audio is {g711.RATE} Hz, not {rate}", param=param)
    return codec, g711.RATE


def _transcription(transcription: Fields, changes: dict[str, Any]) -> None:
    for key in ("model", "language", "prompt"):  # null: the default (model), detection, no prompt
        value = None if transcription.is_null(key) else transcription.text(key)
        if value is not UNSET:
            changes[key] = value or None
    languages = transcription.strings("languages", max_items=200, max_length=20)
    if languages is not UNSET:
        changes["languages"] = tuple(languages)
    keywords = transcription.strings("keywords", max_items=500, max_length=200)
    if keywords is not UNSET:
        changes["keywords"] = tuple(k.strip() for k in keywords if k.strip())
    delay = transcription.choice("delay", DELAYS)
    if delay is not UNSET:
        changes["delay"] = delay
    transcription.done(DECLINED_FIELDS)


def _turn(current: Turn | None, turn: Fields) -> Turn:
    kind = turn.choice("type", ("server_vad", "semantic_vad"))
    if kind is UNSET:
        raise BadRequest(f'{TURN}.type is required: "server_vad" or "semantic_vad"', param=f"{TURN}.type")
    return read_turn(
        current, turn, "semantic_vad" if kind == "semantic_vad" else "server_vad", DECLINED_FIELDS
    )


def read_turn(current: Turn | None, turn: Fields, kind: TurnType, declined: dict[str, str]) -> Turn:
    """The fields of a `turn_detection` object of `kind` onto the current one (a new kind starts from
    its defaults). Shared with the beta protocol, whose object has the same fields."""
    changes: dict[str, Any] = {}
    if kind == "server_vad":
        for key in ("threshold", "prefix_padding_ms", "silence_duration_ms"):
            value = turn.number(key) if key == "threshold" else turn.integer(key)
            if value is not UNSET:
                changes[key] = value
    else:
        eagerness = turn.choice("eagerness", tuple(SEMANTIC_EAGERNESS))
        if eagerness is not UNSET:
            changes["eagerness"] = eagerness
    turn.boolean("create_response")
    turn.boolean("interrupt_response")
    if kind == "server_vad":
        turn.is_null("idle_timeout_ms")  # null: no idle timeout, as here; a value is declined
    turn.done(declined)
    start = current if current is not None and current.type == kind else Turn(kind)
    return dataclasses.replace(start, **changes).checked(turn.path)


def render(config: SessionConfig, session_id: str) -> dict[str, Any]:
    """The session object of `session.created` / `session.updated`: the settings in effect."""
    transcription: dict[str, Any] = {
        "model": config.model or DEFAULT_MODEL,
        "language": config.language,
        "prompt": config.prompt or "",
    }
    if config.languages:
        transcription["languages"] = list(config.languages)
    if config.keywords:
        transcription["keywords"] = list(config.keywords)
    if config.delay:
        transcription["delay"] = config.delay
    audio_format: dict[str, Any] = {"type": f"audio/{config.codec}"}
    if config.codec == "pcm":
        audio_format["rate"] = config.rate
    return {
        "type": "transcription",
        "id": session_id,
        "object": "realtime.transcription_session",
        "audio": {
            "input": {
                "format": audio_format,
                "transcription": transcription,
                "turn_detection": None if config.turn is None else config.turn.render(),
                "noise_reduction": config.noise_reduction,
            }
        },
        "include": [LOGPROBS] if config.logprobs else [],
    }


GA = Dialect("ga", "session.created", "session.updated", parse, render, details=True)
