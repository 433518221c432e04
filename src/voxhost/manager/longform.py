"""Long files: the plan of calls that transcribes one, whatever runs the calls.

The model manager runs each call on a worker slot at batch priority (so live streams and short requests
go between them); `voxhost transcribe`, and Ray Data's actors, run them on an engine in their own
process (`engine_caller`). Both get the same segments, text and streamed updates, from the same code.

- `batched`: voice activity detection over spans of `VAD_SPAN_SECONDS` (one call each), speech packed
  into 30 s windows, `batch_size` windows decoded per call, up to `concurrency` calls at once; results in
  file order. Text streams as each call completes, the first span's windows going at once so that the
  first text comes within seconds.
- `sequential`: pieces of about `PIECE_SECONDS` cut at pauses, decoded in order, each conditioned on
  the previous piece's output tokens.

A request's own voice activity detection (`TranscribeOptions.vad`, OpenAI's `chunking_strategy`) finds
the speech on the batched path (`speech_regions`) and leaves the silence out of each sequential piece
(faster-whisper's VAD filter, in the engine).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Any, Protocol, runtime_checkable

import numpy as np

from voxhost.audio import chunks
from voxhost.engines.base import ASREngine, Engine
from voxhost.engines.faster_whisper import resolve_device
from voxhost.results import Segment, TranscribeOptions, Transcription, TranscriptUpdate
from voxhost.settings import Settings

SAMPLE_RATE = 16000
VAD_SPAN_SECONDS = 120.0  # voice activity detection runs over spans this long, one bounded call each
# Sequential pieces: faster-whisper walks its own 30 s windows inside a piece (conditioning each on the
# one before, as it does in one file), so a piece several windows long adds few cuts of our own.
PIECE_SECONDS = 120.0
CPU_BATCH_SIZE = 2  # 30 s windows one decode call takes by default on CPU (measured: docs/benchmarks.md)
GPU_BATCH_SIZE = 16
FIRST_BATCH = 2  # the first call of a file takes at most this many windows: its text comes sooner


@runtime_checkable
class _Multilingual(Protocol):
    @property
    def multilingual(self) -> bool: ...


class Caller(Protocol):
    """Runs one engine method for a long file. `follow_up` is set on every call after the first: the
    file is already admitted, so the call waits its turn rather than being refused."""

    def __call__(self, method: str, *, follow_up: bool, **kwargs: Any) -> Awaitable[Any]: ...


# Wraps the caller of one transcription: a job's store answers the calls it already holds (a job resumed
# after a restart) and keeps each new call's result as it completes (`voxhost.jobs.calls`).
CallWrapper = Callable[[Caller], Caller]


def engine_caller(engine: ASREngine) -> Caller:
    """Calls on an engine in this process, each in a thread (the engine releases the GIL while it
    decodes, so calls overlap as they do on a worker's slots)."""

    def call(method: str, *, follow_up: bool, **kwargs: Any) -> Awaitable[Any]:
        return asyncio.to_thread(getattr(engine, method), **kwargs)

    return call


async def sequential(
    call: Caller, audio: np.ndarray, options: TranscribeOptions, piece_seconds: float | None = None
) -> AsyncGenerator[TranscriptUpdate, None]:
    """Pieces cut at pauses, decoded in order, each conditioned on the previous piece's tokens."""
    assembler = chunks.Assembler(len(audio) / SAMPLE_RATE)
    previous: list[Segment] = []
    for index, (start, end) in enumerate(chunks.spans(audio, piece_seconds or PIECE_SECONDS)):
        piece_options = options
        if assembler.first is not None:  # the language the first piece settled on, and what came before
            piece_options = dataclasses.replace(
                options,
                language=options.language or assembler.first.language,
                context_tokens=chunks.context_tokens(previous),
                context_text=previous[-1].text if previous else None,
            )
        result: Transcription = await call(
            "transcribe", follow_up=index > 0, audio=audio[start:end], options=piece_options
        )
        assembler.add(result, start / SAMPLE_RATE)
        previous = result.segments or previous
        yield assembler.since(end / SAMPLE_RATE)
    yield TranscriptUpdate("", len(audio) / SAMPLE_RATE, assembler.result(options.task))


async def batched(
    call: Caller,
    audio: np.ndarray,
    options: TranscribeOptions,
    *,
    batch_size: int,
    concurrency: int,
    detects_language: bool = True,
) -> AsyncGenerator[TranscriptUpdate, None]:
    """Speech found span by span, packed into windows, decoded `batch_size` windows a call with up to
    `concurrency` calls at once; updates in file order. Closing the generator cancels the calls still
    running. With `detects_language` (a multilingual model and no language given), the first call runs
    alone and the others keep the language it found, so that a file is one language throughout."""
    duration = len(audio) / SAMPLE_RATE
    assembler = chunks.Assembler(duration)
    running: collections.deque[tuple[asyncio.Future[Transcription], float]] = collections.deque()
    language = options.language
    calls = 0
    # the request's own voice activity detection (`chunking_strategy`) finds the speech to decode
    vad = {"vad": options.vad} if options.vad is not None else {}

    def decode(windows: list[list[chunks.Region]]) -> None:
        nonlocal calls
        work = call(
            "transcribe_windows",
            follow_up=True,
            audio=chunks.speech_audio(audio, windows),
            windows=windows,
            options=dataclasses.replace(options, language=language),
        )
        running.append((asyncio.ensure_future(work), windows[-1][-1][1] / SAMPLE_RATE))
        calls += 1

    async def finish_first() -> TranscriptUpdate:
        future, done_at = running[0]
        result = await future
        running.popleft()
        assembler.add(result)
        return assembler.since(done_at)

    try:
        pending: list[chunks.Region] = []  # speech not yet in a closed window
        ready: list[list[chunks.Region]] = []  # closed windows not yet sent
        spans = chunks.spans(audio, VAD_SPAN_SECONDS)
        for index, (start, end) in enumerate(spans):
            found = await call("speech_regions", follow_up=index > 0, audio=audio[start:end], **vad)
            pending += [(start + a, start + b) for a, b in found]
            last = index == len(spans) - 1
            windows = chunks.pack_windows(pending)
            # the last window may still grow with the next span's speech
            pending = windows.pop() if windows and not last else []
            ready += windows
            while ready and (len(ready) >= batch_size or last or calls == 0):
                size = batch_size if calls else min(batch_size, FIRST_BATCH)
                decode(ready[:size])
                ready = ready[size:]
                if calls == 1 and language is None and detects_language:
                    update = await finish_first()
                    assert assembler.first is not None
                    language = assembler.first.language
                    yield update
                while len(running) >= concurrency or (running and running[0][0].done()):
                    yield await finish_first()
        while running:
            yield await finish_first()
    finally:
        for future, _ in running:
            future.cancel()
        for future, _ in running:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await future
    yield TranscriptUpdate("", duration, assembler.result(options.task, language or "en"))


async def collect(updates: AsyncGenerator[TranscriptUpdate, None]) -> Transcription:
    """The result at the end of a stream of updates."""
    async with contextlib.aclosing(updates):
        async for update in updates:
            if update.result is not None:
                return update.result
    raise AssertionError("a transcription stream always ends with its result")


def batch_size(settings: Settings) -> int:
    """Windows of speech one batched decode call takes: the setting, else what suits the device."""
    if settings.batch_size:
        return settings.batch_size
    return GPU_BATCH_SIZE if resolve_device(settings.device) == "cuda" else CPU_BATCH_SIZE


def is_long(audio: np.ndarray, settings: Settings) -> bool:
    return settings.chunk_seconds > 0 and len(audio) > settings.chunk_seconds * SAMPLE_RATE


def long_updates(
    call: Caller,
    audio: np.ndarray,
    options: TranscribeOptions,
    settings: Settings,
    *,
    engine: type[Engine],
    concurrency: int,
    detects_language: bool,
) -> AsyncGenerator[TranscriptUpdate, None]:
    """The updates of a long file on the path the settings choose (batched where the engine can)."""
    if settings.long_audio == "batched" and issubclass(engine, ASREngine) and engine.batched:
        return batched(
            call,
            audio,
            options,
            batch_size=batch_size(settings),
            concurrency=concurrency,
            detects_language=detects_language,
        )
    return sequential(call, audio, options)


async def whole(
    call: Caller, audio: np.ndarray, options: TranscribeOptions
) -> AsyncGenerator[TranscriptUpdate, None]:
    result: Transcription = await call("transcribe", follow_up=False, audio=audio, options=options)
    yield TranscriptUpdate(result.text, result.duration, result, result.logprobs)


def in_process_updates(
    engine: ASREngine, audio: np.ndarray, options: TranscribeOptions, settings: Settings, concurrency: int = 1
) -> AsyncGenerator[TranscriptUpdate, None]:
    """A transcription on an engine loaded in this process (`voxhost transcribe`, Ray Data's actors),
    long files on the same path as the server's."""
    call = engine_caller(engine)
    if not is_long(audio, settings):
        return whole(call, audio, options)
    return long_updates(
        call,
        audio,
        options,
        settings,
        engine=type(engine),
        concurrency=concurrency,
        detects_language=engine.multilingual if isinstance(engine, _Multilingual) else True,
    )
