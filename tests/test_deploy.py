"""pipeline.deploy: the rule on hand-made measurements, and model.onnx with merged metadata."""

from __future__ import annotations

import json

import onnx
import pytest

from pipeline import config as config_mod
from pipeline import deploy
from pipeline.core import rules, schemas
from pipeline.formats import onnx_io
from runtime.metadata import ModelSpec
from tests import handmade


def rows(*specs) -> list[dict]:
    """(name, validation accuracy, p50 under ORT defaults, gzip) -> benchmark rows."""
    return [
        handmade.row(name, 0, round((1 - acc) * handmade.N), p50=p50, p50_defaults=p50, gzip=gzip)
        | {"val_accuracy": acc}
        for name, acc, p50, gzip in specs
    ]


def choose(arts, baseline=0.99, drop=0.1, tie=0.0):
    return deploy.choose(arts, baseline, drop, tie, speed="latency_us_ort_defaults")


def test_the_fastest_artifact_within_the_bar_on_validation_wins():
    arts = rows(
        ("slow.onnx", 0.9905, 50, 1000),
        ("edge.onnx", 0.989, 40, 1000),  # exactly 0.1 pp below: qualifies despite float rounding
        ("fast_but_worse.onnx", 0.9885, 10, 100),  # 0.15 pp below
    )
    assert choose(arts) == ("edge.onnx", ["edge.onnx", "slow.onnx"], False)


def test_the_decision_uses_validation_not_test_accuracy():
    arts = rows(("a.onnx", 0.99, 10, 100), ("b.onnx", 0.99, 20, 100))
    arts[0]["accuracy"] = 0.5  # a test accuracy that would disqualify it
    assert choose(arts)[0] == "a.onnx"
    assert deploy.choose(arts, 0.99, 0.1, 0.0, speed="latency_us_ort_defaults", key="accuracy")[0] == "b.onnx"


def test_a_tie_on_p50_is_broken_by_gzip_size():
    arts = rows(("big.onnx", 0.99, 20, 900), ("small.onnx", 0.99, 20, 100))
    assert choose(arts)[0] == "small.onnx"


def test_p50s_within_the_tie_margin_count_as_a_tie():
    arts = rows(("fast_big.onnx", 0.99, 20.0, 900), ("small.onnx", 0.99, 20.8, 100))
    assert choose(arts, tie=0.05)[0] == "small.onnx" and choose(arts, tie=0.0)[0] == "fast_big.onnx"


def test_when_none_qualifies_the_most_accurate_is_the_fallback():
    arts = rows(("a.onnx", 0.95, 10, 100), ("b.onnx", 0.97, 50, 100))
    assert choose(arts) == ("b.onnx", [], True)


@pytest.fixture
def cfg(tmp_path) -> config_mod.Config:
    handmade.write(tmp_path)
    return config_mod.load("smoke", artifacts=tmp_path, overrides=[])


def test_the_stage_writes_a_valid_decision_and_model_onnx(cfg):
    deploy.run(cfg)
    decision = schemas.check(json.loads((cfg.artifacts / "deploy.json").read_text()), "deploy", "deploy.json")
    assert decision["deployed"] == "pruned_qat_int8.onnx"
    by_target = {t["target"]: t for t in decision["targets"]}
    assert by_target[deploy.DEPLOYED_TARGET]["qualified"] == ["pruned_qat_int8.onnx", "baseline_fp32.onnx"]
    assert by_target["LiteRT"]["pick"] == "baseline_fp32.tflite"  # pruned_qat_int8.tflite is 0.5 pp below
    assert [g["met"] for g in decision["goals"] if not g["key"].startswith("frontier_")] == [True] * 5


