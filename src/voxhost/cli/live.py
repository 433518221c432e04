"""`voxhost transcribe --live`: play a file (or stdin PCM) at real-time pace and show words as they come.

With `--url` the audio goes to a server's live WebSocket; without, the same `LiveTranscriber` runs in this
process on a locally loaded model.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.live import Live
from rich.text import Text

from voxhost.audio.decode import SAMPLE_RATE, PcmConverter, decode_audio, float_to_pcm16
from voxhost.engines import ASREngine
from voxhost.errors import BadRequest
from voxhost.manager.layout import engine_config
from voxhost.manager.live import LiveEvent, LiveTranscriber
from voxhost.manager.registry import parse_entry
from voxhost.results import TranscribeOptions, Transcription
from voxhost.settings import Settings

STEP = 0.1  # seconds of audio per message


async def _chunks(source: Path, sample_rate: int, pace: float) -> AsyncIterator[np.ndarray]:
    """16 kHz float32 chunks of STEP seconds, released at `pace` x real time (0: at once)."""
    if str(source) == "-":
        converter = PcmConverter(sample_rate, 2, 1)
        reader = asyncio.StreamReader()
        loop = asyncio.get_running_loop()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin.buffer)
        while data := await reader.read(int(2 * sample_rate * STEP)):
            yield converter.convert(data)  # stdin is live already: no extra pacing
        yield converter.flush()
        return
    audio = decode_audio(await asyncio.to_thread(source.read_bytes))
    step = int(SAMPLE_RATE * STEP)
    started = time.monotonic()
    for i in range(0, len(audio), step):
        if pace:
            await asyncio.sleep(max(0.0, started + i / SAMPLE_RATE * pace - time.monotonic()))
        yield audio[i : i + step]
    yield np.zeros(int(SAMPLE_RATE * 1.0), dtype=np.float32)  # a second of silence closes the last utterance


class _Screen:
    """Final lines scroll up; the utterance in progress shows committed words bold, tentative ones dim."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.live = Live(Text(""), console=console, transient=True, auto_refresh=False)
        self.finals: list[str] = []

    def __enter__(self) -> _Screen:
        self.live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.live.__exit__(None, None, None)

    def show(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind == "partial":
            line = Text(message.get("committed", ""), style="bold")
            line.append(" " + message.get("tentative", ""), style="dim")
            self.live.update(line, refresh=True)
        elif kind == "final":
            self.live.update(Text(""), refresh=True)
            print(message["text"], flush=True)
        elif kind == "error":
            self.console.print(f"[red]error:[/] {message.get('message')}", highlight=False)


async def _run_local(
    source: Path,
    settings: Settings,
    model: str | None,
    language: str | None,
    pace: float,
    rate: int,
    screen: _Screen,
) -> None:
    spec = parse_entry(model or settings.models[0])
    config = engine_config(settings)
    engine = spec.load(config)
    if not isinstance(engine, ASREngine):
        raise BadRequest(f"{spec.id} is not a speech-to-text model")
    asr = engine

    async def transcribe(audio: np.ndarray, options: TranscribeOptions) -> Transcription:
        return await asyncio.to_thread(asr.transcribe, audio, options)

    async def emit(event: LiveEvent) -> None:
        screen.show(event.as_dict())

    options = TranscribeOptions(language=language)
    live = LiveTranscriber(transcribe, emit, options=options)
    async for chunk in _chunks(source, rate, pace):
        await live.feed(chunk)
    await live.finish()


async def _run_remote(
    source: Path, url: str, model: str | None, language: str | None, pace: float, rate: int, screen: _Screen
) -> None:
    from urllib.parse import urlencode

    from websockets.asyncio.client import connect

    query = urlencode(
        {k: v for k, v in {"model": model, "language": language, "sample_rate": SAMPLE_RATE}.items() if v}
    )
    endpoint = url.rstrip("/").replace("http://", "ws://").replace("https://", "wss://")
    async with connect(f"{endpoint}/v1/audio/transcriptions/live?{query}", max_size=None) as ws:

        async def receive() -> None:
            async for raw in ws:
                message = json.loads(raw)
                screen.show(message)
                if message.get("type") == "done":
                    return

        receiver = asyncio.create_task(receive())
        async for chunk in _chunks(source, rate, pace):
            await ws.send(float_to_pcm16(chunk))
        await ws.send(json.dumps({"type": "stop"}))
        await asyncio.wait_for(receiver, 120)


def run_live(
    source: Path,
    settings: Settings,
    *,
    url: str | None,
    model: str | None,
    language: str | None,
    pace: float,
    sample_rate: int,
) -> int:
    console = Console(stderr=True)
    try:
        with _Screen(console) as screen:
            if url:
                asyncio.run(_run_remote(source, url, model, language, pace, sample_rate, screen))
            else:
                asyncio.run(_run_local(source, settings, model, language, pace, sample_rate, screen))
    except (BadRequest, OSError) as exc:
        console.print(f"[red]error:[/] {getattr(exc, 'message', exc)}", highlight=False)
        return 2
    return 0
