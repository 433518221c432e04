"""Stopping: the first SIGTERM drains (new requests refused on every front-end, in-flight ones finish,
workers end), a second one stops at once; no process is left behind either way.

A request is held in flight deterministically by stopping its worker (SIGSTOP) until the test says.
Whether the server reaped its workers before exiting is seen deterministically by making this process
the reaper of orphans (Linux's child subreaper) meanwhile: a worker the server left unreaped, zombie or
still running, is then still there, as a child of ours, when the server's exit status is collected."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest
from wyoming.asr import Transcribe
from wyoming.client import AsyncClient

from conftest import (
    BackgroundRequest,
    ServerFactory,
    ServerProcess,
    Speech,
    assert_transcript,
    wait_for_status,
)


def _hold_a_request(server: ServerProcess, speech: Speech) -> tuple[int, BackgroundRequest]:
    request = BackgroundRequest(server, speech.encoded("wav"))
    status = wait_for_status(server, lambda s: s["in_flight"] == 1, "a request in flight")
    os.kill(status["pid"], signal.SIGSTOP)
    return status["pid"], request


def _wait_for_log(server: ServerProcess, text: str) -> None:
    for _ in range(200):
        if text in server.log():
            return
        time.sleep(0.05)
    raise AssertionError(f"{text!r} never appeared in the log:\n{server.log()[-2000:]}")


def _gone(pid: int, seconds: float = 15) -> bool:
    for _ in range(int(seconds * 10)):
        if not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
            return True
        time.sleep(0.1)
    return False


async def _connect(uri: str) -> None:
    async with AsyncClient.from_uri(uri) as late:
        await late.write_event(Transcribe(language="en").event())


PR_SET_CHILD_SUBREAPER = 36


class _Orphans:
    """While active, orphaned descendants of this process become its children (instead of init's, which
    may reap them at once and hide that their parent did not)."""

    def __init__(self) -> None:
        self.watched: set[int] = set()

    def watch(self, server: ServerProcess) -> tuple[list[int], list[int]]:
        """The server's worker processes, and every process under it: the workers and multiprocessing's
        resource tracker (which spawn starts with the first worker). All are noted for clean-up."""
        processes = psutil.Process(server.process.pid).children(recursive=True)
        self.watched |= {p.pid for p in processes}
        workers = []
        for process in processes:
            with contextlib.suppress(psutil.Error):
                if "spawn_main" in " ".join(process.cmdline()):
                    workers.append(process.pid)
        return workers, [p.pid for p in processes]

    def reap(self) -> None:
        """Kill and reap whatever of the watched processes became ours (bounded)."""
        mine = {p.pid for p in psutil.Process().children()} & self.watched
        for pid in mine:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while mine and time.monotonic() < deadline:
            for pid in list(mine):
                with contextlib.suppress(ChildProcessError):
                    if os.waitpid(pid, os.WNOHANG)[0] == 0:
                        continue
                mine.discard(pid)
            time.sleep(0.05)


@pytest.fixture
def orphans() -> Iterator[_Orphans]:
    if not sys.platform.startswith("linux"):
        pytest.skip("child subreapers are Linux's")
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        pytest.skip(f"prctl(PR_SET_CHILD_SUBREAPER) failed: {os.strerror(ctypes.get_errno())}")
    found = _Orphans()
    try:
        yield found
    finally:
        libc.prctl(PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)
        found.reap()


def _still_there(pids: list[int]) -> list[str]:
    """Those of `pids` that exist, with their state (a zombie counts: nobody has reaped it)."""
    left = []
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            process = psutil.Process(pid)
            left.append(f"{pid} ({process.status()}, parent {process.ppid()})")
    return left


@pytest.fixture
def draining_server(server_factory: ServerFactory) -> ServerProcess:
    return server_factory("--model", "tiny.en", "--preload", "--parallel", "1", "--shutdown-grace", "60")


def test_sigterm_refuses_new_requests_and_lets_the_one_in_flight_finish(
    draining_server: ServerProcess, speech: Speech
) -> None:
    server = draining_server
    pid, request = _hold_a_request(server, speech)
    server.process.send_signal(signal.SIGTERM)
    _wait_for_log(server, "stopping: new requests are refused")
    with pytest.raises(ConnectionRefusedError):  # nobody new gets in, on either protocol
        asyncio.run(_connect(server.wyoming_uri))
    try:  # uvicorn closes its listener within 0.1 s of the signal; until then: 503
        late = httpx.get(server.url + "/v1/models", timeout=5)
    except httpx.ConnectError:
        pass
    else:
        assert late.status_code == 503
        assert late.json()["error"]["code"] == "shutting_down"
    assert server.process.poll() is None  # waiting for the request in flight
    os.kill(pid, signal.SIGCONT)
    response = request.result()
    assert response.status_code == 200, response.text
    assert_transcript(response.json()["text"], speech.text)
    assert server.process.wait(60) in (0, -signal.SIGTERM)
    assert "Application shutdown complete" in server.log()
    assert _gone(pid), "the worker outlived the server"


def test_a_second_signal_stops_at_once(draining_server: ServerProcess, speech: Speech) -> None:
    server = draining_server
    pid, request = _hold_a_request(server, speech)  # would keep a graceful stop waiting for 60 s
    server.process.send_signal(signal.SIGTERM)
    _wait_for_log(server, "stopping: new requests are refused")
    assert server.process.poll() is None  # draining: waiting for the request in flight
    server.process.send_signal(signal.SIGTERM)
    assert server.process.wait(20) in (0, -signal.SIGTERM, 1)
    assert "second signal" in server.log()
    assert _gone(pid), "the stopped worker was left behind"
    request.thread.join(30)
    assert request.response is None or request.response.status_code >= 500  # it was cut off, not answered


def test_requests_that_reach_a_draining_server_get_503(cache_dir: object) -> None:
    from voxhost.api.http import create_app
    from voxhost.settings import Settings

    app = create_app(Settings(models=["tiny.en"], cache_dir=cache_dir, wyoming=False))

    async def main() -> None:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as client:
            assert (await client.get("/health/ready")).status_code == 200
            app.state.begin_drain()
            refused = await client.get("/v1/models")
            assert refused.status_code == 503
            assert refused.headers["retry-after"] == "5"
            assert refused.json()["error"]["code"] == "shutting_down"
            assert (await client.get("/health/live")).status_code == 200
            ready = await client.get("/health/ready")
            assert ready.status_code == 503
            assert ready.json()["reasons"] == ["shutting down"]

    asyncio.run(main())


@pytest.fixture
def two_workers(server_factory: ServerFactory) -> ServerProcess:
    return server_factory(
        "--model", "tiny.en", "--replicas", "2", "--preload", "--parallel", "1", "--shutdown-grace", "60"
    )  # fmt: skip


def test_sigterm_exits_only_once_every_worker_is_reaped(
    two_workers: ServerProcess, orphans: _Orphans
) -> None:
    server = two_workers
    workers, started = orphans.watch(server)
    assert len(workers) == 2, workers  # one per replica
    server.process.send_signal(signal.SIGTERM)
    assert server.process.wait(60) in (0, -signal.SIGTERM)
    assert not _still_there(started), f"outlived the server: {_still_there(started)} of {started}"
    assert "Application shutdown complete" in server.log()  # the drain path, not the forced one


def test_a_second_signal_exits_only_once_every_worker_is_reaped(
    two_workers: ServerProcess, speech: Speech, orphans: _Orphans
) -> None:
    server = two_workers
    workers, started = orphans.watch(server)
    assert len(workers) == 2, workers
    # a request held in flight keeps the drain waiting, so that the second signal cuts it short
    request = BackgroundRequest(server, speech.encoded("wav"))
    status = wait_for_status(
        server, lambda s: any(w["in_flight"] for w in s["workers"]), "a request in flight"
    )
    (busy,) = [w["pid"] for w in status["workers"] if w["in_flight"]]
    assert busy in workers
    os.kill(busy, signal.SIGSTOP)
    server.process.send_signal(signal.SIGTERM)
    _wait_for_log(server, "stopping: new requests are refused")
    assert server.process.poll() is None
    server.process.send_signal(signal.SIGTERM)
    assert server.process.wait(20) in (0, -signal.SIGTERM, 1)
    assert "second signal" in server.log()
    assert not _still_there(started), f"outlived the server: {_still_there(started)} of {started}"
    request.thread.join(30)


def test_a_server_that_decoded_leaves_no_semaphore_behind(
    draining_server: ServerProcess, speech: Speech, orphans: _Orphans
) -> None:
    """A worker ends with `os._exit`: whatever named semaphore it made is left to the server's resource
    tracker, which reports "leaked semaphore objects" as the server exits (faster-whisper's progress
    bar made one on every worker's first decode). After a decode and a stop, once every process of the
    server is gone (the tracker writes as it ends), the log holds no such report. (The control is the
    next test: such a semaphore is reported, in the words looked for.)"""
    server = draining_server
    _, started = orphans.watch(server)
    response = httpx.post(
        server.url + "/v1/audio/transcriptions",
        files={"file": ("speech.wav", speech.encoded("wav"), "audio/wav")},
        data={"model": "tiny.en"},
        timeout=60,
    )
    assert response.status_code == 200, response.text
    assert_transcript(response.json()["text"], speech.text)
    server.process.send_signal(signal.SIGTERM)
    assert server.process.wait(60) in (0, -signal.SIGTERM)
    assert all(_gone(pid) for pid in started), _still_there(started)
    assert "leaked semaphore" not in server.log(), server.log()[-2000:]


def test_a_semaphore_a_spawned_process_leaves_is_reported(tmp_path: Path) -> None:
    """The control of the test above: a spawned process that makes a multiprocessing lock and ends with
    `os._exit` leaves its semaphore to the resource tracker, which reports it as its parent exits."""
    script = tmp_path / "leaks_a_semaphore.py"
    script.write_text(LEAKS_A_SEMAPHORE)
    control = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)
    assert control.returncode == 0, control.stderr
    assert "leaked semaphore" in control.stderr


LEAKS_A_SEMAPHORE = """
import multiprocessing, os

def leave_one() -> None:
    lock = multiprocessing.RLock()  # (held: a lock collected before the exit is unlinked)
    os._exit(0 if lock else 1)

if __name__ == "__main__":
    multiprocessing.set_start_method("spawn")  # as the server's workers are started
    child = multiprocessing.Process(target=leave_one)
    child.start()
    child.join(30)
"""
