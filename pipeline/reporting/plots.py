"""The report's figures, drawn from saved measurements only: no model is run here.

    from pipeline.reporting import plots
    plots.pareto(artifacts, "pruned_qat_int8.onnx", "baseline.keras", 0.1, Path("report/pareto.png"))

One function per PNG, each written atomically. Matplotlib is imported inside the functions
with the non-interactive Agg backend, so importing this module costs nothing and needs no display.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from pipeline.core import stage

FORMATS = {"keras": ("tab:gray", "s"), "tflite": ("tab:orange", "^"), "onnx": ("tab:blue", "o")}  # colour, marker
COLORS = {fmt: color for fmt, (color, _) in FORMATS.items()}
OTHER = "tab:green"  # a format not listed above


def pareto_front(artifacts: list[dict]) -> list[str]:
    """Names of the artifacts that no other is both smaller (gzip) and more accurate than, smallest first."""
    front, best = [], -math.inf
    for a in sorted(artifacts, key=lambda a: (a["gzip_bytes"], -a["accuracy"], a["name"])):
        if a["accuracy"] > best:
            front.append(a["name"])
            best = a["accuracy"]
    return front


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, classes: int = 10) -> np.ndarray:
    """Counts [true, predicted]."""
    m = np.zeros((classes, classes), np.int64)
    np.add.at(m, (np.asarray(y_true, np.int64), np.asarray(y_pred, np.int64)), 1)
    return m


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> None:
    with stage.atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    _pyplot().close(fig)


def pareto(artifacts: list[dict], deployed: str, baseline: str, max_drop_pp: float, path: Path) -> None:
    """Accuracy against gzip size, one point per artifact, the Pareto frontier as a staircase."""
    plt = _pyplot()
    from matplotlib import ticker

    fig, ax = plt.subplots(figsize=(9, 5.5))
    front = set(pareto_front(artifacts))
    for fmt in [*FORMATS, *sorted({a["format"] for a in artifacts} - set(FORMATS))]:  # ONNX drawn over TFLite
        pts = [a for a in artifacts if a["format"] == fmt]
        color, marker = FORMATS.get(fmt, (OTHER, "D"))
        if pts:
            ax.scatter(
                [a["gzip_bytes"] / 1000 for a in pts],
                [a["accuracy"] * 100 for a in pts],
                s=40,
                color=color,
                marker=marker,
                label=fmt,
                zorder=3,
            )
    on_front = sorted((a for a in artifacts if a["name"] in front), key=lambda a: a["gzip_bytes"])
    xs = [a["gzip_bytes"] / 1000 for a in on_front]
    ax.plot(
        [*xs, max(xs) * 1.5],
        [a["accuracy"] * 100 for a in [*on_front, on_front[-1]]],
        drawstyle="steps-post",
        color="black",
        lw=1,
        alpha=0.6,
        label="Pareto frontier",
        zorder=2,
    )
    d = next(a for a in artifacts if a["name"] == deployed)
    ax.scatter(
        [d["gzip_bytes"] / 1000],
        [d["accuracy"] * 100],
        s=220,
        facecolors="none",
        edgecolors="red",
        linewidths=1.5,
        label=f"deployed: {deployed}",
        zorder=4,
    )
    base = next((a["accuracy"] * 100 for a in artifacts if a["name"] == baseline), None)
    if base is not None:
        ax.axhline(base, color="gray", ls="--", lw=0.8, label=f"{baseline}")
        ax.axhline(base - max_drop_pp, color="red", ls=":", lw=0.8, label=f"{baseline} - {max_drop_pp:g} pp")
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(ticker.LogFormatter(labelOnlyBase=False, minor_thresholds=(1, 0.4)))
    _label(ax, [(a["name"], a["gzip_bytes"] / 1000, a["accuracy"] * 100) for a in artifacts], deployed)
    ax.set_xlabel("gzip size (KB, log scale)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("Accuracy vs gzip size (up and to the left is better)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))
    _save(fig, path)


def _label(ax, points: list[tuple[str, float, float]], bold: str) -> None:
    """Name each point; a label that would overlap one already placed moves down or up a line."""
    ax.autoscale_view()
    to_pt = 72 / ax.figure.dpi  # display pixels -> points, the unit of the label offsets
    right = ax.bbox.x1 * to_pt
    placed = []  # (left, bottom, right, top) in points
    for name, x, y in sorted(points, key=lambda p: (-p[2], p[1], p[0])):
        px, py = (v * to_pt for v in ax.transData.transform((x, y)))
        width = 4.2 * len(name)
        dx = 5 if px + 5 + width < right else -5 - width  # near the right edge: label on the left
        for dy in (3, -11, 13, -21, 23, -31, 33, -41):
            box = (px + dx, py + dy, px + dx + width, py + dy + 8)
            if not any(b[0] < box[2] and box[0] < b[2] and b[1] < box[3] and box[1] < b[3] for b in placed):
                break
        placed.append(box)
        ax.annotate(
            name,
            (x, y),
            xytext=(dx, dy),
            textcoords="offset points",
            fontsize=7,
            fontweight="bold" if name == bold else "normal",
        )


def latency(artifacts: list[dict], deployed: str, path: Path) -> None:
    """Batch-1 latency per artifact: bar to p50, whisker to p90, tick at p99."""
    plt = _pyplot()
    rows = [a for a in artifacts if a.get("latency_us")]
    fig, ax = plt.subplots(figsize=(9, 0.38 * len(rows) + 1.4))
    lat = [a["latency_us"] for a in rows]
    y = np.arange(len(rows))
    p50, p90, p99 = (np.array([x[k] for x in lat], float) for k in ("p50", "p90", "p99"))
    ax.barh(
        y,
        p50,
        color=[COLORS.get(a["format"], OTHER) for a in rows],
        height=0.6,
        edgecolor=["red" if a["name"] == deployed else "none" for a in rows],
        linewidth=1.5,
    )
    ax.hlines(y, p50, p90, color="black", lw=1, label="p50 to p90")
    ax.plot(p99, y, "k|", ms=9, label="p99")
    for i, a in enumerate(rows):
        ax.text(p99[i] * 1.08, i, f"{p50[i]:,.0f} µs  ({a.get('runtime', '')})", va="center", fontsize=7)
    ax.set_yticks(y, [a["name"] for a in rows], fontsize=8)
    for tick, a in zip(ax.get_yticklabels(), rows, strict=True):
        tick.set_fontweight("bold" if a["name"] == deployed else "normal")
    ax.invert_yaxis()
    if rows and p99.max() / max(p50.min(), 1e-9) > 20:
        ax.set_xscale("log")
    ax.set_xlim(right=p99.max() * 3 if rows else 1)
    ax.set_xlabel("batch-1 latency (µs, lower is better)")
    ax.set_title(f"Batch-1 latency, {lat[0]['threads'] if lat else '?'} thread(s); deployed outlined in red")
    ax.grid(alpha=0.3, axis="x", which="both")
    ax.legend(fontsize=8, loc="lower right")
    _save(fig, path)


def confusion(matrix: np.ndarray, name: str, path: Path) -> None:
    """The confusion matrix with every non-zero count written in its cell (colour on a log scale)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.2, 5.6))
    shade = np.log1p(matrix)
    ax.imshow(shade, cmap="Blues")
    for (i, j), n in np.ndenumerate(matrix):
        if n:
            ax.text(
                j,
                i,
                str(n),
                ha="center",
                va="center",
                fontsize=7,
                color="white" if shade[i, j] > 0.6 * shade.max() else "black",
            )
    ticks = range(len(matrix))
    ax.set_xticks(ticks)
    ax.set_yticks(ticks)
    ax.set_xlabel("predicted digit")
    ax.set_ylabel("true digit")
    errors = int(matrix.sum() - np.trace(matrix))
    ax.set_title(f"{name}: {errors} errors in {int(matrix.sum())} test images", fontsize=10)
    _save(fig, path)


