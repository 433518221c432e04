"""The model manager with real tiny.en workers: residency and lifecycle (faults: test_faults.py)."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import numpy as np
import psutil
import pytest

from conftest import Speech, assert_transcript
from voxhost.audio import decode_audio
from voxhost.errors import ModelNotFound
from voxhost.manager import ModelManager
from voxhost.manager.requests import TranscribeRequest
from voxhost.settings import Settings

T = TypeVar("T")


def run_with_manager(settings: Settings, body: Callable[[ModelManager], Awaitable[T]]) -> T:
    async def main() -> T:
        async with ModelManager(settings) as manager:
            return await asyncio.wait_for(body(manager), 240)

    return asyncio.run(main())


@pytest.fixture
def settings(cache_dir: Path) -> Settings:
    return Settings(models=["tiny.en"], cache_dir=cache_dir)


@pytest.fixture(scope="module")
def audio16k(speech: Speech) -> np.ndarray:
    return decode_audio(speech.encoded("wav"))


def _worker_pid(manager: ModelManager, model: str = "tiny.en") -> int:
    (status,) = manager.status(model)
    assert status.pid is not None
    return status.pid


def test_model_stays_resident_across_requests(
    settings: Settings, speech: Speech, audio16k: np.ndarray
) -> None:
    async def body(manager: ModelManager) -> None:
        first = await manager.transcribe(TranscribeRequest(audio16k))
        assert_transcript(first.text, speech.text)
        pid = _worker_pid(manager)
        for _ in range(10):
            again = await manager.transcribe(TranscribeRequest(audio16k, model="whisper-1"))
            assert again.text == first.text
        (status,) = manager.status("tiny.en")
        assert status.pid == pid
        assert status.loads == 1
        assert status.requests == 11
        stats = await manager.worker_stats("tiny.en")
        assert stats is not None
        assert stats["pid"] == pid
        assert stats["loads"] == 1  # the worker itself loaded the model once
        assert stats["requests"] == 11

    run_with_manager(settings, body)


def test_concurrent_first_requests_load_once(settings: Settings, audio16k: np.ndarray) -> None:
    async def body(manager: ModelManager) -> None:
        results = await asyncio.gather(
            *(manager.transcribe(TranscribeRequest(audio16k[: 16000 * 3])) for _ in range(4))
        )
        assert len({r.text for r in results}) == 1
        (status,) = manager.status("tiny.en")
        assert status.loads == 1
        assert status.requests == 4

    run_with_manager(settings, body)


def test_worker_memory_stays_flat(cache_dir: Path, audio16k: np.ndarray) -> None:
    # One inference slot: with several, each CTranslate2 worker thread keeps its own allocator cache and
    # RSS steps up and down by ~20 MB between calls, which hides what this test looks for (a leak per
    # request; a server reloading per call grows +10 MB a call). Workers' code is the same either way.
    settings = Settings(models=["tiny.en"], cache_dir=cache_dir, parallel=1)
    clip = audio16k[: 16000 * 2]

    async def body(manager: ModelManager) -> list[int]:
        for _ in range(8):  # warm up allocator pools (they can still step up after a few calls)
            await manager.transcribe(TranscribeRequest(clip))
        process = psutil.Process(_worker_pid(manager))
        samples = []
        for _ in range(20):
            await manager.transcribe(TranscribeRequest(clip))
            samples.append(process.memory_info().rss)
        return samples

    samples = run_with_manager(settings, body)
    # The bound is the worker's own size over 20: a server that reloaded the model per call would grow
    # by the model again and again (about a third of the worker a call for tiny.en), any CPU.
    bound = min(samples) / 20
    growth = floor_growth(samples)
    assert growth < bound, f"worker RSS grew {growth / 2**20:.1f} MB over 20 calls: {samples}"
    # the controls: a leak of an eighth of the bound every call, or of 1.5 bounds every fifth call, is
    # caught; one step up for good is not a leak
    size = min(samples)
    assert floor_growth([size + call * bound / 8 for call in range(20)]) >= bound
    assert floor_growth([size + (call // 5) * bound * 1.5 for call in range(20)]) >= bound
    assert floor_growth([size] * 3 + [size + 3 * bound] * 17) == 0


def floor_growth(samples: list[int] | list[float]) -> float:
    """How far a worker's RSS rose over the calls, leaving out one step: malloc's pools step RSS up and
    down by ~20 MB from call to call (a run of high readings is common) and can step up once, for good,
    at any call; a leak raises the floor again and again. The lowest readings of the first and the
    second half are compared, less the largest rise from one call to the next."""
    half = len(samples) // 2
    rises = [b - a for a, b in itertools.pairwise(samples)]
    return min(samples[half:]) - min(samples[:half]) - max(0, *rises)


def test_preload_ttl_and_explicit_unload(cache_dir: Path, audio16k: np.ndarray) -> None:
    settings = Settings(models=["tiny.en"], cache_dir=cache_dir, preload=True, ttl=0.5)

    async def body(manager: ModelManager) -> None:
        (status,) = manager.status("tiny.en")
        assert status.state == "ready"  # preloaded before any request
        pid = _worker_pid(manager)
        for _ in range(100):  # idle past the TTL: the worker process ends
            await asyncio.sleep(0.1)
            if manager.status("tiny.en")[0].state == "unloaded":
                break
        assert manager.status("tiny.en")[0].state == "unloaded"
        # the worker process ends (its memory is freed) right after the model is marked unloaded
        for _ in range(100):
            if not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                break
            await asyncio.sleep(0.1)
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
        await manager.transcribe(TranscribeRequest(audio16k[:16000]))  # lazy reload
        (status,) = manager.status("tiny.en")
        assert status.state == "ready"
        assert status.loads == 2
        assert await manager.unload("tiny.en") is True
        assert await manager.unload("tiny.en") is False
        assert manager.status("tiny.en")[0].state == "unloaded"

    run_with_manager(settings, body)


def test_unknown_model_is_not_found(settings: Settings, audio16k: np.ndarray) -> None:
    async def body(manager: ModelManager) -> None:
        with pytest.raises(ModelNotFound):
            await manager.transcribe(TranscribeRequest(audio16k, model="/etc/passwd"))
        with pytest.raises(ModelNotFound):
            await manager.transcribe(TranscribeRequest(audio16k, model="large-v3"))

    run_with_manager(settings, body)


def test_close_leaves_no_worker_processes(settings: Settings, audio16k: np.ndarray) -> None:
    async def body(manager: ModelManager) -> int:
        await manager.transcribe(TranscribeRequest(audio16k[:16000]))
        return _worker_pid(manager)

    pid = run_with_manager(settings, body)
    assert not psutil.pid_exists(pid)
    # and no other worker either (a spawned worker runs multiprocessing's spawn_main)
    workers = [c for c in psutil.Process().children(recursive=True) if "spawn_main" in " ".join(c.cmdline())]
    assert workers == []
