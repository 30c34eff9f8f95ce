"""alcore strategies inside a real modAL ActiveLearner."""

from __future__ import annotations

import numpy as np
import pytest

modal = pytest.importorskip("modAL")
from modAL.models import ActiveLearner  # noqa: E402
from modAL.uncertainty import entropy_sampling as modal_entropy  # noqa: E402
from modAL.uncertainty import margin_sampling as modal_margin  # noqa: E402
from modAL.uncertainty import uncertainty_sampling as modal_uncertainty  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402

from alcore.integrations import modal as strategies  # noqa: E402


@pytest.fixture(scope="module")
def data():
    x, y = load_digits(return_X_y=True)
    rng = np.random.default_rng(0)
    start = rng.choice(len(x), size=30, replace=False)
    pool = np.setdiff1d(np.arange(len(x)), start)
    return x, y, start, pool


@pytest.mark.parametrize("ours, theirs", [
    (strategies.uncertainty_sampling, modal_uncertainty),
    (strategies.margin_sampling, modal_margin),
    (strategies.entropy_sampling, modal_entropy),
])
def test_same_batch_as_modal(data, ours, theirs):
    x, y, start, pool = data
    mine = ActiveLearner(estimator=LogisticRegression(max_iter=500), query_strategy=ours,
                         X_training=x[start], y_training=y[start])
    ref = ActiveLearner(estimator=LogisticRegression(max_iter=500), query_strategy=theirs,
                        X_training=x[start], y_training=y[start])
    got, _ = mine.query(x[pool], n_instances=10)
    want, _ = ref.query(x[pool], n_instances=10)
    assert set(got.tolist()) == set(np.asarray(want).tolist())


def test_a_learning_loop_runs(data):
    """modAL 0.4.2's teach() passes scikit-learn a keyword it no longer has
    (force_all_finite), so the loop retrains the learner's estimator itself."""
    x, y, start, pool = data
    learner = ActiveLearner(estimator=LogisticRegression(max_iter=500),
                            query_strategy=strategies.kcenter_margin_sampling,
                            X_training=x[start], y_training=y[start])
    labeled, remaining = start.copy(), pool.copy()
    for _ in range(3):
        idx, _ = learner.query(x[remaining], n_instances=20)
        assert len(set(idx.tolist())) == 20
        labeled = np.concatenate([labeled, remaining[idx]])
        remaining = np.delete(remaining, idx)
        learner.estimator.fit(x[labeled], y[labeled])
    assert learner.estimator.score(x, y) > 0.8
