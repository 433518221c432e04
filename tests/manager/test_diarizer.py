"""The diarization model behind the manager: loaded once in its own worker on first use (not with
--preload), at a lower CPU priority than the decode beside it, replaced after a crash, `embed` /
`identify` for other features (who said a wake word), and clustering whose work stays bounded however
long the audio."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import numpy as np
import psutil
import pytest

from voxhost.benchmarks.conversations import EXCHANGE, converse
from voxhost.diarization import DiarizeOptions
from voxhost.engines.speaker import cluster as cluster_module
from voxhost.engines.speaker.cluster import MAX_POINTS, centroids, cluster, normalize
from voxhost.manager import ModelManager, speakers
from voxhost.settings import Settings


def _priorities(pid: int) -> set[int]:
    """The nice value of every thread of a process."""
    return {os.getpriority(os.PRIO_PROCESS, thread.id) for thread in psutil.Process(pid).threads()}


def test_diarizer_worker_loads_on_first_use_and_survives_a_crash(cache_dir: Path) -> None:
    talk = converse(EXCHANGE)  # A: joe, B: jf_alpha, C: jm_kumo
    ours = os.getpriority(os.PRIO_PROCESS, 0)
    lower = min(19, ours + Settings().diarization_nice)  # the diarizer leaves the cores to the decode

    def turn(index: int) -> np.ndarray:
        t = talk.turns[index]
        return talk.audio[int(t.start * 16000) : int(t.end * 16000)]

    async def main() -> None:
        settings = Settings(models=["tiny.en"], cache_dir=cache_dir, preload=True)
        async with ModelManager(settings) as manager:
            (status,) = manager.status("speakers")
            assert (status.task, status.state) == ("diarize", "unloaded")  # not preloaded
            first = await speakers.diarize(manager, talk.audio, DiarizeOptions())
            assert first.speakers == ["A", "B", "C"]
            assert [t.speaker for t in first.turns] == ["A", "B", "A", "C", "B", "A", "C"]
            (status,) = manager.status("speakers")
            assert status.pid is not None
            # every thread of the diarizer's worker (the model library's too) at the lower priority, the
            # ASR worker's at the server's
            assert _priorities(status.pid) == {lower}
            (asr,) = manager.status("tiny.en")
            assert asr.pid is not None
            assert _priorities(asr.pid) == {ours}
            os.kill(status.pid, signal.SIGKILL)
            deadline = time.monotonic() + 30
            while manager.status("speakers")[0].state != "crashed":
                assert time.monotonic() < deadline, "the crash is not noticed"
                await asyncio.sleep(0.01)
            again = await speakers.diarize(manager, talk.audio, DiarizeOptions())
            assert again.turns == first.turns
            (status,) = manager.status("speakers")
            assert (status.restarts, status.loads) == (1, 2)
            assert status.pid is not None
            assert _priorities(status.pid) == {lower}  # the new worker too
            # embed / identify: the voice of a clip against enrolled speakers
            joe = await speakers.embed(manager, turn(0))
            kumo = await speakers.embed(manager, turn(3))
            clip = turn(6)  # another sentence of kumo's
            name, score = await speakers.identify(manager, clip, {"joe": joe, "kumo": kumo})
            assert name == "kumo"
            assert score > float(np.dot(joe, kumo))

    asyncio.run(asyncio.wait_for(main(), 240))


def test_clustering_work_is_bounded_for_long_audio() -> None:
    """Two speakers' worth of windows (two noisy directions), 40,000 of them (8 hours at 0.75 s): all
    labelled, right, in work bounded by MAX_POINTS (the similarity matrix is MAX_POINTS squared)."""
    rng = np.random.default_rng(0)
    centres = normalize(rng.standard_normal((2, 192)))
    truth = rng.integers(0, 2, 40_000)
    points = normalize(centres[truth] + 0.06 * rng.standard_normal((40_000, 192)))
    labels = cluster(points, threshold=0.5)
    assert len(labels) == 40_000
    assert MAX_POINTS < 1000
    agreement = max(np.mean(labels == truth), np.mean(labels == 1 - truth))
    assert agreement == 1.0
    assert len(np.unique(cluster(points, threshold=0.5, num=3))) == 3  # told, it gives what it is told


def test_the_count_comes_from_the_similarity_graph_not_one_threshold() -> None:
    """Three voices heard through a channel that makes each voice's windows only ~0.35 alike (below
    the threshold, as on a real telephone call) while different voices stay ~0 alike: the spectral
    way counts three; the threshold's way (the control) splits each voice into many."""
    rng = np.random.default_rng(1)
    centres = normalize(rng.standard_normal((3, 192)))
    truth = np.repeat(np.arange(3), [120, 80, 40])
    points = normalize(centres[truth] + 0.098 * rng.standard_normal((len(truth), 192)))
    same = [float(points[i] @ points[j]) for i, j in zip(range(0, 100, 2), range(1, 100, 2), strict=True)]
    assert np.median(same) < 0.5  # below the threshold: the case this is about
    labels = cluster(points, threshold=0.5)
    assert len(np.unique(labels)) == 3
    assert all(len(np.unique(labels[truth == k])) == 1 for k in range(3))
    assert len(np.unique(cluster(points, threshold=0.5, method="threshold"))) > 3  # the control
    assert len(np.unique(cluster(points, threshold=0.5, num=2))) == 2


