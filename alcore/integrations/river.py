"""A river classifier behind an alcore :class:`~alcore.stream.StreamGate`.

:class:`GatedClassifier` has the contract of river's ``active`` samplers
(``river.active.EntropySampler``): ``predict_one(x)`` returns ``(y_pred, ask)`` and
``learn_one(x, y)`` hands a label to the classifier, so a river loop switches with one
line::

    from alcore.integrations.river import GatedClassifier
    model = GatedClassifier(pipeline, StreamGate("quantile", 0.1, utility="margin"))
    for x, y in stream:
        y_pred, ask = model.predict_one(x)
        if ask:
            model.learn_one(x, y)

The ask comes from the gate's budgeted strategy (its threshold, its windowed spending
estimate, its hard cap), so the labels spent track the budget, which river's samplers do
not bound. This module never imports river: any object with ``predict_proba_one(x) ->
dict`` and ``learn_one(x, y)`` is a classifier here.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from alcore import _validation as v
from alcore._errors import InvalidInputError
from alcore.stream import UTILITIES, UTILITY_MAX, StreamGate

_LEAST_CONFIDENCE, _MARGIN, _ENTROPY = (UTILITIES[name] for name in
                                        ("least_confidence", "margin", "entropy"))
# The utility of an empty dict, or of any dict while fewer than two classes are known (the
# first items of a stream): confidence 0, the most uncertain row there is on every built-in
# scale, so every strategy asks for it while the budget allows.
NO_OPINION = 1.0
_log = math.log


class GatedClassifier:
    """A river classifier whose items are asked for by a :class:`StreamGate`.

    Parameters
    ----------
    classifier : object
        A river classifier or pipeline (anything with ``predict_proba_one(x) -> dict`` and
        ``learn_one(x, y)``). Its dicts may gain keys as the stream goes on.
    gate : StreamGate
        Decides each ask, under its budget, from the utility of the classifier's dict
        (:meth:`StreamGate.decide_utility_one`). The ``"fixed"`` strategy needs the final
        class count: ``StreamGate("fixed", budget, classes=C)``.
    utility : callable or None, keyword-only
        ``utility(proba) -> float``, higher = more informative, called on every checked dict
        (empty ones included) instead of the gate's own utility. None (default): the gate's
        utility (least confidence, margin or entropy / ln C, or the compiled row utility of
        ``StreamGate(utility=f)``) over the classes known so far.

    Notes
    -----
    The class set grows: every key of a dict and every label given to :meth:`learn_one`
    joins :attr:`classes`, in first-seen order, and a class never raises. The utility of a
    dict is the gate's utility of the row over the C classes known at that item (this dict's
    new keys included), a known class missing from the dict counting as probability 0:
    ``1 - max p`` (in [0, 1 - 1/C]), ``1 - (p1 - p2)``, or ``-sum p ln p / ln C``. It equals
    ``gate.utility`` of that row (computed here in Python, because the native call needs an
    array and costs more than the whole decision; tested against it). A gate with its own
    compiled row utility (``StreamGate(utility=f)``) gets that row as an array and computes
    it natively (f must take any row length). The gate decides that number with
    :meth:`StreamGate.decide_utility_one`, which keeps no class count, so its threshold,
    budget estimate and quantile window carry on unchanged across class-count changes; only
    the scale of the next utilities changes with C (entropy is divided by the new ln C,
    least confidence may reach the new 1 - 1/C). An empty dict, and a dict while fewer than
    two classes are known (``{"a": 1.0}`` after the first label), have no opinion: their
    utility is :data:`NO_OPINION` (1.0, confidence 0), so they are asked for while the
    budget allows. (river's ``EntropySampler`` gives such dicts entropy 0 and never asks: a
    model that starts from an empty dict never gets its first label.)

    Which gate: ``StreamGate("quantile", budget, utility="margin")`` is the setting
    tests/test_river.py compares with ``EntropySampler`` (same or better progressive
    accuracy with no more labels on Phishing and ImageSegments). The quantile filter decides
    by rank among recent utilities, so the change of scale a new class brings neither starves
    nor floods it, and the margin lies in [0, 1] at every class count. Not every model
    gains: with a Hoeffding tree on Phishing (the same protocol, measured, not a test)
    river's sampler, which spends its labels early while the tree is young, reached 0.876
    progressive accuracy against 0.838 here.

    Every ask counts against the budget whether or not you then label the item, as for
    :meth:`StreamGate.decide_one`. Bad input (not a dict, a probability that is not one real
    number (a bool, an array), outside [0, 1] or
    not finite, a sum farther than the gate's ``atol`` from 1, a custom utility that is not
    a finite number) raises :class:`~alcore.InvalidInputError` before anything changes:
    neither the gate nor :attr:`classes`. Not thread safe (one per stream; the gate itself
    is).
    """

    def __init__(self, classifier: Any, gate: StreamGate, *,
                 utility: Callable[[dict], float] | None = None, **unknown: Any):
        v.refuse_unknown("GatedClassifier", unknown, GatedClassifier.__init__)
        for method in ("predict_proba_one", "learn_one"):
            if not callable(getattr(classifier, method, None)):
                raise InvalidInputError(
                    f"classifier must have a {method} method (a river classifier or "
                    f"pipeline), got {type(classifier).__name__}")
        if not isinstance(gate, StreamGate):
            raise InvalidInputError(f"gate must be an alcore.stream.StreamGate, got "
                                    f"{type(gate).__name__}")
        if gate.logits:
            raise InvalidInputError(
                "gate must take probabilities (logits=False): river's predict_proba_one "
                "returns probabilities")
        if gate.strategy == "fixed" and gate.classes is None:
            raise InvalidInputError(
                "the fixed strategy compares confidence with 1/C + budget (1 - 1/C) and "
                "needs the class count up front, which a growing class set does not give; "
                "pass StreamGate('fixed', budget, classes=C) with the final C, or an "
                "adaptive strategy such as 'variable_uncertainty'")
        if utility is not None and not callable(utility):
            raise InvalidInputError(f"utility must be a callable proba -> float or None, got "
                                    f"{type(utility).__name__}")
        self.classifier = classifier
        self.gate = gate
        self.utility = utility
        # None for a gate with its own row utility (StreamGate(utility=f)).
        self._kind = UTILITIES.get(str(gate.utility))
        self._atol = gate.params["atol"]
        # The native call StreamGate.decide_utility_one makes first: it answers None for
        # anything but a Python float (then the public method converts or refuses). The
        # utilities here are checked floats, and skipping the public frame saves about
        # 0.3 us of the 2-4 us an item costs.
        self._decide_native = gate._decide_utility_native
        # The classes in first-seen order (a dict: ordered, O(1) membership).
        self._known: dict[Any, None] = {}

    @property
    def classes(self) -> tuple:
        """The classes known so far, in first-seen order (dict keys and learnt labels)."""
        return tuple(self._known)

    def predict_proba_one(self, x: Any, **kwargs: Any) -> tuple[dict, bool]:
        """The classifier's ``predict_proba_one(x)`` dict and whether to ask for the label.

        Keyword arguments go to the classifier (river's ``**kwargs``)."""
        proba = self.classifier.predict_proba_one(x, **kwargs)
        _, ask = self._gated(proba)
        return proba, ask

    def predict_one(self, x: Any, **kwargs: Any) -> tuple[Any, bool]:
        """``(y_pred, ask)``: the most probable class (the first in the dict's order among
        ties, as river's samplers; None for an empty dict) and the gate's decision."""
        return self._gated(self.classifier.predict_proba_one(x, **kwargs))

    def learn_one(self, x: Any, y: Any, **kwargs: Any) -> None:
        """Give the label ``y`` of ``x`` to the classifier; ``y`` joins :attr:`classes`."""
        try:
            hash(y)
        except TypeError:
            raise InvalidInputError(f"y must be a hashable class label (as river's are), got "
                                    f"{type(y).__name__}") from None
        self.classifier.learn_one(x, y, **kwargs)
        self._known.setdefault(y, None)

    def utility_of(self, proba: Mapping) -> float:
        """The utility the gate would decide for the dict ``proba`` now (the custom utility
        when one was given); changes nothing."""
        return self._measure(proba)[0]

    def _gated(self, proba: Any) -> tuple[Any, bool]:
        u, best, new = self._measure(proba)
        ask = self._decide_native(u)
        if ask is None:  # a numpy scalar (from float32 probabilities or a custom utility)
            ask = self.gate.decide_utility_one(u)
        if new:  # only once the gate has decided: a rejected item leaves no class behind
            for key in proba:
                self._known.setdefault(key, None)
        return best, ask

    def _measure(self, proba: Any) -> tuple[float, Any, bool]:
        """(utility, most probable class, whether the dict names a new class), after
        checking the dict; changes nothing. One Python pass over the dict and no array:
        for a handful of classes this beats the builtins' C loops (sum, min, max, sorted)
        and numpy, whose array construction alone costs more than the whole decision."""
        if type(proba) is not dict and not isinstance(proba, Mapping):
            raise InvalidInputError(
                f"predict_proba_one must return a dict of class -> probability, got "
                f"{type(proba).__name__}")
        known = self._known
        classes = len(known)
        first = second = total = h = 0.0
        best = None
        entropy = self._kind == _ENTROPY
        try:
            for key, p in proba.items():
                if type(p) is not float:  # river's own values are floats: one check
                    p = _real(p, proba)
                if not 0.0 <= p <= 1.0:  # NaN fails too
                    raise _rejection(proba, total, self._atol)
                if key not in known:
                    classes += 1
                total += p
                if p > first:
                    second, first, best = first, p, key
                elif p > second:
                    second = p
                if entropy and p > 0.0:
                    h -= p * _log(p)
        except TypeError:  # a value that is not a number
            raise _bad_entry(proba) from None
        if proba and not abs(total - 1.0) <= self._atol:
            raise _rejection(proba, total, self._atol)
        new = classes != len(known)
        if self.utility is not None:
            return _custom(self.utility, proba), best, new
        if classes < 2 or not proba:
            return NO_OPINION, best, new
        kind = self._kind
        if kind == _LEAST_CONFIDENCE:
            return 1.0 - first, best, new
        if kind == _MARGIN:
            return 1.0 - (first - second), best, new
        if kind == _ENTROPY:
            return h / _log(classes), best, new
        # The gate's own compiled row utility, on the row over the known classes (an
        # array per item: a few microseconds more).
        order = [*known, *(k for k in proba if k not in known)] if new else known
        values = [float(proba.get(k, 0.0)) for k in order]
        fixed = self.gate.classes
        if fixed is not None and len(values) < fixed:
            # A gate made with classes=C (the fixed strategy needs it) takes rows of C
            # classes; the classes not known yet have probability 0, as missing ones do.
            values += [0.0] * (fixed - len(values))
        row = np.array([values], dtype=np.float64)
        return float(self.gate.utility(row)[0]), best, new


def _shown(proba: Mapping, limit: int = 8) -> str:
    items = list(proba.items())
    text = ", ".join(f"{k!r}: {p!r}" for k, p in items[:limit])
    return "{" + text + (", ..." if len(items) > limit else "") + "}"


def _rejection(proba: Mapping, total: float, atol: float) -> InvalidInputError:
    """What is wrong with a dict that failed the fast check: its first value that is not
    finite or outside [0, 1], else its sum."""
    for key, p in proba.items():
        if not math.isfinite(p):
            what = "must be finite"
        elif not 0.0 <= p <= 1.0:
            what = "must lie in [0, 1]"
        else:
            continue
        return InvalidInputError(
            f"predict_proba_one's probabilities {what}: class {key!r} has {p!r}; the "
            f"classifier must return probabilities (replace or drop that item: a rejected "
            f"call changes nothing)")
    return InvalidInputError(
        f"predict_proba_one's probabilities must sum to 1 (they sum to {total:.6g}, "
        f"atol={atol:g}); the classifier's dict is {_shown(proba)}")


def _real(p: Any, proba: Mapping) -> float:
    """A probability that is not a Python float as one (a numpy float, an int), or the
    refusal of a bool, an array or anything else that is not one real number."""
    if isinstance(p, bool | np.bool_) or not isinstance(p, numbers.Real):
        raise _bad_entry(proba)
    return float(p)


def _bad_entry(proba: Mapping) -> InvalidInputError:
    return InvalidInputError(
        f"predict_proba_one must return a dict of hashable class -> float probability, got "
        f"{_shown(proba)}")


def _custom(utility: Callable, proba: Mapping) -> float:
    value = utility(proba)
    if isinstance(value, bool) or not isinstance(value, int | float):
        try:  # numpy scalars and 0-d arrays
            value = float(value.item())  # type: ignore[union-attr]
        except (AttributeError, TypeError, ValueError):
            raise InvalidInputError(
                f"utility(proba) must return a float, got {type(value).__name__}") from None
    value = float(value)
    if not abs(value) <= UTILITY_MAX:
        raise InvalidInputError(
            f"utility(proba) must return a finite number with |u| <= 1e150, got {value!r} "
            f"for {_shown(proba)}")
    return value


__all__ = ["NO_OPINION", "GatedClassifier"]

# predict_one and predict_proba_one are per-item calls where one more Python frame is
# measurable.
v.guard_signatures(globals(), hot=("predict_one", "predict_proba_one", "learn_one"))
