"""The Numba kernel of :mod:`alcore.monitor.sketch`: per-feature bin counts.

Imported only when a sketch is built or an audit runs, never by ``import alcore`` (Numba
costs about 0.15 s to import). Compiled once and cached (``cache=True``).
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True, nogil=True)
def add_bin_counts(x: np.ndarray, edges: np.ndarray, counts: np.ndarray) -> None:
    """Add to ``counts[j, b]`` the rows of x whose feature j falls in bin b.

    Bin b of feature j holds the values v with exactly b of the edges ``edges[j]`` at or
    below v: numpy's ``searchsorted(edges[j], v, side="right")`` on sorted edges, a value
    equal to an edge going to the bin above it. The count is branch-free: the edges are
    few (bins - 1), and a search that branches mispredicts on every value.

    Parameters
    ----------
    x : float32 (n, d), C-contiguous.
    edges : float64 (d, bins - 1), C-contiguous, each row sorted.
    counts : int64 (d, bins), C-contiguous; incremented in place.
    """
    n, d = x.shape
    inner = edges.shape[1]
    for i in range(n):
        for j in range(d):
            value = np.float64(x[i, j])
            b = 0
            for e in range(inner):
                b += edges[j, e] <= value
            counts[j, b] += 1
