"""Density-aware stream decisions: an arriving item's utility weighted by its density among
the last W items, decided by a :class:`~alcore.stream.StreamGate`.

:class:`DensityGate` keeps a sliding window (a ring buffer) of the last ``window``
embeddings in native memory and computes, for each arriving item, its density against
the window **as it is before the item joins**; the item then joins (replacing the oldest
once the window is full). Two densities:

``density="ldf"`` (default): scikit-activeml's ``StreamDensityBasedAL`` (Ienco, Zliobaite
    and Pfahringer 2014). Every window item remembers the distance to its nearest neighbour
    among the items it has met (those before it in the window when it arrived, and those
    that arrived after it); the local density factor (ldf) of a new item is the number of
    window items it is strictly nearer to than that remembered distance (it becomes their
    new nearest neighbour), and their distances are updated. An item may be queried only
    when ``ldf >= min_ldf`` (1, as scikit-activeml's ``ldf > 0``); the gate then decides on
    its utility unweighted. An item below it is still counted by the gate as seen and not
    queried (see Notes).
``density="similarity"``: the mean cosine similarity of the item to its ``k`` most similar
    window items (fewer while the window holds fewer), clipped at 0, so in [0, 1]; 1 for
    the first item (an empty window weighs nothing). The gate decides on
    ``utility * density ** beta`` (Settles and Craven's information density, as
    :func:`alcore.density.information_density` for pools).

Notes
-----
Deliberate differences from scikit-activeml's ``StreamDensityBasedAL``:

- Distances are squared L2 by direct differences (``sum (a - b)^2`` over dimensions in
  order, float32 for a float32 window, float64 for float64), compared squared;
  scikit-activeml compares ``sklearn.metrics.pairwise_distances`` (the expanded form
  ``|a|^2 + |b|^2 - 2 a.b``, float64, then a square root). Both rank the same except on
  near-ties within rounding: exact duplicates give exactly 0 here (never a new nearest
  neighbour of each other), where the expanded form may give a tiny positive distance.
- An item whose ldf is below ``min_ldf`` is passed to the gate as the lowest utility the
  gate takes (``-alcore.stream.UTILITY_MAX``): not queried, counted as seen, the
  threshold strategies' theta grows, as scikit-activeml's ``query_by_utility(nan)`` does
  for its threshold budget managers. A ``"quantile"`` gate keeps that value in its window
  of utilities (scikit-activeml's quantile filter is not a default of its density
  strategies). With ``count_sparse=False`` the gate does not see such items at all.
- One call decides and updates: scikit-activeml's ``query`` (which restores its window)
  followed by ``update`` with the queried indices is the same sequence of states when
  every queried item is labelled.
- scikit-activeml's default budget manager for ``StreamDensityBasedAL`` is its
  ``DensityBasedSplitBudgetManager`` (randomised, seen/queried counts); pass the
  :class:`~alcore.stream.StreamGate` you want instead (the deterministic ones reproduce
  scikit-activeml's managers item by item). ``CognitiveDualQueryStrategy``'s ldf threshold
  and budget handling are ``min_ldf`` and ``count_sparse``; its cognition window (a
  window whose items are evicted by least memory strength rather than age) is not
  modelled: the window here is the last W items.
"""

from __future__ import annotations

import base64
import json
import math
import threading
from typing import Any

import numpy as np

from alcore import _core
from alcore import _validation as v
from alcore._errors import InvalidInputError
from alcore.stream import UTILITY_MAX, StreamGate, utility_values

DENSITIES = {"ldf": 0, "similarity": 1}
_DTYPES = {"float32": np.float32, "float64": np.float64}
_NATIVE = {"float32": _core.StreamDensity32, "float64": _core.StreamDensity64}
_FORMAT = "alcore.DensityGate"
_VERSION = 1
# The utility an item below min_ldf is decided with: never queried, counted as seen.
LOWEST_UTILITY = -UTILITY_MAX
MAX_WINDOW = 2**31


