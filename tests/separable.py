"""A task a tiny model learns in a few steps, for stage tests that train: class k lights up its own band of rows.

from tests.separable import separable
x, y = separable(100, seed=0)   # float32 [100, 28, 28, 1] in [0, 1], int labels 0-9
"""

from __future__ import annotations

import numpy as np


def separable(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 10, n)
    x = rng.random((n, 28, 28, 1), np.float32) * 0.2
    for i, k in enumerate(y):
        x[i, 2 + 2 * k : 4 + 2 * k, 4:24, 0] = 1.0
    return x, y
