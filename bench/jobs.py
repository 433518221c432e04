"""Transcription jobs: a long file as a job against the same file through `POST /v1/audio/transcriptions`,
and the time a SIGKILL of the server at the job's midpoint costs.

    pip install -e ".[bench]"
    python bench/jobs.py --minutes 30 --repeat 3 --json bench-jobs.json     # the issue's figures
    python bench/jobs.py                                                    # 3 minutes, a few minutes' run

The recording is Piper reading the opening of The Wonderful Wizard of Oz (bench/long_speech.py, 16 kHz
WAV, cached in `--cache-dir`); one `voxhost serve` subprocess on 127.0.0.1 with tiny.en (its default
layout, `--serve-arg` for others) and a fresh `--data-dir`. In one run:

* route: the WAV posted to `/v1/audio/transcriptions` (json), time to the whole answer;
* job: the WAV posted to `/v1/jobs` (json), polled every 0.1 s until completed, then its result fetched:
  time from the submit to the result. The two take turns going first, `--repeat` times; medians, and
  the ratio job / route (the issue's target: within 5 %). Both transcripts must be the same text;
* kill: a job submitted, the server (and its workers) SIGKILLed once the job's progress passes half
  the file, a new server started on the same data dir; "resumed" is the time from the kill to the job's
  completion (the restart, the model load, and the calls not done before the kill). "from the
  beginning" is what a restart that starts the job again would take: the same restart (measured) plus
  a whole job (the median above). Also: the time before the kill, thrown away if nothing were kept.

Figures vary with the machine's load: compare within one run. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

from long_speech import write_recording
from voxhost.benchmarks.common import FAILURES, BenchmarkError, machine_facts
from voxhost.harness import ServerProcess, serve
from voxhost.harness.wer import word_errors, words

POLL = 0.1  # seconds between polls of a job
MAX_WAIT = 3600.0  # seconds any one wait may take (bounded loops)


def _server(log_dir: Path, data: Path, wav: Path, extra: list[str]) -> ServerProcess:
    upload_mb = wav.stat().st_size / 2**20 + 1
    args = ["--model", "tiny.en", "--preload", "--data-dir", str(data), "--max-upload-mb", f"{upload_mb:.0f}"]
    return serve([*args, *extra], log_dir=log_dir, models=["tiny.en"], timeout=300)


def _wait_job(
    client: httpx.Client, job_id: str, until: str = "completed", fraction: float = 1.0
) -> dict[str, Any]:
    deadline = time.monotonic() + MAX_WAIT
    while time.monotonic() < deadline:
        job: dict[str, Any] = client.get(f"/v1/jobs/{job_id}").json()
        if job["status"] in ("failed", "cancelled"):
            raise BenchmarkError(f"job {job_id} {job['status']}: {job['error']}")
        if job["status"] == until or job["progress"]["fraction"] >= fraction:
            return job
        time.sleep(POLL)
    raise BenchmarkError(f"job {job_id} did not get there in {MAX_WAIT:g}s")


def route(client: httpx.Client, wav: Path) -> tuple[float, str]:
    started = time.perf_counter()
    response = client.post("/v1/audio/transcriptions", files={"file": (wav.name, wav.read_bytes())})
    response.raise_for_status()
    return time.perf_counter() - started, response.json()["text"]


def job(client: httpx.Client, wav: Path) -> tuple[float, str]:
    started = time.perf_counter()
    submitted = client.post("/v1/jobs", files={"file": (wav.name, wav.read_bytes())})
    submitted.raise_for_status()
    job_id = submitted.json()["id"]
    _wait_job(client, job_id)
    text = client.get(f"/v1/jobs/{job_id}/result").json()["text"]
    return time.perf_counter() - started, text


def kill_at_midpoint(log_dir: Path, data: Path, wav: Path, extra: list[str]) -> dict[str, float]:
    server = _server(log_dir, data, wav, extra)
    with server, httpx.Client(base_url=server.url, timeout=httpx.Timeout(30, read=MAX_WAIT)) as client:
        started = time.perf_counter()
        job_id = client.post("/v1/jobs", files={"file": (wav.name, wav.read_bytes())}).json()["id"]
        _wait_job(client, job_id, fraction=0.5)
        server.processes()  # its workers, killed with it
        killed = time.perf_counter()
        server.process.kill()
        server.process.wait(30)
    again = _server(log_dir, data, wav, extra)
    with again, httpx.Client(base_url=again.url, timeout=httpx.Timeout(30, read=MAX_WAIT)) as client:
        ready = time.perf_counter()
        _wait_job(client, job_id)
        done = time.perf_counter()
    return {"before_kill_s": killed - started, "restart_s": ready - killed, "resumed_s": done - killed}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--minutes", type=float, default=3.0, help="Length of the recording (default 3).")
    parser.add_argument("--repeat", type=int, default=1, help="Route and job runs each (medians).")
    parser.add_argument("--cache-dir", type=Path, default=Path(tempfile.gettempdir()) / "voxhost-bench")
    parser.add_argument("--serve-arg", action="append", default=[], help="Extra `voxhost serve` flags.")
    parser.add_argument("--json", type=Path, help="Write the figures here.")
    args = parser.parse_args()
    console = Console()
    wav, reference = write_recording(args.minutes * 60, args.cache_dir)
    figures: dict[str, Any] = {
        "machine": machine_facts(),
        "minutes": args.minutes,
        "serve_args": args.serve_arg,
    }
    with contextlib.ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="voxhost-bench-jobs-")))
        server = stack.enter_context(_server(work, work / "data", wav, args.serve_arg))
        client = stack.enter_context(
            httpx.Client(base_url=server.url, timeout=httpx.Timeout(30, read=MAX_WAIT))
        )
        route(client, wav)  # warm-up: first-call costs, the VAD model's load
        times: dict[str, list[float]] = {"route": [], "job": []}
        texts: dict[str, str] = {}
        for run in range(args.repeat):
            order = [("route", route), ("job", job)]
            for name, measure in order if run % 2 == 0 else order[::-1]:
                seconds, texts[name] = measure(client, wav)
                times[name].append(seconds)
        server.stop()
        if texts["route"] != texts["job"]:
            raise BenchmarkError("the job's transcript differs from the route's")
        kill = kill_at_midpoint(work, work / "data-kill", wav, args.serve_arg)
    route_s, job_s = statistics.median(times["route"]), statistics.median(times["job"])
    from_start = kill["restart_s"] + job_s
    figures |= {
        "route_s": times["route"], "job_s": times["job"], "job_over_route": job_s / route_s, **kill,
        "from_beginning_s": from_start, "resumed_over_from_beginning": kill["resumed_s"] / from_start,
        "wer_percent": 100 * word_errors(texts["job"], reference) / len(words(reference)),
    }  # fmt: skip
    table = Table(title=f"{args.minutes:g} min of speech, tiny.en; medians of {args.repeat}")
    table.add_column("measure")
    table.add_column("seconds", justify="right")
    for label, value in (
        ("POST /v1/audio/transcriptions", route_s), ("as a job (submit, poll, result)", job_s),
        ("job / route", job_s / route_s), ("job run before the SIGKILL", kill["before_kill_s"]),
        ("restart (to ready)", kill["restart_s"]), ("resumed: kill to completion", kill["resumed_s"]),
        ("from the beginning: restart + whole job", from_start),
        ("resumed / from the beginning", kill["resumed_s"] / from_start),
    ):  # fmt: skip
        table.add_row(label, f"{value:.2f}")
    console.print(table)
    console.print(f"WER of the job's transcript: {figures['wer_percent']:.2f} %")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    try:
        main()
    except FAILURES as exc:  # a benchmark's own check, or a server that would not start
        sys.exit(f"error: {exc}")
