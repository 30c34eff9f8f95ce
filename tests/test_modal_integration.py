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
    """Digits split into a held-out test set (never labeled, never in the pool) and a pool
    with 30 starting labels."""
    x, y = load_digits(return_X_y=True)
    x = x / 16.0  # scaled to [0, 1]: LogisticRegression converges in few iterations
    rng = np.random.default_rng(0)
    order = rng.permutation(len(x))
    test, rest = order[:500], order[500:]
    start = rest[:30]
    pool = rest[30:]
    return x, y, start, pool, test


@pytest.mark.parametrize("ours, theirs", [
    (strategies.uncertainty_sampling, modal_uncertainty),
    (strategies.margin_sampling, modal_margin),
    (strategies.entropy_sampling, modal_entropy),
])
def test_same_batch_as_modal(data, ours, theirs):
    x, y, start, pool, _ = data
    mine = ActiveLearner(estimator=LogisticRegression(max_iter=500), query_strategy=ours,
                         X_training=x[start], y_training=y[start])
    ref = ActiveLearner(estimator=LogisticRegression(max_iter=500), query_strategy=theirs,
                        X_training=x[start], y_training=y[start])
    got, rows = mine.query(x[pool], n_instances=10)
    want, _ = ref.query(x[pool], n_instances=10)
    assert got.dtype == np.int64 and len(set(got.tolist())) == 10
    assert set(got.tolist()) == set(np.asarray(want).tolist())
    np.testing.assert_array_equal(rows, x[pool][got])


def test_a_learning_loop_beats_random_labels_on_held_out_data(data):
    """modAL 0.4.2's teach() passes scikit-learn a keyword it no longer has
    (force_all_finite), so the loop retrains the learner's estimator itself. Accuracy is
    measured on a held-out split, against the same number of random labels."""
    x, y, start, pool, test = data

    def run(strategy):
        learner = ActiveLearner(estimator=LogisticRegression(max_iter=1000),
                                query_strategy=strategy, X_training=x[start],
                                y_training=y[start])
        labeled, remaining = start.copy(), pool.copy()
        for _ in range(4):
            idx, _ = learner.query(x[remaining], n_instances=20)
            assert len(set(idx.tolist())) == 20
            labeled = np.concatenate([labeled, remaining[idx]])
            remaining = np.delete(remaining, idx)
            learner.estimator.fit(x[labeled], y[labeled])
        assert len(labeled) == 110 and not set(labeled.tolist()) & set(test.tolist())
        return learner.estimator.score(x[test], y[test])

    def random_strategy(seed):
        rng = np.random.default_rng(seed)

        def strategy(classifier, x_pool, n_instances=1):
            idx = rng.choice(len(x_pool), size=n_instances, replace=False)
            return idx, x_pool[idx]
        return strategy

    ours = run(strategies.kcenter_margin_sampling)
    random = np.mean([run(random_strategy(seed)) for seed in range(3)])
    assert ours > 0.85
    assert ours > random
