"""The `voxhost` command line. Each command maps its flags onto `Settings` and calls into the package."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

from voxhost import __version__
from voxhost.errors import VoxhostError
from voxhost.settings import Settings

app = typer.Typer(help="voxhost: a self-hosted speech server.", no_args_is_help=True, add_completion=False)


def _settings(**flags: Any) -> Settings:
    """Settings from the environment, overridden by the flags the user actually gave."""
    overrides = {k: v for k, v in flags.items() if v is not None and v != []}
    try:
        return Settings(**overrides)
    except Exception as exc:  # pydantic's message names the bad field
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


ModelOpt = Annotated[
    list[str] | None,
    typer.Option("--model", "-m", help="Model to serve (repeatable): embedded name, directory, or hub name."),
]


Opt = typer.Option


@app.command()
def serve(
    host: Annotated[str | None, Opt(help="Bind address [default: 127.0.0.1].")] = None,
    port: Annotated[int | None, Opt(help="Port [default: 8000].")] = None,
    wyoming: Annotated[
        bool | None, Opt("--wyoming/--no-wyoming", help="Serve Wyoming too [default: on].")
    ] = None,
    wyoming_uri: Annotated[str | None, Opt(help="Wyoming address [default: tcp://127.0.0.1:10300].")] = None,
    api_key: Annotated[
        list[str] | None, Opt(help="API key clients must send (repeatable); none: no auth.")
    ] = None,
    api_key_file: Annotated[Path | None, Opt(help="File of API keys, one per line.")] = None,
    cors_origin: Annotated[
        list[str] | None, Opt(help="Origin browsers may call the API from (repeatable; * for any).")
    ] = None,
    wyoming_open: Annotated[
        bool | None, Opt("--wyoming-open", help="Allow Wyoming beyond loopback while API keys are on.")
    ] = None,
    model: ModelOpt = None,
    default_model: Annotated[str | None, Opt(help="Default model of its task (ASR or TTS).")] = None,
    hd_tts_model: Annotated[str | None, Opt(help="Model behind the alias tts-1-hd.")] = None,
    device: Annotated[str | None, Opt(help="auto, cpu or cuda.")] = None,
    compute_type: Annotated[str | None, Opt(help="CTranslate2 compute type.")] = None,
    threads: Annotated[int | None, Opt(help="CPU threads per inference (0: all cores).")] = None,
    beam_size: Annotated[int | None, Opt(help="Whisper beam size [default: 5].")] = None,
    voice_file: Annotated[list[Path] | None, Opt(help="Extra Kokoro voice file (.npz), repeatable.")] = None,
    tts_language: Annotated[str | None, Opt(help="Kokoro's text language [default: en-us].")] = None,
    tts_quick_start: Annotated[
        bool | None,
        Opt(
            "--tts-quick-start/--no-tts-quick-start", help="Speak a long first sentence's first phrase alone."
        ),
    ] = None,
    ttl: Annotated[float | None, Opt(help="Idle seconds before a model unloads (0: never).")] = None,
    preload: Annotated[bool | None, Opt("--preload/--no-preload", help="Load models at start.")] = None,
    cache_dir: Annotated[Path | None, Opt(help="Model cache directory.")] = None,
    offline: Annotated[bool | None, Opt("--offline/--online", help="Never download models.")] = None,
    load_timeout: Annotated[float | None, Opt(help="Seconds a model load may take.")] = None,
    request_timeout: Annotated[float | None, Opt(help="Seconds one inference may take.")] = None,
    shutdown_grace: Annotated[float | None, Opt(help="Seconds in-flight requests get at shutdown.")] = None,
    retry_on_crash: Annotated[
        bool | None, Opt("--retry-on-crash/--no-retry-on-crash", help="Retry once when a worker dies.")
    ] = None,
    replicas: Annotated[int | None, Opt(help="Worker processes per model [default: 1].")] = None,
    parallel: Annotated[
        int | None, Opt(help="Inferences per worker at once (0: one per core for Whisper on CPU).")
    ] = None,
    max_queue: Annotated[int | None, Opt(help="Waiting requests per model before 429 [default: 32].")] = None,
    queue_timeout: Annotated[float | None, Opt(help="Seconds a request may wait for a slot.")] = None,
    chunk_seconds: Annotated[
        float | None, Opt(help="Audio longer than this is a long file, done in bounded calls (0: never).")
    ] = None,
    long_audio: Annotated[
        str | None, Opt(help="Long files: batched (VAD windows decoded together) or sequential.")
    ] = None,
    batch_size: Annotated[
        int | None, Opt(help="Windows decoded together on the batched path (0: 2 on CPU, 16 on GPU).")
    ] = None,
    batch_aging: Annotated[
        float | None, Opt(help="Seconds before a waiting piece of a long file counts as interactive.")
    ] = None,
    max_memory_mb: Annotated[float | None, Opt(help="Memory budget for all workers, MiB (0: none).")] = None,
    worker_max_rss_mb: Annotated[
        float | None, Opt(help="Replace a worker past this RSS in MiB between requests (0: never).")
    ] = None,
    max_upload_mb: Annotated[float | None, Opt(help="Upload limit in MiB.")] = None,
    max_input_chars: Annotated[int | None, Opt(help="Longest text for speech.")] = None,
    max_audio_seconds: Annotated[float | None, Opt(help="Longest audio per request, seconds.")] = None,
    max_stream_seconds: Annotated[float | None, Opt(help="Longest live stream, seconds of audio.")] = None,
    max_ws_message_kb: Annotated[int | None, Opt(help="Largest WebSocket message, KiB.")] = None,
    log_level: Annotated[str | None, Opt(help="critical, error, warning, info, debug.")] = None,
    log_format: Annotated[str | None, Opt(help="text or json.")] = None,
    ray: Annotated[
        bool | None, Opt("--ray", help="Serve on Ray Serve (needs voxhost[ray]); no Wyoming there.")
    ] = None,
    ray_address: Annotated[
        str | None, Opt(help="Ray cluster to join (auto, ray://host:10001); default: a local Ray.")
    ] = None,
    ray_max_replicas: Annotated[
        int | None, Opt(help="--ray: autoscale engine deployments up to this many replicas.")
    ] = None,
    ray_models_per_replica: Annotated[
        int | None, Opt(help="--ray: models one engine replica keeps loaded [default: 3].")
    ] = None,
) -> None:
    """Start the HTTP server (OpenAI-compatible API) with resident model workers, or on Ray Serve."""
    settings = _settings(
        host=host, port=port, wyoming=wyoming, wyoming_uri=wyoming_uri, models=model,
        api_key=api_key, api_key_file=api_key_file, cors_origins=cors_origin, wyoming_open=wyoming_open,
        default_model=default_model, hd_tts_model=hd_tts_model,
        device=device, compute_type=compute_type, threads=threads, beam_size=beam_size,
        voice_files=voice_file, tts_language=tts_language, tts_quick_start=tts_quick_start, ttl=ttl,
        preload=preload, cache_dir=cache_dir,
        offline=offline, load_timeout=load_timeout, request_timeout=request_timeout,
        shutdown_grace=shutdown_grace,
        retry_on_crash=retry_on_crash, max_upload_mb=max_upload_mb, max_input_chars=max_input_chars,
        max_audio_seconds=max_audio_seconds, max_stream_seconds=max_stream_seconds,
        max_ws_message_kb=max_ws_message_kb,
        replicas=replicas, parallel=parallel, max_queue=max_queue, queue_timeout=queue_timeout,
        chunk_seconds=chunk_seconds, long_audio=long_audio, batch_size=batch_size,
        batch_aging=batch_aging, max_memory_mb=max_memory_mb,
        worker_max_rss_mb=worker_max_rss_mb,
        log_level=log_level, log_format=log_format,
        ray=ray, ray_address=ray_address, ray_max_replicas=ray_max_replicas,
        ray_models_per_replica=ray_models_per_replica,
    )  # fmt: skip
    if settings.ray:
        from voxhost.scale.serve import run

        run(settings)
        return
    from voxhost.server import run_server

    run_server(settings)


@app.command()
def transcribe(
    files: Annotated[list[Path], typer.Argument(help="Audio files (with --live: one file, or - for stdin).")],
    model: Annotated[str | None, Opt("--model", "-m", help="Model name, directory or hub name.")] = None,
    language: Annotated[str | None, Opt(help="Spoken language (ISO-639-1); detected if omitted.")] = None,
    task: Annotated[str, typer.Option(help="transcribe or translate.")] = "transcribe",
    output_format: Annotated[
        str, typer.Option("--format", "-f", help="text, json, verbose_json, srt or vtt.")
    ] = "text",
    output_dir: Annotated[
        Path | None, typer.Option("--output-dir", "-o", help="Write FILE.<format> here instead of stdout.")
    ] = None,
    url: Annotated[str | None, typer.Option(help="Use a running server, e.g. http://127.0.0.1:8000.")] = None,
    device: Annotated[str | None, typer.Option(help="auto, cpu or cuda.")] = None,
    compute_type: Annotated[str | None, typer.Option(help="CTranslate2 compute type.")] = None,
    threads: Annotated[int | None, typer.Option(help="CPU threads per inference (0: all cores).")] = None,
    live: Annotated[
        bool, Opt("--live", help="Stream one file (or '-': stdin PCM) and show partials.")
    ] = False,
    pace: Annotated[
        float, Opt(min=0, help="--live: playback speed (1: real time, 0: as fast as possible).")
    ] = 1.0,
    sample_rate: Annotated[int, Opt(help="--live from stdin: rate of the 16-bit mono PCM.")] = 16000,
) -> None:
    """Transcribe files: in this process (the model loads once for all files), or through --url."""
    from voxhost.transcriber import TranscribeJob, run_transcribe

    for path in files:
        if str(path) != "-" and not path.is_file():
            raise typer.BadParameter(f"File '{path}' does not exist.", param_hint="'files'")
    settings = _settings(device=device, compute_type=compute_type, threads=threads, log_level="warning")
    if live:
        from voxhost.live_client import run_live

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
        output_dir=output_dir, url=url,
    )  # fmt: skip
    sys.exit(run_transcribe(job, settings))


@app.command()
def batch(
    input_dir: Annotated[Path, typer.Argument(help="Folder of audio files (searched recursively).")],
    output_dir: Annotated[Path, Opt("--output-dir", "-o", help="Where FILE.json/.txt/.srt/.vtt go.")],
    model: Annotated[str | None, Opt("--model", "-m", help="Model name, directory or hub name.")] = None,
    language: Annotated[str | None, Opt(help="Spoken language (ISO-639-1); detected if omitted.")] = None,
    task: Annotated[str, Opt(help="transcribe or translate.")] = "transcribe",
    ray: Annotated[bool, Opt("--ray", help="Run on Ray Data (needs voxhost[ray]).")] = False,
    ray_address: Annotated[str | None, Opt(help="Ray cluster to join; default: a local Ray.")] = None,
    actors: Annotated[int, Opt(min=1, help="--ray: actors, each holding the model.")] = 1,
    threads: Annotated[int | None, Opt(help="CPU threads per inference (0: all cores).")] = None,
    parallel: Annotated[int | None, Opt(help="Local: files transcribed at once per worker.")] = None,
    cache_dir: Annotated[Path | None, Opt(help="Model cache directory.")] = None,
) -> None:
    """Transcribe every audio file in a folder; files already done are skipped (resumable)."""
    from voxhost.batch import BatchJob, run_batch

    models = [model] if model else None
    settings = _settings(
        models=models, threads=threads, parallel=parallel, cache_dir=cache_dir, ray_address=ray_address,
        log_level="warning",
    )  # fmt: skip
    job = BatchJob(input_dir, output_dir, model, language, task, ray=ray, actors=actors)
    sys.exit(run_batch(job, settings))


models_app = typer.Typer(
    help="Models: what can be served, and the model cache on disk.", add_completion=False
)
app.add_typer(models_app, name="models")
CacheDirOpt = Annotated[Path | None, typer.Option(help="Model cache directory.")]


@models_app.callback(invoke_without_command=True)
def models(
    ctx: typer.Context,
    model: ModelOpt = None,
    default_model: Annotated[str | None, typer.Option(help="Default model id.")] = None,
    cache_dir: CacheDirOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """List the models voxhost can serve, whether each is installed, and which ones are served."""
    if ctx.invoked_subcommand is not None:
        return
    from voxhost.catalog import print_catalog

    settings = _settings(models=model, default_model=default_model, cache_dir=cache_dir)
    raise typer.Exit(print_catalog(settings, as_json=as_json))


@models_app.command("pull")
def models_pull(
    name: Annotated[
        str, typer.Argument(help="A hub name: small, large-v3, org/repo, en_US-lessac-medium...")
    ],
    cache_dir: CacheDirOpt = None,
) -> None:
    """Download a model into the cache through its engine's own hub logic (needs the model hub)."""
    from voxhost.store import pull

    settings = _settings(cache_dir=cache_dir)
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
def models_rm(
    name: Annotated[str, typer.Argument(help="A name from `voxhost models du`.")],
    cache_dir: CacheDirOpt = None,
) -> None:
    """Delete a model's files from the cache (an embedded model's joined file is made again on next use)."""
    from voxhost.store import remove

    settings = _settings(cache_dir=cache_dir)
    try:
        freed = remove(name, settings.cache_dir)
    except VoxhostError as exc:
        _fail(exc.message)
    typer.echo(f"removed {name}: {freed / 2**20:.0f} MiB freed")


