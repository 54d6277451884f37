"""Sweep: structured widths x sparsities, each point distilled and measured -> ``sweep/*.json``, ``sweep.json``.

    make sweep                                  # every point of config `sweep` (make -j fans them out)
    python -m pipeline.sweep w12-8-32-24_s50    # one point: what Make runs, one rule per point
    python -m pipeline.sweep --collect          # sweep.json from the points' files, for the report

Each point narrows the baseline to its widths (the strongest filters and units by L1 norm, as the
structured stage does), fine-tunes it for ``sweep.epochs`` while magnitude-pruning it to its
sparsity (the convolutions and the output layer stay dense) and distilling from the baseline, then
converts it to full-integer int8 TFLite (post-training, calibrated on training images). It records
validation and test accuracy of the float model and of the int8 file in LiteRT, multiply-adds,
parameters and flash (the int8 file's bytes). Not part of `make all`: the report adds the sweep's
Pareto plots once ``sweep.json`` exists, and names the best points, chosen on validation.
"""

from __future__ import annotations

import dataclasses
import logging
import sys
import time
from pathlib import Path

import numpy as np

from pipeline import artifacts
from pipeline import config as config_mod
from pipeline import data as data_mod
from pipeline.core import rules, stage
from pipeline.formats import tflite_io
from pipeline.nn import allocate

log = logging.getLogger("pipeline.sweep")
FOLDER = "sweep"  # in the artifacts folder: one JSON (and its int8 TFLite file) per point
OUTPUT = "sweep.json"
DENSE = ("conv1", "conv2", "probabilities")  # kept dense: where pruning costs the most accuracy per weight


def points(cfg: config_mod.Config) -> list[str]:
    return cfg.sweep.points()


def parse(name: str) -> tuple[tuple[int, ...], float]:
    widths, sparsity = name[1:].split("_s")
    return tuple(int(w) for w in widths.split("-")), int(sparsity) / 100


def measure_point(cfg: config_mod.Config, name: str) -> Path:
    from pipeline import prune, structured
    from pipeline.measure import runners
    from pipeline.nn import model

    started = time.time()
    widths, sparsity = parse(name)
    stage.seed_everything(cfg.seed)
    data = data_mod.splits(cfg)
    baseline = model.load(cfg.artifacts / artifacts.BASELINE)
    small = structured.narrow(model.load(cfg.artifacts / artifacts.BASELINE), widths)
    s = cfg.sweep
    schedule = dataclasses.replace(
        cfg.prune, final_sparsity=sparsity, initial_sparsity=0.0, epochs=s.epochs, learning_rate=s.learning_rate
    )
    sizes = {x.name: int(x.kernel.shape.num_elements()) for x in small.layers if isinstance(x, model.PRUNABLE)}
    sparsities = allocate.uniform_sparsities(sizes, sparsity, DENSE)
    distilling = dataclasses.replace(cfg, distill=dataclasses.replace(cfg.distill, alpha=s.distill_alpha))
    tuned = prune.magnitude_prune(small, data, schedule, distilling, name, sparsities=sparsities, teacher=baseline)
    folder = cfg.artifacts / FOLDER
    int8 = folder / f"{name}_int8.tflite"
    calibration = data["x_train"][: cfg.export.representative_samples]
    stage.write_bytes(int8, tflite_io.convert(tuned, "int8", calibration))
    lite = runners.open_model(int8, "tflite")
    result = {
        "name": name,
        "widths": list(widths),
        "sparsity": sparsity,
        "macs": model.macs(tuned),
        "params": tuned.count_params(),
        "flash_bytes": int8.stat().st_size,
        "val_accuracy": model.accuracy(tuned, data["x_val"], data["y_val"]),
        "accuracy": model.accuracy(tuned, data["x_test"], data["y_test"]),
        "int8_val_accuracy": float(np.mean(lite.predict(data["x_val"]).argmax(1) == data["y_val"])),
        "int8_accuracy": float(np.mean(lite.predict(data["x_test"]).argmax(1) == data["y_test"])),
        "epochs": s.epochs,
        "distill": {"temperature": cfg.distill.temperature, "alpha": s.distill_alpha},
    }
    log.info(
        "%s: %d MACs, %d bytes int8; validation %.4f (int8 %.4f)",
        name,
        result["macs"],
        result["flash_bytes"],
        result["val_accuracy"],
        result["int8_val_accuracy"],
    )
    output = folder / f"{name}.json"
    stage.write_json(output, result)
    stage.record(cfg, "sweep", [output, int8], [cfg.artifacts / artifacts.BASELINE], started)
    return output


