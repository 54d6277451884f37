"""Stage 5, export: the registry's TFLite and ONNX artifacts, one file per command.

    python -m pipeline.export                         # every export in pipeline/artifacts.py
    python -m pipeline.export structured_w8.onnx      # just these (what Make runs, one rule each)

Each artifact is made from its parent by its recipe (``RECIPES``): TensorFlow's TFLite
converter; tf2onnx; onnxruntime's static quantiser; tf2onnx from an int8 TFLite file, so the
ONNX model holds int8 weights rather than float weights wrapped in fake-quant nodes; or an
ONNX graph pass. Every int8 ONNX file is uint8 x uint8 QDQ: the kernels onnxruntime runs
exactly on every CPU (``graph.uint8_offset``). Every ONNX model passes ``onnx.checker`` and carries the runtime's
``metadata_props``; every file gets its record in ``records/``.
"""

from __future__ import annotations

import dataclasses
import logging
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from pipeline import artifacts
from pipeline import config as config_mod
from pipeline import data as data_mod
from pipeline.core import stage
from pipeline.formats import graph, onnx_io, tflite_io
from runtime.metadata import ModelSpec

log = logging.getLogger("pipeline.export")


def representative(cfg: config_mod.Config) -> np.ndarray:
    """Calibration images: the first N of the training split (never validation or test)."""
    return data_mod.splits(cfg)["x_train"][: cfg.export.representative_samples]


def _keras(path: Path):
    from pipeline.nn import model

    return model.load(path)


def tflite(cfg: config_mod.Config, a: artifacts.Artifact, parent: Path, output: Path) -> None:
    calibration = representative(cfg) if a.recipe.calibrate else None
    stage.write_bytes(output, tflite_io.convert(_keras(parent), a.precision, calibration))


def tf2onnx_keras(cfg: config_mod.Config, a: artifacts.Artifact, parent: Path, output: Path) -> None:
    import tensorflow as tf
    import tf2onnx

    signature = [tf.TensorSpec([None, 28, 28, 1], tf.float32, name="image")]
    model, _ = tf2onnx.convert.from_keras(_keras(parent), input_signature=signature, opset=cfg.export.onnx_opset)
    onnx_io.save(graph.drop_unused(model), output, ModelSpec(source=a.parent, name=a.name))


def ort_static_int8(cfg: config_mod.Config, a: artifacts.Artifact, parent: Path, output: Path) -> None:
    """onnxruntime static PTQ in QDQ form (standard ops only), uint8 activations and uint8 weights.

    uint8 x uint8 because those are the kernels onnxruntime runs exactly on every CPU: its
    uint8 x int8 and int8 x int8 kernels saturate on x86 without VNNI (see graph.uint8_offset).
    Weights are symmetric per output channel (zero point 128): int8's range, stored as uint8.
    """
    import onnx
    from onnxruntime import quantization as q

    calibration = representative(cfg)

    class Reader(q.CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter([{"image": calibration[i : i + 32]} for i in range(0, len(calibration), 32)])

        def get_next(self):
            return next(self.batches, None)

    with tempfile.TemporaryDirectory() as scratch:
        pre, quantised = Path(scratch) / "preprocessed.onnx", Path(scratch) / "quantised.onnx"
        q.quant_pre_process(str(parent), str(pre), skip_symbolic_shape=True)
        q.quantize_static(
            str(pre),
            str(quantised),
            Reader(),
            quant_format=q.QuantFormat.QDQ,
            activation_type=q.QuantType.QUInt8,
            weight_type=q.QuantType.QUInt8,
            per_channel=True,
            calibrate_method=q.CalibrationMethod.MinMax,
            extra_options={"WeightSymmetric": True, "ActivationSymmetric": False},
        )
        onnx_io.save(graph.drop_unused(onnx.load(str(quantised))), output, ModelSpec(source=a.parent, name=a.name))


def from_tflite(cfg: config_mod.Config, a: artifacts.Artifact, parent: Path, output: Path) -> None:
    """tf2onnx of an int8 TFLite model (QDQ, standard ops), then the entry's ``passes`` (``uint8_offset``)."""
    import tf2onnx

    model, _ = tf2onnx.convert.from_tflite(str(parent), opset=cfg.export.onnx_opset)
    passes = a.recipe.passes
    spec = tflite_io.spec(parent, source=a.parent)
    if "uint8_offset" in passes:  # the same integers, 128 higher: the zero points follow
        spec = dataclasses.replace(
            spec,
            input_dtype="uint8",
            input_zero_point=spec.input_zero_point + 128,
            output_zero_point=spec.output_zero_point + 128,
        )
    onnx_io.save(graph.apply(model, passes), output, dataclasses.replace(spec, name=a.name))


def graph_passes(cfg: config_mod.Config, a: artifacts.Artifact, parent: Path, output: Path) -> None:
    """The parent with the registry entry's ``passes`` applied (see pipeline/formats/graph.py)."""
    import onnx

    passes = a.recipe.passes
    spec = onnx_io.metadata(onnx.load(str(parent)))
    spec |= {"source": a.parent, "name": a.name}
    spec |= {"output": "logits"} if "drop_softmax" in passes else {}
    spec |= {"layout": "NCHW"} if "nchw_input" in passes else {}
    onnx_io.save(graph.apply(onnx.load(str(parent)), passes), output, ModelSpec.from_props(spec))


RECIPES: dict[str, Callable[[config_mod.Config, artifacts.Artifact, Path, Path], None]] = {
    "tflite": tflite,
    "tf2onnx": tf2onnx_keras,
    "ort_static_int8": ort_static_int8,
    "from_tflite": from_tflite,
    "graph_passes": graph_passes,
}


def export(cfg: config_mod.Config, a: artifacts.Artifact) -> Path:
    started = time.time()
    parent, output = cfg.artifacts / a.parent, cfg.artifacts / a.name
    if not parent.is_file():
        raise stage.PipelineError(f"{a.name} is made from {a.parent}, which is missing: run `make all`")
    if a.kind in ("tflite", "tf2onnx"):
        stage.seed_everything(cfg.seed)
    RECIPES[a.kind](cfg, a, parent, output)
    log.info("wrote %s (%s, %d bytes) from %s", a.name, a.precision, output.stat().st_size, a.parent)
    stage.record(cfg, "export", [output], [parent], started, artifact=a.describe())
    return output


def main() -> None:
    stage.main_each("export", export)


if __name__ == "__main__":
    main()
