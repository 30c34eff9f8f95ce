"""alcore.synthesis.boundary: every point on the model's boundary (margin < tol under the
model, recomputed here), on the segment of a nearby pair of different classes, with the
model called on whole batches; bad models and arguments refused."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import alcore
from alcore.synthesis import SyntheticPoints, boundary


class Softmax:
    """A fixed linear softmax model that records the shape of every batch it is called
    on."""

    def __init__(self, weights: np.ndarray, bias: np.ndarray | None = None):
        self.w = np.asarray(weights, dtype=np.float64)
        self.b = np.zeros(self.w.shape[1]) if bias is None else np.asarray(bias, float)
        self.batches: list[tuple[int, ...]] = []

    def probs(self, x: np.ndarray) -> np.ndarray:
        z = np.asarray(x, dtype=np.float64) @ self.w + self.b
        z -= z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        self.batches.append(np.shape(x))
        return self.probs(x)


def top_two_margin(p: np.ndarray) -> np.ndarray:
    s = np.sort(p, axis=1)
    return s[:, -1] - s[:, -2]


def brute_neighbours(x: np.ndarray, k: int) -> list[set[int]]:
    """Each row's k nearest other rows (float64 differences, ties to the lower row)."""
    x = x.astype(np.float64)
    out = []
    for i in range(len(x)):
        d = ((x - x[i]) ** 2).sum(axis=1)
        d[i] = np.inf
        out.append(set(np.lexsort((np.arange(len(x)), d))[:k].tolist()))
    return out


def blobs(n=300, d=5, classes=3, seed=0, offset=0.0, dtype=np.float32, scale=2.5):
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((classes, d)) * scale
    y = rng.integers(classes, size=n)
    x = centres[y] + rng.standard_normal((n, d)) + offset
    return x.astype(dtype), y


def check_result(res: SyntheticPoints, x: np.ndarray, model_probs, tol: float,
                 neighbors: int, classes: np.ndarray | None = None) -> None:
    assert res.method == "boundary"
    assert res.points.dtype == x.dtype and res.points.shape == (len(res), x.shape[1])
    assert res.source.dtype == np.int64 and res.source.shape == (len(res), 2)
    assert res.lam.dtype == np.float64 and res.margin.dtype == np.float64
    assert np.all((res.lam >= 0) & (res.lam <= 1))
    # The margin under the model, recomputed at the returned points.
    margin = top_two_margin(model_probs(res.points))
    assert np.all(margin < tol), margin.max()
    # The same model on another batch: BLAS may round the products differently.
    np.testing.assert_allclose(res.margin, margin, rtol=0, atol=1e-9)
    a, b = x[res.source[:, 0]].astype(np.float64), x[res.source[:, 1]].astype(np.float64)
    on_segment = a + res.lam[:, None] * (b - a)
    scale = float(np.abs(x).max())
    np.testing.assert_allclose(res.points, on_segment, rtol=0,
                               atol=scale * (1e-6 if x.dtype == np.float32 else 1e-12))
    # Pairs: distinct, of different classes, and one is among the other's nearest.
    assert len({tuple(p) for p in res.source.tolist()}) == len(res)
    cls = np.argmax(model_probs(x), axis=1) if classes is None else classes
    assert np.all(cls[res.source[:, 0]] != cls[res.source[:, 1]])
    near = brute_neighbours(x, neighbors)
    for i, j in res.source.tolist():
        assert j in near[i] or i in near[j]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("offset", [0.0, 1e4])
def test_linear_softmax_points_are_on_the_boundary(dtype, offset):
    x, _ = blobs(dtype=dtype, offset=offset)
    rng = np.random.default_rng(1)
    model = Softmax(rng.standard_normal((5, 3)))
    model.b = -(np.full(5, offset) @ model.w)  # the boundary crosses the shifted data
    tol = 1e-3
    res = boundary(x, model, 40, tol=tol)
    assert len(res) == 40 and res.shortfall is None
    check_result(res, x, model.probs, tol, 10)
    # Every call on a 2-D batch: first the items, then one batch of midpoints per step.
    assert res.model_calls == len(model.batches)
    assert model.batches[0] == x.shape
    steps = model.batches[1:]
    assert all(len(s) == 2 and s[1] == x.shape[1] and 1 <= s[0] <= 40 for s in steps)
    assert [s[0] for s in steps] == sorted((s[0] for s in steps), reverse=True)
    assert res.model_calls <= len(steps) + 2 and len(steps) <= 60


