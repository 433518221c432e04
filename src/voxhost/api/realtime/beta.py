"""OpenAI's beta Realtime transcription session, for the clients written before the GA API:
`transcription_session.update` read onto the session's settings, and the session object
`transcription_session.created` / `.updated` report.

`input_audio_format` (`pcm16` at 24 kHz, `g711_ulaw`, `g711_alaw`), `input_audio_transcription`
(`model`, `language`, `prompt`), `turn_detection` (`server_vad` or `semantic_vad`, the same fields as
GA's; null: manual commits), `input_audio_noise_reduction` (accepted, not applied), `include`. The same
rules as GA's (`ga.py`): only the fields an update holds change; a wrong value, a meaningless null or an
unknown field is an `error` event and changes nothing.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from voxhost.api.realtime import ga
from voxhost.api.realtime.config import OPENAI_RATE, Dialect, SessionConfig, TurnType
from voxhost.api.realtime.fields import UNSET, Fields
from voxhost.audio import g711
from voxhost.errors import BadRequest

FORMATS: dict[str, tuple[str, int]] = {
    "pcm16": ("pcm", OPENAI_RATE),
    "g711_ulaw": ("pcmu", g711.RATE),
    "g711_alaw": ("pcma", g711.RATE),
}
TURN = "session.turn_detection"

# Every field of a beta transcription session update, as the openai SDK types it.
HANDLED_FIELDS: frozenset[str] = frozenset({
    "session.input_audio_format", "session.include",
    "session.input_audio_transcription", "session.input_audio_transcription.model",
    "session.input_audio_transcription.language", "session.input_audio_transcription.prompt",
    "session.turn_detection", f"{TURN}.type", f"{TURN}.threshold", f"{TURN}.prefix_padding_ms",
    f"{TURN}.silence_duration_ms", f"{TURN}.eagerness",
})  # fmt: skip
_SECRET = "an ephemeral key's lifetime, for OpenAI's hosted sessions; voxhost's keys do not expire"
IGNORED_FIELDS: dict[str, str] = {
    "session.input_audio_noise_reduction": "voxhost filters no noise",
    "session.input_audio_noise_reduction.type": "voxhost filters no noise",
    "session.modalities": "a transcription session answers in text",
    f"{TURN}.create_response": "not available for transcription sessions",
    f"{TURN}.interrupt_response": "not available for transcription sessions",
    "session.client_secret": _SECRET,
    "session.client_secret.expires_at": _SECRET,
    "session.client_secret.expires_at.anchor": _SECRET,
    "session.client_secret.expires_at.seconds": _SECRET,
}
NULLABLE_FIELDS: frozenset[str] = frozenset({
    TURN, "session.input_audio_noise_reduction", "session.input_audio_transcription.model",
    "session.input_audio_transcription.language", "session.input_audio_transcription.prompt",
})  # fmt: skip
DECLINED_FIELDS: dict[str, str] = {}


def parse(config: SessionConfig, session: Fields) -> SessionConfig:
    """A `transcription_session.update`'s `session` onto the settings; BadRequest if any field is wrong."""
    changes: dict[str, Any] = {}
    audio_format = session.choice("input_audio_format", tuple(FORMATS))
    if audio_format is not UNSET:
        changes["codec"], changes["rate"] = FORMATS[audio_format]
    transcription = session.object("input_audio_transcription")
    if transcription is not UNSET:
        for key in ("model", "language", "prompt"):
            value = None if transcription.is_null(key) else transcription.text(key)
            if value is not UNSET:
                changes[key] = value or None
        transcription.done(DECLINED_FIELDS)
    if session.is_null("turn_detection"):
        changes["turn"] = None
    else:
        turn = session.object("turn_detection")
        if turn is not UNSET:
            kind = turn.choice("type", ("server_vad", "semantic_vad"))
            current = config.turn.type if config.turn is not None else "server_vad"  # beta: type optional
            chosen: TurnType = (
                "semantic_vad" if (current if kind is UNSET else kind) == "semantic_vad" else "server_vad"
            )
            changes["turn"] = ga.read_turn(config.turn, turn, chosen, DECLINED_FIELDS)
    if session.is_null("input_audio_noise_reduction"):
        changes["noise_reduction"] = None
    else:
        noise = session.object("input_audio_noise_reduction")
        if noise is not UNSET:
            settings = dict(config.noise_reduction or {})
            noise_type = noise.choice("type", ("near_field", "far_field"))
            if noise_type is not UNSET:
                settings["type"] = noise_type
            noise.done(DECLINED_FIELDS)
            changes["noise_reduction"] = settings
    include = session.strings("include")
    if include is not UNSET:
        changes["logprobs"] = ga.read_include(include, "session.include")
    modalities = session.strings("modalities")
    if modalities is not UNSET:
        for modality in modalities:
            if modality not in ("text", "audio"):
                message = f"session.modalities: unknown modality {modality!r}"
                raise BadRequest(message, param="session.modalities")
    secret = session.object("client_secret")
    if secret is not UNSET:
        expires = secret.object("expires_at")
        if expires is not UNSET:
            expires.choice("anchor", ("created_at",))
            expires.integer("seconds", 10, 7200)
            expires.done()
        secret.done()
    session.done(DECLINED_FIELDS)
    return dataclasses.replace(config, **changes)


def render(config: SessionConfig, session_id: str) -> dict[str, Any]:
    """The session object of `transcription_session.created` / `.updated` (the beta's has no id)."""
    audio_format = next((name for name, (codec, _) in FORMATS.items() if codec == config.codec), "pcm16")
    return {
        "input_audio_format": audio_format,
        "input_audio_transcription": {
            "model": config.model or ga.DEFAULT_MODEL,
            "language": config.language,
            "prompt": config.prompt or "",
        },
        "turn_detection": None if config.turn is None else config.turn.render(),
        "input_audio_noise_reduction": config.noise_reduction,
        "include": [ga.LOGPROBS] if config.logprobs else [],
        "modalities": ["text"],
    }


BETA = Dialect("beta", "transcription_session.created", "transcription_session.updated", parse, render, False)
