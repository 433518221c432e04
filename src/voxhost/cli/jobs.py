"""`voxhost jobs`: transcription jobs on a server: submit files (and wait, with a progress bar), list,
show, fetch a result, cancel (through `voxhost.jobs.client`)."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from voxhost.cli.progress import AudioSecondsColumn, RealTimeColumn
from voxhost.jobs.client import JobsClient, JobsError

DEFAULT_URL = "http://127.0.0.1:8000"

app = typer.Typer(help="Transcription jobs on a server (/v1/jobs).", add_completion=False)
Opt = typer.Option
Url = Annotated[str, Opt(envvar="VOXHOST_URL", help="The server.")]
Key = Annotated[
    str | None,
    Opt("--api-key", envvar="VOXHOST_CLIENT_API_KEY", help="The server's API key, if it has keys."),
]


def _fail(message: str) -> NoReturn:
    Console(stderr=True).print(f"[red]error:[/red] {message}")
    raise typer.Exit(1)


@contextlib.contextmanager
def _client(url: str, api_key: str | None) -> Iterator[JobsClient]:
    """A client of the server's jobs API; an error it answers ends the command with its message."""
    with JobsClient(url, api_key) as client:
        try:
            yield client
        except JobsError as exc:
            _fail(str(exc))


def wait_with_progress(
    client: JobsClient, jobs: list[dict[str, Any]], console: Console
) -> list[dict[str, Any]]:
    """A progress bar per job (audio seconds done of the file's), until every job has ended."""
    ended = []
    with Progress(
        TextColumn("{task.description}"), BarColumn(), AudioSecondsColumn(), RealTimeColumn(),
        TextColumn("{task.fields[status]}"), TimeElapsedColumn(), console=console,
    ) as progress:  # fmt: skip
        bars = {
            job["id"]: progress.add_task(job["filename"], total=job["duration"], status=job["status"])
            for job in jobs
        }

        def moved(job: dict[str, Any]) -> None:
            progress.update(bars[job["id"]], completed=job["progress"]["audio_seconds"], status=job["status"])

        for job in client.wait(list(bars), moved):
            ended.append(job)
    return ended


@app.command()
def submit(
    files: Annotated[list[Path], typer.Argument(exists=True, dir_okay=False, help="Audio files.")],
    url: Url = DEFAULT_URL,
    api_key: Key = None,
    model: Annotated[str | None, Opt("--model", "-m", help="Model id or alias.")] = None,
    language: Annotated[str | None, Opt(help="Spoken language (ISO-639-1); detected if omitted.")] = None,
    task: Annotated[str, Opt(help="transcribe or translate.")] = "transcribe",
    response_format: Annotated[
        str | None,
        Opt(
            "--format",
            "-f",
            help="json, text, srt, vtt, verbose_json, diarized_json (default: json; "
            "diarized_json with --diarize).",
        ),
    ] = None,
    webhook_url: Annotated[str | None, Opt(help="POSTed a signed event when each job ends.")] = None,
    diarize: Annotated[
        bool, Opt("--diarize", help="Label speakers: diarized_json, srt [A], vtt <v A>, verbose_json.")
    ] = False,
    num_speakers: Annotated[
        int | None, Opt(min=1, help="--diarize: the number of speakers, if known.")
    ] = None,
    wait: Annotated[
        bool, Opt("--wait/--no-wait", help="Wait with a progress bar, then print results.")
    ] = True,
) -> None:
    """Submit files as jobs; with --wait (the default) follow them and print each result."""
    console = Console(stderr=True)
    with _client(url, api_key) as client:
        jobs = [
            client.submit(
                path,
                model=model,
                language=language,
                task=task,
                response_format=response_format or ("diarized_json" if diarize else "json"),
                webhook_url=webhook_url,
                diarize="true" if diarize else None,
                num_speakers=num_speakers if diarize else None,
            )
            for path in files
        ]
        for job in jobs:
            console.print(f"{job['id']}  {job['filename']}  {job['status']}")
        if not wait:
            return
        failed = 0
        for job in wait_with_progress(client, jobs, console):
            if job["status"] == "completed":
                typer.echo(client.result(job["id"]).rstrip("\n"))
            else:
                failed += 1
                console.print(f"{job['filename']}: {job['status']} {json.dumps(job['error'])}")
    if failed:
        raise typer.Exit(1)


@app.command("list")
def list_jobs(
    url: Url = DEFAULT_URL,
    api_key: Key = None,
    status: Annotated[str | None, Opt(help="Only jobs in this status.")] = None,
    limit: Annotated[int, Opt(min=1, max=100, help="How many (newest first).")] = 20,
) -> None:
    """The newest jobs, with their status and progress."""
    with _client(url, api_key) as client:
        jobs = client.page(status, limit)
    table = Table()
    table.add_column("id", no_wrap=True)  # to be copied whole
    table.add_column("file", overflow="ellipsis", max_width=30)
    for column in ("status", "progress", "duration", "created"):
        table.add_column(column)
    for job in jobs:
        created = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(job["created_at"]))
        table.add_row(job["id"], job["filename"], job["status"], f"{job['progress']['fraction']:.0%}",
                      f"{job['duration']:.0f} s", created)  # fmt: skip
    Console().print(table)


@app.command()
def show(job_id: str, url: Url = DEFAULT_URL, api_key: Key = None) -> None:
    """One job, as JSON."""
    with _client(url, api_key) as client:
        typer.echo(json.dumps(client.get(job_id), indent=2))


@app.command()
def result(
    job_id: str,
    url: Url = DEFAULT_URL,
    api_key: Key = None,
    response_format: Annotated[
        str | None, Opt("--format", "-f", help="Another format than the job's.")
    ] = None,
    output: Annotated[Path | None, Opt("--output", "-o", help="Write it to this file.")] = None,
) -> None:
    """A completed job's transcription."""
    with _client(url, api_key) as client:
        text = client.result(job_id, response_format)
    if output is None:
        typer.echo(text.rstrip("\n"))
    else:
        output.write_text(text, encoding="utf-8")


@app.command()
def cancel(job_id: str, url: Url = DEFAULT_URL, api_key: Key = None) -> None:
    """Cancel a queued or running job (a finished one is deleted)."""
    with _client(url, api_key) as client:
        job = client.cancel(job_id)
    typer.echo(f"{job['id']}: {'deleted' if job.get('deleted') else job['status']}")
