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

from alcore import _threads

# Below this many items an exact (brute-force, BLAS) search is fast enough and always
# recall 1; above it an inverted-file index is built (see _approximate_index).
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

    kind: str  # "flat" (exact) or "ivf" (approximate)
    nlist: int = 0
    nprobe: int = 0
    train_size: int = 0


def choose_index(n: int, exact: bool | None) -> IndexChoice:
    """Exact search up to EXACT_MAX_ITEMS items (or when asked); otherwise IVF.

    IVF parameters: nlist = 1024 cells for 1M items (scaled with sqrt(N), 64 at least),
    trained on 40 points per cell, vectors stored as 8-bit scalar codes (SQ8: a quarter of
    the memory traffic of float32, distances within ~1 % ), and nprobe = nlist / 128 (8 for
    1M). Measured on clustered 128-d embeddings (benchmarks/conftest.py: mixture), 1M items:
    recall@10 = 0.96 against exact search at 1/23 of its time (IVF1024,Flat: 0.98 at 1/13;
    nprobe 6: 0.91). tests/test_density.py checks recall >= 0.95 on data large enough to use
    this path.
    """
    if exact or (exact is None and n <= EXACT_MAX_ITEMS):
        return IndexChoice("flat")
    nlist = int(max(64, min(4096, round(1024 * np.sqrt(n / 1_000_000)))))
    nprobe = max(8, nlist // 128)
    return IndexChoice("ivf", nlist=nlist, nprobe=nprobe, train_size=min(n, 40 * nlist))


def knn(x: np.ndarray, k: int, choice: IndexChoice, seed: int,
        progress: Callable[[int, int], Any] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Each row's k nearest rows of x (itself included when it is among them).

    Returns squared L2 distances (float32, >= 0) and ids (int64), both of shape (N, k),
    sorted by distance.
    """
    faiss = faiss_module()
    n, d = x.shape
    if choice.kind == "flat":
        index = faiss.IndexFlatL2(d)
    else:
        quantizer = faiss.IndexFlatL2(d)
        index = faiss.IndexIVFScalarQuantizer(quantizer, d, choice.nlist,
                                              faiss.ScalarQuantizer.QT_8bit)
        rng = np.random.default_rng(seed)
        sample = x[np.sort(rng.choice(n, size=choice.train_size, replace=False))]
        index.cp.seed = int(rng.integers(2**31))
        index.train(sample)
        index.nprobe = choice.nprobe
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

    def nearest_sq(self, queries: np.ndarray) -> np.ndarray:
        """Squared L2 distance from each query to its nearest indexed item (inf if none)."""
        if self._index.ntotal == 0:
            return np.full(len(queries), np.inf, dtype=np.float32)
        distances, _ = self._index.search(queries, 1)
        return np.maximum(distances[:, 0], 0)


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
    n, d = x.shape
    n_clusters = int(min(n, max(1, round(np.sqrt(n)))))
    labels = kmeans(x, n_clusters, seed) if n_clusters > 1 else np.zeros(n, dtype=np.int64)
    order = np.argsort(labels, kind="stable")
    bounds = np.searchsorted(labels[order], np.arange(n_clusters + 1))
    sizes = np.diff(bounds)
    x64 = x.astype(np.float64)
    sums = np.zeros((n_clusters, d))
    np.add.at(sums, labels, x64)
    centers = sums / np.maximum(sizes, 1)[:, None]
    spread = np.sqrt(np.einsum("ij,ij->i", x64 - centers[labels], x64 - centers[labels]))
    cluster_radius = np.zeros(n_clusters)
    np.maximum.at(cluster_radius, labels, spread)
    c_sq = np.einsum("ij,ij->i", centers, centers)
    center_dist = np.sqrt(np.maximum(c_sq[:, None] + c_sq[None, :] - 2 * centers @ centers.T, 0))
    radius_sq = radius * radius
    norms = np.einsum("ij,ij->i", x, x)
    # float32 expansion error stays far below this (relative 1e-4 of radius^2, and of the
    # squared norms involved).
    margin = 1e-4 * radius_sq + 1e-5 * 2 * float(norms.max())
    rows_out: list[np.ndarray] = []
    cols_out: list[np.ndarray] = []
    done = 0
    for a in range(n_clusters):
        if sizes[a] == 0:
            continue
        reach = cluster_radius[a] + cluster_radius + radius
        near = np.flatnonzero((center_dist[a] <= reach * (1 + 1e-9) + 1e-9) & (sizes > 0))
        rows = order[bounds[a]:bounds[a + 1]]
        cols = np.concatenate([order[bounds[b]:bounds[b + 1]] for b in near])
        sq = norms[rows][:, None] + norms[cols][None, :] - 2 * (x[rows] @ x[cols].T)
        r, c = np.nonzero(sq <= radius_sq + margin)
        unclear = np.flatnonzero(sq[r, c] >= radius_sq - margin)
        keep = np.ones(len(r), dtype=bool)
        if len(unclear):
            diff = x64[rows[r[unclear]]] - x64[cols[c[unclear]]]
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
