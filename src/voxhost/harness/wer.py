"""Word error counting, for tests and benchmarks that compare transcripts."""

from __future__ import annotations

import re


def words(text: str) -> list[str]:
    """Lower-case words without punctuation."""
    return re.findall(r"[a-z0-9']+", text.lower())


def word_errors(text: str, reference: str) -> int:
    """Word-level edit distance from `reference` (substitutions + insertions + deletions)."""
    got, want = words(text), words(reference)
    previous = list(range(len(want) + 1))
    for i, g in enumerate(got, start=1):
        current = [i]
        for j, w in enumerate(want, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (g != w)))
        previous = current
    return previous[-1]


def _alignment(got: list[str], want: list[str]) -> list[int]:
    """For each reference word, the edit operations charged to it in a minimal alignment (0 when it was
    heard right; a substitution or deletion 1; insertions go to the reference word after them)."""
    rows = [list(range(len(want) + 1))]
    for i, g in enumerate(got, start=1):
        previous, current = rows[-1], [i]
        for j, w in enumerate(want, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (g != w)))
        rows.append(current)
    charged = [0] * (len(want) + 1)
    i, j = len(got), len(want)
    while i > 0 or j > 0:
        if i > 0 and j > 0 and rows[i][j] == rows[i - 1][j - 1] + (got[i - 1] != want[j - 1]):
            charged[j - 1] += got[i - 1] != want[j - 1]
            i, j = i - 1, j - 1
        elif j > 0 and rows[i][j] == rows[i][j - 1] + 1:
            charged[j - 1] += 1  # the reference word is missing
            j -= 1
        else:
            charged[min(j, len(want) - 1) if want else 0] += 1  # an extra word, charged to its neighbour
            i -= 1
    return charged[: len(want)]


def missing_sentences(text: str, sentences: list[str], tolerance: float = 1 / 3) -> list[int]:
    """Indexes of the reference sentences (in spoken order) the transcript does not contain: aligned
    word by word against all of them, a sentence is missing when more than `tolerance` of its words
    are wrong or absent. A misheard name costs a word or two; a dropped sentence costs all of them."""
    want_by_sentence = [words(s) for s in sentences]
    charged = _alignment(words(text), [w for ws in want_by_sentence for w in ws])
    missing, position = [], 0
    for index, want in enumerate(want_by_sentence):
        errors = sum(charged[position : position + len(want)])
        position += len(want)
        if want and errors > tolerance * len(want):
            missing.append(index)
    return missing
