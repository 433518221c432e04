"""Wake word streams: a client's audio, as it comes, to the wake model's worker, and what it hears back.

Each open stream (a Wyoming `detect`, a `/v1/audio/wake` socket, `voxhost listen`) is a `WakeStream`. It
holds no backlog: every piece a client sends goes to the worker in one `detect` call (converted to 16 kHz
16-bit mono once, passed through when it already is), and the caller awaits the answer before it reads
the next piece, so a client that sends faster than the worker hears waits in its own socket, never in a
buffer here. The model's state for the stream (features, the network's memory, the refractory clock)
lives in the worker (`engines.base.WakeEngine`); a worker that dies is replaced and the stream starts
afresh there. Streams are bounded in number (`--wake-max-streams`); closing one (the client went)
frees its state in the worker.

`detect` calls are follow-ups of an admitted stream: never refused by a full queue nor timed out in
it, and in the live lane. With enrolled speakers (`--speakers`, manager/enrolment.py) a stream also
keeps its latest `WAKE_CLIP_SECONDS` of audio (a bounded buffer, the one audio it holds): on a detection
that clip (the voice before and around the wake word) is embedded and matched, and the detection goes
out with `speaker` (the match takes tens of milliseconds, once per detection).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from voxhost.audio.decode import PcmConverter, float_to_pcm16
from voxhost.engines.base import ModelInfo, WakeDetection
from voxhost.errors import BadRequest, QueueFull, from_wire
from voxhost.manager.enrolment import WAKE_CLIP_SECONDS
from voxhost.manager.state import Entry

log = logging.getLogger("voxhost.wake")
SAMPLE_RATE = 16000
NATIVE = (SAMPLE_RATE, 2, 1)  # what the models take: 16 kHz, 16-bit, mono

# Runs one `detect` / `end_stream` call on a wake model's worker: (entry, method, kwargs).
Call = Callable[[Entry, str, dict[str, Any]], Awaitable[Any]]
# Who of the enrolled people speaks in a clip (float32 16 kHz), or None.
Identify = Callable[[np.ndarray], Awaitable[str | None]]
RECENT_BYTES = int(WAKE_CLIP_SECONDS * SAMPLE_RATE) * 2


@dataclass(frozen=True, slots=True)
class Heard:
    """A detection as a front-end reports it: the model that heard it, and what it heard."""

    model: str
    detection: WakeDetection

    @property
    def name(self) -> str:
        return self.detection.name


class WakeStream:
    """One client's stream of audio to the wake words it listens for."""

    def __init__(
        self, streams: WakeStreams, stream_id: str, targets: dict[str, list[str]], entries: dict[str, Entry]
    ) -> None:
        self._streams = streams
        self.id = stream_id
        self.targets = targets  # model id -> its words this stream listens for
        self._entries = entries
        self._converter: PcmConverter | None = None
        self._odd = b""  # a byte of a sample split between two pieces (native PCM)
        self.samples = 0  # 16 kHz samples fed
        self.detections = 0  # wake words heard so far
        self.closed = False
        self._recent = bytearray()  # the latest audio (16-bit PCM), kept only to tell who spoke

    @property
    def words(self) -> list[str]:
        return [word for words in self.targets.values() for word in words]

    async def feed_pcm(
        self, data: bytes, rate: int = 16000, width: int = 2, channels: int = 1
    ) -> list[Heard]:
        """A piece of raw PCM in the client's format; 16 kHz 16-bit mono goes to the worker as it is."""
        if (rate, width, channels) == NATIVE and self._converter is None:
            data, self._odd = self._odd + data, b""
            if len(data) % 2:
                data, self._odd = data[:-1], data[-1:]
            return await self._feed(data)
        if self._converter is None or (rate, width, channels) != (
            self._converter.rate,
            self._converter.width,
            self._converter.channels,
        ):
            self._converter = PcmConverter(rate, width, channels)
        return await self._feed(float_to_pcm16(self._converter.convert(data)))

    async def feed(self, samples: np.ndarray) -> list[Heard]:
        """A piece of float32 16 kHz mono audio."""
        return await self._feed(float_to_pcm16(samples))

    async def _feed(self, pcm: bytes) -> list[Heard]:
        if self.closed:
            raise BadRequest("the wake word stream is closed")
        if not pcm:
            return []
        self.samples += len(pcm) // 2
        identify = self._streams.identify
        if identify is not None:
            self._recent += pcm[-RECENT_BYTES:]
            del self._recent[:-RECENT_BYTES]
        found = await asyncio.gather(
            *(
                self._streams.detect(self._entries[model], self.id, pcm, words)
                for model, words in self.targets.items()
            )
        )
        heard = [
            Heard(model, d) for model, detections in zip(self.targets, found, strict=True) for d in detections
        ]
        if heard and identify is not None:  # who said it: the voice before and around the wake word
            clip = np.frombuffer(bytes(self._recent), np.int16).astype(np.float32) / 32768.0
            speaker = await identify(clip)
            if speaker is not None:
                heard = [Heard(h.model, replace(h.detection, speaker=speaker)) for h in heard]
        for item in heard:
            self._streams.detected(item)
        self.detections += len(heard)
        return heard

    async def close(self) -> None:
        """Forget the stream here and in its workers (at once, also when the caller is cancelled)."""
        if self.closed:
            return
        self.closed = True
        self._streams.closed(self)

    async def __aenter__(self) -> WakeStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