def test_lines_said_again_by_one_voice_do_not_split_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """Three voices, each saying six lines eight times over (a synthetic voice says a line the same way
    again: the copies 0.98-0.99 alike), two of the voices ~0.66 alike: three speakers. The copies are
    one point each in the graph; kept apart (the control, `SAME_AUDIO` at 0.999), each copy's nearest
    neighbours are its own copies and the graph falls apart into cliques of one line each: its
    eigenvalues say nothing of the voices."""
    rng = np.random.default_rng(3)
    base = normalize(rng.standard_normal((3, 192)))
    across = normalize(base[2] - (base[2] @ base[1]) * base[1])
    base[2] = normalize(0.75 * base[1] + np.sqrt(1 - 0.75**2) * across)
    lines = normalize(np.repeat(base, 6, axis=0) + 0.06 * rng.standard_normal((18, 192)))
    points = normalize(np.repeat(lines, 8, axis=0) + 0.008 * rng.standard_normal((144, 192)))
    truth = np.repeat(np.arange(3), 48)
    assert min(float(points[i] @ points[i + 1]) for i in range(0, 144, 8)) > cluster_module.SAME_AUDIO
    centres = centroids(points, truth)
    assert 0.6 < float(centres[1] @ centres[2]) < cluster_module.MERGE_ALIKE  # alike, but two voices
    labels = cluster(points, threshold=0.5)
    assert len(np.unique(labels)) == 3
    assert all(len(np.unique(labels[truth == k])) == 1 for k in range(3))
    monkeypatch.setattr(cluster_module, "SAME_AUDIO", 0.999)
    assert len(np.unique(cluster(points, threshold=0.5))) != 3  # the graph in pieces: no count is right


