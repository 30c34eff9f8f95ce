"""alcore.synthesis.minority: SMOTE and Borderline-SMOTE-1 against brute-force references
(same-class k nearest neighbours, the danger rule) and against imbalanced-learn (its
danger set, its candidate segments); counts per class; bad input."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import alcore
from alcore.synthesis import minority
from alcore.synthesis._minority import danger


def sq_dist(x: np.ndarray, i: int) -> np.ndarray:
    """Squared distances of row i to every row, float64 differences of the rows as given."""
    x64 = x.astype(np.float64)
    return ((x64 - x64[i]) ** 2).sum(axis=1)


def ref_same_class_knn(x: np.ndarray, y: np.ndarray, i: int, k: int) -> list[int]:
    """Row i's min(k, class size - 1) nearest other rows of its class, ties to the lower
    row."""
    others = [j for j in range(len(x)) if y[j] == y[i] and j != i]
    d = sq_dist(x, i)
    others.sort(key=lambda j: (d[j], j))
    return others[:k]


def ref_danger(x: np.ndarray, y: np.ndarray, cls, m: int) -> list[int]:
    """Borderline-SMOTE's danger members of cls: of the m nearest other rows (ties to the
    lower row), at least m / 2 and fewer than m are of another class."""
    out = []
    for i in np.flatnonzero(y == cls):
        d = sq_dist(x, i)
        order = sorted((j for j in range(len(x)) if j != i), key=lambda j: (d[j], j))[:m]
        other = sum(y[j] != cls for j in order)
        if m / 2 <= other < m:
            out.append(int(i))
    return out


def tie_decides(x: np.ndarray, y: np.ndarray, i: int, m: int) -> bool:
    """Whether row i's danger count depends on how ties are broken: a tie at the m-th
    distance across classes, or a duplicate of another class (imbalanced-learn drops the
    first neighbour found, which may be that duplicate rather than the row itself)."""
    d = sq_dist(x, i)
    d[i] = np.inf
    t = np.sort(d)[m - 1]
    tied = np.flatnonzero(d == t)
    inside = int(np.count_nonzero(d < t))
    mixed = len(set((y[tied] == y[i]).tolist())) > 1
    return (mixed and inside + len(tied) > m) or bool(np.any((d == 0) & (y != y[i])))


def imblearn_danger(x, y, k, m):
    from imblearn.over_sampling import BorderlineSMOTE

    sampler = BorderlineSMOTE(kind="borderline-1", k_neighbors=k, m_neighbors=m,
                              random_state=0)
    sampler.fit_resample(x, y)
    return {c: sorted(v.tolist()) for c, v in sampler.in_danger_indices.items()}


def our_danger(x, y, m):
    codes = np.unique(y, return_inverse=True)[1]
    counts = np.bincount(codes)
    out = {}
    for c in np.flatnonzero(counts < counts.max()):
        members = np.flatnonzero(codes == c)
        mask = danger(np.ascontiguousarray(x, dtype=np.float32), codes, members, int(c), m)
        if mask.any():
            out[int(c)] = members[mask].tolist()
    return out


def check_on_segments(res, x, y, k):
    """Every point = seed + lam (neighbour - seed), the neighbour among the seed's k
    nearest same-class rows (brute force), lam in [0, 1)."""
    assert res.points.dtype == x.dtype
    assert res.source.dtype == np.int64 and res.lam.dtype == np.float64
    assert np.all((res.lam >= 0) & (res.lam < 1))
    seed, nb = res.source[:, 0], res.source[:, 1]
    assert np.all(y[seed] == y[nb]) and np.all(seed != nb)
    np.testing.assert_array_equal(res.labels, y[seed])
    for s, j in {(int(a), int(b)) for a, b in res.source.tolist()}:
        assert j in ref_same_class_knn(x, y, s, k), (s, j)
    start = x[seed].astype(np.float64)
    want = start + res.lam[:, None] * (x[nb].astype(np.float64) - start)
    atol = (np.abs(x).max() + 1) * (1e-6 if x.dtype == np.float32 else 1e-12)
    np.testing.assert_allclose(res.points, want, rtol=0, atol=atol)


@st.composite
def labelled_data(draw, kind=None):
    kind = kind or draw(st.sampled_from(["continuous", "duplicates", "grid"]))
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    n = draw(st.integers(14, 60))
    d = draw(st.sampled_from([1, 2, 3, 20]))
    x = (rng.integers(0, 3, size=(n, d)) if kind == "grid"
         else rng.standard_normal((n, d)))
    x = x + draw(st.sampled_from([0.0, 1e4]))
    y = (rng.random(n) < draw(st.sampled_from([0.2, 0.35]))).astype(np.int64)
    if draw(st.booleans()):
        y[rng.random(n) < 0.15] = 2
    if kind == "duplicates":  # exact copies, each of its original's class
        copies = rng.integers(0, n, size=n // 3)
        x = np.concatenate([x, x[copies]])
        y = np.concatenate([y, y[copies]])
    return x.astype(np.float32), y, kind


@settings(max_examples=40)
@given(labelled_data(), st.integers(1, 8))
def test_danger_set_equals_imbalanced_learn(data, m):
    x, y, kind = data
    counts = np.bincount(y)
    small = counts[counts < counts.max()]
    if len(small) == 0 or small.min() < 2 or len(np.flatnonzero(counts)) < 2:
        return
    k = int(min(2, small.min() - 1))
    theirs = imblearn_danger(x, y, k, m)
    ours = our_danger(x, y, m)
    for c in set(theirs) | set(ours):
        want = set(ref_danger(x, y, c, m))
        assert set(ours.get(c, [])) == want  # the plain definition, ties to the lower row
        differ = want ^ set(theirs.get(c, []))
        # imbalanced-learn breaks ties its own way (grid data, and float32 rounding of
        # rows 1e4 from the origin, tie distances): only there may the sets differ.
        assert all(tie_decides(x, y, i, m) for i in differ), (kind, c, differ)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("duplicates", [False, True])
def test_danger_set_is_imbalanced_learns_exactly_without_ties(seed, duplicates):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((150, 1 + seed % 4)).astype(np.float32)
    y = np.where(x[:, 0] + rng.standard_normal(150) * 0.7 > 1.0, 1, 0)
    y[rng.random(150) < 0.1] = 2
    if duplicates:  # copies of the same class: equal distances, but no tie decides
        copies = rng.integers(0, 150, size=40)
        x, y = np.concatenate([x, x[copies]]), np.concatenate([y, y[copies]])
    for m in (3, 5, 10):
        theirs = imblearn_danger(x, y, 2, m)
        ours = our_danger(x, y, m)
        assert ours == theirs
        assert sum(len(v) for v in ours.values()) > 0


@settings(max_examples=30)
@given(labelled_data(), st.integers(1, 6), st.sampled_from(["smote", "borderline"]),
       st.integers(0, 1000))
def test_points_lie_on_segments_to_same_class_neighbours(data, k, variant, seed):
    x, y, _ = data
    counts = np.bincount(y)
    if counts[counts > 0].min() < 2 or np.all(counts[counts > 0] == counts.max()):
        return
    res = minority(x, y, 50, k=k, variant=variant, m=5, seed=seed)
    check_on_segments(res, x, y, k)
    if variant == "borderline":
        seeds = set(res.source[:, 0].tolist())
        allowed = {i for c in np.unique(y) for i in ref_danger(x, y, c, 5)}
        assert seeds <= allowed
        assert (res.shortfall is None) == (len(res) == 50)
    else:
        assert len(res) == 50 and res.shortfall is None


def test_imbalanced_learn_smote_draws_from_the_same_segments():
    from imblearn.over_sampling import SMOTE

    rng = np.random.default_rng(3)
    x = rng.standard_normal((120, 3)).astype(np.float32)
    y = np.where(rng.random(120) < 0.2, 1, 0)
    k = 4
    x_res, _ = SMOTE(k_neighbors=k, random_state=0).fit_resample(x, y)
    theirs = x_res[len(x):].astype(np.float64)
    members = np.flatnonzero(y == 1)
    segments = [(s, j) for s in members for j in ref_same_class_knn(x, y, s, k)]
    ours = minority(x, y, len(theirs), k=k)
    assert {tuple(p) for p in ours.source.tolist()} <= set(segments)
    starts = np.array([x[s] for s, _ in segments], dtype=np.float64)
    dirs = np.array([x[j] for _, j in segments], dtype=np.float64) - starts
    for p in theirs:  # each of imbalanced-learn's points lies on one of our segments
        lam = np.clip(((p - starts) * dirs).sum(axis=1) / (dirs ** 2).sum(axis=1), 0, 1)
        residual = np.abs(starts + lam[:, None] * dirs - p).max(axis=1)
        assert residual.min() < 1e-5


def test_seeds_neighbours_and_steps_are_uniform():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((60, 2))
    y = np.zeros(60, dtype=int)
    y[:10] = 1
    res = minority(x, y, 20_000, k=3, classes=[1])
    seeds = np.bincount(res.source[:, 0], minlength=10)[:10]
    assert np.all(np.abs(seeds - 2000) < 300)  # 10 seeds, 2000 each expected (sd ~ 42)
    assert abs(res.lam.mean() - 0.5) < 0.02
    # Each seed's 3 neighbours about equally often.
    for s in range(3):
        nb = np.unique(res.source[res.source[:, 0] == s, 1], return_counts=True)[1]
        assert len(nb) == 3 and nb.min() > 0.7 * nb.max()


def test_counts_follow_the_deficits():
    rng = np.random.default_rng(5)
    y = np.repeat([0, 1, 2], [100, 10, 40])
    x = rng.standard_normal((150, 3))
    res = minority(x, y, 150)
    # Deficits 90 and 60: 150 points split 90 / 60.
    np.testing.assert_array_equal(np.unique(res.labels, return_counts=True)[1], [90, 60])
    # 7 points: 4.2 and 2.8 -> 4 and 3 (largest remainder).
    few = minority(x, y, 7)
    np.testing.assert_array_equal(np.unique(few.labels, return_counts=True)[1], [4, 3])
    only = minority(x, y, 9, classes=2)
    assert set(only.labels.tolist()) == {2} and len(only) == 9
    # Points are grouped by class in sorted order.
    assert np.all(np.diff(res.labels) >= 0)
    # Equal sizes among chosen classes: shared equally.
    even = minority(x, np.repeat([0, 1, 2], 50), 6, classes=[0, 1, 2])
    np.testing.assert_array_equal(np.unique(even.labels, return_counts=True)[1], [2, 2, 2])


def test_string_labels_small_classes_and_determinism():
    rng = np.random.default_rng(6)
    x = rng.standard_normal((40, 2)).astype(np.float32)
    y = np.array(["big"] * 37 + ["rare"] * 3)
    res = minority(x, y, 12, k=5)  # k capped at the rare class's 2 others
    assert set(res.labels.tolist()) == {"rare"} and res.labels.dtype == y.dtype
    assert set(res.source.reshape(-1).tolist()) <= {37, 38, 39}
    check_on_segments(res, x, y, 2)
    again = minority(x, y, 12, k=5)
    np.testing.assert_array_equal(res.points, again.points)
    other = minority(x, y, 12, k=5, seed=1)
    assert not np.array_equal(res.points, other.points)
    assert res.method == "smote"


def test_borderline_skips_a_class_without_danger_members():
    rng = np.random.default_rng(7)
    x = np.concatenate([rng.standard_normal((50, 2)), rng.standard_normal((5, 2)) + 50])
    y = np.array([0] * 50 + [1] * 5)
    res = minority(x, y, 10, k=2, variant="borderline", m=3)
    assert len(res) == 0 and res.method == "borderline"
    assert res.shortfall == ("0 of 10 points: no danger member (half or more, but not all, "
                             "of its m=3 nearest items of other classes) in class 1 "
                             "(10 points)")


@pytest.mark.parametrize(("args", "kwargs", "message"), [
    ((np.zeros(30, int),), {}, "labels holds one class \\(0\\), so none is under-represented"),
    ((np.repeat([0, 1], 15),), {}, "every class has 15 items, so none is under-represented"),
    ((np.array([0] * 28 + [1, 2]),), {"classes": [2]}, "class 2 has 1 member; SMOTE"),
    ((np.array([0] * 29 + [1]),), {}, "class 1 has 1 member; SMOTE interpolates"),
    ((np.zeros(29, int),), {}, "labels has 29 entries but embeddings has 30 items"),
    ((np.full(30, np.nan),), {}, "labels\\[0\\] is nan"),
    ((np.zeros((30, 2), int),), {}, "labels must be 1-D"),
    ((None,), {}, "labels is None"),
    ((np.array([0] * 20 + [1] * 10),), {"n": 0}, "n must be a positive integer, got 0"),
    ((np.array([0] * 20 + [1] * 10),), {"k": 0}, "k must be a positive integer, got 0"),
    ((np.array([0] * 20 + [1] * 10),), {"m": -1}, "m must be a positive integer"),
    ((np.array([0] * 20 + [1] * 10),), {"variant": "borderlin"},
     "variant must be one of 'smote', 'borderline', got 'borderlin' \\(did you mean "
     "'borderline'\\?\\)"),
    ((np.array([0] * 20 + [1] * 10),), {"classes": [3]}, "classes holds 3, which is not a "
                                                          "class of labels"),
    ((np.array([0] * 20 + [1] * 10),), {"classes": [1, 1]}, "classes holds a class twice"),
    ((np.array([0] * 20 + [1] * 10),), {"classes": []}, "classes is empty"),
    ((np.array([0] * 20 + [1] * 10),), {"variant": "borderline", "m": 30},
     "m=30 needs at least 31 items"),
    ((np.array([0] * 20 + [1] * 10),), {"seed": "x"}, "seed must be an int"),
    ((np.array([0] * 20 + [1] * 10),), {"bogus": 1}, "unknown|unexpected"),
])
def test_bad_input(args, kwargs, message):
    x = np.random.default_rng(8).standard_normal((30, 2))
    n = kwargs.pop("n", 5)
    with pytest.raises(alcore.InvalidInputError, match=message):
        minority(x, *args, n, **kwargs)


def test_bad_embeddings():
    y = np.array([0] * 20 + [1] * 10)
    x = np.zeros((30, 2))
    x[3, 1] = np.nan
    with pytest.raises(alcore.InvalidInputError, match="embeddings must be finite: row 3"):
        minority(x, y, 5)
    with pytest.raises(alcore.InvalidInputError, match="embeddings must have a floating"):
        minority(np.zeros((30, 2), dtype=int), y, 5)
    with pytest.raises(alcore.InvalidInputError, match="embeddings is empty"):
        minority(np.zeros((0, 2)), [], 5)
    with pytest.raises(alcore.InvalidInputError, match="labels holds one class"):
        minority(np.zeros((1, 2)), [4], 5)


def test_the_result_does_not_depend_on_the_thread_count():
    rng = np.random.default_rng(9)
    x = rng.integers(0, 4, size=(300, 3)).astype(np.float32)  # many equal distances
    y = np.where(rng.random(300) < 0.25, 1, 0)
    alcore.set_num_threads(1)
    one = minority(x, y, 100, variant="borderline", m=6)
    alcore.set_num_threads(2)
    two = minority(x, y, 100, variant="borderline", m=6)
    np.testing.assert_array_equal(one.source, two.source)
    np.testing.assert_array_equal(one.points, two.points)