class DensityGate:
    """A :class:`~alcore.stream.StreamGate` whose items are weighted by their density among
    the last ``window`` embeddings (see the module docstring for the definitions).

    Parameters
    ----------
    gate : StreamGate
        Decides on the (weighted) utilities through ``decide_utility_one`` /
        ``decide_utility_many``. A ``"fixed"`` gate needs ``classes=`` (it compares with
        1/C + budget (1 - 1/C)).
    window : int, keyword-only
        W, the number of recent embeddings kept (scikit-activeml's ``window_size``, default
        100), in [1, 2**31].
    density : str, keyword-only
        ``"ldf"`` (scikit-activeml's local density factor) or ``"similarity"`` (mean cosine
        similarity to the k nearest).
    k : int, keyword-only
        Neighbours averaged under ``"similarity"`` (ignored under ``"ldf"``).
    beta : float, keyword-only
        Exponent of the density under ``"similarity"``: the gate sees ``u * density **
        beta`` (0 ignores the density; ignored under ``"ldf"``).
    min_ldf : int, keyword-only
        Under ``"ldf"``, the smallest ldf at which an item may be queried (1:
        scikit-activeml's ``StreamDensityBasedAL``; ``CognitiveDualQueryStrategy``'s
        ``density_threshold``).
    count_sparse : bool, keyword-only
        Under ``"ldf"``, what the gate sees of an item below ``min_ldf``: True (default)
        the lowest utility, so it counts as seen and not queried (``StreamDensityBasedAL``,
        and ``CognitiveDualQueryStrategy(force_full_budget=True)``); False nothing, so the
        budget is spent over the dense items only (``CognitiveDualQueryStrategy``'s
        default).
    dtype : str, keyword-only
        ``"float32"`` (default) or ``"float64"``: the window's precision; embeddings of the
        other precision are converted once per call.

    Notes
    -----
    Speed (benchmarks/test_bench_stream_density.py, ALCORE_ISA=avx2, 2 shared cores): with
    a full window of W = 10,000 float32 embeddings of d = 64, ``decide_one`` from Python
    took 39-46 us per call at p50 and 74-120 us at p99 (50,000 calls), about one read of
    the 2.56 MB window; scikit-activeml's ``StreamDensityBasedAL`` took 32-56 ms per item on
    the same stream. Every item is compared with every window item exactly (no index), so
    the cost grows with W x d. ``decide_many`` reads the window once per chunk of 32 items
    (1.9x one call per item at W = 100,000, where the window exceeds the caches; about the
    same at W = 10,000).

    Thread safety: a lock makes each call atomic (the density step and the gate's
    decision), so concurrent callers see the decisions of some serial order. A rejected
    call (bad utility, probability row or embedding) changes neither the window nor the
    gate.
    """

    def __init__(self, gate: StreamGate, *, window: int = 100, density: str = "ldf",
                 k: int = 10, beta: float = 1.0, min_ldf: int = 1, count_sparse: bool = True,
                 dtype: str = "float32", **unknown: Any):
        v.refuse_unknown("DensityGate", unknown, DensityGate.__init__)
        if not isinstance(gate, StreamGate):
            raise InvalidInputError(
                f"gate must be an alcore.stream.StreamGate, got {type(gate).__name__}")
        if gate.strategy == "fixed" and gate.classes is None:
            raise InvalidInputError(
                "gate: a 'fixed' gate decides utilities against 1/C + budget (1 - 1/C) and "
                "needs its class count; pass StreamGate('fixed', budget, classes=C)")
        self._gate = gate
        self._window = v.integer(window, "window", low=1, high=MAX_WINDOW,
                                 hint="pass the number of recent embeddings to keep, e.g. 100")
        self._density = v.choice(density, "density", DENSITIES)
        self._k = v.integer(k, "k", low=1, high=MAX_WINDOW, hint="pass e.g. k=10")
        self._beta = v.number(beta, "beta", low=0.0, high=1e6,
                              hint="pass a finite exponent >= 0, e.g. beta=1.0")
        self._min_ldf = v.integer(min_ldf, "min_ldf", low=1, high=MAX_WINDOW,
                                  hint="pass min_ldf=1 (scikit-activeml's ldf > 0)")
        self._count_sparse = v.flag(count_sparse, "count_sparse")
        self._dtype = v.choice(dtype, "dtype", _DTYPES)
        self._native: Any = None  # made at the first embedding, which fixes d
        self._lock = threading.Lock()

    # Settings (read-only: make a new DensityGate to change them).
    @property
    def gate(self) -> StreamGate:
        return self._gate

    @property
    def window(self) -> int:
        return self._window

    @property
    def density(self) -> str:
        return self._density

    @property
    def k(self) -> int:
        return self._k

    @property
    def beta(self) -> float:
        return self._beta

    @property
    def min_ldf(self) -> int:
        return self._min_ldf

    @property
    def count_sparse(self) -> bool:
        return self._count_sparse

    @property
    def dtype(self) -> str:
        return self._dtype

    @property
    def dim(self) -> int | None:
        """The embeddings' dimension, fixed by the first one (None before)."""
        return None if self._native is None else self._native_dim

    @property
    def filled(self) -> int:
        """How many embeddings the window holds (at most :attr:`window`)."""
        return 0 if self._native is None else self._native.count

    # --- the per-item call ------------------------------------------------------------
    def decide_one(self, p_or_utility: Any, embedding: Any) -> bool:
        """Decide for one item; True = ask a human.

        Parameters
        ----------
        p_or_utility : float or array-like of shape (C,)
            The item's utility (a real number, higher = more informative, ``|u| <= 1e150``)
            or its probability row, whose utility is the gate's (``gate.utility``).
        embedding : array-like of shape (d,)
            Finite; d is fixed by the first item (non-zero under ``"similarity"``).
        """
        u = self._utility_one(p_or_utility)
        with self._lock:
            try:
                # A C-contiguous 1-D ndarray of the window's dtype and dimension: native
                # directly (None for anything else; a bad value raises before any change).
                dens = self._native.step_one(embedding)
            except Exception:
                dens = None
            if dens is None:
                dens = self._step_checked(embedding)
            if not self._count_sparse and self._density == "ldf" and dens < self._min_ldf:
                return False  # the gate never sees it
            return self._gate.decide_utility_one(self._weighted_one(u, dens))

    def _utility_one(self, value: Any) -> float:
        if type(value) is float:
            if math.isfinite(value) and abs(value) <= UTILITY_MAX:
                return value
            utility_values(value, "p_or_utility")  # raises the package's message
        arr = v.as_numpy(value, "p_or_utility")
        if arr.ndim == 0:
            return float(utility_values(arr, "p_or_utility"))
        if arr.ndim != 1:
            raise InvalidInputError(
                f"p_or_utility must be one utility or one probability row of shape (C,), got "
                f"shape {arr.shape}; use decide_many for a batch")
        return float(self._row_utilities(arr[None, :], "p_or_utility")[0])

    def _step_checked(self, embedding: Any) -> float:
        e = self._embeddings(embedding, "embedding", one=True)
        return float(self._steps(e[None, :], "embedding")[0])

    def _weighted_one(self, u: float, dens: float) -> float:
        if self._density == "ldf":
            return u if dens >= self._min_ldf else LOWEST_UTILITY
        # Python's float ** and the batch's math.pow are the same libm pow: one bit pattern.
        return u * dens if self._beta == 1.0 else u * math.pow(dens, self._beta)

    # --- batches ----------------------------------------------------------------------
    def decide_many(self, P: Any, E: Any) -> np.ndarray:
        """Decide for N items exactly as N calls of :meth:`decide_one` would (the same
        decisions, the same window and gate state after). Everything is checked first: a
        rejected call changes nothing.

        Parameters
        ----------
        P : array-like of shape (N,) or (N, C)
            Utilities, or probability rows (their utility is the gate's).
        E : array-like of shape (N, d)
            Embeddings, finite.

        Returns
        -------
        ndarray of shape (N,), bool
            True = ask a human.
        """
        u, _ = self._utility_batch(P)
        e = self._embeddings(E, "E")
        if e.shape[0] != u.shape[0]:
            raise InvalidInputError(
                f"P has {u.shape[0]} items but E has {e.shape[0]}; pass one embedding per item")
        with self._lock:
            dens = self._steps(e, "E")
            weighted = self._weighted_many(u, dens)
            if not self._count_sparse and self._density == "ldf":
                dense = dens >= self._min_ldf
                asked = np.zeros(len(weighted), dtype=bool)
                asked[dense] = self._gate.decide_utility_many(weighted[dense])
                return asked
            return self._gate.decide_utility_many(weighted)

    def densities(self, E: Any) -> np.ndarray:
        """Each row's density against the window as it is now (not against the other rows);
        nothing changes. float64 of shape (N,): the ldf (a count) or the similarity."""
        e = self._embeddings(E, "E")
        with self._lock:
            if self._native is None:
                self._make(e.shape[1])
            try:
                return self._native.peek(e)
            except _core.InvalidValue as err:
                raise self._embedding_error(err, "E") from None

    def _utility_batch(self, P: Any) -> tuple[np.ndarray, bool]:
        arr = v.as_numpy(P, "P")
        if arr.ndim == 2:
            return self._row_utilities(arr, "P"), True
        if arr.ndim != 1:
            raise InvalidInputError(
                f"P must be utilities of shape (N,) or probability rows of shape (N, C), got "
                f"shape {arr.shape}")
        return utility_values(arr, "P"), False

    def _weighted_many(self, u: np.ndarray, dens: np.ndarray) -> np.ndarray:
        if self._density == "ldf":
            return np.where(dens >= self._min_ldf, u, LOWEST_UTILITY)
        if self._beta == 1.0:
            return u * dens
        # math.pow per item, the same function decide_one uses (numpy's power may take a
        # vectorised path that differs in the last bit).
        beta = self._beta
        weight = np.fromiter((math.pow(d, beta) for d in dens.tolist()), np.float64,
                             count=dens.shape[0])
        return u * weight

    # --- checks -----------------------------------------------------------------------
    def _row_utilities(self, rows: np.ndarray, name: str) -> np.ndarray:
        try:
            return self._gate.utility(rows)
        except InvalidInputError as err:
            # The gate names its own argument (probs); say which one the caller passed.
            raise InvalidInputError(f"{name}: {err}") from None

    def _embeddings(self, value: Any, name: str, one: bool = False) -> np.ndarray:
        arr = v.float_array(value, name)
        want = 1 if one else 2
        if arr.ndim != want:
            shape = "(d,)" if one else "(N, d)"
            raise InvalidInputError(
                f"{name} must have shape {shape}, got shape {arr.shape}"
                f"{'; use decide_many for a batch' if one and arr.ndim == 2 else ''}")
        d = arr.shape[-1]
        if d == 0:
            raise InvalidInputError(f"{name} must have at least one dimension, got shape "
                                    f"{arr.shape}")
        if self._native is not None and d != self._native_dim:
            raise InvalidInputError(
                f"{name} has dimension {d} but this DensityGate's window holds embeddings of "
                f"dimension {self._native_dim}; use one DensityGate per embedding space")
        return np.ascontiguousarray(arr, dtype=_DTYPES[self._dtype])

    def _make(self, d: int) -> None:
        self._native = _NATIVE[self._dtype](self._window, d, DENSITIES[self._density],
                                            self._k)
        self._native_dim = d

    def _steps(self, e: np.ndarray, name: str) -> np.ndarray:
        if self._native is None:
            self._make(e.shape[1])
        try:
            return self._native.steps(e)
        except _core.InvalidValue as err:
            raise self._embedding_error(err, name) from None

    @staticmethod
    def _embedding_error(err: Exception, name: str) -> InvalidInputError:
        problem, _, row, col, value = err.args
        where = f"{name}[{col}]" if name == "embedding" else f"{name}[{row}, {col}]"
        if problem == 1:
            return InvalidInputError(
                f"{name} must be finite: {where} is {value}; replace NaN/inf or drop that "
                f"item (a rejected call decides nothing)")
        which = name if name == "embedding" else f"{name}[{row}]"
        return InvalidInputError(
            f"{name} must be non-zero under density='similarity' (cosine similarity is "
            f"undefined for a zero vector): {which} is all zeros; drop that item or use "
            f"density='ldf'")

    # --- persistence ------------------------------------------------------------------
    def to_json(self) -> str:
        """The configuration, the gate (:meth:`StreamGate.to_json`) and the window, as JSON
        (no pickle; the window's values as base64 of their little-endian bytes, exact)."""
        with self._lock:
            state = None
            if self._native is not None:
                rows, min_sq, count, nxt = self._native.state()
                state = {"dim": self._native_dim, "count": count, "next": nxt,
                         "rows": _b64(rows), "min_sq": _b64(min_sq)}
            return json.dumps({
                "format": _FORMAT, "version": _VERSION,
                "config": {"window": self._window, "density": self._density, "k": self._k,
                           "beta": self._beta, "min_ldf": self._min_ldf,
                           "count_sparse": self._count_sparse, "dtype": self._dtype},
                "gate": self._gate.to_json(), "window_state": state})

    @classmethod
    def from_json(cls, text: str) -> DensityGate:
        """Restore a DensityGate saved with :meth:`to_json`; it continues exactly where it
        was. Anything else raises :class:`InvalidInputError`."""
        if not isinstance(text, str):
            raise InvalidInputError(
                f"text must be the str DensityGate.to_json() produced, got "
                f"{type(text).__name__}")
        try:
            data = json.loads(text)
        except (ValueError, RecursionError) as err:
            raise _corrupt(f"not JSON ({err})") from None
        if not isinstance(data, dict) or data.get("format") != _FORMAT:
            raise InvalidInputError(f"not a DensityGate state; expected format {_FORMAT!r}")
        if type(data.get("version")) is not int or data["version"] != _VERSION:
            raise InvalidInputError(f"DensityGate state version {data.get('version')!r} is "
                                    f"not supported; this alcore reads version {_VERSION}")
        if set(data) != {"format", "version", "config", "gate", "window_state"}:
            raise _corrupt("unexpected or missing keys at the top level")
        config = data["config"]
        keys = {"window", "density", "k", "beta", "min_ldf", "count_sparse", "dtype"}
        if not isinstance(config, dict) or set(config) != keys:
            raise _corrupt("config keys differ")
        if not isinstance(data["gate"], str):
            raise _corrupt("gate must be the string StreamGate.to_json() produced")
        gate = StreamGate.from_json(data["gate"])
        try:
            made = cls(gate, **config)
        except InvalidInputError as err:
            raise _corrupt(f"config: {err}") from None
        state = data["window_state"]
        if state is None:
            return made
        if not isinstance(state, dict) or set(state) != {"dim", "count", "next", "rows",
                                                         "min_sq"}:
            raise _corrupt("window_state keys differ")
        for name in ("dim", "count", "next"):
            if type(state[name]) is not int:
                raise _corrupt(f"window_state.{name} must be an integer")
        dim = state["dim"]
        if not 1 <= dim <= 2**31:
            raise _corrupt(f"window_state.dim must be >= 1, got {dim}")
        dtype = np.dtype(_DTYPES[made.dtype]).newbyteorder("<")
        rows = _unb64(state["rows"], dtype, made.window * dim, "rows")
        min_sq = _unb64(state["min_sq"], dtype, made.window, "min_sq")
        made._make(dim)
        try:
            made._native.set_state(rows.reshape(made.window, dim), min_sq, state["count"],
                                   state["next"])
        except (ValueError, TypeError) as err:
            raise _corrupt(f"window_state: {err}") from None
        return made


