"""Validation of synthetic query points against the real pool, before anyone labels them.

Unvalidated synthetic queries teach the model artifacts: points off the data manifold,
copies of real items that add nothing, or a batch whose distribution any classifier can
tell from the pool's. :func:`validate` runs independent checks, each against the pool's
own statistics and with its own threshold, and says per point which one failed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from alcore import _faiss
from alcore import _validation as v
from alcore._errors import InvalidInputError
from alcore.synthesis import _discriminator
from alcore.synthesis._rows import paired_rows

__all__ = ["ValidationReport", "validate"]

# Up to this many pool items every item's nearest other items are searched (the whole
# pool's 1-NN and k-NN distributions); above it a seeded sample of POOL_SAMPLE items is
# searched against the whole pool instead (5 000 x N distances: about a second at 200k x 64
# here, where a 20 000-item sample took 30 s on a busy machine). The 0.99 quantile of a
# 5 000-item sample lies at the pool's 0.99 +- 0.0014 (the standard error sqrt(p(1-p)/n)):
# thresholds within about a seventh of a percentile of the pool's.
FULL_POOL_MAX = 20_000
POOL_SAMPLE = 5_000
# The discriminator runs on at most this many synthetic points and as many real items:
# the AUC's standard error is then about 0.006 (sqrt((2n + 1) / (12 n^2)) at 0.5), and its
# cost stays a few k-NN searches.
DISCRIMINATOR_MAX_PER_CLASS = 5_000
# Default near-duplicate radius: this fraction of the pool's median 1-NN distance.
MIN_DISTANCE_FRACTION = 1e-3


@dataclass(frozen=True, eq=False)  # no generated ==: its arrays would make it raise
class ValidationReport:
    """What :func:`validate` returns: a keep-mask, the per-point evidence, the thresholds
    it was judged against and the batch-level discriminator test.

    Per-point arrays have length m (the synthetic points, in the order given).
    """

    keep: np.ndarray
    """bool (m,): passed every per-point check."""
    review: np.ndarray
    """bool (m,): kept points flagged for review by an expert (a seeded random share of
    the kept ones; always a subset of ``keep``)."""
    reasons: list[str | None]
    """Per point: None when kept, else the failed checks with their numbers and
    thresholds, joined by "; "."""
    nearest_distance: np.ndarray
    """float64 (m,): L2 distance to the nearest pool item."""
    nearest_index: np.ndarray
    """int64 (m,): that pool item's row (the lower row among equally near ones)."""
    knn_distance: np.ndarray
    """float64 (m,): mean L2 distance to the k nearest pool items."""
    density: np.ndarray
    """float64 (m,): 1 / ``knn_distance`` (inf at 0), as :func:`alcore.density.knn_density`
    defines density."""
    discriminator_score: np.ndarray
    """float64 (m,): out-of-fold share of synthetic points among the discriminator's k
    nearest neighbours of the point; NaN for points outside the discriminator's sample
    (or when it did not run)."""
    off_manifold: np.ndarray
    """bool (m,): ``nearest_distance > max_distance``."""
    near_duplicate: np.ndarray
    """bool (m,): ``nearest_distance < min_distance`` or exactly 0."""
    sparse: np.ndarray
    """bool (m,): ``knn_distance > max_knn_distance``."""
    max_distance: float
    """The ``max_quantile`` quantile of the pool's 1-NN distances."""
    min_distance: float
    """The near-duplicate radius ε (given, or MIN_DISTANCE_FRACTION x the pool's median
    1-NN distance)."""
    max_knn_distance: float
    """The ``density_quantile`` quantile of the pool's mean k-NN distances."""
    discriminator_auc: float | None
    """Cross-validated AUC of the k-NN real-vs-synthetic classifier (0.5: indistinguishable);
    None when it could not run (fewer than 2 synthetic points)."""
    max_auc: float
    """The discriminator's threshold."""
    discriminator_passed: bool | None
    """``discriminator_auc <= max_auc``; None when it did not run."""
    warnings: list[str]
    """Batch-level findings: a failed discriminator, thresholds at 0, most points rejected."""
    config: dict[str, Any] = field(default_factory=dict)
    """The parameters: quantiles, k, max_auc, folds, the pool statistics' sample size..."""

    @property
    def n_kept(self) -> int:
        return int(np.count_nonzero(self.keep))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: lists, Python numbers, None for NaN and inf
        (``json.dumps(report.to_dict(), allow_nan=False)`` works)."""
        def number(x: float | None) -> float | None:
            return None if x is None or not math.isfinite(x) else float(x)

        def numbers(a: np.ndarray) -> list:
            return [number(float(x)) for x in a]

        return {
            "keep": self.keep.tolist(),
            "review": self.review.tolist(),
            "reasons": list(self.reasons),
            "nearest_distance": numbers(self.nearest_distance),
            "nearest_index": self.nearest_index.tolist(),
            "knn_distance": numbers(self.knn_distance),
            "density": numbers(self.density),
            "discriminator_score": numbers(self.discriminator_score),
            "off_manifold": self.off_manifold.tolist(),
            "near_duplicate": self.near_duplicate.tolist(),
            "sparse": self.sparse.tolist(),
            "thresholds": {
                "max_distance": number(self.max_distance),
                "min_distance": number(self.min_distance),
                "max_knn_distance": number(self.max_knn_distance),
                "max_auc": number(self.max_auc),
            },
            "discriminator_auc": number(self.discriminator_auc),
            "discriminator_passed": self.discriminator_passed,
            "n_kept": self.n_kept,
            "n_review": int(np.count_nonzero(self.review)),
            "warnings": list(self.warnings),
            "config": {key: (number(val) if isinstance(val, float) else val)
                       for key, val in self.config.items()},
        }


def _pool_neighbours(pool: np.ndarray, k: int,
                     rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """float64 (S, k) sorted L2 distances of S pool items to their k nearest other pool
    items (exact, from float64 differences), and S: every item up to FULL_POOL_MAX items,
    a seeded sample of POOL_SAMPLE above."""
    n = pool.shape[0]
    if n <= FULL_POOL_MAX:
        rows = np.arange(n, dtype=np.int64)
    else:
        rows = np.sort(rng.choice(n, size=POOL_SAMPLE, replace=False)).astype(np.int64)
    sq, _ = _faiss.nearest_rows(pool, np.ascontiguousarray(pool[rows]), k, self_rows=rows)
    return np.sqrt(sq), len(rows)


def _quantile(name: str, value: Any) -> float:
    return v.number(value, name, low=0.0, high=1.0, low_open=True,
                    hint="pass a quantile in (0, 1], e.g. 0.99")


def validate(synthetic: Any, pool_embeddings: Any, *, max_quantile: float = 0.99,
             min_distance: float | None = None, k: int = 10,
             density_quantile: float = 0.99, max_auc: float = 0.75,
             discriminator_k: int = 10, folds: int = 5, review_share: float = 0.05,
             seed: int | np.random.Generator | None = 0) -> ValidationReport:
    """Check synthetic points against the real pool; keep those that pass every check.

    Per-point checks, each against the pool's own distribution of the same quantity
    (every pool item against the pool without itself; above 20 000 pool items
    (``FULL_POOL_MAX``) a seeded sample of 5 000 items (``POOL_SAMPLE``) against the
    whole pool):

    (a) **Distance to the nearest real item.** Above the ``max_quantile`` quantile of the
        pool's 1-NN distances: *off-manifold* (farther from any real item than almost every
        real item is from its nearest neighbour). Below ``min_distance`` (ε), or exactly 0:
        *near-duplicate* of a real item (labelling it adds nothing).
    (b) **k-NN density.** The mean distance to the k nearest real items above the
        ``density_quantile`` quantile of the pool's mean distances to their k nearest
        other items: *sparse region* (a point can sit near one stray real item and still
        lie where the pool has almost nothing).

    Batch-level check:

    (c) **Real-vs-synthetic discriminator.** The cross-validated ROC AUC of a k-NN
        classifier (``discriminator_k`` neighbours, ``folds``-fold stratified) on a
        balanced sample of synthetic points and real items (at most 5 000 of each,
        ``DISCRIMINATOR_MAX_PER_CLASS``); see :mod:`alcore.synthesis._discriminator` for
        the exact procedure. About 0.5: the batch looks like the pool. Above ``max_auc``
        a warning is added and ``discriminator_passed`` is False, but no point is
        rejected for it: checks (a) and (b) already judge each point against the pool, so
        a high AUC on points that pass them says the batch *as a whole* is placed unlike
        the pool (e.g. all in one cluster); dropping the points with the highest
        out-of-fold score would leave a subset of that same biased batch. Each sampled
        point's score is in ``discriminator_score`` for callers who want to act on it.
        AUCs well below 0.5 are not flagged (copies of real items, which cause them, fail
        check (a)).

    Parameters
    ----------
    synthetic : array-like of shape (m, d), or an object with a ``points`` attribute
        The synthetic points (float32 or float64), finite, m >= 1
        (e.g. what :func:`alcore.synthesis.boundary` or ``minority`` return).
    pool_embeddings : array-like of shape (N, d)
        The real pool, N >= 2 (N > k), same d. Distances are float64 differences of
        float32 rows; when float32 cannot hold a float64 pool exactly, pool and points
        are first centred on the pool's float64 mean, so an offset from the origin costs
        no precision.
    max_quantile : float in (0, 1]
        Quantile of the pool's 1-NN distances above which a point is off-manifold.
    min_distance : float >= 0, optional
        Near-duplicate radius ε. Default: 1e-3 x the pool's median 1-NN distance
        (``MIN_DISTANCE_FRACTION``; 0 when more than half the pool are duplicates, then
        only exact copies are rejected).
    k : int
        Real neighbours in the density check (1 <= k < N).
    density_quantile : float in (0, 1]
        Quantile of the pool's mean k-NN distances above which a point is in a sparse
        region.
    max_auc : float in [0.5, 1]
        Discriminator AUC above which the batch fails check (c).
    discriminator_k : int
        Neighbours of the k-NN discriminator.
    folds : int >= 2
        Cross-validation folds (fewer when a class has fewer points).
    review_share : float in [0, 1]
        Share of the kept points flagged for expert review, rounded up: at least one
        whenever a point is kept and the share is above 0.
    seed : None, int or numpy.random.Generator
        Seeds the pool sample (large pools), the discriminator's sample and folds, and
        the review draw.

    Returns
    -------
    ValidationReport
        ``keep``, ``review``, ``reasons``, the per-point evidence, the thresholds and the
        discriminator's AUC; ``to_dict()`` is JSON-ready.

    Raises
    ------
    InvalidInputError
        Non-finite or empty arrays, dimension mismatch, a pool of fewer than 2 items or
        not more than k, thresholds out of range.
    """
    points = getattr(synthetic, "points", synthetic)
    x, pool = paired_rows(points, pool_embeddings, "synthetic", "pool_embeddings")
    m, d = x.shape
    n = pool.shape[0]
    if pool.shape[1] != d:
        raise InvalidInputError(
            f"synthetic has {d} dimensions but pool_embeddings has {pool.shape[1]}; pass "
            f"synthetic points in the pool's embedding space")
    if n < 2:
        raise InvalidInputError(
            f"pool_embeddings must hold at least 2 items (each item's distance to its "
            f"nearest other item is the reference), got {n}; pass the whole pool")
    max_quantile = _quantile("max_quantile", max_quantile)
    density_quantile = _quantile("density_quantile", density_quantile)
    if min_distance is not None:
        min_distance = v.number(min_distance, "min_distance", low=0.0,
                                hint="pass a distance >= 0, or None for 1e-3 x the pool's "
                                     "median 1-NN distance")
    k = v.count(k, "k")
    if k >= n:
        raise InvalidInputError(
            f"k={k} needs a pool of at least {k + 1} items (each pool item's k nearest "
            f"other items), got {n}; pass k={n - 1} or fewer")
    max_auc = v.number(max_auc, "max_auc", low=0.5, high=1.0,
                       hint="pass an AUC in [0.5, 1], e.g. 0.75")
    discriminator_k = v.count(discriminator_k, "discriminator_k")
    folds = v.integer(folds, "folds", low=2, hint="pass e.g. folds=5")
    review_share = v.number(review_share, "review_share", low=0.0, high=1.0,
                            hint="pass a share in [0, 1], e.g. 0.05")
    generator = v.rng(seed)

    # (a) and (b): the pool's own distributions, then the synthetic points' statistics.
    pool_dist, n_reference = _pool_neighbours(pool, k, generator)
    pool_nn = pool_dist[:, 0]
    pool_knn = pool_dist.mean(axis=1)
    max_distance = float(np.quantile(pool_nn, max_quantile))
    max_knn_distance = float(np.quantile(pool_knn, density_quantile))
    median_nn = float(np.median(pool_nn))
    eps = MIN_DISTANCE_FRACTION * median_nn if min_distance is None else min_distance

    sq, ids = _faiss.nearest_rows(pool, x, k)
    dist = np.sqrt(sq)
    nearest_distance = dist[:, 0]
    nearest_index = ids[:, 0].astype(np.int64)
    knn_distance = dist.mean(axis=1)
    with np.errstate(divide="ignore"):
        density = 1.0 / knn_distance

    off_manifold = nearest_distance > max_distance
    near_duplicate = (nearest_distance < eps) | (nearest_distance == 0)
    sparse = knn_distance > max_knn_distance
    keep = ~(off_manifold | near_duplicate | sparse)

    eps_source = ("given" if min_distance is not None else
                  f"{MIN_DISTANCE_FRACTION:g} x the pool's median 1-NN distance "
                  f"{median_nn:.3g}")
    reasons: list[str | None] = []
    for i in range(m):
        failed = []
        if off_manifold[i]:
            failed.append(
                f"off-manifold: nearest real item (row {nearest_index[i]}) at "
                f"{nearest_distance[i]:.3g}, above the pool's {max_quantile:g} quantile of "
                f"1-NN distances {max_distance:.3g}")
        if near_duplicate[i]:
            if nearest_distance[i] == 0:
                failed.append(f"near-duplicate: an exact copy of real item "
                              f"{nearest_index[i]} (distance 0)")
            else:
                failed.append(
                    f"near-duplicate: nearest real item (row {nearest_index[i]}) at "
                    f"{nearest_distance[i]:.3g}, below min_distance {eps:.3g} ({eps_source})")
        if sparse[i]:
            failed.append(
                f"sparse region: mean distance to its {k} nearest real items "
                f"{knn_distance[i]:.3g}, above the pool's {density_quantile:g} quantile "
                f"{max_knn_distance:.3g}")
        reasons.append("; ".join(failed) if failed else None)

    # (c): batch level.
    warnings: list[str] = []
    discriminator_score = np.full(m, np.nan)
    test = _discriminator.two_sample_auc(
        pool, x, k=discriminator_k, folds=folds,
        max_per_class=DISCRIMINATOR_MAX_PER_CLASS, rng=generator)
    if test is None:
        auc, passed, used_folds = None, None, 0
        warnings.append(
            f"discriminator not run: it needs at least 2 synthetic points and 2 pool "
            f"items, got {m} and {n}")
    else:
        auc = float(test.auc)
        passed = auc <= max_auc
        used_folds = test.folds
        discriminator_score[test.synthetic_rows] = test.synthetic_scores
        if not passed:
            warnings.append(
                f"discriminator: a {discriminator_k}-NN classifier tells the synthetic "
                f"points from real items with cross-validated AUC {auc:.3f}, above "
                f"max_auc {max_auc:g} (0.5: indistinguishable); the batch is placed "
                f"unlike the pool (no point is rejected for it)")

    if max_distance == 0:
        warnings.append(
            f"the pool's {max_quantile:g} quantile of 1-NN distances is 0 (duplicate "
            f"items): every point that is not a copy is off-manifold")
    n_kept = int(np.count_nonzero(keep))
    if n_kept == 0:
        warnings.append(f"no point kept: all {m} failed a per-point check")
    elif n_kept < m / 2:
        warnings.append(f"most points rejected: {m - n_kept} of {m} failed a per-point check")

    review = np.zeros(m, dtype=bool)
    if n_kept and review_share > 0:
        n_review = min(n_kept, max(1, math.ceil(review_share * n_kept - 1e-9)))
        review[generator.choice(np.flatnonzero(keep), size=n_review, replace=False)] = True

    config = {
        "max_quantile": max_quantile, "min_distance": min_distance, "k": k,
        "density_quantile": density_quantile, "max_auc": max_auc,
        "discriminator_k": discriminator_k, "folds": used_folds,
        "review_share": review_share, "pool_items": n,
        "pool_reference_items": n_reference,
        "pool_median_nn_distance": median_nn,
    }
    return ValidationReport(
        keep=keep, review=review, reasons=reasons, nearest_distance=nearest_distance,
        nearest_index=nearest_index, knn_distance=knn_distance, density=density,
        discriminator_score=discriminator_score, off_manifold=off_manifold,
        near_duplicate=near_duplicate, sparse=sparse, max_distance=max_distance,
        min_distance=float(eps), max_knn_distance=max_knn_distance,
        discriminator_auc=auc, max_auc=max_auc, discriminator_passed=passed,
        warnings=warnings,
        config=config)


v.guard_signatures(globals())
