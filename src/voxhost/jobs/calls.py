"""A job's engine calls, kept as they complete, so that a restarted job runs only those after them.

The long-audio plan (`manager/longform.py`) is deterministic: the same audio, options and settings,
and the same results of the calls before, make the same calls in the same order. `Recorder` wraps the
manager's caller for one job: the n-th call made is looked up in the store; if the store has it (with
the same signature: method and the size of its audio), its result is returned at once, else the call
runs and its result is committed before the plan sees it. A call whose signature differs (a model or
setting changed between runs) and every call after it are run again.

Also here: results and options to and from JSON (the rows hold JSON, never pickles), a diarized
job's too.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
from collections.abc import Awaitable
from typing import Any

import numpy as np

from voxhost.diarization import (
    Diarization,
    DiarizedTranscription,
    DiarizeOptions,
    KnownSpeaker,
    SpeakerTurn,
    attribute,
)
from voxhost.jobs.store import JobStore
from voxhost.manager.longform import Caller
from voxhost.results import Segment, TokenLogprob, TranscribeOptions, Transcription, VadParameters, Word


def transcription_to_json(result: Transcription) -> dict[str, Any]:
    return dataclasses.asdict(result)


def transcription_from_json(data: dict[str, Any]) -> Transcription:
    segments = [
        Segment(**{**s, "words": None if s["words"] is None else [Word(**w) for w in s["words"]]})
        for s in data["segments"]
    ]
    logprobs = data["logprobs"]
    return Transcription(
        **{
            **data,
            "segments": segments,
            "logprobs": None if logprobs is None else [TokenLogprob(**t) for t in logprobs],
        }
    )


def diarize_options_to_json(options: DiarizeOptions) -> dict[str, Any]:
    """What a diarized job asks: the counts, and the known speakers by their voices' embeddings
    (`speakers.embedded`: 192 numbers each, not the samples)."""
    if any(k.vector is None for k in options.known):
        raise ValueError("a job keeps known speakers' embeddings: embed their samples first")
    return {
        "num_speakers": options.num_speakers,
        "min_speakers": options.min_speakers,
        "max_speakers": options.max_speakers,
        "known": [{"name": k.name, "vector": [float(x) for x in k.vector]} for k in options.known],  # type: ignore[union-attr]
    }


def diarize_options_from_json(data: dict[str, Any]) -> DiarizeOptions:
    known = tuple(
        KnownSpeaker(k["name"], np.zeros(0, np.float32), np.asarray(k["vector"], np.float32))
        for k in data["known"]
    )
    return DiarizeOptions(data["num_speakers"], data["min_speakers"], data["max_speakers"], known)


def diarization_to_json(diarization: Diarization) -> dict[str, Any]:
    return dataclasses.asdict(diarization)


def diarization_from_json(data: dict[str, Any]) -> Diarization:
    turns = [SpeakerTurn(**turn) for turn in data["turns"]]
    return Diarization(turns, data["duration"], list(data["speakers"]))


def result_to_json(result: Transcription | DiarizedTranscription) -> dict[str, Any]:
    """A job's result: the transcription, and a diarized job's speaker turns beside it."""
    if isinstance(result, DiarizedTranscription):
        return transcription_to_json(result.transcription) | {
            "diarization": diarization_to_json(result.diarization)
        }
    return transcription_to_json(result)


def result_from_json(data: dict[str, Any]) -> Transcription | DiarizedTranscription:
    """A job's result; a diarized one with its speaker segments made again from its turns."""
    turns = data.pop("diarization", None)
    transcription = transcription_from_json(data)
    if turns is None:
        return transcription
    diarization = diarization_from_json(turns)
    return DiarizedTranscription(transcription, diarization, attribute(transcription, diarization))


def options_to_json(options: TranscribeOptions) -> dict[str, Any]:
    return dataclasses.asdict(options)


def options_from_json(data: dict[str, Any]) -> TranscribeOptions:
    vad = data.get("vad")
    languages = data.get("languages")
    context = data.get("context_tokens")
    return TranscribeOptions(
        **{
            **data,
            "vad": None if vad is None else VadParameters(**vad),
            "languages": None if languages is None else tuple(languages),
            "context_tokens": None if context is None else tuple(context),
        }
    )


def _encode(method: str, result: Any) -> str:
    if isinstance(result, Transcription):
        return json.dumps(transcription_to_json(result))
    return json.dumps(result)  # speech_regions: [[start, end], ...]


def _decode(method: str, text: str) -> Any:
    data = json.loads(text)
    if method == "speech_regions":
        return [tuple(pair) for pair in data]
    return transcription_from_json(data)


def signature(method: str, kwargs: dict[str, Any]) -> str:
    """What identifies a call in the plan: the method, its audio's length, its windows."""
    audio = kwargs.get("audio")
    size = 0 if audio is None else len(audio)
    windows = hashlib.sha256(repr(kwargs.get("windows")).encode()).hexdigest()[:16]
    return f"{method}:{size}:{windows}"


class Recorder:
    """Wraps one run of a job's caller (see the module's docstring); counts the calls it reused and
    those it made."""

    def __init__(self, store: JobStore, job_id: str, run: int) -> None:
        self.store = store
        self.job_id = job_id
        self.run = run
        self.done = store.calls(job_id)
        self.index = 0
        self.valid = True  # the plan still matches the calls stored
        self.reused = 0
        self.made = 0

    def __call__(self, call: Caller) -> Caller:
        def recorded(method: str, *, follow_up: bool, **kwargs: Any) -> Awaitable[Any]:
            index = self.index
            self.index += 1
            sign = signature(method, kwargs)
            stored = self.done.get(index)
            if self.valid and stored is not None and stored[0] == sign:
                self.reused += 1
                future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
                future.set_result(_decode(method, stored[2]))
                return future
            if self.valid and stored is not None:  # the plan changed: nothing from here on is reused
                self.valid = False
                self.store.drop_calls(self.job_id, index)
            return self._run(call(method, follow_up=follow_up, **kwargs), index, sign, method)

        return recorded

    async def _run(self, work: Awaitable[Any], index: int, sign: str, method: str) -> Any:
        result = await work
        encoded = _encode(method, result)
        await asyncio.to_thread(self.store.add_call, self.job_id, index, sign, self.run, encoded)
        self.made += 1
        return result
