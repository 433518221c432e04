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
