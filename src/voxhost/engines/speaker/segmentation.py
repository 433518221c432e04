"""pyannote's segmentation-3.0 (PyanNet) built as an ONNX graph from its state dict, and its powerset.

16 kHz waveform in (`waveforms`: batch x 1 x samples; the model was trained on 10 s chunks), one score per
frame (every 270 samples, 16.875 ms; each frame sees 991 samples) for each of 7 powerset classes out
(log-probabilities): nobody, one of three local speakers, or two of them at once (`POWERSET`).

The layout follows pyannote.audio's `PyanNet` with the checkpoint's hyper-parameters: SincNet (instance
norm of the waveform; asteroid's `ParamSincFB`, 80 filters of 251 taps, stride 10, whose filters are
computed here from the learned band edges; |x|, max-pool 3, instance norm, leaky ReLU; then two 5-tap
convolutions 80->60->60, each pooled, normalised and leaky), a 4-layer bidirectional LSTM (hidden 128),
two linear layers with leaky ReLU, the classifier and a log-softmax. Only the weights come from the
checkpoint; PyTorch is never needed.
"""

from __future__ import annotations

import numpy as np

from voxhost.engines.speaker.graph import OPSET, Graph

# The classes the checkpoint pickles beside its tensors (read as inert records, never imported).
STAND_INS = (
    "torch.torch_version.TorchVersion",
    "pyannote.audio.core.task.Specifications",
    "pyannote.audio.core.task.Problem",
    "pyannote.audio.core.task.Resolution",
)
SAMPLE_RATE = 16000
CHUNK = 10.0  # seconds of audio the model was trained on
FRAME_STEP = 270  # samples between frames: stride 10 x three 3-pools
FRAME_SIZE = 991  # samples each frame sees (the receptive field)
# powerset class -> the local speakers (of 3) who speak in it: pyannote's Powerset(3, 2) order
POWERSET = np.array(
    [[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0], [1, 0, 1], [0, 1, 1]], dtype=np.uint8
)
LOCAL_SPEAKERS = 3

SINC_FILTERS = 80
SINC_TAPS = 251
SINC_STRIDE = 10
MIN_LOW_HZ = 50.0
MIN_BAND_HZ = 50.0
NORM_EPS = 1e-5
LEAK = 0.01  # F.leaky_relu's default slope
LSTM_LAYERS = 4
HIDDEN = 128


def frames(samples: int) -> int:
    """How many frames the model gives for `samples` of audio."""
    n = (samples - SINC_TAPS) // SINC_STRIDE + 1
    for kernel in (3, 5, 3, 5, 3):  # pool, conv, pool, conv, pool
        n = n // 3 if kernel == 3 else n - 4
    return max(0, n)


def sinc_filters(state: dict[str, np.ndarray], key: str = "sincnet.conv1d.0.filterbank") -> np.ndarray:
    """asteroid_filterbanks' `ParamSincFB.filters()`: 40 cosine and 40 sine band-pass filters between the
    learned band edges, windowed (Hamming), in float32 as the original computes them: (80, 1, 251)."""
    f32 = np.float32
    low_hz, band_hz = state[f"{key}.low_hz_"].astype(f32), state[f"{key}.band_hz_"].astype(f32)  # (40, 1)
    window, n = state[f"{key}.window_"].astype(f32), state[f"{key}.n_"].astype(f32)  # (125,), (1, 125)
    low = f32(MIN_LOW_HZ) + np.abs(low_hz)
    high = np.clip(low + f32(MIN_BAND_HZ) + np.abs(band_hz), f32(MIN_LOW_HZ), f32(SAMPLE_RATE / 2))
    band = (high - low)[:, 0]
    ft_low, ft_high = low @ n, high @ n
    half = n / f32(2)
    cos_left = (np.sin(ft_high) - np.sin(ft_low)) / half * window
    sin_left = (np.cos(ft_low) - np.cos(ft_high)) / half * window
    cos = np.concatenate([cos_left, 2 * band[:, None], cos_left[:, ::-1]], axis=1)
    sin = np.concatenate([sin_left, np.zeros_like(band[:, None]), -sin_left[:, ::-1]], axis=1)
    filters = np.concatenate([cos / (2 * band[:, None]), sin / (2 * band[:, None])], axis=0)
    return filters.reshape(SINC_FILTERS, 1, SINC_TAPS).astype(f32)


