"""Uncertainty scoring + top-k: alcore against scikit-activeml, plain numpy and the memory
floor, in one run. Ratios: ``python benchmarks/report.py`` (see benchmarks/RESULTS.md)."""

from __future__ import annotations

import numpy as np
import pytest
from benchutil import record

import alcore
from alcore import _numpy_reference

SCORES = ["entropy", "margin"]
SKACTIVEML_METHOD = {"entropy": "entropy", "margin": "margin_sampling"}
CONTENDERS = ["alcore", "scikit-activeml", "numpy", "floor"]


def contender_call(contender: str, score: str, probs: np.ndarray, k: int):
    if contender == "alcore":
        return lambda: alcore.select_top(probs, k, score=score)
    if contender == "scikit-activeml":
        from skactiveml.pool import uncertainty_scores

        def skactiveml_top():
            scores = uncertainty_scores(probs, method=SKACTIVEML_METHOD[score])
            return np.argpartition(-scores, k)[:k]

        return skactiveml_top
    if contender == "numpy":
        return lambda: _numpy_reference.top_k(_numpy_reference.score(score, probs), k)
    buffer = np.empty_like(probs)
    buffer[...] = 0  # pre-touch
    return lambda: np.copyto(buffer, probs)  # one read and one write of the matrix


def run(benchmark, contender, score, probs, shape, k):
    benchmark.group = f"{shape} {score} top{k}"
    record(benchmark, "memory floor (one copy)" if contender == "floor" else contender,
           "floor" if contender == "floor" else
           "alcore" if contender == "alcore" else "peer")
    call = contender_call(contender, score, probs, k)
    result = benchmark(call)
    if contender != "floor":
        assert len(result) == k


@pytest.mark.parametrize("contender", CONTENDERS)
@pytest.mark.parametrize("score", SCORES)
def test_pool_1m_x_10(benchmark, sizes, pool_1m_x_10, score, contender):
    run(benchmark, contender, score, pool_1m_x_10, f"{sizes.name('1M')} x 10 f32", sizes.k_large)


@pytest.mark.parametrize("contender", CONTENDERS)
@pytest.mark.parametrize("score", SCORES)
def test_pool_100k_x_1000(benchmark, sizes, pool_100k_x_1000, score, contender):
    run(benchmark, contender, score, pool_100k_x_1000, f"{len(pool_100k_x_1000)} x 1000 f32"
        if sizes.smoke else "100k x 1000 f32", sizes.k_large)


ROW = np.array([[0.05, 0.3, 0.1, 0.05, 0.2, 0.05, 0.05, 0.1, 0.05, 0.05]], dtype=np.float32)


@pytest.mark.parametrize("call", ["scores.margin", "select_top"])
def test_single_row_overhead(benchmark, call):
    """One 10-class row: the whole call, validation included (target <= 5 us)."""
    benchmark.group = "one 10-class row (absolute time)"
    record(benchmark, call, "absolute")
    if call == "scores.margin":
        result = benchmark(alcore.scores.margin, ROW)
        assert result.shape == (1,)
    else:
        result = benchmark(alcore.select_top, ROW, 1)
        assert result[0] == 0


@pytest.mark.parametrize("contender", ["alcore", "numpy", "floor"])
def test_bald_20_x_100k_x_10(benchmark, sizes, samples_20_x_100k_x_10, contender):
    samples = samples_20_x_100k_x_10
    benchmark.group = f"BALD 20 x {sizes.name('100k')} x 10 f32"
    record(benchmark, "memory floor (one read)" if contender == "floor" else contender,
           {"alcore": "alcore", "numpy": "peer"}.get(contender, "floor"))
    if contender == "alcore":
        result = benchmark(alcore.scores.bald, samples)
    elif contender == "numpy":
        result = benchmark(_numpy_reference.bald, samples)
    else:
        raw = samples.reshape(-1).view(np.uint32)
        result = benchmark(np.count_nonzero, raw)  # one read of the tensor
        return
    assert result.shape == (samples.shape[1],)
