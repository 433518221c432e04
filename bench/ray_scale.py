"""voxhost on Ray against faster-whisper called in-process and voxhost's own local workers, in one run on
one machine.

    pip install -e ".[ray]"
    python bench/ray_scale.py --requests 20 --files 16 --json bench-ray.json

1. Latency per request: the same clip transcribed by faster-whisper in this process (`WhisperModel`,
   the reference), sent to `voxhost serve` (local worker process) and to `voxhost serve --ray` (a local
   Ray: ingress deployment -> ASR deployment), one call at a time, the three in turn with the first one
   rotating, so that all see the same machine load; medians and their ratios to in-process.
   All run tiny.en with the same threads and one inference at a time.
2. Batch throughput: `--files` clips of `--seconds` of speech transcribed one after another by one
   in-process `WhisperModel` (the reference; its load counts, as the runners' start-up does), and by
   `voxhost batch` on Ray Data with 1 and with 2 actors (one thread each) and on the local resident
   workers; in audio-hours per hour.

Every transcript is checked against faster-whisper's own of the same clip (at most one word apart).
Figures vary with the machine's load: compare within one run.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

from voxhost import harness
from voxhost.audio import decode_audio
from voxhost.batch.job import BatchJob, run_batch
from voxhost.benchmarks import baselines
from voxhost.benchmarks.common import Clip, synthesize_clip
from voxhost.harness.wer import word_errors
from voxhost.settings import Settings

MODEL = "tiny.en"


def _post(client: httpx.Client, url: str, clip: Clip, reference: str) -> float:
    """One timed request; its transcript must match faster-whisper's own."""
    started = time.perf_counter()
    response = client.post(url + "/v1/audio/transcriptions", files={"file": ("clip.wav", clip.wav)})
    seconds = time.perf_counter() - started
    response.raise_for_status()
    text = response.json()["text"]
    if word_errors(text, reference) > 1:
        raise SystemExit(f"{url} gave {text!r}, faster-whisper in-process {reference!r}")
    return seconds


def latency(args: argparse.Namespace, clip: Clip, workdir: Path, model: Any, beam: int) -> dict[str, Any]:
    from ray import serve

    from voxhost.scale import serve as vserve

    flags = ["--model", MODEL, "--preload", "--threads", str(args.threads), "--parallel", "1"]
    port = harness.free_port()
    settings = Settings(
        models=[MODEL],
        host="127.0.0.1",
        port=port,
        threads=args.threads,
        parallel=1,
        cache_dir=workdir / "cache",
    )
    local_flags = [*flags, "--cache-dir", str(workdir / "cache")]
    with harness.serve(local_flags, log_dir=workdir, models=[MODEL], timeout=120) as local:
        vserve.start_ray(None, num_cpus=2, object_store_memory=100 * 2**20, include_dashboard=False)
        vserve.run(settings, blocking=False)
        ray_url = f"http://127.0.0.1:{port}"
        times: dict[str, list[float]] = {"in_process": [], "local": [], "ray": []}
        reference = baselines.whisper_text(model, clip.audio, beam)

        def in_process() -> float:
            started = time.perf_counter()
            text = baselines.whisper_text(model, clip.audio, beam)
            seconds = time.perf_counter() - started
            if word_errors(text, reference) > 1:
                raise SystemExit(f"faster-whisper gave {text!r}, then {reference!r}")
            return seconds

        with httpx.Client(timeout=120) as client:
            calls: dict[str, Callable[[], float]] = {
                "in_process": in_process,
                "local": lambda: _post(client, local.url, clip, reference),
                "ray": lambda: _post(client, ray_url, clip, reference),
            }
            for call in calls.values():  # warm-up: loads the model on Ray, warms every path
                for _ in range(3):
                    call()
            names = list(calls)
            for index in range(args.requests):
                for name in names[index % 3 :] + names[: index % 3]:
                    times[name].append(calls[name]())
        serve.delete(vserve.APP_NAME)
    medians = {name: statistics.median(values) for name, values in times.items()}
    return {
        "requests": args.requests,
        "clip_seconds": round(clip.seconds, 2),
        "reference_text": reference,
        "in_process_median_s": round(medians["in_process"], 3),
        "local_median_s": round(medians["local"], 3),
        "ray_median_s": round(medians["ray"], 3),
        "local_vs_in_process": round(medians["local"] / medians["in_process"], 3),
        "ray_vs_in_process": round(medians["ray"] / medians["in_process"], 3),
        "ratio": round(medians["ray"] / medians["local"], 3),
        "overhead_ms": round((medians["ray"] - medians["local"]) * 1000, 1),
    }


