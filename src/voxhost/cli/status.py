"""`voxhost status`: a running server's models, workers, memory and queues, as tables or JSON."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table

MiB = 2**20


def _mib(value: int | None) -> str:
    return "-" if not value else f"{value / MiB:.0f} MiB"


def fetch_status(url: str) -> dict[str, Any]:
    response = httpx.get(url.rstrip("/") + "/status", timeout=10)
    response.raise_for_status()
    body: dict[str, Any] = response.json()
    return body


def render(status: dict[str, Any]) -> Group:
    memory = status["memory"]
    ready = "ready" if status["ready"] else "NOT READY: " + "; ".join(status["not_ready"])
    header = (
        f"voxhost {status['version']} - up {status['uptime_seconds']:.0f}s - {ready} - workers "
        f"{_mib(memory['workers_rss_bytes'])}"
        + (f" of {_mib(memory['budget_bytes'])} budget" if memory["budget_bytes"] else "")
    )
    models = Table(title=header, title_justify="left")
    for column in ("model", "task", "state", "layout", "running", "waiting", "served", "loads", "restarts",
                   "recycled", "evicted", "memory"):  # fmt: skip
        models.add_column(
            column, justify="left" if column in ("model", "task", "state", "layout") else "right"
        )
    workers = Table(title="workers", title_justify="left")
    for column in ("model", "replica", "pid", "state", "in flight", "memory"):
        workers.add_column(column)
    for model in status["models"]:
        layout = model["layout"]
        queue = model["queue"]
        lanes = ", ".join(f"{lane} {n}" for lane, n in queue["waiting_by_lane"].items() if n)
        models.add_row(
            model["id"],
            model["task"],
            model["state"],
            f"{layout['replicas']}x{layout['parallel']} ({layout['threads']} thr)",
            f"{queue['running']}/{queue['capacity']}",
            f"{queue['waiting']}/{queue['max_queue']}" + (f" ({lanes})" if lanes else ""),
            str(model["requests"]),
            str(model["loads"]),
            str(model["restarts"]),
            str(model["recycles"]),
            str(model["evictions"]),
            _mib(model["rss_bytes"]),
        )
        for worker in model["workers"]:
            if worker["state"] != "unloaded":
                workers.add_row(
                    model["id"],
                    str(worker["replica"]),
                    str(worker["pid"] or "-"),
                    worker["state"] + (" (retiring)" if worker["retiring"] else ""),
                    str(worker["in_flight"]),
                    _mib(worker["rss_bytes"]),
                )
    return Group(models, workers)


def run_status(url: str, *, as_json: bool = False, watch: float = 0) -> int:
    console = Console()
    try:
        status = fetch_status(url)
    except httpx.HTTPError as exc:
        console.print(f"[red]cannot reach a voxhost server at {url}: {exc}[/red]")
        return 1
    if as_json:
        print(json.dumps(status, indent=2))
        return 0
    if not watch:
        console.print(render(status))
        return 0
    with Live(render(status), console=console, refresh_per_second=4) as live:
        try:
            while True:
                time.sleep(watch)
                live.update(render(fetch_status(url)))
        except (KeyboardInterrupt, httpx.HTTPError):
            return 0