def test_the_frontier_is_the_smallest_file_within_the_bar_whichever_the_targets_pick(cfg):
    deploy.run(cfg)
    decision = json.loads((cfg.artifacts / "deploy.json").read_text())
    bench = json.loads((cfg.artifacts / "benchmark.json").read_text())
    by_name = {a["name"]: a for a in bench["artifacts"]}
    base = by_name[bench["baseline"]]["val_accuracy"]
    files = [a for a in bench["artifacts"] if a["format"] in ("onnx", "tflite")]
    smallest = min((a for a in files if rules.within_bar(base, a["val_accuracy"], 0.1)), key=lambda a: a["gzip_bytes"])
    assert decision["frontier"]["download"]["name"] == smallest["name"]
    goals = {g["key"]: g for g in decision["goals"]}
    x = by_name[deploy.BASELINE_TFLITE]["gzip_bytes"] / smallest["gzip_bytes"]
    assert goals["frontier_download_x"]["value"] == pytest.approx(x)
    assert decision["frontier"]["library"] is None and goals["frontier_lib_flash_kb"]["met"] is None  # no firmware


def test_model_onnx_keeps_its_metadata_and_gains_the_measured_accuracies(cfg):
    deploy.run(cfg)
    model = onnx.load(str(cfg.artifacts / "model.onnx"))
    onnx.checker.check_model(model)
    props = onnx_io.metadata(model)
    assert ModelSpec.from_props(props).test_accuracy == pytest.approx(1 - 1 / handmade.N)
    assert float(props["val_accuracy"]) == pytest.approx(1 - 2 / handmade.N)
    assert props["source"] == "tiny.keras" and props["deployed_from"] == "pruned_qat_int8.onnx"
    assert "pruned_qat_int8.onnx" in model.doc_string and "Digits 0-9 only" in model.doc_string
    # the deployed file is a copy: the exported one is never rewritten
    assert "test_accuracy" not in onnx_io.metadata(onnx.load(str(cfg.artifacts / "pruned_qat_int8.onnx")))


def test_a_stale_benchmark_is_one_clear_error(cfg):
    path = cfg.artifacts / "benchmark.json"
    bench = json.loads(path.read_text())
    del bench["artifacts"][0]["val_accuracy"]
    path.write_text(json.dumps(bench))
    with pytest.raises(Exception, match=r"artifacts/0: 'val_accuracy' is a required property; rerun `make bench`"):
        deploy.run(cfg)


def test_metadata_is_merged_and_checked():
    from tests import tiny_onnx

    model = onnx_io.set_metadata(tiny_onnx.classifier(), {"test_accuracy": "0.5"})
    assert onnx_io.metadata(model)["layout"] == "NHWC" and onnx_io.metadata(model)["test_accuracy"] == "0.5"
    with pytest.raises(Exception, match="layout"):
        onnx_io.set_metadata(model, {"layout": "HWC"})


def measured_mcu(*models) -> dict:
    """mcu.json as the mcu stage writes it: (name, validation, test, flash, arena) per model."""
    rows = [
        {"name": n, "val_accuracy": v, "test_accuracy": t, "flash_bytes": f, "arena_bytes": a, "ops": ["CONV_2D"]}
        | {"agreement_with_litert": 1.0, "ms_per_image": 2.0}
        for n, v, t, f, a in models
    ]
    return {"interpreter": "tflite-micro test", "models": rows}


def test_the_mcu_pick_is_the_smallest_footprint_within_the_bar_on_validation(cfg):
    bench = json.loads((cfg.artifacts / "benchmark.json").read_text())
    base = 1 - 2 / handmade.N  # the baseline's validation (and test) accuracy in the hand-made benchmark
    measured = measured_mcu(
        ("big.tflite", base, base, 67_000, 24_000),
        ("small.tflite", base - 0.001, base - 0.002, 30_000, 14_000),  # 0.1 pp below on validation: qualifies
        ("tiny.tflite", base - 0.01, base, 20_000, 10_000),  # 1 pp below on validation, fine on test
    )
    decision = deploy.decide(bench, cfg, measured)
    mcu = next(t for t in decision["targets"] if t["target"] == deploy.MCU_TARGET)
    assert (mcu["pick"], mcu["qualified"], mcu["fallback"]) == ("small.tflite", ["small.tflite", "big.tflite"], False)
    assert mcu["test_pick"] == "tiny.tflite"  # the report flags it; the decision stays on validation
    goals = {g["key"]: g["met"] for g in decision["goals"]}
    assert goals["mcu_flash_kb"] and goals["mcu_arena_kb"] and goals["mcu_accuracy_delta_pp"] is False
