"""alcore.synthesis.nearest_real against brute force: ties to the lower index, labeled and
excluded items never returned, unique=True as a greedy assignment in order of distance."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import alcore
from alcore.synthesis import NearestReal, SyntheticPoints, minority, nearest_real


def brute_sq(queries: np.ndarray, pool: np.ndarray) -> np.ndarray:
    """(m, N) squared distances, float64 differences of the float32 rows."""
    q = queries.astype(np.float32).astype(np.float64)
    p = pool.astype(np.float32).astype(np.float64)
    return ((q[:, None, :] - p[None, :, :]) ** 2).sum(axis=2)


def brute_nearest(queries, pool, k, allowed):
    sq = brute_sq(queries, pool)
    out = []
    for row in sq:
        cands = sorted(allowed, key=lambda j: (row[j], j))
        out.append(cands[:k])
    return np.array(out, dtype=np.int64).reshape(len(queries), k)


def brute_greedy(queries, pool, k, allowed):
    """Every (point, item) pair by (distance, point, item); taken while the point has fewer
    than k and the item is free."""
    sq = brute_sq(queries, pool)
    pairs = sorted((sq[i, j], i, j) for i in range(len(queries)) for j in allowed)
    got = [[] for _ in range(len(queries))]
    taken = set()
    for _, i, j in pairs:
        if len(got[i]) < k and j not in taken:
            got[i].append(j)
            taken.add(j)
    return np.array(got, dtype=np.int64)


@st.composite
def problems(draw):
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    n = draw(st.integers(1, 50))
    d = draw(st.sampled_from([1, 2, 5, 17]))
    ties = draw(st.booleans())
    pool = rng.integers(0, 3, size=(n, d)).astype(np.float32) if ties else \
        rng.standard_normal((n, d)).astype(np.float32)
    offset = draw(st.sampled_from([0.0, 1e4]))
    pool += np.float32(offset)
    m = draw(st.integers(1, 12))
    queries = (rng.integers(0, 3, size=(m, d)) + offset if ties
               else rng.standard_normal((m, d)) + offset).astype(np.float32)
    labeled = rng.random(n) < draw(st.sampled_from([0.0, 0.3]))
    exclude = np.flatnonzero(rng.random(n) < draw(st.sampled_from([0.0, 0.2])))
    return pool, queries, labeled, exclude


@settings(max_examples=60)
@given(problems(), st.integers(1, 4), st.booleans())
def test_against_brute_force(problem, k, unique):
    pool, queries, labeled, exclude = problem
    never = labeled.copy()
    never[exclude] = True
    allowed = np.flatnonzero(~never).tolist()
    need = len(queries) * k if unique else k
    if need > len(allowed):
        with pytest.raises(alcore.InvalidInputError, match="neither labeled nor excluded"):
            nearest_real(queries, pool, k=k, labeled=labeled, exclude=exclude, unique=unique)
        return
    res = nearest_real(queries, pool, k=k, labeled=labeled, exclude=exclude, unique=unique)
    assert isinstance(res, NearestReal)
    assert res.indices.dtype == np.int64 and res.indices.shape == (len(queries), k)
    assert res.distances.dtype == np.float64 and res.distances.shape == (len(queries), k)
    assert not never[res.indices].any()
    want = (brute_greedy if unique else brute_nearest)(queries, pool, k, allowed)
    np.testing.assert_array_equal(res.indices, want)
    sq = brute_sq(queries, pool)
    np.testing.assert_allclose(res.distances,
                               np.sqrt(np.take_along_axis(sq, want, axis=1)), rtol=1e-12)
    if unique:
        assert len(np.unique(res.indices)) == res.indices.size


def test_ties_go_to_the_lower_index_even_beyond_the_spare_candidates():
    pool = np.zeros((40, 3), dtype=np.float32)  # 40 identical items
    pool[:5] = 1.0  # the first five farther away
    res = nearest_real(np.zeros((2, 3), dtype=np.float32), pool, k=3, exclude=[5, 7])
    np.testing.assert_array_equal(res.indices, [[6, 8, 9], [6, 8, 9]])
    uniq = nearest_real(np.zeros((2, 3), dtype=np.float32), pool, k=3, unique=True)
    np.testing.assert_array_equal(uniq.indices, [[5, 6, 7], [8, 9, 10]])


def test_unique_gives_a_contested_item_to_the_nearer_point():
    pool = np.array([[0.0], [10.0], [-10.0]], dtype=np.float32)
    points = np.array([[3.0], [1.0]], dtype=np.float32)  # both nearest item 0
    res = nearest_real(points, pool, unique=True)
    np.testing.assert_array_equal(res.indices, [[1], [0]])
    np.testing.assert_allclose(res.distances, [[7.0], [1.0]])
    plain = nearest_real(points, pool)
    np.testing.assert_array_equal(plain.indices, [[0], [0]])


def test_takes_synthetic_points_and_scikit_activeml_y():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((80, 4)).astype(np.float32)
    y = (rng.random(80) < 0.2).astype(int)
    synth = minority(x, y, 10)
    assert isinstance(synth, SyntheticPoints)
    skactive_y = np.full(80, np.nan)
    skactive_y[:40] = y[:40]  # the first 40 are labeled
    res = nearest_real(synth, x, k=2, labeled=skactive_y, unique=True)
    assert res.indices.min() >= 40 and len(np.unique(res.indices)) == 20
    want = brute_greedy(synth.points, x, 2, list(range(40, 80)))
    np.testing.assert_array_equal(res.indices, want)


@pytest.mark.parametrize(("call", "message"), [
    (lambda q, p: nearest_real(q[:, :2], p), "synthetic has 2 dimensions but pool_embeddings "
                                             "has 3"),
    (lambda q, p: nearest_real(q, p, k=0), "k must be a positive integer, got 0"),
    (lambda q, p: nearest_real(q, p, k=11), "k=11 needs 11 distinct items but only 10"),
    (lambda q, p: nearest_real(q, p, k=4, unique=True),
     "4 points x k=4 needs 16 distinct items but only 10"),
    (lambda q, p: nearest_real(q, p, labeled=np.arange(10)), "only 0 of the pool's 10"),
    (lambda q, p: nearest_real(q, p, exclude=[10]), "exclude holds index 10, outside"),
    (lambda q, p: nearest_real(q * np.nan, p), "synthetic must be finite: row 0"),
    (lambda q, p: nearest_real(q, p * np.inf), "pool_embeddings must be finite"),
    (lambda q, p: nearest_real(q, p, unique=1), "unique must be True or False"),
    (lambda q, p: nearest_real(q[:0], p), "synthetic is empty"),
    (lambda q, p: nearest_real(q, p[:, :, None]), "pool_embeddings must be 2-D"),
    (lambda q, p: nearest_real(q, p, kk=1), "unknown|unexpected"),
])
def test_bad_input(call, message):
    rng = np.random.default_rng(2)
    q, p = rng.standard_normal((4, 3)), rng.standard_normal((10, 3))
    with pytest.raises(alcore.InvalidInputError, match=message):
        call(q, p)


def test_ties_are_decided_here_whatever_order_the_search_returns_them_in(monkeypatch):
    """FAISS does not promise an order among equal distances: a search that returns the
    higher rows of a tie still gives the lower ones here (the result is certified against
    the spare candidates and searched again when a tie may reach beyond them)."""
    from alcore import _faiss

    def higher_rows_first(base, queries, k):
        sq = brute_sq(queries, base)
        rows = np.arange(len(base))
        pick = np.array([np.lexsort((-rows, s))[:k] for s in sq], dtype=np.int64)
        got = np.take_along_axis(sq, pick, axis=1)
        order = np.lexsort((pick, got), axis=-1)
        return np.take_along_axis(got, order, axis=1), np.take_along_axis(pick, order, axis=1)

    monkeypatch.setattr(_faiss, "_flat_nearest", higher_rows_first)
    pool = np.zeros((30, 2), dtype=np.float32)
    pool[::3] = 5.0
    res = nearest_real(np.zeros((3, 2), dtype=np.float32), pool, k=2)
    np.testing.assert_array_equal(res.indices, [[1, 2]] * 3)
    rng = np.random.default_rng(3)
    x = rng.integers(0, 2, size=(40, 2)).astype(np.float32)
    y = np.repeat([0, 1], [30, 10])
    res = minority(x, y, 30, k=3)
    for s, j in res.source.tolist():
        d = ((x[y == 1] - x[s]) ** 2).sum(axis=1)
        members = np.flatnonzero(y == 1)
        ref = sorted((m for m in members if m != s), key=lambda m: (d[members == m][0], m))
        assert j in ref[:3]
