"""TypiClust against scikit-activeml (same clustering) and a direct reference."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import alcore
from alcore.diversity import typiclust


class FixedClusters:
    """A clustering 'algorithm' that returns given labels, to compare selection logic."""

    def __init__(self, n_clusters=None, labels=None):
        self.labels = labels

    def fit_predict(self, x):
        return self.labels


def clustered(seed, sizes, d=6):
    rng = np.random.default_rng(seed)
    labels = np.concatenate([np.full(s, i) for i, s in enumerate(sizes)])
    centers = rng.standard_normal((len(sizes), d)) * 10
    x = centers[labels] + rng.standard_normal((len(labels), d))
    perm = rng.permutation(len(labels))
    return x[perm], labels[perm]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_equals_scikit_activeml_with_the_same_clusters(seed):
    tc = pytest.importorskip("skactiveml.pool._typi_clust")
    sizes = [40, 35, 31, 27, 22, 18, 15, 12, 9]  # distinct: no random tie-breaks
    x, labels = clustered(seed, sizes)
    labeled = np.flatnonzero(labels == 1)[:2]  # cluster 1 is covered
    y = np.full(len(x), np.nan)
    y[labeled] = 0
    strategy = tc.TypiClust(cluster_algo=FixedClusters,
                            cluster_algo_dict={"labels": labels}, k=5, random_state=0)
    # scikit-activeml asks for n_labeled + batch_size clusters: 2 + 7 = 9, as given.
    want = strategy.query(x, y, batch_size=7)
    got = typiclust(x, 7, labeled=labeled, clusters=labels, n_neighbors=5)
    np.testing.assert_array_equal(got, want)


def reference(x, k, labeled, labels, n_neighbors):
    x = x.astype(np.float64)
    available = np.ones(len(x), bool)
    available[labeled] = False
    sizes = np.bincount(labels)
    held = {c: int((labels[labeled] == c).sum()) for c in range(len(sizes))}
    picks = []
    for _ in range(k):
        # Fewest labeled or picked members, then the largest cluster, then the lower label.
        order = sorted((c for c in range(len(sizes)) if available[labels == c].any()),
                       key=lambda c: (held[c], -sizes[c], c))
        cluster = order[0]
        members = np.flatnonzero(labels == cluster)
        m = len(members) - 1
        best, best_i = -np.inf, -1
        for i in members:
            if not available[i]:
                continue
            dist = np.sort(np.sqrt(((x[members] - x[i]) ** 2).sum(axis=1)))[1:]
            typ = 1 / dist[:min(n_neighbors, m)].mean() if m else 1.0
            if typ > best:
                best, best_i = typ, i
        picks.append(best_i)
        available[best_i] = False
        held[cluster] += 1
    return np.array(picks)


def test_matches_reference():
    x, labels = clustered(4, [30, 30, 25, 25, 20, 10, 5, 1])
    labeled = np.flatnonzero(labels == 0)[:3]
    got = typiclust(x, 6, labeled=labeled, clusters=labels, n_neighbors=4)
    np.testing.assert_array_equal(got, reference(x, 6, labeled, labels, 4))


def test_kmeans_path_covers_distinct_clusters():
    x, truth = clustered(5, [300] * 8, d=16)
    picks = typiclust(x, 8, seed=3)
    assert len(set(truth[picks].tolist())) == 8  # one per well-separated group
    np.testing.assert_array_equal(picks, typiclust(x, 8, seed=3))  # seeded


def test_more_picks_than_uncovered_clusters():
    x, labels = clustered(6, [5, 4, 3])
    picks = typiclust(x, 7, clusters=labels, labeled=[0])
    assert len(set(picks.tolist())) == 7 and 0 not in picks
    np.testing.assert_array_equal(picks, reference(x, 7, np.array([0]), labels, 20))


def test_every_cluster_covered_goes_to_the_least_labeled():
    x, labels = clustered(8, [30, 20, 10])
    labeled = np.concatenate([np.flatnonzero(labels == 0)[:3], np.flatnonzero(labels == 1)[:1],
                              np.flatnonzero(labels == 2)[:2]])
    picks = typiclust(x, 4, clusters=labels, labeled=labeled, n_neighbors=3)
    np.testing.assert_array_equal(labels[picks], [1, 1, 2, 0])
    np.testing.assert_array_equal(picks, reference(x, 4, labeled, labels, 3))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"k": 5, "labeled": [0, 1]}, r"k=5 exceeds the 4 items that can be picked"),
        ({"k": 1, "max_clusters": 0}, r"max_clusters must be a positive integer"),
        ({"k": 1, "clusters": [0, 1]}, r"clusters must be non-negative integer labels"),
        ({"k": 1, "n_neighbors": 0}, r"n_neighbors must be a positive integer"),
    ],
)
def test_bad_input(kwargs, match):
    with pytest.raises(alcore.InvalidInputError, match=match):
        typiclust(np.zeros((6, 2)), **kwargs)


def test_progress():
    x, labels = clustered(7, [10, 8, 6])
    calls = []
    typiclust(x, 3, clusters=labels, progress=lambda done, total: calls.append((done, total)))
    assert calls == [(1, 3), (2, 3), (3, 3)]


def test_clusters_do_not_grow_with_the_labeled_set(monkeypatch):
    """min(n_labeled + k, max_clusters) k-means clusters, as the authors' code (cap 500):
    the old n_labeled + k made 10 picks with 4000 labeled 30 times slower."""
    from alcore import _faiss

    asked = []
    real = _faiss.kmeans_for_typiclust

    def spy(x, n_clusters, seed, *args, **kwargs):
        asked.append(n_clusters)
        return real(x, n_clusters, seed, *args, **kwargs)

    monkeypatch.setattr(_faiss, "kmeans_for_typiclust", spy)
    x, _ = clustered(9, [200] * 10, d=4)
    typiclust(x, 5, labeled=np.arange(1000), max_clusters=40)
    typiclust(x, 5, labeled=np.arange(10), max_clusters=40)
    typiclust(x, 5)
    assert asked == [40, 15, 5]
    assert alcore.diversity.MAX_CLUSTERS == 500
    typiclust(x, 5, labeled=np.arange(1500))
    assert asked[-1] == 500


def test_exclude_leaves_items_out_of_the_pool():
    x, labels = clustered(10, [12, 9, 7, 5])
    excluded = np.flatnonzero(labels == 0)[:8]  # cluster 0 shrinks below cluster 1
    keep = np.setdiff1d(np.arange(len(x)), excluded)
    got = typiclust(x, 3, clusters=labels, exclude=excluded, n_neighbors=3)
    want = reference(x[keep], 3, np.array([], dtype=np.int64), labels[keep], 3)
    np.testing.assert_array_equal(got, keep[want])
    assert labels[got[0]] == 1


WRONG = [None, "abc", 3, [[1.0, 2.0], [3.0]], np.zeros((4, 0)), np.zeros((0, 2)),
         np.array([[np.nan, 1.0]] * 4), np.zeros((4, 2), dtype=np.int64), {"a": 1},
         np.zeros((4, 2, 1))]


@pytest.mark.parametrize("emb", WRONG, ids=range(len(WRONG)))
def test_wrong_embeddings_are_invalid_input(emb):
    with pytest.raises(alcore.InvalidInputError, match="embeddings"):
        typiclust(emb, 1)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"k": 1.5}, r"k must be a positive integer"),
        ({"k": np.int64(2), "seed": "s"}, r"seed must be an int or a numpy.random.Generator"),
        ({"k": 1, "labeled": np.array([np.nan, 1.0, np.nan])}, r"labeled"),
        ({"k": 1, "exclude": [9]}, r"exclude holds index 9"),
        ({"k": 1, "max_clusters": 2.0}, r"max_clusters must be a positive integer"),
        ({"k": 1, "clusters": np.zeros(6)}, r"clusters must be non-negative integer labels"),
    ],
)
def test_bad_options(kwargs, match):
    with pytest.raises(alcore.InvalidInputError, match=match):
        typiclust(np.random.default_rng(0).standard_normal((6, 2)), **kwargs)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@settings(max_examples=30)
@given(st.sampled_from([np.float16, np.float32, np.float64]), st.booleans(),
       st.sampled_from([0.0, 400.0]), st.integers(1, 4), st.integers(0, 3))
def test_dtype_layout_and_offset_do_not_change_the_picks(dtype, strided, offset, k, n_lab):
    x, labels = clustered(11, [9, 7, 6, 4, 2], d=3)
    x = (x + offset).astype(dtype).astype(np.float32)  # the values alcore sees
    emb = np.repeat(x, 2, axis=1)[:, ::2] if strided else x
    labeled = np.arange(n_lab)
    got = typiclust(emb.astype(dtype), k, labeled=labeled if n_lab else None,
                    clusters=labels, n_neighbors=3)
    np.testing.assert_array_equal(got, reference(x, k, labeled, labels, 3))


def blobs(sizes, d=5, seed=0, spacing=100.0):
    """Well-separated groups of the given sizes (any k-means finds them), shuffled."""
    rng = np.random.default_rng(seed)
    truth = np.concatenate([np.full(s, g) for g, s in enumerate(sizes)])
    centers = rng.standard_normal((len(sizes), d)) * spacing
    x = centers[truth] + rng.standard_normal((len(truth), d))
    perm = rng.permutation(len(truth))
    return x[perm].astype(np.float32), truth[perm]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_select_names_each_picks_kmeans_cluster_and_its_size(seed):
    """Without clusters=, each reason names the cluster k-means gave the pick and that
    cluster's size, checked against the groups the data was drawn from: picks of one group
    share one id, different groups have different ids, sizes are the groups' sizes."""
    sizes = [60, 45, 30]
    x, truth = blobs(sizes, seed=seed)
    probs = np.random.default_rng(seed).dirichlet(np.ones(3), size=len(x))
    got = alcore.select(probs, 5, embeddings=x, diversity="typiclust", max_clusters=3,
                        seed=seed)
    groups = truth[got.indices]
    # Largest uncovered cluster first, then the least-held (largest first) again.
    np.testing.assert_array_equal(groups, [0, 1, 2, 0, 1])
    cluster = got.components["cluster"]
    assert cluster.dtype == np.int64
    id_of = {}
    for g, c in zip(groups.tolist(), cluster.tolist(), strict=True):
        assert id_of.setdefault(g, c) == c  # one id per group
    assert len(set(id_of.values())) == 3
    np.testing.assert_array_equal(got.components["cluster_size"], np.array(sizes)[groups])
    for i, reason in enumerate(got.reasons):
        assert (f"most typical unlabeled member of cluster {cluster[i]} "
                f"(size {sizes[groups[i]]})") in reason


