"""ONNX graph passes for the deployed model's fast path, applied in the order a recipe lists them.

    fast = graph.apply(onnx.load("structured_fp32.onnx"), ("drop_softmax", "nchw_input", "int8_weights"))

At batch 1 a model this small spends much of its time per node, so passes that remove nodes
which only move data pay as much as those that shrink arithmetic:

- ``drop_softmax``: the argmax of the logits is the argmax of the probabilities, so the
  final Softmax is work a classifier can skip; the runtime applies it only for confidences.
- ``nchw_input``: tf2onnx keeps Keras' NHWC input and reshapes it to NCHW for the first Conv;
  with one channel that is free to take as NCHW directly (the ``layout`` metadata says so, and
  every feeder of the contract honours it), so the Reshape goes.
- ``flatten_channels_first``: Keras flattens NHWC, so tf2onnx transposes the last feature map
  back from NCHW before the Flatten; permuting the rows of the following MatMul's weights to
  NCHW order instead computes the same function without the Transpose.
- ``int8_weights``: stores every Conv/MatMul/Gemm weight as int8 (symmetric, one scale per
  output channel) behind Cast -> Mul. Computation stays float: every onnxruntime build, with
  its default options, constant-folds Cast and Mul of initialisers into a float weight once,
  at load, so the file is 4x smaller and runs at float speed wherever it is loaded. (A
  DequantizeLinear would be kept by the default QDQ fusion and run as int8 kernels, or
  re-dequantised on every call, unless the loader turns that fusion off.)
- ``uint8_offset``: re-encodes an int8 QDQ model (TFLite's convention: int8 activations, int8
  weights) as uint8 activations and uint8 weights with every zero point raised by 128. Each
  quantised value and its zero point move together, so every real value, and every integer
  (q - zero_point) a kernel multiplies, is unchanged: the outputs are the same integers plus 128.
  What changes is the kernel onnxruntime picks: for int8 activations and int8 weights (and
  uint8 x int8) its x86 kernels without VNNI add pairs of products in 16 bits with saturation
  (``vpmaddubsw``), so an AVX2 CPU gives other outputs than an AVX-512 VNNI, SSE or ARM one; its
  uint8 x uint8 kernels widen to 16 bits before they multiply and are exact on every CPU.

- ``relu_after_quantize``: tf2onnx writes TFLite's fused ReLU as DequantizeLinear -> Conv (or
  MatMul, Gemm) -> Relu -> QuantizeLinear; with the Relu in the way onnxruntime does not fuse
  the group into its integer kernel (QLinearConv, QGemm) and runs it in float, whose rounding
  differs by the CPU's instruction set and from TFLite's integers, one step now and then. The
  pass quantises first and clips the integers at the zero point instead: Q(relu(x)) =
  clip(Q(x), zero point, max) for every x, so the function is the same and the groups fuse.

``apply`` ends by dropping initialisers no node reads any more (a removed Reshape leaves its shape
behind), which onnxruntime would otherwise warn about every time it loads the file.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper


def apply(model: onnx.ModelProto, passes: tuple[str, ...] | list[str]) -> onnx.ModelProto:
    """``model`` with each of ``passes`` (names of this module's passes) applied in order."""
    for name in passes:
        if name not in PASSES:
            raise ValueError(f"unknown graph pass {name!r}; known: {', '.join(PASSES)}")
        model = PASSES[name](model)
    return drop_unused(model)


def drop_unused(model: onnx.ModelProto) -> onnx.ModelProto:
    """Remove the initialisers that no node and no graph output reads, and the imports of operator
    domains no node uses (onnxruntime's quantiser imports com.microsoft and others it did not use,
    which a runtime without those domains may refuse)."""
    graph = model.graph
    read = {i for node in graph.node for i in node.input} | {o.name for o in graph.output}
    for t in [t for t in graph.initializer if t.name not in read]:
        graph.initializer.remove(t)
    used = {node.domain for node in graph.node} | {""}
    for o in [o for o in model.opset_import if o.domain not in used and o.domain != "ai.onnx"]:
        model.opset_import.remove(o)
    return model


def _consumers(graph: onnx.GraphProto, name: str) -> list[onnx.NodeProto]:
    return [n for n in graph.node if name in n.input]


def _rename_input(graph: onnx.GraphProto, old: str, new: str) -> None:
    for node in graph.node:
        node.input[:] = [new if i == old else i for i in node.input]


def nchw_input(model: onnx.ModelProto) -> onnx.ModelProto:
    """Take the single-channel image as [N,1,28,28] instead of reshaping [N,28,28,1] to it."""
    graph = model.graph
    (image,) = graph.input
    dims = image.type.tensor_type.shape.dim
    first = _consumers(graph, image.name)
    if len(dims) != 4 or dims[3].dim_value != 1 or len(first) != 1 or first[0].op_type not in ("Reshape", "Transpose"):
        raise ValueError("the graph does not start by turning a single-channel NHWC image into NCHW")
    (node,) = first
    if node.op_type == "Transpose" and list(helper.get_attribute_value(node.attribute[0])) != [0, 3, 1, 2]:
        raise ValueError("the graph's first Transpose is not NHWC -> NCHW")
    batch = dims[0].dim_param or dims[0].dim_value
    graph.node.remove(node)
    _rename_input(graph, node.output[0], image.name)
    elem, height, width = image.type.tensor_type.elem_type, dims[1].dim_value, dims[2].dim_value
    image.type.CopyFrom(helper.make_tensor_type_proto(elem, [batch, 1, height, width]))
    return model


def flatten_channels_first(model: onnx.ModelProto) -> onnx.ModelProto:
    """Drop the NCHW -> NHWC Transpose before Flatten -> MatMul by permuting the MatMul's weight rows."""
    graph = model.graph
    shapes = {v.name: v for v in onnx.shape_inference.infer_shapes(model).graph.value_info}
    initialisers = {t.name: t for t in graph.initializer}
    for node in list(graph.node):
        if node.op_type != "Transpose" or list(helper.get_attribute_value(node.attribute[0])) != [0, 2, 3, 1]:
            continue
        reshape = _consumers(graph, node.output[0])
        matmul = _consumers(graph, reshape[0].output[0]) if len(reshape) == 1 else []
        if len(matmul) != 1 or reshape[0].op_type != "Reshape" or matmul[0].op_type != "MatMul":
            continue
        weight = initialisers.get(matmul[0].input[1])
        _, c, h, w = (d.dim_value for d in shapes[node.input[0]].type.tensor_type.shape.dim)
        if weight is None or not c * h * w or weight.dims[0] != c * h * w:
            continue
        rows = numpy_helper.to_array(weight)
        permuted = rows.reshape(h, w, c, -1).transpose(2, 0, 1, 3).reshape(c * h * w, -1)
        weight.CopyFrom(numpy_helper.from_array(np.ascontiguousarray(permuted), weight.name))
        graph.node.remove(node)
        _rename_input(graph, node.output[0], node.input[0])
    return model


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


def uint8_offset(model: onnx.ModelProto) -> onnx.ModelProto:
    """int8 QDQ tensors (zero points, DequantizeLinear'd initialisers, graph inputs and outputs) as uint8, + 128."""
    graph = model.graph
    initialisers = {t.name: t for t in graph.initializer}
    quantised = set()
    for node in graph.node:
        if node.op_type in ("QuantizeLinear", "DequantizeLinear"):
            quantised.update(node.input[2:3])  # the zero point
            if node.op_type == "DequantizeLinear" and node.input[0] in initialisers:
                quantised.add(node.input[0])  # a stored weight (int32 biases are left alone)
    for name in sorted(quantised):
        t = initialisers.get(name)
        if t is not None and t.data_type == onnx.TensorProto.INT8:
            shifted = (numpy_helper.to_array(t).astype(np.int16) + 128).astype(np.uint8)
            t.CopyFrom(numpy_helper.from_array(shifted, name))
    for value in (*graph.input, *graph.output):
        if value.type.tensor_type.elem_type == onnx.TensorProto.INT8:
            value.type.tensor_type.elem_type = onnx.TensorProto.UINT8
    leftover = [t.name for t in graph.initializer if t.data_type == onnx.TensorProto.INT8]
    if leftover:
        raise ValueError(f"int8 initialisers outside Quantize/DequantizeLinear: {', '.join(leftover[:3])}")
    return model


def relu_after_quantize(model: onnx.ModelProto) -> onnx.ModelProto:
    """Each Relu read only by a QuantizeLinear: the QuantizeLinear reads the Relu's input, and a Clip from its zero
    point to the type's largest value restores the ReLU on the integers."""
    graph = model.graph
    initialisers = {t.name: t for t in graph.initializer}
    readers: dict[str, list[onnx.NodeProto]] = {}
    for node in graph.node:
        for name in node.input:
            readers.setdefault(name, []).append(node)
    for relu in [n for n in graph.node if n.op_type == "Relu"]:
        users = readers.get(relu.output[0], [])
        if len(users) != 1 or users[0].op_type != "QuantizeLinear" or len(users[0].input) < 3:
            continue
        quantise, zero_point = users[0], initialisers.get(users[0].input[2])
        if zero_point is None or relu.output[0] in {o.name for o in graph.output}:
            continue
        integers, clipped = f"{quantise.output[0]}_unclipped", quantise.output[0]
        dtype = helper.tensor_dtype_to_np_dtype(zero_point.data_type)
        top = numpy_helper.from_array(np.array(np.iinfo(dtype).max, dtype), f"{clipped}_top")
        graph.initializer.append(top)
        quantise.input[0], quantise.output[0] = relu.input[0], integers
        clip = helper.make_node("Clip", [integers, zero_point.name, top.name], [clipped], name=f"{clipped}_relu")
        graph.node.insert(list(graph.node).index(quantise) + 1, clip)
        graph.node.remove(relu)
    return model


PASSES = {
    "drop_softmax": drop_softmax,
    "nchw_input": nchw_input,
    "flatten_channels_first": flatten_channels_first,
    "int8_weights": int8_weights,
    "uint8_offset": uint8_offset,
    "relu_after_quantize": relu_after_quantize,
}
