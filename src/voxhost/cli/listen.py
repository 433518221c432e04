"""`voxhost listen`: wake words in a file or a microphone's PCM on stdin, and optionally what follows.

    arecord -q -r 16000 -f S16_LE -c 1 | voxhost listen - --transcribe
    voxhost listen recording.wav --url http://127.0.0.1:8000

One line per wake word heard on stdout (`NAME<TAB>SECONDS`, where in the audio it was heard); with
`--transcribe`, the words said after it (up to the first pause) on the next line, indented. Without
`--url` the models load in this process; with it, the audio goes to the server's `/v1/audio/wake`
socket (and, for `--transcribe`, its live transcription socket).
"""

from __future__ import annotations

import asyncio
import collections
import json
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import numpy as np
from rich.console import Console

from voxhost.audio.decode import SAMPLE_RATE, float_to_pcm16
from voxhost.cli.live import STEP, _chunks
from voxhost.engines import ASREngine, WakeEngine
from voxhost.engines.base import WakeDetection
from voxhost.errors import BadRequest
from voxhost.manager.layout import engine_config
from voxhost.manager.live import LiveEvent, LiveTranscriber
from voxhost.manager.registry import parse_entry
from voxhost.results import TranscribeOptions, Transcription
from voxhost.settings import Settings

DEFAULT_WAKE_MODEL = "microwakeword"
RECENT_SECONDS = 30.0  # audio kept to send what followed a wake word the server reported late
ANSWER_TIMEOUT = 120.0


def _say(name: str, seconds: float) -> None:
    print(f"{name}\t{seconds:.2f}", flush=True)


def _default_model(settings: Settings, task: str, fallback: str | None) -> str:
    """The first configured model of the task (from --model / VOXHOST_MODELS), else `fallback`."""
    for entry in settings.models:
        try:
            spec = parse_entry(entry)
        except Exception:  # an entry this command cannot resolve: not the one it needs
            continue
        if spec.task == task:
            return entry
    if fallback is None:
        raise BadRequest(f"no {task} model is configured (--model)")
    return fallback


async def _run_local(
    source: Path, settings: Settings, names: list[str] | None, transcribe: bool, pace: float, rate: int
) -> int:
    config = engine_config(settings)
    wake = await asyncio.to_thread(
        parse_entry(_default_model(settings, "wake", DEFAULT_WAKE_MODEL)).load, config
    )
    if not isinstance(wake, WakeEngine):
        raise BadRequest("the wake model is not a wake word model")
    asr: ASREngine | None = None
    if transcribe:
        loaded = await asyncio.to_thread(parse_entry(_default_model(settings, "asr", None)).load, config)
        if not isinstance(loaded, ASREngine):
            raise BadRequest("the speech-to-text model is not one")
        asr = loaded
    heard = 0
    listener: LiveTranscriber | None = None

    async def emit(event: LiveEvent) -> None:
        nonlocal listener
        if event.kind == "final":
            print(f"\t{event.as_dict().get('text', '').strip()}", flush=True)
            listener = None  # one utterance per wake word

    async def decode(audio: np.ndarray, options: TranscribeOptions) -> Transcription:
        assert asr is not None
        return await asyncio.to_thread(asr.transcribe, audio, options)

    async for chunk in _chunks(source, rate, pace):
        if listener is not None:
            await listener.feed(chunk)
        found = await asyncio.to_thread(
            wake.detect, "listen", float_to_pcm16(chunk), names, settings.wake_refractory
        )
        for item in (WakeDetection.from_wire(d) for d in found):
            heard += 1
            _say(item.name, item.timestamp_ms / 1000)
            if asr is not None and listener is None:
                listener = LiveTranscriber(decode, emit, TranscribeOptions(), partial_interval=0.0)
    if listener is not None:
        await listener.finish()
    return heard


