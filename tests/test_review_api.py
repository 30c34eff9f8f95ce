"""Hostile review of the issue-8 public API: each test pins a defect found in review."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import alcore
from alcore import InvalidInputError
from alcore import diversity as D


def test_batch_sizer_huge_growth_neither_crashes_nor_half_records():
    # size * growth overflowed to inf and int(inf) raised OverflowError after the round
    # had been appended to the history.
    sizer = alcore.BatchSizer(1000, "plateau", size=10, growth=1e308, rounds=1,
                              max_fraction=1.0)
    sizer.record(10, 0.5)
    sizer.record(20, 0.5)  # no gain: the batch grows, capped at the pool
    assert sizer.next_size() == 1000
    assert len(sizer.history) == 2
    huge = alcore.BatchSizer(1000, "plateau", size=2**1100, rounds=1, max_fraction=1.0)
    huge.record(10, 0.5)
    huge.record(20, 0.5)
    assert huge.next_size() == 1000


def test_batch_sizer_pool_beyond_int64_is_refused():
    # min_fraction * pool_size raised OverflowError for a pool of 2**1100 items.
    with pytest.raises(InvalidInputError, match="pool_size must be <= "):
        alcore.BatchSizer(2**1100, "schedule", fraction=0.5)
    assert alcore.BatchSizer(np.int64(1000), "schedule", fraction=0.5).next_size() == 100


def test_spread_cosine_accepts_an_excluded_zero_row():
    # kcenter(metric="cosine", exclude=[0]) leaves a zero row 0 out; spread refused it
    # ("row 0 has zero norm ... drop it") although exclude= is how one drops it.
    rng = np.random.default_rng(0)
    emb = rng.normal(size=(8, 3)).astype(np.float32)
    emb[0] = 0.0
    scores = np.arange(8, 0, -1, dtype=np.float64)
    got = D.spread(scores, emb, 8, min_distance=0.0, metric="cosine", exclude=[0])
    assert got.tolist() == list(range(1, 8))
    with pytest.raises(InvalidInputError, match="row 0 has zero norm"):
        D.spread(scores, emb, 8, min_distance=0.0, metric="cosine", labeled=[0])


def _typiclust_reference(x, k, labeled, excluded, labels, n_neighbors):
    """TypiClust on given clusters: the cluster with the fewest labeled/picked members
    (then the largest, then the lower label) gives up its most typical available member
    (1 / mean float64 distance to the n_neighbors nearest other members; ties to the lower
    index). Excluded items are not in the pool."""
    x = np.asarray(x, dtype=np.float32).astype(np.float64)
    keep = [i for i in range(len(x)) if i not in excluded]
    size, held = {}, {}
    for i in keep:
        size[labels[i]] = size.get(labels[i], 0) + 1
        held[labels[i]] = held.get(labels[i], 0) + (i in labeled)
    available = {i for i in keep if i not in labeled}
    picks = []
    for _ in range(k):
        cluster = min({labels[i] for i in available},
                      key=lambda c: (held[c], -size[c], c))
        members = [i for i in keep if labels[i] == cluster]

        def typicality(i, members=members):
            if len(members) == 1:
                return 1.0
            dists = sorted(float(np.sqrt(((x[i] - x[j]) ** 2).sum()))
                           for j in members if j != i)
            mean = np.mean(dists[:min(n_neighbors, len(members) - 1)])
            return 1.0 / max(mean, np.finfo(np.float64).tiny)  # duplicates: finite

        best = max((i for i in members if i in available), key=lambda i: (typicality(i), -i))
        picks.append(best)
        available.discard(best)
        held[cluster] += 1
    return picks


def test_typiclust_equal_typicality_goes_to_the_lower_index():
    # Items 5 and 9 are equally typical in cluster 3 ((1 + sqrt 2) / 2 mean distance), but
    # the float64 expanded form made 9 look more typical: it was picked instead of 5.
    x = np.array([[1001, 1003], [997, 997], [1000, 1003], [1002, 1000], [1003, 997],
                  [1002, 999], [1002, 1003], [999, 999], [998, 1003], [1001, 1000],
                  [1000, 999]], dtype=np.float32)
    labels = np.array([3, 2, 0, 3, 0, 3, 0, 0, 3, 3, 0])
    got = D.typiclust(x, 4, exclude=[6], clusters=labels, n_neighbors=2)
    assert got.tolist() == [3, 10, 1, 5]


def test_typiclust_matches_reference_on_tied_integer_grids():
    rng = np.random.default_rng(2)
    for _ in range(60):
        n, d = int(rng.integers(2, 20)), int(rng.integers(1, 3))
        x = rng.integers(-3, 4, size=(n, d)).astype(np.float32) + rng.choice([0.0, 1e3])
        perm = rng.permutation(n)
        n_lab = int(rng.integers(0, n))
        n_exc = int(rng.integers(0, n - n_lab))
        lab, exc = perm[:n_lab].tolist(), perm[n_lab:n_lab + n_exc].tolist()
        k = int(rng.integers(1, n - n_lab - n_exc + 1))
        labels = rng.integers(0, 4, size=n)
        nn = int(rng.integers(1, 5))
        got = D.typiclust(x, k, labeled=lab or None, exclude=exc or None, clusters=labels,
                          n_neighbors=nn)
        assert got.tolist() == _typiclust_reference(x, k, set(lab), set(exc), labels, nn)


@pytest.mark.parametrize("call", [
    lambda e: D.kcenter(e, 1),
    lambda e: D.spread(np.ones(len(e)), e, 1, min_distance=0.1),
    lambda e: alcore.density.knn_density(e, 2),
    lambda e: alcore.select(np.full((len(e), 2), 0.5), 1, embeddings=e),
])
def test_float64_embeddings_beyond_float32_are_named_not_turned_into_inf(call):
    # 1e39 in float64 overflowed in the cast to float32 (RuntimeWarning) and was then
    # reported as "row 3, column 1 is inf", a value the caller never passed.
    emb = np.random.default_rng(0).normal(size=(6, 2))
    emb[3, 1] = 1e39
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        with pytest.raises(InvalidInputError,
                           match=r"embeddings must fit float32 .*row 3, column 1 is 1e\+39"):
            call(emb)


TINY = {np.float64: 5e-324, np.float32: 1e-45}


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_normalize_rows_with_subnormal_sums(dtype):
    # normalize=True renormalised by the reciprocal of the row sum, which overflows for a
    # subnormal sum: least_confidence -inf, margin NaN, entropy inf (silently), and
    # select() crashed with a raw alcore._core.InvalidValue from top_k.
    t = TINY[dtype]
    x = np.array([[t, t], [t, 0], [0.3, 0.7]], dtype=dtype)
    same = np.array([[1, 1], [1, 0], [0.3, 0.7]], dtype=dtype)
    for name in ("least_confidence", "margin", "ratio", "entropy"):
        got = getattr(alcore.scores, name)(x, normalize=True)
        np.testing.assert_allclose(got, getattr(alcore.scores, name)(same, normalize=True),
                                   rtol=1e-6, err_msg=name)
        # [t, t] is the most uncertain row: ranked first, as for [1, 1].
        assert alcore.select_top(x, 3, score=name, normalize=True).tolist() == [0, 2, 1]
        assert alcore.select(x, 3, score=name, normalize=True).indices.tolist() == [0, 2, 1]
    np.testing.assert_allclose(alcore.scores.entropy(x, normalize=True, scaled=True),
                               [1.0, 0.0, alcore.scores.entropy(same, scaled=True,
                                                                normalize=True)[2]],
                               rtol=1e-6)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_normalize_samples_with_subnormal_sums(dtype):
    # Two members, each certain of a different class: BALD = ln 2. With subnormal rows and
    # normalize=True the kernel's reciprocal overflowed and BALD came back 0.
    t = TINY[dtype]
    x = np.array([[[t, 0]], [[0, t]]], dtype=dtype)
    for name in ("bald", "kl_consensus", "vote_entropy"):
        got = getattr(alcore.scores, name)(x, normalize=True)
        np.testing.assert_allclose(got, [np.log(2)], rtol=1e-6, err_msg=name)


def test_sample_scores_of_huge_opposite_logits_do_not_warn():
    z = np.array([[3e38, -3e38], [1.0, 1.0]], dtype=np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        got = alcore.scores.bald(np.stack([z, z]), logits=True)
        picks = alcore.select(np.stack([z, z]), 1, score="variation_ratio",
                              logits=True).indices
    np.testing.assert_array_equal(got, [0.0, 0.0])
    assert picks.tolist() == [0]


def test_cosine_accepts_a_tiny_nonzero_row():
    # [1e-45, 0] squares to 0 in float32, so its norm came out 0 and kcenter/spread
    # refused a non-zero row as "zero norm".
    emb = np.array([[1e-45, 0], [0, 1e-45], [1, 1]], dtype=np.float32)
    assert D.kcenter(emb, 2, metric="cosine", labeled=[2]).tolist() == [0, 1]
    # Unit rows (1, 0), (0, 1), (0.71, 0.71): each pair at least 0.76 apart.
    assert D.spread(np.ones(3), emb, 3, min_distance=0.7, metric="cosine").tolist() == [0, 1, 2]


@pytest.mark.parametrize("call, match", [
    (lambda e: alcore.density.similarity_density(e, n_clusters=0), "n_clusters"),
    (lambda e: alcore.density.similarity_density(e, n_clusters=3.0), "n_clusters"),
    (lambda e: alcore.density.similarity_density(e, seed=-1), "seed"),
    (lambda e: alcore.density.information_density(np.ones(len(e)), e, seed="x"), "seed"),
    (lambda e: alcore.density.knn_density(e, 3, verbose=None), "verbose"),
])
def test_density_options_are_checked_even_where_unused(call, match):
    # n_clusters= and seed= were checked only on the approximate path (N > 20 000 with
    # inverse_euclidean), knn_density's verbose= never: n_clusters=0 passed silently.
    emb = np.random.default_rng(0).normal(size=(20, 3)).astype(np.float32)
    with pytest.raises(InvalidInputError, match=match):
        call(emb)


def test_cluster_margin_checks_n_clusters_with_given_clusters():
    # With clusters= the n_clusters= value was never parsed: n_clusters=0 or "many"
    # passed silently.
    probs = np.full((6, 2), 0.5)
    labels = np.arange(6) % 2
    for bad in (0, "many", 2.5):
        with pytest.raises(InvalidInputError, match="n_clusters"):
            D.cluster_margin(probs, None, 2, clusters=labels, n_clusters=bad)
    assert D.cluster_margin(probs, None, 2, clusters=labels).tolist() == [0, 1]


def test_rejected_select_leaves_a_generator_seed_untouched():
    # density='knn' drew from the Generator, then kcenter(metric='cosine') refused the zero
    # row: the call failed but the caller's Generator had moved on.
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(3), 30)
    emb = rng.normal(size=(30, 4)).astype(np.float32)
    emb[0] = 0.0
    for method, extra in (("kcenter", {}), ("spread", {"min_distance": 0.1})):
        gen = np.random.default_rng(5)
        before = gen.bit_generator.state
        with pytest.raises(InvalidInputError, match="zero norm"):
            alcore.select(probs, 3, embeddings=emb, density="knn", diversity=method,
                          metric="cosine", seed=gen, **extra)
        assert gen.bit_generator.state == before


def test_knn_density_is_exact_and_thread_independent():
    # FAISS's float32 distances depend on the BLAS blocking: densities differed in the
    # last bits between 1 and 2 threads, and near-tied k-th neighbours swapped.
    rng = np.random.default_rng(0)
    x = (rng.normal(size=(3000, 16)) + 50).astype(np.float32)
    x[1500:1600] = x[:100]
    results = []
    default = alcore.get_num_threads()
    try:
        for threads in (1, 2, 3, 7):
            alcore.set_num_threads(threads)
            results.append(alcore.density.knn_density(x, 10, return_neighbors=True))
    finally:
        alcore.set_num_threads(default)
    for other in results[1:]:
        for a, b in zip(results[0][:3], other[:3], strict=True):
            assert a.tobytes() == b.tobytes()
    rows = [0, 7, 1500, 2999]
    x64 = x.astype(np.float64)
    for r in rows:
        d = np.sqrt(((x64 - x64[r]) ** 2).sum(axis=1))
        d[r] = np.inf
        want = np.sort(d)[:10]
        np.testing.assert_array_equal(results[0].distances[r], want.astype(np.float32))
