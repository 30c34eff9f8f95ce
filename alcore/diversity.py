"""Diversity at pool scale: batches that cover the embedding space, not just the most
uncertain corner of it.

:func:`kcenter` is the greedy k-center (core-set) selection: exact, O(N) memory, native.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from alcore import _core
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
    mask, n_labeled = v.exclude_mask(labeled, n, "embeddings", name="labeled")
    if k > n - n_labeled:
        raise InvalidInputError(
            f"k={k} exceeds the {n - n_labeled} unlabeled items ({n} items, {n_labeled} "
            f"labeled); lower k"
        )
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


__all__ = ["KCenterResult", "kcenter"]
