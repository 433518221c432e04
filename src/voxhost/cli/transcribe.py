"""`voxhost transcribe`: many files through one model load, in-process or against a running server."""

from __future__ import annotations

import asyncio
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    Progress,
    ProgressColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from voxhost.audio import SAMPLE_RATE, decode_audio, probe_seconds
from voxhost.cli.progress import AudioSecondsColumn, RealTimeColumn, done_line, follow
from voxhost.diarization import (
    Diarization,
    DiarizedTranscription,
    DiarizeOptions,
    rttm,
    speaker_turns,
)
from voxhost.engines import ASREngine
from voxhost.engines.base import DiarizeEngine
from voxhost.errors import BadRequest, VoxhostError, file_error
from voxhost.formats import as_text, check_response_format, render
from voxhost.manager import longform, speakers
from voxhost.manager.layout import Layout, engine_config, plan_layout
from voxhost.manager.registry import ModelSpec, parse_entry
from voxhost.results import Task, TranscribeOptions, Transcription
from voxhost.settings import Settings
from voxhost.speaker_formats import render_diarized

EXTENSIONS = {
    "text": "txt", "json": "json", "verbose_json": "json", "srt": "srt", "vtt": "vtt",
    "diarized_json": "json", "rttm": "rttm",
}  # fmt: skip
RTTM = "rttm"  # who spoke when, for diarization scoring tools (a CLI format: implies --diarize)


@dataclass(frozen=True)
class TranscribeJob:
    files: list[Path]
    model: str | None = None
    language: str | None = None
    task: str = "transcribe"
    output_format: str = "text"
    output_dir: Path | None = None
    url: str | None = None
    diarize: bool = False  # speaker labels (srt [A], vtt <v A>, verbose_json, diarized_json, rttm)
    num_speakers: int | None = None

    @property
    def diarized(self) -> bool:
        return self.diarize or self.output_format in ("diarized_json", RTTM)


def output_path(job: TranscribeJob, path: Path) -> Path:
    """Where `--output-dir` puts the transcript of `path`: FILE.<ext>, or FILE.wav.<ext> when another input
    shares its stem (talk.wav and talk.mp3), so no transcript overwrites another."""
    assert job.output_dir is not None
    ext = EXTENSIONS[job.output_format]
    if sum(other.stem == path.stem for other in job.files) > 1:
        return job.output_dir / f"{path.name}.{ext}"
    return job.output_dir / f"{path.stem}.{ext}"


def _check_outputs(job: TranscribeJob) -> None:
    if job.output_dir is None:
        return
    seen: dict[Path, Path] = {}
    for path in job.files:
        target = output_path(job, path)
        if target in seen and seen[target] != path:
            raise BadRequest(f"{seen[target]} and {path} would both be written to {target}")
        seen[target] = path


def _emit(job: TranscribeJob, path: Path, body: str, console: Console) -> None:
    if job.output_dir is not None:
        job.output_dir.mkdir(parents=True, exist_ok=True)
        target = output_path(job, path)
        target.write_text(body, encoding="utf-8")
        console.print(f"[green]wrote[/] {escape(str(target))}")
        return
    if len(job.files) > 1:
        console.print(f"[bold]==> {escape(str(path))} <==[/]")
    print(body.rstrip("\n"), flush=True)


def _stdout_is_terminal() -> bool:
    isatty = getattr(sys.stdout, "isatty", None)
    return bool(isatty and isatty())


def _progress(console: Console, *columns: ProgressColumn) -> Progress:
    # While the bar is live on a terminal stderr, rich would reroute `print` (stdout) into its stderr
    # console, so `voxhost transcribe a.wav > a.txt` would leave a.txt empty: only reroute when stdout
    # is a terminal too, where it keeps the bar and the transcripts from garbling each other.
    return Progress(
        TextColumn("{task.description}"), *columns, console=console, transient=True,
        redirect_stdout=_stdout_is_terminal(),
    )  # fmt: skip


def _label(index: int, job: TranscribeJob, path: Path) -> str:
    """'2/5 talk.wav' for one of several files, 'talk.wav' for one alone."""
    name = escape(path.name)
    return f"{index + 1}/{len(job.files)} {name}" if len(job.files) > 1 else name


def in_process_layout(settings: Settings, spec: ModelSpec) -> Layout:
    """The server's layout for one worker: this process is the one replica. The engine is loaded with
    `parallel` inferences (CTranslate2's workers) so that the long-file plan's `parallel` calls at once
    really run side by side rather than queueing inside the engine."""
    return plan_layout(settings.model_copy(update={"replicas": 1}), spec)


