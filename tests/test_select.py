"""alcore.select: the composed selection, against plain-numpy oracles written here (they do
not call alcore)."""

from __future__ import annotations

import numpy as np
import pytest

import alcore

N = 2000


@pytest.fixture
def pool():
    rng = np.random.default_rng(0)
    return rng.dirichlet(np.ones(5), size=N), rng.standard_normal((N, 8))


# --- oracles --------------------------------------------------------------------------------

def margin_by_hand(probs: np.ndarray) -> np.ndarray:
    top2 = np.sort(np.asarray(probs, dtype=np.float64), axis=1)[:, -2:]
    return 1.0 - (top2[:, 1] - top2[:, 0])


def entropy_by_hand(probs: np.ndarray) -> np.ndarray:
    p = np.asarray(probs, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, p * np.log(p), 0.0)
    return -terms.sum(axis=1)


def ranking(values: np.ndarray, never=()) -> np.ndarray:
    """Every index by value descending, ties to the lower index, without ``never``."""
    order = np.lexsort((np.arange(len(values)), -np.asarray(values, dtype=np.float64)))
    banned = set(np.asarray(never).tolist())
    return np.array([i for i in order if i not in banned], dtype=np.int64)


def kcenter_loop(emb: np.ndarray, candidates, covered, k: int) -> list[int]:
    """Farthest-first traversal with plain loops: each step takes the candidate whose
    nearest covered item is farthest (float64 distances), ties to the lower index."""
    x = np.asarray(emb, dtype=np.float64)
    covered = list(covered)
    picks: list[int] = []
    for _ in range(k):
        best, best_d = -1, -1.0
        for c in sorted(candidates):
            if c in picks:
                continue
            d = min(float(np.sqrt(((x[c] - x[j]) ** 2).sum())) for j in covered)
            if d > best_d:
                best, best_d = c, d
        picks.append(best)
        covered.append(best)
    return picks


def spread_loop(emb: np.ndarray, order, covered, k: int, min_distance: float) -> list[int]:
    """Walk ``order`` and take each item at least min_distance from every covered one."""
    x = np.asarray(emb, dtype=np.float64)
    taken: list[int] = []
    anchors = list(covered)
    for i in order:
        if all(np.sqrt(((x[i] - x[j]) ** 2).sum()) >= min_distance for j in anchors):
            taken.append(int(i))
            anchors.append(int(i))
            if len(taken) == k:
                break
    return taken


def knn_density_by_hand(emb: np.ndarray, k: int) -> np.ndarray:
    x = np.asarray(emb, dtype=np.float64)
    d = np.sqrt(((x[:, None, :] - x[None, :, :]) ** 2).sum(-1))
    np.fill_diagonal(d, np.inf)
    return 1.0 / np.sort(d, axis=1)[:, :k].mean(axis=1)


# --- the plain top k ------------------------------------------------------------------------

def test_default_is_top_margin(pool):
    probs, _ = pool
    got = alcore.select(probs, 30, labeled=[3, 4])
    want_scores = margin_by_hand(probs)
    want = ranking(want_scores, never=[3, 4])[:30]
    np.testing.assert_array_equal(got.indices, want)
    assert got.indices.dtype == np.int64 and len(got) == 30
    np.testing.assert_allclose(got.scores, want_scores[want], rtol=0, atol=1e-12)
    np.testing.assert_array_equal(got.components["rank"], np.arange(1, 31))
    assert got.shortfall is None and got.utilities is None
    assert set(got.timings) >= {"score", "diversity"}


def test_reasons_are_per_item_with_their_numbers(pool):
    probs, _ = pool
    got = alcore.select(probs, 5, score="entropy")
    want_scores = entropy_by_hand(probs)
    want = ranking(want_scores)[:5]
    np.testing.assert_array_equal(got.indices, want)
    assert len(set(got.reasons)) == 5
    for rank, (item, reason) in enumerate(zip(want, got.reasons, strict=True), start=1):
        assert reason.startswith(f"rank {rank} of {N} by entropy {want_scores[item]:.6g}")


def test_return_utilities_marks_labeled_and_excluded_nan(pool):
    probs, _ = pool
    got = alcore.select(probs, 10, labeled=[0, 1], exclude=np.arange(N) == 5,
                        return_utilities=True)
    util = got.utilities
    assert util.dtype == np.float64 and util.shape == (N,)
    assert np.isnan(util[[0, 1, 5]]).all() and np.isfinite(np.delete(util, [0, 1, 5])).all()
    np.testing.assert_allclose(np.delete(util, [0, 1, 5]),
                               np.delete(margin_by_hand(probs), [0, 1, 5]), atol=1e-12)
    np.testing.assert_array_equal(got.indices, ranking(margin_by_hand(probs), [0, 1, 5])[:10])


