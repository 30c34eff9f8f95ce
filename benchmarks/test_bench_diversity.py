"""BADGE, TypiClust and ProbCover on every embedding shape: alcore against scikit-activeml
at 20k x 128 (the largest size at which scikit-activeml's dense N x N / N x C·d arrays stay
practical here: 3.2 GB for ProbCover's distance matrix), and alcore alone at 100k x 128,
each beside the memory floor (one read of the matrix). 10 classes, 100 labeled, k = 100.
TypiClust records the k-means inertia of both sides' clusterings (computed after the
timing), since its time goes to k-means."""

from __future__ import annotations

import numpy as np
import pytest
from benchutil import SHAPES, floor, inertia, neighbour_scale, record

import alcore._faiss
from alcore.diversity import badge, probcover, spread, typiclust

# ProbCover's radius and spread's minimum distance on the separated shape (the figures
# before issue 9). In 128 dimensions distances concentrate, so a radius means the same work
# on another shape only at the same multiple of that shape's nearest-neighbour distance:
# every other shape gets these times its own median nearest-neighbour distance over the
# separated shape's, at the same size (``length_ratio``).
SEPARATED_RADIUS = 13.0
SEPARATED_MIN_DISTANCE = 1.0


class Clusterings:
    """The last clustering each side's TypiClust made, for its inertia."""

    alcore: np.ndarray | None = None
    skactiveml: np.ndarray | None = None


def setup(x, seed, n_labeled):
    rng = np.random.default_rng(seed)
    labeled = rng.choice(len(x), size=n_labeled, replace=False)
    probs = rng.dirichlet(np.full(10, 0.5), size=len(x))
    y = np.full(len(x), np.nan)
    y[labeled] = rng.integers(10, size=n_labeled)
    return labeled, probs, y


def skactiveml_badge(x, labeled, probs, y, k, radius):
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
    return Badge(random_state=0).query(x, y, clf, fit_clf=False, batch_size=k)


def skactiveml_typiclust(x, labeled, probs, y, k, radius):
    from skactiveml.pool import TypiClust
    from sklearn.cluster import KMeans

    class RecordingKMeans(KMeans):
        """scikit-activeml's default clusterer, keeping its labels for the inertia."""

        def fit_predict(self, X, y=None, sample_weight=None):
            labels = super().fit_predict(X, y, sample_weight=sample_weight)
            Clusterings.skactiveml = labels
            return labels

    return TypiClust(random_state=0, cluster_algo=RecordingKMeans).query(x, y, batch_size=k)


def skactiveml_probcover(x, labeled, probs, y, k, radius):
    from skactiveml.pool import ProbCover

    return ProbCover(deltas=[radius], random_state=0).query(x, y, batch_size=k)


ALCORE = {
    "badge": lambda x, labeled, probs, y, k, radius: badge(probs, x, k, labeled=labeled),
    "typiclust": lambda x, labeled, probs, y, k, radius: typiclust(x, k, labeled=labeled),
    "probcover": lambda x, labeled, probs, y, k, radius: probcover(x, k, radius=radius,
                                                                  labeled=labeled),
}
PEERS = {"badge": skactiveml_badge, "typiclust": skactiveml_typiclust,
         "probcover": skactiveml_probcover}


@pytest.fixture
def record_alcore_kmeans(monkeypatch):
    """Keep the labels of alcore's k-means calls (a pass-through: nothing else changes)."""
    Clusterings.alcore = Clusterings.skactiveml = None
    # TypiClust clusters through kmeans_for_typiclust, Cluster-Margin through kmeans.
    for name in ("kmeans", "kmeans_for_typiclust"):
        original = getattr(alcore._faiss, name)

        def recording(*args, _original=original, **kwargs):
            labels = _original(*args, **kwargs)
            Clusterings.alcore = labels
            return labels

        monkeypatch.setattr(alcore._faiss, name, recording)


_RATIOS: dict[tuple[str, str], float] = {}


def length_ratio(embeddings, shape: str, label: str) -> float:
    """The shape's median nearest-neighbour distance over the separated shape's."""
    if shape == "separated":
        return 1.0
    if (shape, label) not in _RATIOS:
        _RATIOS[shape, label] = (neighbour_scale(embeddings(shape, label))
                                 / neighbour_scale(embeddings("separated", label)))
    return _RATIOS[shape, label]


def record_inertia(benchmark, x, labels):
    if labels is None or len(labels) != len(x):
        benchmark.extra_info["inertia"] = None  # the clustering was not observed
        return
    benchmark.extra_info["inertia"] = inertia(x, labels)
    benchmark.extra_info["clusters"] = len(np.unique(labels))


