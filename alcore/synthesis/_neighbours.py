"""Exact k nearest base rows, ties to the lower row, even where float32 cannot tell.

:func:`alcore._faiss.nearest_rows` re-measures the k candidates FAISS found in float64, but
FAISS chooses them on float32 expanded forms: when several base rows lie within float32's
error of the k-th distance (duplicates, or rows a few ulps apart), FAISS may return any of
them, and a row that is in truth nearer can be left out. Validation compares these
distances with quantiles and counts classes among the neighbours, so a few spare
candidates are fetched, and every query whose last candidate is not clearly farther than
its k-th (by the error bound of :mod:`alcore._distances`) is searched again by brute force
in float64. The result is then what a plain float64 search over all rows gives: the k
smallest distances, equal ones to the lower row.
"""

from __future__ import annotations

import numpy as np

from alcore import _distances, _faiss

# Candidates fetched beyond the k needed.
SPARE = 4
# Brute-force blocks: (rows, N, d) float64 of at most this many values (8 MB).
_BLOCK_ELEMENTS = 1 << 20


def _norms(x: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """Row norms about the origin and about ``mean``, the larger of the two: nearest_rows
    computes on rows centred or not (alcore._distances.centre decides)."""
    about_mean = _distances.row_norms(np.ascontiguousarray(x.astype(np.float64) - mean))
    return np.maximum(_distances.row_norms(x), about_mean)


def _brute_force(base: np.ndarray, queries: np.ndarray, k: int,
                 self_rows: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    n, d = base.shape
    base64 = base.astype(np.float64)
    sq_out = np.empty((len(queries), k))
    ids_out = np.empty((len(queries), k), dtype=np.int64)
    step = max(1, _BLOCK_ELEMENTS // max(1, n * d))
    ids = np.arange(n)
    for start in range(0, len(queries), step):
        block = queries[start:start + step].astype(np.float64)
        diff = block[:, None, :] - base64[None, :, :]
        np.square(diff, out=diff)
        sq = diff.sum(axis=2)
        if self_rows is not None:
            sq[np.arange(len(block)), self_rows[start:start + step]] = np.inf
        order = np.lexsort((np.broadcast_to(ids, sq.shape), sq), axis=-1)[:, :k]
        sq_out[start:start + step] = np.take_along_axis(sq, order, axis=1)
        ids_out[start:start + step] = order
    return sq_out, ids_out


def exact_knn(base: np.ndarray, queries: np.ndarray, k: int,
              self_rows: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The k nearest rows of ``base`` (float32 (N, d)) of every query (float32 (Q, d)).

    ``self_rows`` (int64 (Q,)): the base row each query is, never its own neighbour
    (then k <= N - 1). Returns float64 (Q, k) squared L2 distances from float64
    differences, ascending, and int64 (Q, k) base rows, equal distances to the lower row.
    """
    n, d = base.shape
    own = 0 if self_rows is None else 1
    wanted = min(n, k + own + SPARE)
    sq, ids = _faiss.nearest_rows(base, queries, wanted)
    if self_rows is not None:
        sq[ids == self_rows[:, None]] = np.inf
        order = np.lexsort((ids, sq), axis=-1)
        sq = np.take_along_axis(sq, order, axis=1)
        ids = np.take_along_axis(ids, order, axis=1)
    # The farthest candidate that is surely not the query itself (when the query was
    # among them it moved to the end as inf; when not, one fewer is conservative).
    last = sq[:, wanted - 1 - own]
    sq, ids = sq[:, :k], ids[:, :k]
    if wanted < n:
        # A row FAISS left out has an exact distance of at least the last candidate's
        # minus twice the float32 error bound: clear only when that exceeds the k-th.
        mean = base.mean(axis=0, dtype=np.float64)
        widest = float(_norms(base, mean).max())
        slack = 2.0 * _distances.bound(d, _norms(queries, mean), widest)
        unsure = np.flatnonzero(~(last - slack > sq[:, -1]))
        if len(unsure):
            own_rows = None if self_rows is None else self_rows[unsure]
            sq[unsure], ids[unsure] = _brute_force(base, queries[unsure], k, own_rows)
    return sq, ids
