"""pipeline.report: the deployment rule on hand-made measurements, and a full render from saved files alone."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from pipeline import config as config_mod
from pipeline import plots, report, stage
from runtime.metadata import ModelSpec

N = 200  # test images in the hand-made benchmark


def art(name: str, accuracy: float, p50: float | None, gzip: int, **extra) -> dict:
    """One artifact as benchmark.json records it."""
    fmt = name.rsplit(".", 1)[-1]
    return {
        "name": name,
        "path": f"artifacts/{name}",
        "format": fmt,
        "precision": "int8" if "int8" in name else "fp32",
        "parent": None if fmt == "keras" else "baseline.keras",
        "stage": "export",
        "sparsity": 0.0,
        "params": 1000,
        "size_bytes": gzip * 2,
        "gzip_bytes": gzip,
        "accuracy": accuracy,
        "errors": round((1 - accuracy) * N),
        "agreement_with_baseline": 0.99,
        "latency_us": None
        if p50 is None
        else {"batch": 1, "threads": 1, "runs": 100, "mean": p50 * 1.1, "p50": p50, "p90": p50 * 1.3, "p99": p50 * 2},
        "throughput_ips": {"batch": 256, "threads": 2, "value": 1e6 / p50} if p50 else None,
        "runtime": "onnxruntime 1.31.1" if fmt == "onnx" else "ai-edge-litert 1.2.0",
        "macs": None,
    } | extra


# --- the rule, on hand-made measurements --------------------------------------------------------------------------


def test_the_fastest_qualifying_onnx_artifact_is_deployed():
    arts = [
        art("baseline.keras", 0.99, 900, 5000),
        art("slow.onnx", 0.9905, 50, 1000),
        art("edge.onnx", 0.989, 40, 1000),  # exactly 0.1 pp below: qualifies despite float rounding
        art("fast_but_worse.onnx", 0.9885, 10, 100),  # 0.15 pp below
    ]
    assert report.choose_deployed(arts, 0.99, 0.1) == ("edge.onnx", ["edge.onnx", "slow.onnx"], False)


def test_a_tie_on_p50_is_broken_by_gzip_size():
    arts = [art("big.onnx", 0.99, 40, 2000), art("small.onnx", 0.99, 40, 1500), art("slower.onnx", 0.99, 45, 10)]
    assert report.choose_deployed(arts, 0.99, 0.1, 0.05) == (
        "small.onnx",
        ["small.onnx", "big.onnx", "slower.onnx"],
        False,
    )


def test_p50s_within_the_tie_margin_count_as_a_tie():
    arts = [art("fp32.onnx", 0.99, 20.8, 54800), art("w8.onnx", 0.99, 20.9, 18600), art("slow.onnx", 0.99, 23, 10)]
    assert report.choose_deployed(arts, 0.99, 0.1, 0.05)[0] == "w8.onnx"  # 0.5 % slower, 3x smaller
    assert report.choose_deployed(arts, 0.99, 0.1, 0.0)[0] == "fp32.onnx"  # no margin: strictly the fastest


def test_a_non_onnx_artifact_is_never_deployed():
    arts = [art("x.tflite", 0.999, 1, 10), art("baseline.keras", 0.999, 1, 10), art("y.onnx", 0.99, 90, 1000)]
    assert report.choose_deployed(arts, 0.99, 0.1) == ("y.onnx", ["y.onnx"], False)


def test_when_none_qualifies_the_most_accurate_onnx_is_deployed_as_a_fallback():
    arts = [art("a.onnx", 0.95, 10, 100), art("b.onnx", 0.97, 90, 900), art("c.tflite", 0.99, 5, 10)]
    assert report.choose_deployed(arts, 0.99, 0.1) == ("b.onnx", [], True)


def test_model_onnx_itself_is_never_a_candidate_and_no_onnx_is_an_error():
    arts = [art("model.onnx", 0.99, 1, 1), art("a.onnx", 0.99, 50, 100)]
    assert report.choose_deployed(arts, 0.99, 0.1)[0] == "a.onnx"
    with pytest.raises(stage.PipelineError, match="no ONNX artifact"):
        report.choose_deployed([art("a.tflite", 0.99, 5, 10)], 0.99, 0.1)


def test_the_pareto_front_keeps_only_undominated_artifacts():
    arts = [art("a.onnx", 0.98, 1, 100), art("b.onnx", 0.97, 1, 200), art("c.onnx", 0.99, 1, 300)]
    assert plots.pareto_front(arts) == ["a.onnx", "c.onnx"]


# --- a full render from a hand-made artifacts folder ----------------------------------------------------------------

ERRORS = {  # name -> (errors in N, p50 µs, gzip bytes)
    "baseline.keras": (2, 900.0, 380_000),
    "baseline_fp32.tflite": (2, 80.0, 400_000),
    "pruned_qat_int8.tflite": (3, 30.0, 30_000),
    "baseline_fp32.onnx": (2, 100.0, 390_000),
    "baseline_ptq_int8.onnx": (5, 35.0, 100_000),  # 1.5 pp below the baseline: does not qualify
    "pruned_qat_int8.onnx": (2, 40.0, 35_000),  # qualifies and is the fastest that does
}


def tiny_onnx() -> onnx.ModelProto:
    """image float [N,28,28,1] -> Flatten -> MatMul -> Softmax, with the runtime's metadata."""
    weights = helper.make_tensor("w", TensorProto.FLOAT, [784, 10], np.zeros(7840, np.float32))
    graph = helper.make_graph(
        [
            helper.make_node("Flatten", ["image"], ["flat"]),
            helper.make_node("MatMul", ["flat", "w"], ["logits"]),
            helper.make_node("Softmax", ["logits"], ["probabilities"]),
        ],
        "tiny",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [None, 28, 28, 1])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [None, 10])],
        [weights],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    helper.set_model_props(model, ModelSpec(source="x").to_props())
    onnx.checker.check_model(model)
    return model