def test_sklearn_logistic_regression():
    from sklearn.linear_model import LogisticRegression

    x, y = blobs(n=400, d=4, classes=3, seed=3, dtype=np.float64, scale=1.0)
    clf = LogisticRegression(max_iter=500).fit(x, y)
    calls = []

    def predict(batch):
        calls.append(batch.shape)
        return clf.predict_proba(batch)

    res = boundary(x, predict, 40, tol=1e-4, neighbors=8, seed=2)
    assert len(res) == 40
    check_result(res, x, clf.predict_proba, 1e-4, 8)
    assert res.model_calls == len(calls) <= 60 + 2
    assert all(len(s) == 2 for s in calls)


def test_true_labels_pick_pairs_across_true_classes():
    x, y = blobs(n=200, seed=4, dtype=np.float64, scale=1.0)
    model = Softmax(np.random.default_rng(5).standard_normal((5, 3)) * 3)
    res = boundary(x, model, 25, labels=y)
    assert len(res) >= 1
    check_result(res, x, model.probs, 1e-3, 10, classes=y)
    # ... and the model separates them too (the bisection needs a flip).
    cls = np.argmax(model.probs(x), axis=1)
    assert np.all(cls[res.source[:, 0]] != cls[res.source[:, 1]])
    # labels as strings: the same pairs.
    names = np.array(["ant", "bee", "cat"])[y]
    same = boundary(x, model, 25, labels=names)
    np.testing.assert_array_equal(same.source, res.source)


def test_normalize_gives_unit_points_on_the_great_circle():
    x, _ = blobs(n=200, d=6, seed=6, dtype=np.float64)
    model = Softmax(np.random.default_rng(7).standard_normal((6, 4)) * 4)
    res = boundary(x, model, 30, normalize=True)
    assert len(res) > 0
    np.testing.assert_allclose(np.linalg.norm(res.points, axis=1), 1.0, atol=1e-12)
    assert np.all(top_two_margin(model.probs(res.points)) < 1e-3)
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    a, b = unit[res.source[:, 0]], unit[res.source[:, 1]]
    chord = a + res.lam[:, None] * (b - a)
    np.testing.assert_allclose(res.points, chord / np.linalg.norm(chord, axis=1,
                                                                  keepdims=True), atol=1e-12)
    # The model only ever saw unit rows.
    assert all(len(s) == 2 for s in model.batches)


def test_deterministic_for_a_seed_and_spread_over_items():
    x, _ = blobs(n=300, seed=8)
    model = Softmax(np.random.default_rng(9).standard_normal((5, 3)))
    one = boundary(x, model, 30, seed=3)
    two = boundary(x, model, 30, seed=3)
    np.testing.assert_array_equal(one.points, two.points)
    np.testing.assert_array_equal(one.source, two.source)
    other = boundary(x, model, 30, seed=4)
    assert not np.array_equal(one.source, other.source)
    # Spread: 30 pairs touch many items, none more than a few times.
    used = np.bincount(one.source.reshape(-1))
    assert used.max() <= 2 and np.count_nonzero(used) >= 40


def test_fewer_pairs_than_asked_is_a_shortfall():
    x = np.array([[0.0], [0.1], [5.0], [5.1]], dtype=np.float32)
    model = Softmax(np.array([[1.0, -1.0]]), np.array([-2.5, 2.5]))  # boundary at x = 2.5
    res = boundary(x, model, 10, neighbors=3)
    # All 4 cross pairs (every item is within 3 nearest of each of the others).
    assert len(res) == 4
    assert res.shortfall.startswith("4 of 10 points: only 4 pairs")
    check_result(res, x, model.probs, 1e-3, 3)


def test_a_model_without_a_soft_boundary_drops_every_pair():
    x, _ = blobs(n=100, d=3, seed=10, dtype=np.float64)

    def step(batch):  # one-hot by the sign of the first coordinate: margin 1 everywhere
        hot = (batch[:, 0] > 0).astype(np.float64)
        return np.column_stack([1 - hot, hot])

    res = boundary(x, step, 5)
    assert len(res) == 0 and res.points.shape == (0, 3)
    assert "jumps between two adjacent representable points" in res.shortfall
    capped = boundary(x, step, 5, max_iter=8)
    assert len(capped) == 0 and "within max_iter=8 bisection steps" in capped.shortfall
    assert capped.model_calls == 1 + 8


