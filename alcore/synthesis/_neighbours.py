"""Exact k nearest rows with a stated tie rule, on FAISS's exact search.

``alcore._faiss.nearest_rows`` finds the k nearest by float32 expanded forms and re-measures
those k exactly; an item it left out can still tie with (or, within float32's error, beat)
the k-th. Synthesis decides on neighbour sets (SMOTE's segments, Borderline-SMOTE's danger
counts, the pool items a batch maps to), so here the search asks for spare candidates and
proves, with the error bound of :mod:`alcore._distances`, that no row left out can be
among the k nearest; rows it cannot prove are searched again with twice the candidates,
up to all rows. The result is the plain definition: by float64 distance of the float32
inputs, equal distances to the lower row, whatever FAISS's thread count or tie order.
"""

from __future__ import annotations

import numpy as np

from alcore import _distances, _faiss

# Candidates fetched beyond those needed: near-ties at the k-th place are then usually
# settled in the first search.
SPARE = 4


def nearest(base: np.ndarray, queries: np.ndarray, k: int,
            self_rows: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The k nearest rows of ``base`` for every query, exact, equal distances to the lower
    row.

    Parameters
    ----------
    base : float32 (N, d), C-contiguous, finite.
    queries : float32 (Q, d), C-contiguous, finite.
    k : 1 <= k <= N (N - 1 with ``self_rows``).
    self_rows : int64 (Q,), optional
        The row of ``base`` each query is (it is never its own neighbour; an exact
        duplicate of it at another row is).

    Returns
    -------
    sq_distances : float64 (Q, k), squared L2 from float64 differences, ascending.
    ids : int64 (Q, k), rows of ``base``.
    """
    n, d = base.shape
    q = queries.shape[0]
    drop = 0 if self_rows is None else 1
    centred = _distances.centre(base, norms=True)
    largest = float(centred.norms.max()) if n else 0.0
    shifted = queries.astype(np.float64) - centred.mean
    query_norms = np.sqrt(np.einsum("ij,ij->i", shifted, shifted))
    # One bound per query covers any base row: |f32 - exact| <= err for every candidate.
    err = _distances.bound(d, query_norms, largest)
    out_sq = np.empty((q, k))
    out_ids = np.empty((q, k), dtype=np.int64)
    todo = np.arange(q)
    fetch = min(n, k + drop + SPARE)
    while len(todo):
        sq, ids = _faiss.nearest_rows(base, np.ascontiguousarray(queries[todo]), fetch)
        if self_rows is not None:
            own = ids == self_rows[todo, None]
            # Self moved last (its distance made inf), the others keep their order.
            sq = np.where(own, np.inf, sq)
            order = np.argsort(own, axis=1, kind="stable")
            sq = np.take_along_axis(sq, order, axis=1)
            ids = np.take_along_axis(ids, order, axis=1)
            # A row whose self was not fetched has one more real candidate than needed;
            # the certificate below only looks at the k-th and the last fetched.
        kth = sq[:, k - 1]
        last = np.where(np.isinf(sq[:, -1]), sq[:, -2] if fetch > 1 else -np.inf, sq[:, -1])
        # A row left out has a float32 distance >= the last fetched one's, so an exact
        # distance >= exact(last) - 2 err: strictly above the k-th proves it is not needed.
        proved = (fetch >= n) | (kth < last - 2 * err[todo])
        rows = todo[proved]
        out_sq[rows] = sq[proved, :k]
        out_ids[rows] = ids[proved, :k]
        todo = todo[~proved]
        fetch = min(n, 2 * fetch)
    return out_sq, out_ids
