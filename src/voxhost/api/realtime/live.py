"""voxhost's own live-transcription protocol:
`WS /v1/audio/transcriptions/live?model=&language=&sample_rate=16000`.

client -> server: binary frames of 16-bit little-endian mono PCM at `sample_rate`;
                  text frames `{"type": "commit"}` (end the utterance now) and `{"type": "stop"}`.
server -> client: `{"type": "ready"}`, then `speech_started`, `partial` (text, committed, tentative),
                  `speech_stopped`, `final` (text, start, end, language), `error`, and `done` after stop.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from voxhost.api.deps import get_manager
from voxhost.api.realtime.sockets import counted_session, sender, subprotocol
from voxhost.audio.decode import PcmConverter
from voxhost.errors import BadRequest, StreamTooLong, VoxhostError
from voxhost.manager.live import LiveEvent, VadConfig
from voxhost.results import TranscribeOptions

router = APIRouter(tags=["live"])


def _error(exc: VoxhostError) -> dict[str, Any]:
    return {"type": "error", "message": exc.message, "code": exc.code}


@router.websocket("/v1/audio/transcriptions/live")
@counted_session
async def live(websocket: WebSocket) -> None:
    manager = get_manager(websocket)
    await websocket.accept(subprotocol=subprotocol(websocket))
    send = sender(websocket)

    async def emit(event: LiveEvent) -> None:
        if event.kind != "dropped":  # this protocol says nothing of a blip too short to transcribe
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
            except (ValueError, RecursionError, AttributeError):  # not JSON (JSONDecodeError is a ValueError)
                await send(_error(BadRequest("text messages must be JSON objects")))
    except WebSocketDisconnect:
        pass
    finally:
        await live.close()  # a client that went away frees its work at once
