"""Pool-based simulation: learning curves of selection strategies on a labeled dataset.

Each run hides the labels of a pool, starts from a few random labels, and for ``rounds``
rounds retrains the estimator, measures accuracy on a held-out test split and lets the
strategy pick ``batch`` more items. Needs scikit-learn (and matplotlib for the plot).
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


def _alcore_strategy(**kwargs: Any) -> Strategy:
    def pick(probs, features, labeled_mask, batch, seed):
        return alcore.select(batch, probs, embeddings=features, labeled=labeled_mask,
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


def load_dataset(name: str, label_column: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(X, y) of a scikit-learn toy dataset (digits, breast_cancer, wine) or a table file."""
    if name in ("digits", "breast_cancer", "wine"):
        import sklearn.datasets

        return getattr(sklearn.datasets, f"load_{name}")(return_X_y=True)
    from alcore import io

    table = io.read_table(name)
    if label_column is None or label_column not in table.columns:
        raise InvalidInputError(f"{name}: pass --label-column naming the label column")
    y = table[label_column].to_numpy()
    x = table.drop(label_column).to_numpy().astype(np.float64)
    return x, y


def run(x: np.ndarray, y: np.ndarray, strategies: list[str], rounds: int = 10,
        batch: int = 10, seeds: int = 3, initial: int = 10,
        make_estimator: Callable[[], Any] | None = None) -> dict[str, Any]:
    """Learning curves of each strategy, averaged over seeds.

    Returns a dict: ``labels`` (labels after each round), ``full_accuracy`` (training on the
    whole pool), and per strategy ``curves`` (seeds x rounds accuracies) and
    ``select_seconds`` (mean per round).
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    unknown = [s for s in strategies if s not in STRATEGIES]
    if unknown:
        raise InvalidInputError(
            f"unknown strategy {unknown[0]!r}; choose from {', '.join(STRATEGIES)}")
    estimator = make_estimator or (lambda: LogisticRegression(max_iter=2000))
    results: dict[str, Any] = {"labels": [initial + batch * r for r in range(rounds)],
                               "strategies": {}}
    full = []
    for s in range(seeds):
        x_pool, x_test, y_pool, y_test = train_test_split(x, y, test_size=0.3,
                                                          random_state=s, stratify=y)
        scaler = StandardScaler().fit(x_pool)
        x_pool, x_test = scaler.transform(x_pool), scaler.transform(x_test)
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
                picks = STRATEGIES[name](probs, x_pool.astype(np.float32), labeled,
                                         min(batch, int((~labeled).sum())), s * 1000 + r)
                seconds.append(time.perf_counter() - tic)
                labeled[picks] = True
            entry["curves"].append(curve)
            entry["seconds"].extend(seconds)
    results["full_accuracy"] = float(np.mean(full))
    for entry in results["strategies"].values():
        curves = np.array(entry["curves"])
        entry["mean"] = curves.mean(axis=0).tolist()
        entry["std"] = curves.std(axis=0).tolist()
        entry["aulc"] = float(curves.mean())
        entry["final"] = float(curves[:, -1].mean())
        reached = np.flatnonzero(curves.mean(axis=0) >= 0.98 * results["full_accuracy"])
        entry["labels_to_98pct"] = (results["labels"][int(reached[0])] if len(reached)
                                    else None)
        entry["select_seconds"] = float(np.mean(entry.pop("seconds") or [0.0]))
    return results


def _full_probs(model: Any, x: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """predict_proba with a column for every class (a model trained on few labels may not
    have seen them all); rows renormalised."""
    probs = np.zeros((len(x), len(classes)))
    seen = model.predict_proba(x)
    probs[:, np.searchsorted(classes, model.classes_)] = seen
    return probs / probs.sum(axis=1, keepdims=True)


def table(results: dict[str, Any]) -> str:
    """A plain-text table of the summary numbers."""
    lines = [f"{'strategy':<22}{'AULC':>8}{'final':>8}{'labels to 98%':>15}{'select s':>10}"]
    ranked = sorted(results["strategies"].items(), key=lambda kv: -kv[1]["aulc"])
    for name, e in ranked:
        reach = str(e["labels_to_98pct"]) if e["labels_to_98pct"] is not None else "-"
        lines.append(f"{name:<22}{e['aulc']:>8.4f}{e['final']:>8.4f}{reach:>15}"
                     f"{e['select_seconds']:>10.4f}")
    lines.append(f"full-pool accuracy {results['full_accuracy']:.4f}")
    return "\n".join(lines)


def write(results: dict[str, Any], out: str | Path, title: str) -> list[Path]:
    """curves.json, summary.txt and learning_curves.png (mean ± std bands) into ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
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
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "learning_curves.png", dpi=110)
    plt.close(fig)
    return [out / "curves.json", out / "summary.txt", out / "learning_curves.png"]
