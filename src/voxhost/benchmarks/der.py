"""Scoring diarization: the diarization error rate (missed speech + false alarm + speaker confusion, over
the reference's speech time, with the hypothesis speakers mapped onto the reference ones in the way that
fits best), with or without a collar around the reference's boundaries, and speaker-attributed WER."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from voxhost.harness.wer import word_errors, words

STEP = 0.01  # seconds per scored frame

Span = tuple[float, float, str]  # start, end, speaker


@dataclass(frozen=True)
class DerResult:
    der: float
    missed: float
    false_alarm: float
    confusion: float
    speech: float  # seconds of reference speech scored
    mapping: dict[str, str]  # hypothesis speaker -> reference speaker


def _frames(spans: Sequence[Span], speakers: list[str], count: int) -> np.ndarray:
    grid = np.zeros((len(speakers), count), dtype=bool)
    for start, end, speaker in spans:
        grid[speakers.index(speaker), round(start / STEP) : round(end / STEP)] = True
    return grid


def best_mapping(reference: Sequence[Span], hypothesis: Sequence[Span]) -> dict[str, str]:
    """Hypothesis speaker -> reference speaker, maximising the time they share (exhaustive for up to 7
    speakers a side, greedy beyond)."""
    ref = list(dict.fromkeys(s for *_, s in reference))
    hyp = list(dict.fromkeys(s for *_, s in hypothesis))
    end = max([e for _, e, _ in [*reference, *hypothesis]], default=0.0)
    count = int(end / STEP) + 2
    r, h = _frames(reference, ref, count), _frames(hypothesis, hyp, count)
    shared = (h[:, None, :] & r[None, :, :]).sum(axis=2).astype(float)  # hyp x ref
    if max(len(ref), len(hyp)) <= 7:
        best: tuple[float, dict[str, str]] = (-1.0, {})
        if len(hyp) <= len(ref):
            for chosen in itertools.permutations(range(len(ref)), len(hyp)):
                score = sum(shared[i, j] for i, j in enumerate(chosen))
                if score > best[0]:
                    best = (score, {hyp[i]: ref[j] for i, j in enumerate(chosen)})
        else:
            for chosen in itertools.permutations(range(len(hyp)), len(ref)):
                score = sum(shared[i, j] for j, i in enumerate(chosen))
                if score > best[0]:
                    best = (score, {hyp[i]: ref[j] for j, i in enumerate(chosen)})
        return best[1]
    mapping: dict[str, str] = {}
    work = shared.copy()
    for _ in range(min(len(ref), len(hyp))):
        i, j = divmod(int(np.argmax(work)), work.shape[1])
        mapping[hyp[i]] = ref[j]
        work[i, :] = -1
        work[:, j] = -1
    return mapping


def der(reference: Sequence[Span], hypothesis: Sequence[Span], collar: float = 0.0) -> DerResult:
    """The DER of `hypothesis` against `reference`; frames within `collar` seconds of a reference
    boundary are not scored."""
    mapping = best_mapping(reference, hypothesis)
    ref = list(dict.fromkeys(s for *_, s in reference))
    hyp = list(dict.fromkeys(s for *_, s in hypothesis))
    end = max([e for _, e, _ in [*reference, *hypothesis]], default=0.0)
    count = int(end / STEP) + 2
    r = _frames(reference, ref, count)
    h = _frames(hypothesis, hyp, count)
    scored = np.ones(count, dtype=bool)
    if collar > 0:
        edge = round(collar / STEP)
        for start, stop, _ in reference:
            for t in (start, stop):
                at = round(t / STEP)
                scored[max(0, at - edge) : at + edge] = False
    n_ref = r.sum(axis=0)
    n_hyp = h.sum(axis=0)
    correct = np.zeros(count, dtype=np.int64)
    for hyp_speaker, ref_speaker in mapping.items():
        correct += h[hyp.index(hyp_speaker)] & r[ref.index(ref_speaker)]
    missed = np.maximum(n_ref - n_hyp, 0)
    false_alarm = np.maximum(n_hyp - n_ref, 0)
    confusion = np.minimum(n_ref, n_hyp) - correct
    speech = float(n_ref[scored].sum()) * STEP
    parts = [float(x[scored].sum()) * STEP for x in (missed, false_alarm, confusion)]
    total = sum(parts) / speech if speech else 0.0
    return DerResult(total, parts[0] / speech if speech else 0.0, parts[1] / speech if speech else 0.0,
                     parts[2] / speech if speech else 0.0, speech, mapping)  # fmt: skip


def speaker_wer(
    reference: Sequence[tuple[str, str]], hypothesis: Sequence[tuple[str, str]], mapping: dict[str, str]
) -> float:
    """Speaker-attributed WER: each reference speaker's words against the words given to the
    hypothesis speaker mapped onto them (words of an unmapped speaker are all errors)."""
    said: dict[str, list[str]] = {}
    for speaker, text in reference:
        said.setdefault(speaker, []).append(text)
    heard: dict[str, list[str]] = {}
    for speaker, text in hypothesis:
        heard.setdefault(mapping.get(speaker, "?" + speaker), []).append(text)
    errors = 0
    for speaker in set(said) | set(heard):
        errors += word_errors(" ".join(heard.get(speaker, [])), " ".join(said.get(speaker, [])))
    total = sum(len(words(text)) for _, text in reference)
    return errors / total if total else 0.0


@dataclass(frozen=True)
class MissedParts:
    """Where the missed speech is, each a share of the reference's speech time."""

    nobody: float  # in frames where the hypothesis has no speaker at all (speech not heard)
    fewer: float  # in frames where it has some, but fewer than speak (overlap not heard)
    beyond_two: float  # what speaks beyond two at once: no pipeline of at most 2 speakers a frame finds it