def run_local(job: TranscribeJob, settings: Settings, console: Console) -> int:
    spec = parse_entry(job.model or settings.default_model or settings.models[0])
    layout = in_process_layout(settings, spec)
    config = engine_config(settings, layout)
    with console.status(f"loading {spec.id}..."):
        engine = spec.load(config)
    if not isinstance(engine, ASREngine):
        raise BadRequest(f"{spec.id} is not a speech-to-text model")
    task: Task = "translate" if job.task == "translate" else "transcribe"
    options = TranscribeOptions(task=task, language=job.language, word_timestamps=job.diarized)
    diarizer = _load_diarizer(settings, config, console) if job.diarized else None
    failures = 0
    columns = (BarColumn(), AudioSecondsColumn(), RealTimeColumn(), TimeRemainingColumn())
    with _progress(console, *columns) as progress:
        # One bar per file, in seconds of its audio (a file's duration is known once it is decoded).
        # Each file is decoded just before it is transcribed, so a long batch holds one file's audio in
        # memory, not all of them.
        for index, path in enumerate(job.files):
            started = time.perf_counter()
            bar = progress.add_task(_label(index, job, path), total=None)
            try:
                try:
                    audio = decode_audio(path.read_bytes())
                except (VoxhostError, OSError) as exc:
                    console.print(f"[red]{escape(str(path))}: {escape(file_error(exc))}[/]")
                    failures += 1
                    continue
                seconds = len(audio) / SAMPLE_RATE
                progress.update(bar, total=seconds)

                def reached(done: float, bar: TaskID = bar) -> None:
                    progress.update(bar, completed=done)

                updates = longform.in_process_updates(engine, audio, options, settings, layout.parallel)
                transcript = follow(updates, reached)
                who = DiarizeOptions(num_speakers=job.num_speakers, threshold=settings.diarization_threshold)
                result: Transcription | DiarizedTranscription
                if diarizer is None:
                    result = asyncio.run(transcript)
                else:
                    nice = type(diarizer).nice(config)
                    result = asyncio.run(speakers.beside(transcript, diarizer, audio, who, nice))
                del audio  # not held while the next file is read and decoded
                progress.refresh()  # the finished bar is drawn at least once, however fast the file was
            finally:
                progress.remove_task(bar)
            _emit(job, path, _body(job, path, result), console)
            line = done_line(escape(str(path)), seconds, time.perf_counter() - started)
            console.print(line, style="dim", soft_wrap=True)  # unwrapped: the path stays whole
    return 1 if failures else 0


def _load_diarizer(settings: Settings, config: Any, console: Console) -> DiarizeEngine:
    with console.status(f"loading {settings.diarization_model}..."):
        diarizer: DiarizeEngine = speakers.load_diarizer(settings, config)
    return diarizer


def _body(job: TranscribeJob, path: Path, result: Transcription | DiarizedTranscription) -> str:
    if not isinstance(result, DiarizedTranscription):
        return as_text(render(result, check_response_format(job.output_format)))
    if job.output_format == RTTM:
        return rttm(result.diarization, path.stem)
    return as_text(render_diarized(result, job.output_format, ("segment", "word")))


def _error(response: httpx.Response) -> str:
    """The message of an OpenAI-style error body, or the body itself when it is not one."""
    try:
        error = response.json().get("error")
    except (ValueError, AttributeError):
        error = None
    message = error.get("message") if isinstance(error, dict) else None
    return message if isinstance(message, str) else response.text.strip() or response.reason_phrase


def _answer_seconds(path: Path, answer: Any) -> float | None:
    """How long the file's audio is: verbose_json says exactly; else the container's header (cheap, no
    decoding); else json's usage, rounded up to whole seconds."""
    if isinstance(answer, dict) and isinstance(answer.get("duration"), int | float):
        return float(answer["duration"])
    probed = probe_seconds(path)
    if probed is not None:
        return probed
    usage = answer.get("usage") if isinstance(answer, dict) else None
    seconds = usage.get("seconds") if isinstance(usage, dict) else None
    return float(seconds) if isinstance(seconds, int | float) else None


def run_remote(job: TranscribeJob, console: Console) -> int:
    assert job.url is not None
    endpoint = job.url.rstrip("/") + (
        "/v1/audio/translations" if job.task == "translate" else "/v1/audio/transcriptions"
    )
    failures = 0
    data = {"response_format": "diarized_json" if job.output_format == RTTM else job.output_format}
    if job.diarized:
        data["diarize"] = "true"
    if job.num_speakers:
        data["num_speakers"] = str(job.num_speakers)
    if job.model:
        data["model"] = job.model
    if job.language:
        data["language"] = job.language
    # The server reports nothing until a file is done: each file's bar shows how long it has taken.
    timeout = httpx.Timeout(30.0, read=None)
    bars = _progress(console, BarColumn(), TimeElapsedColumn())
    with httpx.Client(timeout=timeout) as client, bars as progress:
        for index, path in enumerate(job.files):
            started = time.perf_counter()
            bar = progress.add_task(_label(index, job, path), total=None)
            try:
                with path.open("rb") as handle:
                    response = client.post(endpoint, data=data, files={"file": (path.name, handle)})
            except OSError as exc:
                console.print(f"[red]{escape(str(path))}: {escape(file_error(exc))}[/]")
                failures += 1
                continue
            finally:
                progress.remove_task(bar)
            wall = time.perf_counter() - started
            if response.status_code != 200:
                console.print(
                    f"[red]{escape(str(path))}: {response.status_code} {escape(_error(response))}[/]"
                )
                failures += 1
                continue
            answer = response.json() if "json" in data["response_format"] else None
            body = response.text if answer is None else as_text(answer)
            if job.output_format == RTTM and isinstance(answer, dict):
                turns = speaker_turns(answer.get("segments", []))
                body = rttm(Diarization(turns, float(answer.get("duration", 0.0))), path.stem)
            _emit(job, path, body, console)
            line = done_line(escape(str(path)), _answer_seconds(path, answer), wall)
            console.print(line, style="dim", soft_wrap=True)  # unwrapped: the path stays whole
    return 1 if failures else 0


def run_transcribe(job: TranscribeJob, settings: Settings) -> int:
    console = Console(stderr=True)
    try:
        if job.output_format != RTTM:
            check_response_format(job.output_format)
        _check_outputs(job)
        if job.task not in ("transcribe", "translate"):
            raise BadRequest("--task must be transcribe or translate")
        return run_remote(job, console) if job.url else run_local(job, settings, console)
    except VoxhostError as exc:
        console.print(f"[red]error:[/] {exc.message}")
        return 2
    except httpx.HTTPError as exc:
        console.print(f"[red]error:[/] cannot reach {job.url}: {exc}")
        return 2
