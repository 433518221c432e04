"""The HTTP application: wires the routers, the error handlers and the model manager's lifetime."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, Depends, FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, Response

from voxhost import __version__
from voxhost.api import jobs, models, openai_audio, openai_speech, realtime, wake, web
from voxhost.api.auth import ApiKeyAuth, KeyChecker, load_keys
from voxhost.api.bodies import BodyLimit
from voxhost.api.deps import get_manager
from voxhost.api.errors import document_errors, error_responses, install_error_handlers
from voxhost.api.observe import RequestObserver
from voxhost.api.origin import OriginGuard
from voxhost.api.wyoming import WyomingServer
from voxhost.jobs.runner import JobRunner
from voxhost.jobs.store import JobStore
from voxhost.manager import ModelManager
from voxhost.settings import Settings

health_router = APIRouter(tags=["health"])


@health_router.get("/health", summary="Server and worker state", responses=error_responses())
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
    ready, reasons = readiness(manager)
    return {"status": "ok", "ready": ready, "not_ready": reasons, "version": __version__, "models": report}


def readiness(manager: ModelManager) -> tuple[bool, list[str]]:
    """Whether the server should get traffic, and why not: it is stopping, a model it was told to
    preload has not finished its first load, or a default model's last load failed. (A preloaded model
    unloaded later, by the API or its TTL, loads again on its next request: no reason to stop traffic.)"""
    reasons = []
    if manager.closing or manager.draining:
        reasons.append("shutting down")
    statuses = manager.status()
    defaults = {manager.resolve(None, s.task).id for s in statuses}
    for status in statuses:
        preloaded = manager.settings.preload and not manager.resolve(status.id).on_demand
        if preloaded and status.state != "ready" and status.loads == 0:
            reasons.append(f"{status.id} is {status.state} (preload)")
        elif status.id in defaults and status.state == "failed":
            reasons.append(f"{status.id} failed to load: {status.last_error}")
    return not reasons, reasons


@health_router.get("/health/live", summary="Liveness: the server process answers")
async def live() -> dict[str, Any]:
    """200 whenever the event loop runs; restart the server only when this fails."""
    return {"status": "alive"}


@health_router.get(
    "/health/ready",
    summary="Readiness: the server should get traffic",
    responses={503: {"description": "Not ready: starting, a model failed to load, or stopping"}},
)
async def ready(manager: ModelManager = Depends(get_manager)) -> JSONResponse:
    """200 when requests can be served now; 503 (with the reasons) while starting, failing or stopping."""
    ok, reasons = readiness(manager)
    return JSONResponse(
        {"status": "ready" if ok else "not ready", "reasons": reasons}, status_code=200 if ok else 503
    )


@health_router.get(
    "/metrics", summary="Prometheus metrics", response_class=Response, responses=error_responses()
)
async def metrics(manager: ModelManager = Depends(get_manager)) -> Response:
    from voxhost.manager.metrics import CONTENT_TYPE

    return Response(manager.metrics.render(), media_type=CONTENT_TYPE)


@health_router.get(
    "/status",
    summary="Models, workers, memory and queues (what `voxhost status` shows)",
    responses=error_responses(),
)
async def server_status(manager: ModelManager = Depends(get_manager)) -> dict[str, Any]:
    import dataclasses

    statuses = manager.status()
    ok, reasons = readiness(manager)
    return {
        "version": __version__,
        "uptime_seconds": round(time.time() - manager.started_at, 1),
        "ready": ok,
        "not_ready": reasons,
        "memory": manager.memory(statuses),
        "models": [dataclasses.asdict(s) for s in statuses],
    }


def create_app(
    settings: Settings | None = None, manager: ModelManager | None = None, jobs_store: JobStore | None = None
) -> FastAPI:
    """The app; `jobs_store`: the data dir's store, opened (and locked) by the caller, else at start."""
    settings = settings or Settings()
    manager = manager or ModelManager(settings)
    runner = JobRunner(manager, jobs_store)

    wyoming = WyomingServer(manager, settings) if settings.wyoming else None

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # HTTP and Wyoming start and stop together, around one model manager.
        await manager.start()
        try:
            await runner.start()
            if wyoming is not None:
                await wyoming.start()
            yield
        finally:
            if wyoming is not None:
                await wyoming.stop(settings.shutdown_grace)
            await runner.close()  # running jobs stay running in the store: they resume at the next start
            await manager.close()

    def begin_drain() -> None:
        """The server is stopping: new requests get 503 on every front-end, those in flight finish."""
        manager.begin_drain()
        if wyoming is not None:
            wyoming.stop_listening()

    app = FastAPI(
        title="voxhost",
        version=__version__,
        description="Self-hosted speech server with an OpenAI-compatible API.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.manager = manager
    app.state.begin_drain = begin_drain
    app.state.jobs = runner
    install_error_handlers(app)
    document_errors(app)
    # added last = outermost: request ids and metrics cover refused requests too, and CORS preflights
    # (which carry no key) are answered before the key check
    app.add_middleware(ApiKeyAuth, checker=KeyChecker(load_keys(settings.api_key, settings.api_key_file)))
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["*"],
            allow_headers=["*"],
            expose_headers=["X-Request-ID", "X-Sample-Rate", "X-Voxhost-Model", "Retry-After"],
        )
    # every route and WebSocket, those of later front-ends included: bodies bounded before they are held,
    # then foreign hosts (DNS rebinding) and other sites' pages refused, before CORS and the key check
    app.add_middleware(BodyLimit, limits=manager.limits)
    app.add_middleware(OriginGuard, settings=settings)
    app.add_middleware(RequestObserver, metrics=manager.metrics, draining=lambda: manager.draining)
    app.include_router(health_router)
    app.include_router(models.router)
    app.include_router(openai_audio.router)
    app.include_router(openai_speech.router)
    app.include_router(jobs.router)
    app.include_router(realtime.router)
    app.include_router(wake.router)
    app.include_router(web.router)
    app.mount(web.PREFIX, web.static_files(), name="playground")
    return app
