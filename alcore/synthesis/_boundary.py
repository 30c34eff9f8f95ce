"""Query synthesis at the decision boundary: bisection between nearby items of different
classes, with the user's model called once per step on the whole batch of midpoints."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from alcore import _distances, _faiss
from alcore import _validation as v
from alcore._errors import InvalidInputError
from alcore.synthesis._labels import class_codes
from alcore.synthesis._points import SyntheticPoints
from alcore.synthesis._rows import search_rows

# Rows per predict_proba call when the model classifies the items themselves: bounds the
# user's batch (and its memory) on a large pool.
PREDICT_BATCH = 65_536
# Candidate pairs: items are searched (for their nearest neighbours) in blocks, the first
# of max(FIRST_BLOCK, 2n) items, until CANDIDATES_PER_POINT * n pairs are found, so that
# n is chosen among several times as many pairs without a search of the whole pool.
FIRST_BLOCK = 1024
CANDIDATES_PER_POINT = 3
# predict_proba's output: rows must sum to 1 within this, values lie in [0, 1] within
# VALUE_SLACK (a float32 softmax can round a certain class to 1 + 1e-7).
ROW_SUM_ATOL = 1e-3
VALUE_SLACK = 1e-6


class _Model:
    """The user's ``predict_proba``, every call counted and its output checked."""

    def __init__(self, fn: Any):
        if not callable(fn):
            raise InvalidInputError(
                f"predict_proba must be a callable taking an (n, d) array and returning "
                f"(n, C) class probabilities (e.g. model.predict_proba), got "
                f"{type(fn).__name__} {v.shown(fn)}")
        self.fn = fn
        self.calls = 0
        self.classes: int | None = None

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        """float64 (len(batch), C) probabilities of the 2-D ``batch``."""
        self.calls += 1
        where = (f"predict_proba (call {self.calls}, on a batch of shape {batch.shape} "
                 f"and dtype {batch.dtype})")
        try:
            out = self.fn(batch)
        except Exception as exc:  # the user's code: say which call failed, keep the cause
            raise InvalidInputError(
                f"{where} raised {type(exc).__name__}: {exc}; predict_proba must accept "
                f"any (n, d) batch of points") from exc
        try:
            arr = v.as_numpy(out, "predict_proba's output")
        except InvalidInputError as exc:
            raise InvalidInputError(f"{where} returned {type(out).__name__}: {exc}") from None
        if arr.dtype.kind not in "biuf":
            raise InvalidInputError(
                f"{where} returned dtype {arr.dtype}; return real class probabilities")
        want = (len(batch), self.classes if self.classes is not None else "C")
        if arr.ndim != 2 or arr.shape[0] != len(batch) or (
                self.classes is not None and arr.shape[1] != self.classes):
            hint = (" (one column? return numpy.column_stack([1 - p, p]))"
                    if arr.ndim == 1 else "")
            raise InvalidInputError(
                f"{where} returned shape {arr.shape}, expected ({want[0]}, {want[1]}): one "
                f"row of class probabilities per point{hint}")
        if arr.shape[1] < 2:
            raise InvalidInputError(
                f"{where} returned {arr.shape[1]} column; expected at least 2 classes (for "
                f"one column p return numpy.column_stack([1 - p, p]))")
        arr = arr.astype(np.float64, copy=False)
        finite = np.isfinite(arr)
        if not finite.all():
            row, col = np.argwhere(~finite)[0]
            raise InvalidInputError(
                f"{where} returned {arr[row, col]} at row {row}, column {col}; probabilities "
                f"must be finite")
        outside = (arr < -VALUE_SLACK) | (arr > 1 + VALUE_SLACK)
        if outside.any():
            row, col = np.argwhere(outside)[0]
            raise InvalidInputError(
                f"{where} returned {arr[row, col]:.6g} at row {row}, column {col}; "
                f"probabilities must lie in [0, 1] (softmax raw scores first)")
        sums = arr.sum(axis=1)
        off = np.flatnonzero(np.abs(sums - 1) > ROW_SUM_ATOL)
        if len(off):
            raise InvalidInputError(
                f"{where} returned row {off[0]} summing to {sums[off[0]]:.6g}; probability "
                f"rows must sum to 1 (within {ROW_SUM_ATOL:g})")
        self.classes = arr.shape[1]
        return arr


