"""`voxhost bench --task asr` (`run_asr_benchmark`): what serving Whisper costs, next to calling
faster-whisper directly.

One run, one clip of real speech (synthesized with Piper, or a file the user gives), and these contenders
called in turn, round-robin, so that machine noise hits all of them alike:

* in-process: faster-whisper itself, `WhisperModel` loaded once in this process and `transcribe()` called
  on decoded 16 kHz audio, as a user's own script would (`baselines.whisper_text`): the reference;
* voxhost's engine in-process: `FasterWhisperEngine`, loaded once in this process, on the same audio
  (the engine wrapper's own work, without the server);
* server: `POST /v1/audio/transcriptions` (the clip as WAV) to a real `voxhost serve` subprocess whose
  worker holds the model resident;
* reload-per-call: a fresh `WhisperModel` plus the transcription, every call (what a naive script does);
* with `profile`, the parts of the server's overhead: the same worker reached without HTTP (a
  `ModelManager` in this process), the audio decode alone, and the HTTP upload alone (a request the
  server rejects right after reading the form).

Calls are strictly sequential, with a short pause between them, so that no two models ever compute at the
same time; every contender uses the same thread count. Then `rss_calls` more requests go to the server
and the worker's resident memory is sampled (every tenth of them): its growth is the least-squares slope
over all the samples. Nothing here asserts on absolute times.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import numpy as np
from rich.console import Console
from rich.table import Table

from voxhost.audio import decode_audio
from voxhost.benchmarks import baselines
from voxhost.benchmarks.common import (
    HTTP_PROBE,
    IN_PROCESS,
    MB,
    MISSING_MODEL,
    PIPE,
    TARGET_SERVER_RATIO,
    WORKER,
    BenchmarkError,
    Clip,
    RunOptions,
    cell,
    load_clip,
    model_spec,
    note,
    progress_bar,
    ratio_of,
    report_head,
    slope,
    stage,
    summarize,
    synthesize_clip,
    verdict,
)
from voxhost.benchmarks.rounds import PipeProbe, evenly_spread, interleaved, profile_manager, settler, timed
from voxhost.engines.base import ModelInfo
from voxhost.harness import serve_with_client
from voxhost.manager.requests import TranscribeRequest

if TYPE_CHECKING:
    from voxhost.manager import ModelManager

TARGET_RSS_GROWTH_MB = 5.0  # reported, never asserted

SERVER = "server_http"
ENGINE = "voxhost_engine"
RELOAD = "reload_per_call"
DECODE = "decode_only"
LABELS = {
    IN_PROCESS: "in-process (faster-whisper)",
    ENGINE: "voxhost engine, in-process",
    SERVER: "server (HTTP)",
    RELOAD: "reload per call",
    WORKER: "worker, no HTTP *",
    DECODE: "decode only *",
    PIPE: "pipe transfer only *",
    HTTP_PROBE: "HTTP upload only *",
}


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


def _paired(rounds: list[dict[str, float]], name: str) -> list[tuple[float, float]]:
    """(contender, in-process) times from the rounds that ran both."""
    return [(r[name], r[IN_PROCESS]) for r in rounds if name in r and IN_PROCESS in r]


# --- the run -----------------------------------------------------------------------------------------
def run_asr_benchmark(
    calls: int = 20,
    rss_calls: int = 200,
    model: str = "tiny.en",
    clip_seconds: float = 5.0,
    *,
    wav: Path | None = None,
    reload_calls: int | None = None,
    run: RunOptions = RunOptions(),
    console: Console | None = None,
) -> dict[str, Any]:
    """Measure the contenders described in the module docstring; return every figure as plain data.

    `calls` timed calls of each contender (`reload_calls`, default `calls // 2`, of reload-per-call),
    after one untimed warm-up call each; then `rss_calls` server requests between two worker RSS readings.
    `wav` replaces the Piper clip (and `clip_seconds`). `run.threads` applies to the in-process engine
    and the server's worker alike. `console`: where progress is shown (None: nowhere).
    """
    from voxhost.engines import ASREngine
    from voxhost.manager.layout import engine_config
    from voxhost.results import TranscribeOptions

    if not 1 <= calls <= 10_000:
        raise BenchmarkError("calls must be between 1 and 10000")
    if not 0 <= rss_calls <= 100_000:
        raise BenchmarkError("rss_calls must be between 0 and 100000")
    if not 0.5 <= clip_seconds <= 600:
        raise BenchmarkError("clip_seconds must be between 0.5 and 600")
    reload_calls = max(1, calls // 2) if reload_calls is None else max(0, min(reload_calls, calls))
    threads, profile, settle_seconds = run.thread_count, run.profile, run.settle_seconds
    settings = run.settings([model])
    spec = model_spec(model)
    if spec.task != "asr":
        raise BenchmarkError(f"{spec.id} is not a speech-to-text model")
    config = engine_config(settings)
    options = TranscribeOptions()

    def load_engine() -> ASREngine:
        engine = spec.load(config)
        assert isinstance(engine, ASREngine)
        return engine

    with stage(console, "preparing the clip..."):
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
        loading = stack.enter_context(contextlib.ExitStack())  # the spinner, until every model is loaded
        loading.enter_context(stage(console, "starting voxhost serve and loading the models..."))
        server, client = serve_with_client(stack, server_args, models=(spec.id,), timeout=run.startup_timeout)
        engine = load_engine()
        described = engine.describe()
        device, compute_type = described.device or "cpu", described.compute_type or "default"

        def load_library() -> Any:
            return baselines.whisper_model(spec, config, device, compute_type, threads)

        library = load_library()

        loop: asyncio.AbstractEventLoop | None = None
        manager: ModelManager | None = None
        if profile:
            loop, manager = profile_manager(stack, settings, [spec.id])
        loading.close()

        def in_process() -> None:
            texts[IN_PROCESS] = baselines.whisper_text(library, clip.audio, config.beam_size)

        def in_engine() -> None:
            texts[ENGINE] = engine.transcribe(clip.audio, options).text

        def over_http() -> None:
            response = client.post("/v1/audio/transcriptions", data=form, files=upload)
            if response.status_code != 200:
                raise BenchmarkError(f"the server answered {response.status_code}: {response.text[:500]}")
            texts[SERVER] = str(response.json()["text"])

        def reload() -> None:
            started = time.perf_counter()
            fresh = load_library()
            load_times.append(time.perf_counter() - started)
            texts[RELOAD] = baselines.whisper_text(fresh, clip.audio, config.beam_size)

        def worker_direct() -> None:
            assert loop is not None
            assert manager is not None
            texts[WORKER] = loop.run_until_complete(
                manager.transcribe(TranscribeRequest(clip.audio, options, spec.id))
            ).text

        def decode_only() -> None:
            decode_audio(clip.wav)

        pipe = PipeProbe(limit=calls + 10)
        stack.callback(pipe.close)
        sample_result = engine.transcribe(clip.audio, options)  # what the worker sends back

        def pipe_only() -> None:
            pipe.round_trip({"audio": clip.audio, "options": options}, sample_result)

        def http_probe() -> None:
            response = client.post("/v1/audio/transcriptions", data=probe_form, files=upload)
            if response.status_code != 404:
                raise BenchmarkError(f"the HTTP probe expected 404, got {response.status_code}")

        contenders: dict[str, Callable[[], None]] = {
            IN_PROCESS: in_process,
            ENGINE: in_engine,
            SERVER: over_http,
        }
        if reload_calls:
            contenders[RELOAD] = reload
        if profile:
            contenders.update(
                {WORKER: worker_direct, DECODE: decode_only, PIPE: pipe_only, HTTP_PROBE: http_probe}
            )
        reload_rounds = evenly_spread(reload_calls, calls)

        def timing(call: Callable[[], None]) -> Callable[[], float]:
            return lambda: timed(call)

        progress = progress_bar(console)
        with progress:
            rounds = interleaved(
                {name: timing(call) for name, call in contenders.items()}, calls, settler(settle_seconds),
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
            note(console, f"{rss_calls} server calls between the RSS readings...")
            bar = progress.add_task("RSS soak", total=rss_calls)
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
    described: ModelInfo,
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
    names = [IN_PROCESS, ENGINE, SERVER, RELOAD, WORKER, DECODE, PIPE, HTTP_PROBE]
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
        "server_vs_in_process": ratio_of(median(SERVER), base),
        "engine_vs_in_process": ratio_of(median(ENGINE), base),
        "server_vs_engine": ratio_of(median(SERVER), median(ENGINE)),
        "reload_vs_in_process": ratio_of(median(RELOAD), base),
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
        ratios["worker_direct_vs_in_process"] = ratio_of(median(WORKER), base)
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
    # the growth is the least-squares slope over every sample, not the difference of two of them (RSS
    # jumps between levels now and then: two end samples can land on either), times the calls
    sampled = [(s["calls"], s["worker_rss_bytes"]) for s in memory_samples if s.get("worker_rss_bytes")]
    per_call = slope([c for c, _ in sampled], [b for _, b in sampled])
    growth = None if per_call is None else mb(per_call * rss_calls)
    server_before = memory_before.get("server_rss_bytes")
    server_after = memory_after.get("server_rss_bytes")
    rss = {
        "calls": rss_calls,
        "worker_before_mb": mb(before),
        "worker_after_mb": mb(after),
        "worker_growth_mb": growth,  # the fitted slope times the calls
        "worker_slope_bytes_per_call": None if per_call is None else round(per_call, 1),
        "worker_end_difference_mb": None if before is None or after is None else mb(after - before),
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
        **report_head("asr_overhead"),
        "config": {
            "model": model,
            "model_id": spec_id,
            "calls": calls,
            "reload_calls": reload_calls,
            "rss_calls": rss_calls,
            "threads": threads,
            "device": described.device,
            "compute_type": described.compute_type,
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
            **{n: texts.get(n) for n in (IN_PROCESS, ENGINE, SERVER, RELOAD, WORKER) if n in texts},
            "match": len({t.strip() for n, t in texts.items() if n != DECODE}) <= 1,
        },
        "targets": {
            "server_vs_in_process_max": TARGET_SERVER_RATIO,
            "rss_growth_max_mb": TARGET_RSS_GROWTH_MB,
            "server_ratio_met": None if server_ratio is None else server_ratio <= TARGET_SERVER_RATIO,
            # both ways: a fit that falls by more than the target means the samples jump between
            # levels (allocator), and such a run cannot show that memory stays flat either
            "rss_growth_met": None if growth is None else abs(growth) < TARGET_RSS_GROWTH_MB,
        },
    }


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
        timed_whole = (IN_PROCESS, ENGINE, SERVER, RELOAD, WORKER)
        ratio = ratio_of(stats["median_ms"], base) if name in timed_whole else None
        table.add_row(
            label, str(stats["n"]), cell(stats["median_ms"]), cell(stats["p90_ms"]),
            cell(stats["min_ms"]), cell(stats["max_ms"]), cell(ratio, "x", 3),
        )  # fmt: skip
    soak = timings.get("server_http_soak", {})
    if soak.get("n"):
        table.add_row(
            "server, RSS soak \u2020", str(soak["n"]), cell(soak["median_ms"]), cell(soak["p90_ms"]),
            cell(soak["min_ms"]), cell(soak["max_ms"]), "-",
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
        "server / in-process (medians)", cell(ratios["server_vs_in_process"], "x", 3),
        f"<= {targets['server_vs_in_process_max']}x", verdict(targets["server_ratio_met"]),
    )  # fmt: skip
    summary.add_row(
        "server / in-process (paired rounds)", cell(ratios["server_vs_in_process_paired"], "x", 3), "", ""
    )
    summary.add_row("voxhost engine / in-process", cell(ratios.get("engine_vs_in_process"), "x", 3), "", "")
    summary.add_row("server / voxhost engine", cell(ratios.get("server_vs_engine"), "x", 3), "", "")
    summary.add_row("reload / in-process", cell(ratios["reload_vs_in_process"], "x", 2), "", "")
    rss = report["rss"]
    summary.add_row(
        f"worker RSS growth over {rss['calls']} calls (slope)", cell(rss["worker_growth_mb"], " MB", 2),
        f"|x| < {targets['rss_growth_max_mb']} MB", verdict(targets["rss_growth_met"]),
    )  # fmt: skip
    console.print(summary)

    overhead = report["overhead"]
    detail = Table(title="where the server's time goes (medians)")
    detail.add_column("part")
    detail.add_column("ms", justify="right")
    spread = overhead.get("server_minus_in_process_p25_p75_ms")
    detail.add_row(
        "server - in-process (paired)",
        cell(overhead["server_minus_in_process_ms"], digits=2)
        + (f" (p25..p75 {spread[0]:.1f}..{spread[1]:.1f})" if spread else ""),
    )
    for part, value in overhead.get("parts", {}).items():
        detail.add_row(f"  {part.removesuffix('_ms').replace('_', ' ')}", cell(value, digits=2))
    if "rest_ms" in overhead:
        detail.add_row("  rest (process wake-ups, thread hops, JSON)", cell(overhead["rest_ms"], digits=2))
    if overhead.get("worker_direct_minus_in_process_ms") is not None:
        detail.add_row(
            "worker, no HTTP - in-process (paired)",
            cell(overhead["worker_direct_minus_in_process_ms"], digits=2),
        )
    console.print(detail)

    console.print(
        f"worker RSS {cell(rss['worker_before_mb'], ' MB')} -> {cell(rss['worker_after_mb'], ' MB')}; "
        f"server process {cell(rss['server_process_before_mb'], ' MB')} -> "
        f"{cell(rss['server_process_after_mb'], ' MB')}; worker restarts: {rss['worker_restarts']}"
    )
    transcripts = report["transcripts"]
    text = transcripts.get(IN_PROCESS) or ""
    mark = "[green]identical[/]" if transcripts["match"] else "[red]differ[/]"
    console.print(f"transcripts {mark}: {text!r}")
