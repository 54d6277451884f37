"""Sweep: widths x sparsities x clusters, distilled where it wins, measured -> ``sweep/*.json``, ``sweep.json``.

    make sweep                                      # every point of config `sweep` (make -j fans them out)
    python -m pipeline.sweep w12-8-32-24_s50_k16    # one point: what Make runs, one rule per point
    python -m pipeline.sweep --collect              # sweep.json from the points' files, for the report

A k = 0 point narrows the baseline to its widths (the strongest filters and units by L1 norm, as the
structured stage does) and fine-tunes it for ``sweep.epochs`` while magnitude-pruning it to its
sparsity (the convolutions and the output layer stay dense), once on the labels alone and once
distilling from the baseline (``sweep.distill_alpha``); it keeps the one more accurate on validation
(``sweep/<point>.keras``) and records both accuracies. A k > 0 point clusters the k = 0 point's model
to k values a layer (per conv channel when dense; zeros kept when sparse) for ``sweep.cluster_epochs``,
distilling as that model did.
Each converts to full-integer int8 TFLite (post-training, calibrated on training images) and
records validation and test accuracy of the float model and of the int8 file in LiteRT,
multiply-adds, parameters, the int8 file's bytes and gzip (the download), and, with the Cortex-M
toolchain, the generated C library on the first firmware core (``firmware.on_core``): flash, RAM
with peak stack, instructions per MAC, its outputs checked against TFLite Micro's. Not part of
`make all`: the report adds the frontier once ``sweep.json`` exists and names the best point per
target, chosen on validation.
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
from runtime.metadata import mnist_to_float

log = logging.getLogger("pipeline.sweep")
FOLDER = "sweep"  # in the artifacts folder: one JSON (and its int8 TFLite file) per point
OUTPUT = "sweep.json"
DENSE = ("conv1", "conv2", "probabilities")  # kept dense: where pruning costs the most accuracy per weight


def points(cfg: config_mod.Config) -> list[str]:
    return cfg.sweep.points()


def parse(name: str) -> tuple[tuple[int, ...], float, int]:
    """(widths, sparsity, clusters) of a point's name, e.g. "w12-8-32-24_s50_k16"."""
    widths, rest = name[1:].split("_s")
    sparsity, clusters = rest.split("_k")
    return tuple(int(w) for w in widths.split("-")), int(sparsity) / 100, int(clusters)


def alphas(cfg: config_mod.Config) -> tuple[float, ...]:
    """The distillation weights a k = 0 point is fine-tuned with: none, and ``sweep.distill_alpha`` if not 0."""
    return (0.0, cfg.sweep.distill_alpha) if cfg.sweep.distill_alpha else (0.0,)


def better(val_accuracy: dict[float, float]) -> float:
    """The weight whose model is the most accurate on validation; a tie goes to the first (without the teacher)."""
    return max(val_accuracy, key=lambda alpha: val_accuracy[alpha])


def _pruned(cfg: config_mod.Config, name: str, data: dict, baseline) -> tuple[object, dict]:
    """The k = 0 point's model: narrowed to the widths, fine-tuned while pruned to the sparsity, once per weight
    of ``alphas`` (distilling from the baseline or not), and the better on validation; and that choice."""
    from pipeline import prune, structured
    from pipeline.nn import model

    widths, sparsity, _ = parse(name)
    s = cfg.sweep
    schedule = dataclasses.replace(
        cfg.prune, final_sparsity=sparsity, initial_sparsity=0.0, epochs=s.epochs, learning_rate=s.learning_rate
    )
    tuned, val_accuracy = {}, {}
    for alpha in alphas(cfg):
        stage.seed_everything(cfg.seed)  # each the same run but for the teacher
        small = structured.narrow(model.load(cfg.artifacts / artifacts.BASELINE), widths)
        sizes = {x.name: int(x.kernel.shape.num_elements()) for x in small.layers if isinstance(x, model.PRUNABLE)}
        sparsities = allocate.uniform_sparsities(sizes, sparsity, DENSE)
        distilling = dataclasses.replace(cfg, distill=dataclasses.replace(cfg.distill, alpha=alpha))
        what = f"{name} (distillation weight {alpha:g})"
        tuned[alpha] = prune.magnitude_prune(
            small, data, schedule, distilling, what, sparsities=sparsities, teacher=baseline if alpha else None
        )
        val_accuracy[alpha] = model.accuracy(tuned[alpha], data["x_val"], data["y_val"])
    chosen = better(val_accuracy)
    return tuned[chosen], {"alpha": chosen, "val_accuracy_by_alpha": {f"{a:g}": v for a, v in val_accuracy.items()}}


