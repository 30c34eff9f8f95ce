"""Diversity at pool scale: batches that cover the embedding space, not just the most
uncertain corner of it.

:func:`kcenter` is the greedy k-center (core-set) selection: exact, native; O(N) memory
beside the embeddings plus, on unstructured data, an int8 copy (a quarter of their size).
:func:`badge` samples diverse, uncertain items in gradient-embedding space (BADGE).
:func:`typiclust` picks the most typical item of each large uncovered cluster (TypiClust).
:func:`probcover` picks the items whose radius-balls cover the most uncovered pool (ProbCover).
:func:`cluster_margin` spreads the most uncertain items over clusters (Cluster-Margin).
:func:`spread` thins a ranking (e.g. by uncertainty) so that no two picks are closer than a
minimum distance.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from alcore import _core, _distances, _faiss, scores
from alcore import _validation as v
from alcore._errors import InvalidInputError
from alcore._progress import ProgressCallback, reporter

_METRICS = ("l2", "cosine")


def _validated_scores(x: np.ndarray, is_logits: bool, name: str, code: int) -> np.ndarray:
    """Score every row natively (0 = least confidence, 1 = margin), which checks every
    value (finite, probabilities in [0, 1] summing to 1 within 1e-3)."""
    try:
        return _core.score_rows(x, code, is_logits, False, 1e-3, False)
    except _core.InvalidValue as err:
        raise v.invalid_value_error(err, name, atol=1e-3) from None


def _unit_rows(x: np.ndarray, skip: np.ndarray | None = None) -> np.ndarray:
    """x with L2-normalised rows; rows flagged in ``skip`` (bool, items left out of the
    pool) are divided by 1 instead, so a zero row there is no error."""
    # float64 norms: a float32 row like [1e-45, 0] squares to 0 in float32 but is not zero.
    norms = _distances.row_norms(x)
    if skip is not None:
        norms[skip] = 1.0
    zero = np.flatnonzero(norms == 0)
    if zero.size:
        raise InvalidInputError(
            f"embeddings row {zero[0]} has zero norm, so its cosine distance is undefined; "
            f"drop it or use metric='l2'"
        )
    # Divided in float64 a block at a time (subnormal rows too), O(block) temporaries.
    out = np.empty(x.shape, dtype=np.float32)
    step = max(1, (1 << 20) // max(x.shape[1], 1))
    for start in range(0, x.shape[0], step):
        out[start:start + step] = x[start:start + step] / norms[start:start + step, None]
    return out


def _metric(metric: Any) -> str:
    return v.choice(metric, "metric", _METRICS)


def _kept_rows(masks: v.ItemMasks) -> np.ndarray | None:
    """The rows that stay in the pool once excluded (not labeled) items are removed, or
    None when nothing is removed. Excluded items are neither picked nor covered, and they
    do not count in cluster sizes, coverage gains or radii: the pool is as if they were
    not in it."""
    if masks.never is None or masks.n_never == masks.n_labeled:
        return None
    drop = masks.never.view(bool)
    if masks.labeled is not None:
        drop = drop & ~masks.labeled.view(bool)
    return np.flatnonzero(~drop)


def _without_excluded(x: np.ndarray, masks: v.ItemMasks
                      ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """The pool without its excluded rows: (rows of x kept, C-contiguous; the kept row
    numbers or None when nothing is removed; the labeled mask (bool) on the kept rows or
    None)."""
    keep = _kept_rows(masks)
    if keep is not None:
        x = np.ascontiguousarray(x[keep])
    if masks.labeled is None:
        return x, keep, None
    mask = masks.labeled.view(bool)
    return x, keep, (mask if keep is None else mask[keep])


def kcenter(embeddings: Any, k: int, *, labeled: Any = None, exclude: Any = None,
            metric: str = "l2", seed: int | np.random.Generator | None = 0,
            progress: ProgressCallback | None = None, verbose: bool = False) -> np.ndarray:
    """Greedy k-center selection (farthest-first traversal; Sener & Savarese 2018).

    Repeatedly picks the item farthest from every labeled or already picked item.

    Parameters
    ----------
    embeddings : array-like of shape (N, d)
        float32 (float64 is converted once). Must be finite.
    k : int
        Items to pick, 1 <= k <= N - number labeled or excluded.
    labeled : array-like, optional
        Boolean mask of shape (N,), unique indices, or scikit-activeml's ``y`` (float,
        NaN = unlabeled): the labeled items, the initial centers. Never picked. Items
        queued for annotation but not labeled yet belong here too.
    exclude : array-like, optional
        Boolean mask or unique indices of items never to pick that cover nothing
        (unlabelable or corrupt items): they are left out of the pool.
    metric : {"l2", "cosine"}
        ``"cosine"`` runs on L2-normalised rows (same order as cosine distance).
    seed : None, int or numpy.random.Generator
        Used only without labeled items: the first pick is drawn uniformly at random; every
        later pick is deterministic.
    progress : callable, optional
        ``progress(done, k)``, called about every 1 % of the picks.
    verbose : bool
        Draw a progress bar on stderr.

    Returns
    -------
    numpy.ndarray of int64, shape (k,)
        The picks, in pick order.

    Notes
    -----
    Exact: the picks are those of the plain running-minimum greedy on the same float32
    distances (ties go to the lower index), whatever the thread count. Each pick is one
    pass over the items that skips an item when either of two rigorous bounds shows the new
    center cannot get closer to it, and computes the exact distance for the rest: the
    triangle inequality against the item's nearest center (pays off on clustered data), and
    a lower bound from an int8 copy of the centred embeddings (pays off on any data,
    isotropic included; the pass then reads about a quarter of the float32 matrix). More
    than 256 labeled items are assigned through 128 of them and the same triangle bound, or
    in one blocked pass where the data has no structure.

    Memory beside the embeddings: 8 bytes an item; once the data shows no cluster structure
    (and d >= 16), the int8 copy, (d rounded up to 16) + 20 bytes an item, about a quarter
    of float32 embeddings (148 MB at 1M x 128); with over 256 labeled items, 1 KB per
    labeled item; plus one copy of the kept rows when ``exclude`` is given. Parallel over
    ``alcore.set_num_threads`` threads.
    """
    x = v.embeddings_matrix(embeddings)
    n = x.shape[0]
    k = v.count(k)
    metric = _metric(metric)
    masks = v.item_masks(n, "embeddings", labeled=labeled, exclude=exclude, k=k)
    generator = v.rng(seed)
    report = reporter(progress, v.flag(verbose, "verbose"), "k-center")
    x, keep, lab = _without_excluded(x, masks)
    if metric == "cosine":
        x = _unit_rows(x)
    initial = (np.flatnonzero(lab).astype(np.int64) if lab is not None
               else np.empty(0, dtype=np.int64))
    first = int(generator.integers(x.shape[0])) if masks.n_labeled == 0 else 0
    indices, _ = _core.kcenter(x, initial, k, first, report, True)
    return indices if keep is None else keep[indices]


# Candidates checked per batch in spread(): one index search for the whole batch.
_SPREAD_BATCH = 4096


def _score_vector(scores: Any, n: int) -> np.ndarray:
    arr = v.float_array(scores, "scores")
    if arr.ndim != 1 or arr.shape[0] != n:
        raise InvalidInputError(
            f"scores must be 1-D with one score per item, shape ({n},), got shape {arr.shape}"
        )
    finite = np.isfinite(arr)
    if not finite.all():
        bad = int(np.flatnonzero(~finite)[0])
        raise InvalidInputError(
            f"scores must be finite: scores[{bad}] is {arr[bad]}; leave such items out with "
            f"exclude= (after replacing the value, e.g. numpy.nan_to_num(scores, nan=0.0))"
        )
    return arr


def spread(scores: Any, embeddings: Any, k: int, *, min_distance: float,
           labeled: Any = None, exclude: Any = None, metric: str = "l2") -> np.ndarray:
    """Walk the items by descending score and take each one at least ``min_distance`` from
    everything already taken or labeled (the coverage constraint), until k are taken.

    Parameters
    ----------
    scores : array-like of shape (N,)
        float32 or float64, finite; higher = wanted first. Equal scores go to the lower
        index first (as :func:`alcore.top_k`).
    embeddings : array-like of shape (N, d)
        float32 (float64 converted once), finite.
    k : int
        Items to take, >= 1.
    min_distance : float
        Smallest allowed distance (L2; for ``metric="cosine"``, between normalised rows)
        between two taken items, or a taken and a labeled one, >= 0. 0 takes the top k.
    labeled : array-like, optional
        Boolean mask, unique indices or scikit-activeml's ``y`` (NaN = unlabeled): never
        taken, and they count as taken for the constraint (so do items queued for
        annotation: pass them here).
    exclude : array-like, optional
        Boolean mask or unique indices of items never taken that constrain nothing.
    metric : {"l2", "cosine"}

    Returns
    -------
    numpy.ndarray of int64
        The taken items in walk order; fewer than k when every remaining item is within
        ``min_distance`` of a taken or labeled one.

    Notes
    -----
    Exact: the result is that of checking every candidate, in order, against every item
    taken or labeled before it. The check compares squared distances, both in float64: a
    candidate is taken when, for every such item, the sum of the squared float64
    differences of the two float32 rows (normalised rows for ``"cosine"``) is
    ``>= min_distance * min_distance`` (the float64 square of ``min_distance``). So a pair
    at a squared distance equal to that square is allowed (points at distance 1 with
    ``min_distance=1``), and the square decides where ``min_distance`` itself is rounded: a
    pair at distance exactly sqrt(2) (squared distance 2.0) is *not* allowed with
    ``min_distance=numpy.sqrt(2)``, whose float64 square is 2.0000000000000004, and is
    allowed with ``min_distance=numpy.nextafter(numpy.sqrt(2), 0)`` (square
    1.9999999999999996). Float32 expanded-form distances only pre-decide pairs their error
    bound (``alcore._distances``) clears; every other pair is decided by that float64
    comparison.
    """
    x = v.embeddings_matrix(embeddings)
    n = x.shape[0]
    s = _score_vector(scores, n)
    k = v.count(k)
    radius = v.number(min_distance, "min_distance", low=0.0)
    metric = _metric(metric)
    masks = v.item_masks(n, "embeddings", labeled=labeled, exclude=exclude)
    if metric == "cosine":
        # Excluded items take no part: a zero row there is not an error (as in kcenter).
        keep = _kept_rows(masks)
        skip = None
        if keep is not None:
            skip = np.ones(n, dtype=bool)
            skip[keep] = False
        x = _unit_rows(x, skip)
    order = np.lexsort((np.arange(n), -s.astype(np.float64)))
    if masks.never is not None:
        order = order[masks.never[order] == 0]
    radius_sq = radius * radius
    d = x.shape[1]
    centred = _distances.centre(x)
    rows, norms = centred.rows, centred.norms
    # Labeled, then taken items: what a candidate must keep its distance from.
    anchors = (np.flatnonzero(masks.labeled) if masks.labeled is not None
               else np.empty(0, dtype=np.int64))
    index = _faiss.GrowingIndex(d)
    index.add(rows[anchors])
    anchor_norm = float(norms[anchors].max()) if len(anchors) else 0.0
    taken: list[int] = []
    for start in range(0, len(order), _SPREAD_BATCH):
        batch = order[start:start + _SPREAD_BATCH]
        keep = np.ones(len(batch), dtype=bool)
        if len(anchors):
            # FAISS's nearest anchor by the float32 expanded form: the reported distance
            # overestimates the true minimum by at most the bound of the reported pair, and
            # underestimates it by at most the bound of any anchor (the largest norm).
            approx, nearest = index.nearest(rows[batch])
            upper = approx + _distances.bound(d, norms[batch], norms[anchors[nearest]])
            lower = approx - _distances.bound(d, norms[batch], anchor_norm)
            keep = lower >= radius_sq
            open_ = np.flatnonzero(~keep & (upper >= radius_sq))
            if len(open_):
                keep[open_] = _distances.exact_min_sq(x, batch[open_], anchors) >= radius_sq
        survivors = batch[keep]
        chosen = _spread_walk(x, rows[survivors], norms[survivors], survivors, radius_sq,
                              k - len(taken))
        picked = survivors[chosen]
        taken.extend(picked.tolist())
        index.add(rows[picked])
        anchors = np.concatenate([anchors, picked])
        if len(picked):
            anchor_norm = max(anchor_norm, float(norms[picked].max()))
        if len(taken) == k:
            break
    return np.array(taken, dtype=np.int64)


def _spread_walk(x: np.ndarray, rows: np.ndarray, norms: np.ndarray, items: np.ndarray,
                 radius_sq: float, k: int) -> np.ndarray:
    """Positions of the candidates ``items`` (in walk order, each already far enough from
    every earlier anchor) taken when they are also checked against each other: candidate j
    is taken unless an earlier taken candidate is within the radius. One vectorised pass
    over the later candidates per taken one: O(m d) per taken item."""
    m = len(items)
    rows = np.ascontiguousarray(rows)
    sq = _distances.sq_norms32(rows).astype(np.float64)
    d = rows.shape[1]
    alive = np.ones(m, dtype=bool)
    chosen: list[int] = []
    for j in range(m):
        if not alive[j]:
            continue
        chosen.append(j)
        if len(chosen) == k or j + 1 == m:
            break
        rest = slice(j + 1, m)
        # einsum rather than BLAS gemv: no wait on a busy BLAS thread pool per taken item.
        dots = np.einsum("ij,j->i", rows[rest], rows[j]).astype(np.float64)
        approx = sq[rest] + sq[j] - 2.0 * dots
        err = _distances.bound(d, norms[rest], norms[j])
        later = items[j + 1:]
        close = _distances.less_than(
            approx, err, radius_sq,
            lambda pos, later=later, j=j: _distances.exact_sq(
                x, later[pos], np.full(len(pos), items[j])))
        alive[rest] &= ~close
    return np.array(chosen, dtype=np.int64)


def badge(probs: Any, embeddings: Any, k: int, *, logits: bool = False, labeled: Any = None,
          exclude: Any = None, seed: int | np.random.Generator | None = 0,
          progress: ProgressCallback | None = None, verbose: bool = False) -> np.ndarray:
    """BADGE batch selection (Ash et al. 2020): k-means++ seeding on gradient embeddings.

    Item i's gradient embedding is ``g_i = (onehot(argmax p_i) - p_i) ⊗ h_i`` (the gradient
    of the cross-entropy loss at the predicted label with respect to the last layer). The
    first pick is the item with the largest ``|g_i|``; each later pick is drawn with
    probability proportional to its squared distance to the nearest pick so far.

    Parameters
    ----------
    probs : array-like of shape (N, C)
        Class probabilities, float32 or float64 (logits with ``logits=True``).
    embeddings : array-like of shape (N, d)
        Penultimate-layer embeddings h.
    k : int
        Batch size.
    logits : bool
        ``probs`` holds raw model outputs (softmax is applied).
    labeled : array-like, optional
        Boolean mask, unique indices or scikit-activeml's ``y`` (NaN = unlabeled): never
        picked. As in the paper, the seeding runs on the unlabeled pool only, so labeled
        items are not centres.
    exclude : array-like, optional
        Boolean mask or unique indices of further items never to pick.
    seed : None, int or numpy.random.Generator
        Drives the D² sampling.
    progress, verbose
        ``progress(done, k)`` after each pick; a bar on stderr.

    Returns
    -------
    numpy.ndarray of int64, shape (k,)
        The picks, in pick order.

    Notes
    -----
    The N x (C·d) gradient matrix is never formed:
    ``|g_i - g_j|^2 = |a_i|^2 |h_i|^2 + |a_j|^2 |h_j|^2 - 2 (a_i·a_j)(h_i·h_j)`` with
    ``a = onehot - p``, so a pick costs two matrix-vector products, O(N (C + d)), in
    float64. Distances within that form's error bound of 0 (``alcore._distances.bound64``)
    are recomputed from the difference of the two gradients, O(C d) each. Items at
    distance 0 from every pick (duplicates) are left for last; if only such items remain,
    the lowest index is taken. Unlike scikit-activeml's ``Badge``, which seeds
    k-means++ with the origin as a centre, the first pick here is the largest gradient, as in
    the paper's reference implementation.
    """
    return _badge_with_distances(probs, embeddings, k, logits=logits, labeled=labeled,
                                 exclude=exclude, seed=seed, progress=progress,
                                 verbose=verbose).indices


class _BadgePicks(NamedTuple):
    """:func:`badge`'s picks with the numbers that explain each one (all shape (k,))."""

    indices: np.ndarray
    """int64: the picks, in pick order."""
    sq_distance: np.ndarray
    """float64: each pick's squared gradient-embedding distance to the nearest earlier pick
    when it was drawn (its D^2 weight; inf for the first pick, 0 for a pick among
    duplicates)."""
    sq_norm: np.ndarray
    """float64: each pick's squared gradient norm |g|^2 (the first pick has the largest)."""


