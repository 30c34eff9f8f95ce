"""Pool-based simulation: learning curves of selection strategies on a labeled dataset.

Each run hides the labels of a pool, starts from a few random labels, and for ``rounds``
rounds retrains the estimator, measures accuracy on a held-out test split and lets the
strategy pick ``batch`` more items. Seed s fixes the split and the first labels for every
strategy alike, so strategies are compared seed by seed (paired): the summary gives each
area under the learning curve (AULC) with a 95 % confidence interval over seeds, and the
difference of each strategy from the best with its own 95 % interval (Student's t on the
per-seed differences), saying when two strategies are not distinguishable.

Needs scikit-learn (with SciPy) and matplotlib for the plot: ``pip install 'alcore[full]'``.
The ``skactiveml-*`` strategies are references computed by scikit-activeml, used only
when it is installed (``pip install scikit-activeml``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

import alcore
from alcore._errors import InvalidInputError

Strategy = Callable[[np.ndarray, np.ndarray, np.ndarray, int, int], np.ndarray]
DATASETS = ("digits", "breast_cancer", "wine")
_FILES = ("curves.json", "summary.txt", "learning_curves.png")


def _alcore_strategy(**kwargs: Any) -> Strategy:
    def pick(probs, features, labeled_mask, batch, seed):
        return alcore.select(probs, batch, embeddings=features, labeled=labeled_mask,
                             seed=seed, **kwargs).indices
    return pick


def _random(probs, features, labeled_mask, batch, seed):
    rng = np.random.default_rng(seed)
    return rng.choice(np.flatnonzero(~labeled_mask), size=batch, replace=False)


def _skactiveml(method: str) -> Strategy:
    def pick(probs, features, labeled_mask, batch, seed):
        from skactiveml.pool import uncertainty_scores

        scores = uncertainty_scores(probs, method=method)
        scores[labeled_mask] = -np.inf
        return np.argsort(-scores, kind="stable")[:batch]
    return pick


STRATEGIES: dict[str, Strategy] = {
    "random": _random,
    "margin": _alcore_strategy(score="margin", diversity=None),
    "entropy": _alcore_strategy(score="entropy", diversity=None),
    "margin+kcenter": _alcore_strategy(score="margin", diversity="kcenter", candidates=5),
    "margin+knn-density": _alcore_strategy(score="margin", density="knn", diversity=None),
    "default": _alcore_strategy(),
    "skactiveml-margin": _skactiveml("margin_sampling"),
    "skactiveml-entropy": _skactiveml("entropy"),
}
"""Strategy name -> pick(probs, features, labeled_mask, batch, seed). ``default`` is
:func:`alcore.select` with its defaults (margin, then k-center over the 5 x k best-margin
candidates, since the simulations give embeddings)."""


def has_skactiveml() -> bool:
    """Whether scikit-activeml (the reference strategies' library) is installed."""
    try:
        import skactiveml  # noqa: F401
    except ImportError:
        return False
    return True


def check_strategies(strategies: list[str]) -> list[str]:
    """Refuse, before any work, unknown names and ``skactiveml-*`` without scikit-activeml."""
    if not strategies:
        raise InvalidInputError(f"strategies is empty; choose from {', '.join(STRATEGIES)}")
    for name in strategies:
        if name not in STRATEGIES:
            alcore_ones = [s for s in STRATEGIES if not s.startswith("skactiveml-")]
            raise InvalidInputError(
                f"unknown strategy {name!r}; choose from {', '.join(alcore_ones)} (and "
                f"skactiveml-margin, skactiveml-entropy with scikit-activeml installed)")
    if len(set(strategies)) != len(strategies):
        raise InvalidInputError(f"strategies lists a name twice: {', '.join(strategies)}")
    needs = [s for s in strategies if s.startswith("skactiveml-")]
    if needs and not has_skactiveml():
        raise InvalidInputError(
            f"strategy {needs[0]!r} is a reference computed by scikit-activeml, which is not "
            f"installed: pip install scikit-activeml, or leave it out of strategies=")
    return strategies


def check_out(out: str | Path, *, overwrite: bool = False,
              files: tuple[str, ...] = _FILES) -> Path:
    """Check, before any work, that ``out`` can receive the results (the ``files`` an
    experiment writes): its parent folder exists, and an existing ``out`` is replaced only
    with ``overwrite``."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InvalidInputError(f"{out} is a file; name a folder for the results")
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise InvalidInputError(
            f"{out} exists; pass overwrite=True to replace its files ({', '.join(files)})")
    if not out.parent.is_dir():
        raise InvalidInputError(
            f"{out}: the folder {str(out.parent)!r} does not exist; create it first")
    return out


def _need(module: str) -> None:
    import importlib

    try:
        importlib.import_module(module)
    except ImportError:
        raise ImportError(
            f"alcore simulate needs {module.split('.')[0]}: pip install 'alcore[full]'"
        ) from None


def load_dataset(name: str, label_column: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(X float64, y) of a scikit-learn toy dataset (digits, breast_cancer, wine) or a
    table file (Parquet, CSV, NDJSON, Arrow) whose ``label_column`` holds the labels and
    whose other columns are numeric features."""
    if name in DATASETS:
        _need("sklearn.datasets")
        import sklearn.datasets

        return getattr(sklearn.datasets, f"load_{name}")(return_X_y=True)
    from alcore import io

    path = Path(name)
    if not path.is_file():
        raise InvalidInputError(
            f"dataset {name!r} is neither a built-in dataset ({', '.join(DATASETS)}) nor an "
            f"existing file")
    table = io.read_table(path)
    columns = ", ".join(table.columns[:20])
    if label_column is None:
        raise InvalidInputError(
            f"{path.name}: name its label column with label_column= (columns are {columns})")
    if label_column not in table.columns:
        raise InvalidInputError(
            f"{path.name} has no label column {label_column!r}; columns are {columns}")
    features = table.drop(label_column)
    text = [c for c, d in features.schema.items() if not d.is_numeric()]
    if text:
        raise InvalidInputError(
            f"{path.name}: feature columns must be numeric, {', '.join(text[:5])} are not; "
            f"drop them from the file")
    if features.width == 0:
        raise InvalidInputError(f"{path.name} has no feature columns besides {label_column!r}")
    if table[label_column].null_count() or any(features.null_count().row(0)):
        raise InvalidInputError(f"{path.name} has empty cells; fill them in or drop those rows")
    y = table[label_column].to_numpy()
    classes, counts = np.unique(y, return_counts=True)
    if len(classes) < 2 or counts.min() < 2:
        raise InvalidInputError(
            f"{path.name}: the labels need at least 2 classes with 2 items each (got "
            f"{len(classes)} classes, the smallest with {counts.min()} items)")
    return features.to_numpy().astype(np.float64), y


def run(x: np.ndarray, y: np.ndarray, strategies: list[str], rounds: int = 10,
        batch: int = 10, seeds: int = 10, initial: int = 10,
        make_estimator: Callable[[], Any] | None = None) -> dict[str, Any]:
    """Learning curves of each strategy, over seeds.

    Returns a dict: ``labels`` (labels after each round), ``full_accuracy`` (training on the
    whole pool), ``seeds``, ``best`` (the strategy with the highest mean AULC), and per
    strategy ``curves`` (seeds x rounds accuracies), ``mean``/``std`` (over seeds),
    ``aulc`` (mean over seeds of each curve's mean), ``aulc_per_seed``, ``aulc_ci`` (95 %
    interval of the mean AULC, None with one seed), ``vs_best`` (the paired difference
    from the best: ``difference``, ``ci``, ``distinguishable``), ``final``,
    ``labels_to_98pct`` and ``select_seconds`` (mean per round).
    """
    check_strategies(strategies)
    _check_labels(len(x), rounds, batch, initial)
    _need("sklearn.linear_model")
    from sklearn.linear_model import LogisticRegression
    from threadpoolctl import threadpool_limits  # a scikit-learn dependency

    estimator = make_estimator or (lambda: LogisticRegression(max_iter=2000))
    # Fits on 10-100 labels are far too small for threaded BLAS: on 2 busy cores one BLAS
    # thread fits 5-10x faster than two (15 ms against 100+ ms per digits fit).
    with threadpool_limits(limits=1, user_api="blas"):
        results = _curves(x, y, strategies, rounds, batch, seeds, initial, estimator)
    return _summarise(results)


def _check_labels(n: int, rounds: int, batch: int, initial: int) -> None:
    """Refuse, before any fit, a run that would need more labels than its pool holds: the
    pool is what the 30 % test split leaves (``train_test_split`` rounds the test part
    up)."""
    pool = n - int(np.ceil(0.3 * n))
    needed = initial + batch * (rounds - 1)
    if needed > pool:
        raise InvalidInputError(
            f"rounds={rounds} of batch={batch} after {initial} first labels need {needed} "
            f"labels, but the pool holds {pool} items ({n} rows, 30% held out for testing); "
            f"lower rounds= or batch=")


def _curves(x: np.ndarray, y: np.ndarray, strategies: list[str], rounds: int, batch: int,
            seeds: int, initial: int, estimator: Callable[[], Any]) -> dict[str, Any]:
    """The raw learning curves and selection times; seed s fixes the split and the first
    labels for every strategy (the paired design the summary relies on)."""
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    results: dict[str, Any] = {"labels": [initial + batch * r for r in range(rounds)],
                               "seeds": seeds, "strategies": {}}
    full = []
    for s in range(seeds):
        x_pool, x_test, y_pool, y_test = train_test_split(x, y, test_size=0.3,
                                                          random_state=s, stratify=y)
        scaler = StandardScaler().fit(x_pool)
        x_pool, x_test = scaler.transform(x_pool), scaler.transform(x_test)
        features = x_pool.astype(np.float32)
        full.append(estimator().fit(x_pool, y_pool).score(x_test, y_test))
        start = np.random.default_rng(s).choice(len(x_pool), size=initial, replace=False)
        for name in strategies:
            entry = results["strategies"].setdefault(name, {"curves": [], "seconds": []})
            labeled = np.zeros(len(x_pool), dtype=bool)
            labeled[start] = True
            curve, seconds = [], []
            for r in range(rounds):
                model = estimator().fit(x_pool[labeled], y_pool[labeled])
                curve.append(model.score(x_test, y_test))
                if r == rounds - 1:
                    break
                probs = _full_probs(model, x_pool, np.unique(y_pool))
                tic = time.perf_counter()
                picks = STRATEGIES[name](probs, features, labeled,
                                         min(batch, int((~labeled).sum())), s * 1000 + r)
                seconds.append(time.perf_counter() - tic)
                labeled[picks] = True
            entry["curves"].append(curve)
            entry["seconds"].extend(seconds)
    results["full_accuracy"] = float(np.mean(full))
    return results


def _summarise(results: dict[str, Any]) -> dict[str, Any]:
    """Per-strategy means, intervals and the paired comparison with the best."""
    for entry in results["strategies"].values():
        curves = np.array(entry["curves"])
        per_seed = curves.mean(axis=1)
        entry["mean"] = curves.mean(axis=0).tolist()
        entry["std"] = curves.std(axis=0).tolist()
        entry["aulc"] = float(per_seed.mean())
        entry["aulc_per_seed"] = per_seed.tolist()
        entry["aulc_ci"] = _interval(per_seed)
        entry["final"] = float(curves[:, -1].mean())
        reached = np.flatnonzero(curves.mean(axis=0) >= 0.98 * results["full_accuracy"])
        entry["labels_to_98pct"] = (results["labels"][int(reached[0])] if len(reached)
                                    else None)
        entry["select_seconds"] = float(np.mean(entry.pop("seconds") or [0.0]))
    entries = results["strategies"]
    best = max(entries, key=lambda name: entries[name]["aulc"])
    results["best"] = best
    for entry in entries.values():
        diff = np.array(entry["aulc_per_seed"]) - np.array(entries[best]["aulc_per_seed"])
        ci = _interval(diff)
        entry["vs_best"] = {"difference": float(diff.mean()), "ci": ci,
                            "distinguishable": ci is not None and (ci[1] < 0 or ci[0] > 0)}
    return results


def _interval(values: np.ndarray, level: float = 0.95) -> list[float] | None:
    """Student's t confidence interval of the mean of ``values`` (None for one value)."""
    n = len(values)
    if n < 2:
        return None
    from scipy import stats

    half = stats.t.ppf(0.5 + level / 2, n - 1) * values.std(ddof=1) / np.sqrt(n)
    mean = float(values.mean())
    return [mean - float(half), mean + float(half)]


def _full_probs(model: Any, x: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """predict_proba with a column for every class (a model trained on few labels may not
    have seen them all); rows renormalised."""
    probs = np.zeros((len(x), len(classes)))
    seen = model.predict_proba(x)
    probs[:, np.searchsorted(classes, model.classes_)] = seen
    return probs / probs.sum(axis=1, keepdims=True)


def table(results: dict[str, Any]) -> str:
    """A plain-text summary: per strategy the AULC with its 95 % interval, the final
    accuracy, labels to 98 % of full-pool accuracy, selection seconds, and the paired
    difference from the best strategy."""
    seeds = results.get("seeds")
    lines = [f"{'strategy':<22}{'AULC':>8}{'95% CI':>17}{'final':>8}{'labels to 98%':>15}"
             f"{'select s':>10}"]
    ranked = sorted(results["strategies"].items(), key=lambda kv: -kv[1]["aulc"])
    for name, e in ranked:
        reach = str(e["labels_to_98pct"]) if e["labels_to_98pct"] is not None else "-"
        ci = e.get("aulc_ci")
        ci_text = f"{ci[0]:.4f}..{ci[1]:.4f}" if ci else "-"
        lines.append(f"{name:<22}{e['aulc']:>8.4f}{ci_text:>17}{e['final']:>8.4f}{reach:>15}"
                     f"{e['select_seconds']:>10.4f}")
    labels = results.get("labels")
    within = f"within {labels[-1]} labels" if labels else "within these rounds"
    lines.append(f"full-pool accuracy {results['full_accuracy']:.4f}; labels to 98% = labels "
                 f"at which the mean curve first reaches 98% of it (-: not {within})")
    best = results.get("best")
    if best is not None and len(ranked) > 1:
        lines.append(f"AULC difference from the best ({best}), paired over {seeds} seeds, "
                     f"95% CI:")
        for name, e in ranked:
            if name == best:
                continue
            vs = e["vs_best"]
            if vs["ci"] is None:
                verdict = "one seed: no interval"
            elif vs["distinguishable"]:
                verdict = f"{best} is better"
            else:
                verdict = "not distinguishable with these seeds"
            ci = vs["ci"]
            ci_text = f" ({ci[0]:+.4f}..{ci[1]:+.4f})" if ci else ""
            lines.append(f"  {name:<22}{vs['difference']:+.4f}{ci_text}: {verdict}")
    return "\n".join(lines)


def write(results: dict[str, Any], out: str | Path, title: str) -> list[Path]:
    """curves.json, summary.txt and learning_curves.png (mean curves, with bands of ±1
    standard deviation over seeds) into the folder ``out`` (created if missing)."""
    _need("matplotlib")
    out = Path(out)
    out.mkdir(exist_ok=True)
    (out / "curves.json").write_text(json.dumps(results, indent=1))
    (out / "summary.txt").write_text(table(results) + "\n")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    labels = results["labels"]
    for name, e in results["strategies"].items():
        mean, std = np.array(e["mean"]), np.array(e["std"])
        ax.plot(labels, mean, label=f"{name} (AULC {e['aulc']:.3f})")
        ax.fill_between(labels, mean - std, mean + std, alpha=0.15)
    ax.axhline(results["full_accuracy"], color="grey", linestyle="--", label="full pool")
    ax.set_xlabel("labels")
    ax.set_ylabel("test accuracy")
    ax.set_title(f"{title} (bands: ±1 std over seeds)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "learning_curves.png", dpi=110)
    plt.close(fig)
    return [out / name for name in _FILES]
