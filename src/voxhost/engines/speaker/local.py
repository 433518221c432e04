"""Diarization with a segmentation model (pyannote segmentation-3.0): local speakers in 10 s windows,
one voice embedding per stretch of a local speaker's speech, clustered into the file's speakers, and each
frame's speakers voted over the overlapping windows. This finds two speakers at once and a change of
speaker without a pause, which 1.5 s windows of the VAD's speech (one speaker each) cannot.

The steps:
1. 10 s windows every `step` seconds over the whole file (the last one reaching its end, zero-padded),
   through the segmentation model in small batches; each frame's best powerset class says which of 3 local
   speakers speak in it (at most 2 at once).
2. Each local speaker's speech is cut into units at pauses of `split` s (the model sometimes takes two
   voices that take turns for one local speaker); each unit's frames where it speaks alone (all of them
   when that is too little), at most `longest` s nearest the window's centre, are cut out, joined and
   embedded (CAM++). A unit whose clip would hold (nearly) the same frames as a unit's of an earlier
   window (the windows overlap: `REUSE` of either's frames shared) takes that unit's embedding instead of
   being embedded again. Only each window's activity (uint8, 589 x 3) and the unit embeddings are kept:
   an hour is a few MB.
3. The embeddings of units with enough speech are clustered (`cluster.py`: bounded at `MAX_POINTS`, the
   number of speakers found by spectral clustering unless told; a unit unlike every speaker is another,
   a group of clips that all hold others' speech too and is alike to a speaker is theirs, and so is a
   speaker whose speech the other windows hear as two others at once: `without_overheard`); every unit
   then takes the nearest speaker's centroid, two units of one window that share frames never the same
   speaker.
4. Each file frame's speaker activity is the (Hamming-weighted) average of the windows covering it, and
   how many speak in it the average of the windows' local counts; each frame keeps that many of its most
   active speakers; runs of frames are the turns.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from voxhost.engines import vad
from voxhost.engines.speaker.segmentation import (
    CHUNK,
    FRAME_SIZE,
    FRAME_STEP,
    LOCAL_SPEAKERS,
    POWERSET,
    SAMPLE_RATE,
    frames,
)

BATCH = 8  # windows per segmentation run
MIN_CLUSTERED = 1.0  # seconds of a local speaker's speech for its embedding to be clustered
MIN_EMBEDDED = 0.25  # seconds below which a local speaker is not embedded (their frames are dropped)
SPLIT = 0.25  # seconds of pause that cut a local speaker into units embedded apart (None: never)
LONGEST = 3.0  # seconds of a local speaker's speech embedded at most: the frames nearest the window's centre
MIN_GAP = 0.5  # seconds: a speaker's pauses shorter than this, with nobody else speaking, are bridged
MIN_TURN = 0.05  # seconds: shorter runs of a speaker are dropped
FLICKER = 0.25  # seconds: a lone speaker's shorter run between two runs of one other speaker is theirs
REUSE = 0.9  # share of either's frames two clips of overlapping windows share to be embedded once
SILENT = vad.SILENT  # a window whose peak is below this (digital silence) is nobody's, unsegmented
# a speaker whose speech the other windows hear as two other speakers at once (and not as them) this share
# of the times or more is those two blended (`without_overheard`): on the real call cf4210, the first
# window's local speaker that spans both voices of a quick exchange, 0.87; on the AMI excerpt trn09 a
# group made of one such unit, 1.0; every other speaker of both diarization benchmarks' 26 recordings
# 0.62 or less (an AMI tst00 speaker 0.62, trn08 0.5; the rest 0.33 or less)
OVERHEARD = 0.75
MIN_OVERHEARD = 25  # window-frames (0.4 s heard once) below which that share says nothing

Segment = Callable[[np.ndarray], np.ndarray]  # (batch, 1, samples) waveforms -> (batch, frames, 7) scores
Embed = Callable[[list[np.ndarray]], np.ndarray]  # audio clips -> unit embeddings


@dataclass
class LocalSpeakers:
    """What the windows found: each window's local activity and each embedded local speaker."""

    offsets: list[int]  # each window's first frame on the file's frame grid
    activity: list[np.ndarray]  # per window: (frames, 3) uint8
    owners: list[tuple[int, int, int, int]]  # (window, local speaker, first, last frame) of each unit
    vectors: np.ndarray  # (units, dims) each unit's embedding
    speech: np.ndarray  # seconds of speech behind each unit
    frames: int  # frames on the file's grid
    copied: np.ndarray  # (units,) bool: the unit took an earlier window's embedding of the same speech
    mixed: np.ndarray  # (units,) bool: its clip holds others' speech too (it speaks alone under 1 s)


