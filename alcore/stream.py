"""Stream-based selection: a yes/no per arriving item, under a label budget.

:class:`StreamGate` is a native stateful gate (Zliobaite et al. 2014 strategies with the
windowed budget estimate, and the balanced incremental quantile filter) over probability
rows, logits (``logits=True``), rows scored by your own utility (``utility=f``) or
utilities you computed (``decide_utility_one``). ``decide_many`` gives exactly the
decisions of the same rows fed one by one; the state serialises to JSON and a restored gate
continues the same random sequence. :class:`Router` puts tiers
(auto-label, annotator, expert) and the annotators' queue in front of a gate.
"""

from __future__ import annotations

import json
import math
import threading
from typing import Any, NamedTuple

import numpy as np

from alcore import _core
from alcore import _validation as v
from alcore._errors import InvalidInputError

STRATEGIES = {
    "fixed": 0,
    "variable_uncertainty": 1,
    "randomized_variable_uncertainty": 2,
    "split": 3,
    "random": 4,
    "quantile": 5,
}
UTILITIES = {"least_confidence": 0, "margin": 1, "entropy": 2}
_STRATEGY_NAMES = {code: name for name, code in STRATEGIES.items()}
_UTILITY_NAMES = {code: name for name, code in UTILITIES.items()}
# Strategy parameters and their defaults (scikit-activeml's names).
PARAMETERS = {"theta": 1.0, "s": 0.01, "delta": 1.0, "v": 0.1, "w_tol": 50.0, "atol": 1e-3}
# Each parameter's range (low, high, low_open, high_open), chosen so that the native
# arithmetic stays finite and meaningful for any value inside (see StreamGate's docstring):
# theta: a confidence threshold (confidence lies in [0, 1]); below 1e-6 it takes thousands of
#   items to grow back (a subnormal theta never grows: theta * (1 + s) rounds to itself), and
#   up to 1e6 keeps theta * (1 + delta * N(0, 1)) finite (|N| <= 8.6 from 53-bit uniforms).
# s: the relative step; above 0.5 theta halves per query and collapses to 0 in a few hundred
#   queries, after which the variable strategies never query again.
# delta: the relative noise of the randomized threshold; beyond 100 the comparison is a coin.
# v: a probability.
# w_tol: items over which labels owed are paid back; below 1 item owed / w_tol outgrows the
#   labels owed (a subnormal w_tol overflowed it to inf); at most 2**62, as the window.
# atol: the allowed |row sum - 1|.
PARAMETER_BOUNDS = {"theta": (1e-6, 1e6, False, False), "s": (0.0, 0.5, False, False),
                    "delta": (0.0, 100.0, False, False), "v": (0.0, 1.0, False, False),
                    "w_tol": (1.0, 2.0**62, False, False), "atol": (0.0, 1.0, False, True)}
# The native gate's names for them.
_NATIVE_NAMES = {"theta": "theta", "s": "step", "delta": "delta", "v": "split",
                 "w_tol": "w_tol", "atol": "atol"}
# The default window holds this many labels' worth of the budget, and at least
# MIN_WINDOW items (see default_window).
WINDOW_LABELS = 50
MIN_WINDOW = 1000
_FORMAT = "alcore.StreamGate"
# 3: config.logits, and utilities in the history may be any the caller decided (|u| <= 1e150).
_VERSION = 3
_SEED_HINT = "pass an int in [0, 2**64), None (fresh entropy) or a numpy.random.Generator"
# Longest window (and largest class count) the native gate takes: int64 with headroom, as
# for its counters.
MAX_WINDOW = 2**62
# The native gate keeps its threshold at most this (csrc/alcore/stream_gate.hpp, kThetaMax).
THETA_MAX = 1e12
# The largest |utility| decide_utility takes (csrc/alcore/stream_gate.hpp, kUtilityMax).
UTILITY_MAX = 1e150
# How a custom utility is named in gate.utility and in saved states.
CUSTOM_PREFIX = "custom:"


def _parameter(name: str, value: Any) -> float:
    """A strategy parameter, finite and within PARAMETER_BOUNDS[name]."""
    low, high, low_open, high_open = PARAMETER_BOUNDS[name]
    shown = "2**62" if high == 2.0**62 else f"{high:g}"
    interval = f"{'(' if low_open else '['}{low:g}, {shown}{')' if high_open else ']'}"
    return v.number(value, name, low=low, high=high, low_open=low_open, high_open=high_open,
                    hint=f"pass a value in {interval} (default {PARAMETERS[name]:g})")


def default_window(budget: float) -> int:
    """The window a gate uses when ``window=None``: ``max(1000, ceil(50 / budget))``.

    The windowed spending estimate u_t / w moves in steps of 1 / w, so a query overshoots
    the budget by about 1 / (2 budget w) of it: with 50 labels' worth of budget in the window
    that is about 1 % at every budget (w = 100 gives 10 % at a budget of 5 % and 500 % at
    0.1 %). Near budget 0.5 the variable strategies' own rate is close to the budget and a
    short window's noise blocks queries too often; 1000 items keep that loss near 1-2 %.
    scikit-activeml's default is w = 100.
    """
    budget = v.number(budget, "budget", low=0, high=1, low_open=True)
    labels = WINDOW_LABELS / budget  # inf for a subnormal budget
    if not labels <= MAX_WINDOW:
        raise InvalidInputError(
            f"budget {budget:g} is too small for the default window (50 / budget = "
            f"{labels:g} items, at most 2**62); pass window= explicitly or a larger budget")
    # Rounded first so that 50 / 0.002 (25000.000000000004 in floating point) gives 25000.
    return max(MIN_WINDOW, math.ceil(round(labels, 6)))