def test_an_endpoint_already_on_the_boundary_is_taken_as_it_is():
    x = np.array([[0.0], [-1.0], [-3.0]])
    model = Softmax(np.array([[1.0, -1.0]]))  # margin 0 at x = 0 (class 0 by the tie)
    res = boundary(x, model, 1, neighbors=1)
    assert len(res) == 1 and res.margin[0] < 1e-3
    assert res.model_calls == 1  # the items' classes only: no bisection step needed
    np.testing.assert_array_equal(res.source, [[0, 1]])
    assert res.lam[0] == 0.0 and res.points[0, 0] == 0.0


@settings(max_examples=25)
@given(st.integers(0, 10_000), st.integers(2, 40), st.integers(1, 4),
       st.booleans(), st.sampled_from([0.0, 1e4]))
def test_random_inputs_hold_the_invariants(seed, n_items, d, ties, offset):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 3, size=(n_items, d)).astype(float) if ties else rng.standard_normal(
        (n_items, d))
    x += offset
    model = Softmax(rng.standard_normal((d, 3)) * 3)
    model.b = -(x.mean(axis=0) @ model.w)
    cls = np.argmax(model.probs(x), axis=1)
    try:
        res = boundary(x, model, 7, neighbors=4, seed=seed)
    except alcore.InvalidInputError as err:
        # Only when no nearby pair has different classes.
        assert "class" in str(err)
        near = brute_neighbours(x, min(4, n_items - 1))
        assert all(cls[j] == cls[i] for i in range(n_items) for j in near[i])
        return
    check_result(res, x, model.probs, 1e-3, min(4, n_items - 1))
    assert len(res) <= 7 and (res.shortfall is None) == (len(res) == 7)


def test_one_class_everywhere_is_refused():
    x, _ = blobs(n=50)
    always = lambda b: np.tile([0.9, 0.1], (len(b), 1))  # noqa: E731
    with pytest.raises(alcore.InvalidInputError, match="predicts class 0 for all 50 items"):
        boundary(x, always, 5)
    with pytest.raises(alcore.InvalidInputError, match="labels holds one class"):
        boundary(x, always, 5, labels=np.zeros(50, dtype=int))


def test_no_neighbouring_pair_of_different_classes_is_refused():
    x = np.concatenate([np.zeros((5, 2)), np.full((5, 2), 100.0)])
    x += np.random.default_rng(0).standard_normal(x.shape) * 0.01
    model = Softmax(np.array([[1.0, -1.0], [0.0, 0.0]]), np.array([-50.0, 50.0]))
    with pytest.raises(alcore.InvalidInputError, match="raise neighbors= \\(now 2\\)"):
        boundary(x, model, 3, neighbors=2)


BAD_MODELS = [
    (lambda b: np.full(len(b), 0.5), r"predict_proba \(call 1, on a batch of shape "
                                     r"\(30, 5\).*returned shape \(30,\).*column_stack"),
    (lambda b: np.full((len(b) + 1, 2), 0.5), r"returned shape \(31, 2\), expected \(30, C\)"),
    (lambda b: np.full((len(b), 2), np.nan), r"call 1.*returned nan at row 0, column 0"),
    (lambda b: np.full((len(b), 2), 0.7), r"returned row 0 summing to 1.4"),
    (lambda b: np.tile([2.0, -1.0], (len(b), 1)), r"returned 2 at row 0.*\[0, 1\]"),
    (lambda b: np.ones((len(b), 1)), r"returned 1 column; expected at least 2"),
    (lambda b: 1 / 0, r"call 1.*raised ZeroDivisionError: division by zero"),
    (lambda b: np.array([["a", "b"]] * len(b)), r"returned dtype <U1"),
]


@pytest.mark.parametrize(("model", "message"), BAD_MODELS)
def test_bad_predict_proba_is_named_with_its_call(model, message):
    x, _ = blobs(n=30)
    with pytest.raises(alcore.InvalidInputError, match=message):
        boundary(x, model, 3)


