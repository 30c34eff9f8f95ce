"""A model's accuracy on a fixed, representative held-out set, round after round.

Active learning picks unrepresentative items on purpose, so accuracy measured on the
selected (labeled) data says little about deployment. A :class:`HoldoutCurve` records both
each round and warns when they diverge by more than ``divergence`` (the selected-set figure
optimistic or pessimistic) or when held-out accuracy falls for ``window`` rounds in a row.
It stores only numbers, so it round-trips through JSON (``to_dict``/``from_dict``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from alcore import _validation as v
from alcore._errors import InvalidInputError
from alcore.monitor._report import output_path

_KIND = "alcore.monitor.HoldoutCurve"
_VERSION = 1


@dataclass(frozen=True)
class HoldoutPoint:
    """One recorded round.

    Attributes
    ----------
    round : int
        The round number the caller gave (strictly increasing).
    holdout_accuracy : float
        Accuracy on the held-out set, in [0, 1].
    selected_accuracy : float or None
        Accuracy on the selected data, in [0, 1], if given.
    labels_spent : int or None
        Labels bought so far, if given.
    n_holdout, n_selected : int or None
        Sizes of the sets the accuracies were computed on (None when passed as numbers).
    gap : float or None
        ``selected_accuracy - holdout_accuracy``: positive when the selected-set figure is
        optimistic.
    diverged : bool
        ``abs(gap) > divergence``.
    dropping : bool
        Held-out accuracy fell (by more than ``tolerance``) in each of the last ``window``
        rounds.
    warnings : tuple of str
        One sentence per finding of this round.
    """

    round: int
    holdout_accuracy: float
    selected_accuracy: float | None
    labels_spent: int | None
    n_holdout: int | None
    n_selected: int | None
    gap: float | None
    diverged: bool
    dropping: bool
    warnings: tuple[str, ...]

    def to_dict(self) -> dict:
        """The point as JSON-ready values."""
        return {"round": self.round, "holdout_accuracy": self.holdout_accuracy,
                "selected_accuracy": self.selected_accuracy,
                "labels_spent": self.labels_spent, "n_holdout": self.n_holdout,
                "n_selected": self.n_selected, "gap": self.gap, "diverged": self.diverged,
                "dropping": self.dropping, "warnings": list(self.warnings)}


def _accuracy_value(value: Any, name: str) -> float:
    return v.number(value, name, low=0.0, high=1.0,
                    hint="pass the fraction of correct predictions, in [0, 1]")


def _optional_int(value: Any, name: str) -> int | None:
    return None if value is None else v.integer(value, name, low=0)


def _accuracy(model: Any, data: Any, name: str) -> tuple[float, int]:
    """(accuracy of ``model`` on ``data = (X, y)``, len(y))."""
    if not isinstance(data, tuple | list) or len(data) != 2:
        raise InvalidInputError(
            f"{name} must be a pair (X, y) of inputs and true labels, got "
            f"{type(data).__name__}; pass {name}=(X, y)")
    x, y = data
    y = v.as_numpy(y, f"{name} y")
    if y.ndim != 1 or y.size == 0:
        raise InvalidInputError(
            f"{name} y must be a non-empty 1-D vector of true labels, got shape {y.shape}"
            + ("; for one-hot labels pass y.argmax(axis=1)" if y.ndim == 2 else ""))
    if y.dtype.kind == "f" and not np.isfinite(y).all():
        raise InvalidInputError(
            f"{name} y must be finite: y[{int(np.flatnonzero(~np.isfinite(y))[0])}] is not; "
            f"drop the items without a true label")
    predict = getattr(model, "predict", None)
    if predict is None:
        if not callable(model):
            raise InvalidInputError(
                f"model must have a predict method (or be a callable X -> labels), got "
                f"{type(model).__name__}")
        predict = model
    predicted = v.as_numpy(predict(x), f"model.predict({name} X)")
    if predicted.shape != y.shape:
        hint = ("; it looks like probabilities: pass a model whose predict returns labels"
                if predicted.ndim == 2 and predicted.shape[0] == y.shape[0] else "")
        raise InvalidInputError(
            f"model.predict({name} X) returned shape {predicted.shape} for {y.shape[0]} "
            f"true labels; it must return one label per row, shape ({y.shape[0]},){hint}")
    kinds = {"b": "numbers", "i": "numbers", "u": "numbers", "f": "numbers",
             "U": "strings", "S": "strings"}
    got, want = kinds.get(predicted.dtype.kind), kinds.get(y.dtype.kind)
    if got and want and got != want:
        # Numbers never equal strings: the accuracy would be 0 without a word.
        raise InvalidInputError(
            f"model.predict({name} X) returned {got} (dtype {predicted.dtype}) but {name} y "
            f"holds {want} (dtype {y.dtype}); predictions and true labels must use the same "
            f"labels (e.g. map class indices to names with numpy.asarray(names)[predicted])")
    return float(np.mean(predicted == y)), int(y.shape[0])


class HoldoutCurve:
    """Held-out accuracy against selected-set accuracy, round after round.

    Parameters
    ----------
    divergence : float in (0, 1], default 0.1
        A round is ``diverged`` when its selected-set and held-out accuracies differ by
        more than this.
    window : int >= 1, default 3
        Warn when held-out accuracy has fallen in each of the last ``window`` rounds.
    tolerance : float in [0, 1), default 0.0
        A fall of at most this much does not count (noise of a small held-out set).

    Examples
    --------
    >>> curve = HoldoutCurve(divergence=0.1)
    >>> curve.record(1, holdout_accuracy=0.80, selected_accuracy=0.82).diverged
    False
    """

    def __init__(self, *, divergence: float = 0.1, window: int = 3, tolerance: float = 0.0):
        self._divergence = v.number(divergence, "divergence", low=0.0, high=1.0,
                                    low_open=True, hint="e.g. divergence=0.1")
        self._window = v.count(window, "window")
        self._tolerance = v.number(tolerance, "tolerance", low=0.0, high=1.0, high_open=True,
                                   hint="e.g. tolerance=0.0 (every fall counts)")
        self._points: list[HoldoutPoint] = []
        self._falls = 0  # consecutive rounds in which held-out accuracy fell

    @property
    def divergence(self) -> float:
        return self._divergence

    @property
    def window(self) -> int:
        return self._window

    @property
    def tolerance(self) -> float:
        return self._tolerance

    def record(self, round: int, *, holdout_accuracy: float | None = None,
               selected_accuracy: float | None = None, model: Any = None,
               holdout: Any = None, selected: Any = None,
               labels_spent: int | None = None) -> HoldoutPoint:
        """Record one round and return it with its findings.

        Either pass the accuracies, or ``model`` (with ``predict``, or a callable X ->
        labels) and the data, ``holdout=(X, y)`` and optionally ``selected=(X, y)``; the
        accuracies are computed as the fraction of ``predict(X) == y``. Mixing is allowed
        per accuracy (e.g. ``holdout_accuracy=`` and ``model=, selected=``), giving both for
        one accuracy is not.

        Parameters
        ----------
        round : int >= 0
            The round number, greater than the last one recorded.
        holdout_accuracy : float in [0, 1], optional
            Accuracy on the fixed held-out set (required unless ``model`` and ``holdout``).
        selected_accuracy : float in [0, 1], optional
            Accuracy on the selected data: what one would report from the labeled set alone
            (e.g. its cross-validated accuracy, or the accuracy on the batch just labeled,
            before training on it).
        model : object, optional
            A fitted model with ``predict(X)`` returning one label per row.
        holdout, selected : tuple (X, y), optional
            Inputs and true labels.
        labels_spent : int >= 0, optional
            Labels bought so far (non-decreasing); the plot's x axis when every round has it.

        Returns
        -------
        HoldoutPoint

        Raises
        ------
        InvalidInputError
            A round not after the last, an accuracy given twice or not at all, data without a
            model, predictions of the wrong shape. A rejected call records nothing.
        """
        r = v.integer(round, "round", low=0)
        if self._points and r <= self._points[-1].round:
            raise InvalidInputError(
                f"round must be greater than the last recorded round "
                f"({self._points[-1].round}), got {r}; record rounds in order")
        spent = _optional_int(labels_spent, "labels_spent")
        if (holdout is not None or selected is not None) and model is None:
            raise InvalidInputError(
                "holdout=/selected= data need model= to compute an accuracy; pass model=, or "
                "pass the accuracies as holdout_accuracy=/selected_accuracy=")
        if holdout_accuracy is not None and holdout is not None:
            raise InvalidInputError(
                "pass holdout_accuracy= or holdout=(X, y) with model=, not both")
        if selected_accuracy is not None and selected is not None:
            raise InvalidInputError(
                "pass selected_accuracy= or selected=(X, y) with model=, not both")
        if model is not None and holdout is None and selected is None:
            raise InvalidInputError(
                "model= needs data to score: pass holdout=(X, y) (and optionally "
                "selected=(X, y))")
        if holdout_accuracy is None and holdout is None:
            raise InvalidInputError(
                "record needs the held-out accuracy: pass holdout_accuracy=, or model= with "
                "holdout=(X, y)")
        n_holdout = n_selected = None
        if holdout is not None:
            h_acc, n_holdout = _accuracy(model, holdout, "holdout")
        else:
            h_acc = _accuracy_value(holdout_accuracy, "holdout_accuracy")
        if selected is not None:
            s_acc, n_selected = _accuracy(model, selected, "selected")
        else:
            s_acc = (None if selected_accuracy is None
                     else _accuracy_value(selected_accuracy, "selected_accuracy"))
        return self._add(r, h_acc, s_acc, spent, n_holdout, n_selected)

    def _add(self, r: int, h_acc: float, s_acc: float | None, spent: int | None,
             n_holdout: int | None, n_selected: int | None) -> HoldoutPoint:
        """Append a validated round (``record`` and ``from_dict`` both end here)."""
        previous = self._points[-1] if self._points else None
        last_spent = next((p.labels_spent for p in reversed(self._points)
                           if p.labels_spent is not None), None)
        if spent is not None and last_spent is not None and spent < last_spent:
            raise InvalidInputError(
                f"labels_spent must not decrease: {spent} after {last_spent}; pass the total "
                f"labels bought so far")
        notes = []
        gap = None if s_acc is None else s_acc - h_acc
        diverged = gap is not None and abs(gap) > self._divergence
        if diverged:
            if gap > 0:
                notes.append(
                    f"round {r}: selected-set accuracy is optimistic: {s_acc:.3f} on the "
                    f"selected data against {h_acc:.3f} on the held-out set (gap "
                    f"{gap:+.3f}, beyond divergence {self._divergence:g}); the labeled set "
                    f"no longer represents deployment data, report the held-out figure")
            else:
                notes.append(
                    f"round {r}: selected-set accuracy is pessimistic: {s_acc:.3f} on the "
                    f"selected data against {h_acc:.3f} on the held-out set (gap "
                    f"{gap:+.3f}, beyond divergence {self._divergence:g}); the selection "
                    f"concentrates on hard items, as uncertainty sampling does, so the "
                    f"held-out figure is the one to report")
        falls = self._falls
        if previous is not None:
            falls = falls + 1 if h_acc < previous.holdout_accuracy - self._tolerance else 0
        dropping = falls >= self._window
        if dropping:
            start = self._points[-falls]
            notes.append(
                f"round {r}: held-out accuracy fell {falls} rounds in a row, from "
                f"{start.holdout_accuracy:.3f} at round {start.round} to {h_acc:.3f}; the "
                f"model is getting worse on deployment data: audit the selection and check "
                f"the new labels")
        if (n_holdout is not None and previous is not None and previous.n_holdout is not None
                and n_holdout != previous.n_holdout):
            notes.append(
                f"round {r}: the held-out set has {n_holdout} items, {previous.n_holdout} at "
                f"round {previous.round}; keep one fixed held-out set so rounds compare")
        point = HoldoutPoint(r, h_acc, s_acc, spent, n_holdout, n_selected, gap, diverged,
                             dropping, tuple(notes))
        self._points.append(point)
        self._falls = falls
        return point

    def __len__(self) -> int:
        return len(self._points)

    def __repr__(self) -> str:
        return (f"HoldoutCurve({len(self)} rounds, divergence={self._divergence:g}, "
                f"window={self._window}, {len(self.warnings)} warnings)")

    @property
    def points(self) -> tuple[HoldoutPoint, ...]:
        """Every recorded round, in order."""
        return tuple(self._points)

    @property
    def rounds(self) -> np.ndarray:
        """int64 (n_rounds,)."""
        return np.array([p.round for p in self._points], dtype=np.int64)

    @property
    def holdout_accuracy(self) -> np.ndarray:
        """float64 (n_rounds,)."""
        return np.array([p.holdout_accuracy for p in self._points], dtype=np.float64)

    @property
    def selected_accuracy(self) -> np.ndarray:
        """float64 (n_rounds,), NaN where not recorded."""
        return np.array([np.nan if p.selected_accuracy is None else p.selected_accuracy
                         for p in self._points], dtype=np.float64)

    @property
    def diverged(self) -> np.ndarray:
        """bool (n_rounds,): selected-set accuracy beyond ``divergence`` of held-out."""
        return np.array([p.diverged for p in self._points], dtype=bool)

    @property
    def dropping(self) -> np.ndarray:
        """bool (n_rounds,): held-out accuracy fell in each of the last ``window`` rounds."""
        return np.array([p.dropping for p in self._points], dtype=bool)

    @property
    def warnings(self) -> list[str]:
        """Every round's warnings, in order, each starting with its round."""
        return [w for p in self._points for w in p.warnings]

    def to_dict(self) -> dict:
        """The settings and every round as JSON-ready values."""
        return {"kind": _KIND, "version": _VERSION, "divergence": self._divergence,
                "window": self._window, "tolerance": self._tolerance,
                "points": [p.to_dict() for p in self._points]}

    @classmethod
    def from_dict(cls, data: Any) -> HoldoutCurve:
        """Rebuild a curve from :meth:`to_dict`'s output (e.g. after ``json.loads``).

        The flags and warnings are recomputed from the stored numbers, so they are those
        this version of alcore gives.
        """
        if not isinstance(data, dict):
            raise InvalidInputError(
                f"data must be the dict HoldoutCurve.to_dict() made, got "
                f"{type(data).__name__}")
        version = data.get("version")
        if data.get("kind") != _KIND or type(version) is not int or version != _VERSION:
            raise InvalidInputError(
                f"data is not a HoldoutCurve of version {_VERSION} (kind "
                f"{v.shown(data.get('kind'))}, version {v.shown(data.get('version'))}); pass "
                f"what HoldoutCurve.to_dict() returned")
        missing = [k for k in ("divergence", "window", "tolerance", "points") if k not in data]
        if missing:
            raise InvalidInputError(f"data lacks {', '.join(missing)}; pass what "
                                    f"HoldoutCurve.to_dict() returned")
        curve = cls(divergence=data["divergence"], window=data["window"],
                    tolerance=data["tolerance"])
        points = data["points"]
        if not isinstance(points, list):
            raise InvalidInputError(f"data['points'] must be a list, got "
                                    f"{type(points).__name__}")
        for i, p in enumerate(points):
            where = f"data['points'][{i}]"
            if not isinstance(p, dict) or "round" not in p or "holdout_accuracy" not in p:
                raise InvalidInputError(
                    f"{where} must be a dict with round and holdout_accuracy, got "
                    f"{v.shown(p)}")
            r = v.integer(p["round"], f"{where}['round']", low=0)
            if curve._points and r <= curve._points[-1].round:
                raise InvalidInputError(
                    f"{where}['round'] is {r}, not after round {curve._points[-1].round}; "
                    f"rounds must increase")
            s = p.get("selected_accuracy")
            curve._add(r, _accuracy_value(p["holdout_accuracy"], f"{where}['holdout_accuracy']"),
                       None if s is None else _accuracy_value(s, f"{where}['selected_accuracy']"),
                       _optional_int(p.get("labels_spent"), f"{where}['labels_spent']"),
                       _optional_int(p.get("n_holdout"), f"{where}['n_holdout']"),
                       _optional_int(p.get("n_selected"), f"{where}['n_selected']"))
        return curve

    def plot(self, path: str | os.PathLike) -> Path:
        """Write a PNG of held-out and selected-set accuracy per round (or per label spent,
        when every round has ``labels_spent``), diverged and dropping rounds marked.

        Needs matplotlib (imported here; the Agg canvas, no global backend change).

        Returns
        -------
        pathlib.Path
            The file written.
        """
        out = output_path(path)
        if not self._points:
            raise InvalidInputError("the curve has no rounds to plot; record() one first")
        try:
            from matplotlib.backends.backend_agg import FigureCanvasAgg
            from matplotlib.figure import Figure
        except ImportError:
            raise ImportError("HoldoutCurve.plot needs matplotlib: pip install matplotlib "
                              "(or 'alcore[full]')") from None
        by_labels = all(p.labels_spent is not None for p in self._points)
        x = (np.array([p.labels_spent for p in self._points]) if by_labels else self.rounds)
        held, chosen = self.holdout_accuracy, self.selected_accuracy
        figure = Figure(figsize=(6.4, 4.0), dpi=100)
        FigureCanvasAgg(figure)
        ax = figure.add_subplot()
        ax.plot(x, held, "o-", color="tab:blue", label="held-out accuracy")
        measured = ~np.isnan(chosen)
        if measured.any():  # joined across rounds without a selected-set figure
            ax.plot(x[measured], chosen[measured], "s--", color="tab:gray",
                    label="selected-set accuracy")
        div, drop = self.diverged, self.dropping
        if div.any():
            ax.scatter(x[div], held[div], s=120, facecolors="none", edgecolors="tab:red",
                       linewidths=2, label=f"diverged (> {self._divergence:g})", zorder=3)
        if drop.any():
            ax.scatter(x[drop], held[drop], marker="v", s=80, color="tab:orange",
                       label=f"fell {self._window} rounds in a row", zorder=3)
        ax.set_xlabel("labels spent" if by_labels else "round")
        ax.set_ylabel("accuracy")
        ax.set_title("Held-out vs selected-set accuracy")
        ax.grid(alpha=0.3)
        ax.legend(loc="best", fontsize="small")
        figure.tight_layout()
        try:
            figure.savefig(out, format="png")
        except OSError as err:
            raise InvalidInputError(f"{out}: could not be written ({err})") from None
        return out