class GateStats(NamedTuple):
    """A gate's counters."""

    seen: int
    queried: int
    budget_used: float
    """queried / seen (0 before the first item)."""
    windowed_spending: float
    """Zliobaite's estimate u_t / window, which the budget bounds."""
    threshold: float
    """The confidence threshold (confidence = 1 - utility): the variable strategies' current
    theta, the fixed strategy's 1/C + budget (1 - 1/C) once C is known (before the first row:
    1/2 + budget/2, its value for two classes), theta for the others."""


def _gate_seed(seed: Any) -> int:
    if seed is None or isinstance(seed, np.random.Generator):
        # Drawn once and recorded, so to_json/from_json reproduce the gate.
        return int(v.rng(seed).integers(0, 2**64, dtype=np.uint64))
    return v.integer(seed, "seed", low=0, high=2**64 - 1, hint=_SEED_HINT)


def utility_values(values: Any, name: str) -> np.ndarray:
    """Utilities the caller computed, as float64 (the input's shape): real numbers (ints are
    taken as their float, booleans are not numbers here), each finite with
    ``|u| <= UTILITY_MAX``. The one check of such values, made before anything changes
    (:meth:`StreamGate.decide_utility_many`, :class:`~alcore.stream_density.DensityGate`).
    """
    if isinstance(values, int) and not isinstance(values, bool):
        # A Python int past int64 (numpy would make it an object array) is a float.
        try:
            values = float(values)
        except OverflowError:
            raise InvalidInputError(
                f"{name} must lie in [-1e150, 1e150]: {name} is an integer of "
                f"{values.bit_length()} bits; rescale it") from None
    arr = v.as_numpy(values, name)
    u = (arr.astype(np.float64) if arr.dtype.kind in "iu"
         else v.float_array(arr, name).astype(np.float64, copy=False))
    bad = ~(np.abs(u) <= UTILITY_MAX)  # NaN fails the comparison
    if bad.any():
        at = tuple(int(i) for i in np.argwhere(bad)[0])
        value = u[at]
        where = name if u.ndim == 0 or u.size == 1 else f"{name}[{', '.join(map(str, at))}]"
        detail = "must be finite" if not np.isfinite(value) else "must lie in [-1e150, 1e150]"
        raise InvalidInputError(
            f"{name} {detail}: {where} is {value}; replace or drop that item (a rejected call "
            f"decides nothing)")
    return u


class GateUtility(str):
    """A gate's utility: a str equal to its name, and callable on rows.

    ``gate.utility == "margin"`` reads the setting; ``gate.utility(probs)`` returns the
    utility of each row of ``probs`` (N, C) as a float64 array of shape (N,), in
    [0, ``gate.max_utility(C)``], computed by the same native code the gate decides with,
    after the same checks (values, and the class count once the gate has seen rows).
    Nothing changes in the gate. This is the one definition of utility the gate and
    :class:`Router` share.
    """

    def __new__(cls, name: str, gate: StreamGate) -> GateUtility:
        self = super().__new__(cls, name)
        self._gate = gate
        return self

    def __call__(self, probs: Any) -> np.ndarray:
        return self._gate._utilities(probs)