def test_a_model_failing_in_a_later_call_names_that_call():
    x, _ = blobs(n=60)
    good = Softmax(np.random.default_rng(11).standard_normal((5, 3)))

    def flaky(batch):
        out = good(batch)
        if len(good.batches) == 3:
            out[0, 0] = np.nan
        return out

    with pytest.raises(alcore.InvalidInputError, match=r"predict_proba \(call 3, on a batch "
                                                       r"of shape \(5, 5\)"):
        boundary(x, flaky, 5)

    changing = Softmax(good.w)

    def more_classes(batch):
        p = changing(batch)
        return p if len(changing.batches) == 1 else np.column_stack([p[:, :2], p[:, 2:] / 2,
                                                                    p[:, 2:] / 2])

    with pytest.raises(alcore.InvalidInputError, match=r"call 2.*returned shape \(5, 4\), "
                                                       r"expected \(5, 3\)"):
        boundary(x, more_classes, 5)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"n": 0}, "n must be a positive integer, got 0"),
    ({"n": 2.5}, "n must be a positive integer, got float 2.5"),
    ({"tol": 0}, "tol must be > 0, got 0"),
    ({"tol": 1.5}, "tol must be <= 1, got 1.5"),
    ({"tol": float("nan")}, "tol must be finite"),
    ({"neighbors": 0}, "neighbors must be a positive integer"),
    ({"max_iter": 0}, "max_iter must be a positive integer"),
    ({"normalize": 1}, "normalize must be True or False"),
    ({"seed": -1}, "seed must be >= 0"),
    ({"labels": np.zeros(7)}, "labels has 7 entries but embeddings has 30 items"),
    ({"labels": np.full(30, np.nan)}, "labels\\[0\\] is nan; every item needs a class"),
    ({"predict_proba": "model"}, "predict_proba must be a callable"),
    ({"embeddings": np.full((30, 5), np.nan)}, "embeddings must be finite: row 0"),
    ({"embeddings": np.ones((1, 5))}, "embeddings has 1 item; boundary needs at least 2"),
    ({"embeddings": np.ones(5)}, "embeddings must be 2-D"),
    ({"embeddings": np.zeros((30, 5)), "normalize": True}, "row 0 has zero norm"),
    ({"bogus": 1}, "unknown|unexpected"),
])
def test_bad_arguments(kwargs, message):
    x, _ = blobs(n=30)
    model = Softmax(np.random.default_rng(12).standard_normal((5, 3)))
    args = {"embeddings": x, "predict_proba": model, "n": 3, **kwargs}
    with pytest.raises(alcore.InvalidInputError, match=message):
        boundary(args.pop("embeddings"), args.pop("predict_proba"), args.pop("n"), **args)
    if "predict_proba" not in kwargs and "embeddings" not in kwargs:
        assert model.batches == []  # refused before the model was called


def test_a_large_pool_is_searched_only_until_enough_pairs_are_found(monkeypatch):
    from alcore import _faiss

    searched = []
    real = _faiss.nearest_rows

    def counting(base, queries, k, *, self_rows=None):
        searched.append(len(queries))
        return real(base, queries, k, self_rows=self_rows)

    monkeypatch.setattr(_faiss, "nearest_rows", counting)
    x, y = blobs(n=3000, d=3, seed=13, scale=1.0)
    model = Softmax(np.random.default_rng(14).standard_normal((3, 3)) * 2)
    model.b = -(x.mean(axis=0) @ model.w)
    res = boundary(x, model, 10, neighbors=5)
    assert len(res) == 10 and sum(searched) < 3000
    check_result(res, x, model.probs, 1e-3, 5)
    searched.clear()
    with_labels = boundary(x, model, 10, neighbors=5, labels=y)
    assert len(with_labels) == 10
    check_result(with_labels, x, model.probs, 1e-3, 5, classes=y)
    # With labels the model classifies only the endpoints of candidate pairs.
    assert model.batches[-with_labels.model_calls][0] < 3000


@pytest.mark.parametrize("scale", [1e15, 1e-20])
def test_huge_and_tiny_norms(scale):
    x, _ = blobs(n=200, d=4, seed=15, scale=1.0)
    x = (x * scale).astype(np.float32)
    model = Softmax(np.random.default_rng(16).standard_normal((4, 3)) / scale)
    res = boundary(x, model, 20)
    assert len(res) == 20 and np.isfinite(res.points).all()
    check_result(res, x, model.probs, 1e-3, 10)


def test_the_result_does_not_depend_on_the_thread_count():
    x, _ = blobs(n=400, d=6, seed=17, scale=1.0)
    model = Softmax(np.random.default_rng(18).standard_normal((6, 3)))
    alcore.set_num_threads(1)
    one = boundary(x, model, 30)
    alcore.set_num_threads(2)
    two = boundary(x, model, 30)
    np.testing.assert_array_equal(one.source, two.source)
    np.testing.assert_array_equal(one.points, two.points)


def test_a_model_that_changes_its_input_in_place_does_not_move_the_points():
    x, _ = blobs(n=150, seed=19, dtype=np.float64)
    model = Softmax(np.random.default_rng(20).standard_normal((5, 3)))

    def scribbling(batch):
        out = model(batch)
        batch *= 1000.0
        return out

    res = boundary(x, scribbling, 10)
    check_result(res, x, model.probs, 1e-3, 10)
