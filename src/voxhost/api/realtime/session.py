"""OpenAI's Realtime API for transcription, `WS /v1/realtime?intent=transcription` (or without the query,
as the openai SDK connects): one session core under both versions of the protocol.

Which version: a client that announces the beta (the `OpenAI-Beta: realtime=v1` header, or a browser's
`openai-beta.realtime-v1` subprotocol) is greeted with `transcription_session.created`, every other
client with GA's `session.created`. Each update is answered in its own version (`session.update` with
`session.updated`, `transcription_session.update` with `transcription_session.updated`) and the session
speaks that version from then on, so an older client that announces nothing works from its first
update. `ga.py` and `beta.py` read and render the settings; `events.py` lists every event.

The session feeds the audio (`input_audio_buffer.append`, base64 in the session's format) to the
manager's `LiveTranscriber` and says what it hears: `input_audio_buffer.speech_started` /
`speech_stopped` (server VAD), `committed` (VAD or the client's `commit`), `cleared`;
`conversation.item.input_audio_transcription.delta` while the speaker talks (the words two partial
decodes agree on; the rest when the turn ends), `.segment` (GA), `.completed` (with `usage`, `logprobs`
when included) or `.failed`. Anything wrong in a client event is an `error` event; the session goes on.
"""

from __future__ import annotations

import base64
import binascii
import json
import sys
import uuid
from typing import Any

from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from voxhost.api.deps import get_manager
from voxhost.api.errors import error_body
from voxhost.api.realtime.beta import BETA
from voxhost.api.realtime.config import Dialect, SessionConfig
from voxhost.api.realtime.events import DECLINED_CLIENT_EVENTS, ITEM
from voxhost.api.realtime.fields import UNSET, Fields
from voxhost.api.realtime.ga import GA
from voxhost.api.realtime.sockets import counted_session, offered_subprotocols, sender, subprotocol
from voxhost.errors import BadJson, BadRequest, StreamTooLong, VoxhostError
from voxhost.formats import token_usage
from voxhost.manager import ModelManager
from voxhost.manager.live import LiveEvent, agreed_prefix
from voxhost.results import Transcription

router = APIRouter(tags=["live"])
SPEAKER = "A"  # segment events' speaker: voxhost does not diarize, every segment is one speaker's


def _new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:20]}"


