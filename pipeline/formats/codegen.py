"""An int8 TFLite model as a dependency-free C99 library, bit-exact with TensorFlow Lite Micro.

    lib = codegen.generate(Path("structured_qat_int8.tflite"), Path("mcu/lib"))   # writes mnist_model.c/.h + kernels
    int mnist_classify(const uint8_t pixels[784], int8_t out[10]);                 # what the library offers

``int8_layers`` reads and checks the model and derives TFLM's constants; this module writes them as C
and calls the integer kernels (``c/nn_int8.c``) layer by layer: each conv fused with its max-pool, so
no conv output is stored, the filters in the order the DSP path reads them, dense layers of at most 16
distinct weights as 4-bit palette indices. ``arena`` plans the one static arena. The input pixels are
read as bytes in place: a 1/255 input scale makes the quantised pixel the byte plus the zero point,
which is all the first conv needs.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from pipeline.formats import arena
from pipeline.formats.int8_layers import (
    Layer,
    Tensor,
    UnsupportedModel,
    activation_range,
    read,
    requant,
    size,
    softmax_parameters,
)

KERNELS = Path(__file__).with_name("c")  # nn_int8.c / nn_int8.h, copied beside the generated model


def _c_array(ctype: str, name: str, values: np.ndarray, per_line: int = 24) -> str:
    flat = [str(int(v)) for v in np.asarray(values).ravel()]
    lines = [", ".join(flat[i : i + per_line]) for i in range(0, len(flat), per_line)]
    return f"static const {ctype} {name}[{len(flat)}] = {{\n  " + ",\n  ".join(lines) + "\n};\n"


WIDE_DEPTH = 160  # NN_WIDE_DEPTH in c/nn_int8.c: filters up to this long widen 4 pooling positions at once, else 2


def filter_order(k: int, c: int) -> np.ndarray:
    """Where each stored filter value comes from in the [k][k][c] filter, as c/nn_int8.c reads it (-1: a zero):
    each filter row's whole words (k * c values rounded down to a multiple of 4), row after row, then the rows'
    leftover values, padded with zeros to a multiple of 4; so each whole word is one load of the input."""
    run = k * c
    whole = run // 4 * 4
    order = [ky * run + j for ky in range(k) for j in range(whole)]
    order += [ky * run + j for ky in range(k) for j in range(whole, run)]
    return np.array(order + [-1] * (-len(order) % 4))


def conv_depth(k: int, c: int) -> int:
    """One filter's stored length (nn_conv_depth in c/nn_int8.c)."""
    return len(filter_order(k, c))


def scratch_bytes(layer: Layer) -> int:
    """A conv's scratch, as nn_conv_scratch_words * 4: the DSP path's widened windows (16 bits a value,
    4 or 2 pooling positions at a time)."""
    if layer.kind != "conv_pool":
        return 0
    _, k, _, c = layer.weights.shape
    depth = conv_depth(k, c)
    positions = 4 if depth <= WIDE_DEPTH else 2
    return 2 * positions * depth


def folded_bias(layer: Layer, input_offset: int) -> Tensor | None:
    """The bias with the input offset folded in: TFLM accumulates sum w * (x + offset) + bias, which is
    sum w * x + (bias + offset * sum w), the same int32, so the kernels' inner loop is a plain dot product.
    (The first conv reads pixels, whose (q - zero point) is the byte itself: its offset is 0.)"""
    units = layer.weights.shape[0]
    if layer.bias is None and input_offset == 0:
        return None
    bias = layer.bias.data.astype(np.int64) if layer.bias is not None else np.zeros(units, np.int64)
    folded = bias + input_offset * layer.weights.data.reshape(units, -1).astype(np.int64).sum(axis=1)
    if np.abs(folded).max() >= 2**31:
        raise UnsupportedModel(f"{layer.name}: the bias with the input offset folded in overflows int32")
    return Tensor((units,), np.ones(1, np.float32), np.zeros(1, np.int64), folded.astype(np.int32))


def check_pool_first(layer: Layer, shifts: list[int], input_offset: int) -> None:
    """The conv kernel pools the accumulators and requantises the largest, which equals pooling the
    requantised outputs only while requantisation rises with the accumulator: it does unless a left shift
    (an effective scale above 1) wraps the accumulator, which a bound on its magnitude rules out."""
    oc = layer.weights.shape[0]
    reach = 255 if input_offset == 0 else 128 + abs(input_offset)  # the largest |x + offset| (pixels: 255)
    weights = np.abs(layer.weights.data.reshape(oc, -1).astype(np.int64)).sum(axis=1)
    bias = np.abs(layer.bias.data.astype(np.int64)) if layer.bias is not None else 0
    left = np.maximum(np.broadcast_to(np.asarray(shifts), (oc,)), 0)
    if np.any(weights * reach + bias >= 2.0 ** (31 - left)):
        raise UnsupportedModel(f"{layer.name}: its requantisation can wrap, so max-pooling cannot come first")


