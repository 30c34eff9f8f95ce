"""The only module that imports FAISS (lazily). Index choice lives here.

FAISS runs its own OpenMP pool. alcore changes nothing in the process for the user's own
FAISS code:

* ``OMP_WAIT_POLICY``: idle OpenMP threads otherwise spin and slow every other pool on a
  small machine, so alcore's first ``import faiss`` runs with ``OMP_WAIT_POLICY=PASSIVE``
  if the user has not set it, and ``os.environ`` is restored exactly afterwards. libgomp
  reads the variable once, when it is loaded, so the setting holds for the process's
  OpenMP runtime only if FAISS (and so libgomp) is first loaded by alcore; a user who
  imported FAISS first, or set the variable, keeps their own policy.
* Thread count: every FAISS call alcore makes runs inside :func:`faiss_threads`, which sets
  FAISS's OpenMP thread count to ``alcore.get_num_threads()`` for the call and restores the
  count the user had (``faiss.omp_get_max_threads()``) afterwards. The OpenMP setting is
  per calling thread, so concurrent callers do not see each other's counts.
* BLAS: during the IVF self-join (knn_ivf), TypiClust's k-means and its typicality every
  BLAS threadpoolctl sees runs on one thread (:func:`one_blas_thread`), alcore's threads
  running knn_ivf's many small products in parallel instead; the user's setting is
  restored afterwards. FAISS's OpenMP-built OpenBLAS follows OpenMP's count instead, which
  :func:`faiss_threads` sets to alcore's inside the block.

Distances from FAISS are float32 expanded forms; every decision made on them goes through
:mod:`alcore._distances` (error bound, float64 re-decision).
"""

from __future__ import annotations

import collections
import contextlib
import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from alcore import _core, _distances, _threads

# Exact searches: up to this many items FAISS's brute-force search (BLAS) is the fastest;
# above it the cluster-pruned self-join (knn_self_join) is.
EXACT_MAX_ITEMS = 100_000
# With exact=None, above this many items the approximate IVF search (knn_ivf) is used.
APPROXIMATE_MIN_ITEMS = 20_000
# knn_ivf: IVF_CLUSTERS_PER_SQRT_N * sqrt(N) k-means cells, each row probing IVF_PROBES of
# them up to 100k items, IVF_PROBES * (N / 100k)^0.3 above.
IVF_CLUSTERS_PER_SQRT_N = 0.5
IVF_PROBES = 4
IVF_KMEANS_ITERATIONS = 10
# knn_ivf's queries per block: bounds its (block x k) heaps, and each cell's product is
# with the block's queries that probe it (larger blocks, larger and faster products).
IVF_QUERY_BLOCK = 65_536
# Queries per FAISS call: bounds the (batch x k) result buffers and paces progress reports.
QUERY_BATCH = 16_384

_faiss: Any = None


def faiss_module() -> Any:
    """Import FAISS on first use, with ``OMP_WAIT_POLICY=PASSIVE`` during the import only
    when the user has not set it (``os.environ`` is restored exactly)."""
    global _faiss
    if _faiss is None:
        added = "OMP_WAIT_POLICY" not in os.environ
        if added:
            os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
        try:
            import faiss
        finally:
            if added:
                os.environ.pop("OMP_WAIT_POLICY", None)
        _faiss = faiss
    return _faiss


@contextlib.contextmanager
def faiss_threads() -> Iterator[Any]:
    """FAISS with alcore's thread count for the duration of the block; the user's count is
    restored afterwards. Yields the faiss module."""
    faiss = faiss_module()
    saved = faiss.omp_get_max_threads()
    wanted = _threads.get_num_threads()
    if wanted != saved:
        faiss.omp_set_num_threads(wanted)
    try:
        yield faiss
    finally:
        if wanted != saved:
            faiss.omp_set_num_threads(saved)


@dataclass(frozen=True)
class IndexChoice:
    """How a neighbour search is run; recorded in results so users can see it.

    ``kind``: "flat" (FAISS brute force, exact), "clustered" (the cluster-pruned self-join,
    exact) or "ivf" (the IVF self-join knn_ivf over ``clusters`` k-means cells, each row
    searching the ``probes`` cells with the nearest centroids: approximate).
    """

    kind: str
    clusters: int = 0
    probes: int = 0

    @property
    def exact(self) -> bool:
        """Whether the search finds the true nearest neighbours (recall 1)."""
        return self.kind != "ivf"


def choose_index(n: int, exact: bool | None) -> IndexChoice:
    """The search for n items: see alcore.density.knn_density for the rule."""
    if exact is None:
        exact = n <= APPROXIMATE_MIN_ITEMS
    if exact:
        if n <= EXACT_MAX_ITEMS:
            return IndexChoice("flat")
        return IndexChoice("clustered", clusters=round(n / 1000))
    clusters = int(min(n, max(1, round(IVF_CLUSTERS_PER_SQRT_N * np.sqrt(n)))))
    # More probes as cells get finer than the data's own groups: at 1M items (8 probes of
    # 500 cells) 4 probes found only 94% of the true neighbours on overlapping clusters.
    probes = max(IVF_PROBES, round(IVF_PROBES * (n / 100_000) ** 0.3))
    return IndexChoice("ivf", clusters=clusters, probes=min(clusters, probes))


