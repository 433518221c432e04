"""The HTTP application: wires the routers, the error handlers and the model manager's lifetime."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, Depends, FastAPI

from voxhost import __version__
from voxhost.api import models, openai_audio, openai_speech, realtime
from voxhost.api.deps import get_manager
from voxhost.api.errors import install_error_handlers
from voxhost.api.wyoming import WyomingServer
from voxhost.manager import ModelManager
from voxhost.settings import Settings

health_router = APIRouter(tags=["health"])


@health_router.get("/health", summary="Server and worker state")
async def health(manager: ModelManager = Depends(get_manager)) -> dict[str, Any]:
    """200 while the server accepts requests. Each loaded model's worker is pinged, so a dead or hung
    worker shows as such rather than as the last state the server remembered."""
    report: dict[str, Any] = {}
    for status in manager.status():
        entry: dict[str, Any] = {
            "state": status.state,
            "task": status.task,
            "pid": status.pid,
            "loads": status.loads,
            "restarts": status.restarts,
            "requests": status.requests,
            "in_flight": status.in_flight,
            "rss_bytes": status.rss_bytes,
            "last_error": status.last_error,
        }
        if status.state == "ready":
            stats = await manager.worker_stats(status.id)
            if stats is None:
                entry["state"] = "unresponsive"
            else:
                entry["worker"] = stats
        report[status.id] = entry
    return {"status": "ok", "version": __version__, "models": report}


def create_app(settings: Settings | None = None, manager: ModelManager | None = None) -> FastAPI:
    settings = settings or Settings()
    manager = manager or ModelManager(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # HTTP and Wyoming start and stop together, around one model manager.
        await manager.start()
        wyoming = WyomingServer(manager, settings) if settings.wyoming else None
        try:
            if wyoming is not None:
                await wyoming.start()
            yield
        finally:
            if wyoming is not None:
                await wyoming.stop(settings.shutdown_grace)
            await manager.close()

    app = FastAPI(
        title="voxhost",
        version=__version__,
        description="Self-hosted speech server with an OpenAI-compatible API.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.manager = manager
    install_error_handlers(app)
    app.include_router(health_router)
    app.include_router(models.router)
    app.include_router(openai_audio.router)
    app.include_router(openai_speech.router)
    app.include_router(realtime.router)
    return app
