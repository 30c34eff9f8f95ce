"""The counterfactual (random-sampling) model beside the actual one, and the equal-labels
lift of active selection over random selection (the rule in alcore.workflow._workflow's
docstring), checked against a slow reference computed from the ledger's records."""

from __future__ import annotations

import json

import numpy as np
import pytest
from test_workflow import C, D, N, centroid_probs

import alcore
from alcore.workflow import Ledger, PoolSource, Workflow


def overlapping_pool(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Three classes whose clusters overlap, so that neither model is always right and
    the accuracies (and the lift) vary from round to round."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, C, N)
    centres = rng.normal(size=(C, D)) * 0.9
    return (centres[y] + rng.normal(size=(N, D))).astype(np.float32), y


class TwoModels:
    """The actual model (trained on every label) and the counterfactual (trained on what
    the workflow gives it), both the nearest-centroid model of tests.test_workflow."""

    def __init__(self, tmp_path, seed_labels: int = 6):
        self.emb, self.y = overlapping_pool()
        self.path = tmp_path / "lift.db"
        self.counterfactual_calls: list[dict[str, str]] = []
        rng = np.random.default_rng(1)
        self.seed_ids = [str(i) for i in rng.choice(len(self.y), seed_labels, replace=False)]

    def truth(self, item_id: str) -> str:
        return str(self.y[int(item_id)])

    def on_update(self, labels):
        return {"probs": centroid_probs(self.emb, labels)}

    def counterfactual(self, labels):
        self.counterfactual_calls.append(dict(labels))
        return centroid_probs(self.emb, labels)

    def workflow(self, **options):
        wf = Workflow(self.path, budget=options.pop("budget", 100),
                      sources=[PoolSource(centroid_probs(self.emb, {}), embeddings=self.emb)],
                      on_update=self.on_update, control_share=0.3,
                      counterfactual=options.pop("counterfactual", self.counterfactual),
                      **options)
        return wf

    def seed(self, wf):
        wf.ledger.queue([{"item_id": i, "source": "pool", "tier": "expert",
                          "reason": "seed set"} for i in self.seed_ids], round=0)
        wf.submit_labels({i: self.truth(i) for i in self.seed_ids})

    def run(self, wf, rounds: int, k: int = 10):
        for _ in range(rounds):
            batch = wf.next_batch(k)
            wf.submit_labels({x["item_id"]: self.truth(x["item_id"]) for x in batch})


def reference(ledger: Ledger, emb: np.ndarray) -> dict:
    """Lift by the rule, written out: per round, the actual model's accuracy on the labeled
    control items and its label count; the counterfactual model retrained here from the
    ledger's items (control or round 0) as of the round's selection, its accuracy on the
    same items and its label count; then linear interpolation by hand."""
    items = ledger.items()
    labels = {x["item_id"]: x["value"] for x in ledger.labels()}
    selections = ledger.events("selection")
    actual: dict[int, tuple[int, float]] = {}
    random_arm: dict[int, tuple[int, float, int]] = {}
    for e in selections:
        r = e["round"]
        queued_before = [x for x in items if x["round"] < r]
        known = {x["item_id"] for x in queued_before}
        # Labels stored before round r's selection: those of items queued before it (every
        # batch of this test is labeled before the next is drawn).
        before = {i: labels[i] for i in known if i in labels}
        train = {x["item_id"]: before[x["item_id"]] for x in queued_before
                 if x["item_id"] in before and (x["control"] or x["round"] == 0)}
        control = [x for x in items if x["round"] == r and x["control"]
                   and x["item_id"] in labels]
        if not control:
            continue
        cf_pred = np.argmax(centroid_probs(emb, train), axis=1)
        actual[r] = (len(before), float(np.mean(
            [labels[x["item_id"]] == x["prediction"] for x in control])))
        random_arm[r] = (len(train), float(np.mean(
            [labels[x["item_id"]] == str(cf_pred[int(x["item_id"])]) for x in control])),
            len(control))
    by_count: dict[int, list[float]] = {}
    for n, acc in actual.values():
        by_count.setdefault(n, []).append(acc)
    counts = sorted(by_count)
    mean = {n: sum(a) / len(a) for n, a in by_count.items()}
    total = weight = 0.0
    used = 0
    for m, acc, n_items in random_arm.values():
        if not counts or m < counts[0] or m > counts[-1]:
            continue
        below = max(n for n in counts if n <= m)
        above = min(n for n in counts if n >= m)
        at_m = mean[below] if above == below else mean[below] + (
            mean[above] - mean[below]) * (m - below) / (above - below)
        total += n_items * (at_m - acc)
        weight += n_items
        used += 1
    return {"lift": total / weight if weight else None, "lift_rounds": used,
            "counterfactual_by_round": {str(r): a for r, (_, a, _) in random_arm.items()}}


def test_lift_matches_the_reference_and_status_round_trips(tmp_path):
    models = TwoModels(tmp_path)
    with models.workflow() as wf:
        models.seed(wf)
        models.run(wf, rounds=8)
        status = wf.status()
        expected = reference(wf.ledger, models.emb)
    assert status["lift"] is not None and status["lift_rounds"] == expected["lift_rounds"] > 3
    accuracies = list(status["counterfactual"]["by_round"].values())
    assert 0 < min(accuracies) < 1 and status["lift"] != 0  # not a degenerate check
    assert status["lift"] == pytest.approx(expected["lift"], abs=1e-12)
    assert status["counterfactual"]["by_round"] == pytest.approx(
        expected["counterfactual_by_round"])
    assert status["counterfactual"]["labeled"] == status["control"]["labeled"] == 24
    # The counterfactual was trained on the seed set and the control labels only.
    for call in models.counterfactual_calls:
        assert set(models.seed_ids) <= set(call)
    json.dumps(status)
    assert Workflow.status_of(models.path) == status


def test_both_models_agree_while_they_have_the_same_labels(tmp_path):
    # Round 1: both models know the seed set only, so they are the same model and predict
    # every control item alike; the first equal-labels pair is therefore a zero difference.
    models = TwoModels(tmp_path)
    with models.workflow() as wf:
        models.seed(wf)
        batch = wf.next_batch(10)
        (selection,) = wf.ledger.events("selection")
        payload = selection["payload"]
        assert payload["model_labels"] == payload["counterfactual_labels"] == 6
        predicted = {x["item_id"]: x["prediction"] for x in batch if x["control"]}
        assert payload["counterfactual"] == predicted and len(predicted) == 3


def test_counterfactual_is_retrained_only_when_the_random_labels_change(tmp_path):
    models = TwoModels(tmp_path)
    with models.workflow(budget=200) as wf:
        models.seed(wf)
        wf.next_batch(10)
        wf.next_batch(10)  # nothing labeled in between: the same random-arm labels
        assert len(models.counterfactual_calls) == 1


def test_without_counterfactual_there_is_no_lift(tmp_path):
    models = TwoModels(tmp_path)
    with models.workflow(counterfactual=None) as wf:
        models.seed(wf)
        models.run(wf, rounds=3)
        status = wf.status()
    assert status["lift"] is None and status["lift_rounds"] == 0
    assert status["counterfactual"] == {"labeled": 0, "accuracy": None, "by_round": {},
                                        "labels_by_round": {}}
    assert status["control"]["labeled"] == 9
    assert set(status["control"]["labels_by_round"]) == {"1", "2", "3"}


def test_counterfactual_that_cannot_train_yet_records_nothing(tmp_path):
    models = TwoModels(tmp_path)
    with models.workflow(counterfactual=lambda labels: None) as wf:
        models.run(wf, rounds=2)
        payload = wf.ledger.events("selection")[-1]["payload"]
        assert "counterfactual" not in payload and payload["model_labels"] == 10
        assert wf.status()["lift"] is None


@pytest.mark.parametrize(("output", "message"), [
    (np.zeros((5, C)), r"counterfactual must return outputs of the pool's shape "
                       r"\(300, 3\) \(one row per pool item\), got \(5, 3\)"),
    (np.full((300, C), np.nan), r"counterfactual returned invalid outputs: probs must be "
                                r"finite: probs row 0, column 0 is nan"),
    (np.full((300, C), 0.5), r"counterfactual returned invalid outputs: .*sum"),
])
def test_bad_counterfactual_output_is_refused_and_nothing_is_queued(tmp_path, output,
                                                                    message):
    models = TwoModels(tmp_path)
    with models.workflow(counterfactual=lambda labels: output) as wf:
        with pytest.raises(alcore.InvalidInputError, match=message):
            wf.next_batch(10)
        assert wf.round == 0 and wf.ledger.items() == [] and wf.spent == 0


def test_counterfactual_must_be_callable(tmp_path):
    models = TwoModels(tmp_path)
    with pytest.raises(alcore.InvalidInputError,
                       match="counterfactual must be a callable labels -> outputs"):
        models.workflow(counterfactual="logreg")
    assert not models.path.exists()


def test_resumed_workflow_keeps_the_lift(tmp_path):
    models = TwoModels(tmp_path)
    with models.workflow() as wf:
        models.seed(wf)
        models.run(wf, rounds=4)
        before = wf.status()
    resumed = Workflow.resume(
        models.path, sources=[PoolSource(centroid_probs(models.emb, {}),
                                         embeddings=models.emb)],
        on_update=models.on_update, counterfactual=models.counterfactual)
    with resumed as wf:
        assert wf.status() == before
        models.run(wf, rounds=2)
        assert wf.status()["lift_rounds"] >= before["lift_rounds"]