class StreamGate:
    """Decide per item whether a human labels it, under a label budget.

    Parameters
    ----------
    strategy : str
        ``"fixed"`` (query when confidence <= 1/C + budget (1 - 1/C)), ``"variable_uncertainty"``
        (threshold theta shrinks by (1 - s) after a query, grows by (1 + s) otherwise),
        ``"randomized_variable_uncertainty"`` (the same against theta * N(1, delta)),
        ``"split"`` (with probability v a random query at the budget rate, else a variable
        step), ``"random"`` (a coin with probability budget, as scikit-activeml's
        RandomBudgetManager: heads are queried only while the windowed estimate is below
        the budget, so it spends less than the budget, see Notes) or ``"quantile"`` (the
        balanced incremental quantile filter: utility >= the (1 - budget) quantile of the
        last ``window`` utilities, lowered by range x labels owed / w_tol).
    budget : float
        Share of items that may be labeled, in (0, 1].
    utility : str or callable, keyword-only
        ``"least_confidence"`` (1 - max p, in [0, 1 - 1/C]), ``"margin"`` (1 - (p1 - p2), in
        [0, 1]) or ``"entropy"`` (divided by ln C, in [0, 1]); the strategies compare
        confidence = 1 - utility. ``gate.utility(probs)`` computes it (:class:`GateUtility`).
        Or your own utility of one row, ``def f(p)`` (a plain function or an
        :func:`alcore.utility`), compiled with Numba when the gate is made and run inside
        the native checks: it gets the row as given (probabilities after their checks, raw
        logits with ``logits=True``) and must return a finite number with ``|u| <= 1e150``
        (on the built-in scale, [0, 1], for the default ``theta``; :meth:`max_utility` is
        then 1). A function with extra per-item inputs cannot be a gate's utility: compute
        those utilities yourself and call :meth:`decide_utility_one`. Saved states need the
        function again: ``StreamGate.from_json(text, utility=f)``.
    window : int or None, keyword-only
        w of the windowed spending estimate u_t <- u_t (w - 1)/w + queried (a query is
        allowed while u_t / w < budget) and the quantile filter's window. None (default):
        :func:`default_window`, ``max(1000, ceil(50 / budget))``, so spending tracks small
        budgets too, and the estimate starts at its steady state u_0 = budget (w - 1) (no
        burst of queries on the first items). An explicit window starts at u_0 = 0, as Zliobaite et
        al. and scikit-activeml do; pass ``window=100`` for scikit-activeml's default.
    seed : int, None or numpy.random.Generator, keyword-only
        Seeds the counter-based random numbers (randomized, split and random strategies).
        None draws fresh entropy and a Generator gives one draw; either way the int drawn is
        what :attr:`seed` reports and :meth:`to_json` saves.
    classes : int or None, keyword-only
        The class count C, fixed from the start (rows of another count are refused). None
        (default): the first row fixes it. The ``"fixed"`` strategy needs it to decide
        utilities the caller computed (:meth:`decide_utility_one`) before any row.
    logits : bool, keyword-only
        Rows are raw model outputs: each row is turned into probabilities (a float64
        softmax, after checking that every logit is finite) before its utility is taken,
        in :meth:`decide_one`, :meth:`decide_many`, :meth:`utility` and a :class:`Router`
        in front of the gate.
    hard_cap : bool, keyword-only
        Guarantee that no prefix of the stream spends more than budget * n + 1: an item is
        queried only if queried + 1 <= budget * (items seen, this one included) + 1 (in
        float64). Without it the adaptive strategies track the budget on average (within
        about 1 % over long streams with the default window) but may run ahead of it
        for a while.
    **params
        Strategy parameters (:data:`PARAMETERS`), each a finite number in its range
        (:data:`PARAMETER_BOUNDS`; outside it :class:`InvalidInputError`), chosen so that
        the gate's arithmetic stays finite and meaningful:

        - ``theta`` (1.0) in [1e-6, 1e6]: the initial confidence threshold. Confidence lies
          in [0, 1], so above 1 it only delays the first refusal; below 1e-6 it takes
          thousands of items to grow back (a subnormal theta never grows); the upper bound
          keeps theta (1 + delta N(0, 1)) finite.
        - ``s`` (0.01) in [0, 0.5]: the relative step of theta; larger steps more than halve
          theta per query and collapse it within a few hundred queries. (On a stream of
          rows with confidence 0 — ties under margin, uniform rows under entropy — every
          query still shrinks theta; it stops at the smallest normal double, 2.2e-308, so
          the gate keeps querying such rows instead of dying at 0.)
        - ``delta`` (1.0) in [0, 100]: the randomized threshold's relative noise (beyond 100
          the comparison is a coin flip).
        - ``v`` (0.1) in [0, 1]: the split strategy's share of random queries.
        - ``w_tol`` (50) in [1, 2**62]: the quantile filter's tolerance window, the items
          over which labels owed are paid back (range x owed / w_tol); below one item the
          term outgrows the labels owed (a subnormal w_tol overflowed it to inf).
        - ``atol`` (1e-3) in [0, 1): the allowed |row sum - 1|.

    Notes
    -----
    Spending of ``"random"``: the coin's heads are refused whenever the windowed estimate
    u_t / w has reached the budget, and the estimate's noise (about sqrt(1 / (2 budget w))
    of the budget) puts it there a share of the time, so over a long stream the share
    queried is below the budget: with the default window between 0.85 and 1.0 times the
    budget (0.89-0.98 measured over 1M items at budgets 0.001-0.5), less with a short
    explicit window (scikit-activeml's w = 100: about 0.72 at a budget of 0.01, 0.86 at
    0.1, as its RandomBudgetManager). The estimate never exceeds budget w + 1, so n items
    get fewer than budget n + n / w + budget w + 1 queries (with the default window, n / w
    is at most budget n / 50). For a share that tracks the budget use an adaptive strategy,
    and ``hard_cap=True`` to bound every prefix by budget n + 1.

    Settings (:attr:`strategy`, :attr:`budget`, :attr:`utility`, :attr:`window`,
    :attr:`seed`, :attr:`hard_cap`, :attr:`params`) are read-only views of the native gate:
    for other settings make a new gate.

    Thread safety: every call holds the gate's lock, so concurrent callers see decisions
    as if their calls ran one after another (in some order) and the budget accounting stays
    exact. A caller waiting for the lock releases the GIL, so other Python threads run
    meanwhile. A rejected call (bad row, wrong class count) changes nothing.
    """

    def __init__(self, strategy: str, budget: float, *, utility: str = "least_confidence",
                 window: int | None = None, seed: Any = 0, hard_cap: bool = False,
                 classes: int | None = None, logits: bool = False, **params: Any):
        strategy = v.choice(strategy, "strategy", STRATEGIES)
        self._custom, addresses = _custom_utility(utility)
        if self._custom is not None:
            utility = "least_confidence"  # the native checks run; their utility is replaced
        utility = v.choice(utility, "utility", UTILITIES)
        unknown = sorted(set(params) - set(PARAMETERS))
        if unknown:
            import difflib

            own = ["strategy", "budget", "utility", "window", "seed", "hard_cap", "classes",
                   "logits"]
            near = difflib.get_close_matches(unknown[0], [*own, *PARAMETERS], 1)
            raise InvalidInputError(
                f"unknown parameter {unknown[0]!r}"
                f"{f' (did you mean {near[0]!r}?)' if near else ''}; StreamGate takes "
                f"strategy, budget, utility, window, seed, hard_cap, classes, logits and the "
                f"strategy parameters {', '.join(PARAMETERS)}")
        budget = v.number(budget, "budget", low=0, high=1, low_open=True,
                          hint="pass the share of items that may be labeled, e.g. 0.05")
        derived = window is None
        window = default_window(budget) if derived else v.count(window, "window")
        if window > MAX_WINDOW:
            raise InvalidInputError(f"window must be at most 2**62, got {window}; pass e.g. "
                                    f"window=1000")
        hard_cap = v.flag(hard_cap, "hard_cap")
        logits = v.flag(logits, "logits")
        classes = -1 if classes is None else v.integer(
            classes, "classes", low=2, high=MAX_WINDOW,
            hint="pass the model's number of classes, or None to take it from the first row")
        seed = _gate_seed(seed)
        values = dict(PARAMETERS)
        for name, value in params.items():
            values[name] = _parameter(name, value)
        self._gate = _core.StreamGate(
            STRATEGIES[strategy], UTILITIES[utility], budget, window, values["theta"],
            values["s"], values["delta"], values["v"], values["atol"], values["w_tol"],
            seed, hard_cap, logits, *addresses,
        )
        self._decide_native = self._gate.decide_one
        self._decide_utility_native = self._gate.decide_utility_one
        # Start the estimate at its steady state ("spending exactly the budget so far",
        # u = budget w, decayed by one item so that the first item may be queried): from
        # u_0 = 0 the first budget w items would all be queried, a burst of 50 labels that
        # is 5 % of a 0.001 budget over a million items. An explicit window starts at 0.
        spent = budget * (window - 1) if derived else 0.0
        self._gate.set_state(spent, values["theta"], 0, 0, 0, classes, [])

    # Settings: read from the native gate, the one copy there is.
    @property
    def strategy(self) -> str:
        return _STRATEGY_NAMES[self._gate.params()["strategy"]]

    @property
    def budget(self) -> float:
        return self._gate.params()["budget"]

    @property
    def utility(self) -> GateUtility:
        """The utility: equal to its name (``"least_confidence"``, ``"margin"`` or
        ``"entropy"``; ``"custom:NAME"`` for your own) and, called on rows, their utility
        values (see :class:`GateUtility`)."""
        if self._custom is not None:
            return GateUtility(f"{CUSTOM_PREFIX}{self._custom.name}", self)
        return GateUtility(_UTILITY_NAMES[self._gate.params()["utility"]], self)

    @property
    def window(self) -> int:
        return self._gate.params()["window"]

    @property
    def seed(self) -> int:
        return self._gate.params()["seed"]

    @property
    def hard_cap(self) -> bool:
        return self._gate.params()["hard_cap"]

    @property
    def logits(self) -> bool:
        return self._gate.params()["logits"]

    @property
    def classes(self) -> int | None:
        """The class count rows must have: set at construction or by the first row (None
        before either)."""
        classes = self._gate.state()[5]
        return None if classes < 0 else classes

    @property
    def params(self) -> dict[str, float]:
        """The strategy parameters (a copy): theta, s, delta, v, w_tol, atol."""
        native = self._gate.params()
        return {name: native[_NATIVE_NAMES[name]] for name in PARAMETERS}

    def _utilities(self, probs: Any) -> np.ndarray:
        """The gate's utility of each row: the values its strategies use, computed by the
        same native code after the same checks (a gate that has seen rows requires their
        class count). Changes nothing.

        Parameters
        ----------
        probs : array-like of shape (N, C)
            Probability rows, float32 or float64.

        Returns
        -------
        ndarray of shape (N,), float64
            In [0, :meth:`max_utility`]; higher = more uncertain.
        """
        x = self._rows(probs)
        try:
            return self._gate.utilities(x)
        except _core.InvalidValue as err:
            raise self._value_error(err, x, "probs") from None
        except ValueError as err:
            raise self._class_error(err, x.shape[1]) from None

    def max_utility(self, classes: int) -> float:
        """The largest utility a row of ``classes`` classes can have: 1 - 1/C for least
        confidence, 1 for margin and (scaled) entropy, and 1 for a custom utility (the
        built-in scale; the Router's queue threshold is a share of it)."""
        classes = v.integer(classes, "classes", low=2, high=MAX_WINDOW)
        return 1.0 if self._custom is not None else self._gate.max_utility(classes)

    def fixed_threshold(self, classes: int) -> float:
        """The confidence (1 - utility) at or below which the fixed strategy queries a row
        of ``classes`` classes: 1/C + budget (1 - 1/C). It does not adapt to the stream: a
        model more confident than this on every item gets no query at all (use
        ``"variable_uncertainty"`` or ``"quantile"``, which adapt their threshold)."""
        c = v.integer(classes, "classes", low=2, high=MAX_WINDOW)
        return 1.0 / c + self.budget * (1.0 - 1.0 / c)

    def decide_one(self, p: Any) -> bool:
        """Decide for one probability row of shape (C,); True = ask a human."""
        # The per-item call: one Python frame, then native code that takes a C-contiguous
        # float32/float64 1-D ndarray as it is and answers None for any other input. A bad
        # value or class count raises there before the gate changes; the checked path
        # converts the input, or names the problem.
        try:
            decided = self._decide_native(p)
        except Exception:
            decided = None
        return self._decide_one_checked(p) if decided is None else decided

    def _decide_one_checked(self, p: Any) -> bool:
        # The native call takes exactly an ndarray (a subclass such as a memmap: a view).
        p = np.asarray(v.float_array(p, "p"))
        if p.ndim != 1:
            raise InvalidInputError(
                f"p must be one probability row of shape (C,), got shape {p.shape}; use "
                f"decide_many for a batch"
            )
        try:
            return self._gate.decide_one(p)
        except _core.InvalidValue as err:
            raise self._value_error(err, p[None, :], "p") from None
        except ValueError as err:
            raise self._class_error(err, p.shape[0]) from None

    def decide_many(self, probs: Any) -> np.ndarray:
        """Decide for rows of shape (N, C), exactly as N calls of decide_one would.

        Returns
        -------
        ndarray of shape (N,), bool
            True = ask a human.
        """
        x = self._rows(probs)
        try:
            return self._gate.decide_many(x)
        except _core.InvalidValue as err:
            raise self._value_error(err, x, "probs") from None
        except ValueError as err:
            raise self._class_error(err, x.shape[1]) from None

    def decide_utility_one(self, u: Any) -> bool:
        """Decide for one item whose utility the caller computed; True = ask a human.

        The same strategy and state as rows (scikit-activeml's budget managers'
        ``query_by_utility``): any informativeness measure, higher = more informative
        (BALD from MC samples, a regressor's predictive variance, a density-weighted score).
        The strategies compare confidence = 1 - u with their thresholds, so a utility on the
        scale of the built-in ones (in [0, 1]) suits the initial ``theta`` = 1; the
        quantile filter uses only ranks. Utilities and rows may be mixed in one stream.

        Parameters
        ----------
        u : float
            A finite real number with ``|u| <= 1e150`` (a Python float takes the fast path).
        """
        try:
            decided = self._decide_utility_native(u)
        except Exception:
            decided = None
        return self._decide_utility_checked(u) if decided is None else decided

    def _value_error(self, err: Exception, x: np.ndarray, name: str) -> InvalidInputError:
        """Word a native InvalidValue about rows x (N, C) for the argument ``name``."""
        atol = self.params["atol"]
        if self._custom is None:
            return v.invalid_value_error(err, name, atol=atol)
        from alcore import _utility

        problem, _, row, _, value = err.args
        if problem == v.PROBLEM_TOO_LARGE:
            return InvalidInputError(
                f"utility {self._custom.name!r} returned {value} for {name} row {row}; a "
                f"gate's utilities must lie in [-1e150, 1e150] (rescale it)")
        return _utility._row_error(err, self._custom, x, name, None, atol)

    def _decide_utility_checked(self, u: Any) -> bool:
        value = utility_values(u, "u")
        if value.ndim != 0 and value.shape != (1,):
            raise InvalidInputError(
                f"u must be one utility (a float), got shape {value.shape}; use "
                f"decide_utility_many for a batch")
        return bool(self._decide_utilities(value.reshape(1), "u")[0])

    def decide_utility_many(self, utilities: Any) -> np.ndarray:
        """Decide for N items whose utilities the caller computed, exactly as N calls of
        :meth:`decide_utility_one` would (all are checked first: a rejected call changes
        nothing).

        Parameters
        ----------
        utilities : array-like of shape (N,)
            Finite real numbers with ``|u| <= 1e150``, higher = more informative.

        Returns
        -------
        ndarray of shape (N,), bool
            True = ask a human.
        """
        u = utility_values(utilities, "utilities")
        if u.ndim != 1:
            raise InvalidInputError(
                f"utilities must be 1-D with shape (N,), got shape {u.shape}; pass one "
                f"utility per item")
        return self._decide_utilities(np.ascontiguousarray(u), "utilities")

    def _decide_utilities(self, u: np.ndarray, name: str) -> np.ndarray:
        # u passed utility_values: the native check (the same bounds) cannot refuse it.
        try:
            return self._gate.decide_utility_many(u)
        except ValueError:
            raise InvalidInputError(
                "the fixed strategy compares confidence with 1/C + budget (1 - 1/C) and "
                "this gate has no class count yet; make the gate with classes=C") from None

    @staticmethod
    def _rows(probs: Any) -> np.ndarray:
        x = v.float_array(probs, "probs")
        if x.ndim != 2:
            hint = " (a single row: probs[None, :])" if x.ndim == 1 else ""
            raise InvalidInputError(
                f"probs must be 2-D with shape (N items, C classes), got shape {x.shape}{hint}")
        return x

    def _class_error(self, err: ValueError, got: int) -> InvalidInputError:
        classes = self._gate.state()[5]
        if classes >= 0 and got != classes:
            return InvalidInputError(
                f"this gate has seen rows of {classes} classes, got {got}; use one gate per "
                f"model output")
        return InvalidInputError(f"rows must have at least 2 classes, got {got} ({err})")

    @property
    def stats(self) -> GateStats:
        spent, theta, seen, queried, _draws, classes, _history = self._gate.state()
        if self.strategy == "fixed":
            theta = self.fixed_threshold(classes if classes >= 2 else 2)
        return GateStats(seen, queried, queried / seen if seen else 0.0, spent / self.window,
                         theta)

    def to_json(self) -> str:
        """The configuration and the full state, as JSON (no pickle), read from the native
        gate in one locked read."""
        spent, theta, seen, queried, draws, classes, history = self._gate.state()
        return json.dumps({
            "format": _FORMAT, "version": _VERSION,
            "config": {"strategy": self.strategy, "budget": self.budget,
                       "utility": str(self.utility), "window": self.window, "seed": self.seed,
                       "hard_cap": self.hard_cap, "logits": self.logits,
                       "params": self.params},
            "state": {"spent": spent, "theta": theta, "seen": seen, "queried": queried,
                      "draws": draws, "classes": classes, "history": history},
        })

    @classmethod
    def from_json(cls, text: str, *, utility: Any = None) -> StreamGate:
        """Restore a gate saved with :meth:`to_json`; it continues exactly where it was.

        ``utility`` is the function of a gate made with a custom utility (code is not
        saved, only its name, which the function's must match: for a renamed function
        pass ``alcore.utility(f, name=saved_name)``); it must be None otherwise.

        Raises
        ------
        InvalidInputError
            For anything that is not the text :meth:`to_json` writes (not a str, not JSON,
            another format or version, a missing or extra key, a wrong type, a counter out
            of range).
        """
        return _restore(cls, text, utility)


