"""One call that composes a selection: uncertainty, density weighting, diversity."""

from __future__ import annotations

import time
from typing import Any, NamedTuple

import numpy as np

from alcore import _validation as v
from alcore import density as density_module
from alcore import diversity as diversity_module
from alcore import scores as scores_module
from alcore._errors import InvalidInputError
from alcore.selection import top_k

DENSITIES = (None, "knn", "information")
DIVERSITIES = (None, "auto", "kcenter", "badge", "typiclust", "cluster_margin", "probcover",
               "spread")
# The default, from `alcore simulate` (LogisticRegression, batches of 10, 15 rounds, 5 seeds):
# margin + k-center over the 5k best-margin candidates had the highest area under the
# learning curve on digits (0.849 vs 0.839 for margin alone and for scikit-activeml's best)
# and on breast cancer (0.960 vs 0.960; 20 labels to 98 % of full-pool accuracy vs 60 for
# random).
_AUTO_DIVERSITY, _AUTO_CANDIDATES = "kcenter", 5


class Selection(NamedTuple):
    """What :func:`select` returns."""

    indices: np.ndarray
    """int64 (k,): the chosen items, in selection order."""
    scores: np.ndarray
    """float64 (k,): each chosen item's combined score (uncertainty x density^beta)."""
    components: dict[str, np.ndarray]
    """Per chosen item: "uncertainty" and, with density, "density"."""
    reasons: list[str]
    """Why each item was chosen, in words."""
    timings: dict[str, float]
    """Seconds per stage."""
    config: dict[str, Any]
    """The arguments that produced it."""


