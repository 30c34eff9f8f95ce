"""Stopping criteria."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import alcore
from alcore.stopping import (
    MaxLabels,
    OverallUncertainty,
    StabilizingPredictions,
    cohen_kappa,
)


@pytest.mark.filterwarnings("ignore::UserWarning")
@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 3)), min_size=1, max_size=60))
def test_kappa_equals_scikit_learn(pairs):
    metrics = pytest.importorskip("sklearn.metrics")
    a, b = map(np.array, zip(*pairs, strict=True))
    want = metrics.cohen_kappa_score(a, b)
    got = cohen_kappa(a, b)
    if np.isnan(want):  # scikit-learn: 0/0 when both are one and the same label
        assert got == 1.0
    else:
        assert got == pytest.approx(want, abs=1e-12)


def test_stabilizing_predictions_needs_window_stable_rounds():
    criterion = StabilizingPredictions(threshold=0.99, window=3)
    rng = np.random.default_rng(0)
    stable = rng.integers(3, size=200)
    rounds = [rng.integers(3, size=200), stable, stable, stable]
    outcomes = [criterion.update(predictions=p) for p in rounds]
    assert outcomes == [False, False, False, False]  # the first pair disagrees
    assert criterion.update(predictions=stable) is True
    assert "mean kappa of the last 3 rounds 1.0000" in criterion.reason


def test_combinations():
    stop = MaxLabels(100) | OverallUncertainty(0.1)
    assert not stop.update(n_labeled=50, scores=np.full(10, 0.5))
    assert stop.update(n_labeled=50, scores=np.full(10, 0.05))
    assert "mean pool uncertainty 0.05 < 0.1" in stop.reason
    both = MaxLabels(100) & OverallUncertainty(0.1)
    assert not both.update(n_labeled=150, scores=np.full(10, 0.5))
    assert both.update(n_labeled=150, scores=np.full(10, 0.01))


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: MaxLabels(10).update(), r"MaxLabels.update needs n_labeled="),
        (lambda: MaxLabels(0), r"max_labels must be a positive integer"),
        (lambda: OverallUncertainty(0.1).update(scores=[]), r"scores must be a non-empty"),
        (lambda: OverallUncertainty(0.1).update(scores=np.array([0.1, np.nan])),
         r"scores must be finite: scores\[1\] is nan"),
        (lambda: OverallUncertainty(0.1).update(scores=np.array([1, 2])),
         r"scores must have a floating dtype"),
        (lambda: OverallUncertainty(None), r"threshold must be a number, got NoneType None"),
        (lambda: OverallUncertainty("0.1"), r"threshold must be a number, got '0\.1'"),
        (lambda: StabilizingPredictions(threshold=2), r"threshold must be <= 1, got 2"),
        (lambda: StabilizingPredictions(threshold="x"), r"threshold must be a number, got 'x'"),
        (lambda: StabilizingPredictions(window=0), r"window must be a positive integer"),
        (lambda: MaxLabels(10).update(n_labeled=-1), r"n_labeled must be >= 0, got -1"),
        (lambda: MaxLabels(10).update(n_labeled=2.5), r"n_labeled must be an integer"),
        (lambda: MaxLabels(10).update(n_labeled="5"), r"n_labeled must be an integer"),
        (lambda: MaxLabels(2.0), r"max_labels must be a positive integer"),
        (lambda: MaxLabels(10) | 3, r"criteria\[1\] must be a StoppingCriterion"),
        (lambda: (MaxLabels(10) | MaxLabels(5)).update(n_labeled=1, score=[0.1]),
         r"AnyOf.update got an unknown argument score= \(did you mean scores=\?\); it takes "
         r"n_labeled=, predictions=, scores="),
        (lambda: cohen_kappa([1, 2], [1, 2, 3]), r"a and b must have the same length"),
        (lambda: cohen_kappa([], []), r"a must be a non-empty 1-D vector"),
        (lambda: cohen_kappa([1, 2], ["a", "b"]), r"a and b must both hold numbers or both"),
        (lambda: StabilizingPredictions().update(predictions=[object()]),
         r"predictions must hold class labels"),
        (lambda: StabilizingPredictions().update(predictions=np.zeros((2, 2))),
         r"predictions must be the labels predicted for the stop set"),
    ],
)
def test_bad_input(call, match):
    with pytest.raises(alcore.InvalidInputError, match=match):
        call()


def test_stop_set_must_not_change():
    criterion = StabilizingPredictions()
    criterion.update(predictions=np.zeros(5))
    with pytest.raises(alcore.InvalidInputError, match=r"same stop set every round"):
        criterion.update(predictions=np.zeros(6))


def test_numpy_numbers_are_accepted():
    labeled = np.zeros(100, dtype=bool)
    labeled[:60] = True
    stop = MaxLabels(np.int64(50)) | OverallUncertainty(np.float32(0.1))
    assert stop.update(n_labeled=labeled.sum(), scores=np.full(3, 0.5, dtype=np.float32))
    assert "60 labels >= 50" in stop.reason
    assert StabilizingPredictions(threshold=np.float64(0.9), window=np.int8(1)).window == 1


def test_a_rejected_round_changes_no_criterion():
    stable = StabilizingPredictions(window=1)
    stop = stable | MaxLabels(100)
    stop.update(n_labeled=10, predictions=np.zeros(5))
    kappas, previous = list(stable.kappas), stable._previous.copy()
    with pytest.raises(alcore.InvalidInputError, match=r"MaxLabels.update needs n_labeled="):
        stop.update(predictions=np.ones(5))  # stable accepts it, MaxLabels refuses
    assert stable.kappas == kappas
    np.testing.assert_array_equal(stable._previous, previous)
    assert stop.update(n_labeled=20, predictions=np.zeros(5)) and stable.kappas == [1.0]


def _exact_mean(values):
    """The mean in exact rational arithmetic, rounded once (independent of alcore)."""
    from fractions import Fraction

    return float(sum(Fraction(float(x)) for x in values) / len(values))


@pytest.mark.parametrize("scores, mean", [
    ([1e308, 1e308], 1e308),
    ([1.7e308, 1.7e308, 1.7e308], 1.7e308),
    ([-1.7e308, -1.7e308], -1.7e308),
    ([1.7e308, -1.7e308, 1.0], 1 / 3),
    ([1.7e308, 1.7e308, -1.7e308, -1.7e308], 0.0),
    (np.full(1000, np.finfo(np.float64).max), np.finfo(np.float64).max),
    (np.full(4, np.finfo(np.float32).max, dtype=np.float32), float(np.finfo(np.float32).max)),
    ([5e-324, 5e-324], 5e-324),
    ([0.0, 0.0], 0.0),
])
def test_overall_uncertainty_mean_is_finite_at_huge_magnitudes(scores, mean):
    """update(scores=[1e308, 1e308]) summed to inf in float64: a pool mean of inf, never
    below any threshold, and a reason of 'inf'."""
    from alcore.stopping import _mean

    scores = np.asarray(scores, dtype=getattr(scores, "dtype", np.float64))
    assert _exact_mean(scores) == mean
    assert _mean(scores) == pytest.approx(mean, rel=4 * np.finfo(float).eps, abs=0)
    largest = np.finfo(np.float64).max
    criterion = OverallUncertainty(largest)
    assert criterion.update(scores=scores) == (mean < largest)
    if mean < largest:
        assert criterion.reason == f"mean pool uncertainty {_mean(scores):.6g} < {largest:g}"
    negative = OverallUncertainty(-largest)
    assert not negative.update(scores=scores)  # was inf (or nan) for the huge ones


@given(st.lists(st.floats(allow_nan=False, allow_infinity=False), min_size=1, max_size=40))
def test_overall_uncertainty_mean_equals_the_exact_mean(values):
    """Against the exactly rounded mean: within n ulps of the largest magnitude."""
    exact = _exact_mean(values)
    scale = max(abs(x) for x in values)
    from alcore.stopping import _mean

    got = _mean(np.array(values))
    assert np.isfinite(got)
    assert abs(got - exact) <= len(values) * 4 * np.finfo(float).eps * scale


@pytest.mark.parametrize("bad", [[np.inf, 1.0], [1.0, -np.inf], [np.nan]])
def test_non_finite_scores_are_refused(bad):
    with pytest.raises(alcore.InvalidInputError, match=r"scores must be finite: scores\[\d\] is"):
        OverallUncertainty(0.1).update(scores=np.array(bad))
    with pytest.raises(alcore.InvalidInputError, match=r"threshold must be finite, got inf"):
        OverallUncertainty(np.inf)