def test_logits_and_normalize(pool):
    probs, _ = pool
    want = ranking(margin_by_hand(probs))[:7]
    np.testing.assert_array_equal(alcore.select(np.log(probs), 7, logits=True).indices, want)
    np.testing.assert_array_equal(alcore.select(probs * 3, 7, normalize=True).indices, want)
    rounded = np.round(probs, 2)
    got = alcore.select(rounded, 7, atol=0.05)
    np.testing.assert_array_equal(got.indices, ranking(margin_by_hand(rounded))[:7])
    assert got.config["atol"] == 0.05 and got.config["normalize"] is False


def test_density_weighting(pool):
    probs, emb = pool
    got = alcore.select(probs[:300], 20, embeddings=emb[:300], density="knn", beta=2.0,
                        diversity=None)
    density = knn_density_by_hand(emb[:300], 10)
    density /= density.max()
    combined = margin_by_hand(probs[:300]) * density ** 2
    np.testing.assert_array_equal(got.indices, ranking(combined)[:20])
    np.testing.assert_allclose(got.components["density"], density[got.indices], rtol=1e-5)
    np.testing.assert_allclose(got.scores, combined[got.indices], rtol=1e-5)
    assert "x knn density" in got.reasons[0]


# --- diversity ------------------------------------------------------------------------------

def test_kcenter_over_candidates_matches_a_plain_loop(pool):
    probs, emb = pool
    labeled = np.arange(10)
    got = alcore.select(probs, 12, embeddings=emb, labeled=labeled, diversity="kcenter",
                        candidates=4)
    candidates = ranking(margin_by_hand(probs), never=labeled)[:48]
    want = kcenter_loop(emb, candidates.tolist(), labeled.tolist(), 12)
    np.testing.assert_array_equal(got.indices, want)
    # Each pick's reason: its rank among the candidates and its distance to the nearest
    # covered item (labeled or picked before it), computed here by hand.
    x = emb.astype(np.float32).astype(np.float64)
    rank_of = {int(item): r for r, item in enumerate(candidates, start=1)}
    covered = labeled.tolist()
    for i, item in enumerate(want):
        d = np.sqrt(((x[covered] - x[item]) ** 2).sum(axis=1))
        assert got.components["rank"][i] == rank_of[item]
        assert got.components["nearest"][i] == covered[int(np.argmin(d))]
        np.testing.assert_allclose(got.components["distance"][i], d.min(), rtol=1e-9)
        assert f"rank {rank_of[item]} of {N - 10}" in got.reasons[i]
        assert f"{d.min():.4g} from the nearest covered item" in got.reasons[i]
        covered.append(item)
    assert len(set(got.reasons)) == 12


def test_default_with_embeddings_is_kcenter_over_margin_candidates(pool):
    probs, emb = pool
    got = alcore.select(probs, 10, embeddings=emb, labeled=[0])
    candidates = ranking(margin_by_hand(probs), never=[0])[:50]
    np.testing.assert_array_equal(got.indices, kcenter_loop(emb, candidates.tolist(), [0], 10))
    assert got.config["diversity"] == "kcenter" and got.config["candidates"] == 5


def test_spread_matches_a_plain_loop_and_reports_shortfall(pool):
    probs, emb = pool
    labeled = [0, 1, 2]
    order = ranking(margin_by_hand(probs), never=labeled)
    got = alcore.select(probs, 15, embeddings=emb, labeled=labeled, diversity="spread",
                        min_distance=2.0)
    np.testing.assert_array_equal(got.indices, spread_loop(emb, order, labeled, 15, 2.0))
    assert got.shortfall is None and (got.components["distance"] >= 2.0).all()
    # Far apart: few items qualify, and the Selection says why.
    short = alcore.select(probs, 200, embeddings=emb, labeled=labeled, diversity="spread",
                          min_distance=4.0, candidates=2)
    want = spread_loop(emb, order[:400], labeled, 200, 4.0)
    assert 0 < len(want) < 200
    np.testing.assert_array_equal(short.indices, want)
    assert short.shortfall.startswith(f"spread found {len(want)} of k=200 items among the "
                                      f"top 400 candidates")
    assert "lower min_distance=" in short.shortfall


