"""End to end: `make all PROFILE=smoke` into a temporary folder, then every registry artifact checked."""

import json

import numpy as np
import onnx
import pytest
from conftest import make

from pipeline import artifacts, data
from pipeline.core import stage
from pipeline.formats import onnx_io
from pipeline.measure import runners

pytestmark = pytest.mark.slow

ALL = artifacts.ARTIFACTS
ONNX = [a for a in ALL if a.format == "onnx"]
INT8_TFLITE = [a for a in ALL if a.format == "tflite" and a.precision == "int8"]
PRUNED = [a for a in ALL if "pruned.keras" in artifacts.lineage(a.name) and a.kind != "ort_static_int8"]


@pytest.fixture(scope="module")
def smoke_test_set(smoke_config):
    s = data.splits(smoke_config)
    return s["x_test"], s["y_test"]


@pytest.mark.parametrize("a", ALL, ids=lambda a: a.name)
def test_artifact_loads_in_its_runtime_and_classifies_far_above_chance(smoke_artifacts, smoke_test_set, a):
    x, y = smoke_test_set
    accuracy = np.mean(runners.open_model(smoke_artifacts / a.name, a.format).predict(x).argmax(axis=1) == y)
    assert accuracy > 0.6, f"{a.name}: {accuracy:.3f} on {len(y)} test images (chance is 0.1)"


@pytest.mark.parametrize("a", PRUNED, ids=lambda a: a.name)
def test_pruned_models_keep_the_configured_sparsity(smoke_artifacts, smoke_config, a):
    sparsity = runners.open_model(smoke_artifacts / a.name, a.format).weights()["sparsity"]
    assert sparsity >= smoke_config.prune.final_sparsity - 0.005, f"{a.name}: {sparsity:.4f} zeros in its kernels"


@pytest.mark.parametrize("a", ONNX, ids=lambda a: a.name)
def test_onnx_exports_pass_the_checker_and_describe_themselves(smoke_artifacts, a):
    m = onnx.load(str(smoke_artifacts / a.name))
    onnx.checker.check_model(m)
    props = onnx_io.metadata(m)
    assert props["layout"] in ("NHWC", "NCHW") and json.loads(props["labels"]) == [str(d) for d in range(10)]
    assert props["source"] == a.parent
    assert "test_accuracy" not in props  # exports are never rewritten: measured figures go to model.onnx only


def test_the_deployed_model_carries_its_measured_accuracy(smoke_artifacts):
    m = onnx.load(str(smoke_artifacts / "model.onnx"))
    props = onnx_io.metadata(m)
    deployed = json.loads((smoke_artifacts / "deploy.json").read_text())["deployed"]
    assert props["deployed_from"] == deployed and 0.6 < float(props["test_accuracy"]) <= 1
    assert deployed in m.doc_string


def test_the_mcu_pick_ships_as_firmware_files_holding_its_exact_bytes(smoke_artifacts):
    from pipeline.formats import firmware

    decision = json.loads((smoke_artifacts / "deploy.json").read_text())
    mcu = next(t for t in decision["targets"] if t["format"] == "tflite-micro")
    array = firmware.parse_c_array((smoke_artifacts / "mcu" / "model_data.cc").read_text())
    assert array == (smoke_artifacts / mcu["pick"]).read_bytes()
    header = (smoke_artifacts / "mcu" / "model_data.h").read_text()
    assert "kTensorArenaSize" in header and mcu["figures"]["arena_bytes"] > 0
    readme = (smoke_artifacts / "mcu" / "README.md").read_text()
    assert all(f"resolver.{firmware.resolver_method(op)}();" in readme for op in mcu["figures"]["ops"])


def kernels_dtypes(path):
    """dtypes of the weight kernels: every kernel of these models has >= 256 weights; scales and shapes fewer."""
    from onnx import numpy_helper

    arrays = [numpy_helper.to_array(t) for t in onnx.load(str(path)).graph.initializer]
    return {a.dtype for a in arrays if a.ndim >= 2 and a.size >= 256}


@pytest.mark.parametrize("a", [a for a in ONNX if a.precision.startswith("int8")], ids=lambda a: a.name)
def test_int8_onnx_models_hold_8_bit_kernels_not_fake_quantised_floats(smoke_artifacts, a):
    """int8 storage (structured_w8) or uint8 with zero point 128 (int8 compute: exact on every CPU)."""
    expected = np.dtype(np.uint8) if a.precision == "int8" else np.dtype(np.int8)
    assert expected in kernels_dtypes(smoke_artifacts / a.name)
    assert np.dtype(np.float32) not in kernels_dtypes(smoke_artifacts / a.name)


@pytest.mark.parametrize("a", [a for a in ALL if a.format == "tflite"], ids=lambda a: a.name)
def test_tflite_io_dtypes_follow_the_precision(smoke_artifacts, a):
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=str(smoke_artifacts / a.name))
    dtype = np.int8 if a.precision == "int8" else np.float32
    assert it.get_input_details()[0]["dtype"] == dtype and it.get_output_details()[0]["dtype"] == dtype


BUILT_BY_ALL = [s for s in artifacts.STAGES if not artifacts.of_stage(s.name) and s.name not in ("data", "device_kit")]


@pytest.mark.parametrize("output", [a.name for a in ALL] + [artifacts.primary(s) for s in BUILT_BY_ALL])
def test_each_output_has_a_record_of_its_config_parents_and_versions(smoke_artifacts, smoke_config, output):
    rec = json.loads(stage.record_path(smoke_config, smoke_artifacts / output).read_text())
    assert rec["profile"] == "smoke" and rec["config"]["profile"] == "smoke" and rec["outputs"][0] == output
    assert rec["wall_time_s"] >= 0 and rec["seed"] == 1234 and "numpy" in rec["versions"]
    assert all(not p.startswith("/") for p in rec["parents"])


def test_second_make_all_has_nothing_to_do(smoke_artifacts):
    # `all` itself always prints the summary; the report is what it builds
    assert make(f"{smoke_artifacts}/report.json", smoke_artifacts, "--question", check=False).returncode == 0


def test_no_half_written_files_are_left(smoke_artifacts):
    assert not [p.name for p in smoke_artifacts.rglob(".*") if p.is_file()]
