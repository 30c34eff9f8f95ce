"""spread: a ranking thinned by a minimum distance, against the sequential definition."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import alcore
from alcore.diversity import spread


def as_scores(ranked, n):
    """Scores whose descending walk is ``ranked``, and the items left out (to exclude)."""
    scores = np.zeros(n)
    scores[np.asarray(ranked, dtype=np.int64)] = np.arange(len(ranked), 0, -1)
    return scores, np.setdiff1d(np.arange(n), ranked)


def sequential(ranked, x, k, radius, labeled):
    """The definition: every candidate in order against everything taken or labeled."""
    x = x.astype(np.float64)
    anchors = [x[i] for i in labeled]
    taken = []
    for i in ranked:
        if i in labeled:
            continue
        if all(((x[i] - a) ** 2).sum() >= radius * radius for a in anchors):
            taken.append(int(i))
            anchors.append(x[i])
            if len(taken) == k:
                break
    return np.array(taken, dtype=np.int64)


@settings(max_examples=60)
@given(
    hnp.arrays(np.float32, st.tuples(st.integers(1, 50), st.integers(1, 4)),
               elements=st.integers(-3, 3).map(float)),
    st.data(),
)
def test_matches_sequential_definition(x, data):
    n = len(x)
    ranked = np.array(data.draw(st.permutations(range(n))))[: data.draw(st.integers(1, n))]
    labeled = data.draw(st.lists(st.integers(0, n - 1), unique=True, max_size=3))
    k = data.draw(st.integers(1, n))
    radius = data.draw(st.sampled_from([0.0, 1.0, 1.5, 2.0, np.sqrt(5.0), 4.0]))
    scores, left_out = as_scores(ranked, n)
    got = spread(scores, x, k, min_distance=radius, labeled=labeled or None, exclude=left_out)
    np.testing.assert_array_equal(got, sequential(ranked, x, k, radius, set(labeled)))


def test_many_batches():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((20_000, 8)).astype(np.float32)
    ranked = rng.permutation(20_000)
    labeled = rng.choice(20_000, 50, replace=False)
    scores, _ = as_scores(ranked, 20_000)
    got = spread(scores, x, 300, min_distance=2.5, labeled=labeled)
    want = sequential(ranked, x, 300, 2.5, set(labeled.tolist()))
    np.testing.assert_array_equal(got, want)


def test_zero_distance_keeps_the_ranking_and_runs_out():
    x = np.zeros((5, 2))
    scores = np.array([0.0, 2.0, 0.0, 3.0, 1.0])
    np.testing.assert_array_equal(spread(scores, x, 2, min_distance=0.0), [3, 1])
    np.testing.assert_array_equal(spread(scores, x, 10, min_distance=1.0), [3])


def test_equal_scores_go_to_the_lower_index():
    x = np.arange(6, dtype=np.float32)[:, None] * 10
    got = spread(np.array([1.0, 2.0, 2.0, 1.0, 2.0, 0.0]), x, 6, min_distance=1.0)
    np.testing.assert_array_equal(got, [1, 2, 4, 0, 3, 5])


@pytest.mark.parametrize(
    "args, match",
    [
        (([1.0, 2.0], np.zeros((3, 2)), 1, 1.0),
         r"scores must be 1-D with one score per item, shape \(3,\), got shape \(2,\)"),
        (([1.0, np.nan, 0.0], np.zeros((3, 2)), 1, 1.0), r"scores must be finite: scores\[1\]"),
        (([1, 2, 3], np.zeros((3, 2)), 1, 1.0), r"scores must have a floating dtype"),
        (([1.0, 2.0, 3.0], np.zeros((3, 2)), 1, -1.0), r"min_distance must be >= 0, got -1.0"),
        (([1.0, 2.0, 3.0], np.zeros((3, 2)), 1, "far"), r"min_distance must be a number"),
        (([1.0, 2.0, 3.0], np.zeros((3, 2)), 0, 1.0), r"k must be a positive integer"),
    ],
)
def test_bad_input(args, match):
    scores, emb, k, radius = args
    with pytest.raises(alcore.InvalidInputError, match=match):
        spread(np.asarray(scores), emb, k, min_distance=radius)


def naive_walk(scores, x, k, radius, labeled=(), excluded=()):
    """The definition with plain float64 differences: items by descending score (ties to
    the lower index), each taken when at least ``radius`` from every labeled or taken item."""
    x = np.asarray(x, dtype=np.float32).astype(np.float64)
    order = sorted(range(len(x)), key=lambda i: (-float(scores[i]), i))
    skip = set(labeled) | set(excluded)
    anchors = np.array([x[i] for i in labeled]).reshape(-1, x.shape[1])
    taken = []
    for i in order:
        if i in skip:
            continue
        if len(anchors) == 0 or ((anchors - x[i]) ** 2).sum(axis=1).min() >= radius * radius:
            taken.append(i)
            anchors = np.vstack([anchors, x[i]])
            if len(taken) == k:
                break
    return np.array(taken, dtype=np.int64)


def test_uncentred_embeddings_are_decided_exactly():
    """Rows far from the origin (offsets 10..800, spread 0.5, 64-d): FAISS's float32
    |a|^2 + |b|^2 - 2ab is off by more than the squared radius here, so a margin that
    scales with min_distance^2 alone takes and refuses the wrong items (the old code took
    213 items where 1206 are right)."""
    rng = np.random.default_rng(0)
    n, d = 4000, 64
    offset = rng.uniform(10, 800, size=d)
    x = (offset + rng.standard_normal((n, d)) * 0.5).astype(np.float32)
    scores = rng.random(n)
    labeled = rng.choice(n, 300, replace=False)
    got = spread(scores, x, n, min_distance=4.5, labeled=labeled)
    want = naive_walk(scores, x, n, 4.5, labeled.tolist())
    assert len(want) > 1000
    np.testing.assert_array_equal(got, want)


@st.composite
def spread_cases(draw):
    n = draw(st.integers(1, 60))
    d = draw(st.sampled_from([1, 2, 3, 8, 33]))
    grid = draw(st.booleans())  # integer coordinates: exact ties at the radius
    if grid:
        base = draw(hnp.arrays(np.int8, (n, d), elements=st.integers(-3, 3))).astype(np.float64)
    else:
        base = draw(hnp.arrays(np.float64, (n, d), elements=st.floats(-2, 2, width=32)))
    offset = draw(st.sampled_from([0.0, 10.0, 800.0, -3000.0, 2.0**20]))
    x = (base + offset).astype(np.float32)
    scores = draw(hnp.arrays(np.float64, n, elements=st.sampled_from([0.0, 0.5, 1.0, 2.0])
                             | st.floats(-1e6, 1e6)))
    split = draw(st.permutations(range(n)))
    n_lab = draw(st.integers(0, min(3, n)))
    n_exc = draw(st.integers(0, min(3, n - n_lab)))
    labeled, excluded = split[:n_lab], split[n_lab:n_lab + n_exc]
    radius = draw(st.sampled_from([0.0, 0.5, 1.0, float(np.sqrt(2.0)), 2.0, 3.0]))
    k = draw(st.integers(1, n + 2))
    layout = draw(st.sampled_from(["c", "fortran", "strided"]))
    dtype = draw(st.sampled_from([np.float32, np.float64, np.float16]))
    return x, scores, labeled, excluded, radius, k, layout, dtype


@pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning")
@settings(max_examples=80)
@given(spread_cases())
def test_matches_the_naive_walk_on_any_layout_and_offset(case):
    x, scores, labeled, excluded, radius, k, layout, dtype = case
    emb = x.astype(dtype)
    if dtype == np.float16 and not np.isfinite(emb).all():
        with pytest.raises(alcore.InvalidInputError, match="embeddings must be finite"):
            spread(scores, emb, k, min_distance=radius)
        return
    if layout == "fortran":
        emb = np.asfortranarray(emb)
    elif layout == "strided":
        wide = np.zeros((emb.shape[0], 2 * emb.shape[1]), dtype=emb.dtype)
        wide[:, ::2] = emb
        emb = wide[:, ::2]
    got = spread(scores, emb, k, min_distance=radius, labeled=labeled or None,
                 exclude=excluded or None)
    want = naive_walk(scores, emb.astype(np.float32), k, radius, labeled, excluded)
    assert got.dtype == np.int64
    np.testing.assert_array_equal(got, want)


@settings(max_examples=40)
@given(st.one_of(st.none(), st.text(max_size=3), st.integers(), st.just([[1.0, 2.0], [3.0]]),
                 st.just(np.zeros((2, 0))), st.just(np.array([[np.inf, 0.0]])),
                 st.just(np.zeros((2, 2), dtype=np.int64)), st.just({"a": 1})))
def test_wrong_embeddings_are_invalid_input(emb):
    with pytest.raises(alcore.InvalidInputError, match="embeddings"):
        spread(np.ones(2), emb, 1, min_distance=1.0)


def test_huge_spread_is_refused_not_wrong():
    x = np.array([[0.0], [3e38]], dtype=np.float32)
    with pytest.raises(alcore.InvalidInputError, match=r"embeddings are too spread out"):
        spread(np.ones(2), x, 2, min_distance=1.0)


def test_labeled_accepts_scikit_activeml_y():
    x = np.arange(5, dtype=np.float32)[:, None]
    y = np.array([np.nan, 0.0, np.nan, np.nan, np.nan])
    np.testing.assert_array_equal(spread(np.ones(5), x, 5, min_distance=1.5, labeled=y),
                                  [3])


@pytest.mark.parametrize("d, offset, scale", [(3, 0.0, 1.0), (64, 500.0, 0.5),
                                              (128, -3000.0, 10.0), (700, 40.0, 1e-3)])
def test_distance_error_bound_holds_for_faiss_and_numpy(d, offset, scale):
    """alcore._distances.bound covers the float32 expanded form on centred rows, as FAISS
    (BLAS path: many queries) and numpy compute it, against float64 differences."""
    from alcore import _distances, _faiss

    rng = np.random.default_rng(d)
    x = (rng.uniform(-1, 1, size=d) * offset + rng.standard_normal((1500, d)) * scale)
    x = x.astype(np.float32)
    centred = _distances.centre(x)
    index = _faiss.GrowingIndex(d)
    index.add(centred.rows[:300])
    approx, nearest = index.nearest(centred.rows[300:])
    exact = _distances.exact_sq(x, np.arange(300, 1500), nearest)
    err = _distances.bound(d, centred.norms[300:], centred.norms[nearest])
    assert (np.abs(approx - exact) <= err).all()
    sq = _distances.sq_norms32(centred.rows)
    mat = _distances.expanded_sq(centred.rows[:200], sq[:200], centred.rows[200:400],
                                 sq[200:400]).astype(np.float64)
    rows, cols = np.meshgrid(np.arange(200), np.arange(200, 400), indexing="ij")
    exact = _distances.exact_sq(x, rows.ravel(), cols.ravel()).reshape(200, 200)
    err = _distances.bound(d, centred.norms[:200, None], centred.norms[None, 200:400])
    assert (np.abs(mat - exact) <= err).all()


@pytest.mark.parametrize("metric", ["l2", "cosine"])
def test_boundary_is_decided_by_the_float64_squares(metric):
    """As documented: a candidate is taken when its float64 squared distance is >=
    min_distance * min_distance in float64. A pair at distance exactly sqrt(2) (squared
    distance 2.0 in float64) is refused with min_distance=sqrt(2), whose float64 square is
    2.0000000000000004, and taken one ulp below; a pair at exactly 1 with min_distance=1
    is taken."""
    root2 = np.sqrt(2.0)
    below = np.nextafter(root2, 0.0)
    assert root2 * root2 > 2.0 and below * below < 2.0  # the float64 facts the test uses
    scores = np.array([2.0, 1.0])
    if metric == "l2":
        x = np.array([[0.0, 0.0], [1.0, 1.0]], dtype=np.float32)
        unit = np.array([[0.0, 0.0], [1.0, 0.0]], dtype=np.float32)
    else:  # unit rows at a right angle: distance sqrt(2) exactly; opposite ones: 2
        x = np.array([[1.0, 0.0], [0.0, 1.0]], dtype=np.float32)
        unit = np.array([[1.0, 0.0], [-1.0, 0.0]], dtype=np.float32)
    np.testing.assert_array_equal(spread(scores, x, 2, min_distance=root2, metric=metric), [0])
    np.testing.assert_array_equal(spread(scores, x, 2, min_distance=below, metric=metric),
                                  [0, 1])
    at = 1.0 if metric == "l2" else 2.0
    np.testing.assert_array_equal(spread(scores, unit, 2, min_distance=at, metric=metric),
                                  [0, 1])
    # The same through labeled= (the anchor check, not the walk).
    np.testing.assert_array_equal(
        spread(scores, x, 1, min_distance=root2, labeled=[0], metric=metric), [])
    np.testing.assert_array_equal(
        spread(scores, x, 1, min_distance=below, labeled=[0], metric=metric), [1])