@pytest.mark.parametrize("method, params", [("kcenter", {}), ("badge", {}),
                                            ("typiclust", {}), ("probcover", {"radius": 2.5}),
                                            ("spread", {"min_distance": 1.0})])
def test_diversity_over_candidates(pool, method, params):
    probs, emb = pool
    labeled = np.arange(10)
    got = alcore.select(probs, 25, embeddings=emb, labeled=labeled, exclude=[11, 12],
                        diversity=method, candidates=4, **params)
    top = ranking(margin_by_hand(probs), never=[*labeled, 11, 12])[:100]
    assert len(got.indices) == 25 and len(set(got.indices.tolist())) == 25
    assert set(got.indices.tolist()) <= set(top.tolist())
    assert got.components["rank"].max() <= 100 and len(got.reasons) == 25


def test_cluster_margin_matches_the_definition(pool):
    probs, emb = pool
    clusters = (np.arange(N) * 7919) % 6
    got = alcore.select(probs, 15, embeddings=emb, diversity="cluster_margin",
                        clusters=clusters, labeled=[5])
    # Citovsky et al.: the 10k smallest-margin items, round-robin over their clusters from
    # the smallest cluster up (ties to the lower label), margin order within a cluster.
    candidates = ranking(margin_by_hand(probs), never=[5])[:150]
    groups = {}
    for item in candidates:
        groups.setdefault(int(clusters[item]), []).append(int(item))
    order = sorted(groups, key=lambda g: (len(groups[g]), g))
    want = []
    depth = 0
    while len(want) < 15:
        for g in order:
            if depth < len(groups[g]) and len(want) < 15:
                want.append(groups[g][depth])
        depth += 1
    np.testing.assert_array_equal(got.indices, want)
    np.testing.assert_array_equal(got.components["cluster"], clusters[want])
    assert f"cluster {clusters[want[0]]}" in got.reasons[0]


# --- bad input ------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"density": "kde"}, r"density must be one of None, 'knn', 'information', got 'kde'"),
        ({"diversity": "dpp"}, r"diversity must be one of"),
        ({"diversity": "kcenter", "embeddings": None},
         r"diversity='kcenter' needs embeddings=: pass an \(N, d\) array"),
        ({"diversity": "kcenter", "embeddings": np.zeros((5, 2))},
         r"embeddings has 5 rows but probs has 2000 items"),
        ({"score": "accuracy"}, r"score must be one of 'least_confidence'"),
        ({"score": "np"}, r"score must be one of .*got 'np'"),
        ({"score": np}, r"score must be one of .*got <module 'numpy'"),
        ({"normalize": "yes"}, r"normalize must be True or False, got 'yes'"),
        ({"atol": 2.0}, r"atol must be in \[0, 1\), got 2\.0"),
        ({"atol": "x"}, r"atol must be a number, got 'x'"),
        ({"logits": 1}, r"logits must be True or False, got 1"),
        ({"beta": 2.0}, r"beta=2 weights the density, but density=None"),
        ({"beta": -1.0, "density": "knn"}, r"beta must be >= 0, got -1\.0"),
        ({"beta": "x", "density": "knn"}, r"beta must be a number, got 'x'"),
        ({"candidates": 0, "diversity": "kcenter"}, r"candidates must be a positive integer"),
        ({"candidates": 3, "diversity": None}, r"candidates=3 narrows the pool for a "
                                               r"diversity stage, but none runs"),
        ({"diversity": "kcenter", "radiuss": 1.0},
         r"diversity='kcenter' takes no option radiuss=; its options are metric="),
        ({"diversity": "probcover", "radiu": 1.0},
         r"takes no option radiu= \(did you mean radius=\?\)"),
        ({"diversity": "probcover"}, r"diversity='probcover' needs radius="),
        ({"labelled": [0], "diversity": None},
         r"select\(\) takes no argument labelled= \(did you mean labeled=\?\)"),
        ({"diversity": None, "n_neighbours": 3},
         r"takes no argument n_neighbours= \(did you mean n_neighbors=\?\)"),
        ({"diversity": "kcenter", "n_neighbors": 3},
         r"diversity='kcenter' takes no option n_neighbors= \(an option of "
         r"diversity='typiclust'\); its options are metric="),
        ({"diversity": "kcenter", "labelled": [0]},
         r"diversity='kcenter' takes no option labelled= \(did you mean labeled=\?\)"),
        ({"diversity": "spread"}, r"diversity='spread' needs min_distance="),
        ({"diversity": "probcover", "radius": -1}, r"radius must be > 0, got -1"),
        ({"diversity": "spread", "min_distance": "far"}, r"min_distance must be a number"),
        ({"diversity": "kcenter", "metric": "cos"}, r"metric must be one of 'l2', 'cosine'"),
        ({"diversity": None, "radius": 1.0}, r"radius= configures a diversity method, but no "
                                             r"diversity stage runs"),
        ({"diversity": "cluster_margin", "score": "entropy"},
         r"diversity='cluster_margin' .* so score='entropy' would play no part"),
        ({"diversity": "cluster_margin", "density": "knn"}, r"so density='knn' would play"),
        ({"diversity": "cluster_margin", "candidates": 3},
         r"so candidates=3 would play no part; pass candidates_per_pick="),
        ({"seed": "x"}, r"seed must be an int or a numpy.random.Generator"),
        ({"return_utilities": "yes"}, r"return_utilities must be True or False"),
        ({"labeled": np.arange(N)}, r"k=5 exceeds the 0 items that can be picked"),
    ],
)
def test_bad_input(pool, kwargs, match):
    probs, emb = pool
    kwargs.setdefault("embeddings", emb)
    with pytest.raises(alcore.InvalidInputError, match=match):
        alcore.select(probs, 5, **kwargs)


