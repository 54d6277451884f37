"""Firmware files for TensorFlow Lite Micro: a .tflite model as a C array, its arena size and its ops.

    firmware.write(Path("structured_qat_int8.tflite"), arena_bytes, Path("artifacts/mcu"),
                   model_name="structured_qat_int8.tflite", ops=firmware.ops(path),
                   accuracy={"validation": 0.99, "test": 0.99})
    firmware.parse_c_array(Path("artifacts/mcu/model_data.cc").read_text())   # the model's bytes back

``write`` makes ``model_data.h`` (declarations, ``kTensorArenaSize`` and the input and output
quantisation), ``model_data.cc`` (the model as an ``alignas(16) const unsigned char`` array:
TFLM reads the flatbuffer in place from flash, so its buffers must be aligned) and a
``README.md`` with the C++ calls that run it and the op resolver it needs.
The flatbuffer is read with the schema that ships with ``tflite-micro``, not TensorFlow.
"""

from __future__ import annotations

import re
from pathlib import Path

from pipeline.core import stage

ARRAY = "g_model_data"  # the C array's name; its length is ARRAY + "_len"
ALIGN = 16  # bytes: TFLM's buffer alignment, for the array and the arena
# Bytes added to the measured arena for kTensorArenaSize: optimised kernels (CMSIS-NN and the
# like) ask for scratch buffers the host's reference kernels do not, and a firmware's arena may
# start unaligned. A 32-bit build needs less than the 64-bit host for the interpreter's own
# structs, so the margin is an upper bound, to be trimmed with arena_used_bytes() on the device.
ARENA_MARGIN = 1024
BYTES_PER_LINE = 12  # of the C array, as xxd -i writes it
# Builtin ops whose MicroMutableOpResolver method is not the CamelCase of the schema's name.
RESOLVER_EXCEPTIONS = {"UNIDIRECTIONAL_SEQUENCE_LSTM": "AddUnidirectionalSequenceLSTM"}


def _model(path: Path):
    from tflite_micro.python.tflite_micro import runtime

    return runtime.convert_bytearray_to_object(path.read_bytes())


def ops(path: Path) -> list[str]:
    """The builtin operators ``path`` uses (schema names, e.g. "CONV_2D"), in order of first use."""
    from tflite_micro.python.tflite_micro import runtime
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    model, found = _model(path), []
    for graph in model.subgraphs:
        for op in graph.operators or []:
            code = model.operatorCodes[op.opcodeIndex]
            if code.customCode:
                raise stage.PipelineError(f"{path.name} uses the custom op {code.customCode!r}: not a builtin")
            name = names[runtime.get_builtin_code_from_operator_code(code)]
            found += [name] if name not in found else []
    return found


def resolver_method(op: str) -> str:
    """The ``MicroMutableOpResolver`` method that registers ``op``: "CONV_2D" -> "AddConv2D"."""
    return RESOLVER_EXCEPTIONS.get(op) or "Add" + "".join(part.title() for part in op.split("_"))


def io_quantisation(path: Path) -> dict[str, dict]:
    """Shape, dtype, scale and zero point of the model's first input and first output."""
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

    dtypes = {v: k.lower() for k, v in vars(schema.TensorType).items() if not k.startswith("_")}
    graph = _model(path).subgraphs[0]
    found = {}
    for side, index in (("input", graph.inputs[0]), ("output", graph.outputs[0])):
        t = graph.tensors[index]
        q = t.quantization
        if q is None or q.scale is None or len(q.scale) != 1:
            raise stage.PipelineError(f"{path.name}: the {side} is not quantised per tensor; MCU models are int8")
        found[side] = {
            "shape": [int(d) for d in t.shape],
            "dtype": dtypes[t.type],
            "scale": float(q.scale[0]),
            "zero_point": int(q.zeroPoint[0]),
        }
    return found


