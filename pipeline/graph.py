"""ONNX graph passes for the deployed model's fast path.

    fast = graph.int8_weights(graph.drop_softmax(onnx.load("structured_fp32.onnx")))

- ``drop_softmax``: the argmax of the logits is the argmax of the probabilities, so the
  final Softmax is work a classifier can skip; the runtime applies it only for confidences.
- ``int8_weights``: stores every Conv/MatMul/Gemm weight as int8 (symmetric, one scale per
  output channel) behind Cast -> Mul. Computation stays float: every onnxruntime build, with
  its default options, constant-folds Cast and Mul of initialisers into a float weight once,
  at load, so the file is 4x smaller and runs at float speed wherever it is loaded. (A
  DequantizeLinear would be kept by the default QDQ fusion and run as int8 kernels, or
  re-dequantised on every call, unless the loader turns that fusion off.)
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
    """Store float Conv/MatMul/Gemm weight initialisers as int8 times a per-output-channel float scale."""
    graph = model.graph
    initialisers = {t.name: t for t in graph.initializer}
    unpack = []
    for node in graph.node:
        weight = initialisers.get(node.input[1]) if node.op_type in ("Conv", "MatMul", "Gemm") else None
        if weight is None or weight.data_type != onnx.TensorProto.FLOAT:
            continue
        w = numpy_helper.to_array(weight)
        transposed = node.op_type == "Gemm" and any(a.name == "transB" and a.i for a in node.attribute)
        axis = 0 if node.op_type == "Conv" or transposed else w.ndim - 1  # the output-channel axis
        others = tuple(i for i in range(w.ndim) if i != axis)
        scale = np.expand_dims((np.abs(w).max(axis=others) / 127).astype(np.float32), others)  # broadcasts over w
        scale[scale == 0] = 1.0  # an all-zero channel stays zero whatever its scale
        q = np.clip(np.rint(w / scale), -127, 127).astype(np.int8)
        name = weight.name
        graph.initializer.remove(weight)
        graph.initializer.extend(
            [numpy_helper.from_array(q, f"{name}_int8"), numpy_helper.from_array(scale, f"{name}_scale")]
        )
        unpack += [
            helper.make_node(
                "Cast", [f"{name}_int8"], [f"{name}_float"], to=onnx.TensorProto.FLOAT, name=f"{name}_cast"
            ),
            helper.make_node("Mul", [f"{name}_float", f"{name}_scale"], [name], name=f"{name}_rescale"),
        ]
    nodes = unpack + list(graph.node)  # the weights first keeps the graph topologically sorted
    del graph.node[:]
    graph.node.extend(nodes)
    return model
