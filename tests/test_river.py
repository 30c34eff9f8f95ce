"""alcore.integrations.river.GatedClassifier inside real river pipelines, against river's
own active.EntropySampler; its utilities against the gate's native ones; bad input."""

from __future__ import annotations

import itertools
import json
import math
import os
import statistics
import subprocess
import sys

import numpy as np
import pytest

river = pytest.importorskip("river")
from river import active, datasets, linear_model, metrics, preprocessing, tree  # noqa: E402

import alcore  # noqa: E402
from alcore.integrations.river import NO_OPINION, GatedClassifier  # noqa: E402
from alcore.stream import UTILITIES, StreamGate  # noqa: E402


class Stub:
    """A classifier that returns the dicts it is given, in turn (the last one forever)."""

    def __init__(self, *dicts):
        self.dicts = list(dicts)
        self.learnt = []

    def predict_proba_one(self, x):
        return self.dicts.pop(0) if len(self.dicts) > 1 else self.dicts[0]

    def learn_one(self, x, y):
        self.learnt.append((x, y))


def same_state(gate: StreamGate, twin: StreamGate) -> bool:
    """Equal states; the quantile filter's utilities within rounding (the native entropy's
    vectorised logarithm and Python's math.log may differ in the last bits)."""
    mine, theirs = json.loads(gate.to_json()), json.loads(twin.to_json())
    history = mine["state"].pop("history"), theirs["state"].pop("history")
    return mine == theirs and history[0] == pytest.approx(history[1], rel=1e-12, abs=1e-12)


def reference_utility(kind: str, classes: list, proba: dict) -> float:
    """The gate's native utility of the row over ``classes`` (missing ones are 0)."""
    if len(classes) < 2 or not proba:
        return NO_OPINION
    row = np.array([[proba.get(c, 0.0) for c in classes]])
    return float(StreamGate("quantile", 0.1, utility=kind).utility(row)[0])


@pytest.mark.parametrize("kind", list(UTILITIES))
def test_utility_equals_the_gates_native_utility(kind):
    rng = np.random.default_rng(7)
    for case in range(300):
        learner = GatedClassifier(Stub({}), StreamGate("quantile", 0.1, utility=kind))
        known = [f"k{i}" for i in range(rng.integers(0, 5))]
        for label in known:
            learner.learn_one({}, label)
        # A dict over some known classes and maybe new ones, with zeros and ties.
        keys = [k for k in known if rng.random() < 0.7] + [
            f"n{i}" for i in range(rng.integers(0, 4))]
        if case % 10 == 0:
            proba = {}
        else:
            keys = keys or ["n0"]
            p = rng.dirichlet(np.ones(len(keys)))
            if case % 3 == 0:
                p[rng.random(len(p)) < 0.3] = 0.0
            if case % 7 == 0:
                p[:] = 1.0
            if p.sum() == 0:
                p[0] = 1.0
            p /= p.sum()
            proba = dict(zip(keys, map(float, p), strict=True))
        classes = known + [k for k in proba if k not in known]
        got = learner.utility_of(proba)
        want = reference_utility(kind, classes, proba)
        assert got == pytest.approx(want, rel=1e-12, abs=1e-12), (kind, classes, proba)
        assert learner.classes == tuple(known)  # utility_of changes nothing


def test_decisions_are_the_gates_decisions_on_those_utilities():
    """Each ask is decide_utility_one of the reference utility on a twin gate, and the
    classes grow in first-seen order."""
    dicts = [{}, {"a": 1.0}, {"a": 0.6, "b": 0.4}, {"b": 0.5, "a": 0.5},
             {"c": 0.2, "a": 0.7, "b": 0.1}, {"a": 0.1, "d": 0.9}] * 40
    for strategy in ("quantile", "variable_uncertainty", "split", "random"):
        for kind in UTILITIES:
            learner = GatedClassifier(Stub(*dicts), StreamGate(strategy, 0.3, utility=kind,
                                                               seed=3))
            twin = StreamGate(strategy, 0.3, utility=kind, seed=3)
            classes: list = []
            for proba in dicts:
                want_u = reference_utility(kind, classes + [k for k in proba
                                                            if k not in classes], proba)
                y_pred, ask = learner.predict_one({})
                assert ask == twin.decide_utility_one(want_u)
                assert y_pred == (max(proba, key=proba.get) if proba else None)
                classes += [k for k in proba if k not in classes]
                assert learner.classes == tuple(classes)
            assert same_state(learner.gate, twin)