def knn(x: np.ndarray, k: int, choice: IndexChoice, seed: int,
        progress: Callable[[int, int], Any] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Each row's k nearest rows of x (itself included when it is among them).

    The rows are centred first (:func:`alcore._distances.centre`): distances do not change,
    but the float32 expanded form's error then scales with the spread of the rows, not with
    their distance from the origin. Returns squared L2 distances (float32, >= 0) and ids
    (int64), both of shape (N, k), sorted by distance.
    """
    rows = _distances.centre(x, norms=False).rows
    if choice.kind == "clustered":
        return knn_self_join(rows, k, seed, progress)
    if choice.kind == "ivf":
        return knn_ivf(rows, k, choice.clusters, choice.probes, seed, progress)
    n, d = rows.shape
    distances = np.empty((n, k), dtype=np.float32)
    ids = np.empty((n, k), dtype=np.int64)
    with faiss_threads() as faiss:
        index = faiss.IndexFlatL2(d)
        index.add(rows)
        for start in range(0, n, QUERY_BATCH):
            stop = min(n, start + QUERY_BATCH)
            distances[start:stop], ids[start:stop] = index.search(rows[start:stop], k)
            if progress is not None:
                progress(stop, n)
    np.maximum(distances, 0, out=distances)  # BLAS distance expansion can dip below 0
    return distances, ids


def _flat_nearest(base: np.ndarray, queries: np.ndarray, k: int
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Each query's k nearest rows of ``base`` by FAISS's brute force (float32 expanded
    forms): :func:`nearest_rows` certifies them.

    Both are moved by the mean of ``base`` first (distances do not change; the float32
    expanded form's error then scales with the spread of ``base``, not with its distance
    from the origin). The k found are re-measured from float64 differences of the float32
    inputs and re-sorted by (distance, row); a row left out may still tie with, or within
    float32's error beat, the k-th.

    Parameters
    ----------
    base : float32 (N, d), C-contiguous, finite.
    queries : float32 (Q, d), C-contiguous, finite.
    k : 1 <= k <= N.

    Returns
    -------
    sq_distances : float64 (Q, k), squared L2, ascending per row.
    ids : int64 (Q, k), rows of ``base``.
    """
    centred = _distances.centre(base, norms=False)
    shifted = queries.astype(np.float64) - centred.mean
    shifted = np.ascontiguousarray(shifted, dtype=np.float32)
    q, d = queries.shape
    if not 1 <= k <= base.shape[0]:
        raise ValueError(f"nearest_rows: k={k} outside [1, {base.shape[0]}]")  # callers check
    ids = np.empty((q, k), dtype=np.int64)
    with faiss_threads() as faiss:
        index = faiss.IndexFlatL2(d)
        index.add(centred.rows)
        for start in range(0, q, QUERY_BATCH):
            stop = min(q, start + QUERY_BATCH)
            _, ids[start:stop] = index.search(shifted[start:stop], k)
    sq = np.empty((q, k))
    step = max(1, 2**20 // max(1, k * d))  # (step, k, d) float64 blocks: 8 MB
    for start in range(0, q, step):
        diff = base[ids[start:start + step]].astype(np.float64)
        diff -= queries[start:start + step, None, :]
        np.square(diff, out=diff)
        sq[start:start + step] = diff.sum(axis=2)
    rank = np.lexsort((ids, sq), axis=-1)  # by distance, equal distances to the lower row
    sq = np.take_along_axis(sq, rank, axis=1)
    ids = np.take_along_axis(ids, rank, axis=1)
    return sq, ids


# nearest_rows: candidates fetched beyond those needed, so that near-ties at the k-th
# place are usually settled by the first search.
NEAREST_SPARE = 4


def _copies(base: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """None when the rows of ``base`` are pairwise distinct (bitwise); else the distinct
    rows as (int64 (G,) the first row of each, ascending; int64 (N,) each row's group).

    Screened by an integer hash of the rows' bits (exact and order-free, unlike any float
    sum), then settled exactly by their bytes: O(N d) for a pool without copies."""
    n, d = base.shape
    if n < 2:
        return None
    bits = np.ascontiguousarray(base).view(np.uint32)
    weights = (np.random.default_rng(0x5EED).integers(1, 2**63, size=d, dtype=np.uint64)
               | np.uint64(1))
    hashes = np.empty(n, dtype=np.uint64)
    step = max(1, (1 << 20) // max(d, 1))
    with np.errstate(over="ignore"):
        for start in range(0, n, step):
            hashes[start:start + step] = (bits[start:start + step].astype(np.uint64)
                                          * weights).sum(axis=1, dtype=np.uint64)
    order = np.argsort(hashes, kind="stable")
    same = hashes[order[1:]] == hashes[order[:-1]]
    if not same.any():
        return None
    shared = np.zeros(n, dtype=bool)
    shared[order[1:][same]] = shared[order[:-1][same]] = True
    rows = np.flatnonzero(shared)
    keys = np.ascontiguousarray(base[rows]).view(np.dtype((np.void, base.itemsize * d)))
    _, first, inverse = np.unique(keys.reshape(-1), return_index=True, return_inverse=True)
    lead = np.arange(n, dtype=np.int64)  # each row's first copy (itself when single)
    lead[rows] = rows[first][inverse.reshape(-1)]
    if np.array_equal(lead, np.arange(n)):
        return None  # hash collisions of distinct rows only
    firsts = np.flatnonzero(lead == np.arange(n))
    return firsts, np.searchsorted(firsts, lead).astype(np.int64)


def nearest_rows(base: np.ndarray, queries: np.ndarray, k: int, *,
                 self_rows: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The k nearest rows of ``base`` for every query, exact, equal distances to the lower
    row: the plain definition (float64 distances of the float32 inputs), whatever FAISS's
    thread count or tie order.

    FAISS's brute force ranks by float32 expanded forms, so an item it leaves out can
    still tie with (or, within float32's error, beat) the k-th: the search fetches
    ``NEAREST_NEAREST_SPARE`` spare candidates and proves, with the error bound of
    :mod:`alcore._distances`, that no row left out can be among the k nearest; rows it
    cannot prove are searched again with twice the candidates, up to all rows. Exact
    copies tie exactly and would need all their copies fetched: copies among the queries
    are searched once, and a base with copies is searched as its distinct rows, each
    expanded to its lowest copies (:func:`_nearest_with_copies`).

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
    if self_rows is None:
        # Copies among the queries (synthetic points on one segment, repeated rows) have
        # one answer: searched once.
        same = _copies(queries)
        if same is not None:
            firsts, group = same
            sq, ids = nearest_rows(base, np.ascontiguousarray(queries[firsts]), k)
            return sq[group], ids[group]
    copies = _copies(base)
    if copies is not None:
        return _nearest_with_copies(base, queries, k, self_rows, *copies)
    return _nearest_distinct(base, queries, k, self_rows)


def _nearest_with_copies(base: np.ndarray, queries: np.ndarray, k: int,
                         self_rows: np.ndarray | None, firsts: np.ndarray,
                         group: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:func:`nearest_rows` on a base with exact copies: the copies of a row tie exactly,
    so certifying them one by one would fetch every copy (O(N) candidates per query, all
    N on a pool of one repeated row). Instead the distinct rows are searched (in the order
    of their first copies) and each expanded to its lowest copies.

    The k + 1 nearest distinct rows hold every row of the answer: a distinct row nearer
    than the k-th answer has all its copies in it, and among distinct rows tied at the
    k-th distance, one whose first copy is lower than an answer row's is in it too (its
    first copy beats that row), so those in the answer are the first ones by first copy;
    the "+ 1" leaves room for a query's own row, which it cannot take. A distinct row
    behind P rows of strictly nearer ones can give at most k + 1 - P rows to the answer
    (its lowest copies; one may be the query's own), so only those are taken: about k + 1
    candidates per query, more only where distinct rows tie exactly."""
    width = k + 1
    sq_g, ids_g = _nearest_distinct(np.ascontiguousarray(base[firsts]), queries,
                                    min(len(firsts), width), None)
    q, g = ids_g.shape
    members = np.argsort(group, kind="stable")  # rows by group, ascending within
    sizes = np.bincount(group, minlength=len(firsts))
    starts = np.cumsum(sizes) - sizes
    size_g = sizes[ids_g]
    before = np.cumsum(size_g, axis=1) - size_g  # rows of the groups listed earlier
    # Rows strictly nearer: the count before the first group of each run of equal
    # distances (the prefix is non-decreasing, so a running maximum carries it).
    run_start = np.ones((q, g), dtype=bool)
    run_start[:, 1:] = sq_g[:, 1:] != sq_g[:, :-1]
    nearer = np.maximum.accumulate(np.where(run_start, before, 0), axis=1)
    take = np.clip(width - nearer, 0, np.minimum(size_g, width)).reshape(-1)
    total = int(take.sum())
    first = np.repeat(np.cumsum(take) - take, take)
    cand = members[np.repeat(starts[ids_g].reshape(-1), take) + np.arange(total) - first]
    cand_sq = np.repeat(sq_g.reshape(-1), take)
    owner = np.repeat(np.repeat(np.arange(q), g), take)
    if self_rows is not None:
        cand_sq = np.where(cand == self_rows[owner], np.inf, cand_sq)
    order = np.lexsort((cand, cand_sq, owner))  # per query by (distance, row)
    counts = np.bincount(owner, minlength=q)
    pos = (np.cumsum(counts) - counts)[:, None] + np.arange(k)  # every query has >= k
    picked = order[pos]
    return cand_sq[picked], cand[picked].astype(np.int64)


def _nearest_distinct(base: np.ndarray, queries: np.ndarray, k: int,
                      self_rows: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """:func:`nearest_rows` by FAISS's search, certified (its docstring)."""
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
    fetch = min(n, k + drop + NEAREST_SPARE)
    while len(todo):
        sq, ids = _flat_nearest(base, np.ascontiguousarray(queries[todo]), fetch)
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


class GrowingIndex:
    """An exact index that grows as items are taken (flat L2: it holds the labeled and
    the taken items, thousands, not the pool)."""

    def __init__(self, d: int):
        self._index = faiss_module().IndexFlatL2(d)

    def __len__(self) -> int:
        return self._index.ntotal

    def add(self, vectors: np.ndarray) -> None:
        if len(vectors):
            with faiss_threads():
                self._index.add(np.ascontiguousarray(vectors))

    def nearest(self, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Each query's nearest indexed item: its float32 expanded-form squared distance as
        float64 (inf if the index is empty; see alcore._distances for its error bound) and
        its position in insertion order (int64, -1 if none)."""
        if self._index.ntotal == 0:
            return np.full(len(queries), np.inf), np.full(len(queries), -1, dtype=np.int64)
        with faiss_threads():
            distances, ids = self._index.search(np.ascontiguousarray(queries), 1)
        return distances[:, 0].astype(np.float64), ids[:, 0]


def _kmeans_plus_plus(sample: np.ndarray, n_clusters: int, rng: np.random.Generator, *,
                      blas: bool = False) -> np.ndarray:
    """k-means++ seeds (Arthur & Vassilvitskii 2007) drawn from ``sample``: the first
    uniformly, each next with probability proportional to the squared distance to the
    nearest seed so far.

    Distances are float64 expanded forms on the centred sample; those within their error
    bound of 0 are recomputed from differences, so duplicates of a seed weigh exactly 0
    (and "fewer distinct points than clusters" is detected) however far the points lie
    from the origin. ``blas``: the products through BLAS gemv, for a caller that runs
    this on one BLAS thread (then 2-3x faster than einsum); else through einsum."""
    x = sample.astype(np.float64)
    x -= x.mean(axis=0)
    sq = np.einsum("ij,ij->i", x, x)
    norms = np.sqrt(sq)
    largest = float(norms.max())
    d = x.shape[1]
    seeds = [int(rng.integers(len(x)))]
    nearest = np.full(len(x), np.inf)
    # Buffers reused by every step: the loop runs n_clusters times over a few thousand
    # points, where allocating and the per-call overheads cost as much as the arithmetic.
    dist = np.empty(len(x))
    dot = np.empty(len(x))
    cumulative = np.empty(len(x))
    for _ in range(n_clusters - 1):
        c = seeds[-1]
        if blas:
            np.matmul(x, x[c], out=dot)
        else:
            # einsum, not BLAS gemv: single-threaded, it does not wait on a busy BLAS pool
            # (10x faster than gemv on a loaded 2-core machine, as fast on an idle one).
            np.einsum("ij,j->i", x, x[c], out=dot)
        dot *= 2
        np.add(sq, sq[c], out=dist)
        dist -= dot
        # One bound for all rows (the largest norm's): as rigorous as the per-row one, and
        # under it fall only the seed and near-duplicates of it, recomputed from differences.
        near_zero = np.flatnonzero(dist <= _distances.bound64(d, largest, norms[c]))
        if len(near_zero) == 1 and near_zero[0] == c:
            dist[c] = 0.0
        elif len(near_zero):
            dist[near_zero] = _distances.exact_sq(sample, near_zero,
                                                  np.full(len(near_zero), c))
        # Every other row is above a positive bound: no negative distance is left.
        np.minimum(nearest, dist, out=nearest)
        np.cumsum(nearest, out=cumulative)
        if cumulative[-1] <= 0:  # fewer distinct points than clusters
            seeds.append(int(rng.integers(len(x))))
            continue
        seeds.append(min(int(np.searchsorted(cumulative, rng.random() * cumulative[-1],
                                             side="right")), len(x) - 1))
    return np.ascontiguousarray(sample[seeds], dtype=np.float32)


def _train_kmeans(x: np.ndarray, n_clusters: int, seed: int, iterations: int, *,
                  seed_points: int = 40, points_per_centroid: int = 64,
                  blas: bool = False) -> tuple[np.ndarray, Any]:
    """The rows k-means ran on (x centred) and the trained ``faiss.Kmeans``."""
    n, d = x.shape
    # The same clusters, with float32 distances far more accurate on un-centred rows.
    x = _distances.centre(x, norms=False).rows
    rng = np.random.default_rng(seed)
    sample = x[np.sort(rng.choice(n, size=min(n, seed_points * n_clusters), replace=False))]
    init = _kmeans_plus_plus(sample, n_clusters, rng, blas=blas)
    with faiss_threads() as faiss:
        km = faiss.Kmeans(d, n_clusters, niter=iterations, seed=seed,
                          max_points_per_centroid=points_per_centroid,
                          min_points_per_centroid=1)
        km.train(x, init_centroids=init)
    return x, km


def kmeans(x: np.ndarray, n_clusters: int, seed: int, iterations: int = 10, *,
           seed_points: int = 40, points_per_centroid: int = 64,
           blas: bool = False) -> np.ndarray:
    """k-means: the int64 cluster of every row.

    k-means++ seeds from a sample of ``seed_points`` points per cluster, then
    ``iterations`` of FAISS's Lloyd iterations trained on at most ``points_per_centroid``
    points per cluster (centroids settle long before FAISS's default of 256, at a quarter
    of the cost), then one assignment pass over every row. Careful seeding instead of
    FAISS's random initialisation with restarts: one run, and it does not merge two groups
    while splitting another as a single random start often does.

    The defaults (40 seed points, 10 iterations on 64 points per cluster) are what the
    cluster-pruned searches were measured with. :func:`kmeans_for_typiclust` reaches a
    lower inertia at half the cost on TypiClust's shapes: see there. ``blas=True``: the
    seeding's products through BLAS, for a caller that holds :func:`one_blas_thread`.
    """
    n = x.shape[0]
    if n_clusters >= n:
        return np.arange(n, dtype=np.int64)  # one item per cluster
    x, km = _train_kmeans(x, n_clusters, seed, iterations, seed_points=seed_points,
                          points_per_centroid=points_per_centroid, blas=blas)
    with faiss_threads():
        _, labels = km.index.search(x, 1)
    return labels[:, 0].astype(np.int64)


# TypiClust's k-means effort: k-means++ seeds from 10 points per cluster, Lloyd iterations
# on up to 128 points per cluster, as many as fit in 2^31 multiply-adds (n_train x
# clusters x d each), from 4 to 10. Measured at 20k x 128 with 200 clusters (4
# iterations; three seeds each, against scikit-learn's KMeans, which TypiClust in
# scikit-activeml runs to convergence: 12-38 iterations), the inertia is 0.08-0.10 %
# above scikit-learn's on a separated mixture, 0.12-0.15 % on an overlapping one and
# 0.66-0.82 % on isotropic Gaussian data: better than the 40 / 10 x 64 defaults
# (0.12-0.19, 0.19-0.24, 0.74-0.87 %) at half their cost. k-means++ from 4x fewer points
# gives seeds as good after Lloyd (its cost was a third of the clustering's), and Lloyd on
# twice the points fits the pool, not a sample of it; a fifth iteration there gains
# 0.01-0.1 % for a tenth more time. Small problems get more iterations for almost
# nothing: at 4000 x 32 with 80 clusters, 4 iterations left isotropic data 1.5 % above a
# converged k-means, 10 leave 0.7 %. Below about 6 seed points per cluster k-means++
# starts to leave a separated group without a centre (+9 % on one seed).
TYPICLUST_SEED_POINTS = 10
TYPICLUST_POINTS_PER_CENTROID = 128
TYPICLUST_LLOYD_WORK = 2**31
TYPICLUST_ITERATIONS = (4, 10)


def kmeans_for_typiclust(x: np.ndarray, n_clusters: int, seed: int) -> np.ndarray:
    """:func:`kmeans` with TypiClust's effort (``TYPICLUST_*`` above): the int64 cluster
    of every row. Inertia within 1 % of a converged k-means on clustered data, within 2 %
    on data without clusters (isotropic Gaussian)."""
    n, d = x.shape
    # At least 2048 seed points: few clusters cost little to seed from more.
    seed_points = max(TYPICLUST_SEED_POINTS, -(-2048 // max(n_clusters, 1)))
    trained = min(n, TYPICLUST_POINTS_PER_CENTROID * n_clusters)
    fewest, most = TYPICLUST_ITERATIONS
    iterations = min(most, max(fewest, TYPICLUST_LLOYD_WORK // max(trained * n_clusters * d, 1)))
    # numpy's BLAS (the seeding's products, and the picks') on one thread: on a busy
    # 2-core machine two BLAS threads wait on each other. FAISS's own products follow its
    # OpenMP count (faiss-cpu's OpenBLAS is the OpenMP build), which faiss_threads sets to
    # alcore's. TypiClust at 20k x 128, k = 100 (medians of 8, alternating): 170-200 ms with
    # the limit (here and in the picks), 490-630 ms without on the synthetic shapes, as
    # fast on the real one; at 100k x 128 real, 0.86 against 1.63 s.
    with one_blas_thread():
        return kmeans(x, n_clusters, seed, iterations, seed_points=seed_points,
                      points_per_centroid=TYPICLUST_POINTS_PER_CENTROID, blas=True)


@dataclass(frozen=True)
class ClusterGeometry:
    """Rows grouped by cluster, with each cluster's centre and radius (float64): what the
    triangle-inequality searches below need."""

    order: np.ndarray  # row indices grouped by cluster
    bounds: np.ndarray  # cluster c owns order[bounds[c]:bounds[c + 1]]
    centers: np.ndarray  # (K, d) float64
    radius: np.ndarray  # largest member distance to the centre (float64 differences)
    center_dist: np.ndarray  # (K, K) lower bounds of the distances between centres

    def members(self, c: int) -> np.ndarray:
        return self.order[self.bounds[c]:self.bounds[c + 1]]

    def members_of(self, clusters: np.ndarray) -> np.ndarray:
        return np.concatenate([self.members(int(c)) for c in clusters])

    @property
    def sizes(self) -> np.ndarray:
        return np.diff(self.bounds)


def cluster_geometry(x: np.ndarray, n_clusters: int, seed: int) -> ClusterGeometry:
    n, d = x.shape
    n_clusters = int(min(n, max(1, n_clusters)))
    labels = kmeans(x, n_clusters, seed) if n_clusters > 1 else np.zeros(n, dtype=np.int64)
    order = np.argsort(labels, kind="stable")
    bounds = np.searchsorted(labels[order], np.arange(n_clusters + 1))
    sizes = np.diff(bounds)
    nonempty = sizes > 0
    xs = x[order]
    # Sums and maxima over each cluster's contiguous block (reduceat; empty clusters masked).
    centers = np.zeros((n_clusters, d))
    centers[nonempty] = np.add.reduceat(xs, bounds[:-1][nonempty], axis=0, dtype=np.float64)
    centers[nonempty] /= sizes[nonempty, None]
    spread = np.empty(n)
    for start in range(0, n, 65_536):  # float64 deviations a block at a time
        stop = min(n, start + 65_536)
        deviation = xs[start:stop] - centers[labels[order[start:stop]]]
        spread[start:stop] = np.sqrt(np.einsum("ij,ij->i", deviation, deviation))
    # Any point can serve as a cluster's centre for the triangle inequality as long as the
    # radius is the largest distance to that same point, so float rounding in the centre
    # does not matter.
    radius = np.zeros(n_clusters)
    radius[nonempty] = np.maximum.reduceat(spread, bounds[:-1][nonempty])
    # float64 rounding of the radii (relative 1e-16 per operation) must not shrink them.
    radius *= 1 + 1e-12
    # Lower bounds: the float64 expanded form less its error bound, so the triangle
    # inequality never prunes a pair it should keep.
    c_sq = np.einsum("ij,ij->i", centers, centers)
    c_norm = np.sqrt(c_sq)
    sq = c_sq[:, None] + c_sq[None, :] - 2 * centers @ centers.T
    sq -= _distances.bound64(d, c_norm[:, None], c_norm[None, :])
    center_dist = np.sqrt(np.maximum(sq, 0))
    return ClusterGeometry(order, bounds, centers, radius, center_dist)


# A cluster whose triangle-inequality reach takes in more than this share of the rows is
# searched by FAISS against all of them (range_graph).
DENSE_RANGE_SHARE = 0.3


def range_graph(x: np.ndarray, radius: float, seed: int = 0,
                progress: Callable[[int, int], Any] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """All pairs within ``radius`` (L2, inclusive, each row's own index included), as a
    symmetric CSR graph: neighbours of row i are ids[offsets[i]:offsets[i + 1]], sorted.

    The rows are centred and clustered (k-means, about sqrt(N) clusters); two clusters are
    compared only if the triangle inequality allows a pair within ``radius`` between them
    (a lower bound of the centre distance <= both cluster radii + ``radius`` + the largest
    centring error), so clustered embeddings cost far less than all N^2 pairs. Compared
    clusters go through one float32 matrix product each (a cluster within reach of more than
    ``DENSE_RANGE_SHARE`` of the rows, as on unstructured data, through FAISS's range search
    against all rows instead); pairs within the error bound of
    :mod:`alcore._distances` of ``radius^2`` are decided again with float64 differences of
    the float32 inputs, so the graph is that of the exact distances (a pair at exactly
    ``radius`` is an edge).
    """
    n, d = x.shape
    centred = _distances.centre(x)
    rows_c, norms = centred.rows, centred.norms
    geometry = cluster_geometry(rows_c, round(np.sqrt(n)), seed)
    sizes = geometry.sizes
    radius_sq = radius * radius
    sq_norms = _distances.sq_norms32(rows_c)
    # A pair's distance between centred rows differs from the true one by at most
    # u (|c_p| + |c_q|) (see alcore._distances): widen the pruning radius by that.
    slack = 2.0 * _distances.U32 * float(norms.max()) * 1.01
    rows_out: list[np.ndarray] = []
    cols_out: list[np.ndarray] = []

    def keep_edges(rows: np.ndarray, cols: np.ndarray, approx: np.ndarray,
                   err: np.ndarray) -> None:
        """Keep the candidate pairs (rows[i], cols[i]) whose exact distance is within."""
        keep = _distances.at_most(
            approx, err, radius_sq,
            lambda pos: _distances.exact_sq(x, rows[pos], cols[pos]))
        rows_out.append(rows[keep])
        cols_out.append(cols[keep])

    # FAISS's range search (below) takes one threshold for every pair: radius^2 + the bound
    # of the two largest norms. When that bound outgrows radius^2 (a few rows far out, the
    # rest near the mean), almost every pair is a candidate and each block of queries
    # returns 16k x N of them (8000 x 32 with one row at 1e4: 3.8 GB, 51 s, against 8 MB,
    # 3 s pruned); the pruned path's per-block bounds stay tight, so it takes every cluster.
    widest = float(_distances.bound(d, norms.max(), norms.max()))
    dense_share = DENSE_RANGE_SHARE * n if widest <= radius_sq else np.inf
    done = 0
    dense: list[np.ndarray] = []  # members of the clusters the pruning cannot narrow
    for a in np.flatnonzero(sizes):
        reach = geometry.radius[a] + geometry.radius + radius + slack
        near = np.flatnonzero((geometry.center_dist[a] <= reach) & (sizes > 0))
        rows = geometry.members(a)
        if sizes[near].sum() > dense_share:
            dense.append(rows)
            continue
        cols = geometry.members_of(near)
        sq = _distances.expanded_sq(rows_c[rows], sq_norms[rows], rows_c[cols], sq_norms[cols])
        # One bound per row, with the block's largest column norm (a vector, not a matrix).
        err = _distances.bound(d, norms[rows], float(norms[cols].max()))[:, None]
        r, c = np.nonzero(sq <= radius_sq + err)
        keep_edges(rows[r], cols[c], sq[r, c], err[r, 0])
        done += len(rows)
        if progress is not None:
            progress(done, n)
    if dense:
        # FAISS's range search against every row: a fused product-and-threshold in blocks of
        # thousands of queries, about 3x cheaper per pair than the product, comparison and
        # nonzero above (unstructured data: 24 s -> 9 s for 30k x 128). Pairs in clusters the
        # pruning would have skipped are found too; they are true edges either way. FAISS
        # returns d < t for a float32 t: rounded up past radius^2 + the largest bound, so a
        # pair left out has an exact distance above radius.
        wanted = radius_sq + widest
        # Beyond float32's range every pair is a candidate: inf, without np.float32's
        # overflow warning (an error under -W error).
        t32 = (np.float32(wanted) if wanted < float(np.finfo(np.float32).max)
               else np.float32(np.inf))
        if float(t32) <= wanted:
            t32 = np.nextafter(t32, np.float32(np.inf))
        queries = np.concatenate(dense)
        with faiss_threads() as faiss:
            index = faiss.IndexFlatL2(d)
            index.add(rows_c)
            for start in range(0, len(queries), QUERY_BATCH):
                block = queries[start:start + QUERY_BATCH]
                lims, approx, cols = index.range_search(rows_c[block], float(t32))
                rows = np.repeat(block, np.diff(lims.astype(np.int64)))
                keep_edges(rows, cols.astype(np.int64), approx,
                           _distances.bound(d, norms[rows], norms[cols]))
                done += len(block)
                if progress is not None:
                    progress(done, n)
    src = np.concatenate(rows_out).astype(np.int64)
    dst = np.concatenate(cols_out).astype(np.int64)
    by_row = np.lexsort((dst, src))
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(src, minlength=n), out=offsets[1:])
    return offsets, dst[by_row]


def knn_self_join(x: np.ndarray, k: int, seed: int,
                  progress: Callable[[int, int], Any] | None = None
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Exact k nearest rows of every row of x (itself included), for large N.

    Rows are clustered (about 1000 per cluster). For a cluster A, its own members give
    every row p a first k-th distance U_p. A row p can then have a true neighbour in
    cluster B only if |p - c_B| - r_B <= U_p (triangle inequality), so only the clusters
    some row still needs are searched, which on clustered embeddings is a handful.
    Distances come from float32 matrix products on the rows sorted by cluster (contiguous
    blocks, no gathers), ranked without the row's own norm (constant per row) and the k
    smallest per row taken by a native selection. Returns squared distances (float32,
    >= 0) and ids (int64), shape (N, k), nearest first.
    """
    n, d = x.shape
    geometry = cluster_geometry(x, round(n / 1000), seed)
    sizes, bounds, order = geometry.sizes, geometry.bounds, geometry.order
    xs = x[order]  # rows grouped by cluster: every cluster is a contiguous block
    norms = np.einsum("ij,ij->i", xs, xs)
    row_norm = _distances.row_norms(xs)
    max_norm = float(row_norm.max())
    c_sq = np.einsum("ij,ij->i", geometry.centers, geometry.centers)
    c_norm = np.sqrt(c_sq)
    out_sq = np.empty((n, k), dtype=np.float32)
    out_ids = np.empty((n, k), dtype=np.int64)

    def block(clusters: np.ndarray) -> np.ndarray:
        """Sorted-space positions of the members of ``clusters``."""
        return np.concatenate([np.arange(bounds[c], bounds[c + 1]) for c in clusters])

    def partial_sq(queries: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """|y|^2 - 2 q.y: the squared distance less |q|^2, which does not change a row's
        ranking."""
        d = queries @ xs[cols].T
        d *= -2
        d += norms[cols][None, :]
        return d

    done = 0
    for a in np.flatnonzero(sizes):
        queries = xs[bounds[a]:bounds[a + 1]]
        own_norms = norms[bounds[a]:bounds[a + 1]]
        # First candidates: the cluster itself, widened by the nearest clusters (by the
        # cluster-level bound) while it holds fewer than k items.
        lower = np.maximum(geometry.center_dist[a] - geometry.radius[a] - geometry.radius, 0)
        lower[sizes == 0] = np.inf
        lower[a] = -1.0
        by_bound = np.argsort(lower, kind="stable")
        first = int(np.searchsorted(np.cumsum(sizes[by_bound]), k)) + 1
        searched = by_bound[:first]
        cols = block(searched)
        part, pos = _core.smallest_k_per_row(partial_sq(queries, cols), k)
        ids = cols[pos]
        # Per-row bound: which clusters can still hold a neighbour of some row. A cluster
        # is skipped only when a lower bound of its distance to the row exceeds an upper
        # bound of the row's k-th distance (alcore._distances bounds on both).
        points = queries.astype(np.float64)
        own = row_norm[bounds[a]:bounds[a + 1]]
        sq_centers = (np.einsum("ij,ij->i", points, points)[:, None] + c_sq[None, :]
                      - 2 * points @ geometry.centers.T)
        sq_centers -= _distances.bound64(d, own[:, None], c_norm[None, :])
        to_centers = np.sqrt(np.maximum(sq_centers, 0))
        kth_sq = part[:, -1].astype(np.float64) + own_norms + _distances.bound(d, own, max_norm)
        kth = np.sqrt(np.maximum(kth_sq, 0))
        need = (to_centers - geometry.radius[None, :]) <= kth[:, None]
        need[:, searched] = False
        need[:, sizes == 0] = False
        more_clusters = np.flatnonzero(need.any(axis=0))
        if len(more_clusters):
            more = block(more_clusters)
            extra, extra_pos = _core.smallest_k_per_row(partial_sq(queries, more),
                                                        min(k, len(more)))
            # The k best of both candidate lists (2k columns, not k + len(more)).
            part, pos = _core.smallest_k_per_row(np.hstack([part, extra]), k)
            both = np.hstack([ids, more[extra_pos]])
            ids = np.take_along_axis(both, pos, axis=1)
        rows = order[bounds[a]:bounds[a + 1]]
        out_sq[rows] = np.maximum(part + own_norms[:, None], 0)
        out_ids[rows] = order[ids]
        done += len(rows)
        if progress is not None:
            progress(done, n)
    return out_sq, out_ids


def _nearest_centroids(rows: np.ndarray, centroids: np.ndarray,
                       probes: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``probes`` centroids nearest each row (int64, shape (N, probes)), nearest first,
    equal distances to the lower index, and their float32 expanded-form squared distances
    (>= 0). numpy's float32 matrix product, not FAISS's: its result does not change with
    alcore's thread count."""
    c_sq = np.einsum("ij,ij->i", centroids, centroids)
    out = np.empty((len(rows), probes), dtype=np.int64)
    out_sq = np.empty((len(rows), probes), dtype=np.float32)
    step = max(1, 2**22 // max(1, len(centroids)))  # (step x clusters) float32 blocks
    for start in range(0, len(rows), step):
        block = rows[start:start + step]
        part = block @ centroids.T  # |c|^2 - 2 x.c ranks like |x - c|^2
        part *= -2
        part += c_sq[None, :]
        at = np.arange(len(part))
        own_sq = np.einsum("ij,ij->i", block, block)
        # A few probes: one argmin (the first minimum: the lower index) per probe.
        for j in range(probes):
            out[start:start + step, j] = best = np.argmin(part, axis=1)
            out_sq[start:start + step, j] = np.maximum(part[at, best] + own_sq, 0)
            part[at, best] = np.inf
    return out, out_sq


_blas_lock = threading.Lock()
_blas_users = 0
_blas_limits: Any = None


@contextlib.contextmanager
def one_blas_thread() -> Iterator[None]:
    """BLAS on one thread for the block (threadpoolctl: every BLAS loaded; an OpenMP-built
    one, as FAISS's, then follows the OpenMP count of :func:`faiss_threads`), restored
    afterwards: the products of knn_ivf, TypiClust's seeding and its typicality are small,
    and two BLAS threads on them ran 4-20x slower than one on a busy 2-core machine
    (316 x 316 x 128: 1.3 against 28 GFLOPS); knn_ivf runs several of them in parallel
    instead. Concurrent callers share one limit (the last to leave restores the user's
    setting)."""
    global _blas_users, _blas_limits
    # threadpoolctl scans the loaded libraries on every call (0.5-3 ms): a cached view
    # would miss a BLAS loaded later (the hostile review's ctypes.CDLL case).
    from threadpoolctl import threadpool_limits

    with _blas_lock:
        if _blas_users == 0:
            _blas_limits = threadpool_limits(limits=1, user_api="blas")
        _blas_users += 1
    try:
        yield
    finally:
        with _blas_lock:
            _blas_users -= 1
            if _blas_users == 0:
                _blas_limits.restore_original_limits()
                _blas_limits = None


def knn_ivf(x: np.ndarray, k: int, clusters: int, probes: int, seed: int,
            progress: Callable[[int, int], Any] | None = None
            ) -> tuple[np.ndarray, np.ndarray]:
    """Approximate k nearest rows of every row of x (itself included): an inverted-file
    (IVF) search run as a self-join.

    The rows are split into ``clusters`` k-means cells (FAISS k-means, as :func:`kmeans`)
    and every row is compared with the members of the ``probes`` cells whose centroids are
    nearest to it (its own cell first), as FAISS's IVF-Flat with ``nprobe = probes`` does.
    Instead of FAISS's per-query scan of each list, every cell is compared at once with
    all the queries that probe it, in one float32 matrix product on the rows sorted by
    cell (contiguous blocks), into FAISS's per-query heaps: 4x faster than
    ``IndexIVFFlat.search_preassigned`` on the same probes. Each query's own cell goes
    first; a probed cell that the triangle inequality then rules out (the distance to its
    centroid less its radius exceeds the query's k-th distance so far) is skipped, which
    on well-separated clusters skips most probes. Cells are processed on
    ``alcore.get_num_threads()`` threads, each cell's result independent of the others,
    so the result does not depend on the thread count. A row whose probed cells hold
    fewer than k items in all gets the exact flat search. Returns squared distances
    (float32, >= 0) and ids (int64), shape (N, k), nearest first.
    """
    from concurrent.futures import ThreadPoolExecutor

    n, d = x.shape
    clusters = int(min(n, max(1, clusters)))
    probes = int(min(clusters, max(1, probes)))
    if clusters > 1:
        rows, km = _train_kmeans(x, clusters, seed, IVF_KMEANS_ITERATIONS)
        centroids = np.ascontiguousarray(km.centroids, dtype=np.float32)
    else:
        rows, centroids = x, x.mean(axis=0, keepdims=True, dtype=np.float64)
    rows = np.ascontiguousarray(rows, dtype=np.float32)
    near, near_sq = _nearest_centroids(rows, centroids.astype(np.float32), probes)
    order = np.argsort(near[:, 0], kind="stable")
    bounds = np.searchsorted(near[order, 0], np.arange(clusters + 1))
    xs = rows[order]  # rows grouped by cell: every cell is a contiguous block
    sq = np.einsum("ij,ij->i", xs, xs)
    xs_m2 = xs * np.float32(-2)  # exact: q.(-2 y) is -2 (q.y) to the bit
    near = near[order]
    to_cell = np.sqrt(near_sq[order])  # each row's distance to its probed centroids
    out_sq = np.empty((n, k), dtype=np.float32)
    out_ids = np.empty((n, k), dtype=np.int64)

    def cell(c: int, start: int, queries: np.ndarray) -> np.ndarray:
        """|y|^2 - 2 q.y (ranks like |q - y|^2 for a given q) for the block's ``queries``
        against the members y of cell c."""
        part = xs[start + queries] @ xs_m2[bounds[c]:bounds[c + 1]].T
        part += sq[None, bounds[c]:bounds[c + 1]]
        return part

    # Each cell's radius (largest member distance to its centroid), for the triangle
    # inequality below, from the float32 expanded forms: an approximate search needs no
    # rigorous bound, only one that rarely skips a useful cell, hence the generous slack.
    nonempty = np.diff(bounds) > 0
    radius = np.zeros(clusters, dtype=np.float32)
    radius[nonempty] = np.maximum.reduceat(to_cell[:, 0], bounds[:-1][nonempty])
    slack = 1e-2 * (float(np.sqrt(sq.max())) + 1e-30)

    def by_cell(cells: np.ndarray, queries: np.ndarray) -> list[tuple[int, np.ndarray]]:
        """(cell, its queries) for the pairs queries[i] -> cells[i], in cell order."""
        grouped = np.argsort(cells, kind="stable")
        cuts = np.searchsorted(cells[grouped], np.arange(clusters + 1))
        return [(int(c), queries[grouped[cuts[c]:cuts[c + 1]]])
                for c in np.flatnonzero((np.diff(cuts) > 0) & nonempty)]

    workers = _threads.get_num_threads()
    with (faiss_threads() as faiss, one_blas_thread(),
          ThreadPoolExecutor(workers) as pool):

        def feed(heap: Any, start: int, todo: list[tuple[int, np.ndarray]]) -> None:
            """The todo cells' members into the queries' heaps, in todo order (the
            products run ahead on the worker threads, a few cells at a time): equal
            distances keep the earlier cell's item, whatever the thread count."""
            pending: collections.deque[Any] = collections.deque()
            for i, (c, queries) in enumerate(todo):
                pending.append((c, queries, pool.submit(cell, c, start, queries)))
                while len(pending) > 2 * workers or (pending and i == len(todo) - 1):
                    done_c, done_q, future = pending.popleft()
                    heap.add_result_subset(done_q, future.result(),
                                           np.arange(bounds[done_c], bounds[done_c + 1]))

        for start in range(0, n, IVF_QUERY_BLOCK):
            stop = min(n, start + IVF_QUERY_BLOCK)
            local = np.arange(stop - start)
            # FAISS's k-max-heaps, one per query: first each query's own cell, ...
            heap = faiss.ResultHeap(stop - start, k)
            feed(heap, start, by_cell(near[start:stop, 0], local))
            if probes > 1:
                # ... then its other probed cells, those the triangle inequality does not
                # rule out: |q - c| - radius(c) above the k-th distance found so far
                # (the max-heap's top) cannot hold a nearer item.
                if progress is not None:  # about 1 / probes of the block's work
                    progress(start + (stop - start) // probes, n)
                kth = np.sqrt(np.maximum(heap.D[:, 0].astype(np.float64) + sq[start:stop], 0))
                others = near[start:stop, 1:]
                keep = (to_cell[start:stop, 1:] - radius[others]
                        <= (kth + slack)[:, None])
                queries = np.broadcast_to(local[:, None], others.shape)[keep]
                feed(heap, start, by_cell(others[keep], queries))
            heap.finalize()
            block = order[start:stop]
            out_sq[block] = np.maximum(heap.D + sq[start:stop, None], 0)
            out_ids[block] = np.where(heap.I >= 0, order[np.maximum(heap.I, 0)], -1)
            if progress is not None:
                progress(stop, n)
    short = np.flatnonzero(out_ids[:, -1] < 0)
    if len(short):  # probed cells with fewer than k items in all: exact search
        with faiss_threads() as faiss:
            flat = faiss.IndexFlatL2(d)
            flat.add(rows)
            out_sq[short], out_ids[short] = flat.search(rows[short], k)
        np.maximum(out_sq, 0, out=out_sq)
    return out_sq, out_ids


# PoolSketch's clustering (alcore.monitor): Lloyd iterations and the points per centroid
# they train on. FAISS's own defaults (25 iterations, 256 points per centroid): the
# centroids are made once per pool, on a sample of at most 100k rows, where a better
# clustering costs a second or two at most.
SKETCH_KMEANS_ITERATIONS = 25
SKETCH_POINTS_PER_CENTROID = 256


def kmeans_centroids(x: np.ndarray, n_clusters: int, seed: int,
                     name: str = "embeddings") -> np.ndarray:
    """k-means centroids of the rows of x, in x's own coordinates.

    k-means++ seeds and FAISS's Lloyd iterations (:func:`_train_kmeans`, with the
    ``SKETCH_*`` effort above) on x centred on its float64 mean, then moved back.

    Parameters
    ----------
    x : float32 (n, d), C-contiguous, finite.
    n_clusters : int >= 1. With ``n_clusters >= n`` every row is its own centroid.
    seed : int >= 0.
    name : str
        The argument named in the error on rows too spread out for float32 distances.

    Returns
    -------
    float64 (min(n_clusters, n), d)
    """
    n = x.shape[0]
    if n_clusters >= n:
        return x.astype(np.float64)
    centred = _distances.centre(x, name, norms=False)
    _, km = _train_kmeans(np.ascontiguousarray(centred.rows, dtype=np.float32), n_clusters,
                          seed, SKETCH_KMEANS_ITERATIONS,
                          points_per_centroid=SKETCH_POINTS_PER_CENTROID)
    return np.asarray(km.centroids, dtype=np.float64).reshape(n_clusters, -1) + centred.mean


def assign(x: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """The nearest centroid of every row of x (int64, shape (n,)); equal distances go to
    the lower centroid id.

    Rows and centroids are moved by the centroids' mean rounded to float32, s (the
    difference of two float32 numbers rounded once is what float64 arithmetic rounded to
    float32 gives, so the float32 subtraction is as exact; the float32 error then scales
    with the spread, not with the distance from the origin), and ranked by numpy's
    float32 expanded form (:func:`_nearest_centroids`). Where the two nearest lie within
    twice the expanded form's error bound (:func:`alcore._distances.bound`, from float32
    row norms raised by 1e-5, beyond their rounding) of each other, the row is decided
    again from float64 differences of the row and every centroid as given. A row's answer
    is therefore a function of the row alone, not of the block it was passed in, so a pool
    assigned chunk by chunk gets the same clusters as in one call.

    Parameters
    ----------
    x : float32 (n, d), finite.
    centroids : float64 (K, d), K >= 1.
    """
    n, d = x.shape
    k = centroids.shape[0]
    if k == 1:
        return np.zeros(n, dtype=np.int64)
    shift = centroids.mean(axis=0).astype(np.float32)
    c32 = np.ascontiguousarray(centroids - shift.astype(np.float64), dtype=np.float32)
    c64 = c32.astype(np.float64)
    largest = float(np.sqrt(np.einsum("ij,ij->i", c64, c64).max()))
    out = np.empty(n, dtype=np.int64)
    step = max(1, _distances._BLOCK_ELEMENTS // max(d, 1))
    exact_step = max(1, _distances._BLOCK_ELEMENTS // max(k * d, 1))
    for start in range(0, n, step):
        rows = x[start:start + step] - shift
        ids, sq = _nearest_centroids(rows, c32, 2)
        out[start:start + step] = ids[:, 0]
        # A float32 |x|^2 beyond 3.4e38 makes both distances inf and the gap NaN: such a
        # row is unclear too, and decided in float64.
        with np.errstate(invalid="ignore", over="ignore"):
            gap = sq[:, 1].astype(np.float64) - sq[:, 0]
            norms = np.sqrt(np.einsum("ij,ij->i", rows, rows).astype(np.float64)) * (1 + 1e-5)
        limit = 2 * _distances.bound(d, norms, largest)
        unclear = np.flatnonzero(~(gap > limit))
        for first in range(0, len(unclear), exact_step):
            which = unclear[first:first + exact_step]
            # The definition: float64 differences of the inputs themselves (the shifted
            # float32 rows and centroids can turn an exact tie into a near one).
            diff = x[start + which, None, :].astype(np.float64) - centroids[None, :, :]
            np.square(diff, out=diff)
            out[start + which] = np.argmin(diff.sum(axis=2), axis=1)  # first: lower id
    return out


# A sample index up to this many rows is FAISS's brute force (exact); above it an IVF index
# trained on the sample, probing SAMPLE_INDEX_PROBES cells per query.
SAMPLE_FLAT_MAX_ROWS = 4096
SAMPLE_INDEX_PROBES = 8


class SampleIndex:
    """A FAISS index over a sample of the pool's embeddings, made on the driver and queried
    by the workers of :mod:`alcore.distributed`.

    It travels as FAISS's own serialised bytes (``faiss.serialize_index``) beside the
    sample rows, never as a pickled FAISS object; each process deserialises it once, on
    first use. The search's candidates are re-ranked by float64 distances to the sample
    rows, so the neighbours kept do not depend on FAISS's thread count.

    Attributes
    ----------
    sample : numpy.ndarray of shape (S, d), float32
    kind : str
        ``"flat"`` (exact) or ``"ivf"`` (approximate).
    probes : int
        IVF cells searched per query (0 for flat).
    """

    def __init__(self, sample: np.ndarray, seed: int) -> None:
        faiss = faiss_module()
        self.sample = np.ascontiguousarray(sample, dtype=np.float32)
        n, d = self.sample.shape
        self._mean = self.sample.mean(axis=0, dtype=np.float64).astype(np.float32)
        centred = self.sample - self._mean  # float32 expanded forms err with the spread
        with faiss_threads():
            if n <= SAMPLE_FLAT_MAX_ROWS:
                index = faiss.IndexFlatL2(d)
                self.kind, self.probes = "flat", 0
            else:
                cells = max(1, round(IVF_CLUSTERS_PER_SQRT_N * np.sqrt(n)))
                index = faiss.IndexIVFFlat(faiss.IndexFlatL2(d), d, cells)
                index.cp.seed = int(seed)
                index.train(centred)
                index.nprobe = self.probes = min(cells, SAMPLE_INDEX_PROBES)
                self.kind = "ivf"
            index.add(centred)
            self._bytes = faiss.serialize_index(index)
        self._index: Any = index

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_index"] = None  # the bytes travel; the FAISS object is made again
        return state

    @property
    def nbytes(self) -> int:
        """Bytes shipped to each worker: the serialised index and the sample."""
        return int(self._bytes.nbytes + self.sample.nbytes)

    def neighbours(self, queries: np.ndarray, k: int,
                   self_rows: np.ndarray | None = None) -> np.ndarray:
        """Squared distances (float64, shape (Q, k), ascending) of each query to its k
        nearest sample rows found by the index, ``self_rows[i]`` (a sample row, or -1) never
        counting as query i's neighbour. Rows the search did not reach are inf."""
        faiss = faiss_module()
        if self._index is None:
            self._index = faiss.deserialize_index(self._bytes)
            if self.kind == "ivf":
                self._index.nprobe = self.probes
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        wanted = min(len(self.sample), k + 1 + 4)  # spares: near-ties re-decided in float64
        out = np.empty((len(queries), k))
        for start in range(0, len(queries), QUERY_BATCH):
            block = queries[start:start + QUERY_BATCH]
            with faiss_threads():
                _, ids = self._index.search(block - self._mean, wanted)
            found = ids >= 0
            exact = _distances.exact_sq_to_base(block, self.sample, np.where(found, ids, 0))
            exact[~found] = np.inf
            if self_rows is not None:
                exact[ids == self_rows[start:start + QUERY_BATCH, None]] = np.inf
            exact.sort(axis=1)
            out[start:start + len(block)] = exact[:, :k]
        return out
