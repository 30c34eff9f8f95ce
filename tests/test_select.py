"""alcore.select: the composed selection."""

from __future__ import annotations

import numpy as np
import pytest

import alcore


@pytest.fixture
def pool():
    rng = np.random.default_rng(0)
    return rng.dirichlet(np.ones(5), size=2000), rng.standard_normal((2000, 8))


def test_default_is_top_margin(pool):
    probs, _ = pool
    got = alcore.select(30, probs, labeled=[3, 4])
    want = alcore.top_k(alcore.scores.margin(probs), 30, exclude=[3, 4])
    np.testing.assert_array_equal(got.indices, want)
    np.testing.assert_allclose(got.scores, alcore.scores.margin(probs)[want])
    assert got.reasons[0] == "top 30 by margin" and set(got.timings) >= {"score", "diversity"}


def test_density_weighting(pool):
    probs, emb = pool
    got = alcore.select(20, probs, embeddings=emb, density="knn", beta=2.0, diversity=None)
    density = alcore.density.knn_density(emb, 10).astype(np.float64)
    combined = alcore.scores.margin(probs) * (density / density.max()) ** 2
    np.testing.assert_array_equal(got.indices, alcore.top_k(combined, 20))
    np.testing.assert_allclose(got.components["density"],
                               (density / density.max())[got.indices])


@pytest.mark.parametrize("method, params", [("kcenter", {}), ("badge", {}),
                                            ("typiclust", {}), ("probcover", {"radius": 2.5}),
                                            ("spread", {"min_distance": 2.0})])
def test_diversity_over_candidates(pool, method, params):
    probs, emb = pool
    labeled = np.arange(10)
    got = alcore.select(25, probs, embeddings=emb, labeled=labeled, diversity=method,
                        candidates=4, **params)
    top = set(alcore.top_k(alcore.scores.margin(probs), 100, exclude=labeled).tolist())
    assert len(set(got.indices.tolist())) == len(got.indices) <= 25
    assert set(got.indices.tolist()) <= top
    assert not set(got.indices.tolist()) & set(labeled.tolist())


def test_default_with_embeddings_is_kcenter_over_margin_candidates(pool):
    probs, emb = pool
    got = alcore.select(10, probs, embeddings=emb, labeled=[0])
    want = alcore.select(10, probs, embeddings=emb, labeled=[0], diversity="kcenter",
                         candidates=5)
    np.testing.assert_array_equal(got.indices, want.indices)
    assert got.config["diversity"] == "kcenter" and got.config["candidates"] == 5


def test_cluster_margin_passes_through(pool):
    probs, emb = pool
    got = alcore.select(15, probs, embeddings=emb, diversity="cluster_margin", seed=1)
    np.testing.assert_array_equal(
        got.indices, alcore.diversity.cluster_margin(probs, emb, 15, seed=1))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"density": "kde"}, r"density must be None, 'knn' or 'information'"),
        ({"diversity": "dpp"}, r"diversity must be one of"),
        ({"diversity": "kcenter", "embeddings": None}, r"need embeddings="),
        ({"diversity": "kcenter", "embeddings": np.zeros((5, 2))}, r"embeddings has 5 rows"),
        ({"score": "accuracy"}, r"score must name a function of alcore.scores"),
    ],
)
def test_bad_input(pool, kwargs, match):
    probs, emb = pool
    kwargs.setdefault("embeddings", emb)
    with pytest.raises(alcore.InvalidInputError, match=match):
        alcore.select(5, probs, **kwargs)
