"""Stream-based selection: a yes/no per arriving item, under a label budget.

:class:`StreamGate` is a native stateful gate (Zliobaite et al. 2014 strategies with the
windowed budget estimate). ``decide_many`` gives exactly the decisions of the same rows fed
one by one; the state serialises to JSON and a restored gate continues the same random
sequence.
"""

from __future__ import annotations

import json
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
# Strategy parameters and their defaults (scikit-activeml's names).
PARAMETERS = {"theta": 1.0, "s": 0.01, "delta": 1.0, "v": 0.1, "w_tol": 50.0, "atol": 1e-3}
_FORMAT = "alcore.StreamGate"
_VERSION = 1
_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


class GateStats(NamedTuple):
    """A gate's counters."""

    seen: int
    queried: int
    budget_used: float
    """queried / seen (0 before the first item)."""
    windowed_spending: float
    """Zliobaite's estimate u_t / window, which the budget bounds."""
    threshold: float
    """The variable strategies' current threshold (the initial one for the others)."""


class StreamGate:
    """Decide per item whether a human labels it, spending at most ``budget`` of the stream.

    Parameters
    ----------
    strategy : str
        ``"fixed"`` (query when max p <= 1/C + budget (1 - 1/C)), ``"variable_uncertainty"``
        (threshold theta shrinks by (1 - s) after a query, grows by (1 + s) otherwise),
        ``"randomized_variable_uncertainty"`` (the same against theta * N(1, delta)),
        ``"split"`` (with probability v a random query at the budget rate, else a variable
        step), ``"random"`` (query with probability budget) or ``"quantile"`` (the
        balanced incremental quantile filter: utility >= the (1 - budget) quantile of the
        last ``window`` utilities, lowered by range x labels owed / w_tol).
    budget : float
        Share of items that may be labeled, in (0, 1].
    utility : str
        ``"least_confidence"`` (1 - max p), ``"margin"`` (1 - (p1 - p2)) or ``"entropy"``
        (normalised by ln C); the strategies compare confidence = 1 - utility.
    window : int
        w of the windowed spending estimate u_t <- u_t (w - 1)/w + queried; a query is
        allowed while u_t / w < budget.
    seed : int
        Seeds the counter-based random numbers (randomized, split and random strategies).
    **params
        ``theta`` (1.0), ``s`` (0.01), ``delta`` (1.0), ``v`` (0.1), ``w_tol`` (50, the
        quantile filter's tolerance window), ``atol`` (1e-3, the allowed |row sum - 1|).

    Notes
    -----
    Thread safety: every call holds the gate's lock, so concurrent callers see decisions
    as if their calls ran one after another (in some order) and the budget accounting stays
    exact. A rejected call (bad row, wrong class count) changes nothing.
    """

    def __init__(self, strategy: str, budget: float, utility: str = "least_confidence",
                 window: int = 100, seed: int = 0, **params: Any):
        if not isinstance(strategy, str) or strategy not in STRATEGIES:
            raise InvalidInputError(
                f"strategy must be one of {', '.join(map(repr, STRATEGIES))}, got {strategy!r}"
            )
        if not isinstance(utility, str) or utility not in UTILITIES:
            raise InvalidInputError(
                f"utility must be one of {', '.join(map(repr, UTILITIES))}, got {utility!r}"
            )
        unknown = sorted(set(params) - set(PARAMETERS))
        if unknown:
            raise InvalidInputError(
                f"unknown parameter {unknown[0]!r}; StreamGate takes "
                f"{', '.join(PARAMETERS)}"
            )
        budget = _number(budget, "budget")
        if not 0 < budget <= 1:
            raise InvalidInputError(f"budget must be in (0, 1], got {budget!r}")
        window = v.count(window, "window")
        if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
            raise InvalidInputError(f"seed must be a non-negative int, got {seed!r}")
        values = {**PARAMETERS, **{k: _number(val, k) for k, val in params.items()}}
        for name in ("s", "delta", "v", "atol"):
            if values[name] < 0:
                raise InvalidInputError(f"{name} must be >= 0, got {values[name]!r}")
        if values["w_tol"] <= 0:
            raise InvalidInputError(f"w_tol must be > 0, got {values['w_tol']!r}")
        if values["v"] > 1 or values["s"] >= 1:
            raise InvalidInputError("v must be in [0, 1] and s in [0, 1)")
        self.strategy, self.utility, self.budget, self.window = strategy, utility, budget, window
        self.seed, self.params = int(seed), values
        self._gate = _core.StreamGate(
            STRATEGIES[strategy], UTILITIES[utility], budget, window, values["theta"],
            values["s"], values["delta"], values["v"], values["atol"], values["w_tol"],
            int(seed) % 2**64,
        )
        self._lock = threading.Lock()  # guards to_json's read of params + state together

    def decide_one(self, p: Any) -> bool:
        """Decide for one probability row of shape (C,); True = ask a human."""
        if not (type(p) is np.ndarray and p.ndim == 1 and p.dtype in _FLOATS
                and p.flags.c_contiguous):
            p = v.float_array(p, "p")
            if p.ndim != 1:
                raise InvalidInputError(
                    f"p must be one probability row of shape (C,), got shape {p.shape}; use "
                    f"decide_many for a batch"
                )
        try:
            return self._gate.decide_one(p)
        except _core.InvalidValue as err:
            raise v.invalid_value_error(err, "p", atol=self.params["atol"]) from None
        except ValueError as err:
            raise self._class_error(err, p.shape[0]) from None

    def decide_many(self, probs: Any) -> np.ndarray:
        """Decide for rows of shape (N, C), exactly as N calls of decide_one would."""
        x = v.float_array(probs, "probs")
        if x.ndim != 2:
            raise InvalidInputError(
                f"probs must be 2-D with shape (N items, C classes), got shape {x.shape}")
        try:
            return self._gate.decide_many(x)
        except _core.InvalidValue as err:
            raise v.invalid_value_error(err, "probs", atol=self.params["atol"]) from None
        except ValueError as err:
            raise self._class_error(err, x.shape[1]) from None

    def _class_error(self, err: ValueError, got: int) -> InvalidInputError:
        classes = self._gate.state()[5]
        if classes >= 0 and got != classes:
            return InvalidInputError(
                f"this gate has seen rows of {classes} classes, got {got}; use one gate per "
                f"model output")
        return InvalidInputError(f"rows must have at least 2 classes, got {got} ({err})")

    @property
    def stats(self) -> GateStats:
        spent, theta, seen, queried = self._gate.state()[:4]
        return GateStats(seen, queried, queried / seen if seen else 0.0, spent / self.window,
                         theta)

    def to_json(self) -> str:
        """The configuration and the full state, as JSON (no pickle)."""
        with self._lock:
            spent, theta, seen, queried, draws, classes, history = self._gate.state()
        return json.dumps({
            "format": _FORMAT, "version": _VERSION,
            "config": {"strategy": self.strategy, "budget": self.budget,
                       "utility": self.utility, "window": self.window, "seed": self.seed,
                       "params": self.params},
            "state": {"spent": spent, "theta": theta, "seen": seen, "queried": queried,
                      "draws": draws, "classes": classes, "history": history},
        })

    @classmethod
    def from_json(cls, text: str) -> StreamGate:
        """Restore a gate saved with :meth:`to_json`; it continues exactly where it was."""
        try:
            data = json.loads(text)
            if data.get("format") != _FORMAT or data.get("version") != _VERSION:
                raise InvalidInputError(
                    f"not a StreamGate state (format {data.get('format')!r}, version "
                    f"{data.get('version')!r}); expected {_FORMAT!r} version {_VERSION}")
            config, state = data["config"], data["state"]
            gate = cls(config["strategy"], config["budget"], config["utility"],
                       config["window"], config["seed"], **config["params"])
            numbers = [state[key] for key in ("spent", "theta", "seen", "queried", "draws",
                                              "classes")]
            history = [float(u) for u in state["history"]]
        except InvalidInputError:
            raise
        except (json.JSONDecodeError, TypeError, KeyError, AttributeError, ValueError) as err:
            raise InvalidInputError(f"corrupt StreamGate state ({err!r}); pass the text "
                                    f"StreamGate.to_json() produced") from None
        spent, theta, seen, queried, draws, classes = numbers
        ints = (seen, queried, draws, classes)
        if (not all(isinstance(x, int) and not isinstance(x, bool) for x in ints)
                or not all(isinstance(x, int | float) for x in (spent, theta))
                or seen < 0 or not 0 <= queried <= seen or draws < 0 or classes < -1
                or classes in (0, 1) or not np.isfinite(spent) or not np.isfinite(theta)
                or spent < 0 or len(history) > gate.window
                or not all(np.isfinite(history))):
            raise InvalidInputError("corrupt StreamGate state: counters out of range")
        gate._gate.set_state(float(spent), float(theta), seen, queried, draws, classes, history)
        return gate


