"""Alignment through a cross-modal distance matrix: cosine distances and dynamic time warping."""

from __future__ import annotations

import numpy as np


def cosine_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine distance of every row of ``a`` to every row of ``b``, shape (len(a), len(b))."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    a = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
    b = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-12)
    return 1.0 - a @ b.T


def dtw_path(cost: np.ndarray) -> np.ndarray:
    """Minimum-cost monotonic path from (0, 0) to (n-1, m-1) with steps (1,0), (0,1), (1,1).

    Parameters
    ----------
    cost : np.ndarray, shape (n, m)
        Local costs (e.g. :func:`cosine_distance`), finite.

    Returns
    -------
    np.ndarray, shape (L, 2), int64
        The path's (row, column) cells in order.
    """
    cost = np.asarray(cost, dtype=np.float64)
    if cost.ndim != 2 or min(cost.shape) == 0 or not np.all(np.isfinite(cost)):
        raise ValueError(f"cost must be a finite non-empty 2-d array, got shape {cost.shape}")
    n, m = cost.shape
    acc = np.full((n + 1, m + 1), np.inf)
    acc[0, 0] = 0.0
    for i in range(1, n + 1):  # the diagonal and vertical steps per row at once; horizontal ones in turn
        diag_up = np.minimum(acc[i - 1, :-1], acc[i - 1, 1:]) + cost[i - 1]
        row = acc[i]
        for j in range(1, m + 1):
            row[j] = min(diag_up[j - 1], row[j - 1] + cost[i - 1, j - 1])
    path = [(n - 1, m - 1)]
    i, j = n, m
    while (i, j) != (1, 1):
        steps = ((acc[i - 1, j - 1], i - 1, j - 1), (acc[i - 1, j], i - 1, j), (acc[i, j - 1], i, j - 1))
        _, i, j = min(s for s in steps if s[1] >= 1 and s[2] >= 1)
        path.append((i - 1, j - 1))
    return np.asarray(path[::-1], dtype=np.int64)
