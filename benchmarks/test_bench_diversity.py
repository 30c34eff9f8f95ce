"""BADGE, TypiClust and ProbCover: alcore against scikit-activeml at 20k x 128 (the largest
size at which scikit-activeml's dense N x N / N x C·d arrays stay practical here: 3.2 GB for
ProbCover's distance matrix), and alcore alone at 100k x 128. 10 classes, 100 labeled,
k = 100."""

from __future__ import annotations

import numpy as np
import pytest
from benchutil import record

from alcore.diversity import badge, probcover, spread, typiclust

K = 100
RADIUS = 13.0  # about the median 10-NN distance of the benchmark mixture


def setup(x, seed):
    rng = np.random.default_rng(seed)
    labeled = rng.choice(len(x), size=100, replace=False)
    probs = rng.dirichlet(np.full(10, 0.5), size=len(x))
    y = np.full(len(x), np.nan)
    y[labeled] = rng.integers(10, size=100)
    return labeled, probs, y


def skactiveml_badge(x, labeled, probs, y):
    from skactiveml.base import SkactivemlClassifier
    from skactiveml.pool import Badge

    unlabeled = np.isnan(y)

    class FixedProbabilities(SkactivemlClassifier):
        def __init__(self, table=None, classes=None, missing_label=np.nan):
            super().__init__(classes=classes, missing_label=missing_label)
            self.table = table

        def fit(self, X, y, sample_weight=None):
            return self

        def predict_proba(self, X):
            return self.table

    clf = FixedProbabilities(table=probs[unlabeled], classes=np.arange(10))
    return Badge(random_state=0).query(x, y, clf, fit_clf=False, batch_size=K)


def skactiveml_typiclust(x, labeled, probs, y):
    from skactiveml.pool import TypiClust

    return TypiClust(random_state=0).query(x, y, batch_size=K)


def skactiveml_probcover(x, labeled, probs, y):
    from skactiveml.pool import ProbCover

    return ProbCover(deltas=[RADIUS], random_state=0).query(x, y, batch_size=K)


ALCORE = {
    "badge": lambda x, labeled, probs, y: badge(probs, x, K, labeled=labeled),
    "typiclust": lambda x, labeled, probs, y: typiclust(x, K, labeled=labeled),
    "probcover": lambda x, labeled, probs, y: probcover(x, K, radius=RADIUS, labeled=labeled),
}
PEERS = {"badge": skactiveml_badge, "typiclust": skactiveml_typiclust,
         "probcover": skactiveml_probcover}


@pytest.fixture(scope="module")
def embeddings_20k_x_128(embeddings_100k_x_128):
    return np.ascontiguousarray(embeddings_100k_x_128[:20_000])


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("contender", ["alcore", "scikit-activeml"])
@pytest.mark.parametrize("method", list(ALCORE))
def test_at_20k(benchmark, embeddings_20k_x_128, method, contender):
    x = embeddings_20k_x_128
    labeled, probs, y = setup(x, 9)
    benchmark.group = f"{method} 20k x 128, k={K}"
    record(benchmark, contender, "alcore" if contender == "alcore" else "peer")
    call = ALCORE[method] if contender == "alcore" else PEERS[method]
    picks = benchmark.pedantic(call, args=(x, labeled, probs, y), rounds=1 if
                               contender != "alcore" else 3, iterations=1, warmup_rounds=0)
    assert len(picks) == K


@pytest.mark.parametrize("method", list(ALCORE))
def test_at_100k(benchmark, embeddings_100k_x_128, method):
    x = embeddings_100k_x_128
    labeled, probs, y = setup(x, 10)
    benchmark.group = f"{method} 100k x 128, k={K} (absolute time)"
    record(benchmark, f"alcore {method}", "absolute")
    picks = benchmark.pedantic(ALCORE[method], args=(x, labeled, probs, y), rounds=1,
                               iterations=1, warmup_rounds=0)
    assert len(picks) == K


def test_spread_k4000(benchmark, embeddings_20k_x_128):
    """spread taking 4000 items (every candidate far enough): the survivor walk is one
    vectorised pass per taken item."""
    x = embeddings_20k_x_128
    rng = np.random.default_rng(11)
    scores = rng.random(len(x))
    labeled = rng.choice(len(x), size=100, replace=False)
    benchmark.group = "spread 20k x 128, 100 labeled, k=4000 (absolute time)"
    record(benchmark, "alcore spread", "absolute")
    picks = benchmark.pedantic(spread, args=(scores, x, 4000),
                               kwargs={"min_distance": 1.0, "labeled": labeled}, rounds=1,
                               iterations=1, warmup_rounds=0)
    assert len(picks) == 4000


@pytest.mark.parametrize("n_labeled", [0, 4000])
def test_typiclust_cost_does_not_grow_with_the_labeled_set(benchmark, embeddings_20k_x_128,
                                                           n_labeled):
    x = np.ascontiguousarray(embeddings_20k_x_128[:, :32])
    labeled = np.random.default_rng(12).choice(len(x), size=n_labeled, replace=False)
    benchmark.group = "typiclust 20k x 32, k=10 (absolute time)"
    record(benchmark, f"alcore typiclust, {n_labeled} labeled", "absolute")
    picks = benchmark.pedantic(typiclust, args=(x, 10),
                               kwargs={"labeled": labeled if n_labeled else None}, rounds=1,
                               iterations=1, warmup_rounds=0)
    assert len(picks) == 10