def write_benchmark(folder: Path, baseline_errors: int | None = None) -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 10, N)
    predictions, arts = {"y_test": y}, []
    for name, (wrong, p50, gzip) in ERRORS.items():
        errors = baseline_errors if baseline_errors is not None and name == "baseline.keras" else wrong
        pred = y.copy()
        pred[:errors] = (y[:errors] + 1) % 10
        predictions[name] = pred
        arts.append(art(name, 1 - errors / N, p50, gzip, errors=errors))
    bench = {
        "schema": 1,
        "dataset": {"name": "mnist", "test_samples": N},
        "environment": {
            "cpu": "Test CPU",
            "cores": 2,
            "python": "3.11.2",
            "versions": {"onnx": "1.0"},
            "date": "2025-01-01",
        },
        "baseline": "baseline.keras",
        "settings": {"warmup_runs": 10, "latency_runs": 100},
        "artifacts": arts,
    }
    folder.mkdir(parents=True, exist_ok=True)
    stage.write_json(folder / "benchmark.json", bench)
    np.savez(folder / "benchmark_predictions.npz", **predictions)
    for name in ERRORS:
        if name.endswith(".onnx"):
            onnx.save(tiny_onnx(), folder / name)


@pytest.fixture
def cfg(tmp_path) -> config_mod.Config:
    write_benchmark(tmp_path / "artifacts")
    return config_mod.load("smoke", artifacts=tmp_path / "artifacts")


IMAGES = np.random.default_rng(1).integers(0, 256, (N, 28, 28), dtype=np.uint8)


NUMBER, NONE = (int, float), type(None)
LATENCY = {"batch": int, "threads": int, "runs": int, "mean": NUMBER, "p50": NUMBER, "p90": NUMBER, "p99": NUMBER}
ARTIFACT = {
    "name": str,
    "path": str,
    "format": str,
    "precision": str,
    "parent": (str, NONE),
    "stage": str,
    "sparsity": NUMBER,
    "params": int,
    "size_bytes": int,
    "gzip_bytes": int,
    "accuracy": NUMBER,
    "errors": int,
    "agreement_with_baseline": NUMBER,
    "latency_us": LATENCY,
    "throughput_ips": ({"batch": int, "threads": int, "value": NUMBER}, NONE),
    "runtime": str,
    "macs": (int, NONE),
}
REPORT = {  # the shape of report.json, and the selection this stage adds
    "schema": int,
    "dataset": {"name": str, "test_samples": int},
    "environment": {"cpu": str, "cores": int, "python": str, "versions": dict},
    "baseline": str,
    "deployed": str,
    "artifacts": [ARTIFACT],
    "selection": {"rule": str, "max_accuracy_drop_pp": NUMBER, "qualified": list, "fallback": bool},
}


def check_shape(value, shape, where: str = "report.json") -> None:
    """``value`` has every key of ``shape`` with its type: a dict is nested keys, [x] a non-empty list of x,
    (dict, NONE) an optional nested dict, anything else a type or tuple of types (bool never counts as int)."""
    if isinstance(shape, tuple) and isinstance(shape[0], dict):
        if value is not None:
            check_shape(value, shape[0], where)
    elif isinstance(shape, dict):
        assert isinstance(value, dict), f"{where} is not an object"
        for key, sub in shape.items():
            assert key in value, f"{where} lacks {key!r}"
            check_shape(value[key], sub, f"{where}.{key}")
    elif isinstance(shape, list):
        assert isinstance(value, list) and value, f"{where} is not a non-empty list"
        for i, item in enumerate(value):
            check_shape(item, shape[0], f"{where}[{i}]")
    else:
        types = shape if isinstance(shape, tuple) else (shape,)
        assert isinstance(value, types) and (bool in types or not isinstance(value, bool)), f"{where}={value!r}"


def validate(r: dict) -> None:
    check_shape(r, REPORT)
    assert r["schema"] == 1
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in r["environment"]["versions"].items())
    assert {r["baseline"], r["deployed"]} <= {a["name"] for a in r["artifacts"]}
    for a in r["artifacts"]:
        assert a["format"] in ("keras", "tflite", "onnx") and a["precision"] in ("fp32", "fp16", "dynamic", "int8")


