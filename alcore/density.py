"""Density of the pool around each item: where the typical items are, so that a batch is
not spent on outliers."""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from alcore import _distances, _faiss
from alcore import _validation as v
from alcore._errors import InvalidInputError
from alcore._progress import ProgressCallback, reporter


class KnnDensity(NamedTuple):
    """What :func:`knn_density` returns with ``return_neighbors=True``."""

    density: np.ndarray
    """float32 (N,): 1 / mean distance to the k nearest other items."""
    ids: np.ndarray
    """int64 (N, k): those neighbours, nearest first."""
    distances: np.ndarray
    """float32 (N, k): their L2 distances."""
    index: _faiss.IndexChoice
    """The search that produced them: FAISS brute force (``kind="flat"``) or the
    cluster-pruned self-join (``"clustered"``), both exact, or the IVF self-join
    (``"ivf"``, approximate, with its ``clusters`` and ``probes``); ``index.exact`` says
    which."""


# Neighbours fetched beyond the k + 1 needed, so that near-ties at the k-th place (which
# the search's float32 rounding may order either way) are decided on exact distances.
_SPARE_NEIGHBOURS = 4


def _exact_neighbours(x: np.ndarray, sq: np.ndarray, ids: np.ndarray,
                      k: int) -> tuple[np.ndarray, np.ndarray]:
    """From m > k candidate neighbours per row keep the k nearest other rows by squared
    distances recomputed from float64 differences (ties to the lower id), nearest first.
    The search's own float32 distances depend on the BLAS blocking, so on the thread
    count; these do not. O(N m d)."""
    n = ids.shape[0]
    exact = _distances.exact_sq_to_rows(x, ids)
    exact[ids == np.arange(n)[:, None]] = np.inf  # a row is not its own neighbour
    order = np.lexsort((ids, exact), axis=-1)[:, :k]
    return np.take_along_axis(exact, order, axis=1), np.take_along_axis(ids, order, axis=1)