def test_select_cluster_of_given_clusters_and_excluded_items():
    """With clusters= the reason names the user's label; excluded items do not count in
    the size."""
    x, truth = blobs([20, 14, 9], seed=3)
    labels = truth * 10 + 7  # arbitrary label values
    probs = np.full((len(x), 2), 0.5)
    excluded = np.flatnonzero(truth == 0)[:8]  # the first group shrinks to 12
    got = alcore.select(probs, 3, embeddings=x, diversity="typiclust", clusters=labels,
                        exclude=excluded)
    groups = truth[got.indices]
    np.testing.assert_array_equal(groups, [1, 0, 2])
    np.testing.assert_array_equal(got.components["cluster"], labels[got.indices])
    np.testing.assert_array_equal(got.components["cluster_size"], [14, 12, 9])
    assert "cluster 17 (size 14)" in got.reasons[0]


def typicality_by_hand(x, n_neighbors):
    """1 / mean distance to the n_neighbors nearest other rows, from float64 differences
    (blocks of rows against all: O(block) memory)."""
    x = x.astype(np.float64)
    m = len(x)
    k = min(n_neighbors, m - 1)
    out = np.empty(m)
    for lo in range(0, m, 200):
        rows = np.arange(lo, min(m, lo + 200))
        dist = np.sqrt(((x[rows, None, :] - x[None, :, :]) ** 2).sum(axis=2))
        dist[np.arange(len(rows)), rows] = np.inf
        out[rows] = 1 / np.sort(dist, axis=1)[:, :k].mean(axis=1)
    return out


