"""The `voxhost` command line. Each command maps its flags onto `Settings` and calls into the package.

The flags that set a Settings field are generated from the field (voxhost.cli.options): `serve` takes one
for every field, the other commands the few they use.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

from voxhost import __version__
from voxhost.cli.jobs import app as jobs_app
from voxhost.cli.options import SERVE_FIELDS, settings_flags
from voxhost.errors import VoxhostError
from voxhost.settings import Settings, flag_name

app = typer.Typer(help="voxhost: a self-hosted speech server.", no_args_is_help=True, add_completion=False)


def _settings(**flags: Any) -> Settings:
    """Settings from the environment, overridden by the flags the user actually gave."""
    from pydantic import ValidationError

    overrides = {k: v for k, v in flags.items() if v is not None and v != []}
    try:
        return Settings(**overrides)
    except ValidationError as exc:  # name each bad value by where it came from: a flag or the environment
        problems = []
        for error in exc.errors():
            field = str(error["loc"][0]) if error["loc"] else ""
            where = flag_name(field) if field in overrides else f"VOXHOST_{field.upper()}"
            problems.append((f"'{where}'" if field else None, error["msg"]))
        if len(problems) == 1:
            raise typer.BadParameter(problems[0][1], param_hint=problems[0][0]) from None
        raise typer.BadParameter("; ".join(f"{w}: {m}" if w else m for w, m in problems)) from None
    except Exception as exc:  # e.g. a VOXHOST_* list that is not valid JSON
        raise typer.BadParameter(str(exc)) from None


def _version(value: bool) -> None:
    if value:
        typer.echo(f"voxhost {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version.")
    ] = False,
) -> None:
    pass


Opt = typer.Option


@app.command()
@settings_flags(*SERVE_FIELDS)
def serve(**flags: Any) -> None:
    """Start the HTTP server (OpenAI-compatible API) with resident model workers, or on Ray Serve.

    Every flag can also be set as the environment variable VOXHOST_<SETTING> (voxhost config --reference
    lists them); a flag given overrides it.
    """
    settings = _settings(**flags)
    if settings.ray:
        from voxhost.scale.serve import run

        run(settings)
        return
    from voxhost.server import run_server

    run_server(settings)


@app.command()
@settings_flags(
    "device",
    "compute_type",
    "threads",
    "diarization_model",
    "diarization_segmentation",
    "diarization_clustering",
)
def transcribe(
    files: Annotated[list[Path], typer.Argument(help="Audio files (with --live: one file, or - for stdin).")],
    model: Annotated[str | None, Opt("--model", "-m", help="Model name, directory or hub name.")] = None,
    language: Annotated[str | None, Opt(help="Spoken language (ISO-639-1); detected if omitted.")] = None,
    task: Annotated[str, typer.Option(help="transcribe or translate.")] = "transcribe",
    output_format: Annotated[
        str,
        typer.Option(
            "--format", "-f", help="text, json, verbose_json, srt, vtt, diarized_json or rttm (speakers)."
        ),
    ] = "text",
    output_dir: Annotated[
        Path | None, typer.Option("--output-dir", "-o", help="Write FILE.<format> here instead of stdout.")
    ] = None,
    url: Annotated[str | None, typer.Option(help="Use a running server, e.g. http://127.0.0.1:8000.")] = None,
    live: Annotated[
        bool, Opt("--live", help="Stream one file (or '-': stdin PCM) and show partials.")
    ] = False,
    pace: Annotated[
        float, Opt(min=0, help="--live: playback speed (1: real time, 0: as fast as possible).")
    ] = 1.0,
    sample_rate: Annotated[int, Opt(help="--live from stdin: rate of the 16-bit mono PCM.")] = 16000,
    diarize: Annotated[
        bool, Opt("--diarize", help="Label speakers: srt [A], vtt <v A>, verbose_json, diarized_json, rttm.")
    ] = False,
    num_speakers: Annotated[
        int | None, Opt(min=1, help="--diarize: the number of speakers, if known.")
    ] = None,
    **flags: Any,
) -> None:
    """Transcribe files: in this process (the model loads once for all files), or through --url."""
    from voxhost.cli.transcribe import TranscribeJob, run_transcribe

    for path in files:
        if str(path) != "-" and not path.is_file():
            raise typer.BadParameter(f"File '{path}' does not exist.", param_hint="'files'")
    settings = _settings(log_level="warning", **flags)
    if live:
        from voxhost.cli.live import run_live

        if len(files) != 1:
            raise typer.BadParameter("--live takes exactly one file (or '-' for stdin)")
        sys.exit(
            run_live(
                files[0],
                settings,
                url=url,
                model=model,
                language=language,
                pace=pace,
                sample_rate=sample_rate,
            )
        )
    job = TranscribeJob(
        files=files, model=model, language=language, task=task, output_format=output_format,
        output_dir=output_dir, url=url, diarize=diarize, num_speakers=num_speakers,
    )  # fmt: skip
    sys.exit(run_transcribe(job, settings))


@app.command()
@settings_flags(
    "threads",
    "parallel",
    "cache_dir",
    "ray_address",
    "diarization_model",
    "diarization_segmentation",
    "diarization_clustering",
)
def batch(
    input_dir: Annotated[Path, typer.Argument(help="Folder of audio files (searched recursively).")],
    output_dir: Annotated[Path, Opt("--output-dir", "-o", help="Where FILE.json/.txt/.srt/.vtt go.")],
    model: Annotated[str | None, Opt("--model", "-m", help="Model name, directory or hub name.")] = None,
    language: Annotated[str | None, Opt(help="Spoken language (ISO-639-1); detected if omitted.")] = None,
    task: Annotated[str, Opt(help="transcribe or translate.")] = "transcribe",
    ray: Annotated[bool, Opt("--ray", help="Run on Ray Data (needs voxhost[ray]).")] = False,
    actors: Annotated[int, Opt(min=1, help="--ray: actors, each holding the model.")] = 1,
    url: Annotated[str | None, Opt(help="Send the files to this server as transcription jobs.")] = None,
    api_key: Annotated[
        str | None, Opt("--api-key", envvar="VOXHOST_CLIENT_API_KEY", help="--url: the server's API key.")
    ] = None,
    diarize: Annotated[
        bool, Opt("--diarize", help="Label speakers in every output, and write FILE.rttm (who spoke when).")
    ] = False,
    **flags: Any,
) -> None:
    """Transcribe every audio file in a folder; files already done are skipped (resumable)."""
    from voxhost.batch.job import BatchJob, run_batch

    models = [model] if model and not url else None
    settings = _settings(models=models, log_level="warning", **flags)
    job = BatchJob(
        input_dir,
        output_dir,
        model,
        language,
        task,
        ray=ray,
        actors=actors,
        url=url,
        api_key=api_key,
        diarize=diarize,
    )
    sys.exit(run_batch(job, settings))


app.add_typer(jobs_app, name="jobs")

models_app = typer.Typer(
    help="Models: what can be served, and the model cache on disk.", add_completion=False
)
app.add_typer(models_app, name="models")


@models_app.callback(invoke_without_command=True)
@settings_flags("models", "default_model", "cache_dir")
def models(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    **flags: Any,
) -> None:
    """List the models voxhost can serve, whether each is installed, and which ones are served."""
    if ctx.invoked_subcommand is not None:
        return
    from voxhost.cli.catalog import print_catalog

    settings = _settings(**flags)
    raise typer.Exit(print_catalog(settings, as_json=as_json))


@models_app.command("pull")
@settings_flags("cache_dir")
def models_pull(
    name: Annotated[
        str, typer.Argument(help="A hub name: small, large-v3, org/repo, en_US-lessac-medium...")
    ],
    **flags: Any,
) -> None:
    """Download a model into the cache through its engine's own hub logic (needs the model hub)."""
    from voxhost.cli.store import pull

    settings = _settings(**flags)
    try:
        from rich.console import Console

        where = pull(name, settings.cache_dir, Console(stderr=True))
    except VoxhostError as exc:
        _fail(exc.message)
    except OSError as exc:
        _fail(f"could not download {name}: {exc}. Is the model hub reachable from here? (The embedded "
              "models work offline: voxhost models)")  # fmt: skip
    typer.echo(f"{name}: {where}")