def select(k: int, probs: Any = None, logits: Any = None, embeddings: Any = None,
           labeled: Any = None, score: str = "margin", density: str | None = None,
           beta: float = 1.0, diversity: str | None = "auto", candidates: int | None = None,
           seed: int = 0, **diversity_params: Any) -> Selection:
    """Choose k items to label, composing the stages of this library.

    1. **score**: an uncertainty score of :mod:`alcore.scores` from ``probs`` or
       ``logits`` (for ``"bald"`` etc., (T, N, C) samples).
    2. **density** (optional): ``"knn"`` weights by kNN density (normalised to [0, 1]),
       ``"information"`` by the mean cosine similarity to the pool (Settles & Craven),
       both raised to ``beta``.
    3. **candidates** (optional): keep the ``candidates * k`` best items by the combined
       score before the diversity stage (as Cluster-Margin and SEALS do).
    4. **diversity**: ``"kcenter"``, ``"badge"``, ``"typiclust"``, ``"probcover"`` (needs
       ``radius=``), ``"spread"`` (needs ``min_distance=``) over the candidates, or
       ``"cluster_margin"`` over the pool; None takes the top k. The default ``"auto"`` is
       k-center over the 5k best candidates when embeddings are given (the best strategy
       in this library's simulations, see ``alcore simulate``), else the top k.

    Parameters
    ----------
    k : int
    probs, logits : array-like
        Model outputs for every item (exactly one of them).
    embeddings : array-like of shape (N, d), optional
        Needed by density and diversity.
    labeled : array-like, optional
        Boolean mask or unique indices of labeled items: never chosen; diversity treats
        them as already covered.
    score, density, beta, diversity, candidates, seed
        As above.
    **diversity_params
        Passed to the diversity function (e.g. ``radius=`` for probcover).

    Returns
    -------
    Selection
    """
    timings: dict[str, float] = {}
    config = {"k": k, "score": score, "density": density, "beta": beta,
              "diversity": diversity, "candidates": candidates, "seed": seed,
              **diversity_params}
    k = v.count(k)
    if diversity == "auto":
        diversity = _AUTO_DIVERSITY if embeddings is not None else None
        if diversity is not None and candidates is None:
            candidates = _AUTO_CANDIDATES
        config.update(diversity=diversity, candidates=candidates)
    if density not in DENSITIES:
        raise InvalidInputError(f"density must be None, 'knn' or 'information', got {density!r}")
    if diversity not in DIVERSITIES:
        raise InvalidInputError(
            f"diversity must be one of {', '.join(map(repr, DIVERSITIES))}, got {diversity!r}")
    if not isinstance(score, str) or not hasattr(scores_module, score) or score.startswith("_"):
        raise InvalidInputError(f"score must name a function of alcore.scores, got {score!r}")
    start = time.perf_counter()
    uncertainty = getattr(scores_module, score)(probs, logits=logits).astype(np.float64)
    n = uncertainty.shape[0]
    timings["score"] = time.perf_counter() - start
    mask, n_labeled = v.labeled_and_k(labeled, n, "probs", k)
    emb = None
    if density is not None or diversity is not None:
        if embeddings is None:
            raise InvalidInputError(
                f"density={density!r} / diversity={diversity!r} need embeddings=")
        emb = v.embeddings_matrix(embeddings)
        if emb.shape[0] != n:
            raise InvalidInputError(
                f"embeddings has {emb.shape[0]} rows but the scores cover {n} items")
    combined = uncertainty
    dens = None
    start = time.perf_counter()
    if density == "knn":
        raw = density_module.knn_density(emb, min(10, n - 1), seed=seed).astype(np.float64)
        dens = raw / raw.max()
    elif density == "information":
        dens = np.maximum(density_module.similarity_density(emb), 0.0)
    if dens is not None:
        b = float(beta)
        if not (b >= 0 and np.isfinite(b)):
            raise InvalidInputError(f"beta must be a finite number >= 0, got {beta!r}")
        combined = uncertainty * dens ** b
    timings["density"] = time.perf_counter() - start
    exclude = None if mask is None else mask.view(bool)
    start = time.perf_counter()
    pool = np.arange(n)
    if diversity not in (None, "cluster_margin"):
        # spread walks the ranking, so it always gets the pool in score order.
        m = (min(v.count(candidates, "candidates") * k, n - n_labeled)
             if candidates is not None else n - n_labeled)
        if candidates is not None or diversity == "spread":
            pool = top_k(combined, m, exclude=exclude)
    timings["candidates"] = time.perf_counter() - start
    start = time.perf_counter()
    if diversity is None:
        chosen = top_k(combined, k, exclude=exclude)
        reason = f"top {k} by {score}" + (f" x {density} density^{beta}" if dens is not None
                                          else "")
    elif diversity == "cluster_margin":
        chosen = diversity_module.cluster_margin(probs, emb, k, labeled=labeled, logits=logits,
                                                 seed=seed, **diversity_params)
        reason = "margin candidates, round-robin over clusters"
    else:
        chosen = _diverse(diversity, k, pool, emb, mask, probs, logits, seed, diversity_params)
        reason = f"{diversity} over " + (f"the top {len(pool)} candidates" if len(pool) < n
                                           else "the pool")
    timings["diversity"] = time.perf_counter() - start
    chosen = np.asarray(chosen, dtype=np.int64)
    components = {"uncertainty": uncertainty[chosen]}
    if dens is not None:
        components["density"] = dens[chosen]
    return Selection(chosen, combined[chosen], components, [reason] * len(chosen), timings,
                     config)


def _diverse(method, k, pool, emb, mask, probs, logits, seed, params):
    """Run a diversity method on the rows ``pool``, labeled rows counting as covered."""
    labeled_rows = (np.flatnonzero(mask) if mask is not None else np.empty(0, dtype=np.int64))
    candidates = pool[~np.isin(pool, labeled_rows)]
    rows = np.concatenate([labeled_rows, candidates])
    sub_labeled = np.arange(len(labeled_rows))
    sub = emb[rows]
    known = sub_labeled if len(sub_labeled) else None
    if method == "kcenter":
        picks = diversity_module.kcenter(sub, k, labeled=known, seed=seed, **params).indices
    elif method == "typiclust":
        picks = diversity_module.typiclust(sub, k, labeled=known, seed=seed, **params)
    elif method == "probcover":
        picks = diversity_module.probcover(sub, k, labeled=known, seed=seed, **params)
    elif method == "badge":
        x = probs if logits is None else logits
        x = np.asarray(x)[rows]
        picks = (diversity_module.badge(x, sub, k, labeled=known, seed=seed, **params)
                 if logits is None else
                 diversity_module.badge(None, sub, k, labeled=known, seed=seed, logits=x,
                                        **params))
    else:  # spread over the candidates in score order
        order = np.arange(len(labeled_rows), len(rows))
        picks = diversity_module.spread(order, sub, k, labeled=known, **params)
    return rows[picks]


__all__ = ["Selection", "select"]
