"""Stage 7, report: pick the deployed model -> ``model.onnx``, ``report.json``, ``report.md``, ``report/*.png``.

    python -m pipeline.report              # render from the saved measurements, then print the summary
    python -m pipeline.report --summary    # print the table and verdict of the existing report.json

Everything comes from ``benchmark.json`` and ``benchmark_predictions.npz``: no model is run,
so re-rendering takes seconds. The deployed model follows one rule, stated in the report:
among the ONNX artifacts whose accuracy is within ``bench.max_accuracy_drop`` percentage
points of the baseline, the fastest at batch 1 (p50), ties broken by gzip size; if none
qualifies, the most accurate ONNX artifact. It is copied to ``model.onnx`` with its measured
accuracy in its metadata. The PNGs that ``report.md`` embeds go to ``artifacts/report/``;
the text (verdict, tables, ``report.md``) is composed by ``pipeline.report_text``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import textwrap
from pathlib import Path

import numpy as np

from pipeline import config as config_mod
from pipeline import data as data_mod
from pipeline import plots, stage
from pipeline.report_text import BASELINE_ONNX, BASELINE_TFLITE, _order, _p50, markdown, table, verdict
from runtime.metadata import MetadataError, ModelSpec

log = logging.getLogger("pipeline.report")

FIGURES = "report"  # folder beside report.md holding the PNGs it embeds
RULE = (
    "among the ONNX artifacts whose accuracy is within {drop:g} pp of {baseline}, the fastest at batch 1 (p50 "
    "latency; p50s within {tie:.0%} of the fastest are a tie), ties broken by gzip size; if none qualifies, the most "
    "accurate ONNX artifact"
)
# Deployment targets, checked and reported (not enforced): (comparison key, op, limit, what it means).
TARGETS = (
    ("accuracy_delta_pp", ">=", -0.1, "accuracy >= baseline.keras - 0.1 pp"),
    ("gzip_x_smaller_than_baseline_fp32_tflite", ">=", 10.0, "gzip size >= 10x smaller than baseline_fp32.tflite"),
    ("p50_vs_baseline_fp32_onnx", "<=", 0.5, "batch-1 p50 <= 0.5x baseline_fp32.onnx's (onnxruntime)"),
    ("p50_vs_baseline_fp32_tflite", "<=", 0.8, "batch-1 p50 <= 0.8x baseline_fp32.tflite's (LiteRT)"),
)
EPS = 1e-9  # accuracies are ratios of counts: compare with a little slack for float rounding


def choose_deployed(
    artifacts: list[dict], baseline_accuracy: float, max_drop_pp: float, latency_tie: float = 0.0
) -> tuple[str, list[str], bool]:
    """(name, qualified names fastest first, fallback): the rule in RULE, over benchmark.json's artifact dicts."""
    onnx = [a for a in artifacts if a["format"] == "onnx" and a["name"] != "model.onnx"]
    if not onnx:
        raise stage.PipelineError("benchmark.json lists no ONNX artifact to deploy: run `make export` and `make bench`")
    fastest = lambda a: (_p50(a) if _p50(a) is not None else float("inf"), a["gzip_bytes"], a["name"])  # noqa: E731
    ok = sorted((a for a in onnx if (baseline_accuracy - a["accuracy"]) * 100 <= max_drop_pp + EPS), key=fastest)
    if ok:
        tied = [a for a in ok if fastest(a)[0] <= fastest(ok[0])[0] * (1 + latency_tie)]
        return min(tied, key=lambda a: (a["gzip_bytes"], *fastest(a)))["name"], [a["name"] for a in ok], False
    return min(onnx, key=lambda a: (-a["accuracy"], *fastest(a)))["name"], [], True


def compare(by_name: dict[str, dict], deployed: str, baseline: str) -> tuple[dict, list[dict]]:
    """The deployed model against the baselines, and the TARGETS checked (None: a reference was not measured)."""
    d, onnx_ref, tflite_ref = by_name[deployed], by_name.get(BASELINE_ONNX, {}), by_name.get(BASELINE_TFLITE, {})
    ratio = lambda a, b: a / b if a is not None and b else None  # noqa: E731
    c = {
        "accuracy_delta_pp": round((d["accuracy"] - by_name[baseline]["accuracy"]) * 100, 6),
        "gzip_x_smaller_than_baseline_fp32_tflite": ratio(tflite_ref.get("gzip_bytes"), d["gzip_bytes"]),
        "p50_vs_baseline_fp32_onnx": ratio(_p50(d), _p50(onnx_ref)),
        "p50_vs_baseline_fp32_tflite": ratio(_p50(d), _p50(tflite_ref)),
    }
    met = lambda v, op, limit: None if v is None else bool(v >= limit - EPS if op == ">=" else v <= limit + EPS)  # noqa: E731
    targets = [
        {"target": text, "key": key, "op": op, "limit": limit, "value": c[key], "met": met(c[key], op, limit)}
        for key, op, limit, text in TARGETS
    ]
    return c, targets