def starts(samples: int, step: float) -> list[int]:
    """Window starts, in frames (each window starts on the frame grid): every `step` s, the last one
    reaching the end of the audio."""
    chunk = int(CHUNK * SAMPLE_RATE)
    hop = max(1, round(step * SAMPLE_RATE / FRAME_STEP))
    last = max(0, -(-(samples - chunk) // FRAME_STEP))  # ceil: the last window covers the end
    found = list(range(0, last, hop))
    return [*found, last] if not found or found[-1] != last else found


def _clip(window: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The window's audio under the frames in `mask` (each frame's central 270 samples), joined."""
    centre = (FRAME_SIZE - FRAME_STEP) // 2
    samples = np.zeros(len(window), dtype=bool)
    where = np.flatnonzero(mask)
    for first, last in _runs(where):
        samples[centre + first * FRAME_STEP : centre + (last + 1) * FRAME_STEP] = True
    return window[samples]


def _runs(indices: np.ndarray) -> list[tuple[int, int]]:
    """Consecutive runs (first, last) of sorted integer indices."""
    if not len(indices):
        return []
    breaks = np.flatnonzero(np.diff(indices) > 1)
    firsts = np.concatenate([[indices[0]], indices[breaks + 1]])
    lasts = np.concatenate([indices[breaks], [indices[-1]]])
    return [(int(a), int(b)) for a, b in zip(firsts, lasts, strict=True)]


def _units(active: np.ndarray, split: int | None) -> list[tuple[int, int]]:
    """(first, last) frames of a local speaker's units: all of their frames in the window, or (`split`)
    each stretch of their speech, pauses of `split` frames or more cutting it."""
    where = np.flatnonzero(active)
    if not len(where):
        return []
    if split is None:
        return [(int(where[0]), int(where[-1]))]
    units: list[tuple[int, int]] = []
    for first, last in _runs(where):
        if units and first - units[-1][1] - 1 < split:
            units[-1] = (units[-1][0], last)
        else:
            units.append((first, last))
    return units


def _window_units(
    found: np.ndarray, pause: int | None, most: int, nearest: np.ndarray
) -> list[tuple[int, int, int, float, np.ndarray, bool]]:
    """The units of one window's local speakers (`found`: frames x 3): (local speaker, first frame, last
    frame, seconds of its speech, the frames its clip holds, whether they hold others' speech too). A
    unit's clip is its frames where it speaks alone (all of them, others' speech and all, when that is
    under `MIN_CLUSTERED`), at most `most` frames, those nearest the window's centre; units under
    `MIN_EMBEDDED` are left out."""
    frame_seconds = FRAME_STEP / SAMPLE_RATE
    alone = found.sum(axis=1) == 1
    units = []
    for k in range(LOCAL_SPEAKERS):
        for first, last in _units(found[:, k].astype(bool), pause):
            active = np.zeros(len(found), dtype=bool)
            active[first : last + 1] = found[first : last + 1, k].astype(bool)
            clean = active & alone
            mixed = clean.sum() * frame_seconds < MIN_CLUSTERED and bool((active & ~alone).any())
            mask = active if mixed else clean
            if mask.sum() * frame_seconds < MIN_EMBEDDED:
                continue
            said = float(mask.sum() * frame_seconds)
            if mask.sum() > most:
                keep = np.zeros_like(mask)
                keep[nearest[mask[nearest]][:most]] = True
                mask = keep
            units.append((k, first, last, said, mask, mixed))
    return units


class _Seen:
    """The units of the windows overlapping the next one: the file frames each one's clip holds, and the
    row of its embedding, to find the same clip again in the next window."""

    def __init__(self, reuse: float | None) -> None:
        self.reuse = reuse
        self.units: list[tuple[int, np.ndarray, int]] = []  # (window, file frames, embedding row)

    def same(self, window: int, start: int, span: int, spoken: np.ndarray) -> int | None:
        """The embedding row of an earlier window's unit whose clip holds, of the frames of `window` (file
        frames `start` to `start + span`), (nearly) the frames `spoken` (the sorted file frames of the clip
        of a unit of `window`): the same speech, of which the earlier clip may hold more."""
        if self.reuse is None:
            return None
        for earlier, heard, row in self.units:
            if earlier == window:
                continue
            inside = heard[(heard >= start) & (heard < start + span)]  # what of it this window holds
            shared = len(np.intersect1d(inside, spoken, assume_unique=True))
            if shared >= self.reuse * max(len(spoken), len(inside)):
                return row
        return None

    def add(self, window: int, heard: np.ndarray, row: int) -> None:
        self.units.append((window, heard, row))

    def forget(self, before: int) -> None:
        """Drop the units that end before file frame `before` (no later window reaches them)."""
        self.units = [u for u in self.units if u[1][-1] >= before]


def find_local(
    audio: np.ndarray,
    segment: Segment,
    embed: Embed,
    step: float,
    longest: float = LONGEST,
    split: float | None = SPLIT,
    reuse: float | None = REUSE,
) -> LocalSpeakers:
    """Steps 1 and 2: the local speakers of every window, and their embeddings (of at most `longest`
    seconds of each one's speech: the windows overlap, so the rest is heard in the next ones). With
    `split` (seconds), each stretch of a local speaker's speech between pauses that long is a unit of
    its own: the model sometimes takes two voices that take turns for one local speaker. With `reuse`, a
    unit whose clip holds the same frames as a clip of an earlier window (that share of either's frames)
    takes its embedding: the same speech is embedded once (a quarter to a third less embedding work on
    the built conversations of bench/diarization.py, the same DER on the real recordings; on the built
    ones too but for two speaker counts at the eigengap's margin, one better and one worse)."""
    chunk = int(CHUNK * SAMPLE_RATE)
    offsets = starts(len(audio), step)
    per_window = frames(chunk)
    activity: list[np.ndarray] = []
    owners: list[tuple[int, int, int, int]] = []
    vectors: list[np.ndarray] = []
    speech: list[float] = []
    rows: list[int] = []  # each unit's row among the embedded clips
    copied: list[bool] = []
    mixed: list[bool] = []
    seen = _Seen(reuse)
    embedded = 0
    frame_seconds = FRAME_STEP / SAMPLE_RATE
    most = max(1, round(longest / frame_seconds))
    pause = None if split is None else max(1, round(split / frame_seconds))
    nearest = np.argsort(np.abs(np.arange(per_window) - per_window / 2), kind="stable")  # centre first

    def segmented(lo: int) -> tuple[np.ndarray, np.ndarray]:
        """The windows `lo` to `lo + BATCH` (the last one zero-padded) and their local speakers. A
        window of digital silence only (a muted stretch) is nobody's without running the model."""
        batch = np.zeros((len(offsets[lo : lo + BATCH]), chunk), dtype=np.float32)
        for b, o in enumerate(offsets[lo : lo + BATCH]):
            piece = audio[o * FRAME_STEP : o * FRAME_STEP + chunk]
            batch[b, : len(piece)] = piece
        found = np.zeros((len(batch), per_window, LOCAL_SPEAKERS), dtype=POWERSET.dtype)  # (batch, frames, 3)
        sounding = np.flatnonzero(~vad.digital_silence(batch, SILENT))
        if len(sounding):
            found[sounding] = POWERSET[np.argmax(segment(batch[sounding, None, :]), axis=-1)]
        return batch, found

    # The next batch is segmented in another thread while this one's units are embedded: the two models
    # run side by side (onnxruntime lets go of the GIL), each on its own threads.
    with ThreadPoolExecutor(1, thread_name_prefix="segmentation") as ahead:
        upcoming = ahead.submit(segmented, 0)
        for lo in range(0, len(offsets), BATCH):
            batch, local = upcoming.result()
            if lo + BATCH < len(offsets):
                upcoming = ahead.submit(segmented, lo + BATCH)
            clips: list[np.ndarray] = []
            for b, found in enumerate(local):
                window = lo + b
                seen.forget(offsets[window])
                activity.append(found)
                for k, first, last, said, mask, overlapped in _window_units(found, pause, most, nearest):
                    owners.append((window, k, first, last))
                    speech.append(said)
                    mixed.append(overlapped)
                    heard = np.flatnonzero(mask) + offsets[window]  # the frames its clip would hold
                    row = seen.same(window, offsets[window], per_window, heard)
                    copied.append(row is not None)
                    if row is None:
                        row = embedded
                        embedded += 1
                        clips.append(_clip(batch[b], mask))
                    rows.append(row)
                    seen.add(window, heard, row)
            if clips:
                vectors.append(embed(clips))
    return LocalSpeakers(
        offsets,
        activity,
        owners,
        np.concatenate(vectors)[rows] if vectors else np.zeros((0, 1), np.float32),
        np.array(speech),
        offsets[-1] + per_window,
        np.array(copied, dtype=bool),
        np.array(mixed, dtype=bool),
    )


def assign(found: LocalSpeakers, centres: np.ndarray) -> np.ndarray:
    """Step 3's last part: each embedded unit's speaker (an index into `centres`): the nearest centroid,
    the units with most speech choosing first, and two units of one window that share frames never on
    one speaker (while there are speakers left)."""
    labels = np.zeros(len(found.owners), dtype=np.int64)
    scores = found.vectors @ centres.T
    for members in _by_window(found).values():
        done: list[int] = []
        for i in sorted(members, key=lambda m: -found.speech[m]):
            _, _, first, last = found.owners[i]
            taken = {
                int(labels[j]) for j in done if found.owners[j][2] <= last and first <= found.owners[j][3]
            }
            ranked = np.argsort(-scores[i])
            free = [int(c) for c in ranked if int(c) not in taken]
            labels[i] = free[0] if free else int(ranked[0])
            done.append(i)
    return labels


def _by_window(found: LocalSpeakers) -> dict[int, list[int]]:
    """Each window's units (indices into `owners`)."""
    units: dict[int, list[int]] = {}
    for i, (window, *_) in enumerate(found.owners):
        units.setdefault(window, []).append(i)
    return units


def overheard(found: LocalSpeakers, labels: np.ndarray, units: np.ndarray, speakers: int) -> np.ndarray:
    """(speakers, 2): for each speaker, how often the other windows hear the frames its `units` (indices
    into `owners`) speak in, window by window (each frame once per window covering it), and how often of
    those they hear two other speakers at once there and not this one (`labels`: every unit's speaker).
    One pass over the windows; the counts are kept on the file's frame grid."""
    covered = np.zeros(found.frames, dtype=np.int32)
    twos = np.zeros((found.frames, speakers), dtype=np.int32)
    mapped = _by_window(found)
    for window, (offset, local) in enumerate(zip(found.offsets, found.activity, strict=True)):
        here = np.zeros((len(local), speakers), dtype=bool)
        for i in mapped.get(window, []):
            _, k, first, last = found.owners[i]
            here[first : last + 1, labels[i]] |= local[first : last + 1, k].astype(bool)
        others = here.sum(axis=1, keepdims=True) - here
        covered[offset : offset + len(local)] += 1
        twos[offset : offset + len(local)] += (others >= 2) & ~here
    counts = np.zeros((speakers, 2), dtype=np.int64)
    for i in units:
        window, k, first, last = found.owners[i]
        spoken = np.flatnonzero(found.activity[window][first : last + 1, k]) + first + found.offsets[window]
        counts[labels[i], 0] += int((covered[spoken] - 1).sum())  # (its own window aside)
        counts[labels[i], 1] += int(twos[spoken, labels[i]].sum())
    return counts


def without_overheard(
    found: LocalSpeakers, strong: np.ndarray, groups: np.ndarray, level: float, least: int = 1
) -> np.ndarray:
    """The clustered units' groups (`groups`, one per index of `strong`), without the speakers whose
    speech the other windows hear, `level` of the times or more, as two other speakers at once and not
    as them: one window's local speaker that spans two voices (a quick exchange the model took for one
    voice) embeds like neither and can look like a voice of its own. Its units go to the nearest other
    speaker, most overheard first, while more than `least` speakers are left."""
    from voxhost.engines.speaker.cluster import centroids, folded

    vectors = found.vectors[strong]
    while groups.max() + 1 > max(1, least):
        centres = centroids(vectors, groups)
        counts = overheard(found, assign(found, centres), strong, len(centres))
        heard, two = counts[:, 0], counts[:, 1]
        share = two / np.maximum(heard, 1)
        blended = np.flatnonzero((heard >= MIN_OVERHEARD) & (share >= level))
        if not len(blended):
            break
        groups = folded(vectors, groups, centres, int(blended[np.argmax(share[blended])]))
    return groups


def aggregate(
    found: LocalSpeakers, labels: np.ndarray, speakers: int, samples: int, flicker: float | None = FLICKER
) -> np.ndarray:
    """Step 4: (file frames, speakers) bool: who speaks in each frame of the file (a speaker's runs under
    `flicker` seconds inside another's turn given back to them: `_steady`)."""
    total = found.frames
    weight = np.hamming(frames(int(CHUNK * SAMPLE_RATE))).astype(np.float32) + 1e-3
    active = np.zeros((total, speakers), dtype=np.float32)
    count = np.zeros(total, dtype=np.float32)
    covered = np.zeros(total, dtype=np.float32)
    mapped = _by_window(found)
    for window, (offset, local) in enumerate(zip(found.offsets, found.activity, strict=True)):
        span = slice(offset, offset + len(local))
        here = np.zeros((len(local), speakers), dtype=np.float32)
        for i in mapped.get(window, []):
            _, k, first, last = found.owners[i]
            part = slice(first, last + 1)
            here[part, labels[i]] = np.maximum(here[part, labels[i]], local[part, k])
        active[span] += here * weight[:, None]
        count[span] += local.sum(axis=1) * weight
        covered[span] += weight
    covered = np.maximum(covered, 1e-9)
    active /= covered[:, None]
    how_many = np.minimum(np.rint(count / covered), min(speakers, 2)).astype(np.int64)
    ranked = np.argsort(-active, axis=1)
    result = np.zeros((total, speakers), dtype=bool)
    for n in (1, 2):
        rows = np.flatnonzero(how_many >= n)
        if n <= speakers:
            picked = ranked[rows, n - 1]
            result[rows, picked] = active[rows, picked] > 0
    # frames centred beyond the end of the audio (the last window's padding) are nobody's
    centres = (np.arange(total) * FRAME_STEP + FRAME_SIZE / 2) / SAMPLE_RATE
    result[centres > samples / SAMPLE_RATE] = False
    return _steady(result, flicker)


def _steady(result: np.ndarray, shortest: float | None) -> np.ndarray:
    """One speaker's turn does not flicker to another: a single speaker's run shorter than `shortest`
    seconds between two runs of one other speaker alone (with at most pauses shorter than `MIN_GAP`
    between them, nobody else speaking) is theirs; the shortest runs first, each seeing the ones already
    given back. Two windows' nearly tied votes at a window's edge give such 0.1 s runs of another speaker
    inside one voice's turn."""
    if shortest is None or result.shape[1] < 2:
        return result
    most, gap = shortest * SAMPLE_RATE / FRAME_STEP, int(MIN_GAP * SAMPLE_RATE / FRAME_STEP)
    count = result.sum(axis=1)
    who = np.where(count == 1, np.argmax(result, axis=1), np.where(count == 0, -1, -2))
    changes = np.flatnonzero(np.diff(who)) + 1
    bounds = zip(np.concatenate([[0], changes]), np.concatenate([changes, [len(who)]]), strict=True)
    short = sorted(((int(b) - int(a), int(a), int(b)) for a, b in bounds if who[a] >= 0 and b - a < most))

    def beside(frame: int, step: int) -> int:
        """The speaker alone nearest `frame` going `step`-wise past a short pause (-1: none)."""
        for _ in range(gap + 1):
            if not 0 <= frame < len(who):
                return -1
            if who[frame] != -1:
                return int(who[frame]) if who[frame] >= 0 else -1
            frame += step
        return -1

    steady = result.copy()
    for _, first, end in short:
        here, left, right = int(who[first]), beside(first - 1, -1), beside(end, 1)
        if left >= 0 and left == right != here:
            who[first:end] = left
            steady[first:end] = False
            steady[first:end, left] = True
    return steady


def turns(result: np.ndarray) -> list[tuple[float, float, int]]:
    """(start, end, speaker) of each run of frames; a speaker's pause shorter than `MIN_GAP` in which
    nobody else speaks is part of their turn (a breath between words, as a VAD would hear it)."""
    out: list[tuple[float, float, int]] = []
    offset = (FRAME_SIZE - FRAME_STEP) / 2
    bridge = int(MIN_GAP * SAMPLE_RATE / FRAME_STEP)
    for speaker in range(result.shape[1]):
        others: np.ndarray = np.asarray(np.delete(result, speaker, axis=1).any(axis=1))
        spans: list[tuple[int, int]] = []
        for first, last in _runs(np.flatnonzero(result[:, speaker])):
            if spans and first - spans[-1][1] - 1 < bridge and not others[spans[-1][1] + 1 : first].any():
                spans[-1] = (spans[-1][0], last)
            else:
                spans.append((first, last))
        for first, last in spans:
            start = (first * FRAME_STEP + offset) / SAMPLE_RATE
            end = ((last + 1) * FRAME_STEP + offset) / SAMPLE_RATE
            if end - start >= MIN_TURN:
                out.append((start, end, speaker))
    return sorted(out)
