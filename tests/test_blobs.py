"""runtime.blobs: the 8-connected blobs of a mask's row runs, against a flood fill pixel by pixel."""

from __future__ import annotations

import numpy as np
import pytest

from runtime.blobs import _blobs


def flood_labels(mask: np.ndarray) -> np.ndarray:
    """Each pixel's 8-connected blob (a number per blob, -1 off the mask), by a plain flood fill."""
    labels = np.full(mask.shape, -1)
    h, w = mask.shape
    for start in zip(*np.nonzero(mask), strict=True):
        if labels[start] >= 0:
            continue
        labels[start], todo = start[0] * w + start[1], [start]
        while todo:
            y, x = todo.pop()
            for v in range(max(y - 1, 0), min(y + 2, h)):
                for u in range(max(x - 1, 0), min(x + 2, w)):
                    if mask[v, u] and labels[v, u] < 0:
                        labels[v, u] = labels[start]
                        todo.append((v, u))
    return labels


def run_labels(mask: np.ndarray) -> np.ndarray:
    """The same from ``_blobs``: every pixel of a run gets its run's blob."""
    labels = np.full(mask.shape, -1)
    rows, starts, ends, roots = _blobs(mask)
    for r, a, b, blob in zip(rows, starts, ends, roots, strict=True):
        labels[r, a:b] = blob
    return labels


def same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether two labellings put the same pixels together (whatever numbers they use)."""
    pairs = set(zip(a.ravel().tolist(), b.ravel().tolist(), strict=True))
    return len(pairs) == len(np.unique(a)) == len(np.unique(b))


@pytest.mark.parametrize("density", [0.05, 0.3, 0.5, 0.7])
def test_the_runs_blobs_are_the_8_connected_blobs(density):
    rng = np.random.default_rng(int(density * 100))
    for _ in range(60):
        mask = rng.random(rng.integers(1, 30, 2)) < density
        assert same_partition(run_labels(mask), flood_labels(mask)), mask.astype(int)


def test_diagonal_neighbours_join_and_a_gap_parts():
    mask = np.array([[1, 0, 0, 1], [0, 1, 0, 0], [0, 0, 0, 1]], bool)
    labels = run_labels(mask)
    assert labels[0, 0] == labels[1, 1] and labels[0, 3] != labels[1, 1] and labels[2, 3] != labels[0, 3]
    spiral = np.array([[1, 1, 1, 1, 1], [0, 0, 0, 0, 1], [1, 1, 1, 0, 1], [1, 0, 0, 0, 1], [1, 1, 1, 1, 1]], bool)
    assert len(set(_blobs(spiral)[3].tolist())) == 1  # joined through the bottom row only, many rows away
    assert all(a.size == 0 for a in _blobs(np.zeros((4, 5), bool)))
