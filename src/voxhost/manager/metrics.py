"""Prometheus metrics: what the server is doing, for `/metrics`.

Events (requests, queue waits, inferences, model loads) are observed into counters and histograms as
they happen. Everything that is state (queue depth, in-flight requests, worker memory, load and restart
counts) is read from the model manager at scrape time, so there is one source of truth and nothing to
keep in sync. Each server has its own registry: several servers in one process never mix their figures.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from voxhost.manager.scheduler import Lane
from voxhost.manager.status import ModelStatus

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
LATENCY_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
LOAD_BUCKETS = (0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)


class OpenStreams(Protocol):
    @property
    def open_count(self) -> int: ...


class ManagedModels(Protocol):
    """What a scrape reads of the model manager (its state, at that moment)."""

    @property
    def wake(self) -> OpenStreams: ...

    def status(self, name: str | None = None) -> list[ModelStatus]: ...

    def memory(self, statuses: list[ModelStatus] | None = None) -> dict[str, Any]: ...


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "voxhost_requests", "Requests answered, by protocol, route, model and status (HTTP status; "
            "Wyoming: ok or the error code).",
            ["protocol", "route", "model", "status"], registry=r,
        )  # fmt: skip
        self.request_seconds = Histogram(
            "voxhost_request_duration_seconds", "Time from request to the end of its response.",
            ["protocol", "route", "model"], buckets=LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.queue_seconds = Histogram(
            "voxhost_queue_wait_seconds", "Time requests waited for an inference slot, by lane.",
            ["model", "lane"], buckets=LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.inference_seconds = Histogram(
            "voxhost_inference_seconds", "Time an inference took (including a load it waited for).",
            ["model"], buckets=LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.load_seconds = Histogram(
            "voxhost_model_load_seconds", "Time a worker took to load its model.",
            ["model"], buckets=LOAD_BUCKETS, registry=r,
        )  # fmt: skip
        self.load_failures = Counter(
            "voxhost_model_load_failures", "Model loads that failed.", ["model"], registry=r
        )
        self.wake_detections = Counter(
            "voxhost_wake_detections", "Wake words heard, by model and word.", ["model", "word"], registry=r
        )

    def bind(self, manager: ManagedModels) -> None:
        """Read the manager's state at every scrape."""
        self.registry.register(_ManagerCollector(manager))

    # --- events ----------------------------------------------------------------------------------
    def request(self, protocol: str, route: str, model: str, status: int | str, seconds: float) -> None:
        """One answered request of any front-end: `protocol` is http, websocket or wyoming."""
        self.requests.labels(protocol, route, model, str(status)).inc()
        self.request_seconds.labels(protocol, route, model).observe(seconds)

    def queued(self, model: str, lane: Lane, seconds: float) -> None:
        self.queue_seconds.labels(model, lane.name.lower()).observe(seconds)

    def inferred(self, model: str, seconds: float) -> None:
        self.inference_seconds.labels(model).observe(seconds)

    def loaded(self, model: str, seconds: float) -> None:
        self.load_seconds.labels(model).observe(seconds)

    def load_failed(self, model: str) -> None:
        self.load_failures.labels(model).inc()

    def wake_detected(self, model: str, word: str) -> None:
        self.wake_detections.labels(model, word).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _ManagerCollector(Collector):
    def __init__(self, manager: ManagedModels) -> None:
        self.manager = manager

    def collect(self) -> Iterator[Metric]:
        def gauge(name: str, doc: str, labels: list[str]) -> GaugeMetricFamily:
            return GaugeMetricFamily(name, doc, labels=labels)

        def counter(name: str, doc: str, labels: list[str]) -> CounterMetricFamily:
            return CounterMetricFamily(name, doc, labels=labels)

        loaded = gauge("voxhost_model_loaded", "1 while the model has a live worker.", ["model", "task"])
        waiting = gauge("voxhost_queue_depth", "Requests waiting for a slot, by lane.", ["model", "lane"])
        running = gauge("voxhost_in_flight", "Requests running on the model's workers.", ["model"])
        slots = gauge("voxhost_slots", "Inference slots (replicas x parallel).", ["model"])
        rss = gauge(
            "voxhost_worker_rss_bytes", "Resident memory of each worker process.", ["model", "replica"]
        )
        loads = counter("voxhost_model_loads", "Worker processes that loaded the model.", ["model"])
        restarts = counter("voxhost_worker_restarts", "Workers replaced after they died.", ["model"])
        recycles = counter(
            "voxhost_worker_recycles", "Workers replaced for growing past the RSS cap.", ["model"]
        )
        evictions = counter("voxhost_model_evictions", "Unloads to keep within the memory budget.", ["model"])
        served = counter("voxhost_model_requests", "Inferences completed by the model.", ["model"])
        refused = counter(
            "voxhost_queue_refusals", "Requests the queue refused (full), timed out or lost to a disconnect.",
            ["model", "reason"],
        )  # fmt: skip
        statuses = self.manager.status()
        for status in statuses:
            model = status.id
            queue: dict[str, Any] = status.queue
            loaded.add_metric([model, status.task], 1.0 if status.state == "ready" else 0.0)
            for lane, count in queue["waiting_by_lane"].items():
                waiting.add_metric([model, lane], count)
            running.add_metric([model], status.in_flight)
            slots.add_metric([model], queue["capacity"])
            for worker in status.workers:
                if worker["rss_bytes"] is not None:
                    rss.add_metric([model, str(worker["replica"])], worker["rss_bytes"])
            loads.add_metric([model], status.loads)
            restarts.add_metric([model], status.restarts)
            recycles.add_metric([model], status.recycles)
            evictions.add_metric([model], status.evictions)
            served.add_metric([model], status.requests)
            for reason, key in (("full", "rejected"), ("timeout", "timed_out"), ("disconnect", "cancelled")):
                refused.add_metric([model, reason], queue[key])
        memory = self.manager.memory(statuses)
        total = gauge("voxhost_workers_rss_bytes", "Resident memory of all workers together.", [])
        total.add_metric([], memory["workers_rss_bytes"])
        budget = gauge("voxhost_memory_budget_bytes", "The workers' memory budget (0: none).", [])
        budget.add_metric([], memory["budget_bytes"] or 0)
        yield from (
            loaded,
            waiting,
            running,
            slots,
            rss,
            loads,
            restarts,
            recycles,
            evictions,
            served,
            refused,
        )
        streams = gauge("voxhost_wake_streams", "Wake word streams open now.", [])
        streams.add_metric([], self.manager.wake.open_count)
        yield from (total, budget, streams)
