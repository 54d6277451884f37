"""An int8 TFLite model's layers, with everything TensorFlow Lite Micro computes for them at Prepare.

    layers = int8_layers.read(Path("structured_qat_int8.tflite"))   # [Layer]: conv_pool, fully_connected, softmax
    multipliers, shifts = int8_layers.requant(layers[0])             # TFLM's per-channel QuantizeMultiplier

The ops are read from the flatbuffer and checked: CONV_2D (VALID, stride 1, each followed by a 2x2
stride-2 MAX_POOL_2D), RESHAPE, FULLY_CONNECTED and a final SOFTMAX, with fused RELU or no
activation. Anything else is refused in one line naming the op. What TFLM derives at Prepare is
derived here exactly as it does (double-precision effective scales, ``QuantizeMultiplier``,
activation ranges, softmax's input multiplier and ``diff_min``), for ``codegen`` to write as constants.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

SUPPORTED = ("CONV_2D", "MAX_POOL_2D", "RESHAPE", "FULLY_CONNECTED", "SOFTMAX")
ACTIVATIONS = {0: "NONE", 1: "RELU"}  # TFLite's ActivationFunctionType values this library implements
VALID = 1  # TFLite's Padding enum


class UnsupportedModel(ValueError):
    """The model uses something the generated library does not implement: one line saying what."""


@dataclass(frozen=True)
class Tensor:
    shape: tuple[int, ...]
    scale: np.ndarray  # float32, one per channel or one
    zero_point: np.ndarray
    data: np.ndarray | None  # constant tensors only


@dataclass
class Layer:
    kind: str  # "conv_pool", "fully_connected", "softmax"
    name: str
    inputs: Tensor
    output: Tensor
    weights: Tensor | None = None
    bias: Tensor | None = None
    activation: str = "NONE"
    extra: dict = field(default_factory=dict)


def quantize_multiplier(m: float) -> tuple[int, int]:
    """TFLite's QuantizeMultiplier: m = q * 2^(shift - 31) with q in [2^30, 2^31), rounded half away from zero."""
    if m == 0:
        return 0, 0
    fraction, shift = math.frexp(m)
    q = math.floor(fraction * 2**31 + 0.5)  # exact: fraction * 2^31 is a double, and positive
    if q == 2**31:
        q, shift = q // 2, shift + 1
    if shift < -31:
        return 0, 0
    return q, shift


def activation_range(activation: str, scale: float, zero_point: int) -> tuple[int, int]:
    if activation == "RELU":  # TFLM quantises 0.0 with roundf(0 / scale): the zero point
        return max(-128, zero_point), 127
    return -128, 127


def softmax_parameters(beta: float, input_scale: float) -> tuple[int, int, int]:
    """TFLM's softmax Prepare for int8: (input_multiplier, input_left_shift, diff_min)."""
    scaled_diff_bits = 5
    real = min(float(beta) * float(input_scale) * float(1 << (31 - scaled_diff_bits)), float(2**31 - 1))
    multiplier, shift = quantize_multiplier(real)
    max_input_rescaled = 1.0 * ((1 << scaled_diff_bits) - 1) * float(1 << (31 - scaled_diff_bits)) / float(1 << shift)
    return multiplier, shift, -math.floor(max_input_rescaled)


def _conv_pool(model: str, op, pool, tensor, index: int) -> Layer:
    o = op.builtinOptions
    if (o.padding, o.strideW, o.strideH, o.dilationWFactor, o.dilationHFactor) != (VALID, 1, 1, 1, 1):
        raise UnsupportedModel(f"{model}: CONV_2D other than VALID, stride 1, no dilation")
    p = pool[1].builtinOptions if pool is not None and pool[0] == "MAX_POOL_2D" else None
    if p is None or (p.padding, p.strideW, p.strideH, p.filterWidth, p.filterHeight) != (VALID, 2, 2, 2, 2):
        raise UnsupportedModel(f"{model}: CONV_2D must be followed by a 2x2, stride-2 MAX_POOL_2D")
    if p.fusedActivationFunction != 0:
        raise UnsupportedModel(f"{model}: MAX_POOL_2D with a fused activation")
    conv_out, out = tensor(op.outputs[0]), tensor(pool[1].outputs[0])
    if (conv_out.scale[0], conv_out.zero_point[0]) != (out.scale[0], out.zero_point[0]):
        raise UnsupportedModel(f"{model}: MAX_POOL_2D that changes the quantisation")
    activation = ACTIVATIONS[o.fusedActivationFunction]
    bias = tensor(op.inputs[2]) if len(op.inputs) > 2 and op.inputs[2] >= 0 else None
    inputs, weights = tensor(op.inputs[0]), tensor(op.inputs[1])
    return Layer("conv_pool", f"conv{index + 1}", inputs, out, weights, bias, activation)


def _fully_connected(model: str, op, tensor, index: int) -> Layer:
    weights = tensor(op.inputs[1])
    if weights.scale.size > 1 and np.any(weights.zero_point != 0):
        raise UnsupportedModel(f"{model}: FULLY_CONNECTED with asymmetric per-channel weights")
    activation = ACTIVATIONS[op.builtinOptions.fusedActivationFunction]
    bias = tensor(op.inputs[2]) if len(op.inputs) > 2 and op.inputs[2] >= 0 else None  # a zero bias may be dropped
    inputs, out = tensor(op.inputs[0]), tensor(op.outputs[0])
    return Layer("fully_connected", f"dense{index + 1}", inputs, out, weights, bias, activation)


