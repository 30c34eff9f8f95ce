"""Top-k selection: the k most informative items, exact, ties to the lower index."""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from alcore import _core, scores
from alcore import _validation as v
from alcore._errors import InvalidInputError

_SCORES = tuple(scores.SCORE_CODES) + tuple(scores.SAMPLE_SCORE_CODES)


class TopSelection(NamedTuple):
    """What :func:`select_top` returns with ``return_scores=True``."""

    indices: np.ndarray
    """int64 array of shape (k,): the chosen items, best first."""
    scores: np.ndarray
    """array of shape (N,): every item's score (excluded items included)."""


def top_k(scores: Any, k: int, exclude: Any = None) -> np.ndarray:
    """Indices of the k highest scores.

    Parameters
    ----------
    scores : array-like of shape (N,), float32 or float64
        Finite scores, higher = more informative.
    k : int
        How many to return, 1 <= k <= number of items not excluded.
    exclude : array-like, optional
        Items never to return (e.g. the labeled ones): a boolean mask of shape (N,) or an
        array of unique indices in [0, N).

    Returns
    -------
    numpy.ndarray of shape (k,), int64
        Sorted by score descending; equal scores are ordered by the lower index first, so
        the result is deterministic and independent of the thread count.
    """
    arr = v.float_array(scores, "scores")
    if arr.ndim != 1:
        raise InvalidInputError(
            f"scores must be 1-D with shape (N,), got shape {arr.shape}"
        )
    if arr.shape[0] == 0:
        raise InvalidInputError("scores is empty; pass at least one item")
    k = v.count(k)
    mask, excluded = v.exclude_mask(exclude, arr.shape[0], "scores")
    v.check_k_available(k, arr.shape[0], excluded)
    try:
        return _core.top_k(arr, mask, k)
    except _core.InvalidValue as err:
        _, _, row, _, value = err.args
        raise InvalidInputError(
            f"scores must be finite: scores[{row}] is {value}; leave those items out with "
            f"exclude= (after replacing the value, e.g. numpy.nan_to_num(scores, nan=0.0))"
        ) from None


def select_top(k: int, probs: Any = None, logits: Any = None, score: str = "margin",
               exclude: Any = None, return_scores: bool = False, *,
               normalize: bool = False, atol: float = 1e-3) -> np.ndarray | TopSelection:
    """Score every item and return the k most informative, in one pass over the matrix.

    Equivalent to ``top_k(getattr(alcore.scores, score)(probs), k, exclude)`` (the same
    kernels, so the same bits and the same tie order), but for (N, C) inputs the scores
    are reduced to the top k while they are computed, without an N-sized score array.

    Parameters
    ----------
    k : int
        Batch size, 1 <= k <= number of items not excluded.
    probs, logits : array-like of shape (N, C), or (T, N, C) for the sample scores
        Exactly one of them; float32 or float64 (see :mod:`alcore.scores`).
    score : str
        ``"least_confidence"``, ``"margin"``, ``"ratio"``, ``"entropy"``; or, for (T, N, C)
        samples, ``"bald"``, ``"variation_ratio"``, ``"vote_entropy"``, ``"kl_consensus"``.
    exclude : array-like, optional
        Boolean mask of shape (N,) or unique indices of items never to return.
    return_scores : bool
        Also return every item's score (materialises the (N,) array).
    normalize, atol
        As in :mod:`alcore.scores`.

    Returns
    -------
    numpy.ndarray of shape (k,), int64, or TopSelection
        The chosen indices, best first (ties to the lower index); with
        ``return_scores=True`` a :class:`TopSelection` ``(indices, scores)``.
    """
    score = v.score_name(score, _SCORES)
    k = v.count(k)
    return_scores = v.flag(return_scores, "return_scores")
    if score in scores.SAMPLE_SCORE_CODES:
        all_scores = getattr(scores, score)(probs, logits=logits, normalize=normalize, atol=atol)
        indices = top_k(all_scores, k, exclude)
        return TopSelection(indices, all_scores) if return_scores else indices
    x, is_logits, name = v.probs_matrix(probs, logits)
    normalize = v.flag(normalize, "normalize")
    atol = v.tolerance(atol)
    mask, excluded = v.exclude_mask(exclude, x.shape[0], name)
    v.check_k_available(k, x.shape[0], excluded)
    scale_entropy = normalize and score == "entropy"
    try:
        indices, _, all_scores = _core.select_top(
            x, scores.SCORE_CODES[score], is_logits, normalize, atol, scale_entropy, mask, k,
            return_scores,
        )
    except _core.InvalidValue as err:
        raise v.invalid_value_error(err, name, atol=atol) from None
    return TopSelection(indices, all_scores) if return_scores else indices


__all__ = ["TopSelection", "select_top", "top_k"]
