"""Cluster-Margin against a direct reference of the round-robin (its own numpy margin, the
same clusters passed through clusters=)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import alcore
from alcore.diversity import cluster_margin


def reference(probs, k, labeled, clusters, per_pick):
    # Smallest margin p1 - p2 first, ties to the lower index; in the precision alcore
    # scores in (float32 for float16/float32 input, else float64).
    probs = np.asarray(probs)
    dtype = np.float32 if probs.dtype.itemsize <= 4 else np.float64
    top2 = np.sort(probs.astype(dtype), axis=1)[:, -2:]
    score = dtype(1.0) - (top2[:, 1] - top2[:, 0])
    order = sorted((i for i in range(len(probs)) if i not in labeled),
                   key=lambda i: (-score[i], i))
    candidates = order[:min(per_pick * k, len(order))]
    by_cluster = {}
    for i in candidates:
        by_cluster.setdefault(int(clusters[i]), []).append(i)
    sequence = sorted(by_cluster, key=lambda c: (len(by_cluster[c]), c))
    picks, depth = [], 0
    while len(picks) < k:
        for c in sequence:
            if depth < len(by_cluster[c]) and len(picks) < k:
                picks.append(by_cluster[c][depth])
        depth += 1
    return np.array(picks)


@settings(max_examples=50)
@given(st.integers(1, 80), st.integers(2, 5), st.integers(1, 6), st.integers(0, 2**31),
       st.data())
def test_matches_reference(n, c, n_clusters, seed, data):
    rng = np.random.default_rng(seed)
    probs = rng.dirichlet(np.ones(c), size=n)
    if data.draw(st.booleans()):
        probs = np.round(probs, 1)  # ties in the margin
        probs[:, 0] += 1 - probs.sum(axis=1)
        probs = np.abs(probs) / np.abs(probs).sum(axis=1, keepdims=True)
    clusters = rng.integers(n_clusters, size=n)
    never = data.draw(st.lists(st.integers(0, n - 1), unique=True, max_size=n - 1))
    split = data.draw(st.integers(0, len(never)))
    labeled, excluded = never[:split], never[split:]
    k = data.draw(st.integers(1, n - len(never)))
    per_pick = data.draw(st.integers(1, 4))
    got = cluster_margin(probs, None, k, labeled=labeled or None, exclude=excluded or None,
                         clusters=clusters, candidates_per_pick=per_pick)
    assert got.dtype == np.int64
    np.testing.assert_array_equal(got, reference(probs, k, set(never), clusters, per_pick))


def test_logits_equal_softmax():
    rng = np.random.default_rng(4)
    z = rng.standard_normal((100, 4))
    p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    clusters = rng.integers(5, size=100)
    np.testing.assert_array_equal(cluster_margin(z, None, 9, logits=True, clusters=clusters),
                                  reference(p, 9, set(), clusters, 10))


def test_small_clusters_first():
    probs = np.tile([[0.5, 0.5]], (6, 1))  # all equally uncertain: margin order = index
    clusters = np.array([0, 0, 0, 1, 1, 2])
    got = cluster_margin(probs, None, 4, clusters=clusters)
    np.testing.assert_array_equal(got, [5, 3, 0, 4])


def test_kmeans_on_candidates():
    rng = np.random.default_rng(1)
    groups = rng.integers(4, size=400)
    emb = np.eye(4)[groups] * 20 + rng.standard_normal((400, 4))
    probs = rng.dirichlet(np.ones(3), size=400)
    picks = cluster_margin(probs, emb, 4, n_clusters=4, seed=2)
    assert sorted(groups[picks].tolist()) == [0, 1, 2, 3]


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"k": 1, "clusters": [0, 1]}, r"clusters must be integer labels of shape \(3,\)"),
        ({"k": 3, "labeled": [0]}, r"k=3 exceeds the 2 items that can be picked"),
        ({"k": 1, "logits": "yes"}, r"logits must be True or False"),
        ({"k": 1, "embeddings": np.zeros((2, 2))}, r"embeddings has 2 rows but probs has 3"),
        ({"k": 1, "candidates_per_pick": 0}, r"candidates_per_pick must be a positive integer"),
    ],
)
def test_bad_input(kwargs, match):
    kwargs.setdefault("embeddings", np.zeros((3, 2)))
    with pytest.raises(alcore.InvalidInputError, match=match):
        cluster_margin(np.full((3, 2), 0.5), **kwargs)


@pytest.mark.filterwarnings("ignore:invalid value encountered in cast:RuntimeWarning")
@settings(max_examples=40)
@given(st.sampled_from([np.float16, np.float32, np.float64, np.int64]), st.integers(1, 30),
       st.booleans(), st.sampled_from([None, "nan", "inf", "sum"]), st.integers(0, 2**16))
def test_any_input_is_a_correct_result_or_invalid_input(dtype, n, strided, broken, seed):
    rng = np.random.default_rng(seed)
    probs = rng.dirichlet(np.ones(3), size=n)
    if broken == "nan":
        probs[-1, 0] = np.nan
    elif broken == "inf":
        probs[-1, 1] = np.inf
    elif broken == "sum":
        probs[-1] *= 2
    p = probs.astype(dtype)
    if strided:
        p = np.repeat(p, 2, axis=1)[:, ::2]
    clusters = rng.integers(4, size=n)
    k = int(rng.integers(1, n + 1))
    seen = p.astype(np.float64)
    valid = dtype != np.int64 and np.isfinite(seen).all() and (
        np.abs(seen.sum(axis=1) - 1) <= 1e-3).all()
    if not valid:
        with pytest.raises(alcore.InvalidInputError, match="probs"):
            cluster_margin(p, None, k, clusters=clusters)
        return
    got = cluster_margin(p, None, k, clusters=clusters)
    np.testing.assert_array_equal(got, reference(p, k, set(), clusters, 10))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_select_names_each_picks_kmeans_cluster_and_its_candidate_count(seed):
    """Without clusters=, each reason names the k-means cluster of the pick and how many
    candidates it holds, checked against the groups the candidates were drawn from."""
    rng = np.random.default_rng(seed)
    n, uncertain = 300, 60
    # The 60 smallest margins (10 x k candidates for k = 6) are the first 60 items, in
    # three well-separated groups of 30, 20 and 10.
    probs = np.tile([0.98, 0.01, 0.01], (n, 1))
    probs[:uncertain] = [0.5, 0.49, 0.01]
    probs[:uncertain, :2] += rng.uniform(-1e-3, 1e-3, size=(uncertain, 1)) * [1, -1]
    truth = np.full(n, -1)
    truth[:uncertain] = np.repeat([0, 1, 2], [30, 20, 10])[rng.permutation(uncertain)]
    centers = rng.standard_normal((3, 4)) * 100
    emb = rng.standard_normal((n, 4)) * 100
    emb[:uncertain] = centers[truth[:uncertain]] + rng.standard_normal((uncertain, 4))
    got = alcore.select(probs, 6, embeddings=emb, diversity="cluster_margin", n_clusters=3,
                        seed=seed)
    groups = truth[got.indices]
    # Round-robin from the cluster with the fewest candidates up.
    np.testing.assert_array_equal(groups, [2, 1, 0, 2, 1, 0])
    cluster = got.components["cluster"]
    assert cluster.dtype == np.int64
    id_of = {}
    for g, c in zip(groups.tolist(), cluster.tolist(), strict=True):
        assert id_of.setdefault(g, c) == c
    assert len(set(id_of.values())) == 3
    counts = np.array([30, 20, 10])[groups]
    np.testing.assert_array_equal(got.components["cluster_size"], counts)
    for i, reason in enumerate(got.reasons):
        assert (f"cluster {cluster[i]} ({counts[i]} of the 60 smallest-margin candidates)"
                in reason)


def test_select_with_clusters_names_the_users_label():
    probs = np.tile([[0.5, 0.5]], (6, 1))
    clusters = np.array([4, 4, 4, 9, 9, 2])
    got = alcore.select(probs, 4, diversity="cluster_margin", clusters=clusters)
    np.testing.assert_array_equal(got.indices, [5, 3, 0, 4])
    np.testing.assert_array_equal(got.components["cluster"], [2, 9, 4, 9])
    np.testing.assert_array_equal(got.components["cluster_size"], [1, 2, 3, 2])
    assert "cluster 9 (2 of the 6 smallest-margin candidates)" in got.reasons[1]