def test_large_uncentred_cluster_typicality_is_float64_exact():
    """A cluster above 2048 members far from the origin: typicality (and so the pick) is
    that of float64 distances. FAISS's float32 search there was off by about 1e-6."""
    from alcore.diversity import _typicality

    rng = np.random.default_rng(12)
    x = (rng.standard_normal((2600, 6)) + 500).astype(np.float32)
    want = typicality_by_hand(x, 20)
    got = _typicality(x, np.arange(len(x)), 20)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=0)
    labels = np.zeros(len(x), dtype=np.int64)
    picks = typiclust(x, 1, clusters=labels)
    assert picks[0] == int(np.argmax(want))
    # An exact duplicate of every row: the nearest distance 0 is found for every row.
    doubled = np.vstack([x[:1100], x[:1100]])
    np.testing.assert_allclose(_typicality(doubled, np.arange(2200), 3),
                               typicality_by_hand(doubled, 3), rtol=1e-12, atol=0)


def test_large_cluster_with_tied_distances_is_float64_exact(monkeypatch):
    """A 10 x 10 lattice far from the origin, each point 25 times: every row's k-th and
    all later returned distances tie, so the float32 search cannot settle any row and
    they are redone in float64; ties give equal typicality bit for bit and the pick goes
    to the lowest index among the most typical."""
    from alcore import diversity
    from alcore.diversity import _typicality

    grid = np.stack(np.meshgrid(np.arange(10), np.arange(10)), axis=-1).reshape(-1, 2)
    x = (np.tile(grid, (25, 1)) + 500).astype(np.float32)
    want = typicality_by_hand(x, 30)
    redone = []
    real = diversity._mean_knn_float64

    def spy(x, members, k, rows):
        redone.append(len(rows))
        return real(x, members, k, rows)

    monkeypatch.setattr(diversity, "_mean_knn_float64", spy)
    got = _typicality(x, np.arange(len(x)), 30)
    assert redone == [len(x)]  # the float64 path did run
    np.testing.assert_array_equal(got, want)
    best = np.flatnonzero(want == want.max())
    assert len(best) > 1
    assert typiclust(x, 1, clusters=np.zeros(len(x), dtype=np.int64), n_neighbors=30)[0] \
        == best[0]


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**31), st.integers(1, 40), st.integers(1, 6),
       st.sampled_from([0.0, 300.0]), st.booleans(), st.integers(1, 25),
       st.sampled_from([1.0, 1e-19, 1e17]))
