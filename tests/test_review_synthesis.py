"""Hostile review of alcore.synthesis and alcore._faiss.nearest_rows (issue 11): each test
pins a defect found in review, with plain-numpy references."""

from __future__ import annotations

import numpy as np
import pytest

import alcore
from alcore import _faiss


def brute(base: np.ndarray, queries: np.ndarray, k: int, own: bool) -> tuple[np.ndarray, ...]:
    """k nearest rows by (float64 distance of the float32 inputs, row), self excluded."""
    b64, q64 = base.astype(np.float64), queries.astype(np.float64)
    d = ((q64[:, None, :] - b64[None, :, :]) ** 2).sum(axis=2)
    if own:
        d[np.arange(len(queries)), np.arange(len(queries))] = np.inf
    rows = np.broadcast_to(np.arange(len(base)), d.shape)
    order = np.lexsort((rows, d), axis=-1)[:, :k]
    return np.take_along_axis(d, order, axis=1), order


def counting_searches(monkeypatch) -> list[int]:
    """Record the k of every FAISS brute-force search nearest_rows makes."""
    asked: list[int] = []
    real = _faiss._flat_nearest

    def spy(base, queries, k):
        asked.append(int(k) * len(queries))
        return real(base, queries, k)

    monkeypatch.setattr(_faiss, "_flat_nearest", spy)
    return asked


def test_nearest_rows_on_a_pool_of_duplicates_does_not_fetch_every_row(monkeypatch):
    """A pool where many rows are exact copies (blank images, padding embeddings) made
    every copy's certificate fail (its k-th and last candidates tie exactly) and the
    search double its candidates up to all N rows: O(N^2) memory, 15 s at N = 4000, out of
    memory at the 50 000 items validate searches in full. Copies are now searched once, as
    one distinct row."""
    rng = np.random.default_rng(0)
    base = np.concatenate([np.zeros((1500, 3)), rng.normal(size=(500, 3))]).astype(np.float32)
    base = base[rng.permutation(len(base))]
    asked = counting_searches(monkeypatch)
    sq, ids = _faiss.nearest_rows(base, base, 10, self_rows=np.arange(len(base)))
    ref_sq, ref_ids = brute(base, base, 10, True)
    np.testing.assert_array_equal(ids, ref_ids)
    np.testing.assert_array_equal(sq, ref_sq)
    # Candidates fetched in all: a few per query and neighbour, not N per query.
    assert sum(asked) <= 20 * 10 * len(base)


@pytest.mark.parametrize("own", [False, True])
@pytest.mark.parametrize("offset", [0.0, 1e4])
def test_nearest_rows_with_duplicates_ties_between_copies_and_others(own, offset):
    """Groups of copies tie with each other and with single rows at the k-th distance:
    the lower rows win wherever they are."""
    rng = np.random.default_rng(1)
    for trial in range(30):
        n = int(rng.integers(2, 60))
        d = int(rng.integers(1, 4))
        base = (rng.integers(-2, 3, size=(n, d)) + offset).astype(np.float32)
        queries = base if own else (rng.integers(-2, 3, size=(7, d)) + offset).astype(
            np.float32)
        k = int(rng.integers(1, (n - 1 if own else n) + 1))
        sq, ids = _faiss.nearest_rows(base, np.ascontiguousarray(queries), k,
                                      self_rows=np.arange(n) if own else None)
        ref_sq, ref_ids = brute(base, queries, k, own)
        np.testing.assert_array_equal(ids, ref_ids, err_msg=f"trial {trial}")
        np.testing.assert_array_equal(sq, ref_sq, err_msg=f"trial {trial}")
        assert ids.dtype == np.int64 and sq.dtype == np.float64


def test_validate_on_a_pool_of_copies_is_fast_and_flags_off_manifold(monkeypatch):
    pool = np.repeat(np.eye(3, dtype=np.float32), 1000, axis=0)
    asked = counting_searches(monkeypatch)
    report = alcore.synthesis.validate(np.array([[0.5, 0.5, 0.0]], dtype=np.float32), pool,
                                       k=3)
    assert report.max_distance == 0
    assert report.off_manifold.tolist() == [True]
    assert sum(asked) <= 20 * 3 * len(pool) + 3 * 3 * 10  # and the discriminator's