@models_app.command("rm")
@settings_flags("cache_dir")
def models_rm(
    name: Annotated[str, typer.Argument(help="A name from `voxhost models du`.")],
    **flags: Any,
) -> None:
    """Delete a model's files from the cache (an embedded model's joined file is made again on next use)."""
    from voxhost.cli.store import remove

    settings = _settings(**flags)
    try:
        freed = remove(name, settings.cache_dir)
    except VoxhostError as exc:
        _fail(exc.message)
    typer.echo(f"removed {name}: {freed / 2**20:.0f} MiB freed")


@models_app.command("du")
@settings_flags("cache_dir")
def models_du(**flags: Any) -> None:
    """Disk used by each model in the cache."""
    from rich.console import Console
    from rich.table import Table

    from voxhost.cli.store import cached

    settings = _settings(**flags)
    table = Table(title=f"model cache: {settings.cache_dir}", show_edge=False)
    for column in ("name", "engine", "kind", "MiB", "where"):
        table.add_column(column, overflow="fold")
    entries = cached(settings.cache_dir)
    for entry in entries:
        table.add_row(entry.name, entry.engine, entry.kind, f"{entry.size / 2**20:.1f}", str(entry.paths[0]))
    console = Console()
    console.print(table)
    console.print(f"total {sum(e.size for e in entries) / 2**20:.1f} MiB")


