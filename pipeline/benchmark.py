"""Stage 6, benchmark: accuracy, size and speed of every artifact -> ``artifacts/benchmark.json``.

    python -m pipeline.benchmark        # or `make bench`, which also re-renders the report

Each artifact runs in its own runtime: tf-keras for ``.keras``, LiteRT for ``.tflite``,
onnxruntime for ``.onnx``. Accuracy is measured on the test set; latency at batch 1 on one
thread over real test images, timing only the runtime call (set input, run, read output),
with the artifacts interleaved in rounds so machine drift hits all alike; throughput at
batch 256 on all cores. Predictions go to ``benchmark_predictions.npz`` for the report.
"""

from __future__ import annotations

import datetime
import gzip
import json
import logging
import os
import platform
import time
from pathlib import Path

import numpy as np

from pipeline import config as config_mod
from pipeline import data as data_mod
from pipeline import runners, stage

log = logging.getLogger("pipeline.benchmark")

KERAS = [
    ("baseline.keras", None, "train"),
    ("pruned.keras", "baseline.keras", "prune"),
    ("qat.keras", "baseline.keras", "qat"),
    ("pruned_qat.keras", "pruned.keras", "qat"),
    ("structured.keras", "baseline.keras", "structured"),
    ("structured_qat.keras", "structured.keras", "qat"),
]


def environment() -> dict:
    cpu = platform.processor() or platform.machine()
    if Path("/proc/cpuinfo").exists():
        names = [
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ]
        cpu = names[0] if names else cpu
    versions = stage.versions()
    return {
        "cpu": cpu,
        "cores": os.cpu_count() or 1,
        "python": versions.pop("python"),
        "versions": versions,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def catalogue(cfg: config_mod.Config) -> list[dict]:
    """What to measure: the Keras models, then everything export.json lists."""
    export = cfg.artifacts / "export.json"
    if not export.is_file():
        raise stage.PipelineError(f"{export} is missing: run `make all` (or `make export`) first")
    exported = json.loads(export.read_text())["artifacts"]
    keras = [{"name": n, "parent": p, "precision": "fp32", "stage": s, "format": "keras"} for n, p, s in KERAS]
    return keras + [{k: a[k] for k in ("name", "parent", "precision", "stage", "format")} for a in exported]


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


# Runtime settings the runtime's defaults were chosen against, measured on these models.
SESSION_VARIANTS = {
    "runtime defaults": {},
    "QDQ fusion on (onnxruntime's default)": {"config": ("session.disable_quant_qdq", "0")},
    "graph optimisation 'extended' (no NCHWc layouts)": {"level": "ORT_ENABLE_EXTENDED"},
    "2 intra-op threads": {"threads": 2},
}
SESSION_ARTIFACTS = ("baseline_fp32.onnx", "pruned_qat_int8.onnx", "structured_qat_int8.onnx", "structured_w8.onnx")


def session_variants(cfg: config_mod.Config, images: np.ndarray) -> dict:
    """Batch-1 p50 of a few ONNX models under each of SESSION_VARIANTS, interleaved like the rest."""
    import onnxruntime as ort

    from runtime.classifier import session_options

    runs = {}
    for name in SESSION_ARTIFACTS:
        if not (cfg.artifacts / name).is_file():
            continue
        for variant, change in SESSION_VARIANTS.items():
            options = session_options()
            if "config" in change:
                options.add_session_config_entry(*change["config"])
            if "level" in change:
                options.graph_optimization_level = getattr(ort.GraphOptimizationLevel, change["level"])
            options.intra_op_num_threads = change.get("threads", options.intra_op_num_threads)
            runs[(name, variant)] = runners.OnnxRunner(cfg.artifacts / name, options)
    log.info("session options: %d models x %d settings", len(SESSION_ARTIFACTS), len(SESSION_VARIANTS))
    latencies = measure_latency(runs, images, cfg)
    table = {}
    for (name, variant), stats in latencies.items():
        table.setdefault(name, {})[variant] = stats["p50"]
    return {"variants": list(SESSION_VARIANTS), "p50_us": table}


def lineage_macs(rows: list[dict]) -> None:
    """Give every exported artifact the multiply-adds of the Keras model it descends from."""
    by_name = {r["name"]: r for r in rows}
    for row in rows:
        ancestor = row
        while ancestor.get("macs") is None and ancestor.get("parent") in by_name:
            ancestor = by_name[ancestor["parent"]]
        row["macs"] = ancestor.get("macs")


def run(cfg: config_mod.Config) -> Path:
    started = time.time()
    a = cfg.artifacts
    data = data_mod.splits(cfg)
    x, y = data["x_test"], data["y_test"]
    entries = catalogue(cfg)
    models = {e["name"]: runners.open_model(a / e["name"], e["format"]) for e in entries}
    predictions, rows = {}, []
    for e in entries:
        log.info("accuracy of %s on %d test images", e["name"], len(y))
        predictions[e["name"]] = models[e["name"]].predict(x).argmax(axis=1)
    latencies = measure_latency(models, x, cfg)
    baseline = predictions["baseline.keras"]
    for e in entries:
        path, m, pred = a / e["name"], models[e["name"]], predictions[e["name"]]
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
                "errors": int(np.sum(pred != y)),
                "agreement_with_baseline": round(float(np.mean(pred == baseline)), 6),
                "latency_us": latencies[e["name"]],
                "throughput_ips": m.throughput(x, cfg.bench.throughput_batch, cfg.bench.throughput_seconds),
                "runtime": m.runtime,
            }
        )
    lineage_macs(rows)
    sessions = session_variants(cfg, x)
    for row in rows:
        if row["format"] == "onnx":
            runners.stamp_accuracy(a / row["name"], row["accuracy"])
    with stage.atomic_path(a / "benchmark_predictions.npz") as tmp:
        np.savez_compressed(tmp, y_test=y, **predictions)
    output = a / "benchmark.json"
    stage.write_json(
        output,
        {
            "schema": 1,
            "dataset": {"name": "mnist", "test_samples": len(y)},
            "environment": environment(),
            "baseline": "baseline.keras",
            "settings": cfg.to_dict()["bench"],
            "wall_time_s": round(time.time() - started, 1),
            "session_options": sessions,
            "artifacts": rows,
        },
    )
    log.info("measured %d artifacts in %.0f s", len(rows), time.time() - started)
    return output


def main() -> None:
    stage.main("benchmark", run)


if __name__ == "__main__":
    main()