def _weights(layer: Layer) -> np.ndarray:
    """The weights as the kernels read them: each conv filter in ``filter_order``."""
    if layer.kind != "conv_pool":
        return layer.weights.data
    oc, k, _, c = layer.weights.shape
    order = filter_order(k, c)
    flat = np.concatenate([layer.weights.data.reshape(oc, -1), np.zeros((oc, 1), np.int8)], axis=1)
    return flat[:, order]  # -1 picks the appended zero


PALETTE = 16  # the most distinct weights a palette-coded dense layer may hold: 4-bit indices


def _indices(weights: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Per unit, per 4 weights: idx(w0) | idx(w2) << 4, then idx(w1) | idx(w3) << 4 (``values`` per unit, sorted)."""
    units, depth = weights.shape
    idx = np.stack([np.searchsorted(v, w) for v, w in zip(values, weights, strict=True)]).reshape(units, depth // 4, 4)
    coded = np.stack([idx[..., 0] | idx[..., 2] << 4, idx[..., 1] | idx[..., 3] << 4], axis=-1)
    return coded.reshape(units, depth // 2).astype(np.uint8)


def palette(weights: np.ndarray) -> tuple[str, np.ndarray, np.ndarray] | None:
    """A dense layer's [units, depth] int8 weights as 4-bit indices, or None where some unit takes more than 16
    values, the depth is not whole words or the coding would not save flash: (kind, table, indices).
    "pairs" (the whole layer takes at most 16 values, as per-tensor quantisation leaves a clustered layer):
    table[b] is index byte b's two weights as one int32 of 16-bit halves, the low nibble's low, which
    nn_fully_connected_p4 feeds to SMLAD. "units" (per unit, as per-channel quantisation leaves it): 16 int8
    values per unit, for nn_fully_connected_p4c."""
    units, depth = weights.shape
    layer = np.unique(weights)
    per_unit = [np.unique(w) for w in weights]
    if depth % 4 or max(len(v) for v in per_unit) > PALETTE:
        return None
    if len(layer) <= PALETTE and units * depth // 2 + 256 * 4 < units * depth:
        table = np.zeros(16, np.int64)
        table[: len(layer)] = layer
        b = np.arange(256)
        pairs = (table[b & 15] & 0xFFFF) | (table[b >> 4] << 16)  # a negative high half keeps the int32 negative
        return "pairs", pairs.astype(np.int32), _indices(weights, [layer] * units)
    if units * depth // 2 + units * 16 >= units * depth:
        return None
    tables = np.zeros((units, 16), np.int8)
    for t, v in zip(tables, per_unit, strict=True):
        t[: len(v)] = v
    return "units", tables, _indices(weights, per_unit)


def palette_coded(layer: Layer) -> bool:
    """Whether the generated library stores this layer's weights as 4-bit palette indices."""
    return (
        layer.kind == "fully_connected" and layer.weights.zero_point[0] == 0 and palette(layer.weights.data) is not None
    )


def weight_bytes(layer: Layer) -> int:
    """The flash the layer's weights take in the generated library: int8, or palette indices and their table."""
    if palette_coded(layer):
        _, table, indices = palette(layer.weights.data)
        return table.nbytes + indices.nbytes
    return _weights(layer).nbytes


def _layer_source(layer: Layer, first: bool, source: str, out: str, scratch: str) -> tuple[str, str]:
    """(constants, call) of one conv_pool or fully_connected layer reading ``source``, writing ``out``."""
    n = layer.name
    multipliers, shifts = requant(layer)
    lo, hi = activation_range(layer.activation, float(layer.output.scale[0]), int(layer.output.zero_point[0]))
    w_offset = 0 if layer.kind == "conv_pool" else -int(layer.weights.zero_point[0])
    in_offset = 0 if first else -int(layer.inputs.zero_point[0])  # pixels: the byte is already q - zero point
    if layer.kind == "conv_pool":
        check_pool_first(layer, shifts, in_offset)
    bias_tensor = folded_bias(layer, in_offset) if w_offset == 0 else layer.bias  # else: offsets term by term
    in_offset = in_offset if w_offset else 0  # folded
    coded = palette(layer.weights.data) if palette_coded(layer) else None
    if coded is None:
        data = [_c_array("int8_t", f"{n}_weights", _weights(layer))]
    else:
        kind, table, indices = coded
        ctype, per_line = ("int32_t", 8) if kind == "pairs" else ("int8_t", 16)
        data = [_c_array(ctype, f"{n}_{kind}", table, per_line), _c_array("uint8_t", f"{n}_indices", indices)]
    data.append(_c_array("int32_t", f"{n}_bias", bias_tensor.data) if bias_tensor is not None else "")
    bias = f"{n}_bias" if bias_tensor is not None else "0"  # no bias: the kernels take a null pointer
    data += [_c_array("int32_t", f"{n}_multiplier", multipliers), _c_array("int8_t", f"{n}_shift", shifts)]
    data.append(
        f"static const nn_requant {n}_requant = {{{n}_multiplier, {n}_shift, {in_offset}, "
        f"{w_offset}, {int(layer.output.zero_point[0])}, {lo}, {hi}, {int(len(multipliers) > 1)}}};\n"
    )
    if layer.kind == "conv_pool":
        _, h, w, c = layer.inputs.shape
        oc, k = layer.weights.shape[0], layer.weights.shape[1]
        kernel = "nn_conv_pool_u8" if first else "nn_conv_pool_s8"
        call = f"{kernel}({source}, {h}, {w}, {c}, {n}_weights, {k}, {oc}, {bias}, &{n}_requant, {scratch}, {out});"
    else:
        units, depth = layer.weights.shape
        if coded is None:
            kernel, weights = "nn_fully_connected", f"{n}_weights"
        else:
            kernel = "nn_fully_connected_p4" if coded[0] == "pairs" else "nn_fully_connected_p4c"
            weights = f"{n}_indices, {n}_{coded[0]}"
        call = f"{kernel}({source}, {depth}, {weights}, {units}, {bias}, &{n}_requant, {out});"
    return "".join(data), call


def model_source(layers: list[Layer], prefix: str, source: str) -> tuple[str, str]:
    """The model's header and C file: constants, the arena and the entry point."""
    memory = arena.plan(layers, [scratch_bytes(layer) for layer in layers])
    arena_bytes, offsets, scratch = memory.size, memory.outputs, memory.scratch
    inputs, classes = size(layers[0].inputs), size(layers[-1].output)
    data, calls = [], []
    where = lambda j: "pixels" if j < 0 else f"arena + {offsets[j]}"  # noqa: E731
    for j, layer in enumerate(layers):
        if layer.kind == "softmax":
            mult, shift, diff_min = softmax_parameters(layer.extra["beta"], float(layer.inputs.scale[0]))
            calls.append(f"nn_softmax({where(j - 1)}, {classes}, {mult}, {shift}, {diff_min}, out);")
            continue
        window = "0" if scratch[j] is None else f"(int32_t *)(arena + {scratch[j]})"
        constants, call = _layer_source(layer, j == 0, where(j - 1), f"arena + {offsets[j]}", window)
        data.append(constants)
        calls.append(call)
    guard = f"{prefix.upper()}_MODEL_H"
    header = f"""/* {prefix}_model.h: the int8 model {source}, generated by mnist-edge (pipeline/formats/codegen.py).
 * Outputs are bit-exact with TensorFlow Lite Micro's reference kernels on the same model. */
#ifndef {guard}
#define {guard}

#include <stdint.h>

#define {prefix.upper()}_INPUTS {inputs}      /* 28x28 pixels, row by row, 0 (paper) to 255 (ink) */
#define {prefix.upper()}_CLASSES {classes}
#define {prefix.upper()}_ARENA_BYTES {arena_bytes}  /* the static activation memory the call uses */

/* Classify one MNIST-normalised digit: out[d] is the quantised probability of digit d
 * (probability = (out[d] + 128) / 256); returns the most probable digit. Not reentrant: one arena. */
int {prefix}_classify(const uint8_t pixels[{prefix.upper()}_INPUTS], int8_t out[{prefix.upper()}_CLASSES]);

#endif
"""
    body = "\n".join(f"  {c}" for c in calls)
    code = f"""/* {prefix}_model.c: the int8 model {source}, generated by mnist-edge (pipeline/formats/codegen.py). */
#include "{prefix}_model.h"

#include "nn_int8.h"

{"".join(data)}
static int32_t arena_words[{arena_bytes // 4}]; /* word-aligned: the DSP path reads words */
static int8_t *const arena = (int8_t *)arena_words;

int {prefix}_classify(const uint8_t pixels[{prefix.upper()}_INPUTS], int8_t out[{prefix.upper()}_CLASSES]) {{
  int best = 0, d;
{body}
  for (d = 1; d < {classes}; ++d)
    if (out[d] > out[best]) best = d;
  return best;
}}
"""
    return header, code


def generate(model: Path, folder: Path, prefix: str = "mnist") -> list[Path]:
    """Write ``folder``/<prefix>_model.{{c,h}} and the kernels nn_int8.{{c,h}}: a library any C99 compiler builds."""
    from pipeline.core import stage

    header, code = model_source(read(model), prefix, model.name)
    folder.mkdir(parents=True, exist_ok=True)
    written = [folder / f"{prefix}_model.h", folder / f"{prefix}_model.c"]
    stage.write_bytes(written[0], header.encode())
    stage.write_bytes(written[1], code.encode())
    for name in ("nn_int8.h", "nn_int8.c"):
        shutil.copyfile(KERNELS / name, folder / name)
        written.append(folder / name)
    return written
