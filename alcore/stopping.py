"""When to stop labeling: stopping criteria for pool-based loops, combinable with | and &.

Each round, call ``update`` with what the loop knows (``n_labeled``, the current model's
``predictions`` on a fixed stop set, the unlabeled pool's uncertainty ``scores``); each
criterion uses what it needs. ``should_stop`` and ``reason`` tell the outcome.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np

from alcore import _validation as v
from alcore._errors import InvalidInputError


def _labels(value: Any, name: str) -> np.ndarray:
    """A non-empty 1-D vector of class labels (numbers or strings, no NaN)."""
    arr = v.as_numpy(value, name)
    if arr.ndim != 1 or arr.size == 0:
        raise InvalidInputError(
            f"{name} must be a non-empty 1-D vector of predicted labels, shape (M,), got "
            f"shape {arr.shape}")
    if arr.dtype.kind not in "biufUS":
        raise InvalidInputError(
            f"{name} must hold class labels (integers, floats or strings), got dtype "
            f"{arr.dtype}; pass model.predict(X_stop) as a numpy array")
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        raise InvalidInputError(
            f"{name} must be finite: {name}[{int(np.flatnonzero(~np.isfinite(arr))[0])}] is "
            f"not; pass the predicted class labels")
    return arr


def cohen_kappa(a: Any, b: Any) -> float:
    """Cohen's kappa between two label vectors of the same length: (p_o - p_e) / (1 - p_e);
    1.0 when both are the same single label (p_e = 1).

    Parameters
    ----------
    a, b : array-like of shape (M,)
        Labels (integers, floats or strings; not mixed between a and b).

    Returns
    -------
    float
    """
    a, b = _labels(a, "a"), _labels(b, "b")
    if a.shape != b.shape:
        raise InvalidInputError(
            f"a and b must have the same length, got {a.shape[0]} and {b.shape[0]}")
    if (a.dtype.kind in "US") != (b.dtype.kind in "US"):
        raise InvalidInputError(
            f"a and b must both hold numbers or both strings, got dtypes {a.dtype} and "
            f"{b.dtype}")
    labels, codes = np.unique(np.concatenate([a, b]), return_inverse=True)
    ca, cb = codes[: len(a)], codes[len(a):]
    observed = float(np.mean(ca == cb))
    pa = np.bincount(ca, minlength=len(labels)) / len(a)
    pb = np.bincount(cb, minlength=len(labels)) / len(b)
    expected = float(pa @ pb)
    if expected == 1.0:
        return 1.0
    return (observed - expected) / (1.0 - expected)


class StoppingCriterion:
    """Base class: ``update(**round)`` each round, then read ``should_stop``."""

    should_stop: bool = False
    reason: str = ""

    def update(self, *, n_labeled: int | None = None, predictions: Any = None,
               scores: Any = None, **unknown: Any) -> bool:
        """Take one round's information; return (and set) :attr:`should_stop`.

        Parameters
        ----------
        n_labeled : int, optional
            Items labeled so far.
        predictions : array-like of shape (M,), optional
            The current model's labels for a fixed stop set.
        scores : array-like of shape (N,), float, optional
            The unlabeled pool's uncertainty scores (finite).
        """
        raise NotImplementedError

    def __or__(self, other: StoppingCriterion) -> StoppingCriterion:
        return AnyOf(self, other)

    def __and__(self, other: StoppingCriterion) -> StoppingCriterion:
        return AllOf(self, other)


def _require(value: Any, name: str, criterion: str) -> Any:
    if value is None:
        raise InvalidInputError(f"{criterion}.update needs {name}=")
    return value


def _n_labeled(value: Any) -> int | None:
    if value is None:
        return None
    return v.integer(value, "n_labeled", low=0,
                     hint="pass the number of labeled items, e.g. labeled.sum()")


class StabilizingPredictions(StoppingCriterion):
    """Stop when successive models agree on a fixed stop set (Bloodgood & Vijay-Shanker
    2009): the mean Cohen's kappa of the last ``window`` consecutive pairs of predictions
    is >= ``threshold``.

    Parameters
    ----------
    threshold : float
        0.99 in the paper.
    window : int
        Consecutive kappas averaged (3 in the paper).
    """

    def __init__(self, *, threshold: float = 0.99, window: int = 3, **unknown: Any):
        v.refuse_unknown("StabilizingPredictions", unknown, StabilizingPredictions.__init__)
        self.threshold = v.number(threshold, "threshold", low=-1.0, high=1.0,
                                  hint="a Cohen's kappa, 0.99 in the paper")
        self.window = v.count(window, "window")
        self.kappas: list[float] = []
        self._previous: np.ndarray | None = None

    def update(self, *, n_labeled=None, predictions=None, scores=None, **unknown) -> bool:
        v.refuse_unknown(f"{type(self).__name__}.update", unknown, StoppingCriterion.update)
        _n_labeled(n_labeled)
        if scores is not None:
            _scores(scores)
        current = _require(predictions, "predictions", "StabilizingPredictions")
        current = v.as_numpy(current, "predictions")
        if current.ndim != 1 or current.size == 0:
            raise InvalidInputError(
                f"predictions must be the labels predicted for the stop set, shape (M,), "
                f"got shape {current.shape}")
        current = _labels(current, "predictions")
        if self._previous is not None:
            if self._previous.shape != current.shape:
                raise InvalidInputError(
                    f"predictions must cover the same stop set every round: got "
                    f"{current.shape[0]} labels after {self._previous.shape[0]}")
            if (self._previous.dtype.kind in "US") != (current.dtype.kind in "US"):
                raise InvalidInputError(
                    f"predictions must hold the same kind of labels every round: got dtype "
                    f"{current.dtype} after {self._previous.dtype}")
            self.kappas.append(cohen_kappa(self._previous, current))
        self._previous = current.copy()
        recent = self.kappas[-self.window:]
        self.should_stop = len(recent) == self.window and float(np.mean(recent)) >= self.threshold
        self.reason = (f"mean kappa of the last {self.window} rounds "
                       f"{np.mean(recent):.4f} >= {self.threshold}") if self.should_stop else ""
        return self.should_stop


def _scores(value: Any) -> np.ndarray:
    values = v.float_array(value, "scores")
    if values.ndim != 1 or values.size == 0:
        raise InvalidInputError(
            f"scores must be a non-empty 1-D array of the unlabeled pool's uncertainty, got "
            f"shape {values.shape}")
    finite = np.isfinite(values)
    if not finite.all():
        raise InvalidInputError(
            f"scores must be finite: scores[{int(np.flatnonzero(~finite)[0])}] is "
            f"{values[~finite][0]}; score the pool with alcore.scores")
    return values


def _mean(values: np.ndarray) -> float:
    """The mean of finite values, finite too.

    The float64 sum of values near the largest float overflows to inf; then the values are
    scaled by a power of two first (exact, unlike a division by the largest magnitude, which
    rounds small values into subnormals), chosen so that the sum of n of them cannot
    overflow, and the mean scaled back.
    """
    x = values.astype(np.float64, copy=False)
    with np.errstate(over="ignore"):  # an overflow is handled below, not a warning
        total = float(np.sum(x))
    if np.isfinite(total):
        return total / x.size
    shift = int(np.ceil(np.log2(x.size))) + 1
    return float(np.ldexp(np.sum(np.ldexp(x, -shift)) / x.size, shift))


class OverallUncertainty(StoppingCriterion):
    """Stop when the unlabeled pool's mean uncertainty falls below ``threshold`` (Zhu et al.
    2008): the model is confident about what is left.

    Parameters
    ----------
    threshold : float
        Finite; compared with the mean of the ``scores`` passed to :meth:`update` (a 1-D
        float array of finite values, shape (N,)). The mean is computed in float64 with
        scaling, so it is finite for any finite scores (even near the largest float).
    """

    def __init__(self, threshold: float, **unknown: Any):
        v.refuse_unknown("OverallUncertainty", unknown, OverallUncertainty.__init__)
        self.threshold = v.number(threshold, "threshold",
                                  hint="the mean uncertainty below which to stop")

    def update(self, *, n_labeled=None, predictions=None, scores=None, **unknown) -> bool:
        v.refuse_unknown(f"{type(self).__name__}.update", unknown, StoppingCriterion.update)
        _n_labeled(n_labeled)
        values = _scores(_require(scores, "scores", "OverallUncertainty"))
        mean = _mean(values)
        self.should_stop = mean < self.threshold
        self.reason = (f"mean pool uncertainty {mean:.6g} < {self.threshold:g}"
                       if self.should_stop else "")
        return self.should_stop


class MaxLabels(StoppingCriterion):
    """Stop once ``max_labels`` items are labeled (the budget).

    Parameters
    ----------
    max_labels : int
        A positive integer (Python or numpy).
    """

    def __init__(self, max_labels: int, **unknown: Any):
        v.refuse_unknown("MaxLabels", unknown, MaxLabels.__init__)
        self.max_labels = v.count(max_labels, "max_labels")

    def update(self, *, n_labeled=None, predictions=None, scores=None, **unknown) -> bool:
        v.refuse_unknown(f"{type(self).__name__}.update", unknown, StoppingCriterion.update)
        labeled = _n_labeled(_require(n_labeled, "n_labeled", "MaxLabels"))
        if scores is not None:
            _scores(scores)
        self.should_stop = labeled >= self.max_labels
        self.reason = f"{labeled} labels >= {self.max_labels}" if self.should_stop else ""
        return self.should_stop


class AnyOf(StoppingCriterion):
    """Stop when any of the criteria says so (``a | b``)."""

    def __init__(self, *criteria: StoppingCriterion, **unknown: Any):
        v.refuse_unknown(type(self).__name__, unknown, AnyOf.__init__)
        if not criteria:
            raise InvalidInputError("pass at least one StoppingCriterion to combine")
        for i, c in enumerate(criteria):
            if not isinstance(c, StoppingCriterion):
                raise InvalidInputError(
                    f"criteria[{i}] must be a StoppingCriterion (e.g. MaxLabels(1000)), got "
                    f"{type(c).__name__}")
        self.criteria = criteria

    def update(self, **round_info: Any) -> bool:
        known = ("n_labeled", "predictions", "scores")
        v.refuse_unknown(f"{type(self).__name__}.update",
                       {k: x for k, x in round_info.items() if k not in known},
                       StoppingCriterion.update)
        # A rejected round changes no criterion: restore every one if any refuses it.
        saved = [copy.deepcopy(c.__dict__) for c in self.criteria]
        try:
            for criterion in self.criteria:
                criterion.update(**round_info)
        except InvalidInputError:
            for criterion, state in zip(self.criteria, saved, strict=True):
                criterion.__dict__.clear()
                criterion.__dict__.update(state)
            raise
        self.should_stop = self._combine(c.should_stop for c in self.criteria)
        self.reason = ("; ".join(c.reason for c in self.criteria if c.should_stop)
                       if self.should_stop else "")
        return self.should_stop

    @staticmethod
    def _combine(flags):
        return any(flags)


class AllOf(AnyOf):
    """Stop when all of the criteria say so (``a & b``)."""

    @staticmethod
    def _combine(flags):
        return all(flags)


__all__ = ["AllOf", "AnyOf", "MaxLabels", "OverallUncertainty", "StabilizingPredictions",
           "StoppingCriterion", "cohen_kappa"]

v.guard_signatures(globals())
