"""The nearest real, unlabeled pool items of synthetic points: what annotators label when
they cannot label a vector (the ASAL pattern, Mayer & Timofte 2020)."""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from alcore import _faiss
from alcore import _validation as v
from alcore._errors import InvalidInputError
from alcore.synthesis._points import SyntheticPoints
from alcore.synthesis._rows import paired_rows


class NearestReal(NamedTuple):
    """What :func:`nearest_real` returns."""

    indices: np.ndarray
    """int64 (m, k): rows of the pool, each synthetic point's nearest first."""
    distances: np.ndarray
    """float64 (m, k): their L2 distances (from float64 differences of the float32
    rows)."""


# Candidate pairs above which the greedy runs compiled (Numba): on points that share their
# nearest items (copies, points on one segment) it walks about m^2 k pairs, minutes in
# Python for m = 10 000; below, the Python loop is faster than Numba's first compilation.
COMPILED_GREEDY_MIN = 200_000
_compiled: Any = None


def _compiled_greedy() -> Any:
    """The greedy loop of :func:`_greedy_unique`, compiled once per process."""
    global _compiled
    if _compiled is None:
        import numba

        def greedy(order, flat_ids, flat_sq, width, n_items, k, out_ids, out_sq):
            m = out_ids.shape[0]
            filled = np.zeros(m, dtype=np.int64)
            taken = np.zeros(n_items, dtype=np.bool_)
            remaining = m
            for pos in order:
                point = pos // width
                item = flat_ids[pos]
                if filled[point] == k or taken[item]:
                    continue
                taken[item] = True
                out_ids[point, filled[point]] = item
                out_sq[point, filled[point]] = flat_sq[pos]
                filled[point] += 1
                if filled[point] == k:
                    remaining -= 1
                    if remaining == 0:
                        return True
            return False

        try:  # compiled once per machine (1-2 s), kept in Numba's disk cache
            _compiled = numba.njit(cache=True, nogil=True)(greedy)
        except RuntimeError:  # no writable cache location (a read-only install and home)
            _compiled = numba.njit(nogil=True)(greedy)
    return _compiled


def _greedy_unique(sq: np.ndarray, ids: np.ndarray, k: int) -> tuple[np.ndarray, ...] | None:
    """Greedy assignment over the candidate lists: the (point, item) pairs in ascending
    distance (then point, then item), each taken while the point has fewer than k items
    and the item is free. None when some point runs out of candidates (the caller fetches
    more: with every point served from its own list, a longer list changes nothing)."""
    m, width = ids.shape
    # Each row is sorted by (distance, item) (nearest_rows' order), so a stable sort of the
    # flattened distances orders the pairs by (distance, point, item): one key, not three.
    order = np.argsort(sq.reshape(-1), kind="stable")
    out_ids = np.empty((m, k), dtype=np.int64)
    out_sq = np.empty((m, k))
    filled = np.zeros(m, dtype=np.int64)
    taken: set[int] = set()
    flat_ids = ids.reshape(-1)
    flat_sq = sq.reshape(-1)
    if len(order) > COMPILED_GREEDY_MIN:
        done = _compiled_greedy()(order, np.ascontiguousarray(flat_ids),
                                  np.ascontiguousarray(flat_sq), width,
                                  int(flat_ids.max()) + 1, k, out_ids, out_sq)
        return (out_sq, out_ids) if done else None
    remaining = m
    for pos in order.tolist():  # one pass over m x width candidates, stopping when served
        point = pos // width
        item = int(flat_ids[pos])
        if filled[point] == k or item in taken:
            continue
        taken.add(item)
        out_ids[point, filled[point]] = item
        out_sq[point, filled[point]] = flat_sq[pos]
        filled[point] += 1
        if filled[point] == k:
            remaining -= 1
            if remaining == 0:
                return out_sq, out_ids
    return None


def nearest_real(synthetic: Any, pool_embeddings: Any, *, k: int = 1, labeled: Any = None,
                 exclude: Any = None, unique: bool = False) -> NearestReal:
    """For each synthetic point, its k nearest real pool items that are neither labeled
    nor excluded.

    Parameters
    ----------
    synthetic : SyntheticPoints or array-like of shape (m, d)
        The points (``SyntheticPoints.points`` is used), finite.
    pool_embeddings : array-like of shape (N, d)
        float32 or float64, finite.
    k : int
        Items per point.
    labeled, exclude : mask, index array or None
        Items never returned (``labeled`` also takes scikit-activeml's ``y`` with NaN for
        the unlabeled).
    unique : bool
        A batch to annotate must not hold one item twice: with True every item is
        returned at most once over all points. Greedy in order of distance: the (point,
        item) pairs are taken from the nearest up (equal distances: the lower point, then
        the lower item) while the point has fewer than k items and the item is not yet
        taken, so a point whose nearest item is nearer another point gets its next
        nearest free one. Needs m k free items.

    Returns
    -------
    NearestReal
        ``indices`` int64 (m, k) and ``distances`` float64 (m, k), nearest first; without
        ``unique``, equal distances to the lower pool index. Distances are computed from
        float64 differences of the float32 rows (float64 points are rounded to float32,
        as the pool is; when float32 cannot hold a float64 pool exactly, pool and
        points are first centred on the pool's float64 mean, so an offset from the origin
        costs no precision).
    """
    points = synthetic.points if isinstance(synthetic, SyntheticPoints) else synthetic
    queries, pool = paired_rows(points, pool_embeddings, "synthetic", "pool_embeddings")
    if queries.shape[1] != pool.shape[1]:
        raise InvalidInputError(
            f"synthetic has {queries.shape[1]} dimensions but pool_embeddings has "
            f"{pool.shape[1]}; pass points in the pool's embedding space")
    k = v.count(k, "k")
    unique = v.flag(unique, "unique")
    n_items = pool.shape[0]
    m = queries.shape[0]
    masks = v.item_masks(n_items, "pool_embeddings", labeled=labeled, exclude=exclude)
    allowed = (np.arange(n_items) if masks.never is None
               else np.flatnonzero(masks.never == 0))
    need = m * k if unique else k
    if need > len(allowed):
        what = f"{m} points x k={k}" if unique else f"k={k}"
        raise InvalidInputError(
            f"{what} needs {need} distinct items but only {len(allowed)} of the pool's "
            f"{n_items} are neither labeled nor excluded; lower k"
            f"{' or pass fewer points' if unique else ''}")
    base = pool if len(allowed) == n_items else np.ascontiguousarray(pool[allowed])
    if not unique:
        sq, ids = _faiss.nearest_rows(base, queries, k)
        return NearestReal(allowed[ids], np.sqrt(sq))
    width = min(len(allowed), 2 * k + _faiss.NEAREST_SPARE)
    while True:
        sq, ids = _faiss.nearest_rows(base, queries, width)
        result = _greedy_unique(sq, ids, k)
        if result is not None:
            sq, ids = result
            return NearestReal(allowed[ids], np.sqrt(sq))
        # A point ran out of candidates; m k items always suffice (others take at most
        # (m - 1) k of its list).
        width = min(len(allowed), max(2 * width, k + 1))


__all__ = ["NearestReal", "nearest_real"]

v.guard_signatures(globals())
