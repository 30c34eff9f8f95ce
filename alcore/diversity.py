"""Diversity at pool scale: batches that cover the embedding space, not just the most
uncertain corner of it.

:func:`kcenter` is the greedy k-center (core-set) selection: exact, O(N) memory, native.
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

from alcore import _core, _faiss, scores
from alcore import _validation as v
from alcore._errors import InvalidInputError
from alcore._progress import ProgressCallback, reporter

_METRICS = ("l2", "cosine")


class KCenterResult(NamedTuple):
    """What :func:`kcenter` returns."""

    indices: np.ndarray
    """int64 array of shape (k,): the picks, in pick order."""
    radii: np.ndarray
    """float32 array of shape (k,): the coverage radius after each pick, the largest
    distance from any item to its nearest labeled or picked item."""


def _unit_rows(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1)
    zero = np.flatnonzero(norms == 0)
    if zero.size:
        raise InvalidInputError(
            f"embeddings row {zero[0]} has zero norm, so its cosine distance is undefined; "
            f"drop it or use metric='l2'"
        )
    return np.ascontiguousarray(x / norms[:, None], dtype=np.float32)


def kcenter(embeddings: Any, k: int, labeled: Any = None, metric: str = "l2",
            seed: int | np.random.Generator | None = 0, *,
            progress: ProgressCallback | None = None, verbose: bool = False) -> KCenterResult:
    """Greedy k-center selection (farthest-first traversal; Sener & Savarese 2018).

    Repeatedly picks the item farthest from every labeled or already picked item.

    Parameters
    ----------
    embeddings : array-like of shape (N, d)
        float32 (float64 is converted once). Must be finite.
    k : int
        Items to pick, 1 <= k <= N - number labeled.
    labeled : array-like, optional
        Boolean mask of shape (N,) or unique indices of the labeled items (the initial
        centers). Never picked.
    metric : {"l2", "cosine"}
        ``"cosine"`` runs on L2-normalised rows (same order as cosine distance).
    seed : int or numpy.random.Generator
        Used only without labeled items: the first pick is drawn uniformly at random; every
        later pick is deterministic.
    progress : callable, optional
        ``progress(done, k)``, called about every 1 % of the picks.
    verbose : bool
        Draw a progress bar on stderr.

    Returns
    -------
    KCenterResult
        ``indices`` (int64, shape (k,)) and ``radii`` (float32, shape (k,)).

    Notes
    -----
    Exact: the picks are those of the plain running-minimum greedy with the same distances
    (ties go to the lower index). The triangle inequality skips every cluster and every item
    the new center provably cannot get closer to, so late picks touch a small part of the
    matrix; the labeled set is assigned in one blocked pass. Memory is O(N) beside the
    embeddings. Parallel over ``alcore.set_num_threads`` threads.
    """
    x = v.embeddings_matrix(embeddings)
    n = x.shape[0]
    k = v.count(k)
    if not isinstance(metric, str) or metric not in _METRICS:
        raise InvalidInputError(f"metric must be 'l2' or 'cosine', got {metric!r}")
    mask, n_labeled = v.labeled_and_k(labeled, n, "embeddings", k)
    generator = v.rng(seed)
    verbose = v.flag(verbose, "verbose")
    if metric == "cosine":
        x = _unit_rows(x)
    initial = (np.flatnonzero(mask).astype(np.int64) if mask is not None
               else np.empty(0, dtype=np.int64))
    first = int(generator.integers(n)) if n_labeled == 0 else 0
    report = reporter(progress, verbose, "k-center")
    indices, radii = _core.kcenter(x, initial, k, first, report, True)
    return KCenterResult(indices, radii)


# Candidates checked per batch in spread(): one index search for the whole batch.
_SPREAD_BATCH = 4096


def _ranking(ranked: Any, n: int) -> np.ndarray:
    arr = v.as_numpy(ranked, "ranked")
    if arr.ndim != 1 or arr.dtype.kind not in "iu":
        raise InvalidInputError(
            f"ranked must be a 1-D integer array of item indices, best first (e.g. "
            f"alcore.top_k(scores, N)), got {arr.dtype} with shape {arr.shape}"
        )
    if arr.size and (int(arr.min()) < 0 or int(arr.max()) >= n):
        bad = int(arr.min()) if int(arr.min()) < 0 else int(arr.max())
        raise InvalidInputError(f"ranked holds index {bad}, outside [0, {n})")
    if np.unique(arr).size != arr.size:
        raise InvalidInputError("ranked holds an index twice; pass each item at most once")
    return arr.astype(np.int64, copy=False)


def _min_sq(points: np.ndarray, item: np.ndarray) -> float:
    """Smallest squared L2 distance from item to any of points, exact (float64 differences)."""
    if not len(points):
        return float("inf")
    diff = points.astype(np.float64) - item.astype(np.float64)
    return float(np.einsum("ij,ij->i", diff, diff).min())


def spread(ranked: Any, embeddings: Any, k: int, min_distance: float, labeled: Any = None,
           metric: str = "l2") -> np.ndarray:
    """Walk a ranking and take each item at least ``min_distance`` from everything already
    taken or labeled (the coverage constraint), until k are taken.

    Parameters
    ----------
    ranked : array-like of int
        Item indices, most wanted first (e.g. ``alcore.top_k(scores, N)``); unique.
    embeddings : array-like of shape (N, d)
        float32 (float64 converted once), finite.
    k : int
        Items to take.
    min_distance : float
        Smallest allowed distance (L2; for ``metric="cosine"``, between normalised rows)
        between two taken items, or a taken and a labeled one. 0 takes the ranking as is.
    labeled : array-like, optional
        Boolean mask or unique indices of labeled items: never taken, and they count as
        taken for the constraint.
    metric : {"l2", "cosine"}

    Returns
    -------
    numpy.ndarray of int64
        The taken items in ranking order; fewer than k when the ranking runs out.

    Notes
    -----
    Exact: the result is that of checking every candidate, in order, against every item
    taken before it, with float64 distances (an item exactly at ``min_distance`` is taken).
    Candidates go in batches through one FAISS search against the taken and labeled items
    (a clear rejection there is final: the set only grows; borderline cases are recomputed
    exactly); survivors are then checked against each other in order.
    """
    x = v.embeddings_matrix(embeddings)
    n = x.shape[0]
    order = _ranking(ranked, n)
    k = v.count(k)
    try:
        radius = float(min_distance)
    except (TypeError, ValueError):
        raise InvalidInputError(
            f"min_distance must be a number >= 0, got {min_distance!r}") from None
    if not radius >= 0 or not np.isfinite(radius):
        raise InvalidInputError(f"min_distance must be a finite number >= 0, got {min_distance!r}")
    if not isinstance(metric, str) or metric not in _METRICS:
        raise InvalidInputError(f"metric must be 'l2' or 'cosine', got {metric!r}")
    mask, _ = v.exclude_mask(labeled, n, "embeddings", name="labeled")
    if metric == "cosine":
        x = _unit_rows(x)
    if mask is not None:
        order = order[mask[order] == 0]
    radius_sq = radius * radius
    index = _faiss.GrowingIndex(x.shape[1])
    anchors = x[mask.astype(bool)] if mask is not None else x[:0]  # labeled, then taken
    index.add(anchors)
    taken: list[int] = []
    for start in range(0, len(order), _SPREAD_BATCH):
        batch = order[start:start + _SPREAD_BATCH]
        # FAISS (float32, |a|^2 + |b|^2 - 2ab) decides only where it is clear by a margin far
        # above its rounding; the rest is decided with exact float64 differences.
        approx = index.nearest_sq(x[batch])
        unclear = np.flatnonzero((approx >= radius_sq * (1 - 1e-4))
                                 & (approx < radius_sq * (1 + 1e-4) + 1e-30))
        keep = approx >= radius_sq * (1 + 1e-4) + 1e-30
        for j in unclear:
            keep[j] = _min_sq(anchors, x[batch[j]]) >= radius_sq
        survivors = batch[keep]
        # Survivors against each other, in ranking order.
        chosen: list[int] = []
        for j, item in enumerate(survivors):
            if chosen and _min_sq(x[survivors[chosen]], x[item]) < radius_sq:
                continue
            chosen.append(j)
            if len(taken) + len(chosen) == k:
                break
        picked = survivors[chosen]
        taken.extend(picked.tolist())
        index.add(x[picked])
        anchors = np.concatenate([anchors, x[picked]])
        if len(taken) == k:
            break
    return np.array(taken, dtype=np.int64)


def badge(probs: Any, embeddings: Any, k: int, labeled: Any = None,
          seed: int | np.random.Generator | None = 0, *, logits: Any = None,
          progress: ProgressCallback | None = None, verbose: bool = False) -> np.ndarray:
    """BADGE batch selection (Ash et al. 2020): k-means++ seeding on gradient embeddings.

    Item i's gradient embedding is ``g_i = (onehot(argmax p_i) - p_i) ⊗ h_i`` (the gradient
    of the cross-entropy loss at the predicted label with respect to the last layer). The
    first pick is the item with the largest ``|g_i|``; each later pick is drawn with
    probability proportional to its squared distance to the nearest pick so far.

    Parameters
    ----------
    probs : array-like of shape (N, C)
        Class probabilities (or pass ``logits=``).
    embeddings : array-like of shape (N, d)
        Penultimate-layer embeddings h.
    k : int
        Batch size.
    labeled : array-like, optional
        Boolean mask or unique indices of items never to pick.
    seed : int or numpy.random.Generator
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
    float64. Items at distance 0 from every pick (duplicates) are left for last; if only such
    items remain, the lowest index is taken. Unlike scikit-activeml's ``Badge``, which seeds
    k-means++ with the origin as a centre, the first pick here is the largest gradient, as in
    the paper's reference implementation.
    """
    x, is_logits, name = v.probs_matrix(probs, logits)
    scores.least_confidence(x if not is_logits else None,
                            logits=x if is_logits else None)  # validates every row natively
    p = scores._softmax(x.astype(np.float64)) if is_logits else x.astype(np.float64)
    h = v.embeddings_matrix(embeddings).astype(np.float64)
    n = p.shape[0]
    if h.shape[0] != n:
        raise InvalidInputError(
            f"embeddings has {h.shape[0]} rows but {name} has {n}; pass one row per item"
        )
    k = v.count(k)
    mask, _ = v.labeled_and_k(labeled, n, name, k)
    generator = v.rng(seed)
    report = reporter(progress, v.flag(verbose, "verbose"), "BADGE")
    a = -p
    a[np.arange(n), p.argmax(axis=1)] += 1.0
    a_sq = np.einsum("ij,ij->i", a, a)
    h_sq = np.einsum("ij,ij->i", h, h)
    g_sq = a_sq * h_sq
    available = np.ones(n, dtype=bool) if mask is None else mask == 0
    first = int(np.argmax(np.where(available, g_sq, -1.0)))
    picks = [first]
    nearest = np.full(n, np.inf)
    for step in range(1, k):
        if report is not None:
            report(step, k)
        c = picks[-1]
        dist = g_sq + g_sq[c] - 2.0 * (a @ a[c]) * (h @ h[c])
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
    if report is not None:
        report(k, k)
    return np.array(picks, dtype=np.int64)


# Clusters up to this size get their typicality from one dense float64 distance matrix;
# larger ones from an exact FAISS search (O(m) memory).
_DENSE_TYPICALITY_MAX = 2048


def _typicality(x: np.ndarray, members: np.ndarray, n_neighbors: int) -> np.ndarray:
    """1 / mean distance to the n_neighbors nearest other members (exact, within the
    cluster); a single member gets 1."""
    if len(members) == 1:
        return np.ones(1)
    k = min(n_neighbors, len(members) - 1)
    if len(members) <= _DENSE_TYPICALITY_MAX:
        points = x[members].astype(np.float64)
        sq = np.einsum("ij,ij->i", points, points)
        dist = np.sqrt(np.maximum(sq[:, None] + sq[None, :] - 2 * points @ points.T, 0))
        np.fill_diagonal(dist, np.inf)
        nearest = np.partition(dist, k - 1, axis=1)[:, :k]
    else:
        sq_knn, ids = _faiss.knn(x[members], k + 1, _faiss.IndexChoice("flat"), 0)
        is_self = ids == np.arange(len(members))[:, None]
        is_self[~is_self.any(axis=1), -1] = True
        nearest = np.sqrt(np.where(is_self, 0.0, sq_knn.astype(np.float64)))
    mean = nearest.sum(axis=1) / k
    return 1.0 / np.maximum(mean, np.finfo(np.float64).tiny)


def typiclust(embeddings: Any, k: int, labeled: Any = None,
              seed: int | np.random.Generator | None = 0, *, n_neighbors: int = 20,
              clusters: Any = None, progress: ProgressCallback | None = None,
              verbose: bool = False) -> np.ndarray:
    """TypiClust (Hacohen et al. 2022, TPC-RP): cover the pool's clusters with their most
    typical items.

    The pool is clustered into ``n_labeled + k`` clusters (FAISS k-means); then, k times,
    the largest cluster holding no labeled or picked item gives up its most typical
    unlabeled member, typicality being 1 / mean distance to the ``n_neighbors`` nearest
    other members of the cluster.

    Parameters
    ----------
    embeddings : array-like of shape (N, d)
        float32 (float64 converted once), finite.
    k : int
        Batch size.
    labeled : array-like, optional
        Boolean mask or unique indices of labeled items (they cover their clusters).
    seed : int or numpy.random.Generator
        Seeds k-means.
    n_neighbors : int
        Neighbours for typicality (20 in the paper).
    clusters : array-like of int, optional
        Precomputed cluster labels of shape (N,) instead of k-means.
    progress, verbose
        ``progress(done, k)`` after each pick; a bar on stderr.

    Returns
    -------
    numpy.ndarray of int64, shape (k,)

    Notes
    -----
    Deterministic for a seed: equal cluster sizes go to the lower cluster label, equal
    typicality to the lower index (scikit-activeml breaks those ties at random). When
    every non-empty cluster is covered, later picks come from the largest clusters not yet
    picked from, covered ones included.
    """
    x = v.embeddings_matrix(embeddings)
    n = x.shape[0]
    k = v.count(k)
    n_neighbors = v.count(n_neighbors, "n_neighbors")
    mask, n_labeled = v.labeled_and_k(labeled, n, "embeddings", k)
    if clusters is None:
        labels = _faiss.kmeans(x, n_labeled + k, int(v.rng(seed).integers(2**31)))
    else:
        labels = v.as_numpy(clusters, "clusters")
        if labels.shape != (n,) or labels.dtype.kind not in "iu" or (labels < 0).any():
            raise InvalidInputError(
                f"clusters must be non-negative integer labels of shape ({n},), got dtype "
                f"{labels.dtype} and shape {labels.shape}"
            )
        labels = labels.astype(np.int64)
    report = reporter(progress, v.flag(verbose, "verbose"), "TypiClust")
    available = np.ones(n, dtype=bool) if mask is None else mask == 0
    sizes = np.bincount(labels, minlength=int(labels.max()) + 1)
    covered = np.zeros(len(sizes), dtype=bool)
    covered[labels[~available]] = True
    picked_from = np.zeros(len(sizes), dtype=bool)
    picks: list[int] = []
    for _ in range(k):
        # Largest uncovered cluster with an unlabeled member; once none is left, the largest
        # cluster not yet picked from. np.argmax takes the lower label among equals.
        has_candidates = np.bincount(labels[available], minlength=len(sizes)) > 0
        eligible = has_candidates & ~covered & ~picked_from
        if not eligible.any():
            eligible = has_candidates & ~picked_from
        if not eligible.any():
            eligible = has_candidates
        cluster = int(np.argmax(np.where(eligible, sizes, -1)))
        members = np.flatnonzero(labels == cluster)
        typicality = _typicality(x, members, n_neighbors)
        typicality[~available[members]] = -np.inf
        pick = int(members[int(np.argmax(typicality))])
        picks.append(pick)
        available[pick] = False
        covered[cluster] = picked_from[cluster] = True
        if report is not None:
            report(len(picks), k)
    return np.array(picks, dtype=np.int64)


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


def probcover(embeddings: Any, k: int, radius: float, labeled: Any = None, *,
              seed: int | np.random.Generator | None = 0,
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
        balls stay 95 % class-pure under k-means pseudo-labels.
    labeled : array-like, optional
        Boolean mask or unique indices of labeled items.
    seed : int or numpy.random.Generator
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
    The graph is sparse (CSR), never N x N: built cluster against cluster, skipping pairs
    of clusters the triangle inequality rules out, boundary pairs decided in float64. Each
    pick updates the coverage counts of the newly covered items' neighbours only,
    O(edges) over the whole run.
    """
    x = v.embeddings_matrix(embeddings)
    n = x.shape[0]
    k = v.count(k)
    try:
        delta = float(radius)
    except (TypeError, ValueError):
        raise InvalidInputError(f"radius must be a number > 0, got {radius!r}") from None
    if not (delta > 0 and np.isfinite(delta)):
        raise InvalidInputError(f"radius must be a finite number > 0, got {radius!r}")
    mask, _ = v.labeled_and_k(labeled, n, "embeddings", k)
    offsets, ids = _faiss.range_graph(x, delta, int(v.rng(seed).integers(2**31)),
                                      reporter(progress, verbose, "ProbCover graph"))
    available = np.ones(n, dtype=bool) if mask is None else mask == 0
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


