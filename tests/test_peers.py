"""Equivalence with the peer libraries on the same inputs.

Deliberate differences: scikit-activeml and modAL define margin as p1 - p2 or 1 - |p1 - p2|;
alcore's ``margin`` is ``1 - (p1 - p2)`` (higher = more informative, like every alcore
score), which equals scikit-activeml's ``margin_sampling`` and ``1 - modAL's
classifier_margin``.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from strategies import prob_matrices, tolerance

from alcore import scores

skactiveml_pool = pytest.importorskip("skactiveml.pool")

METHODS = {"least_confident": scores.least_confidence, "margin_sampling": scores.margin,
           "entropy": scores.entropy}


@pytest.mark.parametrize("method", list(METHODS))
@given(probs=prob_matrices(dtype=np.float64))
def test_scikit_activeml_uncertainty_scores(method, probs):
    want = skactiveml_pool.uncertainty_scores(probs.copy(), method=method)
    np.testing.assert_allclose(METHODS[method](probs), want, rtol=0, atol=1e-12)


@pytest.mark.parametrize("method", list(METHODS))
@given(probs=prob_matrices(dtype=np.float32))
def test_scikit_activeml_uncertainty_scores_float32(method, probs):
    want = skactiveml_pool.uncertainty_scores(probs.astype(np.float64), method=method)
    np.testing.assert_allclose(METHODS[method](probs), want, **tolerance(np.float32))


class _FixedProbabilities:
    """Stands in for a fitted classifier: predict_proba returns the given matrix."""

    def __init__(self, probs):
        self.probs = probs

    def predict_proba(self, x):
        return self.probs[np.asarray(x, dtype=int).ravel()]


@given(probs=prob_matrices(dtype=np.float64))
def test_modal_uncertainty_measures(probs):
    uncertainty = pytest.importorskip("modAL.uncertainty")
    clf = _FixedProbabilities(probs)
    x = np.arange(probs.shape[0]).reshape(-1, 1)
    np.testing.assert_allclose(scores.least_confidence(probs),
                               uncertainty.classifier_uncertainty(clf, x), atol=1e-12)
    np.testing.assert_allclose(scores.margin(probs),
                               1 - uncertainty.classifier_margin(clf, x), atol=1e-12)
    np.testing.assert_allclose(scores.entropy(probs),
                               uncertainty.classifier_entropy(clf, x), atol=1e-12)
