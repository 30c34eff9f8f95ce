"""Top-k selection: the k most informative items, exact, ties to the lower index.

Public as :func:`alcore.top_k` and :func:`alcore.select_top`; this module is private so
that no module shadows a function of the package.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from alcore import _core, scores
from alcore import _utility as u
from alcore import _validation as v
from alcore._errors import InvalidInputError


def top_k(scores: Any, k: int, *, labeled: Any = None, exclude: Any = None) -> np.ndarray:
    """Indices of the k highest scores.

    Parameters
    ----------
    scores : array-like of shape (N,), float32 or float64
        Finite scores, higher = more informative (float16 is read as float32).
    k : int
        How many to return, 1 <= k <= number of items neither labeled nor excluded.
    labeled, exclude : array-like, optional
        Items never to return: each a boolean mask of shape (N,) or an array of unique
        indices in [0, N); ``labeled`` also accepts scikit-activeml's ``y`` (a float vector
        of length N, NaN for the unlabeled items). Here both mean the same (nothing is
        "covered" in a plain ranking); they are separate for symmetry with the functions
        that pick diverse items.

    Returns
    -------
    numpy.ndarray of shape (k,), int64
        Sorted by score descending; equal scores are ordered by the lower index first, so
        the result is deterministic and independent of the thread count.
    """
    k = v.count(k)
    arr = v.float_array(scores, "scores")
    if arr.ndim != 1:
        raise InvalidInputError(
            f"scores must be 1-D with shape (N,), got shape {arr.shape}; pass one score "
            f"per item"
        )
    if arr.shape[0] == 0:
        raise InvalidInputError("scores is empty; pass at least one item")
    masks = v.item_masks(arr.shape[0], "scores", labeled=labeled, exclude=exclude, k=k)
    try:
        return _core.top_k(arr, masks.never, k)
    except _core.InvalidValue as err:
        _, _, row, _, value = err.args
        raise InvalidInputError(
            f"scores must be finite: scores[{row}] is {value}; leave those items out with "
            f"exclude= (after replacing the value, e.g. numpy.nan_to_num(scores, nan=0.0))"
        ) from None


def _parse_options(score: Any, logits: Any, normalize: Any, atol: Any,
                   k: Any) -> tuple[str, bool, bool, float, int]:
    return (v.choice(score, "score", scores.ALL_SCORES), v.flag(logits, "logits"),
            v.flag(normalize, "normalize"), v.tolerance(atol), v.count(k))


def _top_with_scores(x: np.ndarray, is_logits: bool, name: str, k: int, score: str,
                     never: np.ndarray | None, normalize: bool,
                     atol: float) -> tuple[np.ndarray, np.ndarray]:
    """The fused kernel on validated inputs: (indices (k,), their scores (k,))."""
    if score in scores.SAMPLE_SCORE_CODES or (normalize and not is_logits):
        # normalize=True: the scores module re-scores rows with subnormal sums (whose
        # reciprocal overflows in the fused kernel), so rank its N scores.
        every = scores._score_validated(score, x, is_logits, name, normalize=normalize,
                                        atol=atol)
        indices = _core.top_k(every, never, k)
        return indices, every[indices]
    try:
        indices, top, _ = _core.select_top(
            x, scores.SCORE_CODES[score], is_logits, normalize, atol, False, never, k, False)
    except _core.InvalidValue as err:
        raise v.invalid_value_error(err, name, atol=atol) from None
    return indices, top


def _outputs(values: Any, score: str, is_logits: bool) -> tuple[np.ndarray, bool, str]:
    if score in scores.SAMPLE_SCORE_CODES:
        return v.outputs_tensor(values, is_logits)
    return v.outputs_matrix(values, is_logits)


def _custom_top(values: Any, k: Any, score: Any, logits: Any, never_spec: dict, normalize: Any,
                atol: Any, extra: Any) -> tuple[np.ndarray, np.ndarray]:
    """select_top with a custom utility: (indices, their float64 scores)."""
    utility = u.as_utility(score)
    is_logits, normalize, atol, k = (v.flag(logits, "logits"), v.flag(normalize, "normalize"),
                                     v.tolerance(atol), v.count(k))
    x, is_logits, name = v.outputs_matrix(values, is_logits)
    masks = v.item_masks(x.shape[0], name, k=k, **never_spec)
    matrix = u.extra_matrix(utility, extra, x.shape[0])
    indices, top, _ = u.top_custom(utility, x, is_logits, name, k, masks.never, normalize, atol,
                                   matrix)
    return indices, top


def _no_extra(extra: Any) -> None:
    if extra is not None:
        raise InvalidInputError(
            "extra= is for a custom score function (score=f with def f(p, cost, ...)); the "
            "built-in scores take no extra inputs"
        )


def select_top(probs: Any, k: int, *, score: Any = "margin", logits: bool = False,
               labeled: Any = None, exclude: Any = None, normalize: bool = False,
               atol: float = 1e-3, extra: Any = None) -> np.ndarray:
    """Score every item and return the k most informative, in one pass over the matrix.

    Equivalent to ``top_k(getattr(alcore.scores, score)(probs), k, exclude=...)`` (the
    same kernels, so the same bits and the same tie order), but for (N, C) inputs the
    scores are reduced to the top k while they are computed, without an N-sized score
    array (except with ``normalize=True``, which ranks the N scores of
    :mod:`alcore.scores`: they re-score rows whose sums are subnormal). For every item's
    score call the function of :mod:`alcore.scores`, or :func:`alcore.select` with
    ``return_utilities=True``.

    Parameters
    ----------
    probs : array-like of shape (N, C), or (T, N, C) for the sample scores
        float32 or float64 probabilities (rows summing to 1 within ``atol``), or raw
        model outputs with ``logits=True`` (see :mod:`alcore.scores`).
    k : int
        Batch size, 1 <= k <= number of items neither labeled nor excluded.
    score : str or callable
        ``"least_confidence"``, ``"margin"``, ``"ratio"``, ``"entropy"``; or, for (T, N, C)
        samples, ``"bald"``, ``"variation_ratio"``, ``"vote_entropy"``, ``"kl_consensus"``;
        or a custom utility of one (N, C) row: an :func:`alcore.utility`, or a plain
        function (wrapped by it), run compiled inside the same validated, threaded pass.
        It receives the row as given (raw logits with ``logits=True``, raw weights with
        ``normalize=True``); its scores are float64.
    logits : bool
        ``probs`` holds logits.
    labeled, exclude : array-like, optional
        Items never to return, as in :func:`top_k`.
    normalize : bool
        Divide each non-negative row by its sum instead of requiring it to sum to 1.
    atol : float
        Allowed ``|row sum - 1|``, in [0, 1).
    extra : array-like or dict, optional
        The custom utility's extra per-row inputs: for ``def f(p, cost)`` an array of shape
        (N,), for several parameters a dict name -> array of shape (N,).

    Returns
    -------
    numpy.ndarray of shape (k,), int64
        The chosen indices, best first (ties to the lower index). The ranking uses the
        scores of :mod:`alcore.scores` (the same kernels): each clamped to its documented
        range, entropy within the error bound stated in :func:`alcore.scores.entropy`.
    """
    if u.is_custom(score):
        return _custom_top(probs, k, score, logits, {"labeled": labeled, "exclude": exclude},
                           normalize, atol, extra)[0]
    _no_extra(extra)
    score, is_logits, normalize, atol, k = _parse_options(score, logits, normalize, atol, k)
    x, is_logits, name = _outputs(probs, score, is_logits)
    n = x.shape[1] if x.ndim == 3 else x.shape[0]
    masks = v.item_masks(n, name, labeled=labeled, exclude=exclude, k=k)
    return _top_with_scores(x, is_logits, name, k, score, masks.never, normalize, atol)[0]


def select_top_with_scores(x: Any, k: int, *, score: Any = "margin", logits: bool = False,
                           exclude_mask: Any = None, normalize: bool = False,
                           atol: float = 1e-3, extra: Any = None) -> tuple[np.ndarray, np.ndarray]:
    """:func:`select_top` that also returns the scores of the k chosen items (private: for
    the out-of-core reader, which merges per-chunk candidates by score).

    Parameters
    ----------
    x : array-like of shape (N, C) (or (T, N, C) for the sample scores)
        As ``probs`` of :func:`select_top`.
    k : int
        1 <= k <= number of items not excluded.
    exclude_mask : array-like, optional
        Boolean mask of shape (N,) or unique indices of items never to return.
    score, logits, normalize, atol, extra
        As in :func:`select_top`.

    Returns
    -------
    (indices, scores)
        int64 (k,) best first, and those items' scores, shape (k,), in the input's dtype
        (float32 for float16 input; float64 for a custom score).
    """
    if u.is_custom(score):
        return _custom_top(x, k, score, logits, {"exclude": exclude_mask}, normalize, atol,
                           extra)
    _no_extra(extra)
    score, is_logits, normalize, atol, k = _parse_options(score, logits, normalize, atol, k)
    arr, is_logits, name = _outputs(x, score, is_logits)
    n = arr.shape[1] if arr.ndim == 3 else arr.shape[0]
    masks = v.item_masks(n, name, exclude=exclude_mask, k=k)
    return _top_with_scores(arr, is_logits, name, k, score, masks.never, normalize, atol)


__all__ = ["select_top", "top_k"]

v.guard_signatures(globals())
