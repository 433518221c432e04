"""`voxhost transcribe`: many files through one model load, in-process or against a running server."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import httpx
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

from voxhost.audio import SAMPLE_RATE, decode_audio
from voxhost.engines import ASREngine, engine_class
from voxhost.errors import BadRequest, VoxhostError
from voxhost.formats import check_response_format, render
from voxhost.languages import normalize_language
from voxhost.manager.registry import parse_entry
from voxhost.manager.supervisor import engine_config
from voxhost.results import Task, TranscribeOptions
from voxhost.settings import Settings

EXTENSIONS = {"text": "txt", "json": "json", "verbose_json": "json", "srt": "srt", "vtt": "vtt"}


@dataclass(frozen=True)
class TranscribeJob:
    files: list[Path]
    model: str | None = None
    language: str | None = None
    task: str = "transcribe"
    output_format: str = "text"
    output_dir: Path | None = None
    url: str | None = None


def _emit(job: TranscribeJob, path: Path, body: str, console: Console) -> None:
    if job.output_dir is not None:
        job.output_dir.mkdir(parents=True, exist_ok=True)
        target = job.output_dir / f"{path.stem}.{EXTENSIONS[job.output_format]}"
        target.write_text(body, encoding="utf-8")
        console.print(f"[green]wrote[/] {target}")
        return
    if len(job.files) > 1:
        console.print(f"[bold]==> {path} <==[/]")
    print(body.rstrip("\n"), flush=True)


def _as_text(body: str | dict[str, object]) -> str:
    return json.dumps(body, ensure_ascii=False, indent=2) if isinstance(body, dict) else body


def _progress(console: Console) -> Progress:
    return Progress(
        TextColumn("{task.description}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
        TimeRemainingColumn(), console=console, transient=True,
    )  # fmt: skip


def run_local(job: TranscribeJob, settings: Settings, console: Console) -> int:
    spec = parse_entry(job.model or settings.default_model or settings.models[0])
    config = engine_config(settings)
    with console.status(f"loading {spec.id}..."):
        engine = engine_class(spec.engine).load(spec.location(config), config)
    if not isinstance(engine, ASREngine):
        raise BadRequest(f"{spec.id} is not a speech-to-text model")
    task: Task = "translate" if job.task == "translate" else "transcribe"
    options = TranscribeOptions(
        task=task, language=normalize_language(job.language), word_timestamps=False
    )
    failures = 0
    decoded = {}
    with _progress(console) as progress:
        for path in job.files:
            try:
                decoded[path] = decode_audio(path.read_bytes())
            except VoxhostError as exc:
                console.print(f"[red]{path}: {exc.message}[/]")
                failures += 1
        total = sum(len(a) for a in decoded.values()) / SAMPLE_RATE
        bar = progress.add_task("transcribing", total=total or 1)
        done = 0.0
        for path, audio in decoded.items():
            progress.update(bar, description=path.name)
            result = engine.transcribe(
                audio, options, progress=lambda seconds, base=done: progress.update(bar, completed=base + seconds)
            )
            done += len(audio) / SAMPLE_RATE
            progress.update(bar, completed=done)
            _emit(job, path, _as_text(render(result, check_response_format(job.output_format))), console)
    return 1 if failures else 0


def run_remote(job: TranscribeJob, console: Console) -> int:
    assert job.url is not None
    endpoint = job.url.rstrip("/") + (
        "/v1/audio/translations" if job.task == "translate" else "/v1/audio/transcriptions"
    )
    failures = 0
    data = {"response_format": job.output_format}
    if job.model:
        data["model"] = job.model
    if job.language:
        data["language"] = job.language
    with httpx.Client(timeout=httpx.Timeout(30.0, read=None)) as client, _progress(console) as progress:
        bar = progress.add_task("transcribing", total=len(job.files))
        for path in job.files:
            progress.update(bar, description=path.name)
            with path.open("rb") as handle:
                response = client.post(endpoint, data=data, files={"file": (path.name, handle)})
            progress.advance(bar)
            if response.status_code != 200:
                message = response.json().get("error", {}).get("message", response.text)
                console.print(f"[red]{path}: {response.status_code} {message}[/]")
                failures += 1
                continue
            body = response.text if "json" not in job.output_format else _as_text(response.json())
            _emit(job, path, body, console)
    return 1 if failures else 0


def run_transcribe(job: TranscribeJob, settings: Settings) -> int:
    console = Console(stderr=True)
    try:
        check_response_format(job.output_format)
        if job.task not in ("transcribe", "translate"):
            raise BadRequest("--task must be transcribe or translate")
        return run_remote(job, console) if job.url else run_local(job, settings, console)
    except VoxhostError as exc:
        console.print(f"[red]error:[/] {exc.message}")
        return 2
    except httpx.HTTPError as exc:
        console.print(f"[red]error:[/] cannot reach {job.url}: {exc}")
        return 2
