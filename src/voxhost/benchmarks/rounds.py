"""How the benchmarks time their contenders: interleaved rounds of strictly sequential calls, and the
probes of the profile (the worker without HTTP, the worker pipe without a model)."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import time
from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
from rich.console import Console
from rich.progress import Progress

from voxhost.benchmarks.common import BenchmarkError, note
from voxhost.errors import VoxhostError

if TYPE_CHECKING:
    from voxhost.manager import ModelManager
    from voxhost.settings import Settings


class PipeProbe:
    """The server <-> worker messages of one request, through a real multiprocessing pipe to a thread.

    Measures what crossing the worker boundary costs in itself (pickling the audio and the result,
    copying them through the pipe) without any model: the same shapes `WorkerProcess.call` sends.
    """

    def __init__(self, limit: int) -> None:
        import multiprocessing
        import threading

        self._here, self._there = multiprocessing.Pipe(duplex=True)
        self._thread = threading.Thread(target=self._echo, args=(limit,), name="pipe-probe", daemon=True)
        self._result: Any = None
        self._thread.start()

    def _echo(self, limit: int) -> None:
        for _ in range(limit):  # bounded; a None message ends it early
            try:
                message = self._there.recv()
            except (EOFError, OSError):
                return
            if message is None:
                return
            self._there.send(("result", message[1], self._result))

    def round_trip(self, kwargs: dict[str, Any], result: Any, method: str = "transcribe") -> None:
        """One request message with `kwargs` there, one message with `result` back."""
        self._result = result
        self._here.send(("call", 1, method, kwargs))
        self._here.recv()

    def close(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            self._here.send(None)
        self._thread.join(5)
        self._here.close()
        self._there.close()


def profile_manager(
    stack: contextlib.ExitStack, settings: Settings, models: Sequence[str] = ()
) -> tuple[asyncio.AbstractEventLoop, ModelManager]:
    """A ModelManager on its own event loop, for the no-HTTP profile, with `models` loaded (in order);
    closed when `stack` unwinds."""
    from voxhost.manager import ModelManager

    loop = asyncio.new_event_loop()
    manager = ModelManager(settings)

    def close() -> None:
        with contextlib.suppress(Exception):
            loop.run_until_complete(manager.close())
        loop.close()

    stack.callback(close)
    for model in models:
        try:
            loop.run_until_complete(manager.load(model))
        except VoxhostError as exc:
            raise BenchmarkError(f"the profile's worker could not load {model}: {exc.message}") from None
    return loop, manager


def evenly_spread(count: int, rounds: int) -> set[int]:
    """`count` round indices spread evenly over `rounds` (for the slow reload-per-call contender)."""
    if count <= 0:
        return set()
    return {int(x) for x in np.linspace(0, rounds - 1, min(count, rounds)).round()}


def settler(seconds: float) -> Callable[[], None]:
    """What runs between two calls: a garbage collection and a short pause, so calls never overlap."""

    def settle() -> None:
        gc.collect()
        time.sleep(seconds)

    return settle


def timed(call: Callable[[], None]) -> float:
    """The seconds `call()` takes."""
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


K = TypeVar("K", bound=Hashable)
R = TypeVar("R")


def interleaved(
    contenders: Mapping[K, Callable[[], R]],
    calls: int,
    settle: Callable[[], None],
    progress: Progress,
    console: Console | None,
    *,
    skip: Callable[[K, int], bool] | None = None,
    after_warmup: Callable[[], None] | None = None,
) -> list[dict[K, R]]:
    """One untimed warm-up call per contender, then `calls` rounds of one call each, strictly one after
    another with `settle()` between; the contender that goes first rotates every round, so that machine
    noise hits all of them alike. Returns what each call returned, one dict per round. `skip(name,
    round)`: leave that contender out of that round."""
    bar = progress.add_task("warm-up", total=len(contenders))
    for call in contenders.values():  # one untimed call each: first-call costs are not overhead
        call()
        settle()
        progress.advance(bar)
    if after_warmup is not None:
        after_warmup()
    note(console, f"{calls} timed rounds of {len(contenders)} contenders...")
    progress.update(bar, description="timed rounds", total=calls, completed=0)
    names = list(contenders)
    rounds: list[dict[K, R]] = []
    for index in range(calls):
        shift = index % len(names)
        results: dict[K, R] = {}
        for name in names[shift:] + names[:shift]:  # rotate who goes first
            if skip is not None and skip(name, index):
                continue
            results[name] = contenders[name]()
            settle()
        rounds.append(results)
        progress.advance(bar)
    progress.remove_task(bar)
    return rounds
