"""Stream gating: alcore's decide_one / decide_many against scikit-activeml's budget
managers and river's EntropySampler, per item, in one run."""

from __future__ import annotations

import time

import numpy as np
import pytest
from benchutil import floor, median_seconds, record

from alcore.stream import UTILITIES, StreamGate

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


@pytest.mark.parametrize("utility", list(UTILITIES))
def test_decide_one_latency_distribution(benchmark, sizes, utility):
    """decide_one from Python over a loop of 50,000 single rows (targets: p50 <= 1 us,
    p99 <= 5 us), timed by :func:`time_each_call`."""
    calls = sizes.decide_one_calls
    row_list = list(probability_rows(calls, seed=13))  # views made before any timing
    gate = StreamGate("variable_uncertainty", 0.1, utility=utility)
    decide = gate.decide_one
    benchmark.group = f"stream: decide_one, {calls} calls, variable_uncertainty (absolute time)"
    record(benchmark, f"decide_one, {utility} (the loop of {calls})", "absolute")

    time_each_call(benchmark, decide, row_list)


def time_each_call(benchmark, call, items):
    """Benchmark the uninstrumented loop of ``call(item)`` (its median / calls:
    ``loop_per_call_s``), then time every call of an instrumented loop: mean, p50 and p99,
    each including one perf_counter_ns pair (its own cost recorded as ``timer_s``)."""

    def loop():
        for item in items:
            call(item)

    benchmark.pedantic(loop, rounds=5, iterations=1, warmup_rounds=1)
    clock = time.perf_counter_ns
    calls = len(items)
    times = np.empty(calls, dtype=np.int64)
    for i, item in enumerate(items):
        start = clock()
        call(item)
        times[i] = clock() - start
    empty = np.empty(calls, dtype=np.int64)
    for i in range(calls):
        start = clock()
        empty[i] = clock() - start
    benchmark.extra_info["mean_s"] = float(times.mean()) * 1e-9
    benchmark.extra_info["p50_s"] = float(np.percentile(times, 50)) * 1e-9
    benchmark.extra_info["p99_s"] = float(np.percentile(times, 99)) * 1e-9
    benchmark.extra_info["timer_s"] = float(np.percentile(empty, 50)) * 1e-9
    median = median_seconds(benchmark)
    if median is not None:
        benchmark.extra_info["loop_per_call_s"] = median / calls


@pytest.mark.parametrize("contender", ["alcore decide_utility_one",
                                       "scikit-activeml query_by_utility + update"])
def test_decide_utility_one(benchmark, sizes, contender):
    """Caller-computed utilities (a regressor's variance) gated one by one with the
    variable strategy: alcore's per-item call against scikit-activeml's budget manager
    (the same decisions; tests/test_gate_utilities.py), p50/p99 per call in extra_info."""
    # A tenth of decide_one's calls: scikit-activeml takes tens of microseconds per item.
    calls = max(1, sizes.decide_one_calls // 10)
    utilities = np.random.default_rng(14).gamma(0.7, 0.4, size=calls).tolist()
    benchmark.group = f"stream: one caller utility per call, {calls} calls, variable_uncertainty"
    if contender.startswith("alcore"):
        record(benchmark, contender, "alcore")
        time_each_call(benchmark, StreamGate("variable_uncertainty", 0.1,
                                             window=100).decide_utility_one, utilities)
        return
    from skactiveml.stream.budgetmanager import VariableUncertaintyBudgetManager

    record(benchmark, contender, "peer")
    manager = VariableUncertaintyBudgetManager(budget=0.1, w=100)
    candidate = np.zeros((1, 1))

    def decide(u):
        manager.update(candidate, manager.query_by_utility(np.array([u])))

    time_each_call(benchmark, decide, utilities)


def probability_rows(n: int, seed: int, classes: int = 10) -> np.ndarray:
    """n softmax rows of 10 classes, float32 (N, 10)."""
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((n, classes), dtype=np.float32) * 3
    z -= z.max(axis=1, keepdims=True)
    np.exp(z, out=z)
    z /= z.sum(axis=1, keepdims=True)
    return z


@pytest.fixture(scope="module")
def rows_2m_x_10(sizes):
    return probability_rows(sizes.rows("2M"), seed=12)


@pytest.mark.parametrize("contender", ["decide_many", "floor"])
@pytest.mark.parametrize("utility", list(UTILITIES))
def test_decide_many_throughput(benchmark, sizes, rows_2m_x_10, utility, contender):
    """Target: >= 50 M rows/s on AVX2 with each utility (``rows_per_s`` in extra_info)."""
    z = rows_2m_x_10
    benchmark.group = (f"stream: decide_many {sizes.name('2M')} x 10 f32, variable_uncertainty, "
                       f"{utility}")
    benchmark.extra_info["rows"] = len(z)
    if contender == "floor":
        floor(benchmark, z)
        return
    gate = StreamGate("variable_uncertainty", 0.1, utility=utility)
    record(benchmark, "alcore", "alcore")
    out = benchmark.pedantic(gate.decide_many, args=(z,), rounds=5, iterations=1,
                             warmup_rounds=1)
    assert out.shape == (len(z),)
    median = median_seconds(benchmark)
    if median is not None:
        benchmark.extra_info["rows_per_s"] = len(z) / median
