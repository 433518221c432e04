"""A bounded soak: 200 mixed requests (transcriptions, Piper and Kokoro speech, listings, probes, bad
input) from four clients at once against one server. Every request gets its answer, with the right
status and content; server and worker memory, file descriptors and threads stay flat.

VOXHOST_SOAK_REQUESTS sets the count (e.g. 20000 for a long run by hand); the figures are printed
(`pytest -s tests/test_soak.py`) and go into the README.
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from conftest import ServerProcess, Speech, assert_transcript, start_server
from voxhost.audio import decode_audio

REQUESTS = int(os.environ.get("VOXHOST_SOAK_REQUESTS", "200"))
CLIENTS = 4
WARM_UP = 0.25  # the first quarter of the requests warms caches and pools; growth is measured after it
MiB = 2**20
# Limits on growth from the end of the warm-up to the end, as a share of each process's own size then
# (measured in the run, not a figure of one machine). A server that reloaded a model per request would
# grow by the model every call (hundreds of times this); allocator pools can step once by up to ~20 MB
# and then stay put, a tenth of a worker or of the server.
MAX_RSS_GROWTH = 0.25
MAX_FD_GROWTH = 8
MAX_THREAD_GROWTH = 4


@dataclass(frozen=True)
class Check:
    """One kind of request: how to send it and what its answer must be."""

    kind: str
    weight: int
    send: Callable[[httpx.Client], httpx.Response]
    verify: Callable[[httpx.Response], None]


@pytest.fixture(scope="module")
def soak_server(tmp_path_factory: pytest.TempPathFactory, cache_dir: Path) -> Iterator[ServerProcess]:
    server = start_server(
        tmp_path_factory.mktemp("soak"), cache_dir,
        "--model", "tiny.en", "--model", "en_US-joe-medium", "--model", "kokoro", "--preload",
    )  # fmt: skip
    yield server
    server.stop()


def checks(short_speech: Speech) -> list[Check]:
    wav = short_speech.encoded("wav")
    mp3 = short_speech.encoded("mp3")

    def ok_json(response: httpx.Response) -> None:
        assert response.status_code == 200, response.text
        response.json()

    def transcript(response: httpx.Response) -> None:
        assert response.status_code == 200, response.text
        assert_transcript(response.json()["text"], short_speech.text, max_errors=2)

    def speech_audio(response: httpx.Response) -> None:
        assert response.status_code == 200, response.text
        assert len(decode_audio(response.content)) > 16000  # over a second of speech

    def refused(status: int) -> Callable[[httpx.Response], None]:
        def verify(response: httpx.Response) -> None:
            assert response.status_code == status, response.text
            assert response.json()["error"]["message"]

        return verify

    def transcribe(audio: bytes, name: str) -> Callable[[httpx.Client], httpx.Response]:
        return lambda c: c.post(
            "/v1/audio/transcriptions", files={"file": (name, audio)}, data={"model": "tiny.en"}
        )

    def post(path: str, **kwargs: Any) -> Callable[[httpx.Client], httpx.Response]:
        return lambda c: c.post(path, **kwargs)

    def speak(model: str, fmt: str) -> Callable[[httpx.Client], httpx.Response]:
        body = {"model": model, "input": "Good morning to you all.", "response_format": fmt}
        return post("/v1/audio/speech", json=body)

    json_type = {"content-type": "application/json"}

    return [
        Check("transcribe wav", 12, transcribe(wav, "a.wav"), transcript),
        Check("transcribe mp3", 6, transcribe(mp3, "a.mp3"), transcript),
        Check("speak piper wav", 12, speak("en_US-joe-medium", "wav"), speech_audio),
        Check("speak piper mp3", 6, speak("tts-1", "mp3"), speech_audio),
        Check("speak kokoro", 4, speak("kokoro", "wav"), speech_audio),
        Check("models", 10, lambda c: c.get("/v1/models"), ok_json),
        Check("voices", 5, lambda c: c.get("/v1/audio/voices"), ok_json),
        Check("health", 10, lambda c: c.get("/health"), ok_json),
        Check("metrics", 5, lambda c: c.get("/metrics"), lambda r: r.raise_for_status()),
        Check("not audio", 8, transcribe(b"this is not audio" * 50, "a.wav"), refused(400)),
        Check("unknown model", 6, post("/v1/audio/speech", json={"model": "no", "input": "a"}), refused(404)),
        Check("empty text", 6, post("/v1/audio/speech", json={"input": ""}), refused(400)),
        Check("bad json", 5, post("/v1/audio/speech", content=b"{", headers=json_type), refused(400)),
        Check(
            "bad format", 5,
            post("/v1/audio/transcriptions", files={"file": ("a.wav", wav)}, data={"response_format": "doc"}),
            refused(400),
        ),
    ]  # fmt: skip


@dataclass
class Sample:
    done: int
    server_rss: int
    worker_rss: dict[str, int]
    fds: int
    threads: int


def sample(server: ServerProcess, done: int) -> Sample:
    process = psutil.Process(server.process.pid)
    models = httpx.get(server.url + "/health", timeout=30).json()["models"]
    workers = {name: psutil.Process(m["pid"]).memory_info().rss for name, m in models.items() if m["pid"]}
    return Sample(done, process.memory_info().rss, workers, process.num_fds(), process.num_threads())


@pytest.mark.timeout(max(300, REQUESTS // 2))
def test_soak(soak_server: ServerProcess, short_speech: Speech) -> None:
    kinds = checks(short_speech)
    rng = random.Random(8)
    plan = rng.choices(kinds, weights=[k.weight for k in kinds], k=REQUESTS)
    local = threading.local()
    clients: list[httpx.Client] = []
    failures: list[str] = []
    sent: Counter[str] = Counter()
    answered: Counter[str] = Counter()

    def run(check: Check) -> None:
        if not hasattr(local, "client"):
            local.client = httpx.Client(base_url=soak_server.url, timeout=120)
            clients.append(local.client)
        sent[check.kind] += 1
        try:
            response = check.send(local.client)
            check.verify(response)
            answered[check.kind] += 1
        except Exception as exc:
            failures.append(f"{check.kind}: {type(exc).__name__}: {exc}")

    warm = int(REQUESTS * WARM_UP)
    steps = [warm, *range(warm + (REQUESTS - warm) // 3, REQUESTS, (REQUESTS - warm) // 3), REQUESTS]
    samples = []
    started = time.monotonic()
    try:
        with ThreadPoolExecutor(CLIENTS) as pool:
            done = 0
            for step in sorted(set(steps)):
                list(pool.map(run, plan[done:step], timeout=900))
                done = step
                samples.append(sample(soak_server, done))
    finally:
        for client in clients:
            client.close()
    seconds = time.monotonic() - started

    assert not failures, f"{len(failures)} of {REQUESTS} requests failed, e.g. {failures[:5]}"
    assert sum(answered.values()) == REQUESTS == sum(sent.values())
    assert "Traceback" not in soak_server.log()

    first, last = samples[0], samples[-1]
    rows = [
        f"soak: {REQUESTS} requests ({', '.join(f'{k} {n}' for k, n in sorted(sent.items()))}) "
        f"from {CLIENTS} clients in {seconds:.0f} s; all answered as expected",
        f"growth after the first {warm} requests: server RSS "
        f"{(last.server_rss - first.server_rss) / MiB:+.1f} MB ({first.server_rss / MiB:.0f} MB), "
        f"fds {last.fds - first.fds:+d} ({first.fds}), "
        f"threads {last.threads - first.threads:+d} ({first.threads})",
        *(
            f"  worker {name}: RSS {(last.worker_rss[name] - rss) / MiB:+.1f} MB ({rss / MiB:.0f} MB); "
            f"samples {[round(s.worker_rss[name] / MiB, 1) for s in samples]}"
            for name, rss in first.worker_rss.items()
        ),
        f"  server RSS samples {[round(s.server_rss / MiB, 1) for s in samples]}",
    ]
    print("\n" + "\n".join(rows))

    assert first.worker_rss.keys() == last.worker_rss.keys()
    for name, rss in first.worker_rss.items():  # the same workers throughout: none crashed or restarted
        growth = last.worker_rss[name] - rss
        assert growth < MAX_RSS_GROWTH * rss, f"worker {name} grew {growth / MiB:.1f} MB: {rows}"
    assert last.server_rss - first.server_rss < MAX_RSS_GROWTH * first.server_rss, rows
    assert last.fds - first.fds <= MAX_FD_GROWTH, rows
    assert last.threads - first.threads <= MAX_THREAD_GROWTH, rows
    health = httpx.get(soak_server.url + "/health", timeout=30).json()["models"]
    assert all(m["restarts"] == 0 for m in health.values()), health
