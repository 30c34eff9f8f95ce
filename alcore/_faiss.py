"""The only module that imports FAISS (lazily). Index choice lives here.

FAISS runs its own OpenMP pool: its thread count follows ``alcore.set_num_threads``, and the
OpenMP wait policy defaults to PASSIVE (idle FAISS threads otherwise spin and slow every
other pool on a small machine).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from alcore import _core, _threads

# Below this many items FAISS's brute-force search (BLAS) is the fastest exact search;
# above it the cluster-pruned self-join (knn_self_join) is.
EXACT_MAX_ITEMS = 100_000
# Queries per FAISS call: bounds the (batch x k) result buffers and paces progress reports.
QUERY_BATCH = 16_384

_faiss: Any = None


def faiss_module() -> Any:
    """Import FAISS on first use and tie its thread count to alcore's."""
    global _faiss
    if _faiss is None:
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        import faiss

        _faiss = faiss
        _threads.on_num_threads_change(faiss.omp_set_num_threads)
    return _faiss


@dataclass(frozen=True)
class IndexChoice:
    """How a neighbour search is run; recorded in results so users can see it."""

    kind: str  # "flat" (FAISS brute force) or "clustered" (cluster-pruned self-join)
    clusters: int = 0


def choose_index(n: int, exact: bool | None) -> IndexChoice:
    """FAISS brute force up to EXACT_MAX_ITEMS items or when ``exact`` is True; above, the
    cluster-pruned self-join (knn_self_join), which is exact as well: no approximate index
    is needed. Measured on clustered 128-d embeddings (benchmarks/conftest.py: mixture),
    1M items, k = 10: the self-join took 1/43 of brute force's time (59 s), where an
    IVF-SQ8 index (nlist 1024, nprobe 8) reached only recall@10 = 0.96 at 1/19 and
    IVF-Flat 0.98 at 1/13.
    """
    if exact or n <= EXACT_MAX_ITEMS:
        return IndexChoice("flat")
    return IndexChoice("clustered", clusters=round(n / 1000))


