"""The blobs of a mask that make the digit: part of step 4 of ``runtime.preprocess`` (``runtime.ink`` calls it).

    from runtime.blobs import _digit
    digit = _digit(mask)  # bool [H, W] -> the blobs that make the digit, without specks and border blobs

Blobs are 8-connected, found over the mask's row runs, all runs at once. This module imports nothing but numpy.
"""

from __future__ import annotations

import numpy as np

from runtime.constants import PREPROCESS as K


def _digit(mask: np.ndarray) -> np.ndarray:
    """The mask's blobs that make the digit. When some blobs do not touch the image's border, those that do along
    more than BORDER_CONTACT of its side, or from one side to the other, are not the digit (a table, the paper's edge, a
    shadow). Then specks go: blobs under SPECK x the largest one's area, outside the box of the bigger ones."""
    rows, starts, ends, roots = _blobs(mask)
    if rows.size == 0:
        return mask
    h, w = mask.shape
    n = rows.size

    def per_blob(values: np.ndarray) -> np.ndarray:
        return np.bincount(roots, weights=values, minlength=n)

    area = per_blob(ends - starts)
    top, bottom, left, right = (per_blob(edge) > 0 for edge in (rows == 0, rows == h - 1, starts == 0, ends == w))
    contact = per_blob(np.where((rows == 0) | (rows == h - 1), ends - starts, (starts == 0) + (ends == w)))
    if ((area >= K["SPECK"] * area.max()) & (contact == 0)).any():
        area[(contact > K["BORDER_CONTACT"] * min(h, w)) | (top & bottom) | (left & right)] = 0
    big = (area >= K["SPECK"] * area.max())[roots] & (area[roots] > 0)
    box = (
        (rows >= rows[big].min()) & (rows <= rows[big].max()) & (ends > starts[big].min()) & (starts < ends[big].max())
    )
    keep = ((per_blob(box) > 0) & (area > 0))[roots]
    marks = np.zeros((h, w + 1), np.int8)  # +1 where a kept run starts, -1 past its end (runs never touch)
    marks[rows[keep], starts[keep]], marks[rows[keep], ends[keep]] = 1, -1
    return marks.cumsum(1, dtype=np.int8)[:, :w] > 0


def _blobs(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """8-connected blobs of the mask's row runs: each run's row, start, end (exclusive) and blob (the least index
    of its runs). Runs of neighbouring rows that overlap or touch diagonally are joined, all at once: each blob's
    least index spreads along the joins, with pointer jumping, until no join has two different ones."""
    h, w = mask.shape
    padded = np.zeros((h, w + 2), np.int8)  # a column of zeros each side
    padded[:, 1:-1] = mask
    edges = padded[:, 1:] - padded[:, :-1]
    rows, starts = np.divmod(np.flatnonzero(edges == 1), w + 1)  # np.nonzero is ten times slower on 2-D
    ends = np.flatnonzero(edges == -1) % (w + 1)
    span = w + 2  # row * span + column orders the runs as they come, row by row
    # run j joins the runs i of the row above with ends[i] >= starts[j] and starts[i] <= ends[j]: a range of them
    low = np.searchsorted(rows * span + ends, (rows - 1) * span + starts)
    count = np.maximum(np.searchsorted(rows * span + starts, (rows - 1) * span + ends, "right") - low, 0)
    below = np.repeat(np.arange(rows.size), count)
    above = np.repeat(low - np.cumsum(count) + count, count) + np.arange(below.size)
    roots = np.arange(rows.size)
    while below.size:
        a, b = roots[above], roots[below]
        if not (a != b).any():
            break
        least = np.minimum(a, b)
        np.minimum.at(roots, a, least)
        np.minimum.at(roots, b, least)
        while True:  # pointer jumping: every run to its blob's least index found so far
            jumped = roots[roots]
            if not (jumped != roots).any():
                break
            roots = jumped
    return rows, starts, ends, roots
