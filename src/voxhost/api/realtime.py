"""Live transcription over WebSocket: voxhost's own protocol and a subset of OpenAI's Realtime API.

Both are shells around `voxhost.manager.live.LiveTranscriber`; they differ only in message shapes.

voxhost protocol, `WS /v1/audio/transcriptions/live?model=&language=&sample_rate=16000`:
  client -> server: binary frames of 16-bit little-endian mono PCM at `sample_rate`;
                    text frames `{"type": "commit"}` (end the utterance now) and `{"type": "stop"}`.
  server -> client: `{"type": "ready"}`, then `speech_started`, `partial` (text, committed, tentative),
                    `speech_stopped`, `final` (text, start, end, language), `error`, and `done` after stop.

OpenAI Realtime, `WS /v1/realtime?intent=transcription`: `transcription_session.update`,
`input_audio_buffer.append` (base64 pcm16, 24 kHz mono), `input_audio_buffer.commit` / `.clear`; server VAD
(`turn_detection`), `input_audio_buffer.speech_started` / `speech_stopped` / `committed`, and
`conversation.item.input_audio_transcription.delta` / `.completed`.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import logging
import uuid
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from voxhost.api.deps import get_manager
from voxhost.api.errors import error_body
from voxhost.audio.decode import PcmConverter
from voxhost.errors import BadJson, BadRequest, StreamTooLong, VoxhostError
from voxhost.languages import normalize_language
from voxhost.manager import ModelManager
from voxhost.manager.live import LiveEvent, LiveTranscriber, VadConfig, agreed_prefix
from voxhost.results import TranscribeOptions

log = logging.getLogger("voxhost.realtime")
router = APIRouter(tags=["live"])

OPENAI_RATE = 24000
ITEM = "conversation.item.input_audio_transcription"


def _sender(websocket: WebSocket) -> Callable[[dict[str, Any]], Coroutine[Any, Any, None]]:
    """Send JSON from the receive loop and from background decodes without interleaving frames."""
    lock = asyncio.Lock()

    async def send(message: dict[str, Any]) -> None:
        async with lock:
            with contextlib.suppress(WebSocketDisconnect, RuntimeError):  # the client may be gone
                await websocket.send_json(message)

    return send


def _subprotocol(websocket: WebSocket) -> str | None:
    """The subprotocol to answer with: browsers send the API key as one (`openai-insecure-api-key.KEY`,
    beside `realtime`), and a handshake that offers subprotocols must have one chosen."""
    offered = [p.strip() for p in websocket.headers.get("sec-websocket-protocol", "").split(",") if p.strip()]
    if not offered:
        return None
    if "realtime" in offered:
        return "realtime"
    return next((p for p in offered if not p.startswith("openai-insecure-api-key.")), offered[0])


def _error(exc: VoxhostError) -> dict[str, Any]:
    return {"type": "error", "message": exc.message, "code": exc.code}


@router.websocket("/v1/audio/transcriptions/live")
async def live(websocket: WebSocket) -> None:
    manager = get_manager(websocket)
    await websocket.accept(subprotocol=_subprotocol(websocket))
    send = _sender(websocket)

    async def emit(event: LiveEvent) -> None:
        await send(event.as_dict())

    params = websocket.query_params
    try:
        rate = int(params.get("sample_rate", "16000"))
        converter = PcmConverter(rate, 2, 1)
        options = TranscribeOptions(language=params.get("language"))
        vad = VadConfig(min_silence=int(params.get("min_silence_ms", "500")) / 1000)
        live = manager.live_session(params.get("model") or None, options, vad, emit)
    except (VoxhostError, ValueError) as exc:
        error = exc if isinstance(exc, VoxhostError) else BadRequest(f"bad parameter: {exc}")
        await websocket.send_json(_error(error))
        await websocket.close(code=1008)
        return
    await send({"type": "ready", "sample_rate": rate, "model": params.get("model")})
    limits = manager.limits
    try:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            try:
                if message.get("bytes") is not None:
                    data: bytes = message["bytes"]
                    limits.message(len(data))
                    await live.feed(converter.convert(data))
                    limits.stream(live.now)
                else:
                    command = json.loads(message.get("text") or "null")
                    kind = command.get("type") if isinstance(command, dict) else None
                    if kind == "commit":
                        await live.commit()
                    elif kind == "stop":
                        await live.finish()
                        await send({"type": "done"})
                        await websocket.close()
                        return
                    else:
                        raise BadRequest(f"unknown message {command!r}; send audio bytes, commit or stop")
            except StreamTooLong as exc:
                await send(_error(exc))
                await websocket.close(code=1008)
                return
            except VoxhostError as exc:
                await send(_error(exc))
            except (json.JSONDecodeError, AttributeError):
                await send(_error(BadRequest("text messages must be JSON objects")))
    except WebSocketDisconnect:
        pass
    finally:
        await live.close()  # a client that went away frees its work at once


class _RealtimeSession:
    """One OpenAI Realtime transcription session."""

    def __init__(self, websocket: WebSocket, manager: ModelManager) -> None:
        self.ws = websocket
        self.limits = manager.limits
        self._send = _sender(websocket)
        self.manager = manager
        self.items: dict[int, str] = {}  # utterance -> item id
        self.delivered: dict[int, list[str]] = {}  # utterance -> words sent as deltas so far
        self.model: str | None = None
        self.language: str | None = None
        self.prompt: str | None = None
        self.vad = VadConfig()
        self.converter = PcmConverter(OPENAI_RATE, 2, 1)
        self.live = self._new_transcriber()
        self.previous_item: str | None = None

    def _new_transcriber(self) -> LiveTranscriber:
        options = TranscribeOptions(language=self.language, prompt=self.prompt)
        return self.manager.live_session(self.model or None, options, self.vad, self.emit)

    @staticmethod
    def _new_item() -> str:
        return "item_" + uuid.uuid4().hex[:20]

    async def send(self, kind: str, **fields: Any) -> None:
        await self._send({"event_id": "event_" + uuid.uuid4().hex[:20], "type": kind, **fields})

    def session(self) -> dict[str, Any]:
        turn = None
        if self.vad.enabled:
            turn = {
                "type": "server_vad", "threshold": self.vad.threshold,
                "prefix_padding_ms": int(self.vad.prefix_padding * 1000),
                "silence_duration_ms": int(self.vad.min_silence * 1000),
            }  # fmt: skip
        return {
            "object": "realtime.transcription_session",
            "input_audio_format": "pcm16",
            "input_audio_transcription": {
                "model": self.model or "whisper-1",
                "language": self.language,
                "prompt": self.prompt or "",
            },
            "turn_detection": turn,
        }

    def update(self, session: dict[str, Any]) -> None:
        audio_format = session.get("input_audio_format", "pcm16")
        if audio_format != "pcm16":
            raise BadRequest(f"input_audio_format {audio_format!r} is not supported; use pcm16")
        transcription = session.get("input_audio_transcription") or {}
        self.model = transcription.get("model", self.model)
        self.language = normalize_language(transcription.get("language")) or self.language
        self.prompt = transcription.get("prompt", self.prompt)
        if "turn_detection" in session:
            turn = session["turn_detection"]
            if turn is None:
                self.vad = VadConfig(enabled=False, max_utterance=self.vad.max_utterance)
            else:
                self.vad = VadConfig(
                    threshold=float(turn.get("threshold", 0.5)),
                    prefix_padding=int(turn.get("prefix_padding_ms", 300)) / 1000,
                    min_silence=int(turn.get("silence_duration_ms", 500)) / 1000,
                )
        self.live = self._new_transcriber()

    async def emit(self, event: LiveEvent) -> None:
        item = self.items.setdefault(event.utterance, self._new_item())
        if event.kind == "speech_started":
            start_ms = int(event.start * 1000)
            await self.send("input_audio_buffer.speech_started", audio_start_ms=start_ms, item_id=item)
        elif event.kind == "speech_stopped":
            end_ms = int((event.end or 0) * 1000)
            await self.send("input_audio_buffer.speech_stopped", audio_end_ms=end_ms, item_id=item)
            previous = self.previous_item
            await self.send("input_audio_buffer.committed", previous_item_id=previous, item_id=item)
            self.previous_item = item
        elif event.kind == "partial" and event.delta:
            await self._delta(event.utterance, item, event.delta.split())
        elif event.kind == "final":
            # the deltas add up to the transcript: send whatever the partials had not committed yet
            sent, words = self.delivered.get(event.utterance, []), event.text.split()
            if agreed_prefix(sent, words) == len(sent) and len(words) > len(sent):
                await self._delta(event.utterance, item, words[len(sent) :])
            self.delivered.pop(event.utterance, None)
            await self.send(f"{ITEM}.completed", item_id=item, content_index=0, transcript=event.text)
            self.items.pop(event.utterance, None)
        elif event.kind == "error":
            await self.send(
                f"{ITEM}.failed", item_id=item, content_index=0,
                error={"type": "server_error", "code": event.code, "message": event.text},
            )  # fmt: skip

    async def _delta(self, utterance: int, item: str, words: list[str]) -> None:
        delivered = self.delivered.setdefault(utterance, [])
        text = ("" if not delivered else " ") + " ".join(words)
        delivered.extend(words)
        await self.send(f"{ITEM}.delta", item_id=item, content_index=0, delta=text)

    async def handle(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind == "transcription_session.update":
            self.update(message.get("session") or {})
            await self.send("transcription_session.updated", session=self.session())
        elif kind == "input_audio_buffer.append":
            try:
                data = base64.b64decode(message["audio"], validate=True)
            except (KeyError, TypeError, binascii.Error):
                raise BadRequest("input_audio_buffer.append needs base64 pcm16 audio in 'audio'") from None
            self.limits.message(len(data))
            await self.live.feed(self.converter.convert(data))
            self.limits.stream(self.live.now)
        elif kind == "input_audio_buffer.commit":
            if not await self.live.commit():
                raise BadRequest("the input audio buffer holds no speech to commit")
        elif kind == "input_audio_buffer.clear":
            self.live.clear()
            await self.send("input_audio_buffer.cleared")
        else:
            raise BadRequest(f"unsupported event type {kind!r} in a transcription session")


@router.websocket("/v1/realtime")
async def realtime(websocket: WebSocket) -> None:
    manager = get_manager(websocket)
    await websocket.accept(subprotocol=_subprotocol(websocket))
    session = _RealtimeSession(websocket, manager)
    await session.send("transcription_session.created", session=session.session())
    try:
        while True:
            text = await websocket.receive_text()
            try:
                message = json.loads(text)
                if not isinstance(message, dict):
                    raise BadRequest("events must be JSON objects")
                await session.handle(message)
            except json.JSONDecodeError:
                await session.send("error", **error_body(BadJson("events must be JSON")))
            except VoxhostError as exc:
                await session.send("error", **error_body(exc))
                if isinstance(exc, StreamTooLong):
                    await websocket.close(code=1008)
                    return
    except WebSocketDisconnect:
        pass
    finally:
        await session.live.close()
