"""Every ONNX artifact is a clean, standard model: any ONNX host can load and run it, and agrees on the digits.

Checked on the smoke run's files, one test per registry entry: onnx's full check (with shape
inference), a plain ``onnxruntime.InferenceSession(path)`` with default logging that prints nothing,
only standard-domain operators (no ``com.microsoft`` contrib op that only onnxruntime implements),
and a second implementation of ONNX, onnx's own reference evaluator, giving the same digits as
onnxruntime.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import onnx
import pytest
from onnx import version_converter
from onnx.reference import ReferenceEvaluator

from pipeline import artifacts, data
from runtime.metadata import ModelSpec

ONNX = [a.name for a in artifacts.ARTIFACTS if a.format == "onnx"] + ["model.onnx"]
STANDARD = ("", "ai.onnx", "ai.onnx.ml")  # ONNX's own domains (the default under either name, and ML)
REFERENCE_IMAGES = 100  # the reference evaluator is numpy, one op at a time: slow, but exact enough


@pytest.mark.parametrize("name", ONNX)
def test_passes_the_full_onnx_check(smoke_artifacts, name):
    onnx.checker.check_model(str(smoke_artifacts / name), full_check=True)


@pytest.mark.parametrize("name", ONNX)
def test_loads_in_plain_onnxruntime_without_a_warning(smoke_artifacts, name):
    load = f"import onnxruntime; onnxruntime.InferenceSession({str(smoke_artifacts / name)!r})"
    done = subprocess.run([sys.executable, "-c", load], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip() == "" and done.stdout.strip() == "", f"{name} printed on load:\n{done.stderr}"


@pytest.mark.parametrize("name", ONNX)
def test_uses_standard_operators_only(smoke_artifacts, name):
    model = onnx.load(str(smoke_artifacts / name))
    foreign = sorted({f"{n.domain}.{n.op_type}" for n in model.graph.node if n.domain not in STANDARD})
    assert not foreign, f"{name} needs operators that not every ONNX runtime has: {foreign}"
    assert {o.domain for o in model.opset_import} <= set(STANDARD)


@pytest.mark.parametrize("name", ONNX)
def test_the_reference_evaluator_gives_onnxruntimes_digits(smoke_artifacts, smoke_config, name):
    import onnxruntime as ort

    path = smoke_artifacts / name
    x = data.splits(smoke_config)["x_test"][:REFERENCE_IMAGES]
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    spec = ModelSpec.from_props(session.get_modelmeta().custom_metadata_map)
    feed = {session.get_inputs()[0].name: spec.encode(x)}
    ours = spec.decode(session.run(None, feed)[0])
    model = onnx.load(str(path))
    if model.opset_import[0].version < 19:
        # onnx's reference evaluator implements (De)QuantizeLinear from opset 19 only; 19 adds float16
        # and float8 types and changes nothing for uint8, so the converted model is the same function.
        model = version_converter.convert_version(model, 19)
    theirs = spec.decode(ReferenceEvaluator(model).run(None, feed)[0])
    assert (ours.argmax(1) == theirs.argmax(1)).all(), f"{name}: the reference evaluator disagrees"
    # Float compute: float rounding. int8 compute: one step of a requantisation that rounds a float
    # tie another way, at most 1/255 of a probability (a quantised output's step or a softmax input's).
    int8 = artifacts.get(spec.name or name).precision == "int8"
    assert np.abs(ours - theirs).max() <= (max(spec.output_scale, 1 / 255) + 1e-6 if int8 else 1e-4)
