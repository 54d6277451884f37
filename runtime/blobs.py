"""The blobs of a mask that make the digit: part of step 4 of ``runtime.preprocess`` (``runtime.ink`` calls it).

    from runtime.blobs import _digit
    digit = _digit(mask)  # bool [H, W] -> the blobs that make the digit, without specks and border blobs

Blobs are 8-connected, found by union-find over the mask's row runs. This module imports nothing but numpy.
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
    out = np.zeros_like(mask)
    for r, a, b in zip(rows[keep].tolist(), starts[keep].tolist(), ends[keep].tolist(), strict=True):
        out[r, a:b] = True
    return out


def _blobs(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """8-connected blobs, by union-find over the mask's row runs: each run's row, start, end (exclusive) and blob
    (the index of one of its runs)."""
    padded = np.zeros((mask.shape[0], mask.shape[1] + 2), np.int8)  # a column of zeros each side
    padded[:, 1:-1] = mask
    edges = np.diff(padded, axis=1)
    rows, starts = np.nonzero(edges == 1)
    ends = np.nonzero(edges == -1)[1]
    parent = list(range(rows.size))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = i = parent[parent[i]]
        return i

    first = np.searchsorted(rows, np.arange(mask.shape[0] + 1)).tolist()
    s, e = starts.tolist(), ends.tolist()
    for r in range(1, mask.shape[0]):
        i, j = first[r - 1], first[r]  # runs of the row above, of this row
        while i < first[r] and j < first[r + 1]:
            if s[j] <= e[i] and s[i] <= e[j]:  # overlapping or diagonal neighbours
                parent[find(j)] = find(i)
            if e[i] < e[j]:
                i += 1
            else:
                j += 1
    return rows, starts, ends, np.array([find(i) for i in range(rows.size)], dtype=np.intp)