_STATE_KEYS = ("spent", "theta", "seen", "queried", "draws", "classes", "history")
_CONFIG_KEYS = ("strategy", "budget", "utility", "window", "seed", "hard_cap", "logits",
                "params")
_INT64 = 2**63 - 1


def _corrupt(what: str) -> InvalidInputError:
    return InvalidInputError(f"corrupt StreamGate state: {what}; pass the text "
                             f"StreamGate.to_json() produced")


def _keys(value: Any, keys: tuple[str, ...], where: str) -> dict:
    if not isinstance(value, dict):
        raise _corrupt(f"{where} must be an object, got {type(value).__name__}")
    if set(value) != set(keys):
        missing = sorted(set(keys) - set(value))
        extra = sorted(set(value) - set(keys))
        raise _corrupt(f"{where} keys differ (missing {missing}, unexpected {extra})")
    return value


def _json_number(value: Any, name: str, **bounds: Any) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise _corrupt(f"{name} must be a number, got {type(value).__name__}")
    try:
        return v.number(value, name, **bounds)
    except InvalidInputError as err:
        raise _corrupt(str(err)) from None


def _json_int(value: Any, name: str, low: int, high: int = _INT64) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise _corrupt(f"{name} must be an integer, got {type(value).__name__}")
    try:
        return v.integer(value, name, low=low, high=high)
    except InvalidInputError as err:
        raise _corrupt(str(err)) from None


