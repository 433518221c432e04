"""`voxhost bench`: one task or all of them, their tables printed and their figures written as JSON."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console

from voxhost.benchmarks.asr import print_report, run_asr_benchmark
from voxhost.benchmarks.common import FAILURES, BenchmarkError, RunOptions
from voxhost.benchmarks.tts import TTS_MODELS, print_tts_report, run_tts_benchmark

TASKS = ("asr", "tts", "all")
TTS_ONLY = ("text", "formats")
RUN_OPTIONS = tuple(f.name for f in dataclasses.fields(RunOptions))  # what both tasks take


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
    tables then go to stderr). For tts, `model` is the ASR model the server also serves. `kwargs`: the
    `RunOptions` both tasks take, `text` and `formats` for tts, the rest for `run_asr_benchmark`."""
    to_stdout = json_path is not None and str(json_path) == "-"
    console = Console(stderr=to_stdout)
    progress = Console(stderr=True)
    reports: dict[str, dict[str, Any]] = {}
    run = RunOptions(**{k: v for k, v in kwargs.items() if k in RUN_OPTIONS})
    try:
        if task not in TASKS:
            raise BenchmarkError(f"unknown task {task!r}; choose one of {', '.join(TASKS)}")
        if task in ("asr", "all"):
            options = {k: v for k, v in kwargs.items() if k not in (*RUN_OPTIONS, *TTS_ONLY)}
            reports["asr"] = run_asr_benchmark(
                calls, rss_calls, model, wav=wav, run=run, console=progress, **options
            )
            print_report(reports["asr"], console)
        if task in ("tts", "all"):
            options = {k: v for k, v in kwargs.items() if k in TTS_ONLY}
            reports["tts"] = run_tts_benchmark(
                calls, tts_models, asr_model=model, run=run, console=progress, **options
            )
            print_tts_report(reports["tts"], console)
    except FAILURES as exc:
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