def knn(x: np.ndarray, k: int, choice: IndexChoice, seed: int,
        progress: Callable[[int, int], Any] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Each row's k nearest rows of x (itself included when it is among them).

    Returns squared L2 distances (float32, >= 0) and ids (int64), both of shape (N, k),
    sorted by distance.
    """
    if choice.kind == "clustered":
        return knn_self_join(x, k, seed, progress)
    faiss = faiss_module()
    n, d = x.shape
    index = faiss.IndexFlatL2(d)
    index.add(x)
    distances = np.empty((n, k), dtype=np.float32)
    ids = np.empty((n, k), dtype=np.int64)
    for start in range(0, n, QUERY_BATCH):
        stop = min(n, start + QUERY_BATCH)
        distances[start:stop], ids[start:stop] = index.search(x[start:stop], k)
        if progress is not None:
            progress(stop, n)
    np.maximum(distances, 0, out=distances)  # BLAS distance expansion can dip below 0
    return distances, ids


class GrowingIndex:
    """An exact index that grows as items are taken (flat L2: it holds the labeled and
    the taken items, thousands, not the pool)."""

    def __init__(self, d: int):
        self._index = faiss_module().IndexFlatL2(d)

    def __len__(self) -> int:
        return self._index.ntotal

    def add(self, vectors: np.ndarray) -> None:
        if len(vectors):
            self._index.add(vectors)

    def nearest(self, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Each query's nearest indexed item: its float32 expanded-form squared distance as
        float64 (inf if the index is empty; see alcore._distances for its error bound) and
        its position in insertion order (int64, -1 if none)."""
        if self._index.ntotal == 0:
            return np.full(len(queries), np.inf), np.full(len(queries), -1, dtype=np.int64)
        distances, ids = self._index.search(np.ascontiguousarray(queries), 1)
        return distances[:, 0].astype(np.float64), ids[:, 0]


def _kmeans_plus_plus(sample: np.ndarray, n_clusters: int,
                      rng: np.random.Generator) -> np.ndarray:
    """k-means++ seeds (Arthur & Vassilvitskii 2007) drawn from ``sample``: the first
    uniformly, each next with probability proportional to the squared distance to the
    nearest seed so far."""
    x = sample.astype(np.float64)
    sq = np.einsum("ij,ij->i", x, x)
    seeds = [int(rng.integers(len(x)))]
    nearest = np.full(len(x), np.inf)
    for _ in range(n_clusters - 1):
        c = seeds[-1]
        np.minimum(nearest, np.maximum(sq + sq[c] - 2 * (x @ x[c]), 0), out=nearest)
        total = nearest.sum()
        if total <= 0:  # fewer distinct points than clusters
            seeds.append(int(rng.integers(len(x))))
            continue
        cumulative = np.cumsum(nearest)
        seeds.append(min(int(np.searchsorted(cumulative, rng.random() * cumulative[-1],
                                             side="right")), len(x) - 1))
    return np.ascontiguousarray(sample[seeds], dtype=np.float32)


def kmeans(x: np.ndarray, n_clusters: int, seed: int, iterations: int = 10) -> np.ndarray:
    """k-means: the int64 cluster of every row.

    k-means++ seeds from a sample of 40 points per cluster, then FAISS's Lloyd iterations
    (trained on at most 64 points per cluster: centroids settle long before FAISS's
    default of 256, at a quarter of the cost). Careful seeding instead of FAISS's random
    initialisation with restarts: one run, and it does not merge two groups while
    splitting another as a single random start often does.
    """
    faiss = faiss_module()
    n, d = x.shape
    if n_clusters >= n:
        return np.arange(n, dtype=np.int64)  # one item per cluster
    rng = np.random.default_rng(seed)
    sample = x[np.sort(rng.choice(n, size=min(n, 40 * n_clusters), replace=False))]
    km = faiss.Kmeans(d, n_clusters, niter=iterations, seed=seed,
                      max_points_per_centroid=64, min_points_per_centroid=1)
    km.train(x, init_centroids=_kmeans_plus_plus(sample, n_clusters, rng))
    _, labels = km.index.search(x, 1)
    return labels[:, 0].astype(np.int64)


@dataclass(frozen=True)
class ClusterGeometry:
    """Rows grouped by cluster, with each cluster's centre and radius (float64): what the
    triangle-inequality searches below need."""

    order: np.ndarray  # row indices grouped by cluster
    bounds: np.ndarray  # cluster c owns order[bounds[c]:bounds[c + 1]]
    centers: np.ndarray  # (K, d) float64
    radius: np.ndarray  # largest member distance to the centre
    center_dist: np.ndarray  # (K, K) distances between centres

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
    c_sq = np.einsum("ij,ij->i", centers, centers)
    center_dist = np.sqrt(np.maximum(c_sq[:, None] + c_sq[None, :] - 2 * centers @ centers.T, 0))
    return ClusterGeometry(order, bounds, centers, radius, center_dist)


def _sq_distances(x: np.ndarray, norms: np.ndarray, rows: np.ndarray,
                  cols: np.ndarray) -> np.ndarray:
    """(len(rows), len(cols)) squared L2 distances, float32, by one matrix product."""
    sq = x[rows] @ x[cols].T
    sq *= -2
    sq += norms[rows][:, None]
    sq += norms[cols][None, :]
    return sq


def range_graph(x: np.ndarray, radius: float, seed: int = 0,
                progress: Callable[[int, int], Any] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """All pairs within ``radius`` (L2, inclusive, each row's own index included), as a
    symmetric CSR graph: neighbours of row i are ids[offsets[i]:offsets[i + 1]], sorted.

    The rows are clustered (k-means, about sqrt(N) clusters); two clusters are compared only
    if the triangle inequality allows a pair within ``radius`` between them (centre distance
    <= both cluster radii + ``radius``), so clustered embeddings cost far less than all N^2
    pairs. Compared clusters go through one float32 matrix product each; pairs within a
    margin of ``radius`` are decided again with float64 differences, so the graph is that
    of the exact distances (a pair at exactly ``radius`` is an edge).
    """
    n = x.shape[0]
    geometry = cluster_geometry(x, round(np.sqrt(n)), seed)
    sizes = geometry.sizes
    radius_sq = radius * radius
    norms = np.einsum("ij,ij->i", x, x)
    # float32 expansion error stays far below this (relative 1e-4 of radius^2, and of the
    # squared norms involved).
    margin = 1e-4 * radius_sq + 1e-5 * 2 * float(norms.max())
    rows_out: list[np.ndarray] = []
    cols_out: list[np.ndarray] = []
    done = 0
    for a in np.flatnonzero(sizes):
        reach = geometry.radius[a] + geometry.radius + radius
        near = np.flatnonzero((geometry.center_dist[a] <= reach * (1 + 1e-9) + 1e-9)
                              & (sizes > 0))
        rows = geometry.members(a)
        cols = geometry.members_of(near)
        sq = _sq_distances(x, norms, rows, cols)
        r, c = np.nonzero(sq <= radius_sq + margin)
        unclear = np.flatnonzero(sq[r, c] >= radius_sq - margin)
        keep = np.ones(len(r), dtype=bool)
        if len(unclear):
            diff = (x[rows[r[unclear]]].astype(np.float64)
                    - x[cols[c[unclear]]].astype(np.float64))
            keep[unclear] = np.einsum("ij,ij->i", diff, diff) <= radius_sq
        rows_out.append(rows[r[keep]])
        cols_out.append(cols[c[keep]])
        done += len(rows)
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
    n = x.shape[0]
    geometry = cluster_geometry(x, round(n / 1000), seed)
    sizes, bounds, order = geometry.sizes, geometry.bounds, geometry.order
    xs = x[order]  # rows grouped by cluster: every cluster is a contiguous block
    norms = np.einsum("ij,ij->i", xs, xs)
    c_sq = np.einsum("ij,ij->i", geometry.centers, geometry.centers)
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
        # Per-row bound: which clusters can still hold a neighbour of some row.
        points = queries.astype(np.float64)
        to_centers = np.sqrt(np.maximum(
            np.einsum("ij,ij->i", points, points)[:, None] + c_sq[None, :]
            - 2 * points @ geometry.centers.T, 0))
        kth = np.sqrt(np.maximum(part[:, -1].astype(np.float64) + own_norms, 0))
        need = (to_centers - geometry.radius[None, :]) <= (kth * (1 + 1e-5) + 1e-6)[:, None]
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