def knn_density(embeddings: Any, k: int = 10, *, exact: bool | None = None,
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
        Which search finds the neighbours; the one used is reported in
        ``KnnDensity.index``. None (default): exact FAISS brute force up to 20 000 items
        (``alcore._faiss.APPROXIMATE_MIN_ITEMS``), above it the approximate IVF self-join
        (``alcore._faiss.knn_ivf``): the items are split into about 0.5 sqrt(N) k-means
        cells and every item is compared with the members of the 4 cells whose centroids
        are nearest to it (8 cells at 1M items: 4 x (N / 100k)^0.3 above 100k). On
        clustered embeddings (mixtures of 100 Gaussians, 32 and 128 dimensions, 100k and
        1M items, 2 cores) it found >= 96.7% of the true 10 nearest neighbours at 1/11-1/45
        of brute force's time (fewer just above 20k items: 92% at 20k x 32 when the
        clusters touch); on unstructured (isotropic Gaussian) embeddings 14-33%, where
        neighbourhoods carry little anyway. True: exact, brute force up to 100 000 items
        and above it a self-join pruned by k-means clusters and the triangle inequality
        (``alcore._faiss.knn_self_join``), fast where the clusters are well separated.
        False: the IVF self-join at any N.
    return_neighbors : bool
        Also return the neighbour ids and distances.
    seed : None, int or numpy.random.Generator
        Seeds the k-means of the large-N searches. The exact searches do not depend on
        it (up to the order of equally distant neighbours); the IVF search's cells do.
    progress : callable, optional
        ``progress(done, N)`` as queries complete.
    verbose : bool
        Draw a progress bar on stderr.

    Returns
    -------
    numpy.ndarray of shape (N,), float32, or KnnDensity
        Higher = denser. Items with k exact duplicates (mean distance 0), or nearly
        (below 1 / the largest float32), get the largest finite float32 density rather
        than inf. The neighbours' distances are computed from float64 differences and the
        k nearest of the candidates found are kept by them (equal distances to the lower
        id), so the result does not depend on the thread count; for a given seed the IVF
        search is deterministic too.
    """
    x = v.embeddings_matrix(embeddings)
    n = x.shape[0]
    k = v.count(k)
    if k >= n:
        raise InvalidInputError(
            f"k={v.shown(k)} needs at least {v.shown(k + 1)} items (each item's k nearest "
            f"others), got {n}; lower k"
        )
    if exact is not None:
        exact = v.flag(exact, "exact")
    return_neighbors = v.flag(return_neighbors, "return_neighbors")
    verbose = v.flag(verbose, "verbose")
    index_seed = int(v.rng(seed).integers(2**31))
    choice = _faiss.choose_index(n, exact)
    wanted = min(n, k + 1 + _SPARE_NEIGHBOURS)
    sq, ids = _faiss.knn(x, wanted, choice, index_seed, reporter(progress, verbose, "k-NN"))
    sq, ids = _exact_neighbours(x, sq, ids, k)
    distances = np.sqrt(sq).astype(np.float32)
    mean = distances.mean(axis=1, dtype=np.float64)
    # Mean distance 0 (k duplicates) or below 1 / float32 max (denormal distances): the
    # largest finite float32, not inf.
    with np.errstate(divide="ignore"):
        density = np.minimum(1.0 / mean, np.finfo(np.float32).max).astype(np.float32)
    if return_neighbors:
        return KnnDensity(density, ids, distances, choice)
    return density


# Up to this many items the inverse-Euclidean similarity is averaged exactly (O(N^2), in
# blocks); above it, over k-means centroids weighted by their cluster sizes.
EXACT_SIMILARITY_MAX_ITEMS = 20_000
_SIMILARITIES = ("cosine", "inverse_euclidean")
# Working memory of the blocked inverse-Euclidean sum: each block's (rows x points)
# float64 temporaries stay under this many bytes (beside the float64 copy of the points).
WORK_BYTES = 32 * 2**20


def _mean_inverse_euclidean(x: np.ndarray, points: np.ndarray, weights: np.ndarray,
                            spread_sq: np.ndarray | None = None) -> np.ndarray:
    """sum_j weights[j] / (1 + sqrt(|x_i - points_j|^2 + spread_sq[j])) for every row i,
    in float64, on rows and points centred on the points' mean (the expanded form's error
    then scales with the spread, not the distance from the origin).

    Memory: a float64 copy of the points (P, d) and blocks of b rows with b (P + d + 1)
    float64 values <= WORK_BYTES: one (b, P) matrix updated in place, one (b, d) block.
    """
    centre = points.mean(axis=0, dtype=np.float64)
    p64 = points.astype(np.float64)
    p64 -= centre
    p_sq = np.einsum("ij,ij->i", p64, p64)
    out = np.empty(len(x))
    rows = min(len(x), max(1, WORK_BYTES // (8 * (len(p64) + x.shape[1] + 1))))
    buffer = np.empty((rows, len(p64)))  # one (rows, P) matrix, reused by every block
    for start in range(0, len(x), rows):
        block = x[start:start + rows].astype(np.float64)
        block -= centre
        sq = np.matmul(block, p64.T, out=buffer[:len(block)])
        sq *= -2
        sq += np.einsum("ij,ij->i", block, block)[:, None]
        sq += p_sq[None, :]
        np.maximum(sq, 0, out=sq)
        if spread_sq is not None:
            sq += spread_sq[None, :]
        np.sqrt(sq, out=sq)
        sq += 1
        np.divide(weights[None, :], sq, out=sq)
        out[start:start + rows] = sq.sum(axis=1)
    return out


def similarity_density(embeddings: Any, *, similarity: str = "cosine",
                       include_self: bool = True, exact: bool | None = None,
                       n_clusters: int = 256,
                       seed: int | np.random.Generator | None = 0) -> np.ndarray:
    """Mean similarity of every item to the pool: the density term of information density.

    Parameters
    ----------
    embeddings : array-like of shape (N, d)
        float32 (float64 converted once), finite.
    similarity : {"cosine", "inverse_euclidean"}
        ``"cosine"``: the dot product of L2-normalised rows (Settles & Craven 2008).
        ``"inverse_euclidean"``: ``1 / (1 + |x - u|)``, modAL's default.
    include_self : bool
        Count the item itself (similarity 1) in its mean, as modAL does; False averages
        over the N - 1 others, as libact does.
    exact : bool, optional
        For ``"inverse_euclidean"``: True averages over every pair (O(N^2) time, blocked:
        beside a float64 copy of the embeddings, at most ``WORK_BYTES`` = 32 MB of
        temporaries); False over ``n_clusters`` FAISS k-means clusters, each
        represented by its centroid and mean squared spread and weighted by its size
        (O(N n_clusters)); None picks exact up to 20 000 items. ``"cosine"`` is
        always exact in O(N d): the mean of dot products is the dot product with the
        mean direction.
    n_clusters : int
        Centroids of the approximation.
    seed : None, int or numpy.random.Generator
        Seeds k-means.

    Returns
    -------
    numpy.ndarray of float64, shape (N,)
    """
    x = v.embeddings_matrix(embeddings)
    n = x.shape[0]
    similarity = v.choice(similarity, "similarity", _SIMILARITIES)
    include_self = v.flag(include_self, "include_self")
    if exact is not None:
        exact = v.flag(exact, "exact")
    # Checked whichever path runs: a bad value is refused even where it is not used.
    count = v.count(n_clusters, "n_clusters")
    generator = v.rng(seed)
    others = n if include_self else n - 1
    if others < 1:
        raise InvalidInputError("include_self=False needs at least 2 items")
    if similarity == "cosine":
        norms = np.linalg.norm(x.astype(np.float64), axis=1)
        zero = np.flatnonzero(norms == 0)
        if zero.size:
            raise InvalidInputError(
                f"embeddings row {zero[0]} has zero norm, so its cosine similarity is "
                f"undefined; drop it or use similarity='inverse_euclidean'"
            )
        unit = x / norms[:, None]
        total = unit @ unit.sum(axis=0)
        return (total - (0.0 if include_self else 1.0)) / others
    if exact or (exact is None and n <= EXACT_SIMILARITY_MAX_ITEMS):
        total = _mean_inverse_euclidean(x, x, np.ones(n))
        return (total - (0.0 if include_self else 1.0)) / others
    labels = _faiss.kmeans(x, min(count, n), int(generator.integers(2**31)))
    sizes = np.bincount(labels).astype(np.float64)
    centroids = np.zeros((len(sizes), x.shape[1]))
    np.add.at(centroids, labels, x)
    used = sizes > 0
    centroids[used] /= sizes[used, None]
    # |x - u|^2 averaged over a cluster is |x - centroid|^2 + the cluster's mean squared
    # spread: using it (not the bare centroid distance) removes most of the bias.
    deviation = x - centroids[labels]
    spread_sq = np.bincount(labels, weights=np.einsum("ij,ij->i", deviation, deviation),
                            minlength=len(sizes))
    spread_sq[used] /= sizes[used]
    total = _mean_inverse_euclidean(x, centroids[used], sizes[used], spread_sq[used])
    return (total - (0.0 if include_self else 1.0)) / others


def information_density(scores: Any, embeddings: Any, *, beta: float = 1.0,
                        similarity: str = "cosine", include_self: bool = True,
                        exact: bool | None = None, n_clusters: int = 256,
                        seed: int | np.random.Generator | None = 0) -> np.ndarray:
    """Information density (Settles & Craven 2008): ``score * density ** beta``.

    Parameters
    ----------
    scores : array-like of shape (N,)
        Informativeness, e.g. ``alcore.scores.entropy(probs)``; float32 or float64, finite.
    embeddings : array-like of shape (N, d)
    beta : float
        Weight of the density term (0 ignores it), >= 0.
    similarity, include_self, exact, n_clusters, seed
        As :func:`similarity_density`.

    Returns
    -------
    numpy.ndarray of float64, shape (N,)
        Negative mean cosine similarities are clipped to 0 before the power.
    """
    s = v.float_array(scores, "scores")
    if s.ndim != 1:
        raise InvalidInputError(f"scores must be 1-D with shape (N,), got shape {s.shape}")
    if not np.isfinite(s).all():
        raise InvalidInputError(
            f"scores must be finite: scores[{int(np.flatnonzero(~np.isfinite(s))[0])}] is not")
    b = v.number(beta, "beta", low=0.0)
    density = similarity_density(embeddings, similarity=similarity, include_self=include_self,
                                 exact=exact, n_clusters=n_clusters, seed=seed)
    if density.shape[0] != s.shape[0]:
        raise InvalidInputError(
            f"scores has {s.shape[0]} items but embeddings has {density.shape[0]}; pass one "
            f"score per row"
        )
    return s.astype(np.float64) * np.maximum(density, 0.0) ** b


__all__ = ["KnnDensity", "information_density", "knn_density", "similarity_density"]

v.guard_signatures(globals())
