"""Live transcription over WebSocket: voxhost's own protocol (`live.py`) and OpenAI's Realtime API for
transcription, GA and beta over one session core (`session.py`, with `ga.py`, `beta.py`, `events.py`).

Both are shells around `voxhost.manager.live.LiveTranscriber`; they differ only in message shapes.
"""

from fastapi import APIRouter

from voxhost.api.realtime import live, session

router = APIRouter()
router.include_router(live.router)
router.include_router(session.router)

__all__ = ["router"]