def _badge_with_distances(probs: Any, embeddings: Any, k: int, *, logits: bool = False,
                          labeled: Any = None, exclude: Any = None,
                          seed: int | np.random.Generator | None = 0,
                          progress: ProgressCallback | None = None,
                          verbose: bool = False) -> _BadgePicks:
    """:func:`badge` (same arguments), also returning each pick's D^2 and |g|^2."""
    x, is_logits, name = v.outputs_matrix(probs, logits)
    _validated_scores(x, is_logits, name, 0)  # every row checked natively
    p = scores._softmax(x.astype(np.float64)) if is_logits else x.astype(np.float64)
    h = v.embeddings_matrix(embeddings).astype(np.float64)
    n = p.shape[0]
    if h.shape[0] != n:
        raise InvalidInputError(
            f"embeddings has {h.shape[0]} rows but {name} has {n}; pass one row per item"
        )
    k = v.count(k)
    masks = v.item_masks(n, name, labeled=labeled, exclude=exclude, k=k)
    generator = v.rng(seed)
    report = reporter(progress, v.flag(verbose, "verbose"), "BADGE")
    a = -p
    a[np.arange(n), p.argmax(axis=1)] += 1.0
    a_sq = np.einsum("ij,ij->i", a, a)
    h_sq = np.einsum("ij,ij->i", h, h)
    g_sq = a_sq * h_sq
    available = np.ones(n, dtype=bool) if masks.never is None else masks.never == 0
    first = int(np.argmax(np.where(available, g_sq, -1.0)))
    picks = [first]
    drawn_at = [np.inf]  # each pick's D^2 weight when it was drawn
    nearest = np.full(n, np.inf)
    g_norm = np.sqrt(g_sq)
    terms = a.shape[1] + h.shape[1] + 1
    for step in range(1, k):
        if report is not None:
            report(step, k)
        c = picks[-1]
        dist = g_sq + g_sq[c] - 2.0 * (a @ a[c]) * (h @ h[c])
        # Within the float64 error bound of 0 (near-duplicate gradients of the pick): the
        # exact value from the difference of the two outer products, so duplicates weigh 0.
        open_ = np.flatnonzero(dist <= _distances.bound64(terms, g_norm, g_norm[c]))
        if len(open_):
            diff = (a[open_, :, None] * h[open_, None, :]) - np.outer(a[c], h[c])[None]
            dist[open_] = np.einsum("ijk,ijk->i", diff, diff)
        np.minimum(nearest, np.maximum(dist, 0.0), out=nearest)
        available[c] = False
        weights = np.where(available, nearest, 0.0)
        total = weights.sum()
        if total > 0:
            cumulative = np.cumsum(weights)
            pick = int(np.searchsorted(cumulative, generator.random() * cumulative[-1],
                                       side="right"))
            pick = min(pick, n - 1)
            while not available[pick] or weights[pick] == 0:  # guard the float edge
                pick -= 1
        else:
            pick = int(np.argmax(available))
        picks.append(pick)
        drawn_at.append(float(nearest[pick]))
    if report is not None:
        report(k, k)
    indices = np.array(picks, dtype=np.int64)
    return _BadgePicks(indices, np.array(drawn_at), g_sq[indices])