def cluster_margin(probs: Any, embeddings: Any, k: int, labeled: Any = None, *,
                   logits: Any = None, candidates_per_pick: int = 10, clusters: Any = None,
                   n_clusters: int | None = None,
                   seed: int | np.random.Generator | None = 0) -> np.ndarray:
    """Cluster-Margin (Citovsky et al. 2021).

    Takes the ``candidates_per_pick * k`` unlabeled items with the smallest margin
    ``p1 - p2``, groups them by cluster, and picks round-robin over the clusters in
    ascending order of their candidate count, so that small clusters are represented
    before large ones add a second item.

    Parameters
    ----------
    probs : array-like of shape (N, C)
        Class probabilities (or pass ``logits=``).
    embeddings : array-like of shape (N, d)
        Used to cluster the candidates (ignored when ``clusters`` is given).
    k : int
        Batch size.
    labeled : array-like, optional
        Boolean mask or unique indices of items never to pick.
    candidates_per_pick : int
        The paper's k_m / k (10 by default).
    clusters : array-like of int, optional
        Cluster labels of all N items, computed once and reused across rounds (the
        paper's set-up: one clustering of the pool).
    n_clusters : int, optional
        Without ``clusters``: the candidates are clustered with FAISS k-means into
        ``n_clusters`` groups (default k, so that a batch takes about one item per cluster).
    seed : int or numpy.random.Generator
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
    from alcore.selection import select_top  # selection imports scores, not diversity

    x, is_logits, name = v.probs_matrix(probs, logits)
    n = x.shape[0]
    k = v.count(k)
    per_pick = v.count(candidates_per_pick, "candidates_per_pick")
    mask, n_labeled = v.labeled_and_k(labeled, n, name, k)
    m = min(per_pick * k, n - n_labeled)
    exclude = None if mask is None else mask.view(bool)
    candidates = (select_top(m, logits=x, score="margin", exclude=exclude) if is_logits
                  else select_top(m, x, score="margin", exclude=exclude))
    if clusters is not None:
        labels = v.as_numpy(clusters, "clusters")
        if labels.shape != (n,) or labels.dtype.kind not in "iu":
            raise InvalidInputError(
                f"clusters must be integer labels of shape ({n},), got dtype {labels.dtype} "
                f"and shape {labels.shape}"
            )
        groups = labels[candidates].astype(np.int64)
    else:
        emb = v.embeddings_matrix(embeddings)
        if emb.shape[0] != n:
            raise InvalidInputError(
                f"embeddings has {emb.shape[0]} rows but {name} has {n}; pass one row per item"
            )
        count = v.count(n_clusters if n_clusters is not None else k, "n_clusters")
        groups = _faiss.kmeans(np.ascontiguousarray(emb[candidates]), min(count, m),
                               int(v.rng(seed).integers(2**31)))
    # Candidates come in margin order; selecting by cluster keeps that order inside each.
    unique, sizes = np.unique(groups, return_counts=True)
    queues = [candidates[groups == g] for g in unique]
    order = np.lexsort((unique, sizes))
    picks: list[int] = []
    depth = 0
    while len(picks) < k:
        for c in order:
            if depth < len(queues[c]):
                picks.append(int(queues[c][depth]))
                if len(picks) == k:
                    break
        depth += 1
    return np.array(picks, dtype=np.int64)


__all__ = ["KCenterResult", "badge", "cluster_margin", "kcenter", "probcover", "spread",
           "typiclust"]
