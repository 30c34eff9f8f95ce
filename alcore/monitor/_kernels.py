"""The Numba kernels of :mod:`alcore.monitor._sketch`: per-feature bin counts and a block's
moments.

Imported only when a sketch is built or an audit runs, never by ``import alcore`` (Numba
costs about 0.15 s to import). Compiled once and cached (``cache=True``).
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True, nogil=True)
def add_bin_counts(x: np.ndarray, upper: np.ndarray, counts: np.ndarray) -> None:
    """Add to ``counts[j, b]`` the rows of x whose feature j falls in bin b.

    Bin b of feature j holds the values v with exactly b of its edges at or below v:
    numpy's ``searchsorted(edges[j], v, side="right")`` on sorted edges, a value equal to
    an edge going to the bin above it. The edges come as ``upper``, each float64 edge
    raised to the smallest float32 at or above it (:func:`float32_edges`): for a float32
    v, ``edge <= v`` exactly when ``upper <= v``, so the comparisons run in float32, a
    whole row's features at once (edge by edge, branch-free), twice as many per vector
    as in float64. Measured at 2-4 ns per value against 4-5 ns for the float64, feature
    by feature loop and 20+ ns for a binary search.

    Parameters
    ----------
    x : float32 (n, d), C-contiguous.
    upper : float32 (bins - 1, d), C-contiguous, each column sorted.
    counts : int64 (d, bins), C-contiguous; incremented in place.
    """
    n, d = x.shape
    inner = upper.shape[0]
    b = np.zeros(d, dtype=np.int32)
    for i in range(n):
        row = x[i]
        for j in range(d):
            b[j] = 0
        for e in range(inner):
            edge = upper[e]
            for j in range(d):
                b[j] += edge[j] <= row[j]
        for j in range(d):
            counts[j, b[j]] += 1


@numba.njit(cache=True, nogil=True)
def block_moments(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature mean and sum of squared deviations from it of a float32 (n, d) block,
    in float64, in two passes over the block without a float64 copy of it."""
    n, d = x.shape
    mean = np.zeros(d)
    for i in range(n):
        for j in range(d):
            mean[j] += x[i, j]
    mean /= n
    m2 = np.zeros(d)
    for i in range(n):
        for j in range(d):
            dev = x[i, j] - mean[j]
            m2[j] += dev * dev
    return mean, m2


def float32_edges(edges: np.ndarray) -> np.ndarray:
    """float64 (d, inner) edges as the float32 (inner, d) ``upper`` of
    :func:`add_bin_counts`: each raised to the smallest float32 at or above it."""
    up = edges.astype(np.float32)
    below = up.astype(np.float64) < edges
    up[below] = np.nextafter(up[below], np.float32(np.inf))
    return np.ascontiguousarray(up.T)