def missed_parts(reference: Sequence[Span], hypothesis: Sequence[Span]) -> MissedParts:
    """The missed speech of `der` (no collar) split by what the hypothesis has in the frame."""
    end = max([e for _, e, _ in [*reference, *hypothesis]], default=0.0)
    count = int(end / STEP) + 2
    n_ref = _frames(reference, list(dict.fromkeys(s for *_, s in reference)), count).sum(axis=0)
    n_hyp = _frames(hypothesis, list(dict.fromkeys(s for *_, s in hypothesis)), count).sum(axis=0)
    speech = float(n_ref.sum()) or 1.0
    missed = np.maximum(n_ref - n_hyp, 0)
    nobody = float(missed[n_hyp == 0].sum())
    return MissedParts(
        nobody / speech,
        (float(missed.sum()) - nobody) / speech,
        float(np.maximum(n_ref - 2, 0).sum()) / speech,
    )


def named_shares(
    reference: Sequence[Span], hypothesis: Sequence[Span], names: set[str]
) -> tuple[float, float]:
    """Known speakers: of the reference speech of the speakers in `names`, the share the hypothesis gives
    their own name, and that share of the part of it where the hypothesis has anyone speaking (what
    was heard: naming apart from missed speech)."""
    end = max([e for _, e, _ in [*reference, *hypothesis]], default=0.0)
    count = int(end / STEP) + 2
    anyone = np.zeros(count, dtype=bool)
    for start, stop, _ in hypothesis:
        anyone[round(start / STEP) : round(stop / STEP)] = True
    theirs = heard = right = 0
    for name in names:
        own = _frames([s for s in reference if s[2] == name], [name], count)[0]
        given = _frames([s for s in hypothesis if s[2] == name], [name], count)[0]
        theirs += int(own.sum())
        heard += int((own & anyone).sum())
        right += int((own & given).sum())
    return (right / theirs if theirs else float("nan"), right / heard if heard else float("nan"))


def misnamed(reference: Sequence[Span], hypothesis: Sequence[Span], names: set[str]) -> float:
    """Seconds in which the hypothesis gives one of `names` while that speaker is silent in the reference
    and someone else speaks: another voice carrying a known speaker's name."""
    end = max([e for _, e, _ in [*reference, *hypothesis]], default=0.0)
    count = int(end / STEP) + 2
    anyone = _frames(reference, list(dict.fromkeys(s for *_, s in reference)), count).any(axis=0)
    wrong = 0
    for name in names:
        own = _frames([s for s in reference if s[2] == name], [name], count)[0]
        given = _frames([s for s in hypothesis if s[2] == name], [name], count)[0]
        wrong += int((given & ~own & anyone).sum())
    return wrong * STEP
