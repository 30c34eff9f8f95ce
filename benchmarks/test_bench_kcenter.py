"""Greedy k-center: alcore against scikit-activeml's k_greedy_center and two numpy greedies
(direct differences, and the faster norms + matrix-vector form), in one run."""

from __future__ import annotations

import numpy as np
import pytest
from benchutil import record

from alcore.diversity import kcenter


def numpy_greedy_direct(x, labeled, k):
    """The running-minimum greedy as usually written: one (N, d) difference per center."""
    mind = np.full(len(x), np.inf, dtype=np.float32)
    for c in labeled:
        mind = np.minimum(mind, ((x - x[c]) ** 2).sum(axis=1))
    mind[labeled] = -np.inf
    picks = []
    for _ in range(k):
        p = int(np.argmax(mind))
        picks.append(p)
        mind = np.minimum(mind, ((x - x[p]) ** 2).sum(axis=1))
        mind[p] = -np.inf
    return picks


def numpy_greedy_gemv(x, labeled, k):
    """The same greedy with |x|^2 - 2 x.c + |c|^2: one BLAS matrix-vector product per center."""
    sq = np.einsum("ij,ij->i", x, x)
    mind = np.full(len(x), np.inf, dtype=np.float32)
    for c in labeled:
        mind = np.minimum(mind, sq - 2 * (x @ x[c]) + sq[c])
    mind[labeled] = -np.inf
    picks = []
    for _ in range(k):
        p = int(np.argmax(mind))
        picks.append(p)
        mind = np.minimum(mind, sq - 2 * (x @ x[p]) + sq[p])
        mind[p] = -np.inf
    return picks


def skactiveml_greedy(x, labeled, k):
    from skactiveml.pool._core_set import k_greedy_center

    y = np.full(len(x), np.nan)
    y[labeled] = 0
    return k_greedy_center(x, y, batch_size=k, random_state=0)[0]


CONTENDERS = {
    "alcore": lambda x, labeled, k: kcenter(x, k, labeled=labeled),
    "numpy greedy (norms + GEMV)": numpy_greedy_gemv,
    "numpy greedy (direct)": numpy_greedy_direct,
    "scikit-activeml k_greedy_center": skactiveml_greedy,
}


@pytest.mark.parametrize("contender", list(CONTENDERS))
def test_kcenter_100k_x_128(benchmark, embeddings_100k_x_128, contender):
    x = embeddings_100k_x_128
    labeled = np.random.default_rng(6).choice(len(x), size=100, replace=False)
    benchmark.group = "kcenter 100k x 128, 100 labeled, k=100"
    record(benchmark, contender, "alcore" if contender == "alcore" else "peer")
    rounds = 5 if contender == "alcore" else 2
    picks = benchmark.pedantic(CONTENDERS[contender], args=(x, labeled, 100), rounds=rounds,
                               iterations=1, warmup_rounds=0)
    assert len(picks) == 100


def test_kcenter_1m_x_128(benchmark, embeddings_1m_x_128):
    """Target: <= 15 s on 2 cores."""
    x = embeddings_1m_x_128
    labeled = np.random.default_rng(7).choice(len(x), size=1000, replace=False)
    benchmark.group = "kcenter 1M x 128, 1000 labeled, k=1000 (absolute time)"
    record(benchmark, "alcore kcenter", "absolute")
    result = benchmark.pedantic(kcenter, args=(x, 1000), kwargs={"labeled": labeled},
                                rounds=1, iterations=1, warmup_rounds=0)
    assert len(result) == 1000
