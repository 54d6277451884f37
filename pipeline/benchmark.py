"""Stage 6, benchmark: accuracy, size and speed of every registry artifact -> ``benchmark.json``.

    python -m pipeline.benchmark        # or `make bench`, which re-measures and re-renders

Each artifact runs in its own runtime: tf-keras for ``.keras``, LiteRT for ``.tflite``,
onnxruntime for ``.onnx``. Accuracy is measured on the validation split (what decisions
use) and on the test set (what is reported); latency at batch 1 on one thread over real
test images, timing only the runtime call (set input, run, read output), with the artifacts
interleaved in rounds so machine drift hits all alike. ONNX models are timed twice: with
the runtime's session options and with onnxruntime's defaults, how any other consumer loads
them. Throughput at batch 256 on all cores. Predictions (and the test probabilities) go to
``benchmark_predictions.npz`` for the deploy stage and the report. Nothing else is written:
the artifacts are only read.
"""

from __future__ import annotations

import datetime
import gzip
import logging
import os
import platform
import time
from pathlib import Path

import numpy as np

from pipeline import artifacts
from pipeline import config as config_mod
from pipeline import data as data_mod
from pipeline.core import schemas, stage
from pipeline.measure import ablation, runners

log = logging.getLogger("pipeline.benchmark")
SCHEMA = schemas.VERSIONS["benchmark"]


def environment() -> dict:
    cpu = platform.processor() or platform.machine()
    if Path("/proc/cpuinfo").exists():
        names = [
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ]
        cpu = names[0] if names else cpu
    from runtime.machine import describe

    versions = stage.versions()
    return {
        "machine": describe("build machine"),
        "cpu": cpu,
        "cores": os.cpu_count() or 1,
        "python": versions.pop("python"),
        "versions": versions,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def catalogue() -> list[dict]:
    """What to measure: every registry artifact, in registry (lineage) order."""
    keys = ("name", "parent", "stage", "format", "precision", "recipe")
    return [{k: a.describe()[k] for k in keys} for a in artifacts.ARTIFACTS]


def latency_stats(samples_ns: list[int]) -> dict:
    us = np.asarray(samples_ns, np.float64) / 1000
    p50, p90, p99 = np.percentile(us, [50, 90, 99])
    return {
        "batch": 1,
        "threads": 1,
        "runs": len(us),
        "mean": round(float(us.mean()), 2),
        "p50": round(float(p50), 2),
        "p90": round(float(p90), 2),
        "p99": round(float(p99), 2),
    }


def measure_latency(models: dict[str, runners.Runner], images: np.ndarray, cfg: config_mod.Config) -> dict[str, dict]:
    """Batch-1 latency of every model, interleaved: each round times every model in turn."""
    b = cfg.bench
    per_round = b.latency_runs // b.rounds
    samples = {name: [] for name in models}
    for m in models.values():
        m.prepare_single(images[:per_round])
        for i in range(b.warmup_runs):
            m.run_single(i % per_round)
    for r in range(b.rounds):
        log.info("latency round %d/%d (%d runs per artifact)", r + 1, b.rounds, per_round)
        for name, m in models.items():
            clock, timings = time.perf_counter_ns, samples[name]
            for i in range(per_round):
                start = clock()
                m.run_single(i)
                timings.append(clock() - start)
    return {name: latency_stats(s) for name, s in samples.items()}


def lineage_macs(rows: list[dict]) -> None:
    """Give every exported artifact the multiply-adds of the Keras model it descends from."""
    by_name = {r["name"]: r for r in rows}
    for row in rows:
        ancestor = row
        while ancestor.get("macs") is None and ancestor.get("parent") in by_name:
            ancestor = by_name[ancestor["parent"]]
        row["macs"] = ancestor.get("macs")


DEFAULTS = " (ORT defaults)"  # the key suffix of an ONNX model's second timing


def open_models(cfg: config_mod.Config, entries: list[dict]) -> dict[str, runners.Runner]:
    """A runner per artifact, plus a second one per ONNX model under onnxruntime's default options."""
    from runtime.session import ort_defaults

    models = {}
    for e in entries:
        log.info("loading %s", e["name"])
        models[e["name"]] = runners.open_model(cfg.artifacts / e["name"], e["format"])
        if e["format"] == "onnx":
            models[e["name"] + DEFAULTS] = runners.OnnxRunner(cfg.artifacts / e["name"], ort_defaults())
    return models


def run(cfg: config_mod.Config) -> Path:
    started = time.time()
    a = cfg.artifacts
    data = data_mod.splits(cfg)
    x, y, x_val, y_val = data["x_test"], data["y_test"], data["x_val"], data["y_val"]
    entries = catalogue()
    models = open_models(cfg, entries)
    saved = {"y_test": y, "y_val": y_val}
    for i, e in enumerate(entries, 1):
        log.info(
            "[%d/%d] accuracy of %s on %d validation and %d test images", i, len(entries), e["name"], len(y_val), len(y)
        )
        probabilities = models[e["name"]].predict(x)
        saved[f"test__{e['name']}"] = probabilities.argmax(axis=1)
        saved[f"prob__{e['name']}"] = probabilities.astype(np.float16)
        saved[f"val__{e['name']}"] = models[e["name"]].predict(x_val).argmax(axis=1)
    latencies = measure_latency(models, x, cfg)
    baseline = saved[f"test__{artifacts.BASELINE}"]
    rows = []
    for e in entries:
        path, m, pred, val = a / e["name"], models[e["name"]], saved[f"test__{e['name']}"], saved[f"val__{e['name']}"]
        shown = path.relative_to(config_mod.REPO_ROOT) if path.is_relative_to(config_mod.REPO_ROOT) else path
        log.info("throughput of %s", e["name"])
        rows.append(
            e
            | {
                "path": str(shown),
                **m.weights(),
                "size_bytes": path.stat().st_size,
                "gzip_bytes": len(gzip.compress(path.read_bytes(), 9)),
                "accuracy": round(float(np.mean(pred == y)), 6),
                "val_accuracy": round(float(np.mean(val == y_val)), 6),
                "errors": int(np.sum(pred != y)),
                "agreement_with_baseline": round(float(np.mean(pred == baseline)), 6),
                "latency_us": latencies[e["name"]],
                "latency_us_ort_defaults": latencies.get(e["name"] + DEFAULTS),
                "throughput_ips": m.throughput(x, cfg.bench.throughput_batch, cfg.bench.throughput_seconds),
                "runtime": m.runtime,
            }
        )
    lineage_macs(rows)
    sessions = ablation.measure(cfg, x, measure_latency)
    with stage.atomic_path(a / "benchmark_predictions.npz") as tmp:
        np.savez_compressed(tmp, **saved)
    output = a / "benchmark.json"
    stage.write_json(
        output,
        {
            "schema": SCHEMA,
            "dataset": {"name": "mnist", "test_samples": len(y), "validation_samples": len(y_val)},
            "environment": environment(),
            "baseline": artifacts.BASELINE,
            "settings": cfg.to_dict()["bench"],
            "wall_time_s": round(time.time() - started, 1),
            "session_options": sessions,
            "artifacts": rows,
        },
    )
    stage.record(cfg, "benchmark", [output, a / "benchmark_predictions.npz"], [a / e["name"] for e in entries], started)
    log.info("measured %d artifacts in %.0f s", len(rows), time.time() - started)
    return output


def main() -> None:
    stage.main("benchmark", run)


if __name__ == "__main__":
    main()