def greedy_reference(points: np.ndarray, pool: np.ndarray, k: int) -> np.ndarray:
    """nearest_real(unique=True) by its definition: all (point, item) pairs by (distance,
    point, item), each taken while the point has fewer than k and the item is free."""
    d = ((points.astype(np.float64)[:, None, :] - pool.astype(np.float64)[None]) ** 2).sum(2)
    m, n = d.shape
    order = np.lexsort((np.tile(np.arange(n), m), np.repeat(np.arange(m), n), d.reshape(-1)))
    out = [[] for _ in range(m)]
    taken = set()
    for pos in order.tolist():
        p, i = divmod(pos, n)
        if len(out[p]) < k and i not in taken:
            taken.add(i)
            out[p].append(i)
    return np.array(out, dtype=np.int64)


def test_nearest_real_unique_on_many_copies_of_one_point_is_fast():
    """2000 synthetic copies of one point (SMOTE on a rare class of two labeled items puts
    every point on one segment) took 20 s: every copy was searched, and the greedy ran in
    Python over ~m^2 candidate pairs, sorted by three keys, again at every widening
    (m = 4000: 25 s). Copies are searched once, the pairs sorted by one stable key and the
    greedy compiled: m = 3000 in about 2 s, the greedy's answer."""
    import time

    rng = np.random.default_rng(4)
    pool = rng.normal(size=(6000, 8)).astype(np.float32)
    synthetic = np.repeat(pool[:1] + np.float32(0.01), 3000, axis=0)
    start = time.perf_counter()
    res = alcore.synthesis.nearest_real(synthetic, pool, unique=True)
    assert time.perf_counter() - start < 8.0
    assert len(np.unique(res.indices)) == 3000
    d = ((pool.astype(np.float64) - synthetic[0].astype(np.float64)) ** 2).sum(1)
    np.testing.assert_array_equal(res.indices[:, 0], np.lexsort((np.arange(6000), d))[:3000])


