"""One interface over the three runtimes the benchmark measures: tf-keras, LiteRT, onnxruntime.

    m = runners.open_model(Path("artifacts/pruned_qat_int8.tflite"), "tflite")
    probs = m.predict(float_images)            # [N,10], batched
    m.prepare_single(images); m.run_single(0)  # batch-1 timing: set input, run, read output

Inputs are always float [N,28,28,1] in [0,1]; each runner encodes them for its model (int8
quantisation, layout) outside the timed call, using the runtime's ``ModelSpec``.
"""

from __future__ import annotations

import importlib.metadata
import os
import time
from pathlib import Path

import numpy as np

from pipeline.measure import palette
from runtime.metadata import ModelSpec

CORES = os.cpu_count() or 1


class Runner:
    runtime = ""

    def predict(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def prepare_single(self, images: np.ndarray) -> None:
        raise NotImplementedError

    def run_single(self, i: int) -> np.ndarray:
        raise NotImplementedError

    def throughput(self, x: np.ndarray, batch: int, seconds: float) -> dict | None:
        """Images per second at ``batch``, repeating over ``x`` for about ``seconds``."""
        batch_x, threads = self._throughput_input(x[:batch]), self._throughput_threads()
        run = self._throughput_call(len(batch_x))  # x may hold fewer images than ``batch``
        run(batch_x)
        n, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            run(batch_x)
            n += 1
        return {
            "batch": len(batch_x),
            "threads": threads,
            "value": round(n * len(batch_x) / (time.perf_counter() - start), 1),
        }

    def weights(self) -> dict:
        """params (kernels and biases), sparsity (zeros in kernels), macs when known, and the distinct
        values of each kernel (``palette``: per layer and per output channel, bits per weight)."""
        raise NotImplementedError


def _weight_stats(tensors: list[np.ndarray]) -> dict:
    kernels = [t for t in tensors if t.ndim >= 2]
    zeros = sum(int((k == 0).sum()) for k in kernels)
    size = sum(k.size for k in kernels)
    return {"params": int(sum(t.size for t in tensors)), "sparsity": round(zeros / size, 6) if size else 0.0}


def _is_weight(name: str, array: np.ndarray) -> bool:
    """Kernels and biases; not quantisation parameters or shape constants."""
    lowered = name.lower()
    if "scale" in lowered or "zero_point" in lowered or array.ndim == 0:
        return False
    return not (array.dtype.kind in "iu" and array.dtype != np.int8 and array.ndim == 1 and array.size <= 4)


class KerasRunner(Runner):
    def __init__(self, path: Path):
        import tensorflow as tf

        from pipeline.nn import model

        self.tf, self.net = tf, model.load(path)
        self.fn = tf.function(lambda x: self.net(x, training=False))
        self.runtime = f"tf-keras {importlib.metadata.version('tf-keras')}"

    def predict(self, x):
        return self.net.predict(x, batch_size=1000, verbose=0)

    def prepare_single(self, images):
        self.singles = [self.tf.constant(img[None]) for img in images]

    def run_single(self, i):
        return self.fn(self.singles[i]).numpy()

    def _throughput_input(self, x):
        return self.tf.constant(x)

    def _throughput_threads(self):
        return 1  # TensorFlow's thread pools are fixed at start-up: one thread, for the latency

    def _throughput_call(self, batch: int):
        return lambda x: self.fn(x).numpy()

    def weights(self):
        from pipeline.nn import model

        # QAT wraps each layer; the wrapper holds the float kernel and bias as variables.
        layers = [layer for layer in self.net.layers if isinstance(getattr(layer, "layer", layer), model.PRUNABLE)]
        tensors = [w.numpy() for layer in layers for w in layer.weights if w.name.endswith(("/kernel:0", "/bias:0"))]
        # Read from the variables: inside a QAT wrapper the layer's ``kernel`` is the fake-quantised tensor.
        kernels = {
            getattr(x, "layer", x).name: palette.layer(w.numpy(), -1)
            for x in layers
            for w in x.weights
            if w.name.endswith("/kernel:0")
        }
        return _weight_stats(tensors) | {"macs": model.macs(self.net), "palette": palette.summary(kernels)}


class LiteRunner(Runner):
    def __init__(self, path: Path):
        from ai_edge_litert.interpreter import Interpreter

        from pipeline.formats import tflite_io

        self.path, self.Interpreter = path, Interpreter
        self.spec = tflite_io.spec(path)
        self.one = self._interpreter(1, 1)
        self.runtime = f"ai-edge-litert {importlib.metadata.version('ai-edge-litert')}"

    def _interpreter(self, batch: int, threads: int):
        it = self.Interpreter(model_path=str(self.path), num_threads=threads)
        it.resize_tensor_input(it.get_input_details()[0]["index"], [batch, 28, 28, 1])
        it.allocate_tensors()
        return it

    def predict(self, x):
        it = self._interpreter(len(x), CORES)
        it.set_tensor(it.get_input_details()[0]["index"], self.spec.encode(x))
        it.invoke()
        return self.spec.decode(it.get_tensor(it.get_output_details()[0]["index"]))

    def prepare_single(self, images):
        self.singles = [self.spec.encode(img[None]) for img in images]
        self.inp = self.one.get_input_details()[0]["index"]
        self.out = self.one.get_output_details()[0]["index"]

    def run_single(self, i):
        self.one.set_tensor(self.inp, self.singles[i])
        self.one.invoke()
        return self.one.get_tensor(self.out)

    def _throughput_input(self, x):
        return self.spec.encode(x)

    def _throughput_threads(self):
        return CORES

    def _throughput_call(self, batch: int):
        it = self._interpreter(batch, CORES)
        inp, out = it.get_input_details()[0]["index"], it.get_output_details()[0]["index"]

        def call(x):
            it.set_tensor(inp, x)
            it.invoke()
            return it.get_tensor(out)

        return call

    def weights(self):
        from tensorflow.lite.tools import flatbuffer_utils

        fb = flatbuffer_utils.read_model(str(self.path))
        dtypes = {0: np.float32, 1: np.float16, 2: np.int32, 3: np.uint8, 4: np.int64, 9: np.int8}
        tensors, kernels = [], {}
        for t in fb.subgraphs[0].tensors:
            data = fb.buffers[t.buffer].data if t.buffer < len(fb.buffers) else None
            if data is not None and len(data) and t.type in dtypes:
                array = np.frombuffer(bytes(data), dtypes[t.type]).reshape(t.shape)
                name = t.name.decode() if isinstance(t.name, bytes) else str(t.name)
                if _is_weight(name, array):
                    tensors.append(array)
                    if array.ndim >= 2:  # TFLite stores Conv2D filters and FullyConnected weights output-first
                        kernels[palette.layer_name(name)] = palette.layer(array, 0)
        return _weight_stats(tensors) | {"macs": None, "palette": palette.summary(kernels)}


class OnnxRunner(Runner):
    def __init__(self, path: Path, options=None):
        """``options``: onnxruntime SessionOptions for batch 1; the runtime's if None."""
        import onnx
        import onnxruntime as ort

        from runtime.session import session_options

        self.ort, self.path, self.session_options = ort, path, session_options
        self.one = ort.InferenceSession(str(path), options or session_options(), providers=["CPUExecutionProvider"])
        self.spec = ModelSpec.from_props(self.one.get_modelmeta().custom_metadata_map)
        self.name = self.one.get_inputs()[0].name
        self.onnx = onnx
        self.runtime = f"onnxruntime {ort.__version__}"

    def predict(self, x):
        return np.concatenate(
            [
                self.spec.decode(self.one.run(None, {self.name: self.spec.encode(x[i : i + 1000])})[0])
                for i in range(0, len(x), 1000)
            ]
        )

    def prepare_single(self, images):
        self.singles = [self.spec.encode(img[None]) for img in images]

    def run_single(self, i):
        return self.one.run(None, {self.name: self.singles[i]})[0]

    def _throughput_input(self, x):
        return self.spec.encode(x)

    def _throughput_threads(self):
        return CORES

    def _throughput_call(self, batch: int):
        options = self.session_options()  # the runtime's defaults (one thread), widened to every core
        options.intra_op_num_threads = CORES
        many = self.ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
        return lambda x: many.run(None, {self.name: x})[0]

    def weights(self):
        from onnx import numpy_helper

        graph = self.onnx.load(str(self.path)).graph
        arrays = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
        # A quantised weight's zero is its zero point (128 for the uint8 kernels): count zeros as real values.
        for node in graph.node:
            if node.op_type == "DequantizeLinear" and node.input[0] in arrays and len(node.input) > 2:
                q, zero = arrays[node.input[0]].astype(np.int32), arrays[node.input[2]].astype(np.int32)
                axis = next((a.i for a in node.attribute if a.name == "axis"), 1) % max(q.ndim, 1)
                shape = [-1 if i == axis else 1 for i in range(q.ndim)] if zero.ndim else []
                arrays[node.input[0]] = q - zero.reshape(shape)
        named = {name: a for name, a in arrays.items() if _is_weight(name, a)}
        kernels = {
            palette.layer_name(n): palette.layer(a, _channel_axis(graph, n)) for n, a in named.items() if a.ndim > 1
        }
        return _weight_stats(list(named.values())) | {"macs": None, "palette": palette.summary(kernels)}


def _channel_axis(graph, name: str) -> int:
    """The output-channel axis of the ONNX weight ``name``: found at the Conv, Gemm or MatMul that uses it
    (through any DequantizeLinear, Cast or Mul before it)."""
    users = {}
    for node in graph.node:
        for tensor in node.input:
            users.setdefault(tensor, node)
    node = users.get(name)
    while node is not None and node.op_type in ("DequantizeLinear", "Cast", "Mul"):
        node = users.get(node.output[0])
    if node is not None and node.op_type == "Gemm":
        return 0 if any(a.name == "transB" and a.i for a in node.attribute) else 1
    return 1 if node is not None and node.op_type == "MatMul" else 0  # Conv: [out, in, h, w]


def open_model(path: Path, fmt: str) -> Runner:
    from pipeline.core import stage

    if not path.is_file():
        raise stage.PipelineError(f"{path} is missing: run `make all` to build it")
    return {"keras": KerasRunner, "tflite": LiteRunner, "onnx": OnnxRunner}[fmt](path)