def _number(value: Any, name: str) -> float:
    if isinstance(value, bool):
        raise InvalidInputError(f"{name} must be a number, got {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InvalidInputError(f"{name} must be a number, got {value!r}") from None
    if not np.isfinite(number):
        raise InvalidInputError(f"{name} must be finite, got {value!r}")
    return number





class Route:
    """Where the router sends an item."""

    AUTO_LABEL = "auto_label"  # confident enough to take the model's label
    ANNOTATE = "annotate"      # the gate queried it: an annotator labels it
    EXPERT = "expert"          # the hardest items, or a disagreeing committee
    SKIP = "skip"              # not labeled

    ALL = (AUTO_LABEL, ANNOTATE, EXPERT, SKIP)


_SCORE_OF_UTILITY = {"least_confidence": "least_confidence", "margin": "margin",
                     "entropy": "entropy"}


class Router:
    """Tiered routing in front of a :class:`StreamGate`, aware of the annotators' queue.

    For each item, in order: ``AUTO_LABEL`` when max p >= ``auto_label_at`` (no budget
    spent); ``SKIP`` when its utility is below the queue threshold (so a filling queue
    lowers inflow and the gate's budget is not spent on items nobody will label); otherwise
    the gate decides, and a queried item goes to ``EXPERT`` when its utility is >=
    ``expert_at`` (or, given committee samples, their vote disagreement is >=
    ``expert_disagreement``) and to ``ANNOTATE`` otherwise.

    The queue threshold is ``pressure ** 2`` times the largest possible utility, with
    ``pressure = min(1, depth / queue_capacity)`` from :meth:`set_queue_depth`: 0 with an
    empty queue, rising steeply as it nears capacity, back to 0 as it drains.

    Parameters
    ----------
    gate : StreamGate
    auto_label_at : float or None
        Max-probability threshold for auto-labelling (None: never).
    expert_at : float or None
        Utility (the gate's, in [0, 1]) from which a queried item goes to an expert.
    expert_disagreement : float
        Vote-entropy share (of ln T) from which committee samples send it to an expert.
    queue_capacity : int or None
        The annotators' queue size; None disables queue awareness.
    """

    def __init__(self, gate: StreamGate, auto_label_at: float | None = 0.98,
                 expert_at: float | None = None, expert_disagreement: float = 0.5,
                 queue_capacity: int | None = None):
        if not isinstance(gate, StreamGate):
            raise InvalidInputError(f"gate must be a StreamGate, got {type(gate).__name__}")
        self.gate = gate
        self.auto_label_at = None if auto_label_at is None else _unit(auto_label_at,
                                                                       "auto_label_at")
        self.expert_at = None if expert_at is None else _unit(expert_at, "expert_at")
        self.expert_disagreement = _unit(expert_disagreement, "expert_disagreement")
        self.queue_capacity = (None if queue_capacity is None
                               else v.count(queue_capacity, "queue_capacity"))
        self._depth = 0
        self.counts = dict.fromkeys(Route.ALL, 0)

    def set_queue_depth(self, depth: int) -> None:
        """Tell the router how many items wait for annotators now."""
        if isinstance(depth, bool) or not isinstance(depth, int | np.integer) or depth < 0:
            raise InvalidInputError(f"depth must be a non-negative int, got {depth!r}")
        self._depth = int(depth)

    @property
    def queue_threshold(self) -> float:
        """The utility an item needs to reach the gate now (0 = no restriction)."""
        if self.queue_capacity is None:
            return 0.0
        pressure = min(1.0, self._depth / self.queue_capacity)
        return pressure * pressure

    def route_many(self, probs: Any, samples: Any = None) -> np.ndarray:
        """Routes of rows (N, C), in order; ``samples`` (T, N, C) adds committee
        disagreement. Returns an array of route names (str)."""
        from alcore import scores

        x = v.float_array(probs, "probs")
        if x.ndim != 2:
            raise InvalidInputError(
                f"probs must be 2-D with shape (N items, C classes), got shape {x.shape}")
        n, c = x.shape
        utility = getattr(scores, _SCORE_OF_UTILITY[self.gate.utility])(
            x, normalize=self.gate.utility == "entropy", atol=self.gate.params["atol"])
        if self.gate.utility == "least_confidence":
            utility = utility / (1.0 - 1.0 / c)  # onto [0, 1] like the others
        routes = np.full(n, Route.SKIP, dtype=object)
        auto = (np.zeros(n, dtype=bool) if self.auto_label_at is None
                else x.max(axis=1) >= self.auto_label_at)
        routes[auto] = Route.AUTO_LABEL
        eligible = ~auto & (utility >= self.queue_threshold)
        rows = np.flatnonzero(eligible)
        queried = rows[self.gate.decide_many(np.ascontiguousarray(x[rows]))]
        hard = np.zeros(n, dtype=bool)
        if self.expert_at is not None:
            hard |= utility >= self.expert_at
        if samples is not None:
            disagreement = scores.vote_entropy(samples)
            if disagreement.shape != (n,):
                raise InvalidInputError(
                    f"samples must have shape (T, {n}, C) to match probs, got "
                    f"{np.shape(samples)}")
            members = np.shape(samples)[0]
            if members > 1:
                hard |= disagreement / np.log(members) >= self.expert_disagreement
        routes[queried] = np.where(hard[queried], Route.EXPERT, Route.ANNOTATE)
        for route in Route.ALL:
            self.counts[route] += int(np.count_nonzero(routes == route))
        return routes

    def route(self, p: Any, samples: Any = None) -> str:
        """The route of one probability row of shape (C,)."""
        row = v.float_array(p, "p")
        if row.ndim != 1:
            raise InvalidInputError(f"p must be one probability row of shape (C,), got "
                                    f"shape {row.shape}; use route_many for a batch")
        committee = None if samples is None else np.asarray(samples)[:, None, :]
        return str(self.route_many(row[None, :], committee)[0])


def _unit(value: Any, name: str) -> float:
    number = _number(value, name)
    if not 0 <= number <= 1:
        raise InvalidInputError(f"{name} must be in [0, 1], got {value!r}")
    return number
__all__ = ["GateStats", "Route", "Router", "StreamGate"]