def best(found: list[dict], baseline_val: float, max_drop_pp: float) -> dict:
    """On validation: the smallest int8 flash and the fewest MACs among the points within the bar."""
    ok = [p for p in found if rules.within_bar(baseline_val, p["int8_val_accuracy"], max_drop_pp)]
    pick = lambda key: min(ok, key=lambda p: (p[key], -p["int8_val_accuracy"]))["name"] if ok else None  # noqa: E731
    return {"smallest_flash": pick("flash_bytes"), "fewest_macs": pick("macs"), "within_bar": [p["name"] for p in ok]}


def plot(sweep: dict, artifacts_rows: list[dict], path: Path) -> None:
    """Test accuracy against multiply-adds and against int8 flash: the sweep's points beside the
    pipeline's artifacts, the best points (chosen on validation) named."""
    from pipeline.reporting import plots

    plt = plots._pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8), sharey=True)
    named = {v for v in sweep["best"].values() if isinstance(v, str)}
    pts = sweep["points"]
    panels = (
        ("macs", "multiply-adds per image", [a for a in artifacts_rows if a.get("macs")]),
        ("flash_bytes", "int8 TFLite flash (bytes)", [a for a in artifacts_rows if a["name"].endswith("int8.tflite")]),
    )
    for ax, (key, label, rows) in zip(axes, panels, strict=True):
        accuracy = [p["int8_accuracy"] * 100 for p in pts]
        ax.scatter([p[key] for p in pts], accuracy, color="tab:purple", label="sweep (int8)")
        x = [a["macs"] if key == "macs" else a["size_bytes"] for a in rows]
        ax.scatter(x, [a["accuracy"] * 100 for a in rows], color="tab:gray", marker="s", s=18, label="pipeline")
        for p in pts:
            if p["name"] in named:
                where = (p[key], p["int8_accuracy"] * 100)
                ax.annotate(p["name"], where, fontsize=7, xytext=(4, 4), textcoords="offset points")
        ax.set_xscale("log")
        ax.set_xlabel(label + " (log scale)")
        ax.grid(alpha=0.3, which="both")
    axes[0].set_ylabel("test accuracy (%)")
    axes[0].legend(fontsize=8)
    fig.suptitle("Sweep: accuracy vs work and vs flash (named: best on validation within the bar)", fontsize=10)
    plots._save(fig, path)


def collect(cfg: config_mod.Config) -> Path:
    import json

    folder = cfg.artifacts / FOLDER
    missing = [n for n in points(cfg) if not (folder / f"{n}.json").is_file()]
    if missing:
        raise stage.PipelineError(f"sweep points not measured yet: {', '.join(missing)}; run `make sweep`")
    found = [json.loads((folder / f"{n}.json").read_text()) for n in points(cfg)]
    record = stage.record_path(cfg, cfg.artifacts / artifacts.BASELINE)
    baseline_val = json.loads(record.read_text())["val_accuracy"]
    output = cfg.artifacts / OUTPUT
    chosen = best(found, baseline_val, cfg.deploy.max_accuracy_drop)
    stage.write_json(output, {"baseline_val_accuracy": baseline_val, "best": chosen, "points": found})
    log.info("%d points; smallest int8 within the bar on validation: %s", len(found), chosen["smallest_flash"])
    return output


def run(cfg: config_mod.Config, names: list[str]) -> list[Path]:
    if names == ["--collect"]:
        return [collect(cfg)]
    unknown = sorted(set(names) - set(points(cfg)))
    if unknown:
        raise stage.PipelineError(f"not a point of config `sweep`: {', '.join(unknown)}; its points: {points(cfg)}")
    return [measure_point(cfg, n) for n in names or points(cfg)]


def main() -> None:
    argv = sys.argv[1:]
    collecting = "--collect" in argv
    rest = [a for a in argv if a != "--collect"]
    stage.main(
        "sweep", lambda cfg, names: run(cfg, ["--collect"] if collecting else names), takes_names=True, argv=rest
    )


if __name__ == "__main__":
    main()
