"""Building an ONNX graph node by node from a state dict (`onnx.helper`): what the converted speaker
models share."""

from __future__ import annotations

from typing import Any

import numpy as np

OPSET = 17
BN_EPS = 1e-5


class Graph:
    """Nodes and initializers being gathered, with unique names."""

    def __init__(self, state: dict[str, np.ndarray]) -> None:
        from onnx import helper

        self.helper = helper
        self.state = state
        self.nodes: list[Any] = []
        self.inits: list[Any] = []
        self._count = 0

    def name(self, hint: str) -> str:
        self._count += 1
        return f"{hint}_{self._count}"

    def const(self, value: np.ndarray, hint: str = "c") -> str:
        from onnx import numpy_helper

        name = self.name(hint)
        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def weight(self, key: str) -> str:
        return self.const(self.state[key].astype(np.float32), key)

    def op(self, kind: str, inputs: list[str], **attrs: Any) -> str:
        out = self.name(kind.lower())
        self.nodes.append(self.helper.make_node(kind, inputs, [out], **attrs))
        return out

    def ints(self, *values: int) -> str:
        return self.const(np.array(values, dtype=np.int64), "ints")

    def conv(
        self,
        x: str,
        key: str,
        stride: int | tuple[int, int] = 1,
        pad: int | tuple[int, int] = 0,
        dilation: int = 1,
        bias: bool = False,
    ) -> str:
        w = self.state[f"{key}.weight"]
        spatial = w.ndim - 2
        strides = list(stride) if isinstance(stride, tuple) else [stride] * spatial
        pads = list(pad) * 2 if isinstance(pad, tuple) else [pad] * (2 * spatial)
        inputs = [x, self.weight(f"{key}.weight")]
        if bias:
            inputs.append(self.weight(f"{key}.bias"))
        return self.op("Conv", inputs, strides=strides, pads=pads, dilations=[dilation] * spatial)

    def bn(self, x: str, key: str, affine: bool = True) -> str:
        mean = self.state[f"{key}.running_mean"]
        scale = self.state[f"{key}.weight"] if affine else np.ones_like(mean)
        shift = self.state[f"{key}.bias"] if affine else np.zeros_like(mean)
        return self.op(
            "BatchNormalization",
            [
                x,
                self.const(scale.astype(np.float32)),
                self.const(shift.astype(np.float32)),
                self.weight(f"{key}.running_mean"),
                self.weight(f"{key}.running_var"),
            ],
            epsilon=BN_EPS,
        )

    def relu(self, x: str) -> str:
        return self.op("Relu", [x])