def _fail(message: str) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)


@app.command()
def config(
    reference: Annotated[
        bool, Opt("--reference", help="Print the settings reference (Markdown) instead of the values.")
    ] = False,
) -> None:
    """Print the settings `voxhost serve` would use (defaults + VOXHOST_* environment), as JSON."""
    from voxhost.settings import reference_markdown

    if reference:
        typer.echo(reference_markdown(), nl=False)
        return
    typer.echo(_settings().model_dump_json(indent=2))


@app.command()
@settings_flags("models", "host", "port", "wyoming_uri", "cache_dir", "offline")
def doctor(**flags: Any) -> None:
    """Check the install (engines, models, ports, CPU, cache) and say what to do about each problem."""
    from voxhost.cli.doctor import run_doctor

    settings = _settings(**flags)
    raise typer.Exit(run_doctor(settings))


@app.command()
def bench(
    calls: Annotated[int, typer.Option(min=1, max=10000, help="Timed calls per contender.")] = 20,
    rss_calls: Annotated[
        int, typer.Option(min=0, max=100000, help="Calls between RSS readings (asr).")
    ] = 200,
    model: Annotated[
        str, typer.Option("--model", "-m", help="ASR model to benchmark (tts: also served, idle).")
    ] = "tiny.en",
    json_path: Annotated[
        Path | None, typer.Option("--json", help="Also write the figures as JSON here ('-': stdout).")
    ] = None,
    wav: Annotated[
        Path | None, typer.Option(help="Speech clip to use instead of Piper.", exists=True, dir_okay=False)
    ] = None,
    task: Annotated[
        str,
        typer.Option(help="asr: server overhead for Whisper; tts: time to first audio and RTF; all: both."),
    ] = "asr",
    tts_model: Annotated[
        list[str] | None,
        typer.Option(
            "--tts-model", help="TTS model to benchmark, repeatable (default: en_US-joe-medium and kokoro)."
        ),
    ] = None,
) -> None:
    """Measure what serving costs: ASR overhead (the server vs in-process faster-whisper vs reloading the
    model per call), and/or TTS time to first audio and real-time factor (the server vs in-process)."""
    from voxhost.benchmarks import TASKS, TTS_MODELS, run_and_report

    if task not in TASKS:
        raise typer.BadParameter(f"choose one of {', '.join(TASKS)}", param_hint="--task")
    tts_models = tuple(tts_model or TTS_MODELS)
    code = run_and_report(
        calls=calls, rss_calls=rss_calls, model=model, json_path=json_path, wav=wav, task=task,
        tts_models=tts_models,
    )  # fmt: skip
    sys.exit(code)