def _clustered(cfg: config_mod.Config, name: str, data: dict, baseline) -> tuple[object, dict]:
    """The k = 0 point's model clustered to k values a layer and fine-tuned (the cluster stage's code), distilling
    as that point's model did; and that choice, the k = 0 point's."""
    import json

    from pipeline import cluster
    from pipeline.nn import model

    _, sparsity, k = parse(name)
    start = cfg.sweep.unclustered(name)  # its model, when the grid has it, else trained here
    if start in points(cfg):
        net = model.load(cfg.artifacts / FOLDER / f"{start}.keras")
        choice = json.loads((cfg.artifacts / FOLDER / f"{start}.json").read_text())["distill"]
    else:
        net, choice = _pruned(cfg, start, data, baseline)
    recipe = artifacts.Cluster(
        clusters=k,
        per_channel=sparsity == 0,  # per-channel centroids do not survive pruned channels (README, clustering)
        preserve_sparsity=sparsity > 0,
        epochs=cfg.sweep.cluster_epochs,
        distill_alpha=choice["alpha"],
    ).resolved(cfg)
    teacher = baseline if choice["alpha"] else None
    return cluster.cluster(net, recipe, data, cfg, name, teacher=teacher), {"alpha": choice["alpha"], "from": start}


def _generated_c(cfg: config_mod.Config, int8: Path, data: dict, scratch: Path) -> dict | None:
    """The int8 file as the generated C library on the first firmware core: None without the toolchain."""
    from pipeline import firmware, mcu
    from pipeline.formats import codegen, int8_layers
    from pipeline.measure import cortex_m

    if cortex_m.missing():
        return None
    pixels = np.rint(data["x_val"][: cfg.firmware.images, ..., 0] * 255).astype(np.uint8)
    encoded = tflite_io.spec(int8).encode(mnist_to_float(pixels))
    tflm = mcu.outputs(mcu.interpreter(int8.read_bytes(), 1 << 20, encoded[:1]), encoded)[0].reshape(len(pixels), -1)
    layers = int8_layers.read(int8)
    codegen.generate(int8, scratch / "lib")
    key = cfg.firmware.cores[0]
    found = firmware.on_core(key, scratch / "lib", scratch / f"{key}.elf", pixels, tflm=tflm,
                             macs=int8_layers.macs(layers), scratch=scratch / "run",
                             timeout=cfg.firmware.timeout)  # fmt: skip
    if not found["bit_exact"]:
        raise stage.PipelineError(f"{int8.name}: the generated C differs from TFLite Micro on {key}")
    return {"core": key, "palette_layers": [x.name for x in layers if codegen.palette_coded(x)], **found}


def measure_point(cfg: config_mod.Config, name: str) -> Path:
    import gzip
    import tempfile

    from pipeline.measure import runners
    from pipeline.nn import model

    started = time.time()
    widths, sparsity, k = parse(name)
    stage.seed_everything(cfg.seed)
    data = data_mod.splits(cfg)
    baseline = model.load(cfg.artifacts / artifacts.BASELINE)
    folder = cfg.artifacts / FOLDER
    tuned, distilled = _clustered(cfg, name, data, baseline) if k else _pruned(cfg, name, data, baseline)
    outputs = []
    if not k:  # the model the clustered points of these widths and sparsity start from
        model.save(tuned, folder / f"{name}.keras")
        outputs.append(folder / f"{name}.keras")
    int8 = folder / f"{name}_int8.tflite"
    calibration = data["x_train"][: cfg.export.representative_samples]
    stage.write_bytes(int8, tflite_io.convert(tuned, "int8", calibration))
    lite = runners.open_model(int8, "tflite")
    with tempfile.TemporaryDirectory(prefix="sweep-") as scratch:
        generated = _generated_c(cfg, int8, data, Path(scratch))
    result = {
        "name": name,
        "widths": list(widths),
        "sparsity": sparsity,
        "clusters": k,
        "macs": model.macs(tuned),
        "params": tuned.count_params(),
        "flash_bytes": int8.stat().st_size,
        "gzip_bytes": len(gzip.compress(int8.read_bytes(), 9)),
        "val_accuracy": model.accuracy(tuned, data["x_val"], data["y_val"]),
        "accuracy": model.accuracy(tuned, data["x_test"], data["y_test"]),
        "int8_val_accuracy": float(np.mean(lite.predict(data["x_val"]).argmax(1) == data["y_val"])),
        "int8_accuracy": float(np.mean(lite.predict(data["x_test"]).argmax(1) == data["y_test"])),
        "generated_c": generated,
        "epochs": cfg.sweep.cluster_epochs if k else cfg.sweep.epochs,
        "distill": {"temperature": cfg.distill.temperature, **distilled},
    }
    log.info("%s: %d MACs, %d bytes int8 (%d gzip)%s; validation %.4f (int8 %.4f), distillation weight %g", name,
             result["macs"], result["flash_bytes"], result["gzip_bytes"],
             f", generated C {generated['library_flash_bytes']} B flash, {generated['ram_bytes']} B RAM" if generated
             else "", result["val_accuracy"], result["int8_val_accuracy"], distilled["alpha"])  # fmt: skip
    output = folder / f"{name}.json"
    stage.write_json(output, result)
    start = folder / f"{cfg.sweep.unclustered(name)}.keras"
    parents = [cfg.artifacts / artifacts.BASELINE] + ([start] if k and start.is_file() else [])
    stage.record(cfg, "sweep", [output, int8, *outputs], parents, started)
    return output


