"""ProbCover: greedy coverage on a sparse radius graph, against a dense reference and
scikit-activeml."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import alcore
from alcore.diversity import probcover


def dense_reference(x, k, radius, labeled):
    """scikit-activeml's loop with an N x N edge matrix, ties to the lower index."""
    x = x.astype(np.float64)
    dist_sq = ((x[:, None, :] - x[None, :, :]) ** 2).sum(axis=2)
    edges = dist_sq <= radius * radius
    candidate = np.ones(len(x), dtype=bool)
    candidate[list(labeled)] = False
    picks = []
    for _ in range(k):
        covered = edges[~candidate].any(axis=0)
        edges[:, covered] = False
        gain = np.where(candidate, edges.sum(axis=1), -1)
        pick = int(np.argmax(gain))
        picks.append(pick)
        candidate[pick] = False
    return np.array(picks)


@settings(max_examples=60)
@given(hnp.arrays(np.float32, st.tuples(st.integers(1, 40), st.integers(1, 3)),
                  elements=st.integers(-4, 4).map(float)), st.data())
def test_matches_dense_reference(x, data):
    n = len(x)
    labeled = data.draw(st.lists(st.integers(0, n - 1), unique=True, max_size=3))
    k = data.draw(st.integers(1, n - len(labeled))) if n > len(labeled) else None
    if k is None:
        return
    radius = data.draw(st.sampled_from([0.5, 1.0, np.sqrt(2.0), 2.0, 3.0]))
    got = probcover(x, k, radius=radius, labeled=labeled or None)
    np.testing.assert_array_equal(got, dense_reference(x, k, radius, set(labeled)))


@pytest.mark.filterwarnings("ignore:The maximum purity:UserWarning")
def test_same_clusters_as_scikit_activeml():
    """Tight groups of distinct sizes: each pick covers one group, largest first. Within a
    group scikit-activeml breaks ties at random, so the groups are compared."""
    pc = pytest.importorskip("skactiveml.pool._prob_cover")
    rng = np.random.default_rng(0)
    sizes = [50, 40, 30, 20, 10]
    group = np.concatenate([np.full(s, g) for g, s in enumerate(sizes)])
    x = np.array([[10.0 * g, 0.0] for g in group]) + rng.uniform(-0.1, 0.1, (len(group), 2))
    labeled = [int(np.flatnonzero(group == 1)[0])]
    y = np.full(len(x), np.nan)
    y[labeled] = 0
    strategy = pc.ProbCover(deltas=[1.0], random_state=0)
    want = strategy.query(x, y, batch_size=4)
    got = probcover(x, 4, radius=1.0, labeled=labeled)
    np.testing.assert_array_equal(group[got], group[want])
    np.testing.assert_array_equal(group[got], [0, 2, 3, 4])


def test_sparse_graph_scales():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((30_000, 8)).astype(np.float32)
    calls = []
    picks = probcover(x, 20, radius=1.0, progress=lambda d, t: calls.append(d))
    assert len(set(picks.tolist())) == 20 and calls[-1] == 30_000


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"k": 1, "radius": 0}, r"radius must be > 0, got 0"),
        ({"k": 1, "radius": "x"}, r"radius must be a number, got 'x'"),
        ({"k": 4, "radius": 1.0, "labeled": [0]}, r"k=4 exceeds the 3 items that can be picked"),
    ],
)
def test_bad_input(kwargs, match):
    with pytest.raises(alcore.InvalidInputError, match=match):
        probcover(np.zeros((4, 2)), **kwargs)


def test_uncentred_rows_match_the_dense_reference():
    """Rows far from the origin (offsets 10..800): the radius graph is that of the exact
    distances however large the rows' norms."""
    rng = np.random.default_rng(3)
    x = (rng.uniform(10, 800, size=48) + rng.standard_normal((600, 48)) * 0.3)
    x = x.astype(np.float32)
    labeled = rng.choice(600, 5, replace=False).tolist()
    radius = 2.6
    got = probcover(x, 30, radius=radius, labeled=labeled)
    np.testing.assert_array_equal(got, dense_reference(x, 30, radius, set(labeled)))


@settings(max_examples=40)
@given(hnp.arrays(np.float32, st.tuples(st.integers(1, 30), st.integers(1, 3)),
                  elements=st.integers(-3, 3).map(float)),
       st.sampled_from([0.0, 500.0, -2.0**14]), st.sampled_from([np.float16, np.float64]),
       st.data())