def _restore(cls: type[StreamGate], text: Any, custom: Any) -> StreamGate:
    if not isinstance(text, str):
        raise InvalidInputError(
            f"text must be the str StreamGate.to_json() produced, got {type(text).__name__}")
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as err:
        raise _corrupt(f"not JSON ({err})") from None
    if not isinstance(data, dict):
        raise _corrupt(f"expected a JSON object, got {type(data).__name__}")
    if data.get("format") != _FORMAT:
        raise InvalidInputError(f"not a StreamGate state (format {data.get('format')!r}); "
                                f"expected {_FORMAT!r}")
    version = data.get("version")
    # Exactly the integer: 2.0 == 2 and True == 1 in Python, yet neither is what to_json
    # writes. Version 2 (before logits= and caller-computed utilities) reads as logits=False.
    if type(version) is not int or version not in (2, _VERSION):
        found = ("missing" if "version" not in data
                 else f"{version!r} ({'a JSON ' + _json_kind(version)})")
        raise InvalidInputError(
            f"StreamGate state version {found} is not supported; this alcore reads versions "
            f"2 and {_VERSION} (the integers; version 1, before hard_cap and the "
            f"budget-derived window, cannot be restored: make a new gate with the settings "
            f"it lists)")
    data = _keys(data, ("format", "version", "config", "state"), "the top level")
    if version == 2 and isinstance(data["config"], dict) and "logits" not in data["config"]:
        data["config"] = {**data["config"], "logits": False}
    config = _keys(data["config"], _CONFIG_KEYS, "config")
    state = _keys(data["state"], _STATE_KEYS, "state")
    params = _keys(config["params"], tuple(PARAMETERS), "config.params")
    # Everything is parsed before the gate is made: a rejected text creates no gate.
    saved_custom = isinstance(config["utility"], str) and config["utility"].startswith(
        CUSTOM_PREFIX)
    if saved_custom and custom is None:
        raise InvalidInputError(
            f"this gate was saved with the custom utility "
            f"{config['utility'][len(CUSTOM_PREFIX):]!r}; pass its function: "
            f"StreamGate.from_json(text, utility=f)")
    if custom is not None and not saved_custom:
        raise InvalidInputError(
            f"utility= is only for a gate saved with a custom utility; this one uses "
            f"{config['utility']!r}: leave utility= out")
    if saved_custom:
        # The saved threshold, spending and quantile window are on the scale of the saved
        # function: resuming with another one (or a built-in name) would silently decide
        # on a different scale.
        saved_name = config["utility"][len(CUSTOM_PREFIX):]
        if isinstance(custom, str) or not callable(custom):
            raise InvalidInputError(
                f"utility= must be the function of the saved custom utility {saved_name!r}, "
                f"got {custom!r}; pass that function (a built-in utility cannot resume a "
                f"custom gate)")
        from alcore import _utility

        given = _utility.as_utility(custom).name
        if given != saved_name:
            raise InvalidInputError(
                f"utility= is {given!r} but this gate was saved with the custom utility "
                f"{saved_name!r}; pass that function, or, if it was renamed, "
                f"alcore.utility(f, name={saved_name!r})")
    for name, allowed in (("strategy", STRATEGIES), ("utility", UTILITIES)):
        if not isinstance(config[name], str):
            raise _corrupt(f"config.{name} must be a string")
        if name == "utility" and saved_custom:
            continue
        try:
            v.choice(config[name], name, allowed)
        except InvalidInputError as err:
            raise _corrupt(f"config: {err}") from None
    for name in ("hard_cap", "logits"):
        if not isinstance(config[name], bool):
            raise _corrupt(f"config.{name} must be true or false")
    budget = _json_number(config["budget"], "config.budget", low=0, high=1, low_open=True)
    window = _json_int(config["window"], "config.window", low=1, high=MAX_WINDOW)
    seed = _json_int(config["seed"], "config.seed", low=0, high=2**64 - 1)
    values = {name: _json_number(params[name], f"config.params.{name}") for name in params}
    # u_t <- u_t (w - 1)/w + 0 or 1 never exceeds w (+ rounding); theta starts > 0 and is
    # only ever scaled by positive factors and kept in [DBL_MIN, THETA_MAX] (older states
    # may hold 0).
    spent = _json_number(state["spent"], "state.spent", low=0, high=window + 1)
    theta = _json_number(state["theta"], "state.theta", low=0, high=THETA_MAX)
    seen = _json_int(state["seen"], "state.seen", low=0, high=2**62)
    queried = _json_int(state["queried"], "state.queried", low=0, high=seen)
    draws = _json_int(state["draws"], "state.draws", low=0, high=2**64 - 1)
    classes = _json_int(state["classes"], "state.classes", low=-1, high=MAX_WINDOW)
    if classes in (0, 1):
        raise _corrupt(f"state.classes must be -1 (no row yet) or >= 2, got {classes}")
    history = state["history"]
    if not isinstance(history, list) or len(history) > window:
        raise _corrupt(f"state.history must be a list of at most {window} utilities")
    history = [_json_number(u, "state.history item", low=-UTILITY_MAX, high=UTILITY_MAX)
               for u in history]
    # Only the quantile filter keeps utilities, one per item seen, up to the window.
    expected = min(seen, window) if config["strategy"] == "quantile" else 0
    if len(history) != expected:
        raise _corrupt(f"state.history holds {len(history)} utilities; a "
                       f"{config['strategy']!r} gate that saw {seen} items keeps {expected}")
    try:
        gate = cls(config["strategy"], budget,
                   utility=custom if saved_custom else config["utility"], window=window,
                   seed=seed, hard_cap=config["hard_cap"], logits=config["logits"], **values)
    except InvalidInputError as err:
        raise _corrupt(f"config: {err}") from None
    try:
        gate._gate.set_state(spent, theta, seen, queried, draws, classes, history)
    except ValueError as err:  # the native checks, should one refuse what passed here
        raise _corrupt(f"state: {err}") from None
    return gate


