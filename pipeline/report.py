"""Stage 8, report: render what was measured and decided -> ``report.json``, ``report.md``, ``report/*.png``.

    python -m pipeline.report              # render from the saved measurements, then print the summary
    python -m pipeline.report --summary    # print the table and verdict of the existing report.json

Everything comes from ``benchmark.json``, ``benchmark_predictions.npz`` and ``deploy.json``:
no model is run and nothing is decided here, so re-rendering takes seconds. The PNGs that
``report.md`` embeds go to ``artifacts/report/``; the verdict and tables are composed by
``pipeline.reporting.text``, ``report.md`` by ``pipeline.reporting.markdown``, the parity matrix
by ``pipeline.reporting.matrix``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import textwrap
import time
from pathlib import Path

import numpy as np

from pipeline import artifacts
from pipeline import config as config_mod
from pipeline import data as data_mod
from pipeline.core import schemas, stage
from pipeline.reporting import clustering, damage, model_card, plots
from pipeline.reporting.markdown import markdown
from pipeline.reporting.text import _order, table, verdict

log = logging.getLogger("pipeline.report")

FIGURES = "report"  # folder beside report.md holding the PNGs it embeds
DEVICES = "devices"  # device benchmark JSONs dropped here are in every report


def render(
    cfg: config_mod.Config,
    bench: dict,
    decision: dict,
    predictions: dict[str, np.ndarray],
    images: np.ndarray,
    *,
    device_files: list[Path] = (),
) -> dict:
    """Write the figures, report.md and (last, Make's target) report.json."""
    a, base, arts = cfg.artifacts, bench["baseline"], bench["artifacts"]
    name = decision["deployed"]
    if f"test__{name}" not in predictions or "y_test" not in predictions:
        raise stage.PipelineError(f"benchmark_predictions.npz lacks {name} or y_test: rerun `make bench`")
    y_true, y_pred = np.asarray(predictions["y_test"]), np.asarray(predictions[f"test__{name}"])
    figures = {
        k: f"{FIGURES}/{k}.png" for k in ("pareto", "latency", "confusion", "misclassified", "flips", "reliability")
    }
    matrix = plots.confusion_matrix(y_true, y_pred)
    plots.pareto(arts, name, base, decision["max_accuracy_drop_pp"], a / figures["pareto"])
    plots.latency(sorted(arts, key=_order), name, a / figures["latency"])
    plots.confusion(matrix, name, a / figures["confusion"])
    plots.gallery(images[: len(y_true)], y_true, y_pred, name, a / figures["misclassified"])
    harm = damages(decision, predictions)
    damage.flips_gallery(images, y_true, harm[name], name, pred=y_pred, path=a / figures["flips"])
    curves = {base: harm[name]["baseline_reliability"]} | {n: d["reliability"] for n, d in harm.items()}
    damage.reliability_plot(curves, a / figures["reliability"])
    deployed_target = next(t for t in decision["targets"] if t["target"] == decision["deployed_target"])
    report = (
        {k: bench[k] for k in ("schema", "dataset", "environment", "baseline")}
        | {
            "deployed": name,
            "verdict": "",  # written below, from the rest of the report
            "selection": {
                "rule": deployed_target["rule"],
                "max_accuracy_drop_pp": decision["max_accuracy_drop_pp"],
                "baseline_val_accuracy": decision["baseline_val_accuracy"],
                "qualified": deployed_target["qualified"],
                "fallback": deployed_target["fallback"],
                "test_pick": deployed_target["test_pick"],
            },
            "comparison": decision["comparison"],
            "goals": decision["goals"],
            "frontier": decision.get("frontier"),
            "targets": decision["targets"],
            "pareto_front": plots.pareto_front(arts),
            "damage": harm,
            "devices": device_section(bench, decision, list(device_files)),
            "lineage": lineage(cfg, name),
            "data": data_facts(cfg, bench),
            "confusion_matrix": matrix.tolist(),
            "figures": figures,
            "markdown": "report.md",
        }
        | {k: v for k, v in bench.items() if k not in ("schema", "dataset", "environment", "baseline")}
    )
    if (a / "sensitivity.json").is_file():
        from pipeline import sensitivity

        report["sensitivity"] = json.loads((a / "sensitivity.json").read_text())
        report["sensitivity_table"] = sensitivity.table(report["sensitivity"])
        report["figures"]["sensitivity"] = f"{FIGURES}/sensitivity.png"
        sensitivity.plot(report["sensitivity"], a / report["figures"]["sensitivity"])
    for name in ("firmware", "mcu", "images"):  # the microcontrollers' and the image path's, when their stages ran
        if (a / f"{name}.json").is_file():
            report[name] = json.loads((a / f"{name}.json").read_text())
    if (a / "parity.json").is_file():
        report["parity"] = schemas.check(json.loads((a / "parity.json").read_text()), "parity", a / "parity.json")
    sweep_file = a / "sweep.json"
    if sweep_file.is_file():  # `make sweep` ran: its frontier beside the pipeline's artifacts
        from pipeline import sweep

        report["sweep"] = json.loads(sweep_file.read_text())
        report["figures"]["sweep"] = f"{FIGURES}/sweep.png"
        sweep.plot(report["sweep"], arts, report.get("firmware"), a / report["figures"]["sweep"])
    report |= clustering.facts(cfg, arts)
    report["verdict"] = verdict(report)
    stage.write_bytes(a / "MODEL_CARD.md", model_card.render(report).encode())
    stage.write_bytes(a / "report.md", markdown(report).encode())
    stage.write_json(a / "report.json", report)
    log.info("wrote report.md, report.json and %d figures", len(figures))
    return report


def device_section(bench: dict, decision: dict, paths: list[Path]) -> dict:
    """The build machine (from the benchmark) and every device JSON: per-device latency and pick."""
    from pipeline.measure import devices

    env = bench["environment"]
    here = {
        "machine": env.get("machine") or {"name": "build machine", "cpu": env["cpu"], "arch": "", "isa": []},
        "settings": {"quick": False},
        "models": [
            {
                "name": a["name"],
                "latency_us": {"runtime": a["latency_us"], "ort_defaults": a["latency_us_ort_defaults"]},
                "accuracy": a["accuracy"],
            }
            for a in bench["artifacts"]
            if a["format"] == "onnx" and a.get("latency_us_ort_defaults")
        ],
    }
    found = [here, *devices.load(paths)]
    qualified = next(t["qualified"] for t in decision["targets"] if t["target"] == decision["deployed_target"])
    picks = [{"device": d["machine"]["name"], "pick": devices.pick(d, qualified)} for d in found]
    return {"qualified": qualified, "picks": picks, "table": devices.table(found, qualified)}


def damages(decision: dict, predictions: dict[str, np.ndarray]) -> dict[str, dict]:
    """The damage report of the deployed model and of every other target's pick that is not a float baseline."""
    names = [decision["deployed"]] + [t["pick"] for t in decision["targets"] if t["format"] == "tflite-micro"]
    base = predictions[f"prob__{decision['baseline']}"]
    return {n: damage.compare(predictions["y_test"], base, predictions[f"prob__{n}"]) for n in dict.fromkeys(names)}


def lineage(cfg: config_mod.Config, name: str) -> list[dict]:
    """Each step from the baseline to ``name``: its stage, recipe, parameters and the config it was made with."""
    steps = []
    for step in reversed(artifacts.lineage(name)):
        a = artifacts.get(step)
        path = stage.record_path(cfg, cfg.artifacts / step)
        made_with = json.loads(path.read_text())["config"] if path.is_file() else {}
        reads = artifacts.STAGE[a.stage].reads
        own = [s for s in reads if s not in ("seed", "data") and (s != "train" or a.stage == "train")]
        config = {f"{s}.{k}": v for s in own for k, v in made_with.get(s, {}).items()}
        steps.append({"name": step, "stage": a.stage, "recipe": a.kind, "params": a.params, "config": config})
    return steps


def data_facts(cfg: config_mod.Config, bench: dict) -> dict:
    path = stage.record_path(cfg, data_mod.cache_path(cfg))
    source = json.loads(path.read_text()).get("source", "cached") if path.is_file() else "cached"
    n_val, n_test = bench["dataset"]["validation_samples"], bench["dataset"]["test_samples"]
    train = cfg.data.train_limit or 60000
    return {"source": source, "sha256": data_mod.ARRAYS_SHA256, "train": train, "validation": n_val, "test": n_test}


def _load_json(path: Path, make: str) -> dict:
    if not path.is_file():
        raise stage.PipelineError(f"{path} is missing: run `make {make}` first")
    return json.loads(path.read_text())


def run(cfg: config_mod.Config, images: np.ndarray | None = None, devices: list[Path] | None = None) -> Path:
    """Render from the artifacts folder's saved files; ``images`` defaults to the cached MNIST test set;
    ``devices``: device benchmark JSONs (``python -m runtime.bench``) besides those in ``<artifacts>/devices/``."""
    started = time.time()
    bench = schemas.check(_load_json(cfg.artifacts / "benchmark.json", "bench"), "benchmark", "benchmark.json")
    decision = schemas.check(_load_json(cfg.artifacts / "deploy.json", "deploy"), "deploy", "deploy.json")
    npz = cfg.artifacts / "benchmark_predictions.npz"
    if not npz.is_file():
        raise stage.PipelineError(f"{npz} is missing: run `make bench` first")
    with np.load(npz, allow_pickle=False) as f:
        predictions = {k: f[k] for k in f.files}
    if images is None:
        images = data_mod.load(data_mod.cache_path(cfg))["x_test"]
    kept = sorted((cfg.artifacts / DEVICES).glob("*.json"))
    render(cfg, bench, decision, predictions, images, device_files=[*kept, *(devices or [])])
    a = cfg.artifacts
    written = [a / "report.json", a / "report.md", a / "MODEL_CARD.md"]
    stage.record(cfg, "report", written, [a / "benchmark.json", a / "deploy.json"], started)
    return a / "report.json"


def _shown(path: Path) -> str:
    rel = os.path.relpath(path)
    return path.as_posix() if rel.startswith("..") else rel


def stage_times(artifacts_dir: Path) -> str:
    """Wall time of every stage output, from the records the stages wrote, in pipeline order."""
    from tabulate import tabulate

    from pipeline import artifacts

    order = {s.name: i for i, s in enumerate(artifacts.STAGES)}
    records = [json.loads(p.read_text()) for p in sorted((artifacts_dir / stage.RECORDS).glob("*.json"))]
    records.sort(key=lambda r: (order.get(r["stage"], len(order)), r.get("finished", ""), r["outputs"][0]))
    rows = [(r["stage"], r["outputs"][0], r["wall_time_s"], r.get("finished", "")) for r in records]
    total = sum(r[2] for r in rows)
    rows.append(("total", f"{len(rows)} outputs", round(total, 1), ""))
    return tabulate(rows, headers=("stage", "output", "wall s", "finished (UTC)"), floatfmt=",.1f")


def summary(artifacts_dir: Path) -> str:
    """The table, the verdict and the stage times of the existing report.json, for the terminal."""
    report = _load_json(artifacts_dir / "report.json", "report")
    return "\n".join(
        [
            table(report["artifacts"], report["deployed"]),
            "(* deployed)",
            "",
            textwrap.fill(report["verdict"], 120),
            "",
            stage_times(artifacts_dir),
            "",
            f"Artifacts in {_shown(artifacts_dir)}/, deployed model {_shown(artifacts_dir / 'model.onnx')}, "
            f"full report {_shown(artifacts_dir / report.get('markdown', 'report.md'))}",
        ]
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m pipeline.report", description="render the report")
    parser.add_argument("--summary", action="store_true", help="print report.json's table and verdict only")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config field")
    parser.add_argument("--devices", nargs="*", default=[], type=Path, metavar="JSON", help="device benchmarks to add")
    args = parser.parse_args(argv)
    sets = [f"--set={x}" for x in args.set]
    if args.summary:  # what `make all` ends with: the table and the verdict, nothing re-rendered
        stage.main("report", lambda cfg: print(summary(cfg.artifacts)), quiet_done=True, argv=sets)
    else:
        stage.main("report", lambda cfg: run(cfg, devices=args.devices), argv=sets)


if __name__ == "__main__":
    main()
