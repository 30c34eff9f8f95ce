"""Density of the pool around each item: where the typical items are, so that a batch is
not spent on outliers."""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from alcore import _faiss
from alcore import _validation as v
from alcore._errors import InvalidInputError
from alcore._progress import ProgressCallback, reporter


class KnnDensity(NamedTuple):
    """What :func:`knn_density` returns with ``return_neighbors=True``."""

    density: np.ndarray
    """float32 (N,): 1 / mean distance to the k nearest other items."""
    ids: np.ndarray
    """int64 (N, k): those neighbours, nearest first (-1 where the approximate index found
    fewer than k)."""
    distances: np.ndarray
    """float32 (N, k): their L2 distances (inf where ids is -1)."""
    index: _faiss.IndexChoice
    """The search that produced them (exact "flat" or approximate "ivf", with parameters)."""


def _drop_self(sq: np.ndarray, ids: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """From k + 1 neighbours per row keep k: without the row itself, or without the last
    one when the row is not among them (duplicates can push it out)."""
    n = ids.shape[0]
    is_self = ids == np.arange(n)[:, None]
    is_self[~is_self.any(axis=1), -1] = True
    order = np.argsort(is_self, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(sq, order, axis=1), np.take_along_axis(ids, order, axis=1)


def knn_density(embeddings: Any, k: int = 10, exact: bool | None = None, *,
                return_neighbors: bool = False, seed: int | np.random.Generator | None = 0,
                progress: ProgressCallback | None = None,
                verbose: bool = False) -> np.ndarray | KnnDensity:
    """Density of every item: 1 / (mean L2 distance to its k nearest other items).

    Parameters
    ----------
    embeddings : array-like of shape (N, d)
        float32 (float64 is converted once). Must be finite, N > k.
    k : int
        Neighbours per item.
    exact : bool, optional
        True: exact search. False: the approximate index. None (default): exact up to
        100 000 items, approximate above (an inverted-file index with 8-bit codes, tuned
        for recall@10 >= 0.95; see ``alcore._faiss.choose_index``).
    return_neighbors : bool
        Also return the neighbour ids and distances.
    seed : int or numpy.random.Generator
        Seeds the approximate index's training sample and k-means (unused when exact).
    progress : callable, optional
        ``progress(done, N)`` as queries complete.
    verbose : bool
        Draw a progress bar on stderr.

    Returns
    -------
    numpy.ndarray of shape (N,), float32, or KnnDensity
        Higher = denser. Items with k exact duplicates (mean distance 0) get the largest
        finite float32 density rather than inf.
    """
    x = v.embeddings_matrix(embeddings)
    n = x.shape[0]
    k = v.count(k)
    if k >= n:
        raise InvalidInputError(
            f"k={k} needs at least {k + 1} items (each item's k nearest others), got {n}; "
            f"lower k"
        )
    if exact is not None:
        exact = v.flag(exact, "exact")
    return_neighbors = v.flag(return_neighbors, "return_neighbors")
    index_seed = int(v.rng(seed).integers(2**31))
    choice = _faiss.choose_index(n, exact)
    sq, ids = _faiss.knn(x, k + 1, choice, index_seed, reporter(progress, verbose, "k-NN"))
    sq, ids = _drop_self(sq, ids, k)
    missing = ids < 0
    distances = np.sqrt(sq, dtype=np.float32)
    distances[missing] = np.inf
    found = (~missing).sum(axis=1)
    total = np.where(missing, 0, distances).sum(axis=1, dtype=np.float64)
    mean = np.divide(total, found, out=np.full(n, np.inf), where=found > 0)
    with np.errstate(divide="ignore"):
        density = (1.0 / mean).astype(np.float32)
    density[mean == 0] = np.finfo(np.float32).max
    if return_neighbors:
        return KnnDensity(density, ids, distances, choice)
    return density


__all__ = ["KnnDensity", "knn_density"]
