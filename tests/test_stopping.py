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
    assert "mean pool uncertainty 0.0500 < 0.1" in stop.reason
    both = MaxLabels(100) & OverallUncertainty(0.1)
    assert not both.update(n_labeled=150, scores=np.full(10, 0.5))
    assert both.update(n_labeled=150, scores=np.full(10, 0.01))


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: MaxLabels(10).update(), r"MaxLabels.update needs n_labeled="),
        (lambda: MaxLabels(0), r"max_labels must be a positive integer"),
        (lambda: OverallUncertainty(0.1).update(scores=[]), r"scores must be a non-empty"),
        (lambda: StabilizingPredictions(threshold=2), r"threshold must be in \[-1, 1\]"),
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
