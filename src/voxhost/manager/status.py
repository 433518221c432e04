"""Snapshots of configured models for /v1/models, /health, /status, the metrics and `voxhost status`."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from voxhost.engines.base import ModelInfo, TaskKind
from voxhost.manager.state import Entry, State, process_rss


@dataclass(slots=True)
class ModelStatus:
    """A snapshot of one configured model, for /v1/models, /health, /status and `voxhost status`."""

    id: str
    engine: str
    task: TaskKind
    origin: str
    source: str
    description: str
    aliases: list[str]
    state: State
    pid: int | None
    loads: int
    restarts: int
    requests: int
    in_flight: int
    rss_bytes: int | None
    last_error: str | None
    info: ModelInfo | None = None  # what the loaded model is and can do; None while not loaded
    layout: dict[str, int] = field(default_factory=dict)
    workers: list[dict[str, Any]] = field(default_factory=list)
    queue: dict[str, Any] = field(default_factory=dict)
    recycles: int = 0
    evictions: int = 0
    last_used: float | None = None


def model_status(entry: Entry, aliases: list[str]) -> ModelStatus:
    """A snapshot of one model: its state, workers (pid, RSS, in flight), queue and counters."""
    workers: list[dict[str, Any]] = []
    for replica in entry.replicas:
        worker = replica.worker
        alive = replica.alive
        workers.append(
            {
                "replica": replica.index,
                "state": "loading"
                if replica.loading
                else ("ready" if alive else ("crashed" if worker else "unloaded")),
                "pid": worker.pid if alive and worker else None,
                "in_flight": replica.in_flight,
                "retiring": replica.retiring,
                "rss_bytes": process_rss(worker.pid) if alive and worker else None,
            }
        )
    live = [w for w in workers if w["pid"] is not None]
    first = next((r.worker for r in entry.replicas if r.alive), None)
    rss_values: list[int] = [w["rss_bytes"] for w in live if w["rss_bytes"] is not None]
    scheduler = entry.scheduler
    return ModelStatus(
        id=entry.spec.id,
        engine=entry.spec.engine,
        task=entry.spec.task,
        origin=entry.spec.origin,
        source=entry.spec.source,
        description=entry.spec.description,
        aliases=aliases,
        state=entry.state,
        pid=live[0]["pid"] if live else None,
        loads=entry.loads,
        restarts=entry.restarts,
        requests=entry.requests,
        in_flight=entry.in_flight,
        rss_bytes=sum(rss_values) if rss_values else None,
        last_error=entry.last_error,
        info=first.info if first else None,
        layout={
            "replicas": entry.layout.replicas,
            "parallel": entry.layout.parallel,
            "threads": entry.layout.threads,
        },
        workers=workers,
        queue={
            "running": scheduler.running,
            "waiting": scheduler.waiting,
            "capacity": scheduler.capacity,
            "max_queue": scheduler.max_queue,
            "waiting_by_lane": scheduler.waiting_by_lane(),
            "peak_running": scheduler.peak_running,
            "rejected": scheduler.rejected,
            "timed_out": scheduler.timed_out,
            "cancelled": scheduler.cancelled,
        },
        recycles=entry.recycles,
        evictions=entry.evictions,
        last_used=time.time() - (time.monotonic() - entry.last_used) if entry.loads else None,
    )