def test_a_voice_with_too_few_units_for_the_graph_is_a_speaker_of_its_own() -> None:
    """Two voices with 30 units each and a third with one unit (one short line in a long conversation),
    0.35 alike to the second voice (as unlike voices are in CAM++'s space): too few for a group of its
    own in the graph (each unit keeps at least `MIN_NEIGHBOURS` neighbours), so the eigengap counts 2
    and the line goes to a speaker it is not (the control, strangers off). A unit less alike than
    `STRANGER` to every speaker is another: 3. The units of the two voices least like their own
    (0.45-0.6, as far-field ones are) stay theirs."""
    rng = np.random.default_rng(5)
    voices = normalize(rng.standard_normal((3, 192)))
    across = normalize(voices[2] - (voices[2] @ voices[1]) * voices[1])
    voices[2] = 0.35 * voices[1] + np.sqrt(1 - 0.35**2) * across
    truth = np.repeat(np.arange(3), [30, 30, 1])
    points = normalize(voices[truth] + 0.045 * rng.standard_normal((len(truth), 192)))
    for i in (0, 30):  # the weakest units of the two voices: their voice and as much noise
        points[i] = normalize(voices[truth[i]] + 2.2 * normalize(rng.standard_normal(192)))
    own = centroids(points, truth)
    weakest = [float(points[i] @ own[truth[i]]) for i in (0, 30)]
    assert all(cluster_module.STRANGER < w < 0.6 for w in weakest), weakest
    assert len(np.unique(cluster(points, threshold=0.5))) == 2  # the control: no strangers
    labels = cluster(points, threshold=0.5, strangers=cluster_module.STRANGER)
    assert len(np.unique(labels)) == 3
    assert all(len(np.unique(labels[truth == k])) == 1 for k in range(3))
    assert len(np.unique(labels[truth < 2])) == 2
    told = cluster(points, threshold=0.5, num=2, strangers=cluster_module.STRANGER)
    assert len(np.unique(told)) == 2  # told the count, it is kept
    capped = cluster(points, threshold=0.5, maximum=2, strangers=cluster_module.STRANGER)
    assert len(np.unique(capped)) == 2  # and the most speakers asked for


def test_blended_clips_are_the_speaker_they_are_like_and_a_voice_heard_only_over_others_stays() -> None:
    """Two voices with 20 clean units each; two clips of both at once (each holds others' speech: mixed),
    whose embedding is like both (an overlap on a real telephone call: cf4210, bench/diarization_real.py);
    and a third voice heard only over the others (two mixed clips, 0.35 alike to the second voice).
    Grouped apart (as the graph can), the blend is no voice of its own: its clips go to the speaker they
    are most like; the third voice, unlike every speaker, stays. Controls: a blend group with one clean
    clip is kept (a voice that also speaks alone), and so is every group when no fewer speakers than
    there are groups are asked for."""
    rng = np.random.default_rng(7)
    voices = normalize(rng.standard_normal((3, 192)))
    across = normalize(voices[2] - (voices[2] @ voices[1]) * voices[1])
    voices[2] = 0.35 * voices[1] + np.sqrt(1 - 0.35**2) * across
    clean = normalize(voices[np.repeat([0, 1], 20)] + 0.045 * rng.standard_normal((40, 192)))
    blends = normalize(voices[0] + 0.8 * voices[1] + 0.1 * rng.standard_normal((2, 192)))
    over = normalize(voices[2] + 0.05 * rng.standard_normal((2, 192)))
    points = np.concatenate([clean, blends, over])
    groups = np.repeat(np.arange(4), [20, 20, 2, 2])
    mixed = groups >= 2
    centres = centroids(points, groups)
    assert min(float(centres[2] @ centres[k]) for k in (0, 1)) > cluster_module.BLEND  # like both
    assert max(float(centres[3] @ centres[k]) for k in (0, 1)) < cluster_module.BLEND  # like neither

    labels = cluster_module.without_blends(points, groups, mixed, cluster_module.BLEND)
    assert len(np.unique(labels)) == 3
    nearest = int(np.argmax(blends.mean(axis=0) @ centres[:2].T))
    assert (labels[groups == 2] == labels[groups == nearest][0]).all()  # the blend: its nearest speaker
    assert len(np.unique(labels[groups == 3])) == 1
    assert labels[40 + 2] not in labels[:40]  # the third voice: kept
    assert all(len(np.unique(labels[groups == k])) == 1 for k in (0, 1))

    one_clean = mixed.copy()
    one_clean[40] = False
    kept = cluster_module.without_blends(points, groups, one_clean, cluster_module.BLEND)
    assert len(np.unique(kept)) == 4
    asked = cluster_module.without_blends(points, groups, mixed, cluster_module.BLEND, least=4)
    assert len(np.unique(asked)) == 4