def test_offset_and_dtype_change_nothing(x, offset, dtype, data):
    """Integer grids moved far from the origin: exact ties at the radius still decide as
    the float64 reference does."""
    x = (x + offset).astype(dtype)
    n = len(x)
    never = data.draw(st.lists(st.integers(0, n - 1), unique=True, max_size=n - 1))
    split = data.draw(st.integers(0, len(never)))
    labeled, excluded = never[:split], never[split:]
    k = data.draw(st.integers(1, n - len(never)))
    radius = data.draw(st.sampled_from([1.0, np.sqrt(2.0), 2.0]))
    got = probcover(x, k, radius=radius, labeled=labeled or None, exclude=excluded or None)
    keep = np.setdiff1d(np.arange(n), excluded)
    position = {int(item): j for j, item in enumerate(keep)}
    want = dense_reference(x[keep].astype(np.float32), k, radius,
                           {position[i] for i in labeled})
    np.testing.assert_array_equal(got, keep[want])


@pytest.mark.parametrize("emb", [None, "x", [[0.0], [1.0, 2.0]], np.zeros((3, 0)),
                                 np.full((3, 2), np.nan), np.zeros((3, 2), dtype=np.int8)])
def test_wrong_embeddings_are_invalid_input(emb):
    with pytest.raises(alcore.InvalidInputError, match="embeddings"):
        probcover(emb, 1, radius=1.0)


def test_threads_change_nothing():
    rng = np.random.default_rng(6)
    x = (rng.standard_normal((3000, 6)) + 40).astype(np.float32)
    saved = alcore.get_num_threads()
    results = []
    try:
        for threads in (1, 2, 3, 7):
            alcore.set_num_threads(threads)
            results.append(probcover(x, 15, radius=1.5, labeled=np.arange(4), seed=2))
    finally:
        alcore.set_num_threads(saved)
    for other in results[1:]:
        np.testing.assert_array_equal(other, results[0])


def test_boundary_is_decided_by_the_float64_squares():
    """As documented: j is in i's ball when the float64 squared distance is <= radius *
    radius in float64. Item 0 has three neighbours at distance exactly sqrt(2) (squared
    distance 2.0); item 4 two at distance 1 (and one at 1.5, outside either radius). With
    radius=sqrt(2) (float64 square 2.0000000000000004) item 0's ball holds 4 items and
    wins; one ulp below (square 1.9999999999999996) it holds only itself and item 4's ball
    of 3 wins."""
    root2 = np.sqrt(2.0)
    below = np.nextafter(root2, 0.0)
    assert root2 * root2 > 2.0 and below * below < 2.0
    x = np.array([[0, 0], [1, 1], [-1, -1], [1, -1], [50, 50], [51, 50], [50, 51.5],
                  [49, 50]], dtype=np.float32)
    assert probcover(x, 1, radius=root2)[0] == 0
    assert probcover(x, 1, radius=below)[0] == 4
    np.testing.assert_array_equal(dense_reference(x, 1, root2, []), [0])
    np.testing.assert_array_equal(dense_reference(x, 1, below, []), [4])


def brute_force_graph(x, radius):
    """Every pair with float64 squared distance <= radius * radius, as (row, col) sorted."""
    x = x.astype(np.float64)
    dist_sq = ((x[:, None, :] - x[None, :, :]) ** 2).sum(axis=2)
    return np.nonzero(dist_sq <= radius * radius)


@pytest.mark.parametrize("share", [0.0, 2.0])  # every cluster searched densely / pruned
@pytest.mark.parametrize("data", ["clustered", "isotropic", "grid ties", "uncentred"])
def test_radius_graph_both_paths_match_brute_force(monkeypatch, share, data):
    """The pruned per-cluster products and FAISS's range search over all rows (the path of
    clusters the pruning cannot narrow) give the exact graph, pairs at exactly the radius
    included, on data where each path is the one chosen and where it is not."""
    from alcore import _faiss

    monkeypatch.setattr(_faiss, "DENSE_RANGE_SHARE", share)
    rng = np.random.default_rng(5)
    radius = 1.0
    if data == "clustered":
        x = (rng.standard_normal((20, 16)) * 6)[rng.integers(20, size=900)]
        x = (x + rng.standard_normal(x.shape) * 0.4).astype(np.float32)
    elif data == "isotropic":
        x = rng.standard_normal((900, 16)).astype(np.float32) * np.float32(0.3)
    elif data == "grid ties":  # many pairs at squared distance exactly 1, 2 (radius sqrt 2)
        x = rng.integers(0, 6, size=(900, 3)).astype(np.float32)
        radius = float(np.sqrt(2.0))
    else:  # far from the origin: the expanded form's error is what decides
        x = (rng.standard_normal((900, 16)) * 0.3 + 500).astype(np.float32)
    offsets, ids = _faiss.range_graph(x, radius)
    rows, cols = brute_force_graph(x, radius)
    counts = np.bincount(rows, minlength=len(x))
    np.testing.assert_array_equal(offsets, np.concatenate([[0], np.cumsum(counts)]))
    np.testing.assert_array_equal(ids, cols)
