"""A real-vs-synthetic two-sample test without scikit-learn: a k-NN classifier's
cross-validated AUC.

If the synthetic points came from the pool's distribution, no classifier can tell them from
real items and its out-of-fold AUC is about 0.5; the further it rises towards 1, the easier
the batch is to tell apart. The classifier is the k-nearest-neighbour one (the k-NN
two-sample test of Schilling 1986 and Friedman & Rafsky's family): it needs no training, no
feature scaling beyond what the embeddings already have, and its neighbour search is the
engine's FAISS search.

The procedure, which the tests replay with plain numpy loops:

1. A balanced sample: ``n_each = min(m, N, max_per_class)`` synthetic points and as many
   real items, each drawn without replacement (``rng.choice``, synthetic first, then real),
   so that the AUC is not driven by class sizes.
2. Stratified K-fold: within each class, a random permutation (``rng.permutation``,
   synthetic first) is dealt round-robin to the folds, so every fold holds
   ``n_each // folds`` or one more of each class.
3. Out of fold: every point's score is the share of synthetic points among its k nearest
   points of the other folds (exact squared L2 from float64 differences; equal distances
   to the lower row of the stacked sample, synthetic rows first).
4. AUC from those scores by the Mann-Whitney rank formula with mid-ranks, i.e. a
   (synthetic, real) pair counts 1 when the synthetic point scores higher and 0.5 on a tie.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from alcore import _faiss


class TwoSample(NamedTuple):
    """What :func:`two_sample_auc` returns."""

    auc: float
    synthetic_rows: np.ndarray
    """int64 (n_each,): the synthetic points in the sample."""
    synthetic_scores: np.ndarray
    """float64 (n_each,): their out-of-fold share of synthetic neighbours."""
    real_rows: np.ndarray
    """int64 (n_each,): the pool items in the sample."""
    folds: int


def mann_whitney_auc(scores: np.ndarray, positive: np.ndarray) -> float:
    """ROC AUC of ``scores`` (float64 (n,)) for the boolean labels ``positive`` (n,):
    ``(R+ - n+ (n+ + 1) / 2) / (n+ n-)`` with R+ the sum of the positives' mid-ranks, so
    tied scores count one half. Both classes must be present."""
    order = np.argsort(scores, kind="stable")
    ranked = scores[order]
    # Mid-ranks: every run of equal scores gets the mean of the ranks it spans (1-based).
    starts = np.flatnonzero(np.r_[True, ranked[1:] != ranked[:-1]])
    ends = np.r_[starts[1:], len(ranked)]
    mid = (starts + ends + 1) / 2.0
    ranks = np.empty(len(scores))
    ranks[order] = np.repeat(mid, ends - starts)
    n_pos = int(np.count_nonzero(positive))
    n_neg = len(scores) - n_pos
    rank_sum = float(ranks[positive].sum())
    return (rank_sum - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg)


def stratified_folds(positive: np.ndarray, folds: int, rng: np.random.Generator) -> np.ndarray:
    """int64 fold (0..folds-1) of every point: each class permuted (positives first) and
    dealt round-robin, so the folds hold the classes in the same proportions."""
    fold = np.empty(len(positive), dtype=np.int64)
    for members in (np.flatnonzero(positive), np.flatnonzero(~positive)):
        fold[rng.permutation(members)] = np.arange(len(members)) % folds
    return fold


def out_of_fold_scores(x: np.ndarray, positive: np.ndarray, fold: np.ndarray,
                       k: int) -> np.ndarray:
    """float64 (n,): for every row of ``x`` (float32 (n, d)) the share of positives among
    its k nearest rows outside its fold (fewer when the other folds hold fewer)."""
    scores = np.empty(len(x))
    for f in np.unique(fold):
        test = np.flatnonzero(fold == f)
        train = np.flatnonzero(fold != f)
        kk = min(k, len(train))
        # Sorted by (exact distance, row of train); train is ascending, so that is the
        # lower row of x too.
        _, ids = _faiss.nearest_rows(np.ascontiguousarray(x[train]),
                                     np.ascontiguousarray(x[test]), kk)
        scores[test] = positive[train[ids]].mean(axis=1)
    return scores


def two_sample_auc(real: np.ndarray, synthetic: np.ndarray, *, k: int, folds: int,
                   max_per_class: int, rng: np.random.Generator) -> TwoSample | None:
    """The procedure of the module docstring on ``real`` (float32 (N, d)) and
    ``synthetic`` (float32 (m, d)); None when a class has fewer than 2 points (no fold
    split leaves both classes in training and test)."""
    n_each = min(len(synthetic), len(real), max_per_class)
    if n_each < 2:
        return None
    synthetic_rows = np.sort(rng.choice(len(synthetic), size=n_each, replace=False))
    real_rows = np.sort(rng.choice(len(real), size=n_each, replace=False))
    x = np.concatenate([synthetic[synthetic_rows], real[real_rows]])
    positive = np.r_[np.ones(n_each, dtype=bool), np.zeros(n_each, dtype=bool)]
    folds = min(folds, n_each)
    fold = stratified_folds(positive, folds, rng)
    scores = out_of_fold_scores(x, positive, fold, k)
    return TwoSample(mann_whitney_auc(scores, positive), synthetic_rows.astype(np.int64),
                     scores[:n_each], real_rows.astype(np.int64), folds)
