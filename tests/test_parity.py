"""The same digits on every CPU: the smoke run's parity matrix, on every tier, whatever this host's ISA.

The matrix compares this host's onnxruntime with emulated CPUs (x86-64 AVX2 without VNNI, x86-64
without AVX, aarch64) and onnxruntime-web, so a host of any kind checks the others: an AVX-512 VNNI
host sees what an AVX2 one computes, and the reverse. int8 models must match to the bit; float
models may differ by float rounding (another summation order per ISA), by at most FLOAT_TOLERANCE,
and never in a digit. Under CI every tier must have run; elsewhere a missing tool only skips a tier.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from pipeline import artifacts, config, parity
from pipeline.core import schemas
from pipeline.measure import tiers

# Probabilities of a float model on two CPUs: a few float32 ulps through softmax. 1e-4 is ~100x the
# differences seen and far below the confidence gaps a digit flip would need.
FLOAT_TOLERANCE = 1e-4
ONNX = [a.name for a in artifacts.ARTIFACTS if a.format == "onnx"]


@pytest.fixture(scope="module")
def matrix(smoke_artifacts) -> dict:
    path = smoke_artifacts / "parity.json"
    return schemas.check(json.loads(path.read_text()), "parity", path)


def by_name(matrix: dict) -> dict[str, dict]:
    return {a["name"]: a for a in matrix["artifacts"]}


def test_every_tier_ran_under_ci(matrix):
    ran = {t["key"]: t for t in matrix["tiers"]}
    assert list(ran) == ["host", *config.ParityConfig().tiers]
    skipped = [f"{k}: {t['reason']}" for k, t in ran.items() if t["status"] != "ran"]
    if skipped and os.environ.get("CI") == "true":
        pytest.fail(f"tiers skipped under CI: {skipped}")
    assert matrix["images"]["count"] >= 1000 and matrix["images"]["validation"] and matrix["images"]["test"]


@pytest.mark.parametrize("name", ONNX)
def test_every_onnx_artifact_gives_the_same_digits_on_every_tier(matrix, name):
    row = by_name(matrix)[name]
    assert row["tiers"], f"{name}: no tier besides the host ran"
    for tier, sessions in row["tiers"].items():
        assert set(sessions) == set(matrix["sessions"]), f"{name} on {tier}: a session is missing"
        for session, c in sessions.items():
            assert c["digits_differ"] == 0, f"{name} on {tier} ({session}): {c['digits_differ']} digits differ"
            if artifacts.get(name).precision == "int8":
                assert c["bit_exact"], f"{name} on {tier} ({session}): int8 outputs differ (max {c['max_abs_dprob']})"
            else:
                assert c["max_abs_dprob"] <= FLOAT_TOLERANCE, f"{name} on {tier} ({session}): {c['max_abs_dprob']}"
    assert row["agree"]


def test_int8_twins_give_the_digits_of_their_tflite_files(matrix):
    """LiteRT computes the int8 twins' integers exactly as onnxruntime does; TFLite Micro's reference
    kernels round some requantisations another way, so a few of its int8 steps may differ."""
    twins = {n: r["twins"] for n, r in by_name(matrix).items() if artifacts.get(n).precision == "int8" and r["twins"]}
    assert twins, "no int8 ONNX artifact has a TFLite twin"
    for name, runs in twins.items():
        assert runs["litert"]["max_abs_dprob"] == 0, f"{name}: LiteRT's twin differs"
        assert runs["tflm"]["digits_differ"] <= 2, f"{name}: TFLite Micro's twin differs in {runs['tflm']}"


def test_the_deploy_rule_only_picks_models_whose_digits_agree(smoke_artifacts, matrix):
    decision = json.loads((smoke_artifacts / "deploy.json").read_text())
    stable = {n for n, r in by_name(matrix).items() if r["agree"]}
    assert decision["deployed"] in stable
    assert decision["parity"]["tiers"] == [t["key"] for t in matrix["tiers"] if t["status"] == "ran"]


def test_a_tier_that_cannot_run_says_what_to_install(monkeypatch):
    monkeypatch.setattr(tiers.shutil, "which", lambda _: None)
    with pytest.raises(tiers.Unavailable, match="apt-get install qemu-user-static"):
        tiers.get("haswell").command()
    with pytest.raises(tiers.Unavailable, match="apt-get install npm"):
        tiers.get("wasm").command()


def test_twins_are_the_tflite_files_computing_the_same_function():
    assert parity.twin(artifacts.get("structured_qat_int8.onnx")).name == "structured_qat_int8.tflite"
    assert parity.twin(artifacts.get("baseline_fp32.onnx")).name == "baseline_fp32.tflite"
    assert parity.twin(artifacts.get("baseline_ptq_int8.onnx")) is None  # quantised by another tool
    assert parity.twin(artifacts.get("structured_w8.onnx")) is None  # weights rounded to int8, the TFLite file's not


def test_runtime_parity_refuses_images_that_are_not_mnist_shaped(tmp_path, capsys):
    from runtime import parity as device

    np.save(tmp_path / "x.npy", np.zeros((2, 28, 28), np.float32))
    assert device.main([str(tmp_path / "x.npy"), str(tmp_path / "o.npz"), "m.onnx"]) == 2
    assert "expected uint8 images [N,28,28]" in capsys.readouterr().err
