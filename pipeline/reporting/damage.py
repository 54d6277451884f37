"""The damage report: what compression changed against the baseline, digit by digit.

    d = damage.compare(y, baseline_probabilities, probabilities)   # per-class change, flips, calibration
    damage.flips_gallery(images, y, d, "structured_w8.onnx", pred=pred, path=Path("report/flips.png"))
    damage.reliability_plot({"baseline.keras": d["baseline_reliability"], ...}, Path("report/reliability.png"))

An accuracy within 0.1 pp of the baseline can hide a class that got worse or digits that
flipped both ways; and compression can make a model over- or under-confident. All from the
test-set probabilities the benchmark saved: nothing is run here.
"""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np

BINS = 15  # equal-width confidence bins for the calibration error and the reliability plot


def per_class(y: np.ndarray, pred: np.ndarray, classes: int = 10) -> list[float]:
    return [float(np.mean(pred[y == c] == c)) if np.any(y == c) else math.nan for c in range(classes)]


def reliability(y: np.ndarray, probabilities: np.ndarray, bins: int = BINS) -> list[dict]:
    """Per confidence bin: mean confidence, accuracy and count of the predictions that fall in it."""
    confidence, pred = probabilities.max(axis=1), probabilities.argmax(axis=1)
    edges = np.linspace(0, 1, bins + 1)
    found = []
    for lo, hi in itertools.pairwise(edges):
        inside = (confidence > lo) & (confidence <= hi)
        if inside.any():
            found.append(
                {
                    "confidence": float(confidence[inside].mean()),
                    "accuracy": float(np.mean(pred[inside] == y[inside])),
                    "count": int(inside.sum()),
                }
            )
    return found


def ece(curve: list[dict]) -> float:
    """Expected calibration error: the count-weighted mean |accuracy - confidence| over the bins."""
    total = sum(b["count"] for b in curve)
    return float(sum(b["count"] * abs(b["accuracy"] - b["confidence"]) for b in curve) / total) if total else 0.0


def compare(y: np.ndarray, base: np.ndarray, model: np.ndarray) -> dict:
    """``model``'s test-set probabilities against the baseline's: what got worse, what got better."""
    y = np.asarray(y)
    base, model = np.asarray(base, np.float32), np.asarray(model, np.float32)
    base_pred, pred = base.argmax(axis=1), model.argmax(axis=1)
    before, after = per_class(y, base_pred), per_class(y, pred)
    curves = reliability(y, base), reliability(y, model)
    return {
        "per_class_baseline": before,
        "per_class": after,
        "per_class_delta_pp": [round((a - b) * 100, 4) for a, b in zip(after, before, strict=True)],
        "right_to_wrong": np.flatnonzero((base_pred == y) & (pred != y)).tolist(),
        "wrong_to_right": np.flatnonzero((base_pred != y) & (pred == y)).tolist(),
        "ece_baseline": round(ece(curves[0]), 6),
        "ece": round(ece(curves[1]), 6),
        "baseline_reliability": curves[0],
        "reliability": curves[1],
    }


def flips_gallery(images: np.ndarray, y: np.ndarray, d: dict, name: str, *, pred: np.ndarray, path: Path) -> None:
    """The test digits that flipped: right -> wrong (red, with the new answer) and wrong -> right (green)."""
    from pipeline.reporting import plots

    flips = [(i, "firebrick") for i in d["right_to_wrong"]] + [(i, "forestgreen") for i in d["wrong_to_right"]]
    title = (
        f"{name} vs the baseline: {len(d['right_to_wrong'])} right→wrong (red), "
        f"{len(d['wrong_to_right'])} wrong→right (green); true→{name}'s answer"
    )
    tiles = [(i, f"{y[i]}→{pred[i]}", color) for i, color in flips]
    plots.digit_grid(images, tiles, title, "no test digit flipped", path)


def reliability_plot(curves: dict[str, list[dict]], path: Path) -> None:
    """Accuracy against confidence per model (the diagonal is perfect calibration), with each ECE."""
    from pipeline.reporting import plots

    plt = plots._pyplot()
    fig, ax = plt.subplots(figsize=(5.8, 5))
    ax.plot([0, 1], [0, 1], color="gray", ls="--", lw=0.8, label="perfectly calibrated")
    for name, curve in curves.items():
        ax.plot(
            [b["confidence"] for b in curve],
            [b["accuracy"] for b in curve],
            marker="o",
            ms=3,
            label=f"{name} (ECE {ece(curve) * 100:.2f} %)",
        )
    ax.set_xlabel("confidence (mean of the bin)")
    ax.set_ylabel("accuracy in the bin")
    ax.set_xlim(0, 1.02)
    ax.set_ylim(0, 1.02)
    ax.set_title("Reliability on the test set", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left")
    plots._save(fig, path)