# Clusters up to this size get their typicality from float64 distances alone; larger ones
# from a float32 FAISS search whose rows the error bound leaves open are redone in float64.
_DENSE_TYPICALITY_MAX = 2048
# Entries of a float64 (rows x members) distance block: 2^22 float64 = 32 MB, so a cluster
# of up to 2048 members takes one block.
_TYPICALITY_BLOCK = 1 << 22


def _typicality(x: np.ndarray, members: np.ndarray, n_neighbors: int) -> np.ndarray:
    """1 / mean distance to the n_neighbors nearest other members (exact, within the
    cluster); a single member gets 1. Float64-exact at every cluster size: equal to the
    mean of the k smallest distances from float64 differences of the float32 rows, so
    equal mean distances (ties) are equal bit for bit and go to the lower index."""
    m = len(members)
    if m == 1:
        return np.ones(1)
    k = min(n_neighbors, m - 1)
    if m <= _DENSE_TYPICALITY_MAX:
        mean = _mean_knn_float64(x, members, k, np.arange(m))
    else:
        mean = _mean_knn_searched(x, members, k)
    return 1.0 / np.maximum(mean, np.finfo(np.float64).tiny)


def _most_typical(x: np.ndarray, members: np.ndarray, free: np.ndarray,
                  n_neighbors: int) -> int:
    """Position in ``members`` of the most typical free member (``free``: bool, one per
    member, at least one True): the argmax of :func:`_typicality` over the free members,
    the lower position among equals, without the float64-difference recomputation for
    the members that cannot win.

    For a cluster of up to ``_DENSE_TYPICALITY_MAX`` members the float64 expanded form on
    the centred members gives every row's k nearest squared distances within ``err``
    (the bound of :func:`_mean_knn_float64`), hence distances within ``sqrt(err)``
    (``|sqrt(a) - sqrt(b)| <= sqrt(|a - b|)``) and the mean of the k smallest within
    ``sqrt(err)`` too (a mean of order statistics moves at most as far as its inputs).
    Only the free rows whose interval can reach the smallest upper end are recomputed
    exactly, by the code :func:`_typicality` uses, so the pick is the same bit for bit;
    on real data that is one or a few rows instead of all of them, which made the
    recomputation most of TypiClust's typicality time."""
    m = len(members)
    if m == 1 or m > _DENSE_TYPICALITY_MAX:
        typicality = _typicality(x, members, n_neighbors)
        typicality[~free] = -np.inf
        return int(np.argmax(typicality))
    k = min(n_neighbors, m - 1)
    points = x[members].astype(np.float64)
    points -= points.mean(axis=0)
    sq_norm = np.einsum("ij,ij->i", points, points)
    norm = np.sqrt(sq_norm)
    err = 2.0 * _distances.bound64(x.shape[1], norm, norm.max())
    rows = np.flatnonzero(free)
    # Every member free (a cluster's first pick, nothing labeled in it): no gathers, which
    # took as long as the product itself at ~100 members.
    every = len(rows) == m
    sq = (points if every else points[rows]) @ points.T
    sq *= -2
    sq += (sq_norm if every else sq_norm[rows])[:, None]
    sq += sq_norm[None, :]
    sq[np.arange(len(rows)), rows] = np.inf  # an item is not its own neighbour
    nearest = np.partition(sq, k - 1, axis=1)[:, :k]
    approx = np.sqrt(np.maximum(nearest, 0)).mean(axis=1)
    # sqrt(err) for the distances, plus room for the rounding of the sqrt and the mean.
    slack = np.sqrt(err[rows]) + 1e-12 * approx
    contenders = np.flatnonzero(approx - slack <= (approx + slack).min())
    block = rows[contenders]
    kth = np.max(nearest[contenders], axis=1)
    r, c = np.nonzero(sq[contenders] <= (kth + 2.0 * err[block])[:, None])
    mean = _mean_of_k_nearest(x, members, k, block, r, c)
    typicality = 1.0 / np.maximum(mean, np.finfo(np.float64).tiny)
    return int(block[int(np.argmax(typicality))])


