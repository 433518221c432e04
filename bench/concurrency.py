"""Many clients at once: voxhost's scheduler against wyoming-faster-whisper, which serializes requests.

    pip install -e ".[bench]"
    python bench/concurrency.py --requests 32 --levels 1,2,4,8 --json bench-concurrency.json

Both servers run as subprocesses on 127.0.0.1 on the same model directory (voxhost's embedded tiny.en),
CPU, int8, beam 5, language en, and every request is one Wyoming connection with a 5.0 s clip (Piper
speech padded with silence), exactly as Home Assistant sends it. voxhost runs with its default layout for
the machine (shown in the report; `--voxhost FLAGS`, repeatable, measures other layouts, e.g.
`--voxhost "" --voxhost "--parallel 1"`); wyoming-faster-whisper with
`--cpu-threads` set to each of `--wfw-threads` (default: one per core, its fastest setting here).

In one run, per server:

* serial sum: `--burst` requests strictly one after another, their times added up;
* burst: `--burst` clients connect at once, each with one clip; the time until the last transcript,
  `--repeats` times (median);
* sweep: `--requests` requests at each concurrency of `--levels` (that many clients, each sending its
  next request when the last one is answered): p50 and p95 latency and throughput (requests/s).

Every transcript is checked against the synthesized text (`--max-word-errors`). Figures vary with the
machine's load: compare servers within one run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from rich.console import Console
from rich.table import Table

from voxhost.benchmarks.common import FAILURES, BenchmarkError
from wyoming_asr import (
    MODEL,
    RATE,
    WIDTH,
    Clip,
    model_path,
    synthesize_clips,
    transcribe,
    transcript_errors,
    voxhost_server,
    wfw_server,
    wyoming_port,
)

CLIP_SECONDS = 5.0
TEXTS = (
    "Turn off the lights in the living room, then lock the front door and close the blinds.",
    "The quick brown fox jumps over the lazy dog.",
    "Ask her to bring these things with her from the store.",
)


def padded(clips: list[Clip], seconds: float) -> list[Clip]:
    """Each clip padded with silence to exactly `seconds` (none may be longer)."""
    size = int(seconds * RATE) * WIDTH
    out = []
    for clip in clips:
        if len(clip.pcm) > size:
            raise BenchmarkError(f"{clip.text!r} is longer than {seconds:g}s")
        out.append(Clip(clip.text, clip.pcm + bytes(size - len(clip.pcm))))
    return out


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


class Checker:
    def __init__(self, max_errors: int) -> None:
        self.max_errors = max_errors
        self.checked = 0
        self.failed: list[str] = []

    def __call__(self, clip: Clip, text: str) -> None:
        self.checked += 1
        if transcript_errors(text, clip.text) > self.max_errors:
            self.failed.append(f"{text!r} for {clip.text!r}")


async def _serial(port: int, clips: list[Clip], count: int, check: Checker) -> list[float]:
    times = []
    for i in range(count):
        clip = clips[i % len(clips)]
        reply = await transcribe(port, clip)
        check(clip, reply.text)
        times.append(reply.total)
    return times


async def _burst(port: int, clips: list[Clip], count: int, check: Checker) -> float:
    sent = [clips[i % len(clips)] for i in range(count)]
    started = time.perf_counter()
    replies = await asyncio.gather(*(transcribe(port, clip) for clip in sent))
    wall = time.perf_counter() - started
    for clip, reply in zip(sent, replies, strict=True):
        check(clip, reply.text)
    return wall


async def _sweep(port: int, clips: list[Clip], requests: int, level: int, check: Checker) -> dict[str, Any]:
    next_index = 0
    latencies: list[float] = []

    async def client() -> None:
        nonlocal next_index
        while next_index < requests:
            clip = clips[next_index % len(clips)]
            next_index += 1
            reply = await transcribe(port, clip)
            check(clip, reply.text)
            latencies.append(reply.total)

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(level)))
    wall = time.perf_counter() - started
    return {
        "concurrency": level,
        "requests": len(latencies),
        "wall_s": round(wall, 3),
        "throughput_rps": round(len(latencies) / wall, 3),
        "p50_s": round(percentile(latencies, 50), 3),
        "p95_s": round(percentile(latencies, 95), 3),
    }


async def measure_server(
    port: int, clips: list[Clip], args: argparse.Namespace, check: Checker, console: Console, name: str
) -> dict[str, Any]:
    for clip in clips:  # warm-up, untimed
        await transcribe(port, clip)
    console.print(f"[dim]{name}: serial, burst of {args.burst} x {args.repeats}, sweep {args.levels}...[/]")
    serial = await _serial(port, clips, args.burst, check)
    bursts = []
    for _ in range(args.repeats):
        await asyncio.sleep(0.5)
        bursts.append(await _burst(port, clips, args.burst, check))
    sweep = []
    for level in args.levels:
        await asyncio.sleep(0.5)
        sweep.append(await _sweep(port, clips, args.requests, level, check))
    return {
        "serial_sum_s": round(sum(serial), 3),
        "serial_median_s": round(statistics.median(serial), 3),
        "burst_s": [round(b, 3) for b in bursts],
        "burst_median_s": round(statistics.median(bursts), 3),
        "sweep": sweep,
    }


def voxhost_args(cache_dir: Path, extra: list[str]) -> list[str]:
    """`voxhost serve`'s flags here, after the harness's own (127.0.0.1, free ports, Wyoming on)."""
    return [
        "--model", MODEL, "--preload", "--device", "cpu", "--compute-type", "int8", "--beam-size", "5",
        "--cache-dir", str(cache_dir), "--offline", "--log-level", "warning", "--max-queue", "64", *extra,
    ]  # fmt: skip


def run(args: argparse.Namespace, console: Console) -> dict[str, Any]:
    clips = padded(synthesize_clips(TEXTS), CLIP_SECONDS)
    model_dir = model_path()
    check = Checker(args.max_word_errors)
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="voxhost-concurrency-") as tmp:
        work = Path(tmp)
        (work / "cache").mkdir()
        (work / "wfw-data").mkdir()
        for flags in args.voxhost:
            server_args = voxhost_args(work / "cache", shlex.split(flags))
            with voxhost_server(server_args, work, args.startup_timeout) as server:
                port = wyoming_port(server)
                status = httpx.get(f"{server.url}/status", timeout=10).json()
                layout = status["models"][0]["layout"]
                name = f"voxhost ({layout['replicas']}x{layout['parallel']}, {layout['threads']} thr)"
                results[name] = {
                    "flags": flags,
                    "layout": layout,
                    **asyncio.run(measure_server(port, clips, args, check, console, name)),
                }
        for threads in args.wfw_threads:
            name = f"wyoming-faster-whisper ({threads} thr)"
            with wfw_server(
                threads, model_dir, work / "wfw-data", work, args.startup_timeout, name=name.replace(" ", "_")
            ) as server:
                port = wyoming_port(server)
                results[name] = asyncio.run(measure_server(port, clips, args, check, console, name))
    return {
        "machine": {"cpus": os.cpu_count()},
        "clip_seconds": CLIP_SECONDS,
        "burst": args.burst,
        "requests": args.requests,
        "servers": results,
        "transcripts": {"checked": check.checked, "failed": check.failed},
    }


def print_report(report: dict[str, Any], console: Console) -> None:
    servers = report["servers"]
    table = Table(
        title=f"{report['requests']} requests of {report['clip_seconds']:g} s per concurrency level"
    )
    for column in ("server", "concurrency", "throughput req/s", "p50 s", "p95 s"):
        table.add_column(column, justify="left" if column == "server" else "right")
    for name, result in servers.items():
        for row in result["sweep"]:
            table.add_row(
                name, str(row["concurrency"]), f"{row['throughput_rps']:.2f}", f"{row['p50_s']:.2f}",
                f"{row['p95_s']:.2f}",
            )  # fmt: skip
    console.print(table)
    burst = Table(title=f"{report['burst']} concurrent requests (burst) vs the serial sum")
    for column in ("server", "serial sum s", "burst s (median)", "serial sum / burst"):
        burst.add_column(column, justify="left" if column == "server" else "right")
    for name, result in servers.items():
        burst.add_row(
            name, f"{result['serial_sum_s']:.2f}", f"{result['burst_median_s']:.2f}",
            f"{result['serial_sum_s'] / result['burst_median_s']:.2f}x",
        )  # fmt: skip
    console.print(burst)
    names = list(servers)
    ours = servers[names[0]]
    for other in names[1:]:
        top = max(r["concurrency"] for r in ours["sweep"])
        mine = next(r for r in ours["sweep"] if r["concurrency"] == top)
        theirs = next(r for r in servers[other]["sweep"] if r["concurrency"] == top)
        gain = mine["throughput_rps"] / theirs["throughput_rps"]
        console.print(
            f"at concurrency {top}: {names[0]} serves {gain:.2f}x "
            f"the throughput of {other}; burst of {report['burst']}: "
            f"{servers[other]['burst_median_s'] / ours['burst_median_s']:.2f}x faster"
        )
    failed = report["transcripts"]["failed"]
    mark = "[green]all correct[/]" if not failed else f"[red]{len(failed)} wrong[/]: {failed[:3]}"
    console.print(f"transcripts: {report['transcripts']['checked']} checked, {mark}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=32, help="requests per concurrency level (32)")
    parser.add_argument("--levels", default="1,2,4,8", help="concurrency levels (1,2,4,8)")
    parser.add_argument("--burst", type=int, default=8, help="clients in the burst (8)")
    parser.add_argument("--repeats", type=int, default=3, help="bursts per server (3)")
    parser.add_argument(
        "--wfw-threads", default=str(os.cpu_count() or 1), help="wyoming-faster-whisper --cpu-threads values"
    )
    parser.add_argument(
        "--voxhost",
        action="append",
        default=None,
        metavar="FLAGS",
        help="a voxhost set-up to measure, as serve flags (repeatable; default: '', the default layout)",
    )
    parser.add_argument("--max-word-errors", type=int, default=2)
    parser.add_argument("--startup-timeout", type=float, default=300.0)
    parser.add_argument("--json", type=Path, default=None, metavar="PATH", help="write the figures here")
    args = parser.parse_args(argv)
    args.levels = [int(x) for x in args.levels.split(",")]
    args.voxhost = args.voxhost or [""]
    args.wfw_threads = [int(x) for x in args.wfw_threads.split(",")]
    if not (1 <= args.requests <= 1000 and 1 <= args.burst <= 64 and 1 <= args.repeats <= 20):
        parser.error("requests must be 1-1000, burst 1-64, repeats 1-20")
    if any(not 1 <= level <= 64 for level in args.levels):
        parser.error("concurrency levels must be 1-64")
    console = Console(width=120) if not Console().is_terminal else Console()
    try:
        report = run(args, Console(stderr=True))
    except FAILURES as exc:
        Console(stderr=True).print(f"[red]error:[/] {exc}")
        return 2
    print_report(report, console)
    if args.json is not None:
        args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return 0 if not report["transcripts"]["failed"] else 1


if __name__ == "__main__":
    sys.exit(main())
