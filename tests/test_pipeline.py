"""End to end: `make all PROFILE=smoke` into a temporary folder, then every artifact checked."""

import json

import numpy as np
import onnx
import pytest
from conftest import make

from pipeline import data, export, runners

pytestmark = pytest.mark.slow

KERAS = ["baseline.keras", "pruned.keras", "qat.keras", "pruned_qat.keras"]
EXPORTED = [a.name for a in export.TFLITE + export.ONNX]


@pytest.fixture(scope="module")
def smoke_test_set(smoke_config):
    s = data.splits(smoke_config)
    return s["x_test"], s["y_test"]


def fmt(name):
    return name.rsplit(".", 1)[1]


@pytest.mark.parametrize("name", KERAS + EXPORTED)
def test_artifact_loads_in_its_runtime_and_classifies_far_above_chance(smoke_artifacts, smoke_test_set, name):
    x, y = smoke_test_set
    accuracy = np.mean(runners.open_model(smoke_artifacts / name, fmt(name)).predict(x).argmax(axis=1) == y)
    assert accuracy > 0.6, f"{name}: {accuracy:.3f} on {len(y)} test images (chance is 0.1)"


@pytest.mark.parametrize("name", ["pruned.keras", "pruned_qat.keras", "pruned_fp32.tflite", "pruned_qat_int8.onnx"])
def test_pruned_models_keep_the_configured_sparsity(smoke_artifacts, smoke_config, name):
    sparsity = runners.open_model(smoke_artifacts / name, fmt(name)).weights()["sparsity"]
    assert sparsity >= smoke_config.prune.final_sparsity - 0.005, f"{name}: {sparsity:.4f} zeros in its kernels"


@pytest.mark.parametrize("name", ["baseline_fp32.onnx", "baseline_ptq_int8.onnx", "pruned_qat_int8.onnx", "model.onnx"])
def test_onnx_models_pass_the_checker_and_describe_themselves(smoke_artifacts, name):
    m = onnx.load(str(smoke_artifacts / name))
    onnx.checker.check_model(m)
    props = {p.key: p.value for p in m.metadata_props}
    assert props["layout"] in ("NHWC", "NCHW") and json.loads(props["labels"]) == [str(d) for d in range(10)]
    assert 0.6 < float(props["test_accuracy"]) <= 1  # written once benchmarked
    assert props["source"].endswith((".keras", ".onnx", ".tflite"))


def kernels_dtypes(path):
    from onnx import numpy_helper

    arrays = [numpy_helper.to_array(t) for t in onnx.load(str(path)).graph.initializer]
    return {a.dtype for a in arrays if a.ndim >= 2}


def test_int8_onnx_models_hold_int8_kernels_not_fake_quantised_floats(smoke_artifacts):
    assert kernels_dtypes(smoke_artifacts / "pruned_qat_int8.onnx") == {np.dtype(np.int8)}
    assert kernels_dtypes(smoke_artifacts / "baseline_ptq_int8.onnx") == {np.dtype(np.int8)}
    assert kernels_dtypes(smoke_artifacts / "baseline_fp32.onnx") == {np.dtype(np.float32)}


IO_DTYPES = [
    ("pruned_qat_int8.tflite", np.int8),
    ("qat_int8.tflite", np.int8),
    ("baseline_ptq_int8.tflite", np.int8),
    ("baseline_fp32.tflite", np.float32),
]


@pytest.mark.parametrize(("name", "dtype"), IO_DTYPES)
def test_tflite_io_dtypes(smoke_artifacts, name, dtype):
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=str(smoke_artifacts / name))
    assert it.get_input_details()[0]["dtype"] == dtype and it.get_output_details()[0]["dtype"] == dtype


@pytest.mark.parametrize("stage", ["baseline", "pruned", "pruned_qat", "qat", "export"])
def test_each_stage_records_its_config_parents_and_versions(smoke_artifacts, stage):
    rec = json.loads((smoke_artifacts / f"{stage}.json").read_text())
    assert rec["profile"] == "smoke" and rec["config"]["profile"] == "smoke"
    assert rec["wall_time_s"] > 0 and rec["seed"] == 1234 and "tensorflow" in rec["versions"]
    assert all(not p.startswith("/") for p in rec["parents"])


def test_second_make_all_has_nothing_to_do(smoke_artifacts):
    # `all` itself always prints the summary; the report is what it builds
    assert make(f"{smoke_artifacts}/report.json", smoke_artifacts, "--question", check=False).returncode == 0


@pytest.mark.parametrize(
    ("touched", "reruns", "keeps"),
    [
        (
            "pipeline/qat.py",
            ["pipeline.qat pruned_qat", "pipeline.qat qat", "pipeline.export", "pipeline.benchmark"],
            ["pipeline.train", "pipeline.prune"],
        ),
        (
            "pipeline/prune.py",
            ["pipeline.prune", "pipeline.structured", "pipeline.qat pruned_qat", "pipeline.export"],
            ["pipeline.train", "pipeline.qat qat"],
        ),
        ("pipeline/config.py", ["pipeline.train", "pipeline.prune", "pipeline.qat"], []),
        ("pipeline/report.py", ["pipeline.report"], ["pipeline.train", "pipeline.benchmark"]),
    ],
)
def test_an_edit_reruns_its_stage_and_what_depends_on_it(smoke_artifacts, touched, reruns, keeps):
    plan = make("all", smoke_artifacts, "--dry-run", f"--what-if={touched}").stdout
    assert all(f"-m {s}" in plan for s in reruns), plan
    assert not any(f"-m {s}\n" in plan for s in keeps), plan


def test_no_half_written_files_are_left(smoke_artifacts):
    assert not [p.name for p in smoke_artifacts.rglob(".*") if p.is_file()]