def read(path: Path) -> list[Layer]:
    """The model's layers, checked against what the library implements."""
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model(str(path))
    if len(model.subgraphs) != 1:
        raise UnsupportedModel(f"{path.name}: {len(model.subgraphs)} subgraphs; the generator handles one")
    graph = model.subgraphs[0]
    op_names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}

    def tensor(i: int) -> Tensor:
        t = graph.tensors[i]
        q = t.quantization
        if t.type not in (schema.TensorType.INT8, schema.TensorType.INT32):
            raise UnsupportedModel(f"{path.name}: tensor {t.name.decode()!r} is not int8 (a float or mixed model)")
        data = model.buffers[t.buffer].data if t.buffer < len(model.buffers) else None
        dtype = np.int8 if t.type == schema.TensorType.INT8 else np.int32
        array = np.frombuffer(bytes(data), dtype).reshape(t.shape) if data is not None and len(data) else None
        scale = np.asarray(q.scale if q is not None and q.scale is not None else [1.0], np.float32)
        zero = np.asarray(q.zeroPoint if q is not None and q.zeroPoint is not None else [0], np.int64)
        return Tensor(tuple(int(d) for d in t.shape), scale, zero, array)

    ops = []
    for op in graph.operators:
        code = model.operatorCodes[op.opcodeIndex]
        name = op_names.get(max(code.builtinCode, code.deprecatedBuiltinCode), "?")
        if name not in SUPPORTED:
            raise UnsupportedModel(f"{path.name}: op {name} is not supported (only {', '.join(SUPPORTED)})")
        activation = getattr(op.builtinOptions, "fusedActivationFunction", 0)
        if activation not in ACTIVATIONS:
            raise UnsupportedModel(f"{path.name}: {name} with fused activation {activation} (only NONE, RELU)")
        ops.append((name, op))
    layers: list[Layer] = []
    i = 0
    while i < len(ops):
        name, op = ops[i]
        if name == "CONV_2D":
            layers.append(_conv_pool(path.name, op, ops[i + 1] if i + 1 < len(ops) else None, tensor, len(layers)))
            i += 1  # its max-pool too
        elif name == "MAX_POOL_2D":
            raise UnsupportedModel(f"{path.name}: a MAX_POOL_2D that does not follow a CONV_2D")
        elif name == "FULLY_CONNECTED":
            layers.append(_fully_connected(path.name, op, tensor, len(layers)))
        elif name == "SOFTMAX":
            out = tensor(op.outputs[0])
            if (float(out.scale[0]), int(out.zero_point[0])) != (1 / 256, -128):
                raise UnsupportedModel(f"{path.name}: SOFTMAX output not quantised as 1/256, zero point -128")
            layers.append(
                Layer("softmax", "softmax", tensor(op.inputs[0]), out, extra={"beta": op.builtinOptions.beta})
            )
        i += 1  # RESHAPE: NHWC data in row-major order, so a reshape moves no byte
    if not layers or layers[0].kind != "conv_pool" or layers[-1].kind != "softmax":
        raise UnsupportedModel(f"{path.name}: expected conv ... softmax")
    first = layers[0].inputs
    if not (math.isclose(float(first.scale[0]), 1 / 255, rel_tol=1e-6) and len(first.shape) == 4):
        raise UnsupportedModel(f"{path.name}: input not quantised with scale 1/255 (pixels cannot be read in place)")
    return layers


def size(t: Tensor) -> int:
    return int(np.prod(t.shape))


def requant(layer: Layer) -> tuple[list[int], list[int]]:
    """Per output channel (conv) or per tensor (fully connected): TFLM's multipliers and shifts."""
    in_s, out_s, w_s = float(layer.inputs.scale[0]), float(layer.output.scale[0]), layer.weights.scale
    if layer.kind == "conv_pool" or w_s.size > 1:  # per channel (conv, or FC's FullyConnectedPerChannel):
        channels = layer.weights.shape[0]  # every factor in double, as PopulateConvolutionQuantizationParams
        scales = np.broadcast_to(w_s, (channels,))
        pairs = [quantize_multiplier(in_s * float(s) / out_s) for s in scales]
    else:  # per-tensor FC, GetQuantizedConvolutionMultipler: the input x weight product rounded to float first
        pairs = [quantize_multiplier(float(np.float32(layer.inputs.scale[0]) * np.float32(w_s[0])) / out_s)]
    return [m for m, _ in pairs], [s for _, s in pairs]


def macs(layers: list[Layer]) -> int:
    """Multiply-accumulates of one inference: the convolutions (at full, unpooled size) and the dense layers."""
    total = 0
    for layer in layers:
        if layer.kind == "conv_pool":
            _, h, w, c = layer.inputs.shape
            oc, k = layer.weights.shape[0], layer.weights.shape[1]
            total += (h - k + 1) * (w - k + 1) * oc * k * k * c
        elif layer.kind == "fully_connected":
            total += int(np.prod(layer.weights.shape))
    return total
