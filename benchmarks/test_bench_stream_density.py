"""Density-aware stream decisions (alcore.stream_density.DensityGate): per-item latency
(p50/p99 in extra_info) with a full window of W = 10,000 embeddings of d = 64, batch
throughput, and scikit-activeml's StreamDensityBasedAL per item on the same stream."""

from __future__ import annotations

import time

import numpy as np
import pytest
from benchutil import SYNTHETIC_SHAPES, floor, median_seconds, record
from test_bench_stream import time_each_call

from alcore.stream import StreamGate
from alcore.stream_density import DensityGate

D = 64


def window_size(sizes) -> int:
    return 500 if sizes.smoke else 10_000


def stream(embeddings, sizes, shape):
    """(window-filling embeddings, the timed items' embeddings, their utilities)."""
    w = window_size(sizes)
    x = embeddings(shape, "100k", D)
    calls = sizes.decide_one_calls
    utilities = np.random.default_rng(21).gamma(0.7, 0.4, size=calls)
    return x[:w], np.ascontiguousarray(x[w:w + calls]), utilities


def filled_gate(sizes, fill, density):
    gate = DensityGate(StreamGate("variable_uncertainty", 0.1, window=100),
                       window=window_size(sizes), density=density, k=10)
    gate.decide_many(np.zeros(len(fill)), fill)
    return gate


@pytest.mark.parametrize("contender", ["alcore", "floor"])
@pytest.mark.parametrize("density", ["ldf", "similarity"])
@pytest.mark.parametrize("shape", SYNTHETIC_SHAPES)
def test_decide_one_full_window(benchmark, embeddings, sizes, shape, density, contender):
    """One DensityGate.decide_one per item from Python with a full window (W = 10,000,
    d = 64): the loop's time per call, and p50/p99 of each call (perf_counter_ns). The
    floor: one read of the window's W x d float32 values, which every item's exact
    distances must make (2.56 MB: beyond L2, so the kernel is bound by this read)."""
    fill, items, utilities = stream(embeddings, sizes, shape)
    w = window_size(sizes)
    benchmark.group = (f"stream density: decide_one, W={w}, d={D}, {len(items)} calls, "
                       f"{density}, {shape}")
    if contender == "floor":
        floor(benchmark, fill, passes=len(items), shape=shape)  # one read per call
        return
    gate = filled_gate(sizes, fill, density)
    decide = gate.decide_one
    pairs = list(zip(utilities.tolist(), list(items), strict=True))
    record(benchmark, f"alcore DensityGate.decide_one ({density})", "alcore", shape)
    benchmark.extra_info["window"] = w

    def call(pair):
        decide(pair[0], pair[1])

    time_each_call(benchmark, call, pairs)


@pytest.mark.parametrize("shape", SYNTHETIC_SHAPES)
def test_skactiveml_stream_density_based_al(benchmark, embeddings, sizes, shape):
    """scikit-activeml's StreamDensityBasedAL (query + update per item, the same window
    and stream, a deterministic budget manager) per item: a few hundred items, since each
    takes milliseconds at W = 10,000. Its per-call times are in extra_info as for alcore."""
    stream_mod = pytest.importorskip("skactiveml.stream")
    from skactiveml.base import SkactivemlClassifier
    from skactiveml.stream.budgetmanager import VariableUncertaintyBudgetManager

    class Rows(SkactivemlClassifier):
        def __init__(self):
            super().__init__(classes=[0, 1])

        def fit(self, X, y, sample_weight=None):
            return self

        def predict_proba(self, X):
            return self.row

    fill, items, utilities = stream(embeddings, sizes, shape)
    calls = max(2, len(items) // 250)
    fill64, items64 = fill.astype(np.float64), items[:calls].astype(np.float64)
    qs = stream_mod.StreamDensityBasedAL(
        window_size=len(fill),
        budget_manager=VariableUncertaintyBudgetManager(budget=0.1, w=100))
    clf = Rows().fit(fill64[:1], np.array([0]))
    clf.row = np.array([[0.5, 0.5]])
    qs.update(fill64, [])  # the same full window
    rows = [np.array([[1 - u / 2, u / 2]]) for u in np.minimum(utilities[:calls], 1.0)]
    benchmark.group = (f"stream density: StreamDensityBasedAL per item, W={len(fill)}, "
                       f"d={D}, {calls} items, {shape}")
    record(benchmark, "scikit-activeml StreamDensityBasedAL query + update", "peer", shape)

    def call(i):
        clf.row = rows[i]
        queried = qs.query(items64[i:i + 1], clf)
        qs.update(items64[i:i + 1], queried)

    time_each_call(benchmark, call, list(range(calls)))


@pytest.mark.parametrize("density", ["ldf", "similarity"])
@pytest.mark.parametrize("shape", SYNTHETIC_SHAPES)
def test_decide_many_throughput(benchmark, embeddings, sizes, shape, density):
    """DensityGate.decide_many over the stream in one call (the same decisions and state
    as one call per item): items per second in extra_info."""
    fill, items, utilities = stream(embeddings, sizes, shape)
    w = window_size(sizes)
    benchmark.group = (f"stream density: decide_many, W={w}, d={D}, {len(items)} items, "
                       f"{density}, {shape}")
    record(benchmark, f"alcore DensityGate.decide_many ({density})", "alcore", shape)
    gates = []

    def setup():
        gates.append(filled_gate(sizes, fill, density))
        return (gates[-1],), {}

    def run(gate):
        gate.decide_many(utilities, items)

    start = time.perf_counter()
    benchmark.pedantic(run, setup=setup, rounds=3, iterations=1)
    median = median_seconds(benchmark)
    if median is None:
        median = (time.perf_counter() - start) / 3  # smoke: setup included, indicative
    benchmark.extra_info["items_per_s"] = len(items) / median