def _whole_as_float(values: Any, name: str) -> Any:
    """Integer accuracies (1 and 0, as record() takes them) as float64."""
    arr = v.as_numpy(values, name)
    return arr.astype(np.float64) if arr.dtype.kind in "iu" else arr


def holdout_curve(holdout_accuracy: Any, *, selected_accuracy: Any = None, rounds: Any = None,
                  labels_spent: Any = None, divergence: float = 0.1, window: int = 3,
                  tolerance: float = 0.0) -> HoldoutCurve:
    """A :class:`HoldoutCurve` from a whole history at once.

    Parameters
    ----------
    holdout_accuracy : array-like of float, shape (R,)
        Held-out accuracy per round, in [0, 1].
    selected_accuracy : array-like of float, shape (R,), optional
        Selected-set accuracy per round; NaN where not measured.
    rounds : array-like of int, shape (R,), optional
        Round numbers, increasing; default 0..R-1.
    labels_spent : array-like of int, shape (R,), optional
        Labels bought by each round.
    divergence, window, tolerance
        As for :class:`HoldoutCurve`.

    Returns
    -------
    HoldoutCurve
    """
    curve = HoldoutCurve(divergence=divergence, window=window, tolerance=tolerance)
    held = v.float_array(_whole_as_float(holdout_accuracy, "holdout_accuracy"),
                         "holdout_accuracy")
    if held.ndim != 1 or held.size == 0:
        raise InvalidInputError(
            f"holdout_accuracy must be a non-empty 1-D sequence of accuracies, got shape "
            f"{held.shape}")
    n = held.shape[0]

    def column(values: Any, name: str, kind: str) -> list:
        if values is None:
            return [None] * n
        arr = (v.float_array(_whole_as_float(values, name), name) if kind == "f"
               else v.as_numpy(values, name))
        if arr.shape != (n,):
            raise InvalidInputError(
                f"{name} must have shape ({n},) like holdout_accuracy, got {arr.shape}")
        if kind == "f":
            return [None if x != x else x for x in arr.tolist()]
        if arr.dtype.kind not in "iu":
            raise InvalidInputError(f"{name} must hold integers, got dtype {arr.dtype}")
        return arr.tolist()

    chosen = column(selected_accuracy, "selected_accuracy", "f")
    numbers = column(rounds, "rounds", "i") if rounds is not None else list(range(n))
    spent = column(labels_spent, "labels_spent", "i")
    for i in range(n):
        curve.record(numbers[i], holdout_accuracy=held[i], selected_accuracy=chosen[i],
                     labels_spent=spent[i])
    return curve


__all__ = ["HoldoutCurve", "HoldoutPoint", "holdout_curve"]

v.guard_signatures(globals())
