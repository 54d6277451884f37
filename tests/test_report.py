"""pipeline.report: a full render from saved measurements and decisions alone, and the terminal summary."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import numpy as np
import pytest

from pipeline import config as config_mod
from pipeline import deploy, report
from pipeline.core import schemas
from pipeline.reporting import plots
from tests import handmade

IMAGES = np.random.default_rng(1).integers(0, 256, (handmade.N, 28, 28), dtype=np.uint8)


@pytest.fixture
def cfg(tmp_path) -> config_mod.Config:
    handmade.write(tmp_path / "artifacts")
    c = config_mod.load("smoke", artifacts=tmp_path / "artifacts", overrides=[])
    deploy.run(c)
    return c


def test_the_pareto_front_keeps_only_undominated_artifacts():
    arts = [
        {"name": n, "accuracy": acc, "gzip_bytes": g}
        for n, acc, g in (("a", 0.98, 100), ("b", 0.97, 200), ("c", 0.99, 300))
    ]
    assert plots.pareto_front(arts) == ["a", "c"]


def test_a_full_report_from_saved_measurements(cfg):
    report.run(cfg, images=IMAGES)
    a = cfg.artifacts
    r = schemas.check(json.loads((a / "report.json").read_text()), "report", "report.json")
    assert r["deployed"] == "pruned_qat_int8.onnx" and r["selection"]["fallback"] is False
    assert r["comparison"]["gzip_x_smaller_than_baseline_fp32_tflite"] == pytest.approx(400 / 35, abs=1e-3)
    assert (
        "11.4x smaller than baseline_fp32.tflite" in r["verdict"]
        and "2.6x faster than baseline_fp32.onnx" in r["verdict"]
    )
    assert "Pick per target: onnxruntime, default options: pruned_qat_int8.onnx" in r["verdict"]

    md = (a / "report.md").read_text()
    assert "Deployed pruned_qat_int8.onnx" in md and re.search(r"^\| \*\*pruned_qat_int8.onnx\*\* +\|", md, re.M)
    assert "## Targets" in md and "Every decision is made on the" in md
    images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)
    assert len(images) == 6
    for rel in images:
        assert (a / rel).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", rel


def test_the_report_flags_where_the_test_ranking_would_have_chosen_differently(tmp_path):
    bench = handmade.write(tmp_path)
    best_on_test = next(x for x in bench["artifacts"] if x["name"] == "baseline_ptq_int8.onnx")
    best_on_test["accuracy"] = 1.0  # qualifies on test, not on validation
    (tmp_path / "benchmark.json").write_text(json.dumps(bench))
    cfg = config_mod.load("smoke", artifacts=tmp_path, overrides=[])
    deploy.run(cfg)
    report.run(cfg, images=IMAGES)
    md = (tmp_path / "report.md").read_text()
    assert "Ranking by test accuracy instead would have chosen **baseline_ptq_int8.onnx**" in md


def test_when_nothing_is_close_enough_the_report_says_so(tmp_path):
    handmade.write(tmp_path, baseline_errors=0)  # every ONNX model is >= 0.5 pp below
    cfg = config_mod.load("smoke", artifacts=tmp_path, overrides=[])
    deploy.run(cfg)
    report.run(cfg, images=IMAGES)
    r = json.loads((tmp_path / "report.json").read_text())
    assert r["selection"]["fallback"] is True and r["selection"]["qualified"] == []
    assert "no ONNX artifact is within 0.1 pp" in r["verdict"] and "missed: test accuracy" in r["verdict"]


def test_rerendering_measures_nothing_and_gives_the_same_files(cfg, monkeypatch):
    import onnxruntime

    def no_inference(*args, **kwargs):
        raise AssertionError("the report must not run a model")

    monkeypatch.setattr(onnxruntime, "InferenceSession", no_inference)
    a = cfg.artifacts
    inputs = {name: (a / name).read_bytes() for name in ("benchmark.json", "deploy.json", "model.onnx")}
    rendered = lambda p: p.is_file() and "records" not in p.parts  # a record holds its own wall time  # noqa: E731
    outputs = lambda: {p.relative_to(a): p.read_bytes() for p in sorted(a.rglob("*")) if rendered(p)}  # noqa: E731
    report.run(cfg, images=IMAGES)
    first = outputs()
    report.run(cfg, images=IMAGES)
    assert outputs() == first
    assert all((a / name).read_bytes() == data for name, data in inputs.items())  # the report writes none of them
    assert {"report.json", "report.md", "report/pareto.png"} <= {str(p) for p in first}


def test_summary_prints_the_table_verdict_and_stage_times_without_rendering(cfg, monkeypatch, capsys):
    report.run(cfg, images=IMAGES)
    mtime = (cfg.artifacts / "report.json").stat().st_mtime_ns
    monkeypatch.setenv("PROFILE", "smoke")
    monkeypatch.setenv("ARTIFACTS", str(cfg.artifacts))
    monkeypatch.setenv("SET", "")
    report.main(["--summary"])
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].split()[:3] == ["artifact", "precision", "val"]
    assert any(line.startswith("pruned_qat_int8.onnx *") for line in lines)
    assert "Deployed pruned_qat_int8.onnx" in out and "report.md" in out
    assert any(line.startswith("deploy ") and "deploy.json" in line for line in lines)  # the stage-times table
    assert (cfg.artifacts / "report.json").stat().st_mtime_ns == mtime


def test_a_missing_benchmark_is_a_one_line_error(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PROFILE", "smoke")
    monkeypatch.setenv("ARTIFACTS", str(tmp_path))
    monkeypatch.setenv("SET", "")
    with pytest.raises(SystemExit) as exit_info:
        report.main([])
    assert exit_info.value.code == 1
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "benchmark.json is missing: run `make bench`" in err


def test_the_report_never_imports_tensorflow(cfg):
    code = (
        "import sys, numpy as np; from pipeline import config, report; "
        "cfg = config.load('smoke', artifacts=sys.argv[1], overrides=[]); "
        "report.run(cfg, images=np.zeros((200, 28, 28), np.uint8)); "
        "assert 'tensorflow' not in sys.modules, 'tensorflow was imported'"
    )
    subprocess.run([sys.executable, "-c", code, str(cfg.artifacts)], check=True)


def test_the_model_card_is_generated_and_its_figures_match_the_report(cfg):
    report.run(cfg, images=IMAGES)
    r = json.loads((cfg.artifacts / "report.json").read_text())
    card = (cfg.artifacts / "MODEL_CARD.md").read_text()
    d = next(a for a in r["artifacts"] if a["name"] == r["deployed"])
    for heading in ("## Model details", "## Intended use", "## Out-of-scope use", "## Data", "## Metrics"):
        assert heading in card
    assert "## Limitations and known failure modes" in card and "## How to run it" in card
    row = next(line for line in card.splitlines() if line.startswith(f"| `{r['deployed']}` |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[1:4] == [f"{d['val_accuracy'] * 100:.2f} %", f"{d['accuracy'] * 100:.2f} %", str(d["errors"])]
    per_class = next(line for line in card.splitlines() if line.startswith("| this model % |"))
    shown = [float(c) for c in per_class.strip("|").split("|")[1:]]
    assert shown == pytest.approx([v * 100 for v in r["damage"][r["deployed"]]["per_class"]], abs=0.05)
    assert r["data"]["sha256"] in card and r["selection"]["rule"] in card