def test_options_are_checked_before_any_work(pool, monkeypatch):
    """A bad option is refused before the score pass or any density/diversity runs."""
    probs, emb = pool
    calls = []
    monkeypatch.setattr(alcore.density, "knn_density", lambda *a, **k: calls.append(1))
    monkeypatch.setattr(alcore.scores, "_score_validated", lambda *a, **k: calls.append(1))
    for kwargs in ({"density": "knn", "diversity": "kcenter", "metric": "bad"},
                   {"density": "knn", "diversity": "probcover", "radius": 0},
                   {"density": "knn", "diversity": "kcenter", "metrik": "l2"},
                   {"density": "knn", "seed": 1.5}):
        with pytest.raises(alcore.InvalidInputError):
            alcore.select(probs, 5, embeddings=emb, **kwargs)
    assert calls == []


def test_numpy_scalars_are_numbers(pool):
    probs, emb = pool
    got = alcore.select(probs, np.int64(4), embeddings=emb, density="knn",
                        beta=np.float32(0.5), atol=np.array(1e-3), diversity="kcenter",
                        candidates=np.int32(3), labeled=[0])
    assert len(got.indices) == 4 and got.config["beta"] == 0.5


@pytest.mark.parametrize("method", ["badge", "cluster_margin"])
def test_normalize_and_atol_reach_the_methods_that_read_probabilities(pool, method):
    """normalize=/atol= are honoured by the diversity methods that read the probabilities
    themselves, not only by the score."""
    probs, emb = pool
    probs, emb = probs[:400], emb[:400]
    want = alcore.select(probs, 8, embeddings=emb, diversity=method, labeled=[0]).indices
    scaled = alcore.select(probs * 3.0, 8, embeddings=emb, diversity=method, labeled=[0],
                           normalize=True)
    np.testing.assert_array_equal(scaled.indices, want)
    rough = probs.copy()
    rough[:, 0] += 0.004  # rows now sum to 1.004: refused at the default atol
    with pytest.raises(alcore.InvalidInputError, match=r"rows must sum to 1"):
        alcore.select(rough, 8, embeddings=emb, diversity=method, labeled=[0])
    loose = alcore.select(rough, 8, embeddings=emb, diversity=method, labeled=[0], atol=0.01)
    assert len(loose.indices) == 8


def test_excluded_items_are_not_covered(pool):
    """labeled= items cover their neighbourhood; exclude= items are only never picked: the
    k-center picks equal the plain loop with the excluded items removed, not added as
    covered."""
    probs, emb = pool
    labeled, excluded = [0, 1], list(range(2, 40))
    got = alcore.select(probs, 8, embeddings=emb, labeled=labeled, exclude=excluded,
                        diversity="kcenter", candidates=6)
    candidates = ranking(margin_by_hand(probs), never=labeled + excluded)[:48]
    np.testing.assert_array_equal(got.indices, kcenter_loop(emb, candidates.tolist(),
                                                            labeled, 8))
    assert not set(got.components["nearest"].tolist()) & set(excluded)
