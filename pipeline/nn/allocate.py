"""Per-layer settings derived from the sensitivity analysis (``artifacts/sensitivity.json``).

    from pipeline.nn import allocate
    sparsities = allocate.sparsities(sensitivity, final_sparsity=0.8)   # {"dense1": 0.82, ...}
    widths = allocate.widths(sensitivity, max_parameters=24000)         # (f1, f2, u1, u2)

Both rules read each layer's *solo* curve: validation accuracy with only that layer pruned or
narrowed, no fine-tuning. "Drop" is the baseline's validation accuracy minus that, never below 0.

- ``sparsities``: the split of an overall sparsity target over the layers that minimises the sum
  of their drops, each drop curve interpolated linearly between the measured sparsities (from 0
  at 0 %) and taken convex. On convex piecewise-linear curves that optimum is greedy: zero
  weights in order of accuracy lost per weight zeroed, so the least sensitive weights go first.
  Layers that get no sparsity stay dense (not wrapped).
- ``widths``: Li et al.'s (2017) rule for filter pruning, one drop threshold shared by all
  layers: each layer keeps the fewest filters/units whose solo drop (interpolated between the
  measured widths, rounded up) is at most ``d``, with ``d`` the smallest threshold for which the
  narrowed model meets the budget (parameters and/or multiply-adds). A shared threshold, not a
  sum, because the budget is not additive over layers: a conv's width scales the next layer too.
"""

from __future__ import annotations

import itertools
import math

from pipeline.config import LAYERS

FULL = (30, 15, 128, 50)  # the baseline's widths, model.WIDTHS (kept here: no TensorFlow import)
NARROWABLE = LAYERS[:4]  # structured pruning narrows these; the output layer keeps its ten classes


def _drops(sensitivity: dict, points: list[dict], key: str, start: float) -> list[tuple[float, float]]:
    """(x, drop) from ``start`` (drop 0) through the measured points, in measuring order."""
    base = sensitivity["val_accuracy"]
    return [(start, 0.0), *((p[key], max(0.0, base - p["val_accuracy"])) for p in points)]