TARGETS = {  # what each target's best point minimises, among the points within the bar on validation
    "smallest_download": lambda p: p["gzip_bytes"],
    "smallest_mcu_flash": lambda p: p["generated_c"]["library_flash_bytes"] if p.get("generated_c") else None,
    "smallest_mcu_ram": lambda p: p["generated_c"]["ram_bytes"] if p.get("generated_c") else None,
    "fewest_macs": lambda p: p["macs"],
}


def best(found: list[dict], baseline_val: float, max_drop_pp: float) -> dict:
    """On validation, per target: the point within the bar that minimises the target's figure."""
    ok = [p for p in found if rules.within_bar(baseline_val, p["int8_val_accuracy"], max_drop_pp)]
    chosen: dict = {"within_bar": [p["name"] for p in ok]}
    for target, figure in TARGETS.items():
        measured = [p for p in ok if figure(p) is not None]
        chosen[target] = min(measured, key=lambda p: (figure(p), -p["int8_val_accuracy"]))["name"] if measured else None
    return chosen


def plot(sweep: dict, artifacts_rows: list[dict], firmware: dict | None, path: Path) -> None:
    """The frontier: test accuracy against the download (gzip), the generated C library's flash and its RAM,
    the sweep's points beside the pipeline's artifacts, each target's best point (on validation) named."""
    from pipeline.reporting import plots

    plt = plots._pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.8), sharey=True)
    named = {v for v in sweep["best"].values() if isinstance(v, str)}
    pts = sweep["points"]
    generated = [m for m in (firmware or {}).get("models", []) if m.get("cores")]
    core = lambda m: next(iter(m["cores"].values()))  # noqa: E731
    panels = (
        ("download: gzip of the int8 TFLite file (bytes)", lambda p: p["gzip_bytes"],
         [(a["gzip_bytes"], a["accuracy"]) for a in artifacts_rows if a.get("gzip_bytes")]),
        ("generated C library flash (bytes)", lambda p: (p.get("generated_c") or {}).get("library_flash_bytes"),
         [(core(m)["library_flash_bytes"], m["test_accuracy"]) for m in generated]),
        ("generated C RAM incl. stack (bytes)", lambda p: (p.get("generated_c") or {}).get("ram_bytes"),
         [(core(m)["ram_bytes"], m["test_accuracy"]) for m in generated]),
    )  # fmt: skip
    for ax, (label, figure, rows) in zip(axes, panels, strict=True):
        shown = [p for p in pts if figure(p) is not None]
        for k, colour in ((0, "tab:purple"), (1, "tab:orange")):
            group = [p for p in shown if bool(p.get("clusters")) == bool(k)]
            ax.scatter([figure(p) for p in group], [p["int8_accuracy"] * 100 for p in group], color=colour,
                       label="sweep, clustered (int8)" if k else "sweep (int8)")  # fmt: skip
        ax.scatter([x for x, _ in rows], [a * 100 for _, a in rows], color="tab:gray", marker="s", s=18,
                   label="pipeline")  # fmt: skip
        for p in shown:
            if p["name"] in named:
                ax.annotate(p["name"], (figure(p), p["int8_accuracy"] * 100), fontsize=7, xytext=(4, 4),
                            textcoords="offset points")  # fmt: skip
        ax.set_xscale("log")
        ax.set_xlabel(label + " (log scale)")
        ax.grid(alpha=0.3, which="both")
    axes[0].set_ylabel("test accuracy (%)")
    axes[0].legend(fontsize=8)
    fig.suptitle("Sweep frontier: accuracy vs download, MCU flash and MCU RAM (named: best on validation)", fontsize=10)
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
    log.info("%d points; within the bar on validation, smallest download %s, smallest MCU library %s", len(found),
             chosen["smallest_download"], chosen["smallest_mcu_flash"])  # fmt: skip
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
