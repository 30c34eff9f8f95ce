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


def kmeans(x: np.ndarray, n_clusters: int, seed: int, iterations: int = 20,
           restarts: int = 3) -> np.ndarray:
    """FAISS k-means: the int64 cluster of every row. Trained on at most 256 points per
    cluster (FAISS's default sample); the best of ``restarts`` random initialisations is
    kept, since a single one often merges two groups and splits another."""
    faiss = faiss_module()
    n, d = x.shape
    if n_clusters >= n:
        return np.arange(n, dtype=np.int64)  # one item per cluster
    km = faiss.Kmeans(d, n_clusters, niter=iterations, nredo=restarts, seed=seed,
                      max_points_per_centroid=256, min_points_per_centroid=1)
    km.train(x)
    _, labels = km.index.search(x, 1)
    return labels[:, 0].astype(np.int64)


def range_graph(x: np.ndarray, radius: float,
                progress: Callable[[int, int], Any] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """All pairs within ``radius`` (L2, inclusive, each row's own index included), as a
    symmetric CSR graph: neighbours of row i are ids[offsets[i]:offsets[i + 1]], sorted.

    FAISS's exact search (float32, |a|^2 + |b|^2 - 2ab, strict <) finds the candidates with
    a margin; pairs near the boundary are decided again with float64 differences, so the
    graph is that of the exact distances (a pair at exactly ``radius`` is an edge).
    """
    faiss = faiss_module()
    n, d = x.shape
    index = faiss.IndexFlatL2(d)
    index.add(x)
    radius_sq = radius * radius
    margin = 1e-4 * radius_sq + 1e-6 * float(np.max(np.einsum("ij,ij->i", x, x)))
    offsets = np.zeros(n + 1, dtype=np.int64)
    chunks: list[np.ndarray] = []
    for start in range(0, n, QUERY_BATCH):
        stop = min(n, start + QUERY_BATCH)
        lims, dist, ids = index.range_search(x[start:stop], radius_sq + margin)
        lims = lims.astype(np.int64)
        rows = np.repeat(np.arange(start, stop), np.diff(lims))
        unclear = np.flatnonzero(dist >= radius_sq - margin)
        keep = np.ones(len(ids), dtype=bool)
        if len(unclear):
            diff = x[rows[unclear]].astype(np.float64) - x[ids[unclear]].astype(np.float64)
            keep[unclear] = np.einsum("ij,ij->i", diff, diff) <= radius_sq
        rows, ids = rows[keep], ids[keep].astype(np.int64)
        order = np.lexsort((ids, rows))
        chunks.append(ids[order])
        offsets[start + 1:stop + 1] = np.bincount(rows - start, minlength=stop - start)
        if progress is not None:
            progress(stop, n)
    np.cumsum(offsets, out=offsets)
    return offsets, np.concatenate(chunks) if chunks else np.empty(0, dtype=np.int64)