def _convex(curve: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """The lower convex hull of a curve sorted by x (drop never decreases along the result)."""
    hull: list[tuple[float, float]] = []
    for x, measured in sorted(curve):
        y = max(measured, hull[-1][1]) if hull else measured
        while len(hull) >= 2 and (hull[-1][1] - hull[-2][1]) * (x - hull[-2][0]) >= (y - hull[-2][1]) * (
            hull[-1][0] - hull[-2][0]
        ):
            hull.pop()
        hull.append((x, y))
    return hull


def sparsities(sensitivity: dict, final_sparsity: float) -> dict[str, float]:
    """Per-layer kernel sparsities reaching ``final_sparsity`` of all kernel weights (see the module
    docstring); layers left at 0 are omitted. Raises ValueError if the measured range cannot reach it."""
    sizes = sensitivity["kernel_weights"]
    segments = []  # (drop per weight zeroed, layer, from sparsity, to sparsity)
    for name, points in sensitivity["pruning"].items():
        hull = _convex(_drops(sensitivity, points, "sparsity", 0.0))
        for (s0, d0), (s1, d1) in itertools.pairwise(hull):
            segments.append(((d1 - d0) / ((s1 - s0) * sizes[name]), name, s0, s1))
    needed = final_sparsity * sum(sizes.values())
    found: dict[str, float] = {}
    for _, name, s0, s1 in sorted(segments, key=lambda seg: (seg[0], seg[2])):
        if needed <= 0:
            break
        take = min(s1 - s0, needed / sizes[name])
        found[name] = s0 + take
        needed -= take * sizes[name]
    if needed > 1e-6:
        raise ValueError(f"final_sparsity={final_sparsity} is beyond the measured sparsities of every layer")
    return {name: round(s, 4) for name, s in found.items() if s > 0}


def _width_within(curve: list[tuple[float, float]], full: int, threshold: float) -> int:
    """Fewest units whose drop is at most ``threshold``, walking down from ``full``: interpolated on
    the segment where the curve first crosses it, rounded up."""
    points = sorted(curve, reverse=True)  # widest first, (full, 0) included
    width = full
    for (w_hi, d_hi), (w_lo, d_lo) in itertools.pairwise(points):
        if d_lo <= threshold:
            width = w_lo
            continue
        width = math.ceil(w_hi - (threshold - d_hi) / (d_lo - d_hi) * (w_hi - w_lo))  # d_lo > threshold >= d_hi
        break
    return int(width)


def parameters(widths: tuple[int, ...]) -> int:
    """Weights and biases of ``model.build(widths)`` (28x28 input, 5x5 then 3x3 valid convs, 2x2 pools)."""
    f1, f2, u1, u2 = widths
    return (25 + 1) * f1 + (9 * f1 + 1) * f2 + (25 * f2 + 1) * u1 + (u1 + 1) * u2 + (u2 + 1) * 10


def macs(widths: tuple[int, ...]) -> int:
    """Multiply-adds of ``model.build(widths)``, as ``model.macs`` counts them."""
    f1, f2, u1, u2 = widths
    return 24 * 24 * 25 * f1 + 10 * 10 * 9 * f1 * f2 + 25 * f2 * u1 + u1 * u2 + u2 * 10


def activation_bytes(widths: tuple[int, ...]) -> int:
    """The most int8 activation bytes one op of ``model.build(widths)`` reads and writes at once: what
    a TFLite Micro arena must hold besides its fixed part (conv1's output dominates)."""
    f1, f2, u1, u2 = widths
    return max(28 * 28 + 24 * 24 * f1, (24 * 24 + 12 * 12) * f1, 12 * 12 * f1 + 10 * 10 * f2, 25 * f2 + u1, u1 + u2)


def widths(
    sensitivity: dict,
    max_parameters: int | None = None,
    max_macs: int | None = None,
    max_activation_bytes: int | None = None,
) -> tuple[int, int, int, int]:
    """Structured widths meeting the budgets (see the module docstring). ``max_activation_bytes`` caps
    conv1 alone, whose output is the largest activation; the shared drop threshold then meets the
    others. Raises ValueError if even the narrowest measured widths miss a budget."""
    curves = {
        n: _drops(sensitivity, sensitivity["narrowing"][n], "width", f) for n, f in zip(NARROWABLE, FULL, strict=True)
    }
    cap = FULL[0]
    while max_activation_bytes is not None and cap > 1 and activation_bytes((cap, 1, 1, 1)) > max_activation_bytes:
        cap -= 1

    def at(threshold: float) -> tuple[int, int, int, int]:
        found = [_width_within(curves[n], full, threshold) for n, full in zip(NARROWABLE, FULL, strict=True)]
        return (min(found[0], cap), *found[1:])

    def fits(w: tuple[int, ...]) -> bool:
        budgets = ((max_parameters, parameters), (max_macs, macs), (max_activation_bytes, activation_bytes))
        return all(limit is None or count(w) <= limit for limit, count in budgets)

    top = max(d for c in curves.values() for _, d in c)
    if not fits(at(top)):
        raise ValueError(
            f"no measured widths meet max_parameters={max_parameters}, max_macs={max_macs}, "
            f"max_activation_bytes={max_activation_bytes}"
        )
    lo, hi = 0.0, top  # the widths shrink as the threshold grows: bisect it
    if fits(at(lo)):
        return at(lo)
    for _ in range(50):
        mid = (lo + hi) / 2
        lo, hi = (lo, mid) if fits(at(mid)) else (mid, hi)
    return at(hi)


def uniform_sparsities(
    kernel_weights: dict[str, int], final_sparsity: float, skip: tuple[str, ...]
) -> dict[str, float]:
    """The override of ``sparsities``: the layers not in ``skip`` share ``final_sparsity`` of all
    kernel weights evenly. Raises ValueError if they are too few to hold it."""
    targets = {name: n for name, n in kernel_weights.items() if name not in skip}
    share = final_sparsity * sum(kernel_weights.values()) / max(1, sum(targets.values()))
    if share >= 1:
        raise ValueError(f"final_sparsity={final_sparsity} cannot be reached with {', '.join(skip)} left dense")
    return {name: round(share, 4) for name in targets} if share > 0 else {}