def top_gap(p):
    """1 - (p1 - p2) of one row, as a user writes it for StreamGate(utility=f)."""
    a, b = -np.inf, 0.0
    for x in p:
        if x > a:
            a, b = x, max(a, 0.0)
        elif x > b:
            b = x
    return 1.0 - (a - b)


def test_a_gate_with_its_own_row_utility():
    """StreamGate(utility=f) gets the row over the known classes, padded with zeros: its
    utilities, and so its decisions, equal the built-in margin's."""
    dicts = [{}, {"a": 1.0}, {"a": 0.6, "b": 0.4}, {"c": 0.2, "a": 0.7, "b": 0.1},
             {"a": 0.1, "d": 0.9}, {"d": 1.0}] * 30
    custom = GatedClassifier(Stub(*dicts), StreamGate("quantile", 0.3, utility=top_gap))
    builtin = GatedClassifier(Stub(*dicts), StreamGate("quantile", 0.3, utility="margin"))
    for proba in dicts:
        assert custom.utility_of(proba) == pytest.approx(builtin.utility_of(proba), abs=1e-12)
        assert custom.predict_one({}) == builtin.predict_one({})
    assert custom.classes == builtin.classes == ("a", "b", "c", "d")


def test_no_opinion_is_asked_while_the_budget_allows():
    learner = GatedClassifier(Stub({}, {"a": 1.0}),
                              StreamGate("variable_uncertainty", 0.5, window=10))
    assert learner.predict_one({}) == (None, True)  # nothing known: ask
    assert learner.predict_one({}) == ("a", True)  # one class: no opinion either
    assert learner.utility_of({"a": 1.0}) == NO_OPINION
    learner.learn_one({}, "b")  # a second class known: now {"a": 1} is confident
    assert learner.classes == ("a", "b")
    assert learner.utility_of({"a": 1.0}) == 0.0


def test_class_set_grows_in_a_river_tree_without_raising():
    """A Hoeffding tree on ImageSegments starts with an empty dict and gains one class per
    new label: every item is decided, the classes come in first-seen order, the gate's
    state carries on across every change of C."""
    gate = StreamGate("quantile", 0.2, utility="entropy")
    learner = GatedClassifier(tree.HoeffdingTreeClassifier(), gate)
    seen_keys: list = []
    sizes = set()
    asks = 0
    for x, y in datasets.ImageSegments():
        proba, ask = learner.predict_proba_one(x)
        seen_keys += [k for k in proba if k not in seen_keys]
        sizes.add(len(proba))
        if ask:
            asks += 1
            learner.learn_one(x, y)
            seen_keys += [y] if y not in seen_keys else []
    assert learner.classes == tuple(seen_keys)
    assert sorted(learner.classes) == sorted({y for _, y in datasets.ImageSegments()})
    assert {0, 1, 2, 7} <= sizes  # the dicts really grew from empty to all seven classes
    assert gate.stats.seen == 2310 and gate.stats.queried == asks
    assert 0.15 * 2310 <= asks <= 1.05 * 0.2 * 2310  # quantile without hard_cap