@app.command()
@settings_flags("models", "cache_dir", "wake_refractory", "api_key")
def listen(
    source: Annotated[Path, typer.Argument(help="An audio file, or - for 16-bit mono PCM on stdin.")],
    names: Annotated[
        str | None, Opt(help="Wake words to listen for, comma-separated (default: all of the model's).")
    ] = None,
    transcribe: Annotated[
        bool, Opt("--transcribe", help="Also transcribe what is said after each wake word.")
    ] = False,
    url: Annotated[str | None, Opt(help="Use a running server, e.g. http://127.0.0.1:8000.")] = None,
    pace: Annotated[
        float, Opt(min=0, help="File playback speed (1: real time, 0: as fast as possible).")
    ] = 0.0,
    sample_rate: Annotated[int, Opt(help="Rate of the PCM on stdin.")] = 16000,
    **flags: Any,
) -> None:
    """Wake words in a file or a microphone's PCM on stdin (models from --model: the first wake model,
    else microwakeword; the first ASR model for --transcribe), in this process or through --url. Exit
    status 0 when a wake word was heard, 1 when none was."""
    from voxhost.cli.listen import run_listen

    if str(source) != "-" and not source.is_file():
        raise typer.BadParameter(f"File '{source}' does not exist.", param_hint="'source'")
    words = [n.strip() for n in names.split(",") if n.strip()] if names else None
    settings = _settings(log_level="warning", **flags)
    sys.exit(
        run_listen(
            source, settings, url=url, names=words, transcribe=transcribe, pace=pace, sample_rate=sample_rate
        )
    )


@app.command()
def speak(
    text: Annotated[
        str | None, typer.Argument(help="Text to speak; read from stdin if omitted or '-'.")
    ] = None,
    output: Annotated[Path, Opt("--output", "-o", help="Audio file to write ('-': stdout).")] = Path(
        "speech.wav"
    ),
    model: Annotated[str | None, Opt("--model", "-m", help="TTS model (default: the default voice).")] = None,
    voice: Annotated[str | None, Opt(help="Voice id or OpenAI voice name.")] = None,
    output_format: Annotated[
        str | None, Opt("--format", "-f", help="mp3, opus, aac, flac, wav or pcm [default: from -o].")
    ] = None,
    speed: Annotated[float, Opt(min=0.25, max=4.0, help="Speaking rate.")] = 1.0,
    url: Annotated[str | None, Opt(help="Use a running server, e.g. http://127.0.0.1:8000.")] = None,
) -> None:
    """Synthesize speech to a file, in this process or through --url."""
    from voxhost.cli.speak import SpeakJob, run_speak

    if text is None or text == "-":
        text = sys.stdin.read()
    job = SpeakJob(
        text=text, output=output, model=model, voice=voice, output_format=output_format, speed=speed, url=url
    )
    sys.exit(run_speak(job, _settings(log_level="warning")))


@app.command()
def status(
    url: Annotated[str, Opt(help="The server.")] = "http://127.0.0.1:8000",
    as_json: Annotated[bool, Opt("--json", help="Print the raw JSON.")] = False,
    watch: Annotated[float, Opt(min=0, help="Refresh every N seconds (0: once).")] = 0,
) -> None:
    """Show a running server's models, workers, memory and queues."""
    from voxhost.cli.status import run_status

    raise typer.Exit(run_status(url, as_json=as_json, watch=watch))


def main() -> None:
    app()
