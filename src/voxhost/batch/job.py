"""`voxhost batch`: transcribe every audio file under a folder, resumably.

Locally the files go through the model manager (resident workers, as many at once as the model has
inference slots); with `--ray` they go through Ray Data (`voxhost.scale.data`), an actor pool holding the
model. Either way each file gets FILE.json (verbose), FILE.txt, FILE.srt and FILE.vtt beside its path
relative to the input folder (rendered by `voxhost.batch.files`, what both ways share), written
atomically, so a file whose outputs all exist is done and a rerun skips it. A file that fails is
reported and the batch goes on; `summary.json` lists everything.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

from voxhost.audio import decode_audio, probe_seconds
from voxhost.batch.files import RTTM, FileResult
from voxhost.cli.progress import AudioSecondsColumn, RealTimeColumn, follow
from voxhost.diarization import DiarizeOptions
from voxhost.errors import BadRequest, VoxhostError
from voxhost.manager import ModelManager, speakers
from voxhost.manager.requests import TranscribeRequest
from voxhost.results import TranscribeOptions
from voxhost.settings import Settings

AUDIO_SUFFIXES = frozenset(
    {".wav", ".mp3", ".flac", ".ogg", ".oga", ".opus", ".m4a", ".aac", ".mp4", ".webm", ".weba", ".mka"}
)
SUMMARY = "summary.json"


@dataclass(frozen=True)
class BatchJob:
    """What `voxhost batch` was asked to do: transcribe (or translate) the audio files under `input_dir`
    into `output_dir` with `model` (None: the default), on local workers or on `actors` Ray Data actors."""

    input_dir: Path
    output_dir: Path
    model: str | None = None
    language: str | None = None
    task: str = "transcribe"
    ray: bool = False
    actors: int = 1  # Ray Data actors, each holding the model
    url: str | None = None  # a server: the files go to it as transcription jobs (`batch/remote.py`)
    api_key: str | None = None  # the server's key
    diarize: bool = False  # speaker labels in every output, and FILE.rttm

    @property
    def outputs(self) -> list[str]:
        """The extensions of each file's outputs, written in this order (the JSON, last, marks it done)."""
        return ["txt", "srt", "vtt", *([RTTM] if self.diarize else []), "json"]

    def options(self) -> TranscribeOptions:
        if self.task not in ("transcribe", "translate"):
            raise BadRequest("--task must be transcribe or translate")
        return TranscribeOptions(
            task="translate" if self.task == "translate" else "transcribe",
            language=self.language,
            word_timestamps=True,
        )


def find_inputs(input_dir: Path) -> list[Path]:
    """The audio files under `input_dir`, by extension, in a stable order."""
    return sorted(p for p in input_dir.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES)


def output_paths(job: BatchJob, path: Path) -> dict[str, Path]:
    """Where the outputs of `path` go: OUT/<relative path>.<ext> (talk.wav -> talk.wav.json), so that
    talk.wav and talk.mp3 never share outputs."""
    relative = path.relative_to(job.input_dir)
    return {ext: job.output_dir / relative.parent / f"{relative.name}.{ext}" for ext in job.outputs}


def is_done(job: BatchJob, path: Path) -> bool:
    return all(p.exists() for p in output_paths(job, path).values())


async def _transcribe_on(
    manager: ModelManager,
    model: str,
    path: Path,
    options: TranscribeOptions,
    reached: Callable[[Path, float], None],
    diarize: bool = False,
) -> FileResult:
    """Decode one file (in a thread) and transcribe it on the model's resident workers, telling
    `reached` how far into its audio the transcript has got (long files report as they go)."""
    try:
        audio = await asyncio.to_thread(lambda: decode_audio(path.read_bytes()))
        if diarize:
            request = TranscribeRequest(audio, options, model)
            diarized = await speakers.transcribe_diarized(manager, request, DiarizeOptions())
            return FileResult.diarized(path, diarized, len(audio))
        updates = manager.transcribe_stream(TranscribeRequest(audio, options, model))
        transcript = await follow(updates, lambda seconds: reached(path, seconds))
        return FileResult.transcribed(path, transcript, len(audio))
    except (VoxhostError, OSError) as exc:
        return FileResult.failed(path, exc)


def write_outputs(job: BatchJob, result: FileResult) -> None:
    """Each output written to a temporary name and renamed, so a killed batch never leaves an output
    that looks finished; the JSON goes last."""
    targets = output_paths(job, result.path)
    for ext in job.outputs:
        target = targets[ext]
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(target.name + ".partial")
        partial.write_text(result.outputs[ext], encoding="utf-8")
        os.replace(partial, target)


def _progress(console: Console) -> Progress:
    return Progress(
        TextColumn("{task.description}"), BarColumn(), AudioSecondsColumn(), RealTimeColumn(),
        TimeRemainingColumn(), console=console, transient=True,
    )  # fmt: skip


