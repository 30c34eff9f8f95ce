"""Label efficiency of query synthesis on a rare class: pool selection alone against pool
selection plus validated synthetic queries, mapped to real items.

The experiment (``alcore simulate --experiment minority``):

1. Seed s splits the dataset 70/30 (stratified; the test split keeps the natural class
   balance, so the rare class's recall is measured on enough items) and cuts one class in
   the pool to ``minority_share`` of it (its other pool items are dropped at random).
2. The first labels: ``initial`` items, ``initial_minority`` (2) of them from the rare
   class, the rest at random from the others: a team that has seen a couple of rare cases,
   which interpolation needs (SMOTE takes two members). Every arm starts from them.
3. Every round each arm retrains a logistic regression on its labels, records the rare
   class's recall (and the accuracy) on the test split, then spends exactly ``batch``
   labels:

   * ``margin``: the ``batch`` best-margin unlabeled items (:func:`alcore.select`).
   * ``margin+minority``: :func:`alcore.synthesis.minority` interpolates between the
     labeled rare-class items (``variant`` smote or borderline), :func:`alcore.synthesis.
     validate` keeps the points that pass its checks against the pool, and
     :func:`alcore.synthesis.nearest_real` maps up to ``synthetic_share`` of the batch to
     distinct unlabeled real items (annotators label real items, not vectors: the ASAL
     pattern); best-margin items fill the rest of the batch.
   * ``margin+boundary``: the same with :func:`alcore.synthesis.boundary` (points on the
     current model's decision boundary, its ``predict_proba`` as the model).

   When synthesis yields fewer points than its share (validation rejected them, too few
   rare labels, a model that predicts one class for every item), margin fills the batch:
   every arm spends the same labels.

Seed s fixes the split, the cut and the first labels for every arm (paired); the summary
gives each arm's mean recall over rounds with a 95 % interval over seeds and its paired
difference from ``margin``. Needs scikit-learn and matplotlib (``alcore[full]``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from alcore import _validation as v
from alcore import simulate
from alcore._errors import InvalidInputError

ARMS = ("margin", "margin+minority", "margin+boundary")
VARIANTS = ("smote", "borderline")
FILES = ("minority_recall.json", "minority_summary.txt", "minority_recall.png")
# Synthetic candidates generated per query wanted: validation rejects some and the unique
# mapping to real items needs spares.
_OVERSAMPLE = 4


def rare_class(y: np.ndarray, value: Any = None) -> Any:
    """The rare class: ``value`` matched against the classes of ``y`` by its text (the
    command line gives text), or by default the least frequent class (ties: the first in
    sorted order; digits: 8)."""
    classes, counts = np.unique(y, return_counts=True)
    if value is None:
        return classes[int(np.argmin(counts))]
    for cls in classes:
        if str(cls) == str(value) or (isinstance(value, int | np.integer) and cls == value):
            return cls
    listed = ", ".join(str(c) for c in classes[:20])
    raise InvalidInputError(
        f"minority_class={value} is not a class of the dataset; its classes are {listed}")


def check_share(share: Any) -> float:
    return v.number(share, "minority_share", low=0.0, high=0.5, low_open=True,
                    high_open=True, hint="pass a share of the pool in (0, 0.5), e.g. 0.02")


def check_variant(variant: Any) -> str:
    return v.choice(variant, "variant", VARIANTS)


def imbalanced_rows(y_pool: np.ndarray, cls: Any, share: float, rng: np.random.Generator,
                    *, least: int = 3) -> np.ndarray:
    """int64 sorted rows of the pool to keep: every item of the other classes and
    ``round(share M / (1 - share))`` random items of ``cls`` (M: the others' count), so
    that ``cls`` makes up ``share`` of the pool. Refuses a cut below ``least`` items or
    beyond the items the class has."""
    rare = np.flatnonzero(y_pool == cls)
    others = np.flatnonzero(y_pool != cls)
    wanted = round(share * len(others) / (1.0 - share))
    if wanted < least:
        raise InvalidInputError(
            f"minority_share={share:g} leaves {wanted} items of class {cls} in a pool of "
            f"{len(others) + wanted}; the experiment needs at least {least} (2 first labels "
            f"and one to find): raise minority_share=")
    if wanted > len(rare):
        raise InvalidInputError(
            f"minority_share={share:g} needs {wanted} items of class {cls} in the pool, but "
            f"it holds {len(rare)}; lower minority_share=")
    kept = rng.choice(rare, size=wanted, replace=False)
    return np.sort(np.concatenate([others, kept])).astype(np.int64)


def _synthesised(arm: str, model: Any, features: np.ndarray, y_pool: np.ndarray,
                 labeled: np.ndarray, cls: Any, wanted: int, variant: str,
                 seed: int) -> tuple[np.ndarray, dict[str, int]]:
    """Up to ``wanted`` distinct unlabeled pool rows mapped from validated synthetic points,
    and counts (generated, kept, mapped)."""
    from alcore import synthesis

    counts = {"generated": 0, "kept": 0, "mapped": 0}
    none = np.empty(0, dtype=np.int64)
    if arm == "margin+minority":
        rows = np.flatnonzero(labeled)
        labels = y_pool[rows]
        if np.count_nonzero(labels == cls) < 2:
            return none, counts
        points = synthesis.minority(features[rows], labels, _OVERSAMPLE * wanted,
                                    variant=variant, classes=[cls], m=min(10, len(rows) - 1),
                                    seed=seed)
    else:
        # One predicted class (boundary's argmax) for every item: no boundary to bisect.
        if len(np.unique(np.argmax(model.predict_proba(features), axis=1))) < 2:
            return none, counts
        points = synthesis.boundary(features, model.predict_proba, _OVERSAMPLE * wanted,
                                    seed=seed)
    counts["generated"] = len(points)
    if len(points) == 0:
        return none, counts
    report = synthesis.validate(points, features, seed=seed)
    kept = points.points[report.keep][:wanted]
    counts["kept"] = int(report.keep.sum())
    free = int(np.count_nonzero(~labeled))
    kept = kept[:free]
    if len(kept) == 0:
        return none, counts
    mapped = synthesis.nearest_real(kept, features, labeled=labeled, unique=True)
    picks = mapped.indices[:, 0]
    counts["mapped"] = len(picks)
    return picks, counts


def run(x: np.ndarray, y: np.ndarray, *, minority_class: Any = None,
        minority_share: float = 0.02, variant: str = "smote",
        arms: tuple[str, ...] = ARMS, rounds: int = 10, batch: int = 10, seeds: int = 5,
        initial: int = 10, initial_minority: int = 2,
        synthetic_share: float = 0.5) -> dict[str, Any]:
    """The experiment of the module docstring on features ``x`` (N, d) and labels ``y``.

    Returns a dict: ``labels`` (labels after each round), ``seeds``, ``minority_class``,
    ``minority_share`` (asked) and ``pool_share`` (the cut's actual share, mean over
    seeds), ``pool_items``, ``minority_pool_items``, ``variant``,
    ``synthetic_per_round``, and per arm ``recall`` and ``accuracy`` (seeds x rounds),
    ``recall_mean``/``recall_std`` (per round, over seeds), ``recall_area`` (mean over
    rounds and seeds) with ``recall_area_ci`` (95 % over seeds), ``minority_labeled``
    (seeds x rounds: rare-class items among the labels), ``vs_margin`` (paired difference
    of the recall area) and for synthesis arms ``synthesis`` (points generated, kept by
    validation, mapped to real items, and how many mapped items were of the rare class).
    """
    cls = rare_class(y, minority_class)
    share = check_share(minority_share)
    variant = check_variant(variant)
    for arm in arms:
        v.choice(arm, "arms", ARMS)
    rounds, batch, seeds, initial = (v.count(rounds, "rounds"), v.count(batch, "batch"),
                                     v.count(seeds, "seeds"), v.count(initial, "initial"))
    synthetic_share = v.number(synthetic_share, "synthetic_share", low=0.0, high=1.0)
    wanted = max(1, round(synthetic_share * batch))
    simulate._need("sklearn.linear_model")
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler
    from threadpoolctl import threadpool_limits

    results: dict[str, Any] = {
        "experiment": "minority", "labels": [initial + batch * r for r in range(rounds)],
        "seeds": seeds, "minority_class": _plain(cls),
        "minority_share": share, "variant": variant, "synthetic_per_round": wanted,
        "arms": {arm: {"recall": [], "accuracy": [], "minority_labeled": [],
                       "synthesis": {"generated": 0, "kept": 0, "mapped": 0,
                                     "mapped_minority": 0}} for arm in arms}}
    shares, sizes, rare_sizes = [], [], []
    with threadpool_limits(limits=1, user_api="blas"):
        for s in range(seeds):
            x_pool, x_test, y_pool, y_test = train_test_split(
                x, y, test_size=0.3, random_state=s, stratify=y)
            rng = np.random.default_rng(s)
            rows = imbalanced_rows(y_pool, cls, share, rng, least=initial_minority + 1)
            x_pool, y_pool = x_pool[rows], y_pool[rows]
            needed = initial + batch * (rounds - 1)
            if needed > len(x_pool):
                raise InvalidInputError(
                    f"rounds={rounds} of batch={batch} after {initial} first labels need "
                    f"{needed} labels, but the imbalanced pool holds {len(x_pool)} items; "
                    f"lower rounds= or batch=")
            rare = np.flatnonzero(y_pool == cls)
            shares.append(len(rare) / len(y_pool))
            sizes.append(len(y_pool))
            rare_sizes.append(len(rare))
            scaler = StandardScaler().fit(x_pool)
            x_pool, x_test = scaler.transform(x_pool), scaler.transform(x_test)
            features = np.ascontiguousarray(x_pool, dtype=np.float32)
            start = np.concatenate([
                rng.choice(rare, size=initial_minority, replace=False),
                rng.choice(np.flatnonzero(y_pool != cls), size=initial - initial_minority,
                           replace=False)])
            classes = np.unique(y_pool)
            test_rare = y_test == cls
            for arm in arms:
                entry = results["arms"][arm]
                labeled = np.zeros(len(x_pool), dtype=bool)
                labeled[start] = True
                recall, accuracy, found = [], [], []
                for r in range(rounds):
                    model = LogisticRegression(max_iter=2000).fit(features[labeled],
                                                                  y_pool[labeled])
                    predicted = model.predict(features_of(x_test))
                    recall.append(float(np.mean(predicted[test_rare] == cls)))
                    accuracy.append(float(np.mean(predicted == y_test)))
                    found.append(int(np.count_nonzero(labeled & (y_pool == cls))))
                    if r == rounds - 1:
                        break
                    seed = s * 1000 + r
                    picks = np.empty(0, dtype=np.int64)
                    if arm != "margin":
                        picks, counts = _synthesised(arm, model, features, y_pool, labeled,
                                                     cls, min(wanted, batch), variant, seed)
                        for key, value in counts.items():
                            entry["synthesis"][key] += value
                        entry["synthesis"]["mapped_minority"] += int(
                            np.count_nonzero(y_pool[picks] == cls))
                        labeled[picks] = True
                    rest = batch - len(picks)
                    if rest:
                        probs = simulate._full_probs(model, features, classes)
                        labeled[simulate.STRATEGIES["margin"](probs, features, labeled,
                                                              rest, seed)] = True
                entry["recall"].append(recall)
                entry["accuracy"].append(accuracy)
                entry["minority_labeled"].append(found)
    results["pool_share"] = float(np.mean(shares))
    results["pool_items"] = float(np.mean(sizes))
    results["minority_pool_items"] = float(np.mean(rare_sizes))
    return _summarise(results)


def features_of(x: np.ndarray) -> np.ndarray:
    """The float32 rows the models are trained on (the synthesis works in float32)."""
    return np.ascontiguousarray(x, dtype=np.float32)


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _summarise(results: dict[str, Any]) -> dict[str, Any]:
    arms = results["arms"]
    for entry in arms.values():
        recall = np.array(entry["recall"])
        entry["recall_mean"] = recall.mean(axis=0).tolist()
        entry["recall_std"] = recall.std(axis=0).tolist()
        per_seed = recall.mean(axis=1)
        entry["recall_area"] = float(per_seed.mean())
        entry["recall_area_per_seed"] = per_seed.tolist()
        entry["recall_area_ci"] = simulate._interval(per_seed)
        entry["final_recall"] = float(recall[:, -1].mean())
        entry["final_minority_labeled"] = float(np.mean(np.array(entry["minority_labeled"])
                                                        [:, -1]))
        entry["accuracy_mean"] = np.array(entry["accuracy"]).mean(axis=0).tolist()
    if "margin" in arms:
        base = np.array(arms["margin"]["recall_area_per_seed"])
        for name, entry in arms.items():
            if name == "margin":
                continue
            diff = np.array(entry["recall_area_per_seed"]) - base
            ci = simulate._interval(diff)
            entry["vs_margin"] = {"difference": float(diff.mean()), "ci": ci,
                                  "distinguishable": ci is not None and (ci[0] > 0 or ci[1] < 0)}
    return results


def table(results: dict[str, Any]) -> str:
    """Summary lines: per arm the rare class's mean recall over rounds (95 % interval over
    seeds), its final recall, the rare items labeled by the last round, what synthesis
    produced, and the paired difference from margin."""
    lines = [f"class {results['minority_class']} cut to {results['pool_share']:.1%} of the "
             f"pool ({results['minority_pool_items']:.0f} of {results['pool_items']:.0f} "
             f"items); {results['seeds']} seeds, {len(results['labels'])} rounds up to "
             f"{results['labels'][-1]} labels",
             f"{'arm':<18}{'recall area':>12}{'95% CI':>17}{'final':>8}{'rare labeled':>14}"]
    for name, e in results["arms"].items():
        ci = e["recall_area_ci"]
        ci_text = f"{ci[0]:.3f}..{ci[1]:.3f}" if ci else "-"
        lines.append(f"{name:<18}{e['recall_area']:>12.3f}{ci_text:>17}"
                     f"{e['final_recall']:>8.3f}{e['final_minority_labeled']:>14.1f}")
    for name, e in results["arms"].items():
        if name == "margin":
            continue
        syn = e["synthesis"]
        line = (f"{name}: {syn['generated']} synthetic points, {syn['kept']} kept by "
                f"validate, {syn['mapped']} mapped to real items ({syn['mapped_minority']} "
                f"of class {results['minority_class']})")
        vs = e.get("vs_margin")
        if vs is not None:
            if vs["ci"] is None:
                verdict = "one seed: no interval"
            else:
                low, high = vs["ci"]
                told = ("distinguishable" if vs["distinguishable"]
                        else "not distinguishable with these seeds")
                verdict = f"{low:+.3f}..{high:+.3f}, {told}"
            line += f"; recall area vs margin {vs['difference']:+.3f} ({verdict})"
        lines.append(line)
    return "\n".join(lines)


def write(results: dict[str, Any], out: str | Path, title: str) -> list[Path]:
    """minority_recall.json, minority_summary.txt and minority_recall.png (the rare class's
    mean recall per round, bands of ±1 standard deviation over seeds) into ``out``."""
    simulate._need("matplotlib")
    out = Path(out)
    out.mkdir(exist_ok=True)
    (out / FILES[0]).write_text(json.dumps(results, indent=1))
    (out / FILES[1]).write_text(table(results) + "\n")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    labels = results["labels"]
    for name, e in results["arms"].items():
        mean, std = np.array(e["recall_mean"]), np.array(e["recall_std"])
        ax.plot(labels, mean, marker="o", markersize=3,
                label=f"{name} (mean recall {e['recall_area']:.3f})")
        ax.fill_between(labels, np.clip(mean - std, 0, 1), np.clip(mean + std, 0, 1),
                        alpha=0.15)
    ax.set_xlabel("labels")
    ax.set_ylabel(f"recall of class {results['minority_class']}")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title(f"{title} (bands: ±1 std over seeds)", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / FILES[2], dpi=110)
    plt.close(fig)
    return [out / name for name in FILES]