@pytest.mark.parametrize("compiled", [False, True])
def test_nearest_real_unique_equals_the_greedy_definition(monkeypatch, compiled):
    from alcore.synthesis import _nearest

    if compiled:  # the compiled greedy on every size
        monkeypatch.setattr(_nearest, "COMPILED_GREEDY_MIN", 0)
    rng = np.random.default_rng(5)
    for trial in range(25):
        n, d = int(rng.integers(5, 40)), int(rng.integers(1, 3))
        pool = rng.integers(-2, 3, size=(n, d)).astype(np.float32)
        k = int(rng.integers(1, 3))
        m = int(rng.integers(1, n // k + 1))
        points = rng.integers(-2, 3, size=(m, d)).astype(np.float32)
        res = alcore.synthesis.nearest_real(points, pool, k=k, unique=True)
        np.testing.assert_array_equal(res.indices, greedy_reference(points, pool, k),
                                      err_msg=f"trial {trial}")


def test_minority_searches_neighbours_of_the_drawn_seeds_only(monkeypatch):
    """SMOTE searched the k nearest same-class members of every member of a class, however
    few points were asked for: 10 points for a 100 000-item class of a 200 000 x 64 pool
    was a 100 000 x 100 000 search (over a minute). Only the seeds drawn are searched now
    (the draws are unchanged: same points for the same seed)."""
    rng = np.random.default_rng(6)
    x = rng.normal(size=(3001, 4)).astype(np.float32)
    y = np.r_[np.zeros(1501, dtype=np.int64), np.ones(1500, dtype=np.int64)]
    queried: list[int] = []
    real = _faiss.nearest_rows

    def spy(base, queries, k, **kw):
        queried.append(len(queries))
        return real(base, queries, k, **kw)

    monkeypatch.setattr(_faiss, "nearest_rows", spy)
    res = alcore.synthesis.minority(x, y, 7, k=5, seed=3)
    assert sum(queried) <= 7
    members = np.flatnonzero(y == 1)
    for (s, j), lam, p in zip(res.source.tolist(), res.lam, res.points, strict=True):
        d = ((x[members].astype(np.float64) - x[s]) ** 2).sum(1)
        d[members == s] = np.inf
        assert j in members[np.lexsort((members, d))[:5]]
        np.testing.assert_allclose(p, x[s] + lam * (x[j] - x[s]), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize(("offset", "scale"), [(1e4, 1e-2), (1e6, 1.0)])
def test_minority_on_uncentred_float64_matches_imbalanced_learn(offset, scale):
    """float64 embeddings were rounded to float32 before any centring: at an offset of 1e6
    (or 1e4 with a spread of 0.01) float32 keeps about 3 digits of the spread, so the
    nearest neighbours, and Borderline-SMOTE's danger set, differed from
    imbalanced-learn's (which works in float64) on 16-28 of ~600 rare items over 10 data
    sets. The rows are now centred in float64 before the float32 search."""
    imblearn = pytest.importorskip("imblearn.over_sampling")
    rng = np.random.default_rng(7)
    for _ in range(6):
        x = rng.normal(size=(400, 3)) * scale + offset
        y = (rng.random(400) < 0.15).astype(np.int64)
        ref = imblearn.BorderlineSMOTE(k_neighbors=3, m_neighbors=10, random_state=0)
        ref.fit_resample(x, y)
        ids = ref.nn_m_.kneighbors(x[y == 1], return_distance=False)[:, 1:]
        majority = (y[ids] != 1).sum(axis=1)
        danger_ref = (majority >= 5) & (majority < 10)
        res = minority(x, y, 200, k=3, variant="borderline", m=10, seed=1)
        rare = np.flatnonzero(y == 1)
        assert set(res.source[:, 0].tolist()) <= set(rare[danger_ref].tolist())
        seeds = set(res.source[:, 0].tolist())
        assert len(seeds) >= 0.8 * min(danger_ref.sum(), 60)  # most danger seeds drawn
        # and the neighbours are the float64 k nearest same-class members
        for s, j in res.source.tolist():
            d = ((x[rare] - x[s]) ** 2).sum(axis=1)
            d[rare == s] = np.inf
            assert j in rare[np.argsort(d, kind="stable")[:3]]


def minority(*args, **kwargs):
    return alcore.synthesis.minority(*args, **kwargs)


def test_validate_and_nearest_real_on_an_uncentred_float64_pool():
    """A float64 pool 1e6 from the origin was rounded to float32 (spacing 0.06) before any
    centring: points 0.01 from a real item came out as "an exact copy (distance 0)" (37 of
    50 rejected as near-duplicates) and the reported distances were off by 6x. Pool and
    points are now centred on the pool's float64 mean first."""
    rng = np.random.default_rng(8)
    pool = rng.normal(size=(2000, 3)) + 1e6
    synthetic = pool[:50] + rng.normal(size=(50, 3)) * 0.01
    true = np.sqrt(((synthetic[:, None] - pool[None]) ** 2).sum(axis=2))
    report = alcore.synthesis.validate(synthetic, pool)
    np.testing.assert_allclose(report.nearest_distance, true.min(axis=1), atol=1e-6)
    assert not report.near_duplicate.any()
    assert report.min_distance == pytest.approx(
        1e-3 * np.median(np.sort(np.sqrt(((pool[:, None] - pool[None]) ** 2).sum(2)),
                                 axis=1)[:, 1]), rel=1e-5)
    res = alcore.synthesis.nearest_real(synthetic, pool, k=2)
    np.testing.assert_array_equal(res.indices, np.argsort(true, axis=1)[:, :2])
    np.testing.assert_allclose(res.distances, np.sort(true, axis=1)[:, :2], atol=1e-6)


def test_boundary_pairs_on_uncentred_float64_are_float64_neighbours():
    rng = np.random.default_rng(9)
    x = rng.normal(size=(300, 2)) * 1e-2 + 1e6
    w = np.array([1.0, -1.0])

    def proba(batch):
        p = 1 / (1 + np.exp(-((batch - 1e6) @ w) * 100))
        return np.column_stack([1 - p, p])

    res = alcore.synthesis.boundary(x, proba, 40, neighbors=3)
    d = ((x[:, None] - x[None]) ** 2).sum(axis=2)
    np.fill_diagonal(d, np.inf)
    near = np.argsort(d, axis=1, kind="stable")[:, :3]
    for a, b in res.source.tolist():
        assert b in near[a] or a in near[b]


def test_every_synthesis_function_is_shown_in_a_readme_python_block():
    """validate, one of the four public functions, had no line in the README (its name
    appeared only as the word "validated")."""
    import inspect
    import pathlib
    import re

    readme = (pathlib.Path(__file__).parents[1] / "README.md").read_text()
    code = "\n".join(re.findall(r"```python\n(.*?)```", readme, flags=re.S))
    for name in alcore.synthesis.__all__:
        if inspect.isfunction(getattr(alcore.synthesis, name)):
            assert re.search(rf"\b{name}\(", code), name


def test_results_compare_by_identity_instead_of_raising():
    """The frozen dataclasses generated an __eq__ over their array fields, so comparing
    two results (``a == b``, ``a in results``) raised numpy's "truth value of an array is
    ambiguous" and ``hash(a)`` raised TypeError (as AuditReport did before it got
    eq=False)."""
    rng = np.random.default_rng(10)
    x = rng.normal(size=(50, 2)).astype(np.float32)
    y = np.r_[np.zeros(40, dtype=np.int64), np.ones(10, dtype=np.int64)]
    a, b = minority(x, y, 5), minority(x, y, 5)
    assert a == a and a != b and a not in [b] and len({a, b}) == 2
    ra, rb = alcore.synthesis.validate(a, x), alcore.synthesis.validate(a, x)
    assert ra == ra and ra != rb and len({ra, rb}) == 2


@pytest.mark.parametrize("missing", [float("nan"), None])
def test_missing_labels_in_an_object_array_are_refused(missing):
    """An object array (a pandas column with missing values) passed NaN through as
    classes, each NaN a class of its own: minority then refused "class nan has 1 member",
    or with classes= silently ignored the rows; None came out as "could not be sorted"."""
    x = np.random.default_rng(11).normal(size=(6, 2))
    labels = np.array([0, 0, 1, 1, missing, 1], dtype=object)
    for call in (lambda: minority(x, labels, 4),
                 lambda: minority(x, labels, 4, classes=[1]),
                 lambda: alcore.synthesis.boundary(x, lambda b: np.full((len(b), 2), 0.5), 2,
                                                   labels=labels)):
        with pytest.raises(alcore.InvalidInputError,
                           match=rf"^labels\[4\] is {missing}; every item needs a class "
                                 r"\(drop the unlabeled rows"):
            call()


def test_minority_experiment_survives_a_model_that_predicts_one_class():
    """On features without signal the first logistic regression predicts the majority
    class for every item, and boundary refused ("predicts class 0 for all 1003 items"):
    the whole experiment (`alcore simulate --experiment minority --dataset noise.csv`)
    died mid-run. Such a round now gets no boundary points and margin fills the batch,
    as the experiment documents for synthesis that yields nothing."""
    pytest.importorskip("sklearn")
    from alcore import simulate_synthesis

    rng = np.random.default_rng(0)
    x = rng.normal(size=(2000, 2))
    y = (rng.random(2000) < 0.3).astype(np.int64)
    results = simulate_synthesis.run(x, y, arms=("margin", "margin+boundary"), rounds=3,
                                     batch=5, seeds=2)
    entry = results["arms"]["margin+boundary"]
    assert np.array(entry["recall"]).shape == (2, 3)
    assert entry["synthesis"]["mapped"] <= entry["synthesis"]["generated"]


def test_borderline_judges_every_class_in_one_search_of_the_whole_set(monkeypatch):
    """Borderline-SMOTE searched the whole set once per class to oversample (each search
    builds an index of every item): 300 classes of a 100 000 x 32 set took 62 s, 34 s
    with one search."""
    rng = np.random.default_rng(12)
    x = rng.normal(size=(600, 3)).astype(np.float32)
    y = rng.integers(0, 30, size=600)
    y[:60] = 0
    whole: list[int] = []
    real = _faiss.nearest_rows

    def spy(base, queries, k, **kw):
        if len(base) == len(x):
            whole.append(len(queries))
        return real(base, queries, k, **kw)

    monkeypatch.setattr(_faiss, "nearest_rows", spy)
    res = minority(x, y, 300, k=3, variant="borderline", m=6)
    assert len(whole) == 1
    # The danger set, per class, from plain numpy.
    d = ((x[:, None].astype(np.float64) - x[None]) ** 2).sum(axis=2)
    np.fill_diagonal(d, np.inf)
    near = np.lexsort((np.broadcast_to(np.arange(600), d.shape), d), axis=-1)[:, :6]
    others = (y[near] != y[:, None]).sum(axis=1)
    in_danger = (others >= 3) & (others < 6)
    assert in_danger[res.source[:, 0]].all()
    assert np.array_equal(np.unique(res.labels), np.unique(y[in_danger & (y != 0)]))


def test_nearest_rows_with_copies_and_a_large_k_stays_small_in_memory():
    """The copies' expansion took k + 1 copies of each of the k + 1 nearest distinct rows:
    (k + 1)^2 candidates per query, so nearest_real(unique=True), which widens k into the
    thousands on clustered points, would have needed gigabytes on a pool holding a few
    copies. A distinct row now gives only the copies that can still be in the answer."""
    import tracemalloc

    rng = np.random.default_rng(13)
    distinct = rng.normal(size=(1000, 3)).astype(np.float32)
    base = np.concatenate([distinct, distinct])  # every row twice
    queries = rng.normal(size=(20, 3)).astype(np.float32)
    tracemalloc.start()
    sq, ids = _faiss.nearest_rows(base, queries, 400)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    ref_sq, ref_ids = brute(base, queries, 400, False)
    np.testing.assert_array_equal(ids, ref_ids)
    np.testing.assert_array_equal(sq, ref_sq)
    assert peak < 15e6, peak