# The comparison with river's EntropySampler. Both learners run the same pipeline on the
# same data in the same order. The first WARM items are labelled for both (and counted in
# neither): river's sampler asks with probability (entropy / log2 of the non-zero classes)
# ** 3, so a dict with zero entropy (the empty dict a softmax pipeline starts with, or a
# one-class dict) is never asked and such a model never gets a label. Then, for each of
# river's seeds, the gate's budget is the share of items river's run asked for, with
# hard_cap=True, and alcore's learner gets a label only while it has had fewer than river's
# run had: never more labels. One setting for both data sets, chosen for a reason and not
# per data set: the quantile filter (decides by rank among recent utilities, so the scale
# change of a growing class set cannot starve or flood it) over the margin utility (in
# [0, 1] at every C, unlike least confidence's 1 - 1/C or entropy's new ln C).
WARM = 10
SEEDS = range(5)
PIPELINES = {
    "Phishing, StandardScaler | LogisticRegression": (
        datasets.Phishing,
        lambda: preprocessing.StandardScaler() | linear_model.LogisticRegression()),
    "ImageSegments, StandardScaler | SoftmaxRegression": (
        datasets.ImageSegments,
        lambda: preprocessing.StandardScaler() | linear_model.SoftmaxRegression()),
}


def progressive(model, dataset, cap: int | None = None) -> tuple[float, int]:
    """Progressive (test-then-train) accuracy over the stream, and the labels used."""
    accuracy = metrics.Accuracy()
    labels = 0
    for i, (x, y) in enumerate(dataset()):
        if i < WARM:
            accuracy.update(y, model.classifier.predict_one(x))
            model.classifier.learn_one(x, y)
            continue
        y_pred, ask = model.predict_one(x)
        # river's samplers return the empty dict itself as y_pred before any class.
        accuracy.update(y, None if y_pred == {} else y_pred)
        if ask and (cap is None or labels < cap):
            labels += 1
            model.learn_one(x, y)
    return accuracy.get(), labels


@pytest.fixture(scope="module")
def river_runs():
    return {name: [progressive(active.EntropySampler(make(), seed=s), dataset)
                   for s in SEEDS] for name, (dataset, make) in PIPELINES.items()}


def matched_runs(name, river_runs, utility=None):
    dataset, make = PIPELINES[name]
    items = sum(1 for _ in dataset()) - WARM
    runs = []
    for _, river_labels in river_runs[name]:
        gate = StreamGate("quantile", river_labels / items, utility="margin", hard_cap=True)
        runs.append(progressive(GatedClassifier(make(), gate, utility=utility), dataset,
                                cap=river_labels))
    return runs


@pytest.mark.parametrize("name", list(PIPELINES))
def test_same_or_better_accuracy_than_entropy_sampler_at_equal_labels(name, river_runs):
    theirs = river_runs[name]
    ours = matched_runs(name, river_runs)
    for (_, our_labels), (_, their_labels) in zip(ours, theirs, strict=True):
        assert 0.95 * their_labels <= our_labels <= their_labels
    mean_ours = statistics.mean(a for a, _ in ours)
    mean_theirs = statistics.mean(a for a, _ in theirs)
    assert mean_ours >= mean_theirs, (ours, theirs)


@pytest.mark.parametrize("name", list(PIPELINES))
def test_the_comparison_can_fail(name, river_runs):
    """The same loop with the utility turned upside down (the most confident items asked)
    loses to river's sampler: the comparison above measures the choice of items."""
    ours = matched_runs(name, river_runs, utility=lambda p: max(p.values(), default=1.0))
    theirs = river_runs[name]
    assert statistics.mean(a for a, _ in ours) < statistics.mean(a for a, _ in theirs) - 0.01


def test_learn_one_passes_the_label_on():
    stub = Stub({"a": 1.0})
    learner = GatedClassifier(stub, StreamGate("quantile", 0.1))
    learner.learn_one({"f": 1.0}, "z")
    assert stub.learnt == [({"f": 1.0}, "z")]
    assert learner.classes == ("z",)
    with pytest.raises(alcore.InvalidInputError, match=r"^y must be a hashable class label "
                       r"\(as river's are\), got list$"):
        learner.learn_one({}, ["z"])
    assert stub.learnt == [({"f": 1.0}, "z")] and learner.classes == ("z",)


