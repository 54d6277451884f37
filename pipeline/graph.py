"""ONNX graph passes for the deployed model's fast path.

    fast = graph.int8_weights(graph.drop_softmax(onnx.load("structured_fp32.onnx")))

- ``drop_softmax``: the argmax of the logits is the argmax of the probabilities, so the
  final Softmax is work a classifier can skip; the runtime applies it only for confidences.
- ``int8_weights``: stores every Conv/MatMul/Gemm weight as int8 (symmetric, one scale per
  output channel) behind a DequantizeLinear. Computation stays float: onnxruntime folds the
  DequantizeLinear nodes into float weights once, at load, when QDQ fusion is off
  (``session.disable_quant_qdq``, set by the runtime), so the file is 4x smaller and runs
  at float speed; on this CPU int8 kernels were slower than float at batch 1.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper


def drop_softmax(model: onnx.ModelProto) -> onnx.ModelProto:
    """Make the graph output the logits feeding its final Softmax (output renamed "logits")."""
    graph = model.graph
    (output,) = graph.output
    last = next((n for n in graph.node if output.name in n.output), None)
    if last is None or last.op_type != "Softmax":
        raise ValueError(f"graph output {output.name!r} is not produced by a Softmax")
    graph.node.remove(last)
    for node in graph.node:
        node.output[:] = ["logits" if name == last.input[0] else name for name in node.output]
    output.name = "logits"
    return model


def int8_weights(model: onnx.ModelProto) -> onnx.ModelProto:
    """Store float Conv/MatMul/Gemm weight initialisers as int8 + per-output-channel scale."""
    graph = model.graph
    initialisers = {t.name: t for t in graph.initializer}
    dequantise = []
    for node in graph.node:
        weight = initialisers.get(node.input[1]) if node.op_type in ("Conv", "MatMul", "Gemm") else None
        if weight is None or weight.data_type != onnx.TensorProto.FLOAT:
            continue
        w = numpy_helper.to_array(weight)
        transposed = node.op_type == "Gemm" and any(a.name == "transB" and a.i for a in node.attribute)
        axis = 0 if node.op_type == "Conv" or transposed else w.ndim - 1  # the output-channel axis
        others = tuple(i for i in range(w.ndim) if i != axis)
        scale = (np.abs(w).max(axis=others) / 127).astype(np.float32)
        scale[scale == 0] = 1.0  # an all-zero channel stays zero whatever its scale
        q = np.clip(np.rint(w / np.expand_dims(scale, others)), -127, 127).astype(np.int8)
        graph.initializer.remove(weight)
        graph.initializer.extend(
            [numpy_helper.from_array(q, f"{weight.name}_int8"), numpy_helper.from_array(scale, f"{weight.name}_scale")]
        )
        dequantise.append(
            helper.make_node(
                "DequantizeLinear",
                [f"{weight.name}_int8", f"{weight.name}_scale"],
                [weight.name],
                axis=axis,
                name=f"{weight.name}_dequantise",
            )
        )
    nodes = dequantise + list(graph.node)  # DequantizeLinear first keeps the graph topologically sorted
    del graph.node[:]
    graph.node.extend(nodes)
    return model