def batch(
    args: argparse.Namespace, clip: Clip, workdir: Path, console: Console, reference: str
) -> list[dict[str, Any]]:
    source = workdir / "clips"
    source.mkdir()
    for index in range(args.files):
        (source / f"clip{index:03d}.wav").write_bytes(clip.wav)
    rows: list[dict[str, Any]] = []
    with console.status("batch: faster-whisper in-process"):
        started = time.perf_counter()  # the model load counts, as for the runners below
        model, beam = baselines.whisper_for(MODEL, args.threads)
        for path in sorted(source.glob("*.wav")):
            text = baselines.whisper_text(model, decode_audio(path.read_bytes()), beam)
            if word_errors(text, reference) > 1:
                raise SystemExit(f"faster-whisper in-process misheard {path.name}: {text!r}")
        wall = time.perf_counter() - started  # decoding the files counts too, as in voxhost batch
        del model
    rows.append(
        {
            "runner": "faster-whisper in-process",
            "files": args.files,
            "wall_s": round(wall, 2),
            "audio_hours_per_hour": round(args.files * clip.seconds / wall, 1),
        }
    )
    runs: list[tuple[str, bool, int]] = [
        ("ray data, 1 actor", True, 1),
        ("ray data, 2 actors", True, 2),
        ("local workers", False, 1),
    ]
    for name, on_ray, actors in runs:
        out = workdir / f"out-{len(rows)}"
        settings = Settings(
            models=[MODEL], threads=args.threads if not on_ray else 1, cache_dir=workdir / "cache"
        )
        job = BatchJob(source, out, ray=on_ray, actors=actors)
        with console.status(f"batch: {name}"):
            if run_batch(job, settings, Console(stderr=True, quiet=True)) != 0:
                raise SystemExit(f"the batch on {name} failed: see {out / 'summary.json'}")
        summary = json.loads((out / "summary.json").read_text())
        for path in out.glob("*.txt"):
            if word_errors(path.read_text(), reference) > 1:
                raise SystemExit(f"{name} misheard {path.name}: {path.read_text()!r}")
        rows.append(
            {
                "runner": name,
                "files": summary["transcribed"],
                "wall_s": summary["wall_seconds"],
                "audio_hours_per_hour": summary["audio_hours_per_hour"],
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=20, help="timed requests per server")
    parser.add_argument("--files", type=int, default=16, help="clips in the batch")
    parser.add_argument("--seconds", type=float, default=5.0, help="length of the clip")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads per inference (latency runs)")
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args()
    console = Console()
    clip = synthesize_clip(args.seconds)
    with tempfile.TemporaryDirectory(prefix="voxhost-ray-bench-") as tmp:
        workdir = Path(tmp)
        model, beam = baselines.whisper_for(MODEL, args.threads)
        report: dict[str, Any] = {"latency": latency(args, clip, workdir, model, beam)}
        del model
        report["batch"] = batch(args, clip, workdir, console, report["latency"]["reference_text"])
    import ray

    ray.shutdown()
    lat: dict[str, Any] = report["latency"]
    table = Table(title=f"Per request ({lat['requests']} requests, {lat['clip_seconds']} s clip, {MODEL})")
    columns = ("in-process median", "local median", "Ray Serve median", "local / in-proc", "Ray / in-proc")
    for column in (*columns, "Ray / local", "overhead"):
        table.add_column(column)
    table.add_row(
        f"{lat['in_process_median_s']:.3f} s",
        f"{lat['local_median_s']:.3f} s",
        f"{lat['ray_median_s']:.3f} s",
        f"{lat['local_vs_in_process']:.2f}x",
        f"{lat['ray_vs_in_process']:.2f}x",
        f"{lat['ratio']:.2f}x",
        f"{lat['overhead_ms']:.0f} ms",
    )
    console.print(table)
    table = Table(title=f"Batch ({args.files} files of {clip.seconds:.1f} s)")
    for column in ("runner", "files", "wall", "audio-hours per hour"):
        table.add_column(column)
    for row in report["batch"]:
        table.add_row(
            row["runner"], str(row["files"]), f"{row['wall_s']:.1f} s", f"{row['audio_hours_per_hour']:.1f}"
        )
    console.print(table)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