class WakeStreams:
    """The open wake streams of one manager: opened by name, bounded in number, counted for /metrics."""

    def __init__(
        self,
        entries: dict[str, Entry],
        listed: Callable[[Entry], Awaitable[ModelInfo]],
        call: Call,
        spawn: Callable[[Any, str], None],
        max_streams: int,
        refractory: float,
        on_detection: Callable[[str, str], None],
        identify: Identify | None = None,
    ) -> None:
        self._entries = entries
        self._listed = listed
        self._call = call
        self._spawn = spawn
        self.max_streams = max_streams
        self.refractory = refractory
        self._on_detection = on_detection
        self.identify = identify  # who said it (enrolled speakers), when there are any
        self._open: dict[str, WakeStream] = {}
        self._ids = itertools.count(1)
        self._batchers: dict[str, _Batcher] = {}

    @property
    def open_count(self) -> int:
        return len(self._open)

    def _wake_entries(self) -> list[Entry]:
        return [e for e in self._entries.values() if e.spec.task == "wake"]

    async def words(self) -> dict[str, list[str]]:
        """Every served wake model's words, by model id (from its files: nothing is loaded)."""
        return {e.spec.id: [w.name for w in (await self._listed(e)).words] for e in self._wake_entries()}

    async def targets(self, names: list[str] | None) -> dict[str, list[str]]:
        """The models and words `names` mean: each name a wake word (of the first model that has it) or
        a wake model's id (all its words); none: every word of every wake model."""
        served = await self.words()
        if not served:
            raise BadRequest("no wake word model is served here (e.g. --model microwakeword)", param="names")
        if not names:
            return served
        targets: dict[str, list[str]] = {}
        for name in dict.fromkeys(names):
            if name in served:
                targets.setdefault(name, []).extend(w for w in served[name] if w not in targets.get(name, []))
                continue
            model = next((m for m, words in served.items() if name in words), None)
            if model is None:
                known = ", ".join(w for words in served.values() for w in words)
                raise BadRequest(f"unknown wake word {name!r}; the wake words are {known}", param="names")
            if name not in targets.setdefault(model, []):
                targets[model].append(name)
        return targets

    async def open(self, names: list[str] | None = None) -> WakeStream:
        """A new stream listening for `names` (`targets`); QueueFull when `max_streams` are open."""
        targets = await self.targets(names)
        if len(self._open) >= self.max_streams:
            raise QueueFull(f"{self.max_streams} wake word streams are open (--wake-max-streams)")
        stream = WakeStream(self, f"wake-{next(self._ids)}", targets, self._entries)
        self._open[stream.id] = stream
        return stream

    async def detect(self, entry: Entry, stream_id: str, pcm: bytes, words: list[str]) -> list[WakeDetection]:
        batcher = self._batchers.get(entry.spec.id)
        if batcher is None:
            batcher = self._batchers[entry.spec.id] = _Batcher(entry, self._call, entry.layout.slots)
        found = await batcher.detect(
            {"stream": stream_id, "audio": pcm, "words": words, "refractory": self.refractory}
        )
        return [WakeDetection.from_wire(d) for d in found]

    def detected(self, heard: Heard) -> None:
        self._on_detection(heard.model, heard.name)

    def closed(self, stream: WakeStream) -> None:
        self._open.pop(stream.id, None)
        if not stream.samples:
            return  # nothing reached a worker
        for model in stream.targets:
            entry = self._entries[model]

            async def end(entry: Entry = entry) -> None:
                with contextlib.suppress(Exception):  # a gone worker forgot the stream already
                    await self._call(entry, "end_stream", {"stream": stream.id})

            self._spawn(end(), f"wake-end[{stream.id}]")


class _Batcher:
    """The chunks of every stream of one wake model, to its worker in as few calls as keep up: a chunk
    that arrives while the model's slots are all busy waits for the next call, which takes every chunk
    waiting then (`detect_many`). Alone, a chunk goes at once; under load, one call carries many
    streams' chunks, and the per-call cost (the pipe, the queue, the worker's thread hand-off) is paid
    once for them all. A stream has at most one chunk waiting (its caller awaits each)."""

    def __init__(self, entry: Entry, call: Call, slots: int) -> None:
        self._entry = entry
        self._call = call
        self._slots = max(1, slots)
        self._busy = 0
        self._waiting: list[tuple[dict[str, Any], asyncio.Future[list[dict[str, Any]]]]] = []
        self._tasks: set[asyncio.Task[None]] = set()

    async def detect(self, item: dict[str, Any]) -> list[dict[str, Any]]:
        future: asyncio.Future[list[dict[str, Any]]] = asyncio.get_running_loop().create_future()
        self._waiting.append((item, future))
        if self._busy < self._slots:
            self._busy += 1
            task = asyncio.create_task(self._send())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return await future

    async def _send(self) -> None:
        try:
            while self._waiting:
                batch, self._waiting = self._waiting, []
                try:
                    results = await self._call(self._entry, "detect_many", {"items": [i for i, _ in batch]})
                except BaseException as exc:  # every chunk of the call gets the failure
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    if isinstance(exc, asyncio.CancelledError):
                        raise
                    continue
                for (_, future), found in zip(batch, results, strict=True):
                    if future.done():
                        continue
                    if isinstance(found, tuple):  # this stream's chunk failed (`to_wire`)
                        future.set_exception(from_wire(found))
                    else:
                        future.set_result(found)
        finally:
            self._busy -= 1