async def _run_remote(
    source: Path,
    url: str,
    api_key: str | None,
    names: list[str] | None,
    transcribe: bool,
    pace: float,
    rate: int,
) -> int:
    from websockets.asyncio.client import connect

    endpoint = url.rstrip("/").replace("http://", "ws://").replace("https://", "wss://")
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    query = urlencode({"sample_rate": SAMPLE_RATE, **({"names": ",".join(names)} if names else {})})
    heard = 0
    # The audio sent lately, (first sample, PCM): what followed a wake word the server heard a moment
    # after it was sent goes to the transcription from where the word ended.
    recent: collections.deque[tuple[int, bytes]] = collections.deque(maxlen=int(RECENT_SECONDS / STEP))
    followers: list[tuple[asyncio.Queue[bytes | None], asyncio.Task[None]]] = []

    async def transcript(queue: asyncio.Queue[bytes | None]) -> None:
        """One wake word's utterance: the audio after it to the live socket, its first final printed."""
        async with connect(
            f"{endpoint}/v1/audio/transcriptions/live?sample_rate={SAMPLE_RATE}", additional_headers=headers
        ) as live:

            async def pump() -> None:
                while (pcm := await queue.get()) is not None:
                    await live.send(pcm)
                await live.send(json.dumps({"type": "stop"}))

            pumping = asyncio.create_task(pump())
            said = False
            async for raw in live:
                message = json.loads(raw)
                if message.get("type") == "final" and not said:
                    print(f"\t{message.get('text', '').strip()}", flush=True)
                    said = True
                if message.get("type") in ("done", "error"):
                    break
            await pumping

    def follow(at_sample: int) -> None:
        queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        for start, pcm in recent:  # (no await between this and the next chunk's put: nothing is missed)
            skip = max(0, at_sample - start) * 2
            if skip < len(pcm):
                queue.put_nowait(pcm[skip:])
        followers.append((queue, asyncio.create_task(transcript(queue))))

    async with connect(f"{endpoint}/v1/audio/wake?{query}", max_size=None, additional_headers=headers) as ws:

        async def receive() -> None:
            nonlocal heard
            async for raw in ws:
                message: dict[str, Any] = json.loads(raw)
                if message.get("type") == "error":
                    raise BadRequest(str(message.get("message")))
                if message.get("type") == "detection":
                    heard += 1
                    _say(str(message["name"]), int(message["timestamp_ms"]) / 1000)
                    if transcribe and not any(not task.done() for _, task in followers):
                        follow(int(message["timestamp_ms"]) * SAMPLE_RATE // 1000)
                if message.get("type") == "done":
                    return

        receiver = asyncio.create_task(receive())
        sent = 0
        async for chunk in _chunks(source, rate, pace):
            pcm = float_to_pcm16(chunk)
            await ws.send(pcm)
            recent.append((sent, pcm))
            sent += len(pcm) // 2
            for queue, _ in followers:
                queue.put_nowait(pcm)
            if receiver.done():
                break
        if not receiver.done():
            await ws.send(json.dumps({"type": "stop"}))
        await asyncio.wait_for(receiver, ANSWER_TIMEOUT)
        for queue, _ in followers:
            queue.put_nowait(None)
        for _, task in followers:
            await asyncio.wait_for(task, ANSWER_TIMEOUT)
    return heard


def run_listen(
    source: Path,
    settings: Settings,
    *,
    url: str | None,
    names: list[str] | None,
    transcribe: bool,
    pace: float,
    sample_rate: int,
) -> int:
    """0 when a wake word was heard, 1 when none was, 2 on an error."""
    console = Console(stderr=True)
    try:
        if url:
            key = settings.api_key[0] if settings.api_key else None
            heard = asyncio.run(_run_remote(source, url, key, names, transcribe, pace, sample_rate))
        else:
            heard = asyncio.run(_run_local(source, settings, names, transcribe, pace, sample_rate))
    except (BadRequest, OSError) as exc:
        console.print(f"[red]error:[/] {getattr(exc, 'message', exc)}", highlight=False)
        return 2
    return 0 if heard else 1