class _Tally:
    """The batch's bar: seconds of audio transcribed out of the pending files' total, and files done.
    The total starts from what the files' headers declare (cheap to read, no decoding); as each file
    finishes, its real length (nothing, if it failed) replaces that estimate, so the bar ends full."""

    def __init__(self, progress: Progress, files: list[Path]) -> None:
        self.progress = progress
        self.expected = {path: probe_seconds(path) or 0.0 for path in files}
        self.reached: dict[Path, float] = {}
        self.total = sum(self.expected.values())
        self.completed = 0.0
        self.files = len(files)
        self.done = 0
        self.bar = progress.add_task(self._description(), total=self.total or None)

    def _description(self) -> str:
        return f"{self.done}/{self.files} files"

    def _set(self, path: Path, seconds: float) -> None:
        self.completed += seconds - self.reached.get(path, 0.0)
        self.reached[path] = seconds

    def advance(self, path: Path, seconds: float) -> None:
        """A transcript update: the file is transcribed up to `seconds` into its audio."""
        if seconds > self.reached.get(path, 0.0):
            self._set(path, min(seconds, self.expected.get(path) or seconds))
            self.progress.update(self.bar, completed=self.completed)

    def finish(self, result: FileResult) -> None:
        seconds = result.audio_seconds if result.error is None else 0.0
        self.total += seconds - self.expected.get(result.path, 0.0)
        self.expected[result.path] = seconds
        self._set(result.path, seconds)
        self.done += 1
        self.progress.update(
            self.bar, total=self.total or None, completed=self.completed, description=self._description()
        )


async def _run_local(
    job: BatchJob,
    settings: Settings,
    files: list[Path],
    done: Callable[[FileResult], None],
    reached: Callable[[Path, float], None],
) -> None:
    """As many files in flight as the model has inference slots; each slot takes the next file."""
    options = job.options()
    async with ModelManager(settings) as manager:
        spec = manager.resolve(job.model, "asr")
        (status,) = manager.status(spec.id)
        pending = iter(files)

        async def slot() -> None:
            for path in pending:
                done(await _transcribe_on(manager, spec.id, path, options, reached, job.diarize))

        await asyncio.gather(*(slot() for _ in range(status.layout["replicas"] * status.layout["parallel"])))


def run_batch(job: BatchJob, settings: Settings, console: Console | None = None) -> int:
    """Run the batch; 0 when every file is transcribed, 1 when some failed, 2 when none could start."""
    console = console or Console(stderr=True)
    try:
        job.options()
        if not job.input_dir.is_dir():
            raise BadRequest(f"{job.input_dir} is not a folder")
        inputs = find_inputs(job.input_dir)
        skipped = [p for p in inputs if is_done(job, p)]
        pending = [p for p in inputs if not is_done(job, p)]
        console.print(
            f"{len(inputs)} audio files in {escape(str(job.input_dir))}: {len(skipped)} done before, "
            f"{len(pending)} to transcribe"
            + (f" on Ray Data ({job.actors} actors)" if job.ray else "")
            + (f" as jobs on {job.url}" if job.url else "")
        )
        started = time.monotonic()
        results: list[FileResult] = []
        with _progress(console) as progress:
            tally = _Tally(progress, pending)

            def done(result: FileResult) -> None:
                if result.error is None:
                    write_outputs(job, result)
                else:
                    console.print(f"[red]{escape(str(result.path))}: {escape(result.error)}[/]")
                results.append(result)
                tally.finish(result)

            if not pending:
                pass
            elif job.url:
                from voxhost.batch.remote import run_on_server

                fields = {"model": job.model, "language": job.language, "task": job.task}
                if job.diarize:
                    fields["diarize"] = "true"
                run_on_server(job.url, job.api_key, pending, fields, done, tally.advance)
            elif job.ray:
                from voxhost.scale.data import run_on_ray

                for result in run_on_ray(
                    settings, pending, job.model, job.options(), job.actors, job.diarize
                ):
                    done(result)
            else:
                asyncio.run(_run_local(job, settings, pending, done, tally.advance))
        summary = _summary(job, settings, inputs, skipped, results, time.monotonic() - started)
        job.output_dir.mkdir(parents=True, exist_ok=True)
        (job.output_dir / SUMMARY).write_text(
            json.dumps(summary, indent=2, ensure_ascii=False), encoding="utf-8"
        )
        console.print(
            f"transcribed {summary['transcribed']}, skipped {len(skipped)}, failed {len(summary['failed'])}; "
            f"{summary['audio_seconds'] / 3600:.2f} h of audio in {summary['wall_seconds']:.0f} s "
            f"({summary['audio_hours_per_hour']:.1f} audio-hours per hour); summary in "
            f"{escape(str(job.output_dir / SUMMARY))}"
        )
        return 1 if summary["failed"] else 0
    except VoxhostError as exc:
        console.print(f"[red]error:[/] {exc.message}")
        return 2


def _summary(
    job: BatchJob,
    settings: Settings,
    inputs: list[Path],
    skipped: list[Path],
    results: Iterable[FileResult],
    seconds: float,
) -> dict[str, Any]:
    results = list(results)
    ok = [r for r in results if r.error is None]
    audio = sum(r.audio_seconds for r in ok)
    return {
        "input_dir": str(job.input_dir),
        "model": job.model or settings.default_model or settings.models[0],
        "runner": f"jobs on {job.url}"
        if job.url
        else f"ray data, {job.actors} actors"
        if job.ray
        else "local workers",
        "files": len(inputs),
        "transcribed": len(ok),
        "skipped": [str(p.relative_to(job.input_dir)) for p in skipped],
        "failed": [
            {"file": str(r.path.relative_to(job.input_dir)), "error": r.error} for r in results if r.error
        ],
        "audio_seconds": round(audio, 2),
        "wall_seconds": round(seconds, 2),
        "audio_hours_per_hour": round(audio / seconds, 2) if seconds > 0 else 0.0,
    }
