"""Grouping speaker embeddings into speakers: agglomerative clustering (average linkage on cosine
similarity) that stops when the closest two groups are less alike than `threshold`, so the number of
speakers is found, not told; `num_speakers` / `min_speakers` / `max_speakers` bound it when given.

Memory and time stay bounded on long files: at most `MAX_POINTS` embeddings are clustered (evenly
spaced), and every embedding then goes to the nearest speaker's centroid.
"""

from __future__ import annotations

import numpy as np

MAX_POINTS = 600


def normalize(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    unit: np.ndarray = (vectors / np.maximum(norms, 1e-9)).astype(np.float32)
    return unit


def agglomerate(
    embeddings: np.ndarray,
    threshold: float,
    num: int | None = None,
    minimum: int | None = None,
    maximum: int | None = None,
) -> np.ndarray:
    """One integer label per (normalised) embedding."""
    n = len(embeddings)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    lo = max(1, num or minimum or 1)
    hi = min(n, num or maximum or n)
    lo = min(lo, hi)
    sim = embeddings @ embeddings.T
    np.fill_diagonal(sim, -np.inf)
    sizes = np.ones(n)
    alive = np.ones(n, dtype=bool)
    label = np.arange(n)
    clusters = n
    while clusters > lo:
        flat = int(np.argmax(sim))
        a, b = divmod(flat, n)
        best = sim[a, b]
        if clusters <= hi and best < threshold:
            break
        # average linkage: the merged group's similarity to each other group, weighted by size
        merged = (sizes[a] * sim[a] + sizes[b] * sim[b]) / (sizes[a] + sizes[b])
        sim[a, :] = merged
        sim[:, a] = merged
        sim[a, a] = -np.inf
        sim[b, :] = -np.inf
        sim[:, b] = -np.inf
        sizes[a] += sizes[b]
        alive[b] = False
        label[label == b] = a
        clusters -= 1
    _, dense = np.unique(label, return_inverse=True)
    return dense.astype(np.int64)


def centroids(embeddings: np.ndarray, labels: np.ndarray) -> np.ndarray:
    count = int(labels.max()) + 1 if len(labels) else 0
    return (
        normalize(np.stack([embeddings[labels == k].mean(axis=0) for k in range(count)]))
        if count
        else embeddings[:0]
    )


def cluster(
    embeddings: np.ndarray,
    threshold: float,
    num: int | None = None,
    minimum: int | None = None,
    maximum: int | None = None,
    min_share: float = 0.0,
) -> np.ndarray:
    """Speaker labels for normalised embeddings, any number of them (bounded work beyond `MAX_POINTS`).

    Groups holding less than `min_share` of the embeddings (a few stray windows: a cough, a laugh, two
    voices at once) are folded into the nearest larger group, unless the count was told."""
    n = len(embeddings)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    picked = np.linspace(0, n - 1, min(n, MAX_POINTS)).round().astype(np.int64)
    picked = np.unique(picked)
    labels = agglomerate(embeddings[picked], threshold, num, minimum, maximum)
    centres = centroids(embeddings[picked], labels)
    labels = np.argmax(embeddings @ centres.T, axis=1)
    if num is None and min_share > 0 and len(centres) > max(1, minimum or 1):
        counts = np.bincount(labels, minlength=len(centres))
        keep = counts >= min_share * n
        keep_count = int(keep.sum())
        if keep_count >= max(1, minimum or 1) and keep_count < len(centres):
            centres = centres[keep]
            labels = np.argmax(embeddings @ centres.T, axis=1)
    # one refinement pass: centroids of the final assignment
    if len(centres) > 1:
        labels = np.argmax(embeddings @ centroids(embeddings, _dense(labels)).T, axis=1)
    return _dense(labels)


def _dense(labels: np.ndarray) -> np.ndarray:
    _, dense = np.unique(labels, return_inverse=True)
    return dense.astype(np.int64)