def digit_grid(images: np.ndarray, tiles: list[tuple[int, str, str]], title: str, empty: str, path: Path) -> None:
    """Twelve digits a row: ``tiles`` of (image index, caption, caption colour), ``empty`` shown if none."""
    plt = _pyplot()
    columns = 12
    rows = max(1, math.ceil(len(tiles) / columns))
    fig, axes = plt.subplots(rows, columns, figsize=(columns * 0.8, rows * 0.95 + 0.7), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, (i, caption, color) in zip(axes.flat, tiles, strict=False):
        ax.imshow(images[i], cmap="gray", vmin=0, vmax=255)
        ax.set_title(caption, fontsize=9, color=color)
    if not tiles:
        axes[0, 0].text(0, 0.5, empty, fontsize=10)
    fig.suptitle(title, fontsize=10)
    _save(fig, path)


def gallery(images: np.ndarray, y_true: np.ndarray, y_pred: np.ndarray, name: str, path: Path, *, limit=96) -> None:
    """The first ``limit`` misclassified test digits, each titled true→predicted."""
    wrong = np.flatnonzero(np.asarray(y_true) != np.asarray(y_pred))
    tiles = [(i, f"{y_true[i]}→{y_pred[i]}", "firebrick") for i in wrong[:limit]]
    title = f"{name}: {len(tiles)} of {len(wrong)} misclassified test digits, true→predicted"
    digit_grid(images, tiles, title, "no misclassified test digits", path)
