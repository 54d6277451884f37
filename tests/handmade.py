"""A hand-made artifacts folder: benchmark.json and its predictions, as the benchmark would write them.

    handmade.write(folder)                      # the measurements below, schema-valid
    handmade.write(folder, baseline_errors=0)   # a perfect baseline: no ONNX model is close enough

The ONNX files are tiny real models (``tests/tiny_onnx.py``), so the deploy stage can copy one.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx

from pipeline.core import stage
from tests import tiny_onnx

N = 200  # test (and validation) images in the hand-made benchmark
# name -> (test errors, validation errors, p50 µs runtime options, p50 µs ORT defaults, gzip bytes)
MEASURED = {
    "baseline.keras": (2, 2, 900.0, None, 380_000),
    "baseline_fp32.tflite": (2, 2, 80.0, None, 400_000),
    "pruned_qat_int8.tflite": (3, 3, 30.0, None, 30_000),
    "baseline_fp32.onnx": (2, 2, 100.0, 100.0, 390_000),
    "baseline_ptq_int8.onnx": (5, 5, 35.0, 34.0, 100_000),  # 1.5 pp below on validation: does not qualify
    "pruned_qat_int8.onnx": (1, 2, 40.0, 38.0, 35_000),  # qualifies and is the fastest that does
}


def latency(p50: float | None) -> dict | None:
    if p50 is None:
        return None
    return {"batch": 1, "threads": 1, "runs": 100, "mean": p50 * 1.1, "p50": p50, "p90": p50 * 1.3, "p99": p50 * 2}


def row(name: str, errors: int, val_errors: int, *, p50: float, p50_defaults: float | None, gzip: int) -> dict:
    """One artifact as benchmark.json records it."""
    fmt = name.rsplit(".", 1)[-1]
    return {
        "name": name,
        "path": f"artifacts/{name}",
        "format": fmt,
        "precision": "int8" if "int8" in name else "fp32",
        "parent": None if fmt == "keras" else "baseline.keras",
        "stage": "train" if fmt == "keras" else "export",
        "recipe": "train" if fmt == "keras" else "tflite",
        "sparsity": 0.0,
        "params": 1000,
        "size_bytes": gzip * 2,
        "gzip_bytes": gzip,
        "accuracy": 1 - errors / N,
        "val_accuracy": 1 - val_errors / N,
        "errors": errors,
        "agreement_with_baseline": 0.99,
        "latency_us": latency(p50),
        "latency_us_ort_defaults": latency(p50_defaults),
        "throughput_ips": {"batch": 256, "threads": 2, "value": 1e6 / p50},
        "runtime": "onnxruntime 1.31.1" if fmt == "onnx" else "ai-edge-litert 1.2.0",
        "macs": None,
    }


def benchmark(baseline_errors: int | None = None) -> dict:
    rows = []
    for name, (errors, val_errors, p50, p50_defaults, gzip) in MEASURED.items():
        wrong = (errors, val_errors) if baseline_errors is None or name != "baseline.keras" else (baseline_errors,) * 2
        rows.append(row(name, *wrong, p50=p50, p50_defaults=p50_defaults, gzip=gzip))
    return {
        "schema": 2,
        "dataset": {"name": "mnist", "test_samples": N, "validation_samples": N},
        "environment": {"cpu": "Test CPU", "cores": 2, "python": "3.11.2", "versions": {"onnx": "1.0"}, "date": "x"},
        "baseline": "baseline.keras",
        "settings": {"warmup_runs": 10, "latency_runs": 100},
        "artifacts": rows,
    }


def write(folder: Path, baseline_errors: int | None = None) -> dict:
    bench = benchmark(baseline_errors)
    y = np.random.default_rng(0).integers(0, 10, N)
    saved = {"y_test": y, "y_val": y}
    for a in bench["artifacts"]:
        for split, wrong in (("test", a["errors"]), ("val", round((1 - a["val_accuracy"]) * N))):
            pred = y.copy()
            pred[:wrong] = (y[:wrong] + 1) % 10
            saved[f"{split}__{a['name']}"] = pred
            if split == "test":  # confident, and right as often as the predictions are
                saved[f"prob__{a['name']}"] = (np.eye(10)[pred] * 0.9 + 0.01).astype(np.float16)
    folder.mkdir(parents=True, exist_ok=True)
    stage.write_json(folder / "benchmark.json", bench)
    np.savez(folder / "benchmark_predictions.npz", **saved)
    for name in MEASURED:
        if name.endswith(".onnx"):
            onnx.save(tiny_onnx.classifier(), folder / name)
    return bench