def _mean_of_k_nearest(x: np.ndarray, members: np.ndarray, k: int, rows: np.ndarray,
                       r: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """For members[rows], the mean of the k smallest exact distances among candidate pairs
    (``r``: sorted positions into ``rows``, each row at least k times; ``cols``: positions
    into ``members``), from float64 differences, summed smallest first (equal distances,
    equal sums, in every row)."""
    dist = np.sqrt(_distances.exact_sq(x, members[rows[r]], members[cols]))
    order = np.lexsort((dist, r))
    first = np.searchsorted(r, np.arange(len(rows)))
    return dist[order][first[:, None] + np.arange(k)].sum(axis=1) / k


def _mean_knn_float64(x: np.ndarray, members: np.ndarray, k: int,
                      rows: np.ndarray) -> np.ndarray:
    """Mean distance of members[rows] to their k nearest other members, from blocks of
    rows against every member in float64: the float64 expanded form on the centred
    members finds, per row, every member that can be among its k nearest (within twice
    the error bound of the k-th value: ``alcore._distances.bound64`` for the product,
    doubled for the centring's rounding); those are recomputed from float64 differences.
    O(block) memory, O(len(rows) m d) time."""
    m = len(members)
    points = x[members].astype(np.float64)
    points -= points.mean(axis=0)
    sq_norm = np.einsum("ij,ij->i", points, points)
    norm = np.sqrt(sq_norm)
    # One bound per row (with the largest norm): a vector, not another matrix.
    err = 2.0 * _distances.bound64(x.shape[1], norm, norm.max())
    mean = np.empty(len(rows))
    step = max(1, _TYPICALITY_BLOCK // m)
    for lo in range(0, len(rows), step):
        block = rows[lo:lo + step]
        sq = points[block] @ points.T
        sq *= -2
        sq += sq_norm[block, None]
        sq += sq_norm[None, :]
        sq[np.arange(len(block)), block] = np.inf  # an item is not its own neighbour
        mean[lo:lo + step] = _mean_of_block(x, members, k, block, sq, err[block])
    return mean


def _mean_of_block(x: np.ndarray, members: np.ndarray, k: int, block: np.ndarray,
                   sq: np.ndarray, err: np.ndarray) -> np.ndarray:
    """:func:`_mean_knn_float64` for one block: ``sq`` (len(block), m) expanded-form
    squared distances with error at most ``err`` per row, inf at each row's own column.

    Each row's 2k + 8 smallest are recomputed first; a row is done when no other member
    can be nearer than its k-th exact distance (its next expanded value minus the error
    is not below it). Otherwise every member within twice the error of the k-th is
    recomputed, which for a cluster of many duplicates is nearly all of them: the first
    step keeps such clusters linear."""
    m = sq.shape[1]
    tried = min(m - 1, 2 * k + 8)
    mean = np.empty(len(block))
    rest = np.arange(len(block))
    if tried < m - 1:
        part = np.argpartition(sq, tried, axis=1)[:, :tried + 1]
        values = np.take_along_axis(sq, part, axis=1)
        order = np.argsort(values, axis=1, kind="stable")
        part = np.take_along_axis(part, order, axis=1)
        following = np.take_along_axis(values, order[:, tried:], axis=1)[:, 0]
        near = part[:, :tried]
        exact = _distances.exact_sq(x, np.repeat(members[block], tried),
                                    members[near.ravel()]).reshape(len(block), tried)
        exact.sort(axis=1)
        kth = exact[:, k - 1]
        # 1e-12 covers the rounding of the float64 differences themselves; exact distances
        # are never below 0, so a k-th of 0 is final.
        done = (kth == 0) | (np.maximum(following - err, 0.0) * (1 - 1e-12) >= kth)
        mean[done] = np.sqrt(exact[done, :k]).sum(axis=1) / k
        rest = np.flatnonzero(~done)
    if len(rest):
        sub = sq[rest]
        kth = np.partition(sub, k - 1, axis=1)[:, k - 1]
        r, c = np.nonzero(sub <= (kth + 2.0 * err[rest])[:, None])
        mean[rest] = _mean_of_k_nearest(x, members, k, block[rest], r, c)
    return mean


def _mean_knn_searched(x: np.ndarray, members: np.ndarray, k: int) -> np.ndarray:
    """As :func:`_mean_knn_float64` for a large cluster: a float32 FAISS search on the
    centred members returns each row's k + extra nearest; where the bound of
    ``alcore._distances`` proves that no member left out can be among the k nearest (the
    last returned distance exceeds the k-th by more than twice the bound), the returned
    ones within twice the bound of the k-th are recomputed from float64 differences and
    the k smallest kept; the other rows are redone by :func:`_mean_knn_float64`."""
    m, d = len(members), x.shape[1]
    sub = np.ascontiguousarray(x[members])
    norms = _distances.centre(sub).norms  # the rows knn searches: the same centring
    wanted = min(m, 2 * k + 9)
    sq_knn, ids = _faiss.knn(sub, wanted, _faiss.IndexChoice("flat"), 0)
    is_self = ids == np.arange(m)[:, None]
    is_self[~is_self.any(axis=1), -1] = True  # self not returned (duplicates): drop last
    approx = sq_knn[~is_self].reshape(m, wanted - 1).astype(np.float64)
    others = ids[~is_self].reshape(m, wanted - 1)
    err = _distances.bound(d, norms, float(norms.max()))
    kth = approx[:, k - 1]
    settled = (approx[:, -1] - err > kth + err) | (wanted == m)
    mean = np.empty(m)
    rows = np.flatnonzero(settled)
    if len(rows):
        r, c = np.nonzero(approx[rows] <= (kth[rows] + 2.0 * err[rows])[:, None])
        mean[rows] = _mean_of_k_nearest(x, members, k, rows, r, others[rows][r, c])
    rest = np.flatnonzero(~settled)
    if len(rest):
        mean[rest] = _mean_knn_float64(x, members, k, rest)
    return mean


# The authors' reference implementation caps the clustering at this many clusters
# (TypiClust.MAX_NUM_CLUSTERS = 500 in github.com/avihu111/TypiClust,
# deep-al/pycls/al/typiclust.py), using min(n_labeled + k, cap).
MAX_CLUSTERS = 500


def typiclust(embeddings: Any, k: int, *, labeled: Any = None, exclude: Any = None,
              seed: int | np.random.Generator | None = 0, n_neighbors: int = 20,
              clusters: Any = None, max_clusters: int = MAX_CLUSTERS,
              progress: ProgressCallback | None = None, verbose: bool = False) -> np.ndarray:
    """TypiClust (Hacohen et al. 2022, TPC-RP): cover the pool's clusters with their most
    typical items.

    The pool is clustered into ``min(n_labeled + k, max_clusters)`` clusters (FAISS
    k-means); then, k times, the largest cluster holding no labeled or picked item gives
    up its most typical unlabeled member, typicality being 1 / mean distance to the
    ``n_neighbors`` nearest other members of the cluster. Once every cluster holds one,
    the clusters holding the fewest labeled or picked items come first (largest first
    among those), as the authors' code orders clusters by their labeled count.

    Parameters
    ----------
    embeddings : array-like of shape (N, d)
        float32 (float64 converted once), finite.
    k : int
        Batch size.
    labeled : array-like, optional
        Boolean mask, unique indices or scikit-activeml's ``y`` (NaN = unlabeled) of
        labeled items (they cover their clusters; never picked).
    exclude : array-like, optional
        Boolean mask or unique indices of items never to pick that cover nothing: they
        are left out of the pool (clustering and cluster sizes included).
    seed : None, int or numpy.random.Generator
        Seeds k-means.
    n_neighbors : int
        Neighbours for typicality (20 in the paper).
    clusters : array-like of int, optional
        Precomputed cluster labels of shape (N,) instead of k-means.
    max_clusters : int
        Cap on the number of k-means clusters (500, the authors' ``MAX_NUM_CLUSTERS``), so
        that the cost does not grow with the labeled set.
    progress, verbose
        ``progress(done, k)`` after each pick; a bar on stderr.

    Returns
    -------
    numpy.ndarray of int64, shape (k,)

    Notes
    -----
    Deterministic for a seed: equal cluster sizes go to the lower cluster label, equal
    typicality to the lower index (scikit-activeml breaks those ties at random). Once
    every cluster holds a labeled or picked item, each pick goes to the cluster holding
    the fewest (re-counted after every pick; the authors' code cycles through clusters
    sorted once by their labeled count). Unlike the authors' code, clusters of 5 items or
    fewer are not dropped: a small cluster is picked from only when larger ones are
    covered. Typicality distances are exact to float64 (``alcore._distances``).

    The k-means is k-means++ seeding and a few FAISS Lloyd iterations (4 at 20k x 128
    with 200 clusters, up to 10 on small pools), not Lloyd to convergence as in
    scikit-activeml: its inertia stays within 1 % of a converged k-means on clustered
    data and 2 % on structureless (isotropic) data; measured at 20k x 128 it is 0.1-0.2 %
    above scikit-learn's on separated and overlapping mixtures and 0.7-0.8 % on isotropic
    Gaussian data.
    """
    return _typiclust_with_clusters(
        embeddings, k, labeled=labeled, exclude=exclude, seed=seed, n_neighbors=n_neighbors,
        clusters=clusters, max_clusters=max_clusters, progress=progress,
        verbose=verbose).indices


class _ClusteredPicks(NamedTuple):
    """Picks with the cluster each was taken from (all shape (k,), int64)."""

    indices: np.ndarray
    """The picks, in pick order."""
    cluster: np.ndarray
    """Each pick's cluster label (k-means' label, or the label passed as ``clusters=``)."""
    cluster_size: np.ndarray
    """Members of that cluster the method counted: TypiClust's pool members (excluded items
    left out), Cluster-Margin's candidates."""


def _typiclust_with_clusters(embeddings: Any, k: int, *, labeled: Any = None,
                             exclude: Any = None,
                             seed: int | np.random.Generator | None = 0,
                             n_neighbors: int = 20, clusters: Any = None,
                             max_clusters: int = MAX_CLUSTERS,
                             progress: ProgressCallback | None = None,
                             verbose: bool = False) -> _ClusteredPicks:
    """:func:`typiclust` (same arguments), also returning each pick's cluster and its size."""
    x = v.embeddings_matrix(embeddings)
    n = x.shape[0]
    k = v.count(k)
    n_neighbors = v.count(n_neighbors, "n_neighbors")
    cap = v.count(max_clusters, "max_clusters")
    masks = v.item_masks(n, "embeddings", labeled=labeled, exclude=exclude, k=k)
    generator = v.rng(seed)
    report = reporter(progress, v.flag(verbose, "verbose"), "TypiClust")
    given = None if clusters is None else _cluster_labels(clusters, n, non_negative=True)
    x, keep, lab = _without_excluded(x, masks)
    if keep is not None and given is not None:
        given = given[keep]
    if given is None:
        labels = _faiss.kmeans_for_typiclust(x, min(masks.n_labeled + k, cap),
                                             int(generator.integers(2**31)))
    else:
        labels = given
    picks = _typiclust_picks(x, k, lab, labels, n_neighbors, report)
    sizes = np.bincount(labels)
    return _ClusteredPicks(picks if keep is None else keep[picks], labels[picks],
                           sizes[labels[picks]])


def _cluster_labels(clusters: Any, n: int, *, non_negative: bool) -> np.ndarray:
    labels = v.as_numpy(clusters, "clusters")
    if (labels.shape != (n,) or labels.dtype.kind not in "iu"
            or (non_negative and labels.size and int(labels.min()) < 0)):
        what = "non-negative integer" if non_negative else "integer"
        raise InvalidInputError(
            f"clusters must be {what} labels of shape ({n},), got dtype {labels.dtype} and "
            f"shape {labels.shape}; pass one cluster label per item"
        )
    return labels.astype(np.int64)


def _typiclust_picks(x: np.ndarray, k: int, lab: np.ndarray | None, labels: np.ndarray,
                     n_neighbors: int, report: ProgressCallback | None) -> np.ndarray:
    n = x.shape[0]
    available = np.ones(n, dtype=bool) if lab is None else ~lab
    sizes = np.bincount(labels, minlength=int(labels.max()) + 1)
    # Labeled or picked members per cluster; candidates = unlabeled, unpicked members.
    held = np.bincount(labels[~available], minlength=len(sizes))
    candidates = np.bincount(labels[available], minlength=len(sizes))
    picks: list[int] = []
    # One BLAS thread for the small float64 products of _most_typical (a cluster's members
    # against each other, about 100 x 100 x 128 at 20k items and 200 clusters): on a busy
    # 2-core machine, the 100 picks at 20k x 128 took 480 ms on 2 OpenBLAS threads, 80 ms
    # on one (see _faiss.kmeans_for_typiclust for the whole call).
    with _faiss.one_blas_thread():
        for _ in range(k):
            pick = _next_typical(x, labels, available, sizes, held, candidates, n_neighbors)
            picks.append(pick)
            if report is not None:
                report(len(picks), k)
    return np.array(picks, dtype=np.int64)


def _next_typical(x: np.ndarray, labels: np.ndarray, available: np.ndarray,
                  sizes: np.ndarray, held: np.ndarray, candidates: np.ndarray,
                  n_neighbors: int) -> int:
    """TypiClust's next pick; ``available``, ``held`` and ``candidates`` updated."""
    # Fewest labeled or picked members first (0 = uncovered), then the largest, then the
    # lower label (lexsort: last key first).
    eligible = np.flatnonzero(candidates > 0)
    best = np.lexsort((eligible, -sizes[eligible], held[eligible]))[0]
    cluster = int(eligible[best])
    members = np.flatnonzero(labels == cluster)
    pick = int(members[_most_typical(x, members, available[members], n_neighbors)])
    available[pick] = False
    held[cluster] += 1
    candidates[cluster] -= 1
    return pick


def _neighbours_of(offsets: np.ndarray, ids: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """The concatenated neighbour lists of ``rows`` in a CSR graph."""
    starts, stops = offsets[rows], offsets[rows + 1]
    lengths = stops - starts
    total = int(lengths.sum())
    if total == 0:
        return np.empty(0, dtype=np.int64)
    # Position p of the output reads ids[starts[r] + (p - first output position of r)].
    shift = np.repeat(starts - np.concatenate([[0], np.cumsum(lengths)[:-1]]), lengths)
    return ids[np.arange(total) + shift]


def probcover(embeddings: Any, k: int, *, radius: float, labeled: Any = None,
              exclude: Any = None, seed: int | np.random.Generator | None = 0,
              progress: ProgressCallback | None = None, verbose: bool = False) -> np.ndarray:
    """ProbCover (Yehuda et al. 2022): greedy maximum coverage of radius-balls.

    Every item covers the items within ``radius`` of it (itself included). Items covered
    by a labeled item start covered; then, k times, the unlabeled item whose ball holds the
    most uncovered items is picked and its ball becomes covered.

    Parameters
    ----------
    embeddings : array-like of shape (N, d)
        float32 (float64 converted once), finite.
    k : int
        Batch size.
    radius : float
        Ball radius delta (L2, inclusive), > 0. The paper chooses the largest delta whose
        balls stay 95 % class-pure under k-means pseudo-labels. Membership compares
        squared distances in float64 (see Notes).
    labeled : array-like, optional
        Boolean mask, unique indices or scikit-activeml's ``y`` (NaN = unlabeled) of
        labeled items: their balls start covered; never picked.
    exclude : array-like, optional
        Boolean mask or unique indices of items never to pick that cover nothing: they
        are left out of the pool (nobody gains by covering them).
    seed : None, int or numpy.random.Generator
        Seeds the clustering that prunes the graph construction (the graph, and so the
        picks, do not depend on it).
    progress, verbose
        Report the neighbourhood-graph construction, the expensive part.

    Returns
    -------
    numpy.ndarray of int64, shape (k,)
        The picks; equal coverage goes to the lower index (also once everything is covered).

    Notes
    -----
    Item j is in item i's ball when the sum of the squared float64 differences of their
    float32 rows is ``<= radius * radius`` (the float64 square of ``radius``). So the
    square decides where ``radius`` itself is rounded: a pair at distance exactly sqrt(2)
    (squared distance 2.0) is in the ball with ``radius=numpy.sqrt(2)``, whose float64
    square is 2.0000000000000004, and outside it with
    ``radius=numpy.nextafter(numpy.sqrt(2), 0)`` (square 1.9999999999999996).

    The graph is sparse (CSR), never N x N: built cluster against cluster, skipping pairs
    of clusters the triangle inequality rules out; float32 expanded-form distances decide
    only the pairs their error bound (``alcore._distances``) clears, every other pair is
    decided by the float64 comparison above. Each
    pick updates the coverage counts of the newly covered items' neighbours only,
    O(edges) over the whole run.
    """
    x = v.embeddings_matrix(embeddings)
    n = x.shape[0]
    k = v.count(k)
    delta = v.number(radius, "radius", low=0.0, low_open=True)
    masks = v.item_masks(n, "embeddings", labeled=labeled, exclude=exclude, k=k)
    generator = v.rng(seed)
    report = reporter(progress, v.flag(verbose, "verbose"), "ProbCover graph")
    x, keep, lab = _without_excluded(x, masks)
    picks = _probcover_picks(x, k, delta, lab, int(generator.integers(2**31)), report)
    return picks if keep is None else keep[picks]


def _probcover_picks(x: np.ndarray, k: int, delta: float, lab: np.ndarray | None, seed: int,
                     report: ProgressCallback | None) -> np.ndarray:
    n = x.shape[0]
    offsets, ids = _faiss.range_graph(x, delta, seed, report)
    available = np.ones(n, dtype=bool) if lab is None else ~lab
    covered = np.zeros(n, dtype=bool)
    covered[_neighbours_of(offsets, ids, np.flatnonzero(~available))] = True
    rows = np.repeat(np.arange(n), np.diff(offsets))
    gain = np.bincount(rows, weights=~covered[ids], minlength=n).astype(np.int64)
    picks: list[int] = []
    for _ in range(k):
        pick = int(np.argmax(np.where(available, gain, -1)))
        picks.append(pick)
        available[pick] = False
        ball = ids[offsets[pick]:offsets[pick + 1]]
        fresh = ball[~covered[ball]]
        covered[fresh] = True
        # Every item whose ball holds a newly covered item gains one less.
        np.subtract.at(gain, _neighbours_of(offsets, ids, fresh), 1)
    return np.array(picks, dtype=np.int64)


def cluster_margin(probs: Any, embeddings: Any, k: int, *, logits: bool = False,
                   labeled: Any = None, exclude: Any = None, candidates_per_pick: int = 10,
                   clusters: Any = None, n_clusters: int | None = None,
                   seed: int | np.random.Generator | None = 0) -> np.ndarray:
    """Cluster-Margin (Citovsky et al. 2021).

    Takes the ``candidates_per_pick * k`` unlabeled items with the smallest margin
    ``p1 - p2``, groups them by cluster, and picks round-robin over the clusters in
    ascending order of their candidate count, so that small clusters are represented
    before large ones add a second item.

    Parameters
    ----------
    probs : array-like of shape (N, C)
        Class probabilities, float32 or float64 (logits with ``logits=True``).
    embeddings : array-like of shape (N, d) or None
        Used to cluster the candidates (may be None when ``clusters`` is given).
    k : int
        Batch size.
    logits : bool
        ``probs`` holds raw model outputs.
    labeled, exclude : array-like, optional
        Boolean masks or unique indices (``labeled`` also scikit-activeml's ``y``) of items
        never to pick: neither is a candidate (the method has no notion of coverage).
    candidates_per_pick : int
        The paper's k_m / k (10 by default).
    clusters : array-like of int, optional
        Cluster labels of all N items, computed once and reused across rounds (the
        paper's set-up: one clustering of the pool).
    n_clusters : int, optional
        Without ``clusters``: the candidates are clustered with FAISS k-means into
        ``n_clusters`` groups (default k, so that a batch takes about one item per cluster).
    seed : None, int or numpy.random.Generator
        Seeds k-means.

    Returns
    -------
    numpy.ndarray of int64, shape (k,)

    Notes
    -----
    Deliberate choices: the paper clusters the whole pool once with average-linkage HAC;
    here k-means on the candidates only (O(k_m d) per iteration, not O(N^2)), or the labels
    you pass. Within a cluster the items go in margin order (the paper samples at random);
    equal candidate counts go to the lower cluster label.
    """
    return _cluster_margin_with_clusters(
        probs, embeddings, k, logits=logits, labeled=labeled, exclude=exclude,
        candidates_per_pick=candidates_per_pick, clusters=clusters, n_clusters=n_clusters,
        seed=seed).indices


def _cluster_margin_with_clusters(probs: Any, embeddings: Any, k: int, *,
                                  logits: bool = False, labeled: Any = None,
                                  exclude: Any = None, candidates_per_pick: int = 10,
                                  clusters: Any = None, n_clusters: int | None = None,
                                  seed: int | np.random.Generator | None = 0
                                  ) -> _ClusteredPicks:
    """:func:`cluster_margin` (same arguments), also returning each pick's cluster and its
    candidate count."""
    x, is_logits, name = v.outputs_matrix(probs, logits)
    n = x.shape[0]
    k = v.count(k)
    per_pick = v.count(candidates_per_pick, "candidates_per_pick")
    masks = v.item_masks(n, name, labeled=labeled, exclude=exclude, k=k)
    generator = v.rng(seed)
    # Checked even when clusters= makes it unused: a bad value is refused, never ignored.
    count = v.count(n_clusters if n_clusters is not None else k, "n_clusters")
    if clusters is not None:
        labels = _cluster_labels(clusters, n, non_negative=False)
        emb = None
    else:
        emb = v.embeddings_matrix(embeddings)
        if emb.shape[0] != n:
            raise InvalidInputError(
                f"embeddings has {emb.shape[0]} rows but {name} has {n}; pass one row per item"
            )
    m = min(per_pick * k, n - masks.n_never)
    margin = _validated_scores(x, is_logits, name, 1)
    try:
        candidates = _core.top_k(margin, masks.never, m)
    except _core.InvalidValue as err:  # a margin of finite rows is finite: not expected
        raise v.invalid_value_error(err, name, atol=1e-3) from None
    if emb is None:
        groups = labels[candidates]
    else:
        groups = _faiss.kmeans(np.ascontiguousarray(emb[candidates]), min(count, m),
                               int(generator.integers(2**31)))
    # Candidates come in margin order; selecting by cluster keeps that order inside each.
    unique, sizes = np.unique(groups, return_counts=True)
    queues = [candidates[groups == g] for g in unique]
    order = np.lexsort((unique, sizes))
    picks: list[int] = []
    group_of: list[int] = []  # position in unique of each pick's cluster
    depth = 0
    while len(picks) < k:
        for c in order:
            if depth < len(queues[c]):
                picks.append(int(queues[c][depth]))
                group_of.append(int(c))
                if len(picks) == k:
                    break
        depth += 1
    group = np.array(group_of, dtype=np.int64)
    return _ClusteredPicks(np.array(picks, dtype=np.int64), unique[group].astype(np.int64),
                           sizes[group].astype(np.int64))


__all__ = ["MAX_CLUSTERS", "badge", "cluster_margin", "kcenter", "probcover", "spread",
           "typiclust"]

v.guard_signatures(globals())