BAD_DICTS = [
    ([0.5, 0.5], r"^predict_proba_one must return a dict of class -> probability, got list$"),
    (None, r"^predict_proba_one must return a dict of class -> probability, got NoneType$"),
    ({"a": math.nan, "b": 0.5},
     r"^predict_proba_one's probabilities must be finite: class 'a' has nan; the classifier "
     r"must return probabilities \(replace or drop that item: a rejected call changes "
     r"nothing\)$"),
    ({"a": 0.5, "b": math.inf},
     r"^predict_proba_one's probabilities must be finite: class 'b' has inf;"),
    ({"a": 1.2, "b": -0.2},
     r"^predict_proba_one's probabilities must lie in \[0, 1\]: class 'a' has 1.2;"),
    ({"a": -0.1, "b": 1.1},
     r"^predict_proba_one's probabilities must lie in \[0, 1\]: class 'a' has -0.1;"),
    ({"a": 0.5, "new": 0.2},
     r"^predict_proba_one's probabilities must sum to 1 \(they sum to 0.7, atol=0.001\); "
     r"the classifier's dict is \{'a': 0.5, 'new': 0.2\}$"),
    ({"a": "0.5", "b": 0.5},
     r"^predict_proba_one must return a dict of hashable class -> float probability, got "
     r"\{'a': '0.5', 'b': 0.5\}$"),
]


@pytest.mark.parametrize("strategy", ["quantile", "variable_uncertainty", "split"])
@pytest.mark.parametrize("bad, message", BAD_DICTS)
def test_bad_dicts_are_refused_and_change_nothing(strategy, bad, message):
    good = [{"a": 0.9, "b": 0.1}, {"a": 0.4, "b": 0.6}]
    learner = GatedClassifier(Stub(*good, bad), StreamGate(strategy, 0.3, seed=1))
    for _ in good:
        learner.predict_one({})
    before = learner.gate.to_json(), learner.classes
    for call in (lambda: learner.predict_one({}), lambda: learner.predict_proba_one({}),
                 lambda: learner.utility_of(bad)):
        with pytest.raises(alcore.InvalidInputError, match=message):
            call()
        assert (learner.gate.to_json(), learner.classes) == before


def test_custom_utility():
    seen = []

    def priority(proba):
        seen.append(proba)
        return proba.get("urgent", 0.0)

    dicts = [{}, {"urgent": 0.2, "calm": 0.8}, {"urgent": 0.9, "calm": 0.1}] * 30
    learner = GatedClassifier(Stub(*dicts), StreamGate("quantile", 0.3, seed=2),
                              utility=priority)
    twin = StreamGate("quantile", 0.3, seed=2)
    for proba in dicts:
        assert learner.predict_one({})[1] == twin.decide_utility_one(proba.get("urgent", 0.0))
    assert seen == dicts  # called on every checked dict, the empty ones too
    assert learner.gate.to_json() == twin.to_json()
    assert learner.utility_of({"urgent": 0.5, "calm": 0.5}) == 0.5


@pytest.mark.parametrize("returned, message", [
    ("high", r"^utility\(proba\) must return a float, got str$"),
    (None, r"^utility\(proba\) must return a float, got NoneType$"),
    (True, r"^utility\(proba\) must return a float, got bool$"),
    (math.nan, r"^utility\(proba\) must return a finite number with \|u\| <= 1e150, got nan "
               r"for \{'a': 0.5, 'b': 0.5\}$"),
    (1e200, r"^utility\(proba\) must return a finite number with \|u\| <= 1e150, got 1e\+200"),
])
def test_bad_custom_utility_is_refused_and_changes_nothing(returned, message):
    learner = GatedClassifier(Stub({"a": 0.5, "b": 0.5}), StreamGate("quantile", 0.3),
                              utility=lambda p: returned)
    before = learner.gate.to_json()
    with pytest.raises(alcore.InvalidInputError, match=message):
        learner.predict_one({})
    assert learner.gate.to_json() == before and learner.classes == ()


