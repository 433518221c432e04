"""Silero VAD on recordings with muted stretches: voxhost's `speech_timestamps` beside faster-whisper's
`get_speech_timestamps` called directly on the whole file (what every caller did before).

    python bench/vad_silence.py --json bench-vad.json

Each recording is the public-domain reading (bench/long_speech.py, Piper) cut into one-minute stretches
of speech with stretches of digital silence between them (a meeting's dead air, a phone on mute, a file
padded with zeros), 0 % to 90 % of the file; plus the three-hour file of the tests (three sentences).
For each, both calls with the options of the batched path's regions (the heaviest caller), timed
`--repeat` times (medians), and their regions compared: how many, and the seconds one calls speech and
the other not (Silero's state after skipped silence differs a little, a frame is 32 ms; where a region
is longer than a window, where it is split can move). The floor is Silero on the speech alone: the
time the library spends on the file's silence is what is saved. With `--diarize CACHE`, the speaker
diarizer too (its segmentation model skips 10 s windows of digital silence alone), on one thread, once
each way.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

from long_speech import RATE, long_recording
from voxhost.benchmarks.common import machine_facts
from voxhost.engines.vad import FRAME, speech_timestamps, vad_options

Regions = list[tuple[int, int]]  # [start, end) samples


def muted(speech: np.ndarray, silent_share: float, stretch: float = 60.0) -> np.ndarray:
    """`speech` in stretches of `stretch` seconds with digital silence between them, `silent_share` of
    the result's length in all."""
    if silent_share <= 0:
        return speech
    step = int(stretch * RATE)
    pieces = [speech[i : i + step] for i in range(0, len(speech), step)]
    gap = np.zeros(int(step * silent_share / (1 - silent_share)), dtype=np.float32)
    parts: list[np.ndarray] = []
    for piece in pieces:
        parts += [piece, gap]
    return np.concatenate(parts[:-1])


def three_hours() -> np.ndarray:
    """The tests' three-hour file: three sentences at minutes 0, 61 and 179 of three hours of zeros."""
    audio = np.zeros(3 * 3600 * RATE, dtype=np.float32)
    sentence = long_recording(4.0).audio
    for minute in (0, 61, 179):
        audio[minute * 60 * RATE : minute * 60 * RATE + len(sentence)] = sentence
    return audio


def timed(call: Any, repeat: int) -> tuple[float, Any]:
    times, result = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        result = call()
        times.append(time.perf_counter() - started)
    return statistics.median(times), result


def _disagreement(ours: Regions, theirs: Regions, samples: int) -> tuple[float, float]:
    """Seconds that one call calls speech and the other not, and the library's seconds of speech."""
    frames = samples // FRAME + 1
    masks = []
    for regions in (ours, theirs):
        mask = np.zeros(frames, dtype=bool)
        for start, end in regions:
            mask[start // FRAME : end // FRAME + 1] = True
        masks.append(mask)
    return float((masks[0] ^ masks[1]).sum() * FRAME / RATE), float(masks[1].sum() * FRAME / RATE)


def _start_shifts(ours: Regions, theirs: Regions) -> tuple[float, float]:
    """Of the regions that overlap exactly one of the other call's: the most the library's start comes
    after voxhost's, and the most it comes before (seconds)."""
    shifts = [0.0]
    for start, end in ours:
        matched = [other for other in theirs if min(end, other[1]) > max(start, other[0])]
        if len(matched) == 1:
            shifts.append((matched[0][0] - start) / RATE)
    return max(shifts), -min(shifts)


def diarize_rows(files: dict[str, np.ndarray], cache: Path) -> list[dict[str, Any]]:
    """The diarizer on each file once with the windows of digital silence left out (the default), once
    with every window through the segmentation model (what it did before): time, and whether the
    speakers and turns agree (to 50 ms)."""
    from voxhost.diarization import DiarizeOptions
    from voxhost.engines.base import EngineConfig
    from voxhost.engines.diarizer import SpeakerDiarizer, convert_embedded
    from voxhost.engines.speaker import local

    config = EngineConfig(cache_dir=cache, diarization_segmentation="on", threads=1)
    engine = SpeakerDiarizer.load(str(convert_embedded(cache)), config)
    skip = local.SILENT
    rows = []
    for name, audio in files.items():
        local.SILENT = -1.0  # nothing is silent: every window through the model
        every_s, every = timed(lambda a=audio: engine.diarize(a, DiarizeOptions(segmentation=True)), 1)
        local.SILENT = skip
        ours_s, ours = timed(lambda a=audio: engine.diarize(a, DiarizeOptions(segmentation=True)), 1)
        same = (
            ours.speakers == every.speakers
            and len(ours.turns) == len(every.turns)
            and all(
                a.speaker == b.speaker and abs(a.start - b.start) < 0.05 and abs(a.end - b.end) < 0.05
                for a, b in zip(ours.turns, every.turns, strict=True)
            )
        )
        rows.append({"file": name, "diarize_every_window_s": every_s, "diarize_s": ours_s, "same": same,
                     "speakers": len(ours.speakers)})  # fmt: skip
        print(f"{name:26s} diarization (1 thread): every window {every_s:6.2f} s, muted windows skipped "
              f"{ours_s:6.2f} s ({ours_s / every_s:.2f}x); {len(ours.speakers)} speakers; the same turns: "
              f"{same}")  # fmt: skip
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="minutes of speech in each file (10)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each call; medians (3)")
    parser.add_argument("--json", type=Path)
    parser.add_argument(
        "--diarize",
        type=Path,
        metavar="CACHE",
        help="also time the speaker diarizer (segmentation-3.0) on each file, muted windows skipped and "
        "not; its models converted into CACHE",
    )
    args = parser.parse_args()
    from faster_whisper.vad import get_speech_timestamps

    options = vad_options(None, max_speech_duration_s=30, min_silence_duration_ms=160)
    speech = long_recording(args.minutes * 60).audio
    files = {f"{int(share * 100)} % muted": muted(speech, share) for share in (0.0, 0.5, 0.75, 0.9)}
    files["three hours, 3 sentences"] = three_hours()
    rows = []
    print(machine_facts())
    for name, audio in files.items():
        theirs_s, theirs = timed(lambda a=audio: get_speech_timestamps(a, options), args.repeat)
        ours_s, ours = timed(lambda a=audio: speech_timestamps(a, options), args.repeat)
        whole = [(int(r["start"]), int(r["end"])) for r in theirs]
        disagree, speech_s = _disagreement(ours, whole, len(audio))
        later, earlier = _start_shifts(ours, whole)
        row: dict[str, Any] = {
            "file": name, "seconds": len(audio) / RATE, "library_s": theirs_s, "voxhost_s": ours_s,
            "ratio": ours_s / theirs_s, "regions_library": len(whole), "regions_voxhost": len(ours),
            "speech_s": speech_s, "disagree_s": disagree, "library_later_s": later,
            "library_earlier_s": earlier,
        }  # fmt: skip
        rows.append(row)
        print(f"{name:26s} {len(audio) / RATE / 60:6.1f} min: faster-whisper {theirs_s:6.2f} s, voxhost "
              f"{ours_s:6.2f} s ({ours_s / theirs_s:.2f}x); regions {len(whole)} / {len(ours)}; speech "
              f"{speech_s:.1f} s, the two disagree on {disagree:.2f} s; a region's start: the "
              f"library's later by up to {later:.2f} s, earlier by up to {earlier:.2f} s")  # fmt: skip
    if args.diarize:
        rows += diarize_rows(files, args.diarize)
    if args.json:
        args.json.write_text(json.dumps({"machine": machine_facts(), "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
