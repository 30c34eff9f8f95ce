"""Per-item uncertainty scores. Higher = more informative.

From one probability (or logit) row per item, shape (N, C):
:func:`least_confidence`, :func:`margin`, :func:`ratio`, :func:`entropy`.

From T Monte-Carlo or ensemble samples per item, shape (T, N, C) (or a list of T arrays of
shape (N, C)): :func:`bald`, :func:`variation_ratio`, :func:`vote_entropy`,
:func:`kl_consensus`.

Every function takes one positional array: probabilities (rows summing to 1 within
``atol``), or raw model outputs with ``logits=True`` (softmax applied internally with a
stable log-sum-exp; logits of any finite magnitude, e.g. +-1e4, are fine). float32 and
float64 inputs are scored in their own precision and the scores come back in the same
dtype (float16 is scored in float32). ``normalize=True`` means the same for every score: it
accepts non-negative rows of any positive sum (counts, unnormalised weights) and divides
them by their sum. :func:`entropy` alone has ``scaled=True`` (divide by ln C, so the score
lies in [0, 1]).

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
ALL_SCORES = tuple(SCORE_CODES) + tuple(SAMPLE_SCORE_CODES)


def _row_scores(x: np.ndarray, is_logits: bool, name: str, code: int, normalize: bool,
                atol: float, scaled: bool = False) -> np.ndarray:
    """Score a validated (N, C) matrix; the kernel checks the element values."""
    try:
        result = _core.score_rows(x, code, is_logits, normalize, atol, scaled)
    except _core.InvalidValue as err:
        raise v.invalid_value_error(err, name, atol=atol) from None
    if normalize and not is_logits:
        result = _rescore_tiny_sums(result, x, code, atol, scaled)
    return result


def _rescore_tiny_sums(result: np.ndarray, x: np.ndarray, code: int, atol: float,
                       scaled: bool) -> np.ndarray:
    """Rows whose positive sum is so small (subnormal) that the kernel's reciprocal of it
    overflows come out inf or NaN, and the kernel makes rows whose sum overflows NaN: score
    them again after dividing them by their largest value (the same probabilities once
    renormalised). The values were checked by the kernel already; this costs one pass over
    the (N,) scores."""
    bad = np.flatnonzero(~np.isfinite(result))
    if bad.size:
        rows = x[bad]
        rows = np.ascontiguousarray(rows / rows.max(axis=1, keepdims=True), dtype=x.dtype)
        result[bad] = _core.score_rows(rows, code, False, True, atol, scaled)
    return result


def _rows(code: int, probs: Any, logits: Any, normalize: Any, atol: Any,
          scaled: Any = False) -> np.ndarray:
    # The options first: a call that will be refused converts no array.
    normalize = v.flag(normalize, "normalize")
    scaled = v.flag(scaled, "scaled")
    atol = v.tolerance(atol)
    x, is_logits, name = v.outputs_matrix(probs, logits)
    return _row_scores(x, is_logits, name, code, normalize, atol, scaled)


def least_confidence(probs: Any, *, logits: bool = False, normalize: bool = False,
                     atol: float = 1e-3) -> np.ndarray:
    """Least confidence, ``1 - p1`` where p1 is the row's largest probability.

    Parameters
    ----------
    probs : array-like of shape (N, C), float32 or float64
        Class probabilities, rows summing to 1 within ``atol``; with ``logits=True``, raw
        model outputs (any finite values).
    logits : bool
        ``probs`` holds logits: softmax is applied internally.
    normalize : bool
        Divide each non-negative row by its sum instead of requiring it to sum to 1.
    atol : float
        Allowed ``|row sum - 1|``, in [0, 1).

    Returns
    -------
    numpy.ndarray of shape (N,), the input's dtype
        Scores in [0, 1 - 1/C] (the bound as rounded in the dtype, ``1 - fl(1/C)``).
        Every score of this module is clamped to its range: rounding (e.g. dividing
        ``[22, 0]`` by its sum) never leaves it, and the order of the scores is kept.
    """
    return _rows(0, probs, logits, normalize, atol)


def margin(probs: Any, *, logits: bool = False, normalize: bool = False,
           atol: float = 1e-3) -> np.ndarray:
    """Margin score, ``1 - (p1 - p2)`` with p1 >= p2 the two largest probabilities.

    Parameters and returns as :func:`least_confidence`; scores lie in [0, 1].
    """
    return _rows(1, probs, logits, normalize, atol)


def ratio(probs: Any, *, logits: bool = False, normalize: bool = False,
          atol: float = 1e-3) -> np.ndarray:
    """Ratio score, ``p2 / p1`` with p1 >= p2 the two largest probabilities.

    Parameters and returns as :func:`least_confidence`; scores lie in [0, 1].
    """
    return _rows(2, probs, logits, normalize, atol)


def entropy(probs: Any, *, logits: bool = False, normalize: bool = False,
            scaled: bool = False, atol: float = 1e-3) -> np.ndarray:
    """Shannon entropy in nats, ``-sum p ln p`` (with ``0 ln 0 = 0``).

    Parameters
    ----------
    probs, logits, normalize, atol
        As :func:`least_confidence`.
    scaled : bool
        Divide by ln C: the normalised entropy ``H / ln C`` in [0, 1]. The ranking is the
        same as without it.

    Returns
    -------
    numpy.ndarray of shape (N,), the input's dtype
        Scores in [0, ln C] (or [0, 1] with ``scaled=True``).

    Notes
    -----
    The logarithm is vectorised (AVX-512/AVX2/SSE2 chosen at run time, a table and a
    short polynomial or a longer polynomial),
    accurate to a few units in the last place of the input's dtype. For probabilities
    (``normalize`` True or False) the score H differs from the exact entropy of the given
    values (``normalize=True``: of the rows divided by their sums) by at most
    ``(1 + log2 C) * eps * (1 + H)``, ``eps`` the dtype's machine epsilon (1.19e-7 for
    float32, 2.2e-16 for float64). The ``1 + H`` (not ``H``) is inherent: rounding q = p /
    sum to the dtype moves each q by half an ulp, which moves H by up to about
    ``eps * (1 + H)``, so an entropy near 0 (one class dominating) has an absolute, not a
    relative, error of that size. The score is clamped to [0, ln C].
    """
    return _rows(3, probs, logits, normalize, atol, scaled)


def _softmax(z: np.ndarray) -> np.ndarray:
    # Logits of opposite huge magnitudes (+-3e38) overflow to -inf here: exp gives the
    # exact 0, so the overflow is expected, not a warning for the caller.
    with np.errstate(over="ignore"):
        shifted = z - z.max(axis=-1, keepdims=True)
    np.exp(shifted, out=shifted)
    shifted /= shifted.sum(axis=-1, keepdims=True)
    return shifted


def _sample_scores(x: np.ndarray, is_logits: bool, name: str, code: int, normalize: bool,
                   atol: float) -> np.ndarray:
    """Score a validated (T, N, C) tensor; the kernel checks the element values."""
    if is_logits:
        if not np.isfinite(x).all():
            bad = np.argwhere(~np.isfinite(x))[0]
            raise InvalidInputError(
                f"logits must be finite: logits[{bad[0]}] row {bad[1]}, column {bad[2]} is "
                f"{x[tuple(bad)]}; replace NaN/inf (e.g. numpy.nan_to_num) or drop those rows"
            )
        x, normalize = _softmax(x), False
    if normalize:
        x = _scale_tiny_rows(x)
    try:
        return _core.sample_scores(x, code, normalize, atol)
    except _core.InvalidValue as err:
        raise v.invalid_value_error(err, name, atol=atol) from None


def _scale_tiny_rows(x: np.ndarray) -> np.ndarray:
    """x with every member row whose largest value is below the smallest normal number
    divided by that value (exact scaling, same probabilities once renormalised): the
    kernel renormalises by the reciprocal of the row sum, which overflows for subnormal
    sums and silently gave BALD 0. Rows with NaN or negative values are left for the
    kernel to report. One reduction over x; a copy only when such rows exist."""
    with np.errstate(invalid="ignore"):
        peak = x.max(axis=-1)
    # Rows whose sum could overflow (values near the dtype's maximum) are scaled the same
    # way: their reciprocal sum would be 0.
    info = np.finfo(x.dtype)
    tiny = (peak > 0) & ((peak < info.tiny) | (peak > info.max / x.shape[-1]))
    if not tiny.any():
        return x
    x = x.copy()
    x[tiny] /= peak[tiny][..., None]
    return x


def _samples(code: int, probs: Any, logits: Any, normalize: Any, atol: Any) -> np.ndarray:
    normalize = v.flag(normalize, "normalize")
    atol = v.tolerance(atol)
    x, is_logits, name = v.outputs_tensor(probs, logits)
    return _sample_scores(x, is_logits, name, code, normalize, atol)


def _score_validated(score: str, x: np.ndarray, is_logits: bool, name: str, *,
                     normalize: bool, atol: float) -> np.ndarray:
    """Any score by name on an array already validated by ``v.outputs_matrix`` (row scores)
    or ``v.outputs_tensor`` (sample scores)."""
    if score in SCORE_CODES:
        return _row_scores(x, is_logits, name, SCORE_CODES[score], normalize, atol)
    return _sample_scores(x, is_logits, name, SAMPLE_SCORE_CODES[score], normalize, atol)


_SAMPLES_DOC = """

    Parameters
    ----------
    probs : array-like of shape (T, N, C), or a sequence of T arrays of shape (N, C)
        Probabilities of T Monte-Carlo passes or ensemble members (member-major), float32
        or float64; with ``logits=True``, their raw outputs. A sequence is stacked once.
    logits : bool
        ``probs`` holds logits (softmax applied once, in numpy).
    normalize : bool
        Divide each non-negative member row by its sum instead of requiring it to sum to 1.
    atol : float
        Allowed ``|row sum - 1|``, in [0, 1).

    Returns
    -------
    numpy.ndarray of shape (N,), the input's dtype
    """


def bald(probs: Any, *, logits: bool = False, normalize: bool = False,
         atol: float = 1e-3) -> np.ndarray:
    return _samples(0, probs, logits, normalize, atol)


bald.__doc__ = (
    """BALD: mutual information between the prediction and the model,
    ``H(mean_t p_t) - mean_t H(p_t)`` (Houlsby et al. 2011; Gal et al. 2017), in nats,
    in [0, ln min(C, T)] (clamped there: rounding can cross either bound)."""
    + _SAMPLES_DOC
)


def kl_consensus(probs: Any, *, logits: bool = False, normalize: bool = False,
                 atol: float = 1e-3) -> np.ndarray:
    return _samples(0, probs, logits, normalize, atol)


kl_consensus.__doc__ = (
    """Query-by-committee disagreement: the members' mean KL divergence from the consensus
    (their mean distribution), ``mean_t KL(p_t || mean p)`` (McCallum & Nigam 1998).

    This equals the mutual information exactly (``sum_t p_t ln(p_t / p̄) / T
    = H(p̄) - mean_t H(p_t)``), so it shares :func:`bald`'s kernel and its range
    [0, ln min(C, T)]; unlike
    scikit-activeml's ``average_kl_divergence`` no probability is clipped to ``eps``."""
    + _SAMPLES_DOC
)


def variation_ratio(probs: Any, *, logits: bool = False, normalize: bool = False,
                    atol: float = 1e-3) -> np.ndarray:
    return _samples(1, probs, logits, normalize, atol)


variation_ratio.__doc__ = (
    """Variation ratio, ``1 - (votes for the modal class) / T``, each member voting for its
    most probable class (ties to the lower class index); in [0, 1 - 1/T]."""
    + _SAMPLES_DOC
)


def vote_entropy(probs: Any, *, logits: bool = False, normalize: bool = False,
                 atol: float = 1e-3) -> np.ndarray:
    return _samples(2, probs, logits, normalize, atol)


vote_entropy.__doc__ = (
    """Vote entropy, the entropy (nats) of the members' hard-vote distribution
    (Engelson & Dagan 1996); each member votes for its most probable class (ties to the
    lower class index); in [0, ln min(C, T)]."""
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

v.guard_signatures(globals())