def test_most_typical_is_the_argmax_of_the_exact_typicality(seed, m, d, offset, tied, knn,
                                                            scale):
    """The pick from the bounded float64 expanded form (only contenders recomputed) is the
    free member of largest float64-exact typicality, the lowest position among equals:
    checked against typicality_by_hand on random, tied (lattice duplicates), one-row,
    un-centred, tiny and huge-norm clusters."""
    from alcore.diversity import _most_typical

    rng = np.random.default_rng(seed)
    if tied:
        x = ((rng.integers(0, 3, size=(m, d)) + offset) * scale).astype(np.float32)
    else:
        x = ((rng.standard_normal((m, d)) + offset) * scale).astype(np.float32)
    free = rng.random(m) < 0.7
    free[rng.integers(m)] = True
    want = typicality_by_hand(x, knn) if m > 1 else np.ones(1)
    want[~free] = -np.inf
    got = _most_typical(x, np.arange(m), free, knn)
    assert got == int(np.argmax(want))


@pytest.mark.parametrize("side, copies, knn", [(10, 3, 30), (7, 2, 5), (6, 1, 4)])
def test_most_typical_lattice_ties_go_to_the_lowest_index(side, copies, knn):
    """A lattice far from the origin: symmetric points have equal exact typicality, which
    the float64 expanded form rounds differently from row to row; the pick is still the
    lowest index among the exactly most typical (and the free rows only)."""
    from alcore.diversity import _most_typical

    grid = np.stack(np.meshgrid(np.arange(side), np.arange(side)), axis=-1).reshape(-1, 2)
    x = (np.tile(grid, (copies, 1)) * 0.1 + 500).astype(np.float32)
    x = x[np.random.default_rng(side).permutation(len(x))]
    want = typicality_by_hand(x, knn)
    for free in (np.ones(len(x), bool), np.arange(len(x)) % 3 != 0):
        masked = np.where(free, want, -np.inf)
        assert (masked == masked.max()).sum() > 1  # a real tie
        assert _most_typical(x, np.arange(len(x)), free, knn) == int(np.argmax(masked))


def mixture(n, d, components, scale, seed):
    """The benchmark shapes: a Gaussian mixture (unit noise, centres at ``scale``)."""
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((components, d)) * scale
    return (centers[rng.integers(components, size=n)]
            + rng.standard_normal((n, d))).astype(np.float32)


