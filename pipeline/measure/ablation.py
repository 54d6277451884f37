"""The onnxruntime settings the runtime's choice was made against, measured on a few models.

    table = ablation.measure(cfg, images, measure_latency)   # {"variants": [...], "p50_us": {model: {variant: µs}}}

Part of the benchmark run, so the report's "Speed" section compares settings side by side
in one run on one machine; the benchmark measures every ONNX artifact under the runtime's
options and under onnxruntime's defaults anyway, so this adds only the other levers.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np

from pipeline import artifacts
from pipeline import config as config_mod
from pipeline.measure import runners

log = logging.getLogger("pipeline.measure.ablation")

VARIANTS = {
    "runtime options": {},
    "ORT defaults": {"defaults": True},
    "graph optimisation 'extended' (no NCHWc layouts)": {"level": "ORT_ENABLE_EXTENDED"},
    "2 intra-op threads": {"threads": 2},
}
MODELS = tuple(a.name for a in artifacts.ARTIFACTS if a.format == "onnx")  # every ONNX artifact


def options(change: dict):
    import onnxruntime as ort

    from runtime.session import ort_defaults, session_options

    made = ort_defaults() if change.get("defaults") else session_options()
    if "level" in change:
        made.graph_optimization_level = getattr(ort.GraphOptimizationLevel, change["level"])
    made.intra_op_num_threads = change.get("threads", made.intra_op_num_threads)
    return made


def measure(cfg: config_mod.Config, images: np.ndarray, measure_latency: Callable) -> dict:
    """Batch-1 p50 of MODELS under each of VARIANTS, interleaved like the benchmark's own runs."""
    runs = {
        (name, variant): runners.OnnxRunner(cfg.artifacts / name, options(change))
        for name in MODELS
        if (cfg.artifacts / name).is_file()
        for variant, change in VARIANTS.items()
    }
    log.info("session settings: %d models x %d settings", len(runs) // len(VARIANTS), len(VARIANTS))
    table: dict[str, dict] = {}
    for (name, variant), stats in measure_latency(runs, images, cfg).items():
        table.setdefault(name, {})[variant] = stats["p50"]
    return {"variants": list(VARIANTS), "p50_us": table}
