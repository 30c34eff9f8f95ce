"""Per-item uncertainty scores. Higher = more informative.

From one probability (or logit) row per item, shape (N, C):
:func:`least_confidence`, :func:`margin`, :func:`ratio`, :func:`entropy`.

From T Monte-Carlo or ensemble samples per item, shape (T, N, C) (or a list of T arrays of
shape (N, C)): :func:`bald`, :func:`variation_ratio`, :func:`vote_entropy`,
:func:`kl_consensus`.

Every function accepts ``probs=`` (rows summing to 1 within ``atol``) or ``logits=``
(softmax applied internally with a stable log-sum-exp; logits of any finite magnitude,
e.g. +-1e4, are fine). float32 and float64 inputs are scored in their own precision and the
scores come back in the same dtype. ``normalize=True`` accepts non-negative rows of any
positive sum (counts, unnormalised weights) and divides them by their sum.

All kernels run natively, parallel over rows, and check the values in the same pass: NaN,
inf, negative probabilities, values above 1 or rows not summing to 1 raise
:class:`alcore.InvalidInputError` naming the first offending row.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from alcore import _core
from alcore import _validation as v
from alcore._errors import InvalidInputError

SCORE_CODES = {"least_confidence": 0, "margin": 1, "ratio": 2, "entropy": 3}
SAMPLE_SCORE_CODES = {"bald": 0, "variation_ratio": 1, "vote_entropy": 2, "kl_consensus": 0}


def _rows(code: int, probs: Any, logits: Any, normalize: Any, atol: Any,
          scale_entropy: bool = False) -> np.ndarray:
    x, is_logits, name = v.probs_matrix(probs, logits)
    normalize = v.flag(normalize, "normalize")
    atol = v.tolerance(atol)
    try:
        return _core.score_rows(x, code, is_logits, normalize, atol, scale_entropy)
    except _core.InvalidValue as err:
        raise v.invalid_value_error(err, name, atol=atol) from None


def least_confidence(probs: Any = None, *, logits: Any = None, normalize: bool = False,
                     atol: float = 1e-3) -> np.ndarray:
    """Least confidence, ``1 - p1`` where p1 is the row's largest probability.

    Parameters
    ----------
    probs : array-like of shape (N, C), float32 or float64
        Class probabilities; rows sum to 1 within ``atol``.
    logits : array-like of shape (N, C), optional
        Raw model outputs instead of ``probs``.
    normalize : bool
        Divide each non-negative row by its sum instead of requiring it to sum to 1.
    atol : float
        Allowed ``|row sum - 1|``.

    Returns
    -------
    numpy.ndarray of shape (N,), the input's dtype
        Scores in [0, 1 - 1/C].
    """
    return _rows(0, probs, logits, normalize, atol)


def margin(probs: Any = None, *, logits: Any = None, normalize: bool = False,
           atol: float = 1e-3) -> np.ndarray:
    """Margin score, ``1 - (p1 - p2)`` with p1 >= p2 the two largest probabilities.

    Parameters and returns as :func:`least_confidence`; scores lie in [0, 1].
    """
    return _rows(1, probs, logits, normalize, atol)


def ratio(probs: Any = None, *, logits: Any = None, normalize: bool = False,
          atol: float = 1e-3) -> np.ndarray:
    """Ratio score, ``p2 / p1`` with p1 >= p2 the two largest probabilities.

    Parameters and returns as :func:`least_confidence`; scores lie in [0, 1].
    """
    return _rows(2, probs, logits, normalize, atol)


def entropy(probs: Any = None, *, logits: Any = None, normalize: bool = False,
            atol: float = 1e-3) -> np.ndarray:
    """Shannon entropy in nats, ``-sum p ln p`` (with ``0 ln 0 = 0``).

    Parameters
    ----------
    probs, logits, atol
        As :func:`least_confidence`.
    normalize : bool
        Return the normalised entropy ``H / ln C`` in [0, 1], computed on the rows divided
        by their sums (so non-negative rows of any positive sum are accepted, as for the
        other scores). The ranking is the same as without it.

    Returns
    -------
    numpy.ndarray of shape (N,), the input's dtype
        Scores in [0, ln C] (or [0, 1] with ``normalize=True``).

    Notes
    -----
    The logarithm is a vectorised polynomial (AVX-512/AVX2/SSE2 chosen at run time),
    accurate to a few units in the last place of the input's dtype.
    """
    return _rows(3, probs, logits, normalize, atol, scale_entropy=bool(normalize))


def _softmax(z: np.ndarray) -> np.ndarray:
    shifted = z - z.max(axis=-1, keepdims=True)
    np.exp(shifted, out=shifted)
    shifted /= shifted.sum(axis=-1, keepdims=True)
    return shifted


def _samples(code: int, probs: Any, logits: Any, normalize: Any, atol: Any) -> np.ndarray:
    x, is_logits, name = v.samples_tensor(probs, logits)
    normalize = v.flag(normalize, "normalize")
    atol = v.tolerance(atol)
    if is_logits:
        if not np.isfinite(x).all():
            bad = np.argwhere(~np.isfinite(x))[0]
            raise InvalidInputError(
                f"logits must be finite: logits[{bad[0]}] row {bad[1]}, column {bad[2]} is "
                f"{x[tuple(bad)]}; replace NaN/inf (e.g. numpy.nan_to_num) or drop those rows"
            )
        x, normalize = _softmax(x), False
    try:
        return _core.sample_scores(x, code, normalize, atol)
    except _core.InvalidValue as err:
        raise v.invalid_value_error(err, name, atol=atol) from None


_SAMPLES_DOC = """

    Parameters
    ----------
    probs : array-like of shape (T, N, C), or a sequence of T arrays of shape (N, C)
        Probabilities of T Monte-Carlo passes or ensemble members (member-major), float32
        or float64. A sequence is stacked once.
    logits : same shapes, optional
        Raw outputs instead of ``probs`` (softmax applied once, in numpy).
    normalize : bool
        Divide each non-negative member row by its sum instead of requiring it to sum to 1.
    atol : float
        Allowed ``|row sum - 1|``.

    Returns
    -------
    numpy.ndarray of shape (N,), the input's dtype
    """


def bald(probs: Any = None, *, logits: Any = None, normalize: bool = False,
         atol: float = 1e-3) -> np.ndarray:
    return _samples(0, probs, logits, normalize, atol)


bald.__doc__ = (
    """BALD: mutual information between the prediction and the model,
    ``H(mean_t p_t) - mean_t H(p_t)`` (Houlsby et al. 2011; Gal et al. 2017), in nats.
    Rounding below 0 is clamped to 0."""
    + _SAMPLES_DOC
)


def kl_consensus(probs: Any = None, *, logits: Any = None, normalize: bool = False,
                 atol: float = 1e-3) -> np.ndarray:
    return _samples(0, probs, logits, normalize, atol)


kl_consensus.__doc__ = (
    """Query-by-committee disagreement: the members' mean KL divergence from the consensus
    (their mean distribution), ``mean_t KL(p_t || mean p)`` (McCallum & Nigam 1998).

    This equals the mutual information exactly (``sum_t p_t ln(p_t / p̄) / T
    = H(p̄) - mean_t H(p_t)``), so it shares :func:`bald`'s kernel; unlike
    scikit-activeml's ``average_kl_divergence`` no probability is clipped to ``eps``."""
    + _SAMPLES_DOC
)


def variation_ratio(probs: Any = None, *, logits: Any = None, normalize: bool = False,
                    atol: float = 1e-3) -> np.ndarray:
    return _samples(1, probs, logits, normalize, atol)


variation_ratio.__doc__ = (
    """Variation ratio, ``1 - (votes for the modal class) / T``, each member voting for its
    most probable class (ties to the lower class index)."""
    + _SAMPLES_DOC
)


def vote_entropy(probs: Any = None, *, logits: Any = None, normalize: bool = False,
                 atol: float = 1e-3) -> np.ndarray:
    return _samples(2, probs, logits, normalize, atol)


vote_entropy.__doc__ = (
    """Vote entropy, the entropy (nats) of the members' hard-vote distribution
    (Engelson & Dagan 1996); each member votes for its most probable class (ties to the
    lower class index)."""
    + _SAMPLES_DOC
)

__all__ = [
    "bald",
    "entropy",
    "kl_consensus",
    "least_confidence",
    "margin",
    "ratio",
    "variation_ratio",
    "vote_entropy",
]