def test_numpy_scalars_are_numbers():
    learner = GatedClassifier(Stub({"a": np.float32(0.25), "b": np.float64(0.75)}),
                              StreamGate("quantile", 0.3), utility=lambda p: np.float32(0.5))
    assert learner.predict_one({}) == ("b", True)
    for kind in UTILITIES:  # numpy scalar utilities take the gate's public path
        dicts = [{"a": np.float32(0.25), "b": np.float32(0.75)},
                 {"a": np.float32(0.5), "b": np.float32(0.5)}] * 20
        learner = GatedClassifier(Stub(*dicts), StreamGate("quantile", 0.3, utility=kind))
        twin = GatedClassifier(Stub(*[{k: float(p) for k, p in d.items()} for d in dicts]),
                               StreamGate("quantile", 0.3, utility=kind))
        assert [learner.predict_one({}) for _ in dicts] == [twin.predict_one({})
                                                            for _ in dicts]


@pytest.mark.parametrize("make, message", [
    (lambda: GatedClassifier(object(), StreamGate("quantile", 0.1)),
     r"^classifier must have a predict_proba_one method \(a river classifier or pipeline\), "
     r"got object$"),
    (lambda: GatedClassifier(Stub({}), "quantile"),
     r"^gate must be an alcore.stream.StreamGate, got str$"),
    (lambda: GatedClassifier(Stub({}), StreamGate("quantile", 0.1, logits=True)),
     r"^gate must take probabilities \(logits=False\)"),
    (lambda: GatedClassifier(Stub({}), StreamGate("fixed", 0.1)),
     r"^the fixed strategy compares confidence with 1/C \+ budget \(1 - 1/C\) and needs the "
     r"class count up front"),
    (lambda: GatedClassifier(Stub({}), StreamGate("quantile", 0.1), utility="margin"),
     r"^utility must be a callable proba -> float or None, got str$"),
    (lambda: GatedClassifier(Stub({}), StreamGate("quantile", 0.1), budget=0.1),
     r"budget"),
])
def test_bad_construction(make, message):
    with pytest.raises(alcore.InvalidInputError, match=message):
        make()


def test_fixed_strategy_with_the_final_class_count():
    gate = StreamGate("fixed", 0.2, classes=3, window=10)
    learner = GatedClassifier(Stub({}, {"a": 0.9, "b": 0.1}, {"a": 0.4, "b": 0.35, "c": 0.25}),
                              gate)
    # Least confidence: 1/3 + 0.2 (2/3) = 0.4667 is the confidence threshold.
    assert [learner.predict_one({})[1] for _ in range(3)] == [True, False, True]


def test_the_adapter_imports_no_river():
    code = ("import sys, alcore; assert 'alcore.integrations.river' not in sys.modules; "
            "import alcore.integrations.river; "
            "print(sorted(m for m in sys.modules if m == 'river' or m.startswith('river.')))")
    # Run outside the checkout: there `import alcore` would find the source folder first,
    # which has no compiled core in a non-editable install (CI's).
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=os.sep).stdout
    assert out.strip() == "[]"


def test_drop_in_for_entropy_sampler_loop():
    """river's own loop (its EntropySampler docstring's) runs unchanged."""
    model = GatedClassifier(preprocessing.StandardScaler() | linear_model.LogisticRegression(),
                            StreamGate("quantile", 0.2, utility="margin"))
    metric = metrics.Accuracy()
    used = 0
    for x, y in itertools.islice(datasets.Phishing(), 500):
        y_pred, ask = model.predict_one(x)
        metric.update(y, y_pred)
        if ask:
            used += 1
            model.learn_one(x, y)
    assert 0.15 * 500 <= used <= 0.2 * 500 + 1
    assert metric.get() > 0.8
