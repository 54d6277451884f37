"""Stage 5, export: every Keras model to TFLite and ONNX -> ``artifacts/*.tflite``, ``*.onnx``.

    python -m pipeline.export

TFLite comes from TensorFlow's converter; ONNX from tf2onnx, from onnxruntime's static
quantiser, or (for the quantisation-aware models) from the int8 TFLite file, so the ONNX
model holds int8 weights rather than float weights wrapped in fake-quant nodes. Every
ONNX model passes ``onnx.checker`` and carries the runtime's ``metadata_props``.
``export.json`` lists what was written; ``model.onnx`` is the deployed model.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from pipeline import config as config_mod
from pipeline import data as data_mod
from pipeline import graph, runners, stage
from runtime.metadata import ModelSpec

log = logging.getLogger("pipeline.export")

DEPLOYED_UNTIL_BENCHMARKED = "pruned_qat_int8.onnx"


@dataclass(frozen=True)
class Artifact:
    """One exported file and where it came from (the report's lineage table)."""

    name: str  # file name in artifacts/, e.g. "pruned_qat_int8.onnx"
    parent: str  # the artifact it was made from
    precision: str  # fp32 | fp16 | dynamic | int8
    stage: str  # the stage that made the parent

    @property
    def format(self) -> str:
        return Path(self.name).suffix.lstrip(".")


# (output, parent, precision, parent's stage); int8 TFLite has int8 input and output.
TFLITE = [
    Artifact("baseline_fp32.tflite", "baseline.keras", "fp32", "train"),
    Artifact("baseline_fp16.tflite", "baseline.keras", "fp16", "train"),
    Artifact("baseline_dynamic.tflite", "baseline.keras", "dynamic", "train"),
    Artifact("baseline_ptq_int8.tflite", "baseline.keras", "int8", "train"),
    Artifact("pruned_fp32.tflite", "pruned.keras", "fp32", "prune"),
    Artifact("qat_int8.tflite", "qat.keras", "int8", "qat"),
    Artifact("pruned_qat_int8.tflite", "pruned_qat.keras", "int8", "qat"),
    Artifact("structured_fp32.tflite", "structured.keras", "fp32", "structured"),
    Artifact("structured_qat_int8.tflite", "structured_qat.keras", "int8", "qat"),
]
ONNX = [
    Artifact("baseline_fp32.onnx", "baseline.keras", "fp32", "train"),
    Artifact("baseline_ptq_int8.onnx", "baseline_fp32.onnx", "int8", "export"),
    Artifact("pruned_qat_int8.onnx", "pruned_qat_int8.tflite", "int8", "export"),
    Artifact("structured_fp32.onnx", "structured.keras", "fp32", "structured"),
    Artifact("structured_qat_int8.onnx", "structured_qat_int8.tflite", "int8", "export"),
    # int8 weights, float compute, logits out: the fast path (see pipeline/graph.py)
    Artifact("structured_w8.onnx", "structured_fp32.onnx", "int8-weights", "export"),
]


def representative(cfg: config_mod.Config, data: dict) -> np.ndarray:
    """Calibration images: the first N of the training split (never validation or test)."""
    return data["x_train"][: cfg.export.representative_samples]


def to_tflite(net, precision: str, calibration: np.ndarray | None) -> bytes:
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_keras_model(net)
    if precision != "fp32":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if precision == "fp16":
        converter.target_spec.supported_types = [tf.float16]
    if precision == "int8":
        if calibration is not None:  # post-training: calibrate; QAT models carry their own ranges
            converter.representative_dataset = lambda: ([x[None]] for x in calibration)
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    return converter.convert()


def save_onnx(onnx_model, spec: ModelSpec, path: Path) -> None:
    """Stamp the runtime's metadata on ``onnx_model``, check it, and write it atomically."""
    import onnx

    onnx.helper.set_model_props(onnx_model, spec.to_props())
    onnx.checker.check_model(onnx_model)
    stage.write_bytes(path, onnx_model.SerializeToString())


def keras_to_onnx(net, opset: int):
    import tensorflow as tf
    import tf2onnx

    signature = [tf.TensorSpec([None, 28, 28, 1], tf.float32, name="image")]
    onnx_model, _ = tf2onnx.convert.from_keras(net, input_signature=signature, opset=opset)
    return onnx_model


def ort_static_int8(fp32_path: Path, calibration: np.ndarray, output: Path) -> None:
    """onnxruntime static PTQ: QOperator (QLinearConv/QLinearMatMul), uint8 activations, int8 weights."""
    import onnx
    from onnxruntime import quantization as q

    class Reader(q.CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter([{"image": calibration[i : i + 32]} for i in range(0, len(calibration), 32)])

        def get_next(self):
            return next(self.batches, None)

    with tempfile.TemporaryDirectory() as scratch, stage.atomic_path(output) as tmp:
        pre = Path(scratch) / "preprocessed.onnx"  # shape-inferred and optimised, input to the quantiser
        q.quant_pre_process(str(fp32_path), str(pre), skip_symbolic_shape=True)
        q.quantize_static(
            str(pre),
            str(tmp),
            Reader(),
            quant_format=q.QuantFormat.QOperator,
            activation_type=q.QuantType.QUInt8,
            weight_type=q.QuantType.QInt8,
            per_channel=True,
            calibrate_method=q.CalibrationMethod.MinMax,
        )
        save_onnx(onnx.load(str(tmp)), ModelSpec(source=fp32_path.name), tmp)


def run(cfg: config_mod.Config) -> Path:
    import onnx
    import tf2onnx

    from pipeline import model

    a = cfg.artifacts
    started = time.time()
    stage.seed_everything(cfg.seed)
    calibration = representative(cfg, data_mod.splits(cfg))
    nets = {}
    for art in TFLITE:
        nets.setdefault(art.parent, model.load(a / art.parent))
        post_training = art.precision == "int8" and art.stage == "train"
        stage.write_bytes(
            a / art.name, to_tflite(nets[art.parent], art.precision, calibration if post_training else None)
        )
        log.info("wrote %s (%d bytes)", art.name, (a / art.name).stat().st_size)

    opset = cfg.export.onnx_opset
    for name in ("baseline", "structured"):
        save_onnx(
            keras_to_onnx(nets[f"{name}.keras"], opset), ModelSpec(source=f"{name}.keras"), a / f"{name}_fp32.onnx"
        )
    ort_static_int8(a / "baseline_fp32.onnx", calibration, a / "baseline_ptq_int8.onnx")
    for name in ("pruned_qat", "structured_qat"):
        int8, _ = tf2onnx.convert.from_tflite(str(a / f"{name}_int8.tflite"), opset=opset)
        save_onnx(int8, runners.tflite_spec(a / f"{name}_int8.tflite", f"{name}.keras"), a / f"{name}_int8.onnx")
    fast = graph.int8_weights(graph.drop_softmax(onnx.load(str(a / "structured_fp32.onnx"))))
    save_onnx(fast, ModelSpec(output="logits", source="structured.keras"), a / "structured_w8.onnx")
    for art in ONNX:
        onnx.checker.check_model(str(a / art.name))
        log.info("wrote %s (%d bytes)", art.name, (a / art.name).stat().st_size)

    with stage.atomic_path(a / "model.onnx") as tmp:
        shutil.copyfile(a / DEPLOYED_UNTIL_BENCHMARKED, tmp)
    output = a / "export.json"
    parents = sorted({a / art.parent for art in TFLITE})
    listed = [asdict(x) | {"format": x.format} for x in TFLITE + ONNX]
    stage.record(cfg, "export", [output], parents, started, artifacts=listed, deployed=DEPLOYED_UNTIL_BENCHMARKED)
    return output


def main() -> None:
    stage.main("export", run)


if __name__ == "__main__":
    main()