def _top_two(probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The predicted class (argmax, equal probabilities to the lower class) and the
    top-two margin p1 - p2 of every row."""
    c = probs.shape[1]
    two = np.partition(probs, c - 2, axis=1)[:, c - 2:]
    return np.argmax(probs, axis=1).astype(np.int64), two[:, 1] - two[:, 0]


def _predict_rows(model: _Model, x: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, ...]:
    """Class and margin of x[rows], in batches of PREDICT_BATCH."""
    cls = np.empty(len(rows), dtype=np.int64)
    margin = np.empty(len(rows))
    for start in range(0, len(rows), PREDICT_BATCH):
        part = rows[start:start + PREDICT_BATCH]
        cls[start:start + len(part)], margin[start:start + len(part)] = _top_two(
            model(np.ascontiguousarray(x[part])))
    return cls, margin


def _on_segment(a: np.ndarray, b: np.ndarray, lam: np.ndarray, unit: bool,
                dtype: np.dtype) -> np.ndarray:
    """(1 - lam) a + lam b per row (float64), on the unit sphere when ``unit``, as
    ``dtype``: the exact points the model is shown and the user gets back."""
    p = a + lam[:, None] * (b - a)
    if unit:
        norms = np.sqrt(np.einsum("ij,ij->i", p, p))
        p /= np.where(norms > 0, norms, 1.0)[:, None]
    return p.astype(dtype)


def _choose_pairs(a: np.ndarray, b: np.ndarray, n: int, n_items: int,
                  gen: np.random.Generator) -> np.ndarray:
    """Positions of the n candidate pairs to bisect, in order: first the pairs that are
    the first choice (in a random order) of both their items, then the second choices...,
    so that the points spread over many items rather than circling one."""
    key = gen.random(len(a))
    ends = np.concatenate([a, b])
    pair = np.concatenate([np.arange(len(a)), np.arange(len(a))])
    by_item = np.lexsort((key[pair], ends))
    starts = np.searchsorted(ends[by_item], np.arange(n_items))
    rank = np.empty(len(ends), dtype=np.int64)
    rank[by_item] = np.arange(len(ends)) - starts[ends[by_item]]
    priority = np.maximum(rank[:len(a)], rank[len(a):])
    return np.lexsort((key, priority))[:n]


def _candidate_pairs(x32: np.ndarray, group: np.ndarray, k: int, n: int,
                     gen: np.random.Generator,
                     accept: Callable[[np.ndarray, np.ndarray], np.ndarray] | None
                     ) -> tuple[np.ndarray, np.ndarray, int]:
    """Pairs (a < b) of an item and one of its k nearest others with a different
    ``group``, each once, accepted by ``accept(a, b)`` (when given): the items are
    searched in a random order, in blocks that double from max(FIRST_BLOCK, 2n) items,
    until CANDIDATES_PER_POINT * n pairs are found or every item has been searched, so a
    large pool is not searched in full for a few points. Returns (a, b, how many pairs
    ``accept`` refused)."""
    n_items = len(x32)
    order = gen.permutation(n_items)
    seen = kept = np.empty(0, dtype=np.int64)
    refused = 0
    start, size = 0, max(FIRST_BLOCK, 2 * n)
    while start < n_items and len(kept) < CANDIDATES_PER_POINT * n:
        rows = np.sort(order[start:start + size])
        start += len(rows)
        size *= 2
        _, ids = _faiss.nearest_rows(x32, np.ascontiguousarray(x32[rows]), k, self_rows=rows)
        r, c = np.repeat(rows, k), ids.reshape(-1)
        differ = group[r] != group[c]
        r, c = r[differ], c[differ]
        new = np.setdiff1d(np.unique(np.minimum(r, c) * n_items + np.maximum(r, c)), seen,
                           assume_unique=True)
        seen = np.union1d(seen, new)
        if accept is not None and len(new):
            ok = accept(new // n_items, new % n_items)
            refused += int(np.count_nonzero(~ok))
            new = new[ok]
        kept = np.union1d(kept, new)
    return kept // n_items, kept % n_items, refused


def boundary(embeddings: Any, predict_proba: Callable[[np.ndarray], Any], n: int, *,
             labels: Any = None, tol: float = 1e-3, neighbors: int = 10,
             normalize: bool = False, max_iter: int = 60,
             seed: int | np.random.Generator | None = 0) -> SyntheticPoints:
    """Points on the model's decision boundary, between nearby items of different classes.

    1. Every item's class: the argmax of ``predict_proba`` on the items (called on batches
       of at most ``PREDICT_BATCH`` = 65 536 rows), or ``labels`` when given.
    2. Candidate pairs: an item and one of its ``neighbors`` nearest other items (exact
       FAISS search, equal distances to the lower row) of another class; each unordered
       pair once. The items are searched in a random order, in blocks (the first of
       max(1024, 2n) items, then doubling), until 3n candidates are found or every item
       has been searched: a large pool is not searched in full for a few points. With
       ``labels``, only pairs the model also puts in different classes (the model is
       called, in batches, on each block's new endpoints).
    3. n pairs are chosen, deterministically for a given ``seed``: distinct pairs, spread
       over the items (every item's first choice, in a random order, before anyone's
       second).
    4. Bisection on every segment ``x(lam) = (1 - lam) a + lam b`` at once: each step is
       one ``predict_proba`` call on the (pairs still open, d) batch of midpoints; the
       side whose predicted class is a's moves to the midpoint. A pair is done at the
       first point evaluated (endpoints included) whose top-two margin ``p1 - p2`` is
       below ``tol``.

    A pair is dropped, and said so in ``shortfall``, when no such point is found within
    ``max_iter`` steps, or when the midpoint in the embeddings' dtype can no longer move
    (the class jumps between two adjacent representable points, each with margin
    >= tol: a model that is not continuous there). The result may then hold fewer than n
    points, as it does when fewer than n candidate pairs exist.

    Parameters
    ----------
    embeddings : array-like of shape (N, d)
        float32 or float64 (kept: the model sees, and the result holds, points of this
        dtype), finite, N >= 2. Neighbours are searched on float32 rows; float64
        embeddings that float32 cannot hold exactly are centred on their float64 mean
        first.
    predict_proba : callable
        ``predict_proba(batch)`` with batch an (m, d) array of the embeddings' dtype,
        returning (m, C) class probabilities (finite, in [0, 1], rows summing to 1 within
        1e-3), e.g. a scikit-learn classifier's ``predict_proba``. Any other output, or an
        exception, raises :class:`alcore.InvalidInputError` naming the call.
    n : int
        Points wanted (pairs bisected), >= 1.
    labels : array-like of shape (N,), optional
        True classes (integers, strings or finite floats): pairs are chosen across true
        classes instead of predicted ones.
    tol : float
        In (0, 1]: the largest top-two margin accepted as "on the boundary".
    neighbors : int
        How many nearest items of each item are candidates (capped at N - 1).
    normalize : bool
        For cosine embeddings: the items are divided by their norms (zero rows are
        refused), neighbours are found among those unit rows, and every point the model
        is shown (and returned) is ``x(lam) / |x(lam)|``, so the bisection runs along the
        great circle through a and b (``lam`` stays the chord's parameter).
    max_iter : int
        Bisection steps at most (>= 1). A float64 segment halves to its last bit in about
        53 steps, a float32 one in about 24.
    seed : None, int or numpy.random.Generator
        Which pairs are chosen.

    Returns
    -------
    SyntheticPoints
        ``points`` (m, d) in the embeddings' dtype, ``source`` int64 (m, 2) the pair's
        rows (a < b), ``lam`` float64 (m,) in [0, 1], ``margin`` float64 (m,) < tol (the
        model's own output at the returned point), ``model_calls`` (every call, including
        the classification of the items), ``method="boundary"``, ``shortfall``.
    """
    x = v.float_array(embeddings, "embeddings")
    x32 = v.embeddings_matrix(x)
    n_items, d = x.shape
    n = v.count(n, "n")
    tol = v.number(tol, "tol", low=0.0, high=1.0, low_open=True,
                   hint="the largest top-two margin p1 - p2 accepted, e.g. 1e-3")
    neighbors = v.count(neighbors, "neighbors")
    normalize = v.flag(normalize, "normalize")
    max_iter = v.count(max_iter, "max_iter")
    gen = v.rng(seed)
    model = _Model(predict_proba)
    if n_items < 2:
        raise InvalidInputError(
            "embeddings has 1 item; boundary needs at least 2 (pairs of nearby items)")
    values, codes = (None, None) if labels is None else class_codes(labels, n_items)
    dtype = x.dtype
    if normalize:
        norms = _distances.row_norms(x)
        zero = np.flatnonzero(norms == 0)
        if len(zero):
            raise InvalidInputError(
                f"embeddings row {zero[0]} has zero norm, so it has no direction to "
                f"normalise; drop it or pass normalize=False")
        work = (x / norms[:, None]).astype(dtype)  # the rows exactly as the model sees them
    else:
        work = x
    x32 = search_rows(work, "embeddings")  # float64: centred before rounding

    cls = np.full(n_items, -1, dtype=np.int64)
    margin = np.full(n_items, np.nan)
    if codes is None:
        cls[:], margin[:] = _predict_rows(model, work, np.arange(n_items))
        group = cls
        if np.all(cls == cls[0]):
            raise InvalidInputError(
                f"predict_proba predicts class {cls[0]} for all {n_items} items, so no "
                f"pair of items with different classes exists; boundary needs items the "
                f"model puts on both sides of its decision boundary (pass labels= to pair "
                f"items by their true classes)")
    else:
        group = codes
        if len(values) < 2:
            raise InvalidInputError(
                f"labels holds one class ({v.shown(values[0])}) for all {n_items} items, so "
                f"no pair of items with different classes exists")

    k = min(neighbors, n_items - 1)
    kind = "predicted" if codes is None else "labeled"

    def model_agrees(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """With labels: the model's classes of new endpoints (batched), and whether it
        puts the two ends of each pair in different classes too."""
        ends = np.unique(np.concatenate([a, b]))
        ends = ends[cls[ends] < 0]
        if len(ends):
            cls[ends], margin[ends] = _predict_rows(model, work, ends)
        return cls[a] != cls[b]

    a, b, left_out = _candidate_pairs(x32, group, k, n, gen,
                                      None if codes is None else model_agrees)
    if not len(a):
        if left_out:
            raise InvalidInputError(
                f"predict_proba puts both items of each of the {left_out} nearby pairs with "
                f"different labels in one class, so the model's boundary does not cross "
                f"any of them")
        raise InvalidInputError(
            f"no item has a neighbour of another {kind} class among its {k} nearest, so no "
            f"pair to bisect exists; raise neighbors= (now {neighbors})")
    notes = []
    if len(a) < n:
        notes.append(f"only {len(a)} pairs of nearby items with different {kind} classes "
                     f"exist among each item's {k} nearest (raise neighbors= for more)")
        if left_out:
            notes.append(f"{left_out} nearby pairs with different labels are predicted one "
                         f"class at both ends and were left out")
    chosen = _choose_pairs(a, b, n, n_items, gen)
    a, b = a[chosen], b[chosen]
    pairs = len(a)

    side = cls[a]  # the class of the a end; the other end's class differs
    lo, hi = np.zeros(pairs), np.ones(pairs)
    lo_pts, hi_pts = work[a].copy(), work[b].copy()
    lam = np.full(pairs, np.nan)
    got = np.full(pairs, np.nan)
    points = np.empty((pairs, d), dtype=dtype)
    at_a = margin[a] < tol
    at_b = ~at_a & (margin[b] < tol)
    lam[at_a], got[at_a], points[at_a] = 0.0, margin[a][at_a], lo_pts[at_a]
    lam[at_b], got[at_b], points[at_b] = 1.0, margin[b][at_b], hi_pts[at_b]
    open_ = ~(at_a | at_b)
    stuck = np.zeros(pairs, dtype=bool)
    a64, b64 = work[a].astype(np.float64), work[b].astype(np.float64)
    for _ in range(max_iter):
        act = np.flatnonzero(open_)
        if not len(act):
            break
        mid = (lo[act] + hi[act]) / 2
        pts = _on_segment(a64[act], b64[act], mid, normalize, dtype)
        frozen = (pts == lo_pts[act]).all(axis=1) | (pts == hi_pts[act]).all(axis=1)
        stuck[act[frozen]] = True
        open_[act[frozen]] = False
        act, mid, pts = act[~frozen], mid[~frozen], pts[~frozen]
        if not len(act):
            continue
        # A copy: a model that scales its input in place must not move the points kept.
        c_mid, m_mid = _top_two(model(pts.copy()))
        done = m_mid < tol
        lam[act[done]], got[act[done]], points[act[done]] = mid[done], m_mid[done], pts[done]
        open_[act[done]] = False
        towards_b = ~done & (c_mid == side[act])  # still a's class: the boundary is beyond
        lo[act[towards_b]], lo_pts[act[towards_b]] = mid[towards_b], pts[towards_b]
        towards_a = ~done & ~towards_b
        hi[act[towards_a]], hi_pts[act[towards_a]] = mid[towards_a], pts[towards_a]
    if open_.any():
        notes.append(f"{int(open_.sum())} pairs reached no point with margin < {tol:g} "
                     f"within max_iter={max_iter} bisection steps and were dropped")
    if stuck.any():
        notes.append(f"{int(stuck.sum())} pairs were dropped where the predicted class "
                     f"jumps between two adjacent representable points with margin >= "
                     f"{tol:g} on both (the model is not continuous there)")
    keep = ~np.isnan(lam)
    shortfall = None
    if int(keep.sum()) < n:
        shortfall = f"{int(keep.sum())} of {n} points: " + "; ".join(notes)
    return SyntheticPoints(
        points=points[keep], source=np.stack([a[keep], b[keep]], axis=1).astype(np.int64),
        lam=lam[keep], method="boundary", margin=got[keep], model_calls=model.calls,
        shortfall=shortfall)


__all__ = ["boundary"]

v.guard_signatures(globals())