def _b64(a: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(a, a.dtype.newbyteorder("<")).tobytes()
                            ).decode("ascii")


def _unb64(text: Any, dtype: np.dtype, size: int, name: str) -> np.ndarray:
    if not isinstance(text, str):
        raise _corrupt(f"window_state.{name} must be a base64 string")
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (ValueError, UnicodeEncodeError) as err:
        raise _corrupt(f"window_state.{name} is not base64 ({err})") from None
    if len(raw) != size * dtype.itemsize:
        raise _corrupt(f"window_state.{name} holds {len(raw)} bytes, expected "
                       f"{size * dtype.itemsize}")
    out = np.frombuffer(raw, dtype=dtype).astype(dtype.newbyteorder("="))
    if name == "rows" and not np.isfinite(out).all():
        raise _corrupt("window_state.rows must be finite")
    if name == "min_sq" and (np.isnan(out).any() or (out < 0).any()):
        raise _corrupt("window_state.min_sq must be >= 0 (or inf)")
    return out


def _corrupt(what: str) -> InvalidInputError:
    return InvalidInputError(f"corrupt DensityGate state: {what}; pass the text "
                             f"DensityGate.to_json() produced")


__all__ = ["DENSITIES", "DensityGate"]

# decide_one is the per-item call, where one more Python frame is measurable.
v.guard_signatures(globals(), hot=("decide_one",))
