"""`voxhost speak`: text to an audio file, in-process or through a running server's speech API."""

from __future__ import annotations

import sys
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import httpx
from rich.console import Console

from voxhost.audio.encode import PCM_RATE, SPEECH_FORMATS, StreamEncoder
from voxhost.engines import TTSEngine
from voxhost.errors import BadRequest, VoxhostError
from voxhost.manager.layout import engine_config
from voxhost.manager.registry import ModelRegistry, parse_entry
from voxhost.settings import Settings

SUFFIX_FORMATS = {
    ".mp3": "mp3", ".ogg": "opus", ".opus": "opus", ".aac": "aac", ".flac": "flac", ".wav": "wav",
    ".pcm": "pcm", ".raw": "pcm",
}  # fmt: skip


@dataclass(frozen=True)
class SpeakJob:
    """What `voxhost speak` was asked to do: `text` spoken into `output` ('-': stdout), by `model` and
    `voice` (None: the defaults), as `output_format` (None: from the suffix), through the server at `url`
    (None: in this process)."""

    text: str
    output: Path
    model: str | None = None
    voice: str | None = None
    output_format: str | None = None
    speed: float = 1.0
    url: str | None = None

    @property
    def format(self) -> str:
        fmt = self.output_format or SUFFIX_FORMATS.get(self.output.suffix.lower(), "wav")
        if fmt not in SPEECH_FORMATS:
            raise BadRequest(f"unknown format {fmt!r}; choose one of {', '.join(SPEECH_FORMATS)}")
        return fmt


def _open_output(path: Path) -> AbstractContextManager[BinaryIO]:
    if str(path) == "-":
        return nullcontext(sys.stdout.buffer)
    return path.open("wb")


def run_local(job: SpeakJob, settings: Settings, console: Console) -> None:
    if job.model:
        spec = parse_entry(job.model)
    else:
        registry = ModelRegistry.from_settings(settings)
        spec = registry.get(None, "tts")
    config = engine_config(settings)
    with console.status(f"loading {spec.id}..."):
        engine = spec.load(config)
    if not isinstance(engine, TTSEngine):
        raise BadRequest(f"{spec.id} is not a text-to-speech model")
    fmt = job.format
    encoder = StreamEncoder(fmt, engine.sample_rate, PCM_RATE if fmt == "pcm" else None)
    with _open_output(job.output) as out, console.status("speaking..."):
        for chunk in engine.synthesize(job.text, job.voice, job.speed):
            out.write(encoder.encode(chunk))
        out.write(encoder.close())


def run_remote(job: SpeakJob, console: Console) -> None:
    assert job.url is not None
    body: dict[str, object] = {"input": job.text, "response_format": job.format, "speed": job.speed}
    if job.model:
        body["model"] = job.model
    if job.voice:
        body["voice"] = job.voice
    endpoint = job.url.rstrip("/") + "/v1/audio/speech"
    with httpx.stream("POST", endpoint, json=body, timeout=httpx.Timeout(30.0, read=None)) as response:
        if response.status_code != 200:
            response.read()
            try:
                message = response.json()["error"]["message"]
            except (ValueError, KeyError, TypeError):
                message = response.text
            raise BadRequest(f"server answered {response.status_code}: {message}")
        with _open_output(job.output) as out:
            for data in response.iter_bytes():
                out.write(data)


def run_speak(job: SpeakJob, settings: Settings) -> int:
    console = Console(stderr=True)
    try:
        if not job.text.strip():
            raise BadRequest("there is no text to speak")
        if job.url:
            run_remote(job, console)
        else:
            run_local(job, settings, console)
    except VoxhostError as exc:
        console.print(f"[red]error:[/] {exc.message}", highlight=False)
        return 2
    except httpx.HTTPError as exc:
        console.print(f"[red]error:[/] cannot reach {job.url}: {exc}", highlight=False)
        return 2
    if str(job.output) != "-":
        console.print(f"wrote {job.output}", highlight=False)
    return 0
