"""Expected model change: the expected gradient length (EGL, Settles, Craven and Ray 2008)
of an item for linear and logistic models, from what the model already computed.

For a model whose per-sample loss has gradient ``g(y) = r(y) (x) x~`` with respect to its
weights (an outer product of a residual ``r`` and the item's input ``x~``), the gradient's
norm is ``|r(y)| |x~|``, so the expected gradient length under the model's own predictive
distribution needs only the item's probabilities and its feature norm::

    EGL(x) = E_{y ~ p(y|x)} |g(y)| = |x~| E_y |r(y)|.

``x~`` is the model's input to its last linear layer: the features of a linear model, or a
network's last-layer embedding (the gradient of the last layer's weights), with a
constant 1 appended for the bias (``bias=True``: ``|x~|^2 = |x|^2 + 1``).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from alcore import _validation as v
from alcore import scores
from alcore._errors import InvalidInputError

MODELS = ("logistic", "softmax", "ovr", "linear")


def expected_gradient_length(probs: Any, features: Any, *, model: str = "logistic",
                             bias: bool = True, logits: bool = False, sigma: Any = None,
                             **unknown: Any) -> np.ndarray:
    """Expected gradient length of each item's log-loss (or squared loss) gradient.

    Parameters
    ----------
    probs : array-like of shape (N, C) or (N,), or None
        The model's outputs for the N items (float32 or float64, finite):

        - ``model="logistic"``: ``predict_proba`` rows, each in [0, 1] summing to 1
          (``|sum - 1| <= 1e-3``), or a 1-D positive-class probability. Two classes (or
          1-D) are the binary logistic model with one weight vector (scikit-learn's binary
          ``LogisticRegression`` / ``SGDClassifier``): the gradient for label y is
          ``(p - y) x~``, so ``EGL = 2 p (1 - p) |x~|``. More classes are the multinomial
          (softmax) model with C weight vectors: the gradient for label y is
          ``(p - e_y) (x) x~``, so ``EGL = |x~| sum_y p_y |p - e_y|``.
        - ``model="softmax"``: the multinomial model at any C >= 2, C weight vectors
          (a network's softmax output layer). For C = 2 this is sqrt(2) times the binary
          one-vector value (two weight vectors that move in opposite directions).
        - ``model="ovr"``: one-vs-rest logistic (scikit-learn's multiclass
          ``SGDClassifier(loss="log_loss")``): C independent binary models, ``probs``
          their per-class sigmoid outputs ``s_c`` (not normalised; ``expit(
          clf.decision_function(X))``, or the decision function itself with
          ``logits=True``). A label y gives every class its binary target ``[y == c]``, so
          the gradient over all C weight vectors is ``(s - e_y) (x) x~``; y is drawn from
          the normalised ``p_y = s_y / sum s`` (what ``predict_proba`` returns):
          ``EGL = |x~| sum_y p_y |s - e_y|``.
        - ``model="linear"``: pass None; see ``sigma``.
    features : array-like of shape (N, d)
        The model's input to its last linear layer: the features, or a last-layer
        embedding. Only the row norms are used.
    model : str, keyword-only
        ``"logistic"``, ``"softmax"``, ``"ovr"`` or ``"linear"``.
    bias : bool, keyword-only
        The model has an intercept (a constant input 1): ``|x~|^2 = |x|^2 + 1``.
    logits : bool, keyword-only
        ``probs`` are raw scores: softmax rows for ``"logistic"`` / ``"softmax"`` (a 1-D
        logit through the sigmoid), per-class sigmoids for ``"ovr"``.
    sigma : float or array-like of shape (N,), keyword-only
        ``model="linear"`` only: the standard deviation of the predictive distribution
        (the noise sigma of a least-squares fit, or a Bayesian linear model's per-item
        predictive std), > 0 and finite. The squared loss ``(y_hat - y)^2 / 2`` has
        gradient ``(y_hat - y) x~``; under ``y ~ N(y_hat, sigma^2)``,
        ``E|y_hat - y| = sigma sqrt(2 / pi)``, so ``EGL = sigma sqrt(2 / pi) |x~|``.

    Returns
    -------
    numpy.ndarray of shape (N,), float64
        Higher = a larger expected change of the model. The gradients are of the
        per-sample loss only: a regularisation term's gradient does not depend on the
        label and is left out.

    Raises
    ------
    InvalidInputError
        For an unknown model, wrong shapes, non-finite values, rows outside [0, 1] or not
        summing to 1, or a missing/invalid sigma.
    """
    v.refuse_unknown("expected_gradient_length()", unknown, expected_gradient_length)
    model = v.choice(model, "model", MODELS)
    bias = v.flag(bias, "bias")
    logits = v.flag(logits, "logits")
    x = v.float_array(features, "features")
    if x.ndim != 2:
        raise InvalidInputError(
            f"features must be 2-D with shape (N items, d), got shape {x.shape}")
    _finite(x, "features")
    x64 = x.astype(np.float64, copy=False)
    norm = np.sqrt(np.einsum("ij,ij->i", x64, x64) + (1.0 if bias else 0.0))
    n = x.shape[0]

    if model == "linear":
        if probs is not None:
            raise InvalidInputError(
                "probs must be None for model='linear' (a regression has no class "
                "probabilities); pass the predictive standard deviation as sigma=")
        if sigma is None:
            raise InvalidInputError(
                "sigma is required for model='linear': the predictive standard deviation "
                "(a float, or one per item)")
        s = v.as_numpy(sigma, "sigma")
        if s.dtype.kind not in "iuf":
            raise InvalidInputError(
                f"sigma must be a real number or array, got dtype {s.dtype}")
        s = s.astype(np.float64)
        if s.ndim == 0:
            s = np.full(n, float(s))
        if s.shape != (n,):
            raise InvalidInputError(
                f"sigma must be a float or have shape ({n},) to match features, got shape "
                f"{s.shape}")
        if not (np.isfinite(s) & (s > 0)).all():
            i = int(np.flatnonzero(~(np.isfinite(s) & (s > 0)))[0])
            raise InvalidInputError(
                f"sigma must be finite and > 0: sigma[{i}] is {s[i]}")
        return s * math.sqrt(2.0 / math.pi) * norm
    if sigma is not None:
        raise InvalidInputError(f"sigma is only for model='linear', got model={model!r}")

    p = v.float_array(probs, "probs")
    if p.ndim not in (1, 2) or (p.ndim == 2 and p.shape[1] < 2):
        raise InvalidInputError(
            f"probs must have shape (N, C) with C >= 2 (or (N,) positive-class "
            f"probabilities), got shape {p.shape}")
    if p.shape[0] != n:
        raise InvalidInputError(
            f"probs has {p.shape[0]} items but features has {n}; pass one row per item")
    _finite(p, "probs")
    p = p.astype(np.float64)
    if p.ndim == 1:
        if model != "logistic":
            raise InvalidInputError(
                f"probs must be 2-D (N, C) for model={model!r}, got shape {p.shape}; 1-D "
                f"positive-class probabilities are for model='logistic'")
        p = 1.0 / (1.0 + np.exp(-p)) if logits else p
        _in_unit(p, "probs")
        return 2.0 * p * (1.0 - p) * norm

    if model == "ovr":
        s = 1.0 / (1.0 + np.exp(-p)) if logits else p
        _in_unit(s, "probs")
        total = s.sum(axis=1)
        if not (total > 0).all():
            i = int(np.flatnonzero(~(total > 0))[0])
            raise InvalidInputError(
                f"probs row {i} has every per-class sigmoid 0, so predict_proba's "
                f"normalisation is undefined; pass the sigmoid outputs (or logits=True)")
        weights = s / total[:, None]
        return norm * _expected_residual(s, weights)

    # The pool scores' checks (values in [0, 1], rows summing to 1 within 1e-3) and softmax,
    # one definition for the package.
    scores.least_confidence(p, logits=logits)
    if logits:
        p = scores._softmax(p)
    if model == "logistic" and p.shape[1] == 2:
        q = p[:, 1]
        return 2.0 * q * (1.0 - q) * norm
    return norm * _expected_residual(p, p)


def _expected_residual(s: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """sum_y weights[:, y] |s - e_y| per row, with |s - e_y|^2 = (|s|^2 - s_y^2) + (1 - s_y)^2.

    |s|^2 - s_y^2 (the other classes' squares) is formed without cancellation: for the
    largest s_y as the direct sum of the others (|s|^2 - 2 s_y + 1 would lose every digit
    of a row near one-hot), for the rest as a difference at most halving the digits.
    """
    sq = np.einsum("ij,ij->i", s, s)
    rows = np.arange(s.shape[0])
    top = np.argmax(s, axis=1)
    others = sq[:, None] - s * s
    rest = s.copy()
    rest[rows, top] = 0.0
    others[rows, top] = np.einsum("ij,ij->i", rest, rest)
    dist = np.sqrt(np.maximum(others, 0.0) + (1.0 - s) ** 2)
    return np.einsum("ij,ij->i", weights, dist)


def _finite(a: np.ndarray, name: str) -> None:
    bad = ~np.isfinite(a)
    if bad.any():
        where = np.argwhere(bad)[0]
        at = ", ".join(str(int(i)) for i in where)
        raise InvalidInputError(
            f"{name} must be finite: {name}[{at}] is {a[tuple(where)]}; replace NaN/inf or "
            f"drop those items")


def _in_unit(a: np.ndarray, name: str) -> None:
    bad = (a < 0) | (a > 1)
    if bad.any():
        where = np.argwhere(bad)[0]
        at = ", ".join(str(int(i)) for i in where)
        raise InvalidInputError(
            f"{name} must lie in [0, 1]: {name}[{at}] is {a[tuple(where)]:.6g}; pass "
            f"logits=True for raw scores")


__all__ = ["MODELS", "expected_gradient_length"]

v.guard_signatures(globals())
