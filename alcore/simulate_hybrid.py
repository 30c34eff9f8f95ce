"""The hybrid workflow loop on a labeled dataset, with simulated annotators
(``alcore simulate --hybrid``).

The run (one seed):

1. The dataset is split 70/30 (stratified; the 30 % is the test set). Of the 70 %,
   ``stream_share`` arrives as a live stream, an equal part in every round; the rest is the
   historical pool. ``initial`` random pool items start labeled (a seed set, outside the
   budget), so the first model exists.
2. One :class:`alcore.workflow.Workflow` over a ledger in a temporary folder, with three
   sources under one budget (equal shares, a ``control_share`` control arm drawn at random
   from the pool): a :class:`~alcore.workflow.PoolSource` (margin, then k-center over the
   features), a :class:`~alcore.workflow.StreamSource` (the round's arrivals through a
   :class:`alcore.stream.Router`: confident items are auto-labelled with the model's label,
   spending no budget; the gate queries about half of the rest, and the review queue's
   depth throttles it) and a :class:`~alcore.workflow.SynthesisSource` (the real pool items
   nearest to validated points on the model's decision boundary). ``on_update`` retrains a
   logistic regression on the workflow's current labels and gives the pool its new
   probabilities; ``counterfactual`` trains a second one on the random labels only (the
   seed set and the control arm), the model a random-sampling loop would have, so the
   workflow measures the lift of active over random selection live (``status()["lift"]``,
   at equal labels, on the control items).
3. Every round queues ``batch`` items. Each item of the annotator tier is labeled by
   ``annotators`` simulated annotators: each keeps the true label with probability
   ``1 - noise`` and otherwise names one of the other classes uniformly at random. Items
   on which they disagree are routed to the expert tier (``Ledger.route``) and labeled by
   the expert, who is always right; the stream router's expert items go to the expert
   directly. The workflow's label of an item is the expert's, else the majority.
4. Per round it records the labels spent per source, the annotators' agreement on the
   round's items (mean share of agreeing pairs, Fleiss' kappa), the items sent to the
   expert, the control arm's accuracy (the model's prediction at queue time against the
   label of the random control items: an unbiased estimate of accuracy without a test set,
   as :meth:`Workflow.status` reports it) and the test accuracy after retraining. To check
   the live lift against the truth, it also trains, on the same number of labels, a
   model on items drawn uniformly at random from the pool and stream (nested draws, the
   seed set first) with their **true** labels (random selection at its best: no annotator
   noise), and reports its test accuracy: ``test_lift`` is the actual model's test
   accuracy minus it.

Needs scikit-learn and matplotlib (``alcore[full]``).
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from alcore import _validation as v
from alcore import simulate
from alcore._errors import InvalidInputError

FILES = ("hybrid.json", "hybrid_summary.txt", "hybrid.png")
SOURCES = ("pool", "stream", "synthesis", "control")


def check(*, rounds: int = 10, batch: int = 10, annotators: int = 3, noise: float = 0.1,
          budget: int | None = None, control_share: float = 0.1, seed: int = 0,
          stream_share: float = 0.3, initial: int = 10) -> dict[str, Any]:
    """The run's options, checked before any work (the command line calls it before it
    reads the dataset); returns them as keywords of :func:`run`."""
    rounds = v.count(rounds, "rounds")
    batch = v.count(batch, "batch")
    annotators = v.count(annotators, "annotators")
    noise = v.number(noise, "noise", low=0.0, high=1.0, high_open=True,
                     hint="each annotator's chance of a wrong label, e.g. noise=0.1")
    budget = rounds * batch if budget is None else v.count(budget, "budget")
    control_share = v.number(control_share, "control_share", low=0.0, high=1.0,
                             high_open=True, hint="e.g. control_share=0.1")
    seed = v.integer(seed, "seed", low=0)
    stream_share = v.number(stream_share, "stream_share", low=0.0, high=1.0,
                            high_open=True)
    initial = v.count(initial, "initial")
    return {"rounds": rounds, "batch": batch, "annotators": annotators, "noise": noise,
            "budget": budget, "control_share": control_share, "seed": seed,
            "stream_share": stream_share, "initial": initial}


def annotate(truth: np.ndarray, classes: np.ndarray, annotators: int, noise: float,
             rng: np.random.Generator) -> np.ndarray:
    """Simulated labels, (len(truth), annotators) of the classes' dtype: each annotator
    independently keeps the true label with probability ``1 - noise`` and otherwise picks
    one of the other classes uniformly at random."""
    n = len(truth)
    position = np.searchsorted(classes, truth)
    wrong = rng.random((n, annotators)) < noise
    # A shift of 1 … C-1 classes (mod C) is a uniform draw among the other classes.
    shift = rng.integers(1, len(classes), size=(n, annotators)) if len(classes) > 1 else 0
    chosen = np.where(wrong, (position[:, None] + shift) % len(classes), position[:, None])
    return classes[chosen]


def run(x: np.ndarray, y: np.ndarray, *, rounds: int = 10, batch: int = 10,
        annotators: int = 3, noise: float = 0.1, budget: int | None = None,
        control_share: float = 0.1, seed: int = 0, stream_share: float = 0.3,
        initial: int = 10) -> dict[str, Any]:
    """The run of the module docstring on features ``x`` (N, d) and labels ``y`` (N,).

    Returns
    -------
    dict
        ``rounds``: one dict per round (``round``, ``labels`` spent per source, ``spent``
        in total so far, ``auto_labels``, ``agreement`` (mean per-item agreement, None
        with one annotator), ``fleiss_kappa``, ``expert`` (items the expert labeled),
        ``control_accuracy`` (cumulative, None before control labels), ``lift`` (the
        workflow's live equal-labels lift, None before it can be paired),
        ``test_accuracy``, ``random_test_accuracy`` and ``test_lift``);
        ``labels_per_source`` (totals; they sum to ``spent``), ``spent``, ``budget``,
        ``auto_labels`` and ``auto_label_accuracy``, ``expert``, ``control_accuracy``
        and ``control_items``, ``counterfactual_accuracy`` (the random-sampling model on
        the control items), ``lift``, ``lift_rounds`` and ``test_lift`` (last round),
        ``initial_accuracy`` (test accuracy on the seed set),
        ``final_labels`` and ``wrong_labels`` (the workflow's labels against the truth),
        the run's options and the split's sizes.
    """
    config = check(rounds=rounds, batch=batch, annotators=annotators, noise=noise,
                   budget=budget, control_share=control_share, seed=seed,
                   stream_share=stream_share, initial=initial)
    simulate._need("sklearn.linear_model")
    from threadpoolctl import threadpool_limits  # a scikit-learn dependency

    # Fits on tens of labels are far too small for threaded BLAS (see alcore.simulate).
    with threadpool_limits(limits=1, user_api="blas"), \
            tempfile.TemporaryDirectory(prefix="alcore-hybrid-") as folder:
        return _loop(np.asarray(x), np.asarray(y), config, Path(folder) / "hybrid.db")


def _loop(x: np.ndarray, y: np.ndarray, config: dict[str, Any], ledger: Path) -> dict:
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    from alcore.monitor import agreement
    from alcore.stream import Router, StreamGate
    from alcore.workflow import PoolSource, StreamSource, SynthesisSource, Workflow

    seed, rounds = config["seed"], config["rounds"]
    rng = np.random.default_rng(seed)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=0.3, random_state=seed, stratify=y)
    scaler = StandardScaler().fit(x_train)
    x_train = scaler.transform(x_train).astype(np.float32)
    x_test = scaler.transform(x_test).astype(np.float32)
    order = rng.permutation(len(x_train))
    n_stream = round(config["stream_share"] * len(x_train))
    stream_rows, pool_rows = order[:n_stream], order[n_stream:]
    if config["initial"] + config["budget"] > len(pool_rows) + n_stream:
        raise InvalidInputError(
            f"budget={config['budget']} labels after {config['initial']} first labels need "
            f"more items than the {len(pool_rows) + n_stream} the pool and stream hold; "
            f"lower budget=, rounds= or batch=")
    classes = np.unique(y)
    names = [str(c) for c in classes]
    truth: dict[str, Any] = {}
    features: dict[str, np.ndarray] = {}
    pool_ids = [f"p{i}" for i in range(len(pool_rows))]
    stream_ids = [f"s{i}" for i in range(n_stream)]
    for ids, rows in ((pool_ids, pool_rows), (stream_ids, stream_rows)):
        for item_id, row in zip(ids, rows.tolist(), strict=True):
            truth[item_id] = y_train[row]
            features[item_id] = x_train[row]
    x_pool = np.ascontiguousarray(x_train[pool_rows])
    x_stream = np.ascontiguousarray(x_train[stream_rows])
    text_class = dict(zip(names, classes.tolist(), strict=True))
    model: dict[str, Any] = {}

    def fit(labels: dict[str, str]) -> None:
        ids = list(labels)
        model["m"] = LogisticRegression(max_iter=2000).fit(
            np.stack([features[i] for i in ids]),
            np.array([text_class[labels[i]] for i in ids]))

    def probs_of(rows: np.ndarray) -> np.ndarray:
        return simulate._full_probs(model["m"], rows, classes)

    def on_update(labels: dict[str, str]) -> dict:
        fit(labels)
        return {"probs": probs_of(x_pool)}

    def train(ids: list[str], values: list[Any]) -> Any:
        return LogisticRegression(max_iter=2000).fit(np.stack([features[i] for i in ids]),
                                                     np.asarray(values))

    def counterfactual(labels: dict[str, str]) -> np.ndarray | None:
        if len(set(labels.values())) < 2:
            return None  # one class: nothing to train yet
        random_model = train(list(labels), [text_class[x] for x in labels.values()])
        return simulate._full_probs(random_model, x_pool, classes)

    seed_set = rng.choice(len(pool_ids), size=config["initial"], replace=False)
    seed_labels = {pool_ids[i]: str(truth[pool_ids[i]]) for i in seed_set.tolist()}
    # Random selection's order for the test-set check: the seed set, then every other pool
    # and stream item in a random order (the first n are what n random labels buy).
    others = [i for i in pool_ids + stream_ids if i not in seed_labels]
    random_order = list(seed_labels) + [others[j] for j in rng.permutation(len(others))]
    fit(seed_labels)
    initial_accuracy = float(model["m"].score(x_test, y_test))
    pool = PoolSource(probs_of(x_pool), embeddings=x_pool, ids=pool_ids, classes=names)
    arrivals = int(np.ceil(n_stream / rounds)) if n_stream else 0
    cursor = {"next": 0, "open": 0}

    def stream(m: int) -> tuple[list[str], np.ndarray]:
        start = cursor["next"]
        stop = min(start + m, cursor["open"])
        cursor["next"] = stop
        if stop <= start:
            return [], np.zeros((0, len(classes)))
        return stream_ids[start:stop], probs_of(x_stream[start:stop])

    router = Router(StreamGate("variable_uncertainty", 0.5, seed=seed), auto_label_at=0.98)
    sources = {"pool": pool,
               "stream": StreamSource(router, stream, classes=names,
                                      max_items=max(1, arrivals)),
               "synthesis": SynthesisSource(
                   pool, method="boundary",
                   predict_proba=lambda points: probs_of(np.asarray(points, np.float32)))}
    workflow = Workflow(ledger, budget=config["budget"], sources=sources,
                        on_update=on_update, counterfactual=counterfactual,
                        control_share=config["control_share"], seed=seed)
    try:
        workflow.ledger.queue(
            [{"item_id": i, "source": "pool", "tier": "expert", "prediction": None,
              "reason": "seed set: drawn at random before the loop (outside the budget)"}
             for i in seed_labels], round=0)
        workflow.submit_labels([{"item_id": i, "value": v_, "annotator": "expert",
                                 "origin": "expert"} for i, v_ in seed_labels.items()])

        def random_accuracy(n: int) -> float:
            ids = random_order[:n]
            return float(train(ids, [truth[i] for i in ids]).score(x_test, y_test))

        per_round = [_round(workflow, r, rng, truth, classes, names, config, cursor,
                            arrivals, n_stream, agreement, x_test, y_test, model,
                            random_accuracy)
                     for r in range(1, rounds + 1)]
        final = workflow.status()
        labels = workflow.labels()
        items = workflow.ledger.items()
    finally:
        workflow.ledger.close()
    totals = dict.fromkeys(SOURCES, 0)
    for r in per_round:
        for source, n in r["labels"].items():
            totals[source] += n
    auto = [x["item_id"] for x in items if x["tier"] == "auto"]
    wrong = sum(labels[i] != str(truth[i]) for i in labels)
    return {
        "experiment": "hybrid", **config, "classes": names,
        "dataset_items": len(x), "pool_items": len(pool_ids), "stream_items": n_stream,
        "test_items": len(x_test), "initial_accuracy": initial_accuracy,
        "rounds": per_round, "labels_per_source": totals, "spent": final["budget"]["spent"],
        "auto_labels": len(auto),
        "auto_label_accuracy": (None if not auto else
                                float(np.mean([labels[i] == str(truth[i]) for i in auto]))),
        "expert": sum(r["expert"] for r in per_round),
        "control_accuracy": final["control_accuracy"],
        "control_items": final["control"]["labeled"],
        "counterfactual_accuracy": final["counterfactual"]["accuracy"],
        "lift": final["lift"], "lift_rounds": final["lift_rounds"],
        "test_lift": per_round[-1]["test_lift"],
        "final_labels": len(labels), "wrong_labels": int(wrong),
    }


def _round(workflow: Any, r: int, rng: np.random.Generator, truth: dict[str, Any],
           classes: np.ndarray, names: list[str], config: dict[str, Any],
           cursor: dict[str, int], arrivals: int, n_stream: int, agreement: Any,
           x_test: np.ndarray, y_test: np.ndarray, model: dict[str, Any],
           random_accuracy: Any) -> dict[str, Any]:
    """One round: open the round's stream arrivals, queue a batch, annotate it, route the
    disagreements to the expert, record the metrics."""
    cursor["open"] = min(n_stream, r * arrivals)
    auto_before = sum(x["tier"] == "auto" for x in workflow.ledger.items())
    records = workflow.next_batch(config["batch"])
    spent = dict.fromkeys(SOURCES, 0)
    for x in records:
        spent[x["source"]] += 1
    crowd = [x["item_id"] for x in records if x["tier"] == "annotator"]
    direct = [x["item_id"] for x in records if x["tier"] == "expert"]
    votes = annotate(np.array([truth[i] for i in crowd], dtype=classes.dtype), classes,
                     config["annotators"], config["noise"], rng) if crowd else None
    labels = [{"item_id": i, "annotator": f"annotator{a + 1}", "value": str(votes[j, a]),
               "origin": "annotator"}
              for j, i in enumerate(crowd) for a in range(config["annotators"])]
    agree = kappa = None
    disputed: list[str] = []
    if labels:
        workflow.submit_labels(labels)
        if config["annotators"] > 1 and len({x["value"] for x in labels}) == 1:
            # One class named by everyone: full agreement; kappa is undefined (chance
            # agreement is 1) and agreement() refuses to report it.
            agree = 1.0
        elif config["annotators"] > 1:
            report = agreement([(x["item_id"], x["annotator"], x["value"]) for x in labels],
                               categories=names)
            per_item = np.asarray(report.per_item)
            agree = float(np.nanmean(per_item))
            kappa = float(report.fleiss_kappa) if np.isfinite(report.fleiss_kappa) else None
            disputed = [str(report.items[j]) for j in np.flatnonzero(per_item < 1.0)]
    if disputed:
        workflow.ledger.route(disputed, "expert", f"round {r}: the annotators disagree")
    expert = direct + disputed
    if expert:
        workflow.submit_labels([{"item_id": i, "annotator": "expert",
                                 "value": str(truth[i]), "origin": "expert"}
                                for i in expert])
    status = workflow.status()
    test_accuracy = float(model["m"].score(x_test, y_test))
    random_test_accuracy = random_accuracy(len(workflow.labels()))
    return {"round": r, "labels": spent, "spent": status["budget"]["spent"],
            "auto_labels": sum(x["tier"] == "auto" for x in workflow.ledger.items())
            - auto_before,
            "agreement": agree, "fleiss_kappa": kappa, "expert": len(expert),
            "control_accuracy": status["control_accuracy"], "lift": status["lift"],
            "test_accuracy": test_accuracy, "random_test_accuracy": random_test_accuracy,
            "test_lift": test_accuracy - random_test_accuracy}


def table(results: dict[str, Any]) -> str:
    """Summary lines: per round the labels spent per source, the annotators' agreement,
    the items sent to the expert, the control arm's accuracy and the test accuracy; then
    the totals."""
    rounds = results["rounds"]
    lines = [f"{results['dataset_items']} items: pool {results['pool_items']}, stream "
             f"{results['stream_items']}, test {results['test_items']}; "
             f"{results['annotators']} annotators, noise {results['noise']:g}; budget "
             f"{results['budget']} labels, control share {results['control_share']:g}",
             f"{'round':>5}{'pool':>6}{'stream':>8}{'synth':>7}{'control':>9}{'auto':>6}"
             f"{'agree':>8}{'kappa':>8}{'expert':>8}{'control acc':>13}{'live lift':>11}"
             f"{'test acc':>10}{'random acc':>12}{'test lift':>11}"]
    for r in rounds:
        spent = r["labels"]
        agree = "-" if r["agreement"] is None else f"{r['agreement']:.3f}"
        kappa = "-" if r["fleiss_kappa"] is None else f"{r['fleiss_kappa']:.3f}"
        control = "-" if r["control_accuracy"] is None else f"{r['control_accuracy']:.3f}"
        lift = "-" if r["lift"] is None else f"{r['lift']:+.3f}"
        lines.append(f"{r['round']:>5}{spent['pool']:>6}{spent['stream']:>8}"
                     f"{spent['synthesis']:>7}{spent['control']:>9}{r['auto_labels']:>6}"
                     f"{agree:>8}{kappa:>8}{r['expert']:>8}{control:>13}{lift:>11}"
                     f"{r['test_accuracy']:>10.3f}{r['random_test_accuracy']:>12.3f}"
                     f"{r['test_lift']:>+11.3f}")
    total = results["labels_per_source"]
    lines.append(f"labels spent: {results['spent']} of {results['budget']} ("
                 + ", ".join(f"{s} {total[s]}" for s in SOURCES)
                 + f"); auto-labelled (no budget): {results['auto_labels']}; sent to the "
                   f"expert: {results['expert']}")
    control = results["control_accuracy"]
    if control is not None:
        lines.append(f"control arm ({results['control_items']} random items): accuracy "
                     f"{control:.3f} of the models that queued them (unbiased, over all "
                     f"rounds, no test set needed); test accuracy "
                     f"{results['initial_accuracy']:.3f} on the seed set, "
                     f"{rounds[-1]['test_accuracy']:.3f} after the last round")
    live = ("not measured yet (no round pairs at equal labels)" if results["lift"] is None
            else f"{results['lift']:+.3f} over {results['lift_rounds']} rounds (control items "
                 f"only, no test set)")
    lines.append(f"lift of active over random selection at equal labels: live {live}; on "
                 f"the test set {results['test_lift']:+.3f} after the last round (random "
                 f"selection with true labels)")
    if results["auto_label_accuracy"] is not None:
        lines.append(f"auto-labels: {results['auto_labels']} stream items took the model's "
                     f"label, {results['auto_label_accuracy']:.1%} of them right")
    lines.append(f"final labels wrong: {results['wrong_labels']} of "
                 f"{results['final_labels']} (annotator noise left after agreement and the "
                 f"expert)")
    return "\n".join(lines)


def write(results: dict[str, Any], out: str | Path, title: str) -> list[Path]:
    """hybrid.json, hybrid_summary.txt and hybrid.png (test and control-arm accuracy per
    round against the labels spent, the labels per source stacked, the agreement per
    round) into the folder ``out`` (created if missing)."""
    simulate._need("matplotlib")
    out = Path(out)
    out.mkdir(exist_ok=True)
    (out / FILES[0]).write_text(json.dumps(results, indent=1))
    (out / FILES[1]).write_text(table(results) + "\n")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rounds = results["rounds"]
    spent = [r["spent"] for r in rounds]
    fig, (ax_acc, ax_src, ax_agree) = plt.subplots(1, 3, figsize=(13, 4))
    ax_acc.plot(spent, [r["test_accuracy"] for r in rounds], marker="o", markersize=3,
                label="test accuracy")
    ax_acc.plot(spent, [r["random_test_accuracy"] for r in rounds], marker="^",
                markersize=3, linestyle=":",
                label="test accuracy, random selection (same labels)")
    control = [(s, r["control_accuracy"]) for s, r in zip(spent, rounds, strict=True)
               if r["control_accuracy"] is not None]
    if control:
        ax_acc.plot(*zip(*control, strict=True), marker="s", markersize=3, linestyle="--",
                    label="control-arm accuracy (random items, cumulative)")
    ax_acc.set_xlabel("labels spent")
    ax_acc.set_ylabel("accuracy")
    ax_acc.set_ylim(-0.02, 1.02)
    ax_acc.legend(fontsize=8)
    bottom = np.zeros(len(rounds))
    positions = np.array([r["round"] for r in rounds])
    for source in SOURCES:
        values = np.array([r["labels"][source] for r in rounds])
        ax_src.bar(positions, values, bottom=bottom, label=source)
        bottom += values
    ax_src.set_xlabel("round")
    ax_src.set_ylabel("labels spent in the round")
    ax_src.legend(fontsize=8)
    agree = [(r["round"], r["agreement"]) for r in rounds if r["agreement"] is not None]
    if agree:
        ax_agree.plot(*zip(*agree, strict=True), marker="o", markersize=3,
                      label="per-item agreement (mean)")
    kappa = [(r["round"], r["fleiss_kappa"]) for r in rounds if r["fleiss_kappa"] is not None]
    if kappa:
        ax_agree.plot(*zip(*kappa, strict=True), marker="s", markersize=3, linestyle="--",
                      label="Fleiss' kappa")
    ax_agree.set_xlabel("round")
    ax_agree.set_ylabel("annotator agreement")
    ax_agree.set_ylim(-0.02, 1.02)
    ax_agree.legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(out / FILES[2], dpi=110)
    plt.close(fig)
    return [out / name for name in FILES]
