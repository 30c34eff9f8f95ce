"""AuditReport: how far a selection lies from its pool, metric by metric, with warnings.

Every metric is an effect size: how different, not how surprising (a selection is
non-random by design, so a p-value would only confirm it). Each has a threshold; crossing
it adds a sentence to ``warnings``. Sampling noise alone moves every metric, more for small
selections: ``random_reference`` holds each metric for a random selection of the same size
(drawn from the sketch's sample), the floor to read a value against. Below a few hundred
items that floor can approach the thresholds.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from alcore import _validation as v
from alcore._errors import InvalidInputError

DEFAULT_THRESHOLDS: dict[str, float] = {
    # PSI above 0.25 is the customary "major shift" (0.1-0.25: moderate).
    "psi": 0.25,
    # Largest gap between the CDFs; a 1000-item random selection stays below about 0.05.
    "ks": 0.2,
    # RFF estimate of the MMD (Gaussian kernel, median-heuristic bandwidth); a random
    # 1000-item selection gives about 0.03, one cluster of ten 0.5 and more.
    "mmd": 0.1,
    # Warn BELOW it: share of pool rows in clusters holding no selected item is above 10 %.
    "cluster_coverage": 0.9,
    # Total variation between the cluster histograms (0: same shares, 1: disjoint).
    "cluster_tvd": 0.25,
    # Total variation between the predicted-class histograms.
    "class_tvd": 0.2,
    # The selection's k-center radius over that of the random reference selection.
    "radius_ratio": 2.0,
}
"""Default threshold of each metric (see :class:`AuditReport`)."""


def resolve_thresholds(thresholds: Any) -> dict[str, float]:
    """The defaults, overridden by ``thresholds`` (a dict of non-negative numbers)."""
    merged = dict(DEFAULT_THRESHOLDS)
    if thresholds is None:
        return merged
    if not isinstance(thresholds, dict):
        raise InvalidInputError(
            f"thresholds must be a dict such as {{'psi': 0.1}}, got "
            f"{type(thresholds).__name__}")
    unknown = sorted(str(k) for k in thresholds if k not in DEFAULT_THRESHOLDS)
    if unknown:
        raise InvalidInputError(
            f"thresholds has unknown metric(s) {', '.join(map(repr, unknown))}; the metrics "
            f"are {', '.join(DEFAULT_THRESHOLDS)}")
    for name, value in thresholds.items():
        merged[name] = v.number(value, f"thresholds[{name!r}]", low=0.0)
    return merged


def file_path(path: Any) -> Path:
    """``path`` as a Path: a str or os.PathLike, else an InvalidInputError."""
    if not isinstance(path, str | os.PathLike):
        raise InvalidInputError(
            f"path must be a file path (str or pathlib.Path), got {type(path).__name__}")
    return Path(path)


def output_path(path: Any) -> Path:
    """``path`` as a Path to write (replacing a file there) under alcore's rules for every
    file it writes (:func:`alcore.io.check_target`)."""
    from alcore.io import check_target

    return check_target(file_path(path), overwrite=True)


def _features(values: np.ndarray, limit: float) -> tuple[int, list[int]]:
    above = np.flatnonzero(values > limit)
    worst = above[np.argsort(-values[above], kind="stable")]
    return len(above), [int(j) for j in worst[:5]]


@dataclass(eq=False)
class AuditReport:
    """What :meth:`alcore.monitor.PoolSketch.audit` found (d features, K clusters, C
    classes).

    Attributes
    ----------
    n_selected, n_pool, n_sample : int
        Selected items, pool rows, sketch sample rows.
    psi : float64 (d,)
        Population stability index per feature over the sketch's quantile bins:
        ``sum_b (q_b - p_b) ln(q_b / p_b)`` with p the pool's share of bin b, q the
        selection's, both raised to at least ``PSI_EPSILON`` (1e-4) so an empty bin is
        finite. Threshold ``psi`` (0.25) on the largest.
    ks : float64 (d,)
        Kolmogorov-Smirnov distance per feature, ``sup |F_pool - F_sel|``, the pool's CDF
        from the sketch's sample (exact when the sample holds the whole pool). Threshold
        ``ks`` (0.2) on the largest.
    mmd : float
        Maximum mean discrepancy, ``|mean phi(pool) - mean phi(selection)|`` over the
        sketch's random Fourier features phi. Threshold ``mmd`` (0.1).
    cluster_coverage : float
        Share of pool rows in clusters holding at least one selected item (clusters
        weighted by their size, so a tiny cluster left out costs little). Warns BELOW
        ``cluster_coverage`` (0.9). ``clusters_covered`` of ``clusters_nonempty`` counts
        them unweighted.
    cluster_tvd : float
        Total variation distance ``0.5 sum |p_k - q_k|`` between the pool's cluster shares
        ``pool_cluster_share`` (K,) and the selection's ``selected_cluster_share`` (K,).
        Threshold ``cluster_tvd`` (0.25).
    class_tvd : float or None
        The same between the predicted-class shares (``pool_class_share``,
        ``selected_class_share``), when both sides have predictions. Threshold
        ``class_tvd`` (0.2).
    kcenter_radius : float
        The largest distance from a sketch sample row (of its ``radius_rows``: up to
        20 000 of them, a uniform sample of the pool) to its nearest selected item (how
        far the selection leaves some of the pool uncovered); ``kcenter_farthest_row``
        is that row's pool row number. Threshold ``radius_ratio`` (2) on its ratio to
        ``random_reference["kcenter_radius"]`` (skipped when that is 0: a selection as
        large as the sample).
    random_reference : dict of str to float
        ``psi_max``, ``ks_max``, ``mmd``, ``cluster_coverage``, ``cluster_tvd``,
        ``class_tvd`` (None without predictions) and ``kcenter_radius`` of a seeded random
        selection of the same size from the sketch's sample.
    thresholds : dict of str to float
        The thresholds applied.
    warnings : list of str
        One sentence per threshold crossed; empty when the selection passes.
    """

    n_selected: int
    n_pool: int
    n_sample: int
    psi: np.ndarray
    ks: np.ndarray
    mmd: float
    cluster_coverage: float
    clusters_covered: int
    clusters_nonempty: int
    cluster_tvd: float
    pool_cluster_share: np.ndarray
    selected_cluster_share: np.ndarray
    class_tvd: float | None
    pool_class_share: np.ndarray | None
    selected_class_share: np.ndarray | None
    kcenter_radius: float
    kcenter_farthest_row: int
    random_reference: dict[str, Any]
    thresholds: dict[str, float]
    warnings: list[str] = field(init=False)

    def __post_init__(self) -> None:
        self.warnings = self._warnings()

    @property
    def passed(self) -> bool:
        """Whether no threshold is crossed."""
        return not self.warnings

    @property
    def radius_ratio(self) -> float | None:
        """``kcenter_radius`` over the random reference's (None when that is 0)."""
        ref = self.random_reference["kcenter_radius"]
        return self.kcenter_radius / ref if ref > 0 else None

    def _warnings(self) -> list[str]:
        t, out = self.thresholds, []
        ref = self.random_reference
        for name, values, what in (
                ("psi", self.psi, "PSI"), ("ks", self.ks, "KS distance")):
            count, worst = _features(values, t[name])
            if count:
                out.append(
                    f"{what} above {t[name]:g} on {count} of {len(values)} features (largest "
                    f"{float(values[worst[0]]):.3g}, feature {worst[0]}; features "
                    f"{', '.join(map(str, worst))}{' ...' if count > len(worst) else ''}): "
                    f"the selection's distribution of these features differs from the "
                    f"pool's (a random selection of the same size: "
                    f"{ref[name + '_max']:.3g} at most)")
        if self.mmd > t["mmd"]:
            out.append(
                f"MMD {self.mmd:.3g} above {t['mmd']:g}: the selection as a whole is "
                f"distributed unlike the pool (a random selection of the same size: "
                f"{ref['mmd']:.3g})")
        if self.cluster_coverage < t["cluster_coverage"]:
            out.append(
                f"cluster coverage {self.cluster_coverage:.3g} below "
                f"{t['cluster_coverage']:g}: {self.clusters_nonempty - self.clusters_covered}"
                f" of {self.clusters_nonempty} pool clusters, {1 - self.cluster_coverage:.1%}"
                f" of the pool, hold no selected item")
        if self.cluster_tvd > t["cluster_tvd"]:
            gap = self.selected_cluster_share - self.pool_cluster_share
            over, under = int(np.argmax(gap)), int(np.argmin(gap))
            out.append(
                f"cluster histogram distance (TVD) {self.cluster_tvd:.3g} above "
                f"{t['cluster_tvd']:g}: cluster {over} holds "
                f"{self.selected_cluster_share[over]:.1%} of the selection and "
                f"{self.pool_cluster_share[over]:.1%} of the pool, cluster {under} "
                f"{self.selected_cluster_share[under]:.1%} and "
                f"{self.pool_cluster_share[under]:.1%} (a random selection of the same "
                f"size: {ref['cluster_tvd']:.3g})")
        if self.class_tvd is not None and self.class_tvd > t["class_tvd"]:
            gap = self.selected_class_share - self.pool_class_share
            over = int(np.argmax(gap))
            out.append(
                f"predicted-class distance (TVD) {self.class_tvd:.3g} above "
                f"{t['class_tvd']:g}: class {over} is predicted for "
                f"{self.selected_class_share[over]:.1%} of the selection and "
                f"{self.pool_class_share[over]:.1%} of the pool")
        ratio = self.radius_ratio
        if ratio is not None and ratio > t["radius_ratio"]:
            out.append(
                f"k-center radius {self.kcenter_radius:.4g} is {ratio:.3g} times a random "
                f"selection's ({ref['kcenter_radius']:.4g}), above {t['radius_ratio']:g}: "
                f"pool row {self.kcenter_farthest_row} lies that far from every selected "
                f"item")
        return out

    def to_dict(self) -> dict[str, Any]:
        """Every field as plain Python values (floats, ints, lists, None): ready for
        ``json.dumps``."""
        def plain(value: Any) -> Any:
            if isinstance(value, np.ndarray):
                return value.tolist()
            if isinstance(value, np.generic):
                return value.item()
            if isinstance(value, dict):
                return {str(k): plain(x) for k, x in value.items()}
            if isinstance(value, list):
                return [plain(x) for x in value]
            return value

        out = {name: plain(getattr(self, name)) for name in self.__dataclass_fields__}
        out["passed"] = self.passed
        out["radius_ratio"] = self.radius_ratio
        return out

    def plot(self, path: str | os.PathLike) -> None:
        """Write a PNG to ``path``: the pool's and the selection's share of every cluster
        (and of every predicted class, when known), and the PSI of every feature against
        its threshold. matplotlib (imported here, on its Agg canvas; pyplot's state is not
        touched)."""
        path = output_path(path)
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        panels = 3 if self.class_tvd is not None else 2
        fig = Figure(figsize=(10, 3.2 * panels), layout="constrained")
        FigureCanvasAgg(fig)
        axes = fig.subplots(panels, 1)
        _bars(axes[0], self.pool_cluster_share, self.selected_cluster_share, "cluster",
              f"Share per cluster (coverage {self.cluster_coverage:.2f}, TVD "
              f"{self.cluster_tvd:.3f})")
        if self.class_tvd is not None:
            _bars(axes[1], self.pool_class_share, self.selected_class_share,
                  "predicted class", f"Share per predicted class (TVD {self.class_tvd:.3f})")
        ax = axes[-1]
        limit = self.thresholds["psi"]
        colours = ["tab:red" if p > limit else "tab:blue" for p in self.psi]
        ax.bar(np.arange(len(self.psi)), self.psi, color=colours)
        ax.axhline(limit, color="tab:red", linestyle="--", linewidth=1,
                   label=f"threshold {limit:g}")
        ax.set_xlabel("feature")
        ax.set_ylabel("PSI")
        ax.set_title(f"PSI per feature ({self.n_selected} selected of {self.n_pool})")
        ax.legend(loc="upper right")
        try:
            fig.savefig(path, format="png", dpi=100)
        except OSError as err:
            raise InvalidInputError(f"{path}: could not be written ({err})") from None

    def __repr__(self) -> str:
        verdict = "passed" if self.passed else f"{len(self.warnings)} warning(s)"
        return (f"AuditReport({self.n_selected} selected of {self.n_pool}: psi max "
                f"{float(self.psi.max()):.3g}, ks max {float(self.ks.max()):.3g}, mmd "
                f"{self.mmd:.3g}, coverage {self.cluster_coverage:.3g}, cluster tvd "
                f"{self.cluster_tvd:.3g}, radius {self.kcenter_radius:.4g}; {verdict})")


def _bars(ax: Any, pool: np.ndarray, selected: np.ndarray, what: str, title: str) -> None:
    at = np.arange(len(pool))
    width = 0.4
    ax.bar(at - width / 2, pool, width, label="pool", color="tab:gray")
    ax.bar(at + width / 2, selected, width, label="selection", color="tab:orange")
    ax.set_xlabel(what)
    ax.set_ylabel("share")
    ax.set_title(title)
    if len(pool) <= 40:
        ax.set_xticks(at)
    ax.legend(loc="upper right")


__all__ = ["DEFAULT_THRESHOLDS", "AuditReport", "file_path", "resolve_thresholds"]

v.guard_signatures(globals())
