"""The river adapter's per-item overhead: alcore's GatedClassifier against river's own
active.EntropySampler, both wrapping the same stub classifier, in one run.

The stub's predict_proba_one returns a precomputed dict (a table lookup), so what is timed
is the wrapper: checking the dict, its utility, the decision and the argmax. The stub alone
is timed too (role "floor": the classifier's own cost, which no wrapper avoids), and every
contender records ``overhead_us_per_item``, its time per item minus the stub's, measured in
the same benchmark (best of 5 loops each, so a noisy neighbour hits both alike).
"""

from __future__ import annotations

import timeit

import numpy as np
import pytest
from benchutil import median_seconds, record

from alcore.integrations.river import GatedClassifier
from alcore.stream import StreamGate

ITEMS = 1000  # predict_one calls per benchmark call, so timer overhead is amortised
CLASSES = (2, 7)  # Phishing's and ImageSegments' class counts
CONTENDERS = ("alcore GatedClassifier", "river active.EntropySampler",
              "the stub's predict_proba_one alone")


class TableClassifier:
    """A classifier whose predict_proba_one(x) is the precomputed dict of item x["i"]."""

    def __init__(self, table):
        self.table = table

    def predict_proba_one(self, x):
        return self.table[x["i"]]

    def learn_one(self, x, y):
        pass


def table(classes: int, seed: int = 21) -> list[dict]:
    """ITEMS softmax dicts over ``classes`` string labels, as river's models return."""
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((ITEMS, classes)) * 2
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    labels = [f"class{j}" for j in range(classes)]
    return [dict(zip(labels, map(float, row), strict=True)) for row in p]


def make_call(contender: str, classifier: TableClassifier, utility: str):
    if contender.startswith("alcore"):
        return GatedClassifier(classifier, StreamGate("quantile", 0.1,
                                                      utility=utility)).predict_one
    if contender.startswith("river"):
        from river import active

        return active.EntropySampler(classifier, seed=0).predict_one
    return classifier.predict_proba_one


def per_item(call, items) -> float:
    """Seconds per call of the best of 5 loops over ``items``."""
    def loop():
        for x in items:
            call(x)

    return min(timeit.repeat(loop, number=1, repeat=5)) / len(items)


@pytest.mark.parametrize("contender", CONTENDERS)
@pytest.mark.parametrize("utility", ["entropy", "margin"])
@pytest.mark.parametrize("classes", CLASSES)
def test_predict_one_overhead(benchmark, classes, utility, contender):
    """Target: alcore's wrapper costs no more per item than river's EntropySampler (whose
    entropy is alcore's entropy utility's work; margin is the setting tests/test_river.py
    compares accuracy with)."""
    benchmark.group = (f"river adapter: {ITEMS} predict_one calls, {classes} classes, stub "
                       f"classifier, gate utility {utility}")
    role = {"alcore": "alcore", "river": "peer"}.get(contender.split()[0], "floor")
    record(benchmark, contender, role)
    classifier = TableClassifier(table(classes))
    items = [{"i": i} for i in range(ITEMS)]
    call = make_call(contender, classifier, utility)
    results = [call(x) for x in items]  # warm, and checked below
    if role != "floor":
        assert all(isinstance(ask, bool) for _, ask in results)
        assert [y for y, _ in results] == [max(d, key=d.get) for d in classifier.table]

    def loop():
        for x in items:
            call(x)

    benchmark(loop)
    stub = per_item(classifier.predict_proba_one, items)
    median = median_seconds(benchmark)
    mine = median / ITEMS if median is not None else per_item(call, items)
    benchmark.extra_info["us_per_item"] = mine * 1e6
    benchmark.extra_info["stub_us_per_item"] = stub * 1e6
    benchmark.extra_info["overhead_us_per_item"] = (mine - stub) * 1e6
