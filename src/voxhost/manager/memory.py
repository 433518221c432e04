"""The memory rules: the budget for all workers (`max_memory_mb`) and the cap for one (`worker_max_rss_mb`).

Decisions only, on what the manager knows of its models (`state.Entry`) and what the kernel says of
their processes (RSS): whether one more worker fits, which idle model to evict for it, whether a
loading worker has just outgrown the budget, whether a worker that grew past its cap is to be
replaced. The manager acts on them (stops workers, kills a load, recycles).
"""

from __future__ import annotations

import logging

from voxhost.errors import MemoryBudgetExceeded
from voxhost.manager.process import Worker
from voxhost.manager.state import Entry, Replica, is_idle, process_peak, process_rss
from voxhost.settings import Settings

log = logging.getLogger("voxhost.manager")
MiB = 2**20
# What a worker process costs besides its model's weights: Python, numpy, the inference runtime.
PROCESS_BASE_BYTES = 150 * MiB


class MemoryBudget:
    def __init__(self, settings: Settings, entries: dict[str, Entry]) -> None:
        self.settings = settings
        self._entries = entries

    @property
    def budget(self) -> int:
        """Bytes all workers may use together (0: no budget)."""
        return int(self.settings.max_memory_mb * MiB)

    @property
    def cap(self) -> int:
        """Bytes one worker may grow to before it is replaced between requests (0: never)."""
        return int(self.settings.worker_max_rss_mb * MiB)

    def workers_rss(self) -> int:
        """The summed RSS of every live worker process."""
        return sum(
            process_rss(r.worker.pid) or 0
            for e in self._entries.values()
            for r in e.replicas
            if r.alive and r.worker
        )

    def estimate(self, entry: Entry) -> int:
        """Bytes one more worker of the model is expected to take: the most one of its workers was seen
        to use, else its files' size plus what a worker process costs."""
        if entry.rss_estimate:
            return entry.rss_estimate
        return entry.spec.disk_bytes(self.settings.cache_dir) + PROCESS_BASE_BYTES

    def eviction(self, entry: Entry) -> Entry | None:
        """None when one more worker of `entry` fits the budget; else the least recently used idle
        model to stop first. Raises MemoryBudgetExceeded when nothing idle is left to stop."""
        budget = self.budget
        need = self.estimate(entry)
        used = self.workers_rss()
        if used + need <= budget:
            return None
        victims = [e for e in self._entries.values() if e is not entry and e.loaded and is_idle(e)]
        if not victims:
            raise MemoryBudgetExceeded(
                f"loading {entry.spec.id!r} needs about {need / MiB:.0f} MiB; workers use "
                f"{used / MiB:.0f} of the {budget / MiB:.0f} MiB budget and no idle model can be "
                "unloaded to make room"
            )
        victim = min(victims, key=lambda e: e.last_used)
        log.info(
            "memory budget: evicting idle %s to load %s (%.0f + %.0f MiB > %.0f MiB)",
            victim.spec.id,
            entry.spec.id,
            used / MiB,
            need / MiB,
            budget / MiB,
        )
        return victim

    def over_budget(self, entry: Entry, worker: Worker) -> MemoryBudgetExceeded | None:
        """The error for a loading worker that took the workers past the budget, else None: by the
        most it has held so far (`process_peak`: a load's brief peak counts, every time). Notes it, so
        that the next load makes room for that peak, or is refused up front instead of loading again."""
        rss = process_peak(worker.pid)
        if rss is None:
            return None
        entry.rss_estimate = max(entry.rss_estimate or 0, rss)
        budget = self.budget
        others = self.workers_rss()  # ready workers; the loading one is not among them yet
        if others + rss <= budget:
            return None
        log.error(
            "loading %s took %.0f MiB; with %.0f MiB in other workers that is past the %.0f MiB budget; "
            "stopping it",
            entry.spec.id,
            rss / MiB,
            others / MiB,
            budget / MiB,
        )
        return MemoryBudgetExceeded(
            f"loading {entry.spec.id!r} ran out of memory: it grew to {rss / MiB:.0f} MiB, and with "
            f"{others / MiB:.0f} MiB in other workers that is past the {budget / MiB:.0f} MiB budget "
            "(--max-memory-mb); it was stopped"
        )

    def should_retire(self, entry: Entry, replica: Replica) -> bool:
        """Between requests: note the worker's memory; true when it grew past the cap and is to be
        replaced (never a worker that was over the cap when fresh: that would replace it forever)."""
        worker = replica.worker
        if worker is None or not worker.alive:
            return False
        rss = process_rss(worker.pid)
        if rss is None:
            return False
        entry.rss_estimate = max(entry.rss_estimate or 0, rss)
        cap = self.cap
        if cap <= 0 or rss <= cap or replica.retiring:
            return False
        if replica.load_rss is not None and replica.load_rss >= cap:
            if not entry.cap_warned:
                entry.cap_warned = True
                log.warning(
                    "%s: a fresh worker already uses %.0f MiB, over worker_max_rss_mb (%.0f); not recycling",
                    entry.spec.id,
                    replica.load_rss / MiB,
                    cap / MiB,
                )
            return False
        log.info(
            "%s: worker pid %s uses %.0f MiB (cap %.0f); replacing it between requests",
            entry.spec.id,
            worker.pid,
            rss / MiB,
            cap / MiB,
        )
        return True
