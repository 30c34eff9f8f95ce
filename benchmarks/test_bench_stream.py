"""Stream gating: alcore's decide_one / decide_many against scikit-activeml's budget
managers and river's EntropySampler, per item, in one run."""

from __future__ import annotations

import time

import numpy as np
import pytest
from benchutil import record

from alcore.stream import StreamGate

ITEMS = 1000  # items per benchmark call, so timer overhead is amortised


@pytest.fixture(scope="module")
def rows():
    rng = np.random.default_rng(11)
    z = rng.standard_normal((ITEMS, 10)) * 3
    p = np.exp(z - z.max(axis=1, keepdims=True))
    return (p / p.sum(axis=1, keepdims=True)).astype(np.float32)


def alcore_loop(rows):
    # scikit-activeml's default window, so both gates do the same work per item.
    gate = StreamGate("variable_uncertainty", 0.1, window=100)
    decide = gate.decide_one
    return lambda: [decide(r) for r in rows]


def skactiveml_loop(rows):
    from skactiveml.stream.budgetmanager import VariableUncertaintyBudgetManager

    manager = VariableUncertaintyBudgetManager(budget=0.1)
    utilities = 1 - rows.max(axis=1).astype(np.float64)
    candidate = np.zeros((1, 1))

    def run():
        for u in utilities:
            queried = manager.query_by_utility(np.array([u]))
            manager.update(candidate, queried)

    return run


def river_loop(rows):
    from river import active, base

    class FixedProbabilities(base.Classifier):
        def __init__(self, table):
            self.table = table

        def learn_one(self, x, y):
            pass

        def predict_proba_one(self, x):
            return self.table[x["i"]]

    table = [dict(enumerate(map(float, r))) for r in rows]
    sampler = active.EntropySampler(FixedProbabilities(table), seed=0)
    items = [{"i": i} for i in range(len(rows))]
    return lambda: [sampler.predict_proba_one(x) for x in items]


LOOPS = {"alcore": alcore_loop, "scikit-activeml VariableUncertaintyBudgetManager":
         skactiveml_loop, "river active.EntropySampler": river_loop}


@pytest.mark.parametrize("contender", list(LOOPS))
def test_per_item_decision(benchmark, rows, contender):
    benchmark.group = f"stream: {ITEMS} one-row decisions, 10 classes"
    record(benchmark, contender, "alcore" if contender == "alcore" else "peer")
    benchmark(LOOPS[contender](rows))


def test_decide_one_latency_distribution(benchmark, rows):
    """p50 / p99 of single calls from Python (targets <= 1 us / <= 5 us)."""
    gate = StreamGate("variable_uncertainty", 0.1)
    times = []
    for _ in range(20):
        for r in rows:
            start = time.perf_counter_ns()
            gate.decide_one(r)
            times.append(time.perf_counter_ns() - start)
    times = np.array(times[ITEMS:]) * 1e-9  # first pass discarded
    benchmark.group = "stream: decide_one latency (absolute time)"
    benchmark.extra_info["p50_s"] = float(np.percentile(times, 50))
    benchmark.extra_info["p99_s"] = float(np.percentile(times, 99))
    record(benchmark, "decide_one (median; p50/p99 in extra_info)", "absolute")
    benchmark(gate.decide_one, rows[0])


def test_decide_many_throughput(benchmark):
    rng = np.random.default_rng(12)
    z = rng.standard_normal((10_000_000, 10), dtype=np.float32) * 3
    z -= z.max(axis=1, keepdims=True)
    np.exp(z, out=z)
    z /= z.sum(axis=1, keepdims=True)
    gate = StreamGate("variable_uncertainty", 0.1)
    benchmark.group = "stream: decide_many, 10M x 10 float32 (absolute time)"
    record(benchmark, "decide_many", "absolute")
    out = benchmark.pedantic(gate.decide_many, args=(z,), rounds=3, iterations=1,
                             warmup_rounds=1)
    assert out.shape == (10_000_000,)
