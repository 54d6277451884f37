"""TFLite files: convert a Keras model, and read the runtime's view of a file's input and output.

    data = tflite_io.convert(net, "int8", calibration)   # bytes of a .tflite file
    spec = tflite_io.spec(Path("qat_int8.tflite"))       # runtime.metadata.ModelSpec

int8 files take and give int8 (``inference_input_type``/``inference_output_type``), so a
microcontroller or an int8 ONNX model converted from them needs no float at either end.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from runtime.metadata import ModelSpec


def convert(net, precision: str, calibration: np.ndarray | None) -> bytes:
    """``net`` as TFLite: fp32, fp16 weights, dynamic-range int8 weights, or full int8.

    For int8, ``calibration`` images set the activation ranges of a post-training model;
    quantisation-aware models carry their own ranges and take None."""
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_keras_model(net)
    if precision != "fp32":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if precision == "fp16":
        converter.target_spec.supported_types = [tf.float16]
    if precision == "int8":
        if calibration is not None:
            converter.representative_dataset = lambda: ([x[None]] for x in calibration)
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    return converter.convert()


def spec(path: Path, source: str = "") -> ModelSpec:
    """The runtime's view of a TFLite model's I/O: dtype and quantisation of input and output."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path))
    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    found = {"source": source}
    if inp["dtype"] != np.float32:
        (scale, zero), dtype = inp["quantization"], np.dtype(inp["dtype"]).name
        found |= {"input_dtype": dtype, "input_scale": float(scale), "input_zero_point": int(zero)}
    if out["dtype"] != np.float32:
        scale, zero = out["quantization"]
        found |= {"output_scale": float(scale), "output_zero_point": int(zero)}
    return ModelSpec(**found)
