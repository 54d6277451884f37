"""A tiny pipeline-shaped ONNX classifier built in the test, for fast tests of graph passes and metadata.

model = tiny_onnx.classifier(seed=0)   # NHWC [N,28,28,1] float -> Conv -> Relu -> MatMul -> Gemm -> Softmax
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from runtime.metadata import ModelSpec


def classifier(seed: int = 0, spec: ModelSpec | None = None) -> onnx.ModelProto:
    rng = np.random.default_rng(seed)
    weights = {
        "conv_w": rng.normal(0, 0.3, (4, 1, 3, 3)).astype(np.float32),
        "conv_b": rng.normal(0, 0.1, 4).astype(np.float32),
        "nchw": np.array([-1, 1, 28, 28], np.int64),
        "shape": np.array([-1, 4 * 26 * 26], np.int64),
        "dense_w": rng.normal(0, 0.05, (4 * 26 * 26, 16)).astype(np.float32),
        "out_w": rng.normal(0, 0.3, (10, 16)).astype(np.float32),  # Gemm with transB: [out, in]
        "out_b": np.zeros(10, np.float32),
    }
    nodes = [
        helper.make_node("Reshape", ["image", "nchw"], ["planar"]),
        helper.make_node("Conv", ["planar", "conv_w", "conv_b"], ["conv"]),
        helper.make_node("Relu", ["conv"], ["relu"]),
        helper.make_node("Transpose", ["relu"], ["nhwc"], perm=[0, 2, 3, 1]),
        helper.make_node("Reshape", ["nhwc", "shape"], ["flat"]),
        helper.make_node("MatMul", ["flat", "dense_w"], ["dense"]),
        helper.make_node("Relu", ["dense"], ["hidden"]),
        helper.make_node("Gemm", ["hidden", "out_w", "out_b"], ["logits"], transB=1),
        helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 28, 28, 1])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", 10])],
        [numpy_helper.from_array(v, k) for k, v in weights.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    helper.set_model_props(model, (spec or ModelSpec(source="tiny.keras")).to_props())
    onnx.checker.check_model(model)
    return model


def images(n: int = 64, seed: int = 1) -> np.ndarray:
    """Random sparse 'ink' in [0,1], shaped like MNIST batches."""
    rng = np.random.default_rng(seed)
    return (rng.random((n, 28, 28, 1)) * (rng.random((n, 28, 28, 1)) > 0.8)).astype(np.float32)