class RealtimeSession:
    """One transcription session: the client's settings, the live transcriber, and its items."""

    def __init__(
        self, websocket: WebSocket, manager: ModelManager, dialect: Dialect, model: str | None
    ) -> None:
        self.manager = manager
        self.limits = manager.limits
        self.dialect = dialect
        self.id = _new_id("sess")
        self._send = sender(websocket)
        self.config = SessionConfig(model=model)
        self.live = manager.live_session(model, self.config.options(), self.config.vad(), self.emit)
        self.converter = self.config.converter()
        self.items: dict[int, str] = {}  # utterance -> item id
        self.delivered: dict[int, list[str]] = {}  # utterance -> words sent as deltas so far
        self.previous_item: str | None = None

    async def send(self, kind: str, **fields: Any) -> None:
        await self._send({"event_id": _new_id("event"), "type": kind, **fields})

    async def start(self) -> None:
        await self.send(self.dialect.created, session=self.dialect.render(self.config, self.id))

    async def error(self, exc: VoxhostError, client_event: str | None = None) -> None:
        body = error_body(exc)["error"]
        if client_event is not None:
            body["event_id"] = client_event  # which of the client's events it answers
        await self.send("error", error=body)

    # --- client events ---------------------------------------------------------------------------
    async def handle(self, message: object) -> None:
        event = Fields(message, "")
        kind = event.text("type", max_length=200)
        event.text("event_id", max_length=1000)
        if kind is UNSET:
            raise BadRequest("every event needs a type", param="type")
        if kind in ("session.update", "transcription_session.update"):
            await self._update(GA if kind == "session.update" else BETA, event)
        elif kind == "input_audio_buffer.append":
            await self._append(event)
        elif kind == "input_audio_buffer.commit":
            event.done()
            if not await self.live.commit():
                raise BadRequest("the input audio buffer holds no speech to commit")
        elif kind == "input_audio_buffer.clear":
            event.done()
            self.live.clear()
            self.converter = self.config.converter()  # nor the bytes of a sample begun
            await self.send("input_audio_buffer.cleared")
        elif kind in DECLINED_CLIENT_EVENTS:
            raise BadRequest(f"{kind} is not supported: {DECLINED_CLIENT_EVENTS[kind]}", param="type")
        else:
            raise BadRequest(f"unknown event type {kind!r} in a transcription session", param="type")

    async def _update(self, dialect: Dialect, event: Fields) -> None:
        session = event.object("session")
        if session is UNSET:
            raise BadRequest("a session update needs its session object", param="session")
        event.done()
        config = dialect.parse(self.config, session)
        # the manager resolves the model (its names and aliases); nothing changes if it refuses
        settings = self.manager.live_session(config.model, config.options(), config.vad(), self.emit)
        if (config.codec, config.rate) != (self.config.codec, self.config.rate):
            self.converter = config.converter()
        self.live.reconfigure(settings)
        self.config, self.dialect = config, dialect
        await self.send(dialect.updated, session=dialect.render(config, self.id))

    async def _append(self, event: Fields) -> None:
        audio = event.text("audio", max_length=sys.maxsize)
        event.done()
        if audio is UNSET:
            raise BadRequest("input_audio_buffer.append needs base64 audio in 'audio'", param="audio")
        try:
            data = base64.b64decode(audio, validate=True)
        except (binascii.Error, ValueError):
            raise BadRequest("input_audio_buffer.append: 'audio' is not base64", param="audio") from None
        self.limits.message(len(data))
        await self.live.feed(self.converter.convert(data))
        self.limits.stream(self.live.now)

    # --- what the transcriber hears ----------------------------------------------------------------
    async def emit(self, event: LiveEvent) -> None:
        if event.kind == "error" and event.end is None:
            return  # a partial decode failed: the turn's transcript comes (or fails) as usual
        item = self.items.setdefault(event.utterance, _new_id("item"))
        vad = self.live.vad.enabled  # without it the client commits, and no speech events are sent
        if event.kind == "speech_started":
            if vad:
                start_ms = int(event.start * 1000)
                await self.send("input_audio_buffer.speech_started", audio_start_ms=start_ms, item_id=item)
        elif event.kind == "speech_stopped":
            if vad:
                end_ms = int((event.end or 0) * 1000)
                await self.send("input_audio_buffer.speech_stopped", audio_end_ms=end_ms, item_id=item)
            previous, self.previous_item = self.previous_item, item
            await self.send("input_audio_buffer.committed", previous_item_id=previous, item_id=item)
        elif event.kind == "partial" and event.delta:
            await self._delta(event.utterance, item, event.delta.split())
        elif event.kind in ("final", "dropped"):
            await self._completed(event, item)
        elif event.kind == "error":
            self._forget(event.utterance)
            await self.send(
                f"{ITEM}.failed", item_id=item, content_index=0,
                error={"type": "server_error", "code": event.code, "message": event.text},
            )  # fmt: skip

    async def _delta(self, utterance: int, item: str, words: list[str]) -> None:
        delivered = self.delivered.setdefault(utterance, [])
        text = ("" if not delivered else " ") + " ".join(words)
        delivered.extend(words)
        await self.send(f"{ITEM}.delta", item_id=item, content_index=0, delta=text)

    async def _completed(self, event: LiveEvent, item: str) -> None:
        # a blip too short to transcribe is a turn that said nothing
        duration = (event.end or event.start) - event.start
        result = event.result or Transcription("", "", 0.0, duration)
        # the deltas add up to the transcript: send whatever the partials had not committed yet
        sent, words = self.delivered.get(event.utterance, []), result.text.split()
        if agreed_prefix(sent, words) == len(sent) and len(words) > len(sent):
            await self._delta(event.utterance, item, words[len(sent) :])
        self._forget(event.utterance)
        details: dict[str, Any] = {}
        if self.dialect.details:
            for segment in result.segments:
                await self.send(
                    f"{ITEM}.segment", item_id=item, content_index=0, id=_new_id("seg"),
                    start=round(segment.start, 3), end=round(segment.end, 3), text=segment.text.strip(),
                    speaker=SPEAKER,
                )  # fmt: skip
            details["languages"] = [{"code": result.language}] if result.language else []
        if self.config.logprobs and result.logprobs is not None:
            details["logprobs"] = [
                {"token": p.token, "logprob": p.logprob, "bytes": list(p.bytes)} for p in result.logprobs
            ]
        await self.send(
            f"{ITEM}.completed", item_id=item, content_index=0, transcript=result.text,
            usage=token_usage(result), **details,
        )  # fmt: skip

    def _forget(self, utterance: int) -> None:
        self.items.pop(utterance, None)
        self.delivered.pop(utterance, None)


def announces_beta(websocket: WebSocket) -> bool:
    header = websocket.headers.get("openai-beta", "").replace(" ", "")
    return "realtime=v1" in header.split(",") or "openai-beta.realtime-v1" in offered_subprotocols(websocket)


def _connect_model(websocket: WebSocket) -> str | None:
    """The transcription model the URL names (None: the default); the rest of the query is checked."""
    params = websocket.query_params
    intent = params.get("intent")
    if intent not in (None, "transcription"):
        raise BadRequest(
            f"intent={intent}: voxhost serves Realtime transcription sessions only (intent=transcription)",
            param="intent",
        )
    if "call_id" in params:
        raise BadRequest("call_id: voxhost joins no calls; open a transcription session", param="call_id")
    return params.get("model") or None


def _client_event_id(message: object) -> str | None:
    event_id = message.get("event_id") if isinstance(message, dict) else None
    return event_id if isinstance(event_id, str) else None


@router.websocket("/v1/realtime")
@counted_session
async def realtime(websocket: WebSocket) -> None:
    manager = get_manager(websocket)
    await websocket.accept(subprotocol=subprotocol(websocket))
    dialect = BETA if announces_beta(websocket) else GA
    try:
        session = RealtimeSession(websocket, manager, dialect, _connect_model(websocket))
    except VoxhostError as exc:  # an unknown model or intent in the URL: nothing to go on with
        await websocket.send_json({"type": "error", "event_id": _new_id("event"), **error_body(exc)})
        await websocket.close(code=1008)
        return
    await session.start()
    try:
        while True:
            received = await websocket.receive()
            if received["type"] == "websocket.disconnect":
                return
            text = received.get("text")
            if text is None:
                await session.error(BadRequest("events are JSON text messages, not binary ones"))
                continue
            try:
                message = json.loads(text)
            except (ValueError, RecursionError):  # JSONDecodeError is a ValueError, as are huge numbers
                await session.error(BadJson("events must be JSON"))
                continue
            try:
                await session.handle(message)
            except VoxhostError as exc:
                await session.error(exc, _client_event_id(message))
                if isinstance(exc, StreamTooLong):
                    await websocket.close(code=1008)
                    return
    except WebSocketDisconnect:
        pass
    finally:
        await session.live.close()
