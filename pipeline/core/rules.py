"""The two facts every decision shares: what "within the accuracy bar" means, and which latency is compared.

rules.within_bar(baseline_val, model_val, cfg.deploy.max_accuracy_drop)   # True or False
rules.p50(benchmark_row, "latency_us_ort_defaults")                       # µs, or None if not timed
"""

from __future__ import annotations

EPS = 1e-9  # accuracies are ratios of counts: compare with a little slack for float rounding


def within_bar(baseline_accuracy: float, accuracy: float, max_drop_pp: float) -> bool:
    """``accuracy`` is at most ``max_drop_pp`` percentage points below ``baseline_accuracy`` (both ratios)."""
    return (baseline_accuracy - accuracy) * 100 <= max_drop_pp + EPS


def p50(row: dict, field: str = "latency_us") -> float | None:
    """The batch-1 median latency of a benchmark row's ``field``, None where it was not timed."""
    return (row.get(field) or {}).get("p50")