def run_method(benchmark, embeddings, sizes, shape, method, contender, size, seed):
    """One diversity benchmark at ``size`` rows: the floor, alcore (3 rounds at 20k, 1
    above) or the scikit-activeml peer, with ProbCover's radius and TypiClust's inertia
    recorded beside the time."""
    x = embeddings(shape, size)
    k = sizes.k
    benchmark.group = f"{method} {sizes.name(size)} x 128 {shape}, k={k}"
    if contender == "floor":
        floor(benchmark, x, shape=shape)
        return
    labeled, probs, y = setup(x, seed, sizes.labeled)
    radius = None
    if method == "probcover":
        radius = SEPARATED_RADIUS * length_ratio(embeddings, shape, size)
    is_alcore = contender == "alcore"
    record(benchmark, contender, "alcore" if is_alcore else "peer", shape)
    call = ALCORE[method] if is_alcore else PEERS[method]
    rounds = 3 if is_alcore and size == "20k" else 1
    picks = benchmark.pedantic(call, args=(x, labeled, probs, y, k, radius), rounds=rounds,
                               iterations=1, warmup_rounds=0)
    assert len(picks) == k
    if radius is not None:
        benchmark.extra_info["radius"] = radius
    if method == "typiclust":
        record_inertia(benchmark, x, Clusterings.alcore if is_alcore
                       else Clusterings.skactiveml)


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("contender", ["alcore", "scikit-activeml", "floor"])
@pytest.mark.parametrize("method", list(ALCORE))
@pytest.mark.parametrize("shape", SHAPES)
def test_at_20k(benchmark, embeddings, sizes, record_alcore_kmeans, shape, method, contender):
    run_method(benchmark, embeddings, sizes, shape, method, contender, "20k", seed=9)


@pytest.mark.parametrize("contender", ["alcore", "floor"])
@pytest.mark.parametrize("method", list(ALCORE))
@pytest.mark.parametrize("shape", SHAPES)
def test_at_100k(benchmark, embeddings, sizes, record_alcore_kmeans, shape, method, contender):
    run_method(benchmark, embeddings, sizes, shape, method, contender, "100k", seed=10)


@pytest.mark.parametrize("contender", ["alcore", "floor"])
@pytest.mark.parametrize("shape", SHAPES)
def test_spread_k4000(benchmark, embeddings, sizes, shape, contender):
    """spread taking 4000 of 20k items, 100 labeled, the minimum distance small enough
    (1.0 on the separated shape, the same multiple of the nearest-neighbour distance on the
    others) that almost every candidate is far enough: the survivor walk is one vectorised
    pass per taken item."""
    x = embeddings(shape, "20k")
    k = sizes.spread_k
    benchmark.group = (f"spread {sizes.name('20k')} x 128 {shape}, {sizes.labeled} labeled, "
                       f"k={k}")
    if contender == "floor":
        floor(benchmark, x, shape=shape)
        return
    rng = np.random.default_rng(11)
    scores = rng.random(len(x))
    labeled = rng.choice(len(x), size=sizes.labeled, replace=False)
    min_distance = SEPARATED_MIN_DISTANCE * length_ratio(embeddings, shape, "20k")
    record(benchmark, "alcore", "alcore", shape)
    picks = benchmark.pedantic(spread, args=(scores, x, k),
                               kwargs={"min_distance": min_distance, "labeled": labeled},
                               rounds=1, iterations=1, warmup_rounds=0)
    benchmark.extra_info["min_distance"] = min_distance
    benchmark.extra_info["taken"] = len(picks)
    # Duplicate-heavy data (the real shape's flat patches) may leave fewer than k far
    # enough; the walk still visits every candidate.
    assert 0 < len(picks) <= k


@pytest.mark.parametrize("n_labeled", ["none", "4000"])
@pytest.mark.parametrize("shape", SHAPES)
def test_typiclust_cost_does_not_grow_with_the_labeled_set(benchmark, embeddings, sizes,
                                                           record_alcore_kmeans, shape,
                                                           n_labeled):
    x = np.ascontiguousarray(embeddings(shape, "20k")[:, :32])
    count = 0 if n_labeled == "none" else sizes.typiclust_labeled
    labeled = np.random.default_rng(12).choice(len(x), size=count, replace=False)
    benchmark.group = f"typiclust {sizes.name('20k')} x 32 {shape}, k=10 (absolute time)"
    record(benchmark, f"alcore typiclust, {count} labeled", "absolute", shape)
    picks = benchmark.pedantic(typiclust, args=(x, 10),
                               kwargs={"labeled": labeled if count else None}, rounds=1,
                               iterations=1, warmup_rounds=0)
    assert len(picks) == 10
    record_inertia(benchmark, x, Clusterings.alcore)
