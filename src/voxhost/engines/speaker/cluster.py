"""Grouping speaker embeddings into speakers, the number of speakers found, not told (`num_speakers` /
`min_speakers` / `max_speakers` bound it when given):

- `spectral` (the default): spectral clustering of the pruned similarity graph, the count at the
  largest eigengap, groups more alike than `MERGE_ALIKE` merged. It counts right on real recordings,
  where same-speaker similarities vary with the channel (telephone, far microphones) and no single
  threshold fits (docs/benchmarks.md: the real telephone call, 2 speakers found where the threshold
  found 6). Under `MIN_SPECTRAL` embeddings the graph is too small for an eigengap: the threshold's way.
- `threshold`: agglomerative clustering (average linkage on cosine similarity) that stops when the
  closest two groups are less alike than `threshold`.

Memory and time stay bounded on long files: at most `MAX_POINTS` embeddings are clustered (evenly
spaced), and every embedding then goes to the nearest speaker's centroid.
"""

from __future__ import annotations

import numpy as np

MAX_POINTS = 600
SAME_SPEAKER = 0.5  # cosine similarity at which two groups of embeddings are one speaker (threshold)
MAX_SPEAKERS = 8  # the most speakers the eigengap looks for when not told
MIN_SPECTRAL = 10  # fewer embeddings than this (8 s of speech) are grouped by the threshold instead
METHODS = ("spectral", "threshold")


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


def spectral(
    embeddings: np.ndarray,
    num: int | None = None,
    minimum: int | None = None,
    maximum: int | None = None,
    neighbours: float | None = None,
) -> np.ndarray:
    """One integer label per (normalised) embedding by spectral clustering: each embedding keeps its
    most alike `neighbours` share (`NEIGHBOURS`, at least 6) of the others, the graph's Laplacian is
    decomposed, the number of speakers is where its eigenvalues jump most (the eigengap; or told), and
    k-means groups the rows of that many eigenvectors. The count comes from the structure of the
    similarities, not from one threshold that suits one kind of audio (3D-Speaker's recipe for CAM++)."""
    # The same audio said twice (a recording repeated, a jingle, a line a synthetic voice says again)
    # gives (nearly) the same embedding: each copy would be the others' nearest neighbours and the graph
    # would fall apart into cliques of copies. The graph is built on one of each.
    alike = embeddings @ embeddings.T
    first = np.argmax(alike > SAME_AUDIO, axis=1)  # the first embedding each one is a copy of
    if (first != np.arange(len(embeddings))).any():
        unique, back = np.unique(first, return_inverse=True)
        labels = spectral(embeddings[unique], num, minimum, maximum, neighbours)
        return _dense(labels[back])
    n = len(embeddings)
    lo = max(1, num or minimum or 1)
    hi = min(n - 1, num or maximum or MAX_SPEAKERS)
    if hi <= 1:
        return np.zeros(n, dtype=np.int64)
    affinity = alike
    keep = max(MIN_NEIGHBOURS, round((NEIGHBOURS if neighbours is None else neighbours) * n))
    pruned = np.zeros_like(affinity)
    rows = np.arange(n)[:, None]
    top = np.argpartition(-affinity, keep, axis=1)[:, :keep]
    pruned[rows, top] = affinity[rows, top]
    pruned = np.maximum(0.5 * (pruned + pruned.T), 0.0)
    np.fill_diagonal(pruned, 0.0)
    laplacian = np.diag(pruned.sum(axis=1)) - pruned
    values, vectors = _eigh(laplacian)
    if num is not None:
        count = min(num, n)
    else:
        gaps = np.diff(values[: hi + 1])
        count = int(np.argmax(gaps[lo - 1 :])) + lo
    if count <= 1:
        return np.zeros(n, dtype=np.int64)
    return _kmeans(vectors[:, :count], count)


