"""When to stop labeling: stopping criteria for pool-based loops, combinable with | and &.

Each round, call ``update`` with what the loop knows (``n_labeled``, the current model's
``predictions`` on a fixed stop set, the unlabeled pool's uncertainty ``scores``); each
criterion uses what it needs. ``should_stop`` and ``reason`` tell the outcome.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from alcore import _validation as v
from alcore._errors import InvalidInputError


def cohen_kappa(a: np.ndarray, b: np.ndarray) -> float:
    """Cohen's kappa between two label vectors of the same length: (p_o - p_e) / (1 - p_e);
    1.0 when both are the same single label (p_e = 1)."""
    a, b = np.asarray(a), np.asarray(b)
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
               scores: Any = None) -> bool:
        raise NotImplementedError

    def __or__(self, other: StoppingCriterion) -> StoppingCriterion:
        return AnyOf(self, other)

    def __and__(self, other: StoppingCriterion) -> StoppingCriterion:
        return AllOf(self, other)


def _require(value: Any, name: str, criterion: str) -> Any:
    if value is None:
        raise InvalidInputError(f"{criterion}.update needs {name}=")
    return value


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

    def __init__(self, threshold: float = 0.99, window: int = 3):
        self.threshold = float(threshold)
        if not -1 <= self.threshold <= 1:
            raise InvalidInputError(f"threshold must be in [-1, 1], got {threshold!r}")
        self.window = v.count(window, "window")
        self.kappas: list[float] = []
        self._previous: np.ndarray | None = None

    def update(self, *, n_labeled=None, predictions=None, scores=None) -> bool:
        current = np.asarray(_require(predictions, "predictions", "StabilizingPredictions"))
        if current.ndim != 1 or current.size == 0:
            raise InvalidInputError(
                f"predictions must be the labels predicted for the stop set, shape (M,), "
                f"got shape {current.shape}")
        if self._previous is not None:
            if self._previous.shape != current.shape:
                raise InvalidInputError(
                    f"predictions must cover the same stop set every round: got "
                    f"{current.shape[0]} labels after {self._previous.shape[0]}")
            self.kappas.append(cohen_kappa(self._previous, current))
        self._previous = current.copy()
        recent = self.kappas[-self.window:]
        self.should_stop = len(recent) == self.window and float(np.mean(recent)) >= self.threshold
        self.reason = (f"mean kappa of the last {self.window} rounds "
                       f"{np.mean(recent):.4f} >= {self.threshold}") if self.should_stop else ""
        return self.should_stop


class OverallUncertainty(StoppingCriterion):
    """Stop when the unlabeled pool's mean uncertainty falls below ``threshold`` (Zhu et al.
    2008): the model is confident about what is left."""

    def __init__(self, threshold: float):
        self.threshold = float(threshold)

    def update(self, *, n_labeled=None, predictions=None, scores=None) -> bool:
        values = v.float_array(_require(scores, "scores", "OverallUncertainty"), "scores")
        if values.ndim != 1 or values.size == 0 or not np.isfinite(values).all():
            raise InvalidInputError("scores must be a non-empty finite 1-D array")
        mean = float(values.mean())
        self.should_stop = mean < self.threshold
        self.reason = (f"mean pool uncertainty {mean:.4f} < {self.threshold}"
                       if self.should_stop else "")
        return self.should_stop


class MaxLabels(StoppingCriterion):
    """Stop once ``max_labels`` items are labeled (the budget)."""

    def __init__(self, max_labels: int):
        self.max_labels = v.count(max_labels, "max_labels")

    def update(self, *, n_labeled=None, predictions=None, scores=None) -> bool:
        labeled = _require(n_labeled, "n_labeled", "MaxLabels")
        if (isinstance(labeled, bool) or not isinstance(labeled, int | np.integer)
                or labeled < 0):
            raise InvalidInputError(f"n_labeled must be a non-negative int, got {labeled!r}")
        self.should_stop = labeled >= self.max_labels
        self.reason = f"{labeled} labels >= {self.max_labels}" if self.should_stop else ""
        return self.should_stop


class AnyOf(StoppingCriterion):
    """Stop when any of the criteria says so (``a | b``)."""

    def __init__(self, *criteria: StoppingCriterion):
        if not criteria or not all(isinstance(c, StoppingCriterion) for c in criteria):
            raise InvalidInputError("combine StoppingCriterion instances")
        self.criteria = criteria

    def update(self, **round_info: Any) -> bool:
        for criterion in self.criteria:
            criterion.update(**round_info)
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