def _norm(g: Graph, x: str, key: str) -> str:
    return g.op(
        "InstanceNormalization", [x, g.weight(f"{key}.weight"), g.weight(f"{key}.bias")], epsilon=NORM_EPS
    )


def _pool_norm_leaky(g: Graph, x: str, key: str) -> str:
    pooled = g.op("MaxPool", [x], kernel_shape=[3], strides=[3])
    return g.op("LeakyRelu", [_norm(g, pooled, key)], alpha=LEAK)


def _lstm_weights(state: dict[str, np.ndarray], layer: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ONNX LSTM's W, R, B for one bidirectional layer: PyTorch's gates (i, f, g, o) reordered to
    ONNX's (i, o, f, c); the input and recurrent biases kept apart (Wb, Rb)."""
    order = [0, 3, 1, 2]

    def gates(w: np.ndarray) -> np.ndarray:
        return np.concatenate([np.split(w, 4, axis=0)[k] for k in order], axis=0)

    w, r, b = [], [], []
    for suffix in ("", "_reverse"):
        w.append(gates(state[f"lstm.weight_ih_l{layer}{suffix}"]))
        r.append(gates(state[f"lstm.weight_hh_l{layer}{suffix}"]))
        b.append(
            np.concatenate(
                [
                    gates(state[f"lstm.bias_ih_l{layer}{suffix}"]),
                    gates(state[f"lstm.bias_hh_l{layer}{suffix}"]),
                ]
            )
        )
    return np.stack(w).astype(np.float32), np.stack(r).astype(np.float32), np.stack(b).astype(np.float32)


def build(state: dict[str, np.ndarray]) -> bytes:
    """The serialized ONNX model of a segmentation-3.0 state dict (`pytorch_model.bin`)."""
    from onnx import TensorProto, checker, helper

    g = Graph(state)
    # SincNet
    x = _norm(g, "waveforms", "sincnet.wav_norm1d")
    x = g.op("Conv", [x, g.const(sinc_filters(state), "sinc")], strides=[SINC_STRIDE])
    x = _pool_norm_leaky(g, g.op("Abs", [x]), "sincnet.norm1d.0")
    for i in (1, 2):
        x = _pool_norm_leaky(g, g.conv(x, f"sincnet.conv1d.{i}", bias=True), f"sincnet.norm1d.{i}")
    # LSTM over (frames, batch, features)
    x = g.op("Transpose", [x], perm=[2, 0, 1])
    for layer in range(LSTM_LAYERS):
        w, r, b = _lstm_weights(state, layer)
        y = g.op("LSTM", [x, g.const(w, "W"), g.const(r, "R"), g.const(b, "B")],
                 hidden_size=HIDDEN, direction="bidirectional")  # fmt: skip
        # Y: frames, directions, batch, hidden -> frames, batch, directions * hidden
        y = g.op("Transpose", [y], perm=[0, 2, 1, 3])
        x = g.op("Reshape", [y, g.ints(0, 0, 2 * HIDDEN)])
    x = g.op("Transpose", [x], perm=[1, 0, 2])  # batch, frames, 256
    for i in (0, 1):
        weight = g.const(state[f"linear.{i}.weight"].T.astype(np.float32), "linear")
        x = g.op("Add", [g.op("MatMul", [x, weight]), g.weight(f"linear.{i}.bias")])
        x = g.op("LeakyRelu", [x], alpha=LEAK)
    weight = g.const(state["classifier.weight"].T.astype(np.float32), "classifier")
    x = g.op("Add", [g.op("MatMul", [x, weight]), g.weight("classifier.bias")])
    g.nodes.append(helper.make_node("LogSoftmax", [x], ["scores"], axis=-1))
    graph = helper.make_graph(
        g.nodes,
        "pyannote_segmentation_3",
        [helper.make_tensor_value_info("waveforms", TensorProto.FLOAT, ["batch", 1, "samples"])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["batch", "frames", len(POWERSET)])],
        g.inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="voxhost")
    model.ir_version = 8
    checker.check_model(model)
    return bytes(model.SerializeToString())