def _eigh(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues and eigenvectors of a symmetric matrix, with the BLAS on one thread: a diarized
    request decodes beside it, and BLAS threads that wait for busy cores make this 10-50x slower
    (0.09 s against 0.4-8 s for 600 windows here, float32 worst)."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        values, vectors = np.linalg.eigh(matrix.astype(np.float64))
    return values, vectors


def _kmeans(points: np.ndarray, k: int, rounds: int = 100) -> np.ndarray:
    """Plain k-means, seeded the k-means++ way from a fixed generator (the same labels every run)."""
    rng = np.random.default_rng(0)
    centres = [points[int(rng.integers(len(points)))]]
    for _ in range(1, k):
        far = np.min([((points - c) ** 2).sum(axis=1) for c in centres], axis=0)
        total = float(far.sum())
        pick = int(rng.choice(len(points), p=far / total)) if total > 0 else int(rng.integers(len(points)))
        centres.append(points[pick])
    middle = np.stack(centres)
    labels = np.zeros(len(points), dtype=np.int64)
    for _ in range(rounds):
        labels = np.argmin(((points[:, None, :] - middle[None]) ** 2).sum(axis=2), axis=1)
        moved = np.stack(
            [points[labels == j].mean(axis=0) if (labels == j).any() else middle[j] for j in range(k)]
        )
        if np.allclose(moved, middle):
            break
        middle = moved
    return _dense(labels)


# the share of most alike embeddings each one keeps in the graph (3D-Speaker's 0.022 made a recording
# repeated to 10 minutes one speaker: each unit's 9 nearest were its own copies)
NEIGHBOURS = 0.05
MIN_NEIGHBOURS = 6  # and at least this many
# embeddings this alike are (near) copies of the same audio: a recording repeated, or one line said again
# by the same synthetic voice (0.97-0.999 alike; two utterances of one real voice are 0.6-0.95)
SAME_AUDIO = 0.97
# spectral groups whose centroids are this alike are one speaker (3D-Speaker's recipe for CAM++); three
# Kokoro voices are 0.67-0.71 alike
MERGE_ALIKE = 0.8
# an embedding less alike than this to every speaker found is somebody else: a voice that says too little
# for a group of its own in the graph (fewer units than a unit's neighbours). On the benchmarks'
# recordings such units sat at 0.32-0.41 (a Kokoro voice with one unit in 82 s; two AMI speakers), every
# other unit at >= 0.45 to its own speaker (telephone and far-field voices included)
STRANGER = 0.42
# a group whose every clip holds others' speech too, this alike to another group, is that speaker's speech
# blended with someone else's (`without_blends`): on the real telephone call cf4210 such a group (two
# units of a quick exchange with overlap) is 0.58 alike to a speaker (bench/diarization_channels.py); on
# no other recording of either diarization benchmark does the rule move anything (the variant without it)
BLEND = 0.5


def merge_alike(embeddings: np.ndarray, labels: np.ndarray, alike: float, minimum: int) -> np.ndarray:
    """Groups whose centroids are more alike than `alike` are one speaker (most alike first)."""
    labels = labels.copy()
    while labels.max() + 1 > minimum:
        centres = centroids(embeddings, _dense(labels))
        sim = centres @ centres.T
        np.fill_diagonal(sim, -np.inf)
        a, b = divmod(int(np.argmax(sim)), len(centres))
        if sim[a, b] < alike:
            break
        labels = _dense(labels)
        labels[labels == b] = a
        labels = _dense(labels)
    return labels


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
    method: str = "spectral",
    alike: float = MERGE_ALIKE,
    strangers: float | None = None,
) -> np.ndarray:
    """Speaker labels for normalised embeddings, any number of them (bounded work beyond `MAX_POINTS`).

    Groups holding less than `min_share` of the embeddings (a few stray windows: a cough, a laugh, two
    voices at once) are folded into the nearest larger group, unless the count was told. With
    `strangers` (spectral, not told), embeddings less alike than that to every group are speakers of
    their own (`with_strangers`)."""
    n = len(embeddings)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    picked = np.linspace(0, n - 1, min(n, MAX_POINTS)).round().astype(np.int64)
    picked = np.unique(picked)
    if method == "spectral" and len(picked) >= MIN_SPECTRAL:
        labels = spectral(embeddings[picked], num, minimum, maximum)
        if num is None:
            labels = merge_alike(embeddings[picked], labels, alike, max(1, minimum or 1))
    else:
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
    labels = _dense(labels)
    if strangers is not None and num is None and method == "spectral" and len(picked) >= MIN_SPECTRAL:
        labels = with_strangers(embeddings, labels, strangers, threshold, maximum or MAX_SPEAKERS)
    return labels


def with_strangers(
    embeddings: np.ndarray, labels: np.ndarray, level: float, threshold: float, most: int
) -> np.ndarray:
    """The embeddings less alike than `level` to every group's centroid are speakers of their own
    (grouped among themselves by the threshold), as long as there are at most `most` speakers."""
    best = (embeddings @ centroids(embeddings, labels).T).max(axis=1)
    odd = np.flatnonzero(best < level)
    if not len(odd) or len(odd) > MAX_POINTS:  # (bounded work)
        return labels
    groups = agglomerate(embeddings[odd], threshold)
    count = int(labels.max()) + 1
    if count + int(groups.max()) + 1 > most:
        return labels
    labels = labels.copy()
    labels[odd] = count + groups
    return labels


def without_blends(
    embeddings: np.ndarray, labels: np.ndarray, mixed: np.ndarray, alike: float, least: int = 1
) -> np.ndarray:
    """Groups made only of embeddings of clips mixed with others' speech (`mixed`) and at least `alike`
    to another group are no voice of their own: their embeddings go to the nearest other group, least
    distinct first, while more than `least` groups are left. Two voices at once give an embedding like
    both and neither; the graph can take a few of them for a speaker."""
    labels = _dense(labels)
    while labels.max() + 1 > max(1, least):
        centres = centroids(embeddings, labels)
        sim = centres @ centres.T
        np.fill_diagonal(sim, -np.inf)
        blended = [g for g in range(len(centres)) if mixed[labels == g].all() and sim[g].max() >= alike]
        if not blended:
            break
        labels = folded(embeddings, labels, centres, max(blended, key=lambda g: float(sim[g].max())))
    return labels


def folded(embeddings: np.ndarray, labels: np.ndarray, centres: np.ndarray, gone: int) -> np.ndarray:
    """The labels with group `gone`'s embeddings given to the nearest other group (`centres`: the
    groups' centroids), renumbered densely."""
    labels = labels.copy()
    members = labels == gone
    others = np.delete(np.arange(len(centres)), gone)
    labels[members] = others[np.argmax(embeddings[members] @ centres[others].T, axis=1)]
    return _dense(labels)


def _dense(labels: np.ndarray) -> np.ndarray:
    _, dense = np.unique(labels, return_inverse=True)
    return dense.astype(np.int64)