@models_app.command("du")
def models_du(cache_dir: CacheDirOpt = None) -> None:
    """Disk used by each model in the cache."""
    from rich.console import Console
    from rich.table import Table

    from voxhost.store import cached

    settings = _settings(cache_dir=cache_dir)
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
def doctor(
    model: ModelOpt = None,
    host: Annotated[str | None, Opt(help="HTTP address to check [default: 127.0.0.1].")] = None,
    port: Annotated[int | None, Opt(help="HTTP port to check [default: 8000].")] = None,
    wyoming_uri: Annotated[str | None, Opt(help="Wyoming address to check.")] = None,
    cache_dir: CacheDirOpt = None,
    offline: Annotated[bool | None, Opt("--offline/--online", help="Check as for --offline.")] = None,
) -> None:
    """Check the install (engines, models, ports, CPU, cache) and say what to do about each problem."""
    from voxhost.doctor import run_doctor

    settings = _settings(
        models=model, host=host, port=port, wyoming_uri=wyoming_uri, cache_dir=cache_dir, offline=offline
    )
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
    from voxhost.benchmark import TASKS, TTS_MODELS, run_and_report

    if task not in TASKS:
        raise typer.BadParameter(f"choose one of {', '.join(TASKS)}", param_hint="--task")
    tts_models = tuple(tts_model or TTS_MODELS)
    code = run_and_report(
        calls=calls, rss_calls=rss_calls, model=model, json_path=json_path, wav=wav, task=task,
        tts_models=tts_models,
    )  # fmt: skip
    sys.exit(code)


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
    from voxhost.speaker import SpeakJob, run_speak

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
    from voxhost.status_view import run_status

    raise typer.Exit(run_status(url, as_json=as_json, watch=watch))


def main() -> None:
    app()