def _custom_utility(utility: Any) -> tuple[Any, tuple[int, int]]:
    """(the Utility, its float32 and float64 addresses) for a callable ``utility=``, (None,
    (0, 0)) for a name."""
    if isinstance(utility, str) or not callable(utility):
        return None, (0, 0)
    from alcore import _utility

    custom = _utility.as_utility(utility)
    if custom.extra:
        raise InvalidInputError(
            f"a gate's utility takes the row alone (def f(p)); {custom.name!r} also takes "
            f"{', '.join(custom.extra)}: compute those utilities yourself and call "
            f"decide_utility_one(u) / decide_utility_many(u)")
    return custom, (custom._address(np.float32), custom._address(np.float64))


def _json_kind(value: Any) -> str:
    """What JSON type a parsed value was written as, for messages."""
    return {bool: "boolean", int: "integer", float: "number with a fraction or exponent",
            str: "string", list: "array", dict: "object", type(None): "null"}[type(value)]


class Route:
    """Where the router sends an item."""

    AUTO_LABEL = "auto_label"  # confident enough to take the model's label
    ANNOTATE = "annotate"      # the gate queried it: an annotator labels it
    EXPERT = "expert"          # the hardest items, or a disagreeing committee
    SKIP = "skip"              # not labeled

    ALL = (AUTO_LABEL, ANNOTATE, EXPERT, SKIP)


