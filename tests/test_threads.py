"""Results do not depend on the thread count, and changing it mid-call is safe.

Every parallel public function is run with 1, 2, 3 and 7 threads (7 gives more chunks than
this machine's cores, and chunk boundaries that fall inside runs of tied values) and must
give bit-identical results. The inputs hold many exact ties, so that the tie order (lower
index first) is exercised across chunk boundaries.

Concurrency: another thread changes ``alcore.set_num_threads`` while the calls run. That
runs in a subprocess, so a crash (a write past a buffer sized for fewer chunks) is reported
as a failure with its signal instead of taking the test session down.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import alcore
from alcore import density, diversity, scores

THREADS = (1, 2, 3, 7)
ROW_SCORES = ("least_confidence", "margin", "ratio", "entropy")
SAMPLE_SCORES = ("bald", "variation_ratio", "vote_entropy", "kl_consensus")


def same_bits(a, b, what=""):
    """Equal dtype, shape and bytes (so -0.0 vs 0.0 or a NaN payload would show)."""
    a, b = np.asarray(a), np.asarray(b)
    assert a.dtype == b.dtype and a.shape == b.shape, (what, a.dtype, b.dtype, a.shape, b.shape)
    if a.dtype == object:
        assert a.tolist() == b.tolist(), what
    else:
        assert a.tobytes() == b.tobytes(), f"{what}: first difference at " \
            f"{np.flatnonzero(a.ravel() != b.ravel())[:5]}"


def per_thread_count(fn):
    """fn() with each thread count of THREADS; the results, keyed by the count."""
    out = {}
    for t in THREADS:
        alcore.set_num_threads(t)
        out[t] = fn()
    return out


def assert_thread_independent(fn, what):
    results = per_thread_count(fn)
    for t in THREADS[1:]:
        if isinstance(results[1], tuple):
            for i, (a, b) in enumerate(zip(results[1], results[t], strict=True)):
                same_bits(a, b, f"{what}[{i}] with {t} threads vs 1")
        else:
            same_bits(results[1], results[t], f"{what} with {t} threads vs 1")
    return results[1]


def test_the_check_can_fail():
    # A result that depends on the thread count, or differs only in the sign of zero.
    with pytest.raises(AssertionError):
        assert_thread_independent(lambda: np.array([alcore.get_num_threads()]), "count")
    with pytest.raises(AssertionError):
        same_bits(np.array([0.0]), np.array([-0.0]))
    with pytest.raises(AssertionError):
        same_bits(np.array([1], dtype=np.int32), np.array([1], dtype=np.int64))


def tied_probs(n, c, dtype, seed=0, distinct=64):
    """(n, c) probability rows drawn from `distinct` rows: every score value is tied many
    times, across every chunk boundary."""
    rng = np.random.default_rng(seed)
    rows = rng.dirichlet(np.ones(c), size=distinct).astype(dtype)
    return np.ascontiguousarray(rows[rng.integers(distinct, size=n)])


def clustered(n, d, seed=0, clusters=12):
    rng = np.random.default_rng(seed)
    centers = 5 * rng.standard_normal((clusters, d))
    x = centers[rng.integers(clusters, size=n)] + rng.standard_normal((n, d))
    return x.astype(np.float32)


# 60k x 10 = 600k elements: 9 chunks of the native minimum (65536 elements), so all 7
# threads get work.
N_ROWS, N_CLASSES = 60_000, 10


@pytest.fixture(scope="module", params=[np.float32, np.float64], ids=["f32", "f64"])
def probs(request):
    return tied_probs(N_ROWS, N_CLASSES, request.param)


@pytest.fixture(scope="module")
def labeled():
    mask = np.zeros(N_ROWS, dtype=bool)
    mask[np.random.default_rng(5).choice(N_ROWS, 3000, replace=False)] = True
    return mask


@pytest.mark.parametrize("name", ROW_SCORES)
def test_row_scores(probs, name):
    fn = getattr(scores, name)
    assert_thread_independent(lambda: fn(probs), name)
    assert_thread_independent(lambda: fn(probs * 3, normalize=True), f"{name} normalize")
    logits = np.log(probs + 1e-3)
    assert_thread_independent(lambda: fn(logits, logits=True), f"{name} logits")


def test_entropy_scaled(probs):
    assert_thread_independent(lambda: scores.entropy(probs, scaled=True), "entropy scaled")


@pytest.mark.parametrize("name", SAMPLE_SCORES)
def test_sample_scores(name):
    rng = np.random.default_rng(2)
    members = rng.dirichlet(np.ones(6), size=(8, 16)).astype(np.float32)
    samples = members[:, rng.integers(16, size=20_000)]  # (8, 20000, 6), with ties
    fn = getattr(scores, name)
    assert_thread_independent(lambda: fn(samples), name)


@pytest.mark.parametrize("name", ROW_SCORES)
def test_select_top(probs, labeled, name):
    k = 700
    got = assert_thread_independent(
        lambda: alcore.select_top(probs, k, score=name, labeled=labeled), name)
    # Independent check of the tie order: sort by (score desc, index asc) in numpy.
    s = getattr(scores, name)(probs).astype(np.float64)
    want = np.lexsort((np.arange(N_ROWS), -s))
    want = want[~labeled[want]][:k]
    same_bits(got, want.astype(np.int64), name)
    exclude = np.flatnonzero(np.arange(N_ROWS) % 7 == 0)
    assert_thread_independent(
        lambda: alcore.select_top(probs, k, score=name, labeled=labeled, exclude=exclude),
        f"{name} exclude")


def test_select_top_samples(labeled):
    rng = np.random.default_rng(3)
    samples = rng.dirichlet(np.ones(4), size=(5, 32)).astype(np.float32)
    samples = samples[:, rng.integers(32, size=N_ROWS)]
    assert_thread_independent(
        lambda: alcore.select_top(samples, 500, score="bald", labeled=labeled), "bald top")


def test_top_k():
    # 600k items: 9 chunks of the native minimum; 1000 distinct values, so ~600 ties each.
    rng = np.random.default_rng(4)
    values = rng.integers(1000, size=600_000).astype(np.float32) / 1000
    exclude = rng.random(600_000) < 0.1
    got = assert_thread_independent(lambda: alcore.top_k(values, 2000, exclude=exclude), "top_k")
    want = np.lexsort((np.arange(len(values)), -values.astype(np.float64)))
    same_bits(got, want[~exclude[want]][:2000].astype(np.int64), "top_k vs lexsort")
    assert_thread_independent(lambda: alcore.top_k(values.astype(np.float64), 2000,
                                                   labeled=exclude), "top_k f64")


def test_kcenter():
    x = clustered(20_000, 16)
    # Exact duplicates give tied distances.
    x[10_000:10_500] = x[:500]
    assert_thread_independent(lambda: diversity.kcenter(x, 60, labeled=np.arange(10)), "l2")
    assert_thread_independent(lambda: diversity.kcenter(x, 60, metric="cosine", seed=3),
                              "cosine")


def test_knn_density_flat():
    x = clustered(8_000, 16)
    x[4000:4100] = x[:100]
    assert_thread_independent(
        lambda: tuple(density.knn_density(x, 10, return_neighbors=True)[:3]), "flat")


def test_knn_density_clustered_self_join():
    # Above 100k items knn_density takes the cluster-pruned self-join.
    x = clustered(100_500, 8, clusters=40)
    results = {}
    for t in (1, 7):  # two counts: this path costs seconds per run on 2 cores
        alcore.set_num_threads(t)
        results[t] = density.knn_density(x, 3, exact=True, return_neighbors=True)
    assert results[1].index.kind == "clustered"
    for a, b in zip(results[1][:3], results[7][:3], strict=True):
        same_bits(a, b, "self-join")


def test_spread():
    x = clustered(6_000, 16)
    s = np.round(np.random.default_rng(6).random(6_000), 2)  # ties
    assert_thread_independent(
        lambda: diversity.spread(s, x, 200, min_distance=3.0, labeled=np.arange(20)), "spread")


def test_probcover():
    x = clustered(6_000, 16)
    assert_thread_independent(
        lambda: diversity.probcover(x, 40, radius=4.0, labeled=np.arange(20)), "probcover")


def test_typiclust():
    x = clustered(6_000, 16)
    assert_thread_independent(
        lambda: diversity.typiclust(x, 30, labeled=np.arange(20)), "typiclust")


def test_badge():
    x = clustered(6_000, 16)
    p = tied_probs(6_000, 5, np.float32)
    assert_thread_independent(lambda: diversity.badge(p, x, 40, labeled=np.arange(20)), "badge")
    z = np.log(p)
    assert_thread_independent(lambda: diversity.badge(z, x, 40, logits=True), "badge logits")


def test_cluster_margin():
    x = clustered(6_000, 16)
    p = tied_probs(6_000, 5, np.float32)
    assert_thread_independent(
        lambda: diversity.cluster_margin(p, x, 40, labeled=np.arange(20)), "cluster_margin")


@pytest.mark.parametrize("options", [
    {},
    {"density": "knn"},
    {"diversity": "badge"},
    {"diversity": "spread", "min_distance": 3.0},
    {"diversity": None, "density": "information"},
], ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()) or "default")
def test_select(options):
    x = clustered(6_000, 16)
    p = tied_probs(6_000, 5, np.float32)

    def run():
        sel = alcore.select(p, 50, embeddings=x, labeled=np.arange(20), return_utilities=True,
                            **options)
        return sel.indices, sel.scores, sel.utilities, np.array(sel.reasons, dtype=object)

    assert_thread_independent(run, f"select {options}")


# --- set_num_threads from another thread during calls ------------------------------------

_HAMMER = textwrap.dedent("""
    import sys, threading
    import numpy as np
    import alcore
    from alcore import diversity, scores

    rng = np.random.default_rng(0)
    rows = rng.dirichlet(np.ones(10), size=64).astype(np.float32)
    probs = np.ascontiguousarray(rows[rng.integers(64, size=60_000)])
    values = (rng.integers(1000, size=600_000) / 1000).astype(np.float32)
    emb = (5 * rng.standard_normal((12, 16)))[rng.integers(12, size=20_000)]
    emb = (emb + rng.standard_normal((20_000, 16))).astype(np.float32)
    calls = {
        "select_top": lambda: alcore.select_top(probs, 500),
        "select_top_entropy": lambda: alcore.select_top(probs, 500, score="entropy"),
        "top_k": lambda: alcore.top_k(values, 1000),
        "margin": lambda: scores.margin(probs),
        "entropy": lambda: scores.entropy(probs),
        "kcenter": lambda: diversity.kcenter(emb, 20, labeled=np.arange(5)),
    }
    alcore.set_num_threads(1)
    want = {name: fn() for name, fn in calls.items()}
    stop = threading.Event()

    def toggle():
        counts = [1, 7, 2, 16, 3, 1, 32, 5]
        i = 0
        while not stop.is_set():
            alcore.set_num_threads(counts[i % len(counts)])
            i += 1

    toggler = threading.Thread(target=toggle)
    toggler.start()
    bad = []
    try:
        for _ in range(int(sys.argv[1])):
            for name, fn in calls.items():
                got = fn()
                if got.dtype != want[name].dtype or got.tobytes() != want[name].tobytes():
                    bad.append(name)
    finally:
        stop.set()
        toggler.join()
    print("differ:", sorted(set(bad)))
""")


def test_set_num_threads_during_calls():
    result = subprocess.run([sys.executable, "-c", _HAMMER, "30"], capture_output=True,
                            text=True, cwd=os.sep, timeout=600)
    assert result.returncode == 0, (
        f"exit {result.returncode} (negative = killed by that signal)\n{result.stderr[-3000:]}")
    assert result.stdout.strip().splitlines()[-1] == "differ: []", result.stdout
