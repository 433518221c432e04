"""Wake word detection over a WebSocket, for clients that are not Home Assistant:
`WS /v1/audio/wake?names=okay_nabu,alexa&sample_rate=16000`.

client -> server: binary frames of 16-bit little-endian mono PCM at `sample_rate`; a text frame
                  `{"type": "stop"}` ends the stream.
server -> client: `{"type": "ready", "words": [...]}`, then a `{"type": "detection", "name", "phrase",
                  "model", "timestamp_ms", "probability", "speaker"}` as soon as a word is heard (the
                  stream keeps listening), `error`, and `{"type": "done", "detected": N}` after stop.

The same API keys as every route (the auth middleware: a header, or the browser's subprotocol). A
stream holds no audio (`manager/wake.py`), so it has no length limit; each message is bounded.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from voxhost.api.deps import get_manager
from voxhost.api.realtime.sockets import sender, subprotocol
from voxhost.errors import BadRequest, VoxhostError
from voxhost.manager.wake import Heard, WakeStream

router = APIRouter(tags=["wake"])


def _error(exc: VoxhostError) -> dict[str, Any]:
    return {"type": "error", "message": exc.message, "code": exc.code}


def detection_message(heard: Heard) -> dict[str, Any]:
    found = heard.detection
    return {
        "type": "detection",
        "name": found.name,
        "phrase": found.phrase,
        "model": heard.model,
        "timestamp_ms": found.timestamp_ms,
        "probability": round(found.probability, 3),
        "speaker": found.speaker,  # who said it (an enrolled person: --speakers), else None
    }


@router.websocket("/v1/audio/wake")
async def wake(websocket: WebSocket) -> None:
    manager = get_manager(websocket)
    await websocket.accept(subprotocol=subprotocol(websocket))
    send = sender(websocket)
    params = websocket.query_params
    stream: WakeStream | None = None
    try:
        rate = int(params.get("sample_rate", "16000"))
        names = [n.strip() for n in params.get("names", "").split(",") if n.strip()] or None
        stream = await manager.wake.open(names)
    except (VoxhostError, ValueError) as exc:
        error = exc if isinstance(exc, VoxhostError) else BadRequest(f"bad parameter: {exc}")
        await websocket.send_json(_error(error))
        await websocket.close(code=1008)
        return
    await send({"type": "ready", "sample_rate": rate, "words": stream.words})
    try:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            try:
                if message.get("bytes") is not None:
                    data: bytes = message["bytes"]
                    manager.limits.message(len(data))
                    for heard in await stream.feed_pcm(data, rate, 2, 1):
                        await send(detection_message(heard))
                else:
                    command = json.loads(message.get("text") or "null")
                    if not isinstance(command, dict) or command.get("type") != "stop":
                        raise BadRequest(f"unknown message {command!r}; send audio bytes or stop")
                    await send({"type": "done", "detected": stream.detections})
                    await websocket.close()
                    return
            except VoxhostError as exc:
                await send(_error(exc))
            except (ValueError, RecursionError):  # not JSON (JSONDecodeError is a ValueError)
                await send(_error(BadRequest("text messages must be JSON objects")))
    except WebSocketDisconnect:
        pass
    finally:
        await stream.close()  # a client that went away frees its stream at once