class Router:
    """Tiered routing in front of a :class:`StreamGate`, aware of the annotators' queue.

    For each item, in order: ``SKIP`` when it is in ``exclude``; ``AUTO_LABEL`` when its max
    probability >= ``auto_label_at`` (no budget spent); ``SKIP`` when its utility is below
    the queue threshold (so a filling queue lowers inflow and the gate's budget is not spent
    on items nobody will label); otherwise the gate decides, and a queried item goes to
    ``EXPERT`` when its utility is >= ``expert_at`` (or, given committee samples, their vote
    disagreement is >= ``expert_disagreement``) and to ``ANNOTATE`` otherwise.

    Two scales: ``auto_label_at`` is a **max probability** (in [1/C, 1]; high = confident),
    ``expert_at`` a **utility** of the gate (:meth:`StreamGate.utility`; high = uncertain):
    for ``least_confidence`` 1 - max p, in [0, 1 - 1/C]; for ``margin`` 1 - (p1 - p2) and
    ``entropy`` / ln C, in [0, 1]. With least confidence, ``auto_label_at=0.98`` and
    ``expert_at=0.6`` mean max p >= 0.98 is auto-labelled and max p <= 0.4 goes to experts.

    The queue threshold is ``queue_threshold * gate.max_utility(C)`` in the gate's utility,
    with :attr:`queue_threshold` = ``pressure ** 2`` and ``pressure = min(1, depth /
    queue_capacity)`` from :meth:`set_queue_depth`: 0 with an empty queue, rising steeply as
    it nears capacity, back to 0 as it drains.

    Parameters
    ----------
    gate : StreamGate
    auto_label_at : float or None, keyword-only
        Max-probability threshold for auto-labelling (None: never).
    expert_at : float or None, keyword-only
        The gate's utility from which a queried item goes to an expert (None: never).
    expert_disagreement : float, keyword-only
        Vote-entropy share (of ln T) from which committee samples send it to an expert.
    queue_capacity : int or None, keyword-only
        The annotators' queue size; None disables queue awareness.

    Notes
    -----
    Thread safe: calls from several threads share the gate's budget exactly, and
    :attr:`counts` is updated under a lock.
    """

    def __init__(self, gate: StreamGate, *, auto_label_at: float | None = 0.98,
                 expert_at: float | None = None, expert_disagreement: float = 0.5,
                 queue_capacity: int | None = None, **unknown: Any):
        v.refuse_unknown("Router", unknown, Router.__init__)
        if not isinstance(gate, StreamGate):
            raise InvalidInputError(f"gate must be a StreamGate, got {type(gate).__name__}")
        self.gate = gate
        self.auto_label_at = (None if auto_label_at is None
                              else v.number(auto_label_at, "auto_label_at", low=0, high=1))
        self.expert_at = (None if expert_at is None
                          else v.number(expert_at, "expert_at", low=0, high=1))
        self.expert_disagreement = v.number(expert_disagreement, "expert_disagreement",
                                            low=0, high=1)
        self.queue_capacity = (None if queue_capacity is None
                               else v.count(queue_capacity, "queue_capacity"))
        self._depth = 0
        self._counts = dict.fromkeys(Route.ALL, 0)
        self._lock = threading.Lock()

    @property
    def counts(self) -> dict[str, int]:
        """Items routed so far, per route (a copy)."""
        with self._lock:
            return dict(self._counts)

    def set_queue_depth(self, depth: int) -> None:
        """Tell the router how many items wait for annotators now (an int >= 0)."""
        self._depth = v.integer(depth, "depth", low=0)

    @property
    def queue_threshold(self) -> float:
        """pressure ** 2: the share of the gate's largest utility an item needs to reach the
        gate now (0 = no restriction)."""
        if self.queue_capacity is None:
            return 0.0
        pressure = min(1.0, self._depth / self.queue_capacity)
        return pressure * pressure

    def route_many(self, probs: Any, *, samples: Any = None, exclude: Any = None,
                   **unknown: Any) -> np.ndarray:
        """Routes of rows (N, C), in order. Every argument is checked before the gate is
        asked, so a rejected call spends no budget and changes no count.

        Parameters
        ----------
        probs : array-like of shape (N, C)
            Probability rows, float32 or float64 (logits for a gate made with
            ``logits=True``).
        samples : array-like of shape (T, N, C), or a sequence of T (N, C) arrays, optional
            Committee members' probabilities; their vote disagreement can send a queried
            item to an expert.
        exclude : bool mask of length N or unique int indices, optional
            Rows never sent to a human (unlabelable, corrupt): routed ``SKIP``, spending no
            budget.

        Returns
        -------
        ndarray of shape (N,), object
            Route names (str, see :class:`Route`).
        """
        v.refuse_unknown("Router.route_many", unknown, Router.route_many)
        x = StreamGate._rows(probs)
        n, c = x.shape
        utility = self.gate.utility(x)  # checks values and the class count
        never = v.item_masks(n, "probs", exclude=exclude).never
        disagreement = None if samples is None else self._disagreement(samples, n, c)
        skipped = np.zeros(n, dtype=bool) if never is None else never.view(bool)
        auto = (np.zeros(n, dtype=bool) if self.auto_label_at is None
                else self._max_probability(x) >= self.auto_label_at) & ~skipped
        threshold = self.queue_threshold * self.gate.max_utility(c) if n else 0.0
        rows = np.flatnonzero(~auto & ~skipped & (utility >= threshold))
        queried = rows[self.gate.decide_many(x[rows])]
        hard = np.zeros(n, dtype=bool)
        if self.expert_at is not None:
            hard |= utility >= self.expert_at
        if disagreement is not None:
            hard |= disagreement >= self.expert_disagreement
        routes = np.full(n, Route.SKIP, dtype=object)
        routes[auto] = Route.AUTO_LABEL
        routes[queried] = np.where(hard[queried], Route.EXPERT, Route.ANNOTATE)
        n_auto, n_expert = int(np.count_nonzero(auto)), int(np.count_nonzero(hard[queried]))
        with self._lock:
            self._counts[Route.AUTO_LABEL] += n_auto
            self._counts[Route.EXPERT] += n_expert
            self._counts[Route.ANNOTATE] += len(queried) - n_expert
            self._counts[Route.SKIP] += n - n_auto - len(queried)
        return routes

    def _max_probability(self, x: np.ndarray) -> np.ndarray:
        """Each row's largest probability; for a logits gate the softmax's, 1 / sum_j
        exp(z_j - max z) (the rows were checked finite by the gate's utility)."""
        if not self.gate.logits:
            return x.max(axis=1)
        z = x.astype(np.float64)
        return 1.0 / np.exp(z - z.max(axis=1, keepdims=True)).sum(axis=1)

    def _disagreement(self, samples: Any, n: int, c: int) -> np.ndarray | None:
        """Vote entropy / ln T of (T, n, c) samples; None for a committee of one."""
        s = v.float_array(samples, "samples")
        if s.ndim != 3 or s.shape[1:] != (n, c) or s.shape[0] == 0:
            raise InvalidInputError(
                f"samples must have shape (T, {n}, {c}) to match probs, got {s.shape}")
        if n == 0:
            return np.zeros(0)
        atol = self.gate.params["atol"]
        try:
            votes = _core.sample_scores(s, 2, False, atol)  # 2 = vote entropy (nats)
        except _core.InvalidValue as err:
            raise v.invalid_value_error(err, "samples", atol=atol) from None
        if s.shape[0] == 1:
            return None
        return votes / np.log(s.shape[0])

    def route(self, p: Any, *, samples: Any = None, **unknown: Any) -> str:
        """The route of one probability row of shape (C,); ``samples`` of shape (T, C)."""
        v.refuse_unknown("Router.route", unknown, Router.route)
        row = v.float_array(p, "p")
        if row.ndim != 1:
            raise InvalidInputError(f"p must be one probability row of shape (C,), got "
                                    f"shape {row.shape}; use route_many for a batch")
        committee = None
        if samples is not None:
            committee = v.float_array(samples, "samples")
            if committee.ndim != 2 or committee.shape[1] != row.shape[0]:
                raise InvalidInputError(
                    f"samples must have shape (T, {row.shape[0]}) for one row, got "
                    f"{committee.shape}")
            committee = committee[:, None, :]
        return str(self.route_many(row[None, :], samples=committee)[0])


__all__ = ["GateStats", "GateUtility", "Route", "Router", "StreamGate", "default_window"]

# decide_one and route are per-item calls where one more Python frame is measurable.
v.guard_signatures(globals(), hot=("decide_one", "route"))
