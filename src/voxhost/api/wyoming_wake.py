"""Wyoming wake word detection (`wake` program), for `api/wyoming.py`'s connections.

`detect` (optional `names`: wake words, or wake model ids) opens a stream; the `audio-start/chunk/stop`
that follow go to it (in whatever rate, width and channels Wyoming allows, converted once per chunk)
and every wake word heard is a `detection` at once (`name`, `timestamp`: ms into the stream), while the
stream keeps listening (the refractory period makes one phrase one detection). `audio-stop` ends the
stream: `not-detected` when nothing was heard. The client hanging up closes the stream.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.event import Event
from wyoming.info import Attribution, WakeModel, WakeProgram
from wyoming.wake import Detect, Detection, NotDetected

from voxhost.api.observe import record
from voxhost.errors import VoxhostError
from voxhost.manager import ModelManager
from voxhost.manager.requests import ModelCard
from voxhost.manager.wake import Heard, WakeStream


def wake_programs(cards: list[ModelCard], about: dict[str, Any]) -> dict[str, Any]:
    """The `info` entry for the wake models: one program listing every wake word as a model."""
    models = [
        WakeModel(
            name=word.name,
            phrase=word.phrase,
            description=f"{word.phrase} ({card.id})",
            attribution=Attribution(name=card.attribution, url=card.url),
            installed=card.installed,
            version=card.version,
            languages=list(word.languages),
        )
        for card in cards
        if card.task == "wake"
        for word in card.words
    ]
    if not models:
        return {}
    program = WakeProgram(
        name="voxhost-wake", description="voxhost wake word detection", models=models, **about
    )
    return {"wake": [program]}


def detection_event(heard: Heard) -> Event:
    # `speaker`: the enrolled person (--speakers) whose voice said it, else None.
    found = heard.detection
    return Detection(name=found.name, timestamp=found.timestamp_ms, speaker=found.speaker).event()


class WyomingWake:
    """One connection's wake word stream (at most one at a time: a new `detect` replaces it)."""

    def __init__(self, manager: ModelManager, write_event: Callable[[Event], Awaitable[None]]) -> None:
        self.manager = manager
        self._write = write_event
        self._stream: WakeStream | None = None
        self._failed = False  # the stream ended in an error: its audio is dropped until audio-stop
        self._started = 0.0

    def wants(self, event: Event) -> bool:
        """Whether the event is this module's: a `detect`, or audio while a stream listens."""
        if Detect.is_type(event.type):
            return True
        audio = (
            AudioStart.is_type(event.type) or AudioChunk.is_type(event.type) or AudioStop.is_type(event.type)
        )
        return audio and (self._stream is not None or self._failed)

    async def handle(self, event: Event) -> None:
        if self._failed and not Detect.is_type(event.type):
            self._failed = not AudioStop.is_type(event.type)  # the failed stream's audio ends here
            return
        self._failed = False
        try:
            await self._handle(event)
        except (VoxhostError, ValueError, KeyError, TypeError):
            await self.close("error")  # the connection answers the error; the stream is over
            self._failed = True
            raise

    async def _handle(self, event: Event) -> None:
        if Detect.is_type(event.type):
            await self.close("replaced")
            self._stream = await self.manager.wake.open(Detect.from_event(event).names or None)
            self._started = time.perf_counter()
        elif AudioChunk.is_type(event.type):
            assert self._stream is not None
            chunk = AudioChunk.from_event(event)
            for heard in await self._stream.feed_pcm(chunk.audio, chunk.rate, chunk.width, chunk.channels):
                await self._write(detection_event(heard))
        elif AudioStop.is_type(event.type):
            assert self._stream is not None
            if not self._stream.detections:
                await self._write(NotDetected().event())
            await self.close("ok")
        # audio-start: the format comes with every chunk

    async def close(self, status: str = "client_closed_request") -> None:
        """End the stream (audio-stop, a new detect, an error, or the client hung up)."""
        stream, self._stream = self._stream, None
        if stream is None:
            return
        await stream.close()
        record(
            self.manager.metrics,
            "wyoming",
            "detect",
            "WYOMING detect",
            status,
            time.perf_counter() - self._started,
            ",".join(stream.targets),
        )