def inertia(x, labels):
    """Sum of squared distances to the cluster means, in float64."""
    x = x.astype(np.float64)
    out = 0.0
    for c in np.unique(labels):
        members = x[labels == c]
        out += float(((members - members.mean(axis=0)) ** 2).sum())
    return out


@pytest.mark.parametrize("scale, seed, tolerance", [(3.0, 0, 0.01), (1.0, 1, 0.01),
                                                   (0.0, 2, 0.02)],
                         ids=["separated", "overlapping", "isotropic"])
def test_kmeans_inertia_is_within_tolerance_of_a_converged_kmeans(scale, seed, tolerance):
    """TypiClust's k-means (kmeans_for_typiclust: a few Lloyd iterations from k-means++
    seeds) stays within its docstring's tolerance of scikit-learn's KMeans run to
    convergence with 3 restarts: 1 % on clustered data, 2 % on isotropic Gaussian data."""
    cluster = pytest.importorskip("sklearn.cluster")
    from alcore import _faiss

    x = mixture(4000, 32, 40, scale, seed)
    got = inertia(x, _faiss.kmeans_for_typiclust(x, 80, seed))
    reference = cluster.KMeans(80, n_init=3, max_iter=300, tol=1e-6, random_state=0).fit(x)
    want = inertia(x, reference.labels_)
    assert got <= (1 + tolerance) * want, (got, want)


def test_same_picks_with_1_2_and_3_threads():
    """Same seed, same picks whatever the thread count (k-means included)."""
    x = mixture(6000, 24, 30, 1.5, 7)
    labeled = np.arange(0, 6000, 97)
    before = alcore.get_num_threads()
    try:
        runs = []
        for threads in (1, 2, 3):
            alcore.set_num_threads(threads)
            runs.append(typiclust(x, 40, labeled=labeled, seed=5))
    finally:
        alcore.set_num_threads(before)
    np.testing.assert_array_equal(runs[0], runs[1])
    np.testing.assert_array_equal(runs[0], runs[2])


def test_huge_norm_clusters_pick_as_the_reference():
    """Rows whose float32 squares would overflow (norms near 1e20): typicality is float64
    throughout, so the picks are still the reference's."""
    x, labels = clustered(13, [12, 9, 7])
    x = (x * 1e19).astype(np.float32)
    got = typiclust(x, 3, clusters=labels, n_neighbors=3)
    np.testing.assert_array_equal(got, reference(x, 3, np.array([], dtype=np.int64), labels, 3))


def test_blas_limits_are_restored_after_typiclust():
    """TypiClust's k-means and picks run on one BLAS thread (threadpoolctl); the BLAS
    thread counts the user had are back afterwards."""
    threadpoolctl = pytest.importorskip("threadpoolctl")

    def blas_threads():
        return [(i["filepath"], i["num_threads"]) for i in threadpoolctl.threadpool_info()
                if i["user_api"] == "blas"]

    x = mixture(3000, 16, 20, 2.0, 4)
    typiclust(x[:100], 3)  # FAISS (and its BLAS) loaded before the first reading
    with threadpoolctl.threadpool_limits(limits=2, user_api="blas"):
        before = blas_threads()
        typiclust(x, 10, labeled=np.arange(5))
        assert blas_threads() == before


@pytest.mark.parametrize("duplicates", [False, True])
def test_kmeans_plus_plus_seeds_are_the_same_through_blas(duplicates):
    """The BLAS products (blas=True, TypiClust's path on one BLAS thread) draw the same
    k-means++ seeds as einsum, duplicates of a seed weighing exactly 0 on both (20
    distinct points, 5 copies each, 30 clusters: the 10 last seeds fall back to uniform
    draws on both)."""
    from alcore import _faiss

    rng = np.random.default_rng(8)
    x = rng.standard_normal((400, 24)).astype(np.float32) * 3 + 50
    if duplicates:
        x = np.repeat(x[:20], 5, axis=0)
    seeds = {blas: _faiss._kmeans_plus_plus(x, 30, np.random.default_rng(3), blas=blas)
             for blas in (False, True)}
    np.testing.assert_array_equal(seeds[False], seeds[True])
    assert len(np.unique(seeds[True], axis=0)) == (20 if duplicates else 30)
