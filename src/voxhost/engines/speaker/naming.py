"""Naming the speakers after known samples (`known_speaker_names[]` + `known_speaker_references[]`):
which group of the clustering is which sample (`match`), the samples as anchors of the segmentation
pipeline's assignment (`anchored`), and one name's turns joined (`joined`). docs/benchmarks.md measures
the three ways of naming (`SpeakerDiarizer.naming`: one, split, anchors)."""

from __future__ import annotations

import numpy as np

from voxhost.diarization import DiarizeOptions, SpeakerTurn
from voxhost.engines.speaker.cluster import SAME_SPEAKER
from voxhost.engines.speaker.local import MIN_CLUSTERED, LocalSpeakers, assign

KNOWN_MATCH = 0.45  # cosine similarity at which a group is named after a known speaker's sample
SPLIT_MARGIN = 0.1  # a second group named after a sample is at most this much less alike to it


def match(centres: np.ndarray, references: np.ndarray, split: bool = True) -> dict[int, int]:
    """Which group (centroid) is which known speaker (sample): one group per sample, the most alike pair
    first, from `KNOWN_MATCH`; then (`split`) any other group as alike to a sample as two groups of one
    speaker are (`SAME_SPEAKER`), and within `SPLIT_MARGIN` of the group named after it, is that speaker
    too (the clustering split them: a far-field voice)."""
    scores = centres @ references.T
    known: dict[int, int] = {}
    free = scores.copy()
    for _ in range(min(free.shape)):
        group, ref = divmod(int(np.argmax(free)), free.shape[1])
        if free[group, ref] < KNOWN_MATCH:
            break
        known[group] = ref
        free[group, :] = -np.inf
        free[:, ref] = -np.inf
    named = {ref: group for group, ref in known.items()}
    for group in range(len(centres) if split else 0):
        best = int(np.argmax(scores[group]))
        if group in known or scores[group, best] < SAME_SPEAKER:
            continue
        # about as alike to the sample as the group named after it: a part of that voice, not another
        # voice that sounds like it (distinct synthetic voices are 0.65-0.72 alike to CAM++)
        if best not in named or scores[group, best] >= scores[named[best], best] - SPLIT_MARGIN:
            known[group] = best
    return known


def anchored(
    found: LocalSpeakers,
    centres: np.ndarray,
    references: np.ndarray,
    known: dict[int, int],
    options: DiarizeOptions,
) -> tuple[np.ndarray, dict[int, int]]:
    """The centres the units are assigned to, known samples as anchors: a group that is clearly a known
    speaker (`SAME_SPEAKER`) is centred on their sample, and a known speaker no group matched becomes a
    speaker of their own when the units nearest their sample hold `MIN_CLUSTERED` s of speech, are as
    alike to it as one speaker's groups and `SPLIT_MARGIN` more alike to it than to their group (the
    clustering had merged them into another voice). Not when the number of speakers is told, nor beyond
    `max_speakers`."""
    scores = centres @ references.T
    centred = centres.copy()
    for group, ref in known.items():
        if scores[group, ref] >= SAME_SPEAKER:
            centred[group] = references[ref]
    room = (options.max_speakers or len(references) + len(centres)) - len(centres)
    unmatched = [r for r in range(len(references)) if r not in known.values()]
    if options.num_speakers or room <= 0 or not unmatched:
        return centred, known
    # one sample at a time, each tried alone against the centres so far, the one that explains its units
    # best (the most speech-weighted gain in likeness) first: of two like-sounding samples (a present
    # voice's and a stranger's) only one takes the voice's units
    added: list[int] = []
    while unmatched and len(added) < room:
        centres_now = np.vstack([centred, references[added]]) if added else centred
        before = np.sum(found.vectors * centres_now[assign(found, centres_now)], axis=1)  # to their group
        best: tuple[float, int] | None = None
        for ref in unmatched:
            theirs = assign(found, np.vstack([centres_now, references[ref]])) == len(centres_now)
            speech = float(found.speech[theirs].sum())
            if speech < MIN_CLUSTERED:
                continue
            alike = found.vectors[theirs] @ references[ref]
            weights = found.speech[theirs]
            # as alike to the sample as one speaker's groups, and clearly more than to the group they
            # were in: a voice the clustering merged into another, not a like-sounding voice's units
            gain = np.average(alike - before[theirs], weights=weights)
            if np.average(alike, weights=weights) >= SAME_SPEAKER and gain >= SPLIT_MARGIN:
                best = max(best or (gain * speech, ref), (gain * speech, ref))
        if best is None:
            break
        added.append(best[1])
        unmatched.remove(best[1])
    extra = {len(centred) + i: ref for i, ref in enumerate(added)}
    return np.vstack([centred, references[added]]) if added else centred, {**known, **extra}


def joined(turns: list[SpeakerTurn]) -> list[SpeakerTurn]:
    """Turns in order of start, a speaker's turns that touch or overlap joined (two groups may carry one
    known speaker's name)."""
    out: list[SpeakerTurn] = []
    last: dict[str, int] = {}
    for turn in sorted(turns, key=lambda t: t.start):
        at = last.get(turn.speaker)
        if at is not None and turn.start <= out[at].end:
            out[at] = SpeakerTurn(out[at].start, max(out[at].end, turn.end), turn.speaker)
        else:
            last[turn.speaker] = len(out)
            out.append(turn)
    return out
