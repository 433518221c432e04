"""What the manager knows of each configured model while it runs: its replicas (worker processes) and
their load, and the counters behind /status and the metrics."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Literal

from voxhost.manager.layout import Layout
from voxhost.manager.process import Worker
from voxhost.manager.registry import ModelSpec
from voxhost.manager.scheduler import Scheduler

State = Literal["unloaded", "loading", "ready", "failed", "crashed"]


@dataclass(eq=False)
class Replica:
    """One worker process of a model and what runs on it."""

    index: int
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    worker: Worker | None = None
    loading: bool = False
    in_flight: int = 0
    retiring: bool = False  # over its RSS cap: takes no new requests; replaced once idle
    load_rss: int | None = None

    @property
    def alive(self) -> bool:
        return self.worker is not None and self.worker.alive


@dataclass(eq=False)
class Entry:
    spec: ModelSpec
    layout: Layout
    scheduler: Scheduler
    replicas: list[Replica]
    idle: asyncio.Event = field(default_factory=asyncio.Event)  # set while nothing is in flight
    changed: asyncio.Event = field(default_factory=asyncio.Event)  # a replica freed up or changed
    loads: int = 0
    restarts: int = 0
    recycles: int = 0
    evictions: int = 0
    requests: int = 0
    in_flight: int = 0
    last_used: float = field(default_factory=time.monotonic)
    last_error: str | None = None
    rss_estimate: int | None = None  # the largest RSS seen of one of its workers
    cap_warned: bool = False

    @property
    def loaded(self) -> bool:
        return any(r.worker is not None for r in self.replicas)

    @property
    def state(self) -> State:
        if any(r.loading for r in self.replicas):
            return "loading"
        if any(r.alive for r in self.replicas):
            return "ready"
        if any(r.worker is not None for r in self.replicas):
            return "crashed"
        return "failed" if self.last_error else "unloaded"


def process_rss(pid: int | None) -> int | None:
    if pid is None:
        return None
    import psutil

    try:
        return int(psutil.Process(pid).memory_info().rss)
    except psutil.Error:
        return None


def process_peak(pid: int | None) -> int | None:
    """The most memory the process has held so far: its resident high-water mark (VmHWM, Linux), which
    sees a model load's peak however briefly it lasts (a sample of the RSS misses most of them: loading
    base holds its file beside its weights for a moment, 335 MiB against 184 MiB loaded). The RSS
    where the system does not say."""
    if pid is None:
        return None
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return process_rss(pid)


def is_idle(entry: Entry) -> bool:
    """Nothing of the model is running or waiting: it may be unloaded (TTL) or evicted (memory)."""
    return entry.in_flight == 0 and entry.scheduler.waiting == 0 and entry.scheduler.running == 0
