"""The generated library's memory plan: where each layer's output and scratch lie in one static arena.

    plan = arena.plan(layers, scratch)   # Plan(size, outputs, scratch): byte offsets in the arena

A layer reads its input (the previous layer's output; the first reads the caller's pixels), writes
its output and may use scratch (the DSP path's widened windows). What one layer uses at once must not
overlap, with one exception: a conv-pool layer may write its output over input it has finished
reading. Pooled position p writes output bytes [p * oc, (p + 1) * oc) only after reading from input
byte start(p) = (2 * py * w + 2 * px) * c on, and start grows with p, so an output that begins `lag`
= max over p of ((p + 1) * oc - start(p)) bytes before the input never overwrites a byte still to be
read, on either kernel path. Outputs otherwise alternate between the arena's two ends (an overlapping
output stays at its input's end), scratch goes beside them, and the plan is the smallest arena for
which that placement is valid.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline.formats.int8_layers import Layer, size

Span = tuple[int, int]  # [start, end) in bytes


@dataclass(frozen=True)
class Plan:
    size: int  # bytes, a multiple of 4 (the arena is an int32 array)
    outputs: list[int]  # each layer's output offset but the last's (it writes the caller's out)
    scratch: list[int | None]  # each layer's scratch offset, word-aligned, or None


def lag(layer: Layer) -> int | None:
    """How many bytes before its input a conv-pool layer's output may begin (see above); None for other layers."""
    if layer.kind != "conv_pool":
        return None
    _, h, w, c = layer.inputs.shape
    oc, k = layer.weights.shape[0], layer.weights.shape[1]
    ph, pw = (h - k + 1) // 2, (w - k + 1) // 2
    p = np.arange(ph * pw)
    py, px = np.divmod(p, pw)
    return max(0, int(((p + 1) * oc - (2 * py * w + 2 * px) * c).max()))


def _up(n: int) -> int:
    return -(-n // 4) * 4


def _disjoint(a: Span, b: Span) -> bool:
    return a[1] <= b[0] or b[1] <= a[0]


def _place(total: int, outputs: list[int], scratch: list[int], lags: list[int | None], over: list[bool]):
    """Output and scratch offsets for an arena of ``total`` bytes, or None where this placement does not fit."""
    n = len(outputs)
    side = [0] * n  # 0: the low end, 1: the high end
    for j in range(1, n):
        side[j] = side[j - 1] if over[j] else 1 - side[j - 1]
    at: list[int] = []
    for j in range(n):
        if over[j]:
            at.append(at[j - 1] - lags[j])
        elif side[j] == 0:  # leave room below for the next layer's output, if it overlaps this one
            at.append(lags[j + 1] if j + 1 < n and over[j + 1] else 0)
        else:
            at.append(total - outputs[j])
    scratch_at: list[int | None] = []
    for j in range(n):
        out = (at[j], at[j] + outputs[j])
        spans = [out] + ([(at[j - 1], at[j - 1] + outputs[j - 1])] if j else [])
        if any(s < 0 or e > total for s, e in spans):
            return None
        if j and not over[j] and not _disjoint(spans[0], spans[1]):
            return None
        if j and over[j] and at[j - 1] - at[j] < lags[j]:
            return None
        if not scratch[j]:
            scratch_at.append(None)
            continue
        fits = [
            a
            for a in sorted({_up(e) for _, e in spans} | {(s - scratch[j]) // 4 * 4 for s, _ in spans} | {0})
            if a >= 0 and a + scratch[j] <= total and all(_disjoint((a, a + scratch[j]), span) for span in spans)
        ]
        if not fits:
            return None
        scratch_at.append(fits[0])
    return at, scratch_at


def plan(layers: list[Layer], scratch: list[int]) -> Plan:
    """The smallest arena for ``layers`` (the last one writes the caller's out), ``scratch[j]`` bytes for layer j."""
    outputs = [size(layer.output) for layer in layers[:-1]]
    scratch = list(scratch[: len(outputs)])
    lags = [lag(layer) if j else None for j, layer in enumerate(layers[:-1])]  # the first reads the pixels
    over = [j > 0 and lags[j] is not None for j in range(len(outputs))]
    ceiling = _up(2 * sum(outputs) + sum(scratch) + 3 * len(outputs))
    for allowed in (over, [False] * len(outputs)):
        for total in range(_up(max(outputs)), ceiling + 4, 4):
            placed = _place(total, outputs, scratch, lags, allowed)
            if placed is not None:
                return Plan(total, *placed)
    raise AssertionError("no arena plan fits: the fallback of disjoint regions always does")