def deploy(source: Path, accuracy: float, target: Path) -> None:
    """Copy the ONNX model ``source`` to ``target`` with ``test_accuracy`` set in its metadata_props."""
    import onnx

    if not source.is_file():
        raise stage.PipelineError(f"{source.name} is missing: run `make export` and `make bench`")
    model = onnx.load(str(source))
    props = {p.key: p.value for p in model.metadata_props}
    try:
        spec = dataclasses.replace(ModelSpec.from_props(props), test_accuracy=accuracy)
    except MetadataError as e:
        raise stage.PipelineError(f"{source.name}: {e}") from None
    onnx.helper.set_model_props(model, props | spec.to_props())
    stage.write_bytes(target, model.SerializeToString())


def render(cfg: config_mod.Config, bench: dict, predictions: dict[str, np.ndarray], images: np.ndarray) -> dict:
    """Deploy model.onnx and write the figures, report.md and (last, Make's target) report.json."""
    a, base, arts = cfg.artifacts, bench["baseline"], bench["artifacts"]
    by_name = {x["name"]: x for x in arts}
    if base not in by_name:
        raise stage.PipelineError(f"benchmark.json has no measurement of the baseline {base}: rerun `make bench`")
    drop = cfg.bench.max_accuracy_drop
    name, qualified, fallback = choose_deployed(arts, by_name[base]["accuracy"], drop, cfg.bench.latency_tie)
    if name not in predictions or "y_test" not in predictions:
        raise stage.PipelineError(f"benchmark_predictions.npz lacks {name} or y_test: rerun `make bench`")
    y_true, y_pred = np.asarray(predictions["y_test"]), np.asarray(predictions[name])
    figures = {k: f"{FIGURES}/{k}.png" for k in ("pareto", "latency", "confusion", "misclassified")}
    matrix = plots.confusion_matrix(y_true, y_pred)
    plots.pareto(arts, name, base, drop, a / figures["pareto"])
    plots.latency(sorted(arts, key=_order), name, a / figures["latency"])
    plots.confusion(matrix, name, a / figures["confusion"])
    plots.gallery(images[: len(y_true)], y_true, y_pred, name, a / figures["misclassified"])
    comparison, targets = compare(by_name, name, base)
    report = (
        {k: bench[k] for k in ("schema", "dataset", "environment", "baseline")}
        | {
            "deployed": name,
            "verdict": "",  # written below, from the rest of the report
            "selection": {
                "rule": RULE.format(drop=drop, baseline=base, tie=cfg.bench.latency_tie),
                "max_accuracy_drop_pp": drop,
                "baseline_accuracy": by_name[base]["accuracy"],
                "qualified": qualified,
                "fallback": fallback,
            },
            "comparison": comparison,
            "targets": targets,
            "pareto_front": plots.pareto_front(arts),
            "confusion_matrix": matrix.tolist(),
            "figures": figures,
            "markdown": "report.md",
        }
        | {k: v for k, v in bench.items() if k not in ("schema", "dataset", "environment", "baseline")}
    )
    report["verdict"] = verdict(report)
    deploy(a / name, by_name[name]["accuracy"], a / "model.onnx")
    stage.write_bytes(a / "report.md", markdown(report).encode())
    stage.write_json(a / "report.json", report)
    log.info("deployed %s to model.onnx; wrote report.md, report.json and %d figures", name, len(figures))
    return report


def _load_json(path: Path, make: str) -> dict:
    if not path.is_file():
        raise stage.PipelineError(f"{path} is missing: run `make {make}` first")
    return json.loads(path.read_text())


def run(cfg: config_mod.Config, images: np.ndarray | None = None) -> Path:
    """Render from the artifacts folder's saved measurements; ``images`` defaults to the cached MNIST test set."""
    bench = _load_json(cfg.artifacts / "benchmark.json", "bench")
    missing = [k for k in ("schema", "dataset", "environment", "baseline", "artifacts") if k not in bench]
    if missing or bench["schema"] != 1:
        raise stage.PipelineError(f"benchmark.json is not schema 1 or lacks {', '.join(missing)}: rerun `make bench`")
    npz = cfg.artifacts / "benchmark_predictions.npz"
    if not npz.is_file():
        raise stage.PipelineError(f"{npz} is missing: run `make bench` first")
    with np.load(npz, allow_pickle=False) as f:
        predictions = {k: f[k] for k in f.files}
    if images is None:
        images = data_mod.load(data_mod.cache_path(cfg))["x_test"]
    render(cfg, bench, predictions, images)
    return cfg.artifacts / "report.json"


def _shown(path: Path) -> str:
    rel = os.path.relpath(path)
    return path.as_posix() if rel.startswith("..") else rel


def summary(artifacts_dir: Path) -> str:
    """The table and the verdict of the existing report.json, for the terminal."""
    report = _load_json(artifacts_dir / "report.json", "report")
    return "\n".join(
        [
            table(report["artifacts"], report["deployed"]),
            "(* deployed)",
            "",
            textwrap.fill(report["verdict"], 120),
            "",
            f"Artifacts in {_shown(artifacts_dir)}/, deployed model {_shown(artifacts_dir / 'model.onnx')}, "
            f"full report {_shown(artifacts_dir / report.get('markdown', 'report.md'))}",
        ]
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m pipeline.report", description="render the report")
    parser.add_argument("--summary", action="store_true", help="print report.json's table and verdict only")
    args = parser.parse_args(argv)

    if args.summary:  # what `make all` ends with: the table and the verdict, nothing re-rendered
        stage.main("report", lambda cfg: print(summary(cfg.artifacts)), quiet=True)
    else:
        stage.main("report", run)


if __name__ == "__main__":
    main()