def test_the_validator_catches_a_missing_or_mistyped_field():
    with pytest.raises(AssertionError, match="lacks 'deployed'"):
        check_shape({"schema": 1}, {"schema": int, "deployed": str})
    with pytest.raises(AssertionError, match="cores=True"):
        check_shape({"cores": True}, {"cores": int})
    with pytest.raises(AssertionError, match=r"artifacts\[0\].latency_us lacks 'p50'"):
        check_shape({"artifacts": [{"latency_us": {}}]}, {"artifacts": [{"latency_us": {"p50": NUMBER}}]})


def test_a_full_report_from_saved_measurements(cfg):
    report.run(cfg, images=IMAGES)
    a = cfg.artifacts
    r = json.loads((a / "report.json").read_text())
    validate(r)
    assert r["deployed"] == "pruned_qat_int8.onnx" and r["selection"]["fallback"] is False
    assert r["selection"]["qualified"] == ["pruned_qat_int8.onnx", "baseline_fp32.onnx"]
    assert r["comparison"]["gzip_x_smaller_than_baseline_fp32_tflite"] == pytest.approx(400 / 35, abs=1e-3)
    assert [t["met"] for t in r["targets"]] == [True, True, True, True]
    assert (
        "11.4x smaller than baseline_fp32.tflite" in r["verdict"]
        and "2.5x faster than baseline_fp32.onnx" in r["verdict"]
    )

    md = (a / "report.md").read_text()
    assert "Deployed pruned_qat_int8.onnx" in md and "| **pruned_qat_int8.onnx** |" in md
    images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)
    assert len(images) == 4
    for rel in images:
        assert (a / rel).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", rel

    deployed = onnx.load(str(a / "model.onnx"))
    onnx.checker.check_model(deployed)
    spec = ModelSpec.from_props({p.key: p.value for p in deployed.metadata_props})
    assert spec.test_accuracy == next(x["accuracy"] for x in r["artifacts"] if x["name"] == r["deployed"])
    assert spec.source == "x"  # the rest of the metadata is kept


def test_when_nothing_is_close_enough_the_report_says_so(tmp_path):
    write_benchmark(tmp_path, baseline_errors=0)  # every ONNX model is >= 1 pp below
    report.run(config_mod.load("smoke", artifacts=tmp_path), images=IMAGES)
    r = json.loads((tmp_path / "report.json").read_text())
    assert r["selection"]["fallback"] is True and r["selection"]["qualified"] == []
    assert r["deployed"] in ("baseline_fp32.onnx", "pruned_qat_int8.onnx")
    assert (
        "no ONNX artifact is within 0.1 pp" in r["verdict"] and "Targets met: 3 of 4; missed: accuracy" in r["verdict"]
    )


def test_rerendering_measures_nothing_and_gives_the_same_files(cfg, monkeypatch):
    import onnxruntime

    def no_inference(*args, **kwargs):
        raise AssertionError("the report must not run a model")

    monkeypatch.setattr(onnxruntime, "InferenceSession", no_inference)
    a = cfg.artifacts
    bench = a / "benchmark.json"
    before = bench.read_bytes(), bench.stat().st_mtime_ns
    outputs = lambda: {p.relative_to(a): p.read_bytes() for p in sorted(a.rglob("*")) if p.is_file()}  # noqa: E731
    report.run(cfg, images=IMAGES)
    first = outputs()
    report.run(cfg, images=IMAGES)
    assert (bench.read_bytes(), bench.stat().st_mtime_ns) == before
    assert outputs() == first
    assert {"report.json", "report.md", "model.onnx", "report/pareto.png"} <= {str(p) for p in first}


def test_summary_prints_the_table_and_verdict_without_rendering(cfg, monkeypatch, capsys):
    report.run(cfg, images=IMAGES)
    mtime = (cfg.artifacts / "report.json").stat().st_mtime_ns
    monkeypatch.setenv("PROFILE", "smoke")
    monkeypatch.setenv("ARTIFACTS", str(cfg.artifacts))
    report.main(["--summary"])
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].split()[:3] == ["artifact", "precision", "accuracy"]
    assert any(line.startswith("pruned_qat_int8.onnx *") for line in lines)
    assert "Deployed pruned_qat_int8.onnx" in out and "report.md" in out
    assert (cfg.artifacts / "report.json").stat().st_mtime_ns == mtime


def test_a_missing_benchmark_is_a_one_line_error(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PROFILE", "smoke")
    monkeypatch.setenv("ARTIFACTS", str(tmp_path))
    with pytest.raises(SystemExit) as exit_info:
        report.main([])
    assert exit_info.value.code == 1
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "benchmark.json is missing: run `make bench`" in err


def test_the_report_never_imports_tensorflow(cfg):
    code = (
        "import sys, numpy as np; from pipeline import config, report; "
        "report.run(config.load('smoke', artifacts=sys.argv[1]), images=np.zeros((200, 28, 28), np.uint8)); "
        "assert 'tensorflow' not in sys.modules, 'tensorflow was imported'"
    )
    subprocess.run([sys.executable, "-c", code, str(cfg.artifacts)], check=True)