def arena_size(measured: int, margin: int = ARENA_MARGIN) -> int:
    """``measured`` plus ``margin`` bytes, rounded up to a multiple of ALIGN."""
    return -(-(measured + margin) // ALIGN) * ALIGN


def c_array(data: bytes, name: str = ARRAY) -> str:
    """``data`` as C++ definitions: an aligned ``const unsigned char`` array and its length."""
    lines = [
        "  " + ", ".join(f"0x{b:02x}" for b in data[i : i + BYTES_PER_LINE]) + ","
        for i in range(0, len(data), BYTES_PER_LINE)
    ]
    body = "\n".join(lines) if lines else "  0x00,  // C++ forbids empty arrays; the length says 0"
    return (
        f"alignas({ALIGN}) const unsigned char {name}[] = {{\n{body}\n}};\n"
        f"const unsigned int {name}_len = {len(data)};\n"
    )


def parse_c_array(text: str, name: str = ARRAY) -> bytes:
    """The bytes of the array ``name`` in C/C++ source ``text`` (as ``c_array`` or ``xxd -i`` write
    it), cut to its ``NAME_len`` if one is defined. ValueError if it is absent or malformed."""
    text = re.sub(r"//[^\n]*|/\*.*?\*/", "", text, flags=re.DOTALL)
    match = re.search(rf"unsigned\s+char\s+{re.escape(name)}\s*\[\s*\d*\s*\]\s*=\s*\{{(.*?)\}}\s*;", text, re.DOTALL)
    if not match:
        raise ValueError(f"no `unsigned char {name}[] = {{...}};` in the text")
    tokens = [t.strip() for t in match.group(1).split(",") if t.strip()]
    try:
        values = [int(t, 0) for t in tokens]
    except ValueError:
        raise ValueError(f"{name}: not a list of integer literals") from None
    if any(not 0 <= v <= 255 for v in values):
        raise ValueError(f"{name}: a value outside 0..255")
    length = re.search(rf"\b{re.escape(name)}_len\s*=\s*(\d+)\s*;", text)
    n = int(length.group(1)) if length else len(values)
    if n > len(values):
        raise ValueError(f"{name}_len = {n} but the array has {len(values)} values")
    return bytes(values[:n])


def header(name: str, arena: int, quant: dict, about: str, kind: str = "scores") -> str:
    """model_data.h: the array's declarations and the constants a firmware needs to use it."""
    guard = "MNIST_EDGE_MODEL_DATA_H_"
    i, o = quant["input"], quant["output"]
    return f"""// {about}
#ifndef {guard}
#define {guard}

// Bytes of tensor arena to give tflite::MicroInterpreter (measured arena plus a margin).
constexpr int kTensorArenaSize = {arena};

// Input: {i["dtype"]} {i["shape"]}, q = round(x / kInputScale) + kInputZeroPoint for a pixel x in [0, 1].
constexpr float kInputScale = {i["scale"]:.9g}f;
constexpr int kInputZeroPoint = {i["zero_point"]};
// Output: {o["dtype"]} {o["shape"]}, {kind}: (q - kOutputZeroPoint) * kOutputScale.
constexpr float kOutputScale = {o["scale"]:.9g}f;
constexpr int kOutputZeroPoint = {o["zero_point"]};

extern const unsigned char {name}[];
extern const unsigned int {name}_len;

#endif  // {guard}
"""


README = """# {model_name} for TensorFlow Lite Micro

Firmware-ready files written by the pipeline: `model_data.cc` holds the int8 model as a
16-byte-aligned `const unsigned char {array}[]` ({flash} bytes of flash), `model_data.h`
declares it with `kTensorArenaSize` and the input and output quantisation.

| | |
| --- | --- |
| flash (model bytes) | {flash} bytes ({flash_kib:.1f} KiB) |
| arena, measured | {arena} bytes ({arena_kib:.1f} KiB): the smallest that allocates and runs in TFLM on the host |
| `kTensorArenaSize` | {arena_size} bytes: the measured arena plus {margin} bytes, rounded up to {align} |
| accuracy | {accuracy} |
| input | {in_dtype} {in_shape}, scale {in_scale:.9g}, zero point {in_zero} |
| output | {out_dtype} {out_shape} {out_kind}, scale {out_scale:.9g}, zero point {out_zero} |
| ops | {op_list} |

The arena was measured on a 64-bit host with the reference kernels. The margin covers the
scratch buffers of optimised kernels (CMSIS-NN and the like) and an unaligned arena; a
32-bit build needs fewer bytes for the interpreter's own structs. After `AllocateTensors()`,
`interpreter.arena_used_bytes()` tells what your build uses: trim `kTensorArenaSize` to that.

The input is an MNIST-style 28x28 image, white ink on black, the digit's longer side 20 px,
centred by its centre of mass (what `runtime/preprocess.py` makes of any image).

```c++
#include <math.h>
#include <stdint.h>

#include "model_data.h"
#include "tensorflow/lite/micro/micro_interpreter.h"
#include "tensorflow/lite/micro/micro_mutable_op_resolver.h"
#include "tensorflow/lite/schema/schema_generated.h"

alignas(16) static uint8_t tensor_arena[kTensorArenaSize];
static tflite::MicroInterpreter* interpreter = nullptr;

bool setup_model() {{
  const tflite::Model* model = tflite::GetModel({array});
  if (model->version() != TFLITE_SCHEMA_VERSION) return false;
  static tflite::MicroMutableOpResolver<{n_ops}> resolver;  // exactly the ops the model uses
{resolver_calls}
  static tflite::MicroInterpreter static_interpreter(model, resolver, tensor_arena, kTensorArenaSize);
  interpreter = &static_interpreter;
  return interpreter->AllocateTensors() == kTfLiteOk;
}}

// pixels: 28x28 grey levels, 0 (paper) to 255 (ink), row by row. Returns the digit, or -1.
int classify(const uint8_t pixels[28 * 28], float* confidence) {{
  TfLiteTensor* input = interpreter->input(0);
  for (int i = 0; i < 28 * 28; ++i) {{
    long q = lroundf(pixels[i] / 255.0f / kInputScale) + kInputZeroPoint;
    input->data.int8[i] = static_cast<int8_t>(q < -128 ? -128 : (q > 127 ? 127 : q));
  }}
  if (interpreter->Invoke() != kTfLiteOk) return -1;
  const int8_t* scores = interpreter->output(0)->data.int8;
  int best = 0;
  for (int d = 1; d < 10; ++d) {{
    if (scores[d] > scores[best]) best = d;
  }}
  *confidence = (scores[best] - kOutputZeroPoint) * kOutputScale;
  return best;
}}
```
"""


def write(
    tflite: Path,
    arena_bytes: int,
    folder: Path,
    *,
    model_name: str,
    ops: list[str],
    accuracy: dict,
    margin: int = ARENA_MARGIN,
    intro: str = "",
) -> list[Path]:
    """Write ``model_data.h``, ``model_data.cc`` and ``README.md`` for ``tflite`` into ``folder``.

    ``arena_bytes``: the measured arena; ``accuracy``: split name -> fraction correct."""
    data, quant = tflite.read_bytes(), io_quantisation(tflite)
    size = arena_size(arena_bytes, margin)
    kind = "probabilities" if ops and ops[-1] == "SOFTMAX" else "scores"
    about = f"{model_name}, {len(data)} bytes, written by the mnist-edge pipeline (pipeline/formats/firmware.py)"
    files = {
        "model_data.h": header(ARRAY, size, quant, about, kind),
        "model_data.cc": f'// {about}\n#include "model_data.h"\n\n{c_array(data)}',
        "README.md": intro
        + README.format(
            model_name=model_name,
            array=ARRAY,
            flash=len(data),
            flash_kib=len(data) / 1024,
            arena=arena_bytes,
            arena_kib=arena_bytes / 1024,
            arena_size=size,
            margin=margin,
            align=ALIGN,
            accuracy=", ".join(f"{split} {value:.2%}" for split, value in accuracy.items()),
            in_dtype=quant["input"]["dtype"],
            in_shape=quant["input"]["shape"],
            in_scale=quant["input"]["scale"],
            in_zero=quant["input"]["zero_point"],
            out_dtype=quant["output"]["dtype"],
            out_shape=quant["output"]["shape"],
            out_kind=kind,
            out_scale=quant["output"]["scale"],
            out_zero=quant["output"]["zero_point"],
            op_list=", ".join(f"`{op}`" for op in ops),
            n_ops=len(ops),
            resolver_calls="\n".join(f"  resolver.{resolver_method(op)}();" for op in ops),
        ),
    }
    paths = []
    for file_name, text in files.items():
        stage.write_bytes(folder / file_name, text.encode())
        paths.append(folder / file_name)
    return paths
