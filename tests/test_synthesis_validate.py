"""alcore.synthesis.validate: each check against a brute-force numpy reference, the
generators it must reject or keep, the k-NN discriminator against scikit-learn's AUC and a
slow cross-validation loop, the review share, the report's JSON, and bad input."""

from __future__ import annotations

import json
import math
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import alcore
from alcore.synthesis import _discriminator
from alcore.synthesis._validate import ValidationReport, validate

# The implementation module.
validate_module = sys.modules["alcore.synthesis._validate"]

# --------------------------------------------------------------------------- references


def distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(len(a), len(b)) L2 distances from float64 differences of the float32 inputs."""
    a = a.astype(np.float32).astype(np.float64)
    b = b.astype(np.float32).astype(np.float64)
    return np.sqrt(((a[:, None, :] - b[None, :, :]) ** 2).sum(axis=2))


def reference(synthetic, pool, *, k=10, max_quantile=0.99, density_quantile=0.99,
              min_distance=None, sample=None):
    """Every per-point quantity and threshold of validate, from full distance matrices.
    ``sample``: the pool rows whose neighbours form the reference distributions."""
    pool_d = distances(pool if sample is None else pool[sample], pool)
    rows = np.arange(len(pool)) if sample is None else sample
    pool_d[np.arange(len(rows)), rows] = np.inf  # an item is not its own neighbour
    pool_sorted = np.sort(pool_d, axis=1)[:, :k]
    nn, knn = pool_sorted[:, 0], pool_sorted.mean(axis=1)
    max_distance = np.quantile(nn, max_quantile)
    max_knn = np.quantile(knn, density_quantile)
    eps = 1e-3 * np.median(nn) if min_distance is None else min_distance
    syn_d = np.sort(distances(synthetic, pool), axis=1)[:, :k]
    near = syn_d[:, 0]
    mean = syn_d.mean(axis=1)
    off = near > max_distance
    dup = (near < eps) | (near == 0)
    sparse = mean > max_knn
    return dict(max_distance=max_distance, max_knn_distance=max_knn, min_distance=eps,
                nearest_distance=near, knn_distance=mean, off_manifold=off,
                near_duplicate=dup, sparse=sparse, keep=~(off | dup | sparse))


def slow_out_of_fold(x, positive, fold, k):
    """The k-NN out-of-fold scores, one point at a time: distances to every training
    point, sorted by (distance, row), share of positives among the first k."""
    x64 = x.astype(np.float64)
    scores = np.empty(len(x))
    for i in range(len(x)):
        train = [j for j in range(len(x)) if fold[j] != fold[i]]
        dist = [float(((x64[i] - x64[j]) ** 2).sum()) for j in train]
        order = sorted(range(len(train)), key=lambda t: (dist[t], train[t]))
        nearest = [train[t] for t in order[:min(k, len(train))]]
        scores[i] = sum(positive[j] for j in nearest) / len(nearest)
    return scores


def slow_auc(scores, positive):
    """Mann-Whitney over all pairs: 1 when the positive scores higher, 0.5 on a tie."""
    pos = [s for s, p in zip(scores, positive, strict=True) if p]
    neg = [s for s, p in zip(scores, positive, strict=True) if not p]
    total = sum(1.0 if a > b else 0.5 if a == b else 0.0 for a in pos for b in neg)
    return total / (len(pos) * len(neg))


def slow_two_sample(real, synthetic, *, k, folds, max_per_class, seed):
    """The documented procedure replayed: sample, stratified folds, slow scores, AUC."""
    rng = np.random.default_rng(seed)
    n_each = min(len(synthetic), len(real), max_per_class)
    s_rows = np.sort(rng.choice(len(synthetic), size=n_each, replace=False))
    r_rows = np.sort(rng.choice(len(real), size=n_each, replace=False))
    x = np.concatenate([synthetic[s_rows], real[r_rows]])
    positive = np.r_[np.ones(n_each, bool), np.zeros(n_each, bool)]
    folds = min(folds, n_each)
    fold = np.empty(2 * n_each, dtype=np.int64)
    for members in (np.arange(n_each), np.arange(n_each, 2 * n_each)):
        fold[rng.permutation(members)] = np.arange(n_each) % folds
    scores = slow_out_of_fold(x, positive, fold, k)
    return slow_auc(scores, positive), s_rows, scores[:n_each]


# --------------------------------------------------------------------------- data


def clustered_pool(n=900, d=6, clusters=4, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(clusters, d)) * 12
    labels = rng.integers(clusters, size=n)
    return (centres[labels] + rng.normal(size=(n, d))).astype(np.float32), labels, centres


def same_cluster_interpolations(pool, labels, m, seed=1):
    """Points on segments between an item and one of its 5 nearest same-cluster items."""
    rng = np.random.default_rng(seed)
    d = distances(pool, pool)
    np.fill_diagonal(d, np.inf)
    d[labels[:, None] != labels[None, :]] = np.inf
    seeds = rng.choice(len(pool), size=m, replace=False)
    partner = np.argsort(d[seeds], axis=1)[np.arange(m), rng.integers(5, size=m)]
    lam = rng.uniform(size=(m, 1))
    return (pool[seeds] * (1 - lam) + lam * pool[partner]).astype(np.float32)


# --------------------------------------------------------------------------- generators


def test_rejects_an_off_manifold_generator():
    pool, _, _ = clustered_pool()
    rng = np.random.default_rng(3)
    noise = pool.mean(axis=0) + 5 * pool.std(axis=0) * rng.normal(size=(200, pool.shape[1]))
    report = validate(noise, pool)
    assert report.keep.mean() <= 0.05
    rejected = np.flatnonzero(~report.keep)
    assert all(report.reasons[i].startswith("off-manifold") for i in rejected
               if report.off_manifold[i])
    assert report.off_manifold.mean() >= 0.9
    assert not report.near_duplicate.any()
    assert report.discriminator_auc > 0.9 and report.discriminator_passed is False
    assert any(w.startswith("discriminator:") for w in report.warnings)


def test_rejects_near_duplicates():
    pool, _, _ = clustered_pool()
    rng = np.random.default_rng(4)
    copies = pool[:150].astype(np.float64) + 1e-7 * rng.normal(size=(150, pool.shape[1]))
    report = validate(copies, pool)
    assert not report.keep.any()
    assert report.near_duplicate.all() and not report.off_manifold.any()
    assert not report.sparse.any()
    for i, reason in enumerate(report.reasons):
        assert reason.startswith("near-duplicate:"), reason
        assert f"item {i}" in reason or f"row {i})" in reason
    assert "below min_distance" in report.reasons[0] or "exact copy" in report.reasons[0]
    assert report.warnings[-1] == "no point kept: all 150 failed a per-point check"
    assert not report.review.any()


def test_keeps_interpolations_inside_dense_clusters():
    pool, labels, _ = clustered_pool()
    points = same_cluster_interpolations(pool, labels, 300)
    report = validate(points, pool)
    assert report.keep.mean() >= 0.9
    assert not report.off_manifold.any()
    assert abs(report.discriminator_auc - 0.5) < 0.15 and report.discriminator_passed


def test_reasons_name_the_failed_check_with_numbers():
    pool, _, centres = clustered_pool()
    far = (centres[0] + 40.0)[None, :]
    inside = pool[10:11] * 0.5 + pool[10:11] * 0.5 + np.float32(0.01)
    copy = pool[20:21]
    report = validate(np.concatenate([far, inside, copy]), pool)
    ref = reference(np.concatenate([far, inside, copy]), pool)
    assert report.keep.tolist() == [False, True, False]
    assert report.reasons[1] is None
    assert report.reasons[0] == (
        f"off-manifold: nearest real item (row {report.nearest_index[0]}) at "
        f"{ref['nearest_distance'][0]:.3g}, above the pool's 0.99 quantile of 1-NN distances "
        f"{ref['max_distance']:.3g}; sparse region: mean distance to its 10 nearest real "
        f"items {ref['knn_distance'][0]:.3g}, above the pool's 0.99 quantile "
        f"{ref['max_knn_distance']:.3g}")
    assert report.reasons[2] == "near-duplicate: an exact copy of real item 20 (distance 0)"


def test_thresholds_equal_brute_force_reference():
    pool, labels, _ = clustered_pool(n=500, d=5, seed=7)
    rng = np.random.default_rng(8)
    points = np.concatenate([same_cluster_interpolations(pool, labels, 80),
                             pool[:10] + 1e-6, 3 * rng.normal(size=(30, 5)) * pool.std()])
    for kwargs in ({}, dict(k=3, max_quantile=0.9, density_quantile=0.5),
                   dict(k=1, max_quantile=1.0, min_distance=0.2)):
        report = validate(points, pool, **kwargs)
        ref = reference(points, pool, **kwargs)
        for name in ("max_distance", "max_knn_distance", "min_distance"):
            assert getattr(report, name) == pytest.approx(ref[name], rel=1e-12), name
        np.testing.assert_allclose(report.nearest_distance, ref["nearest_distance"],
                                   rtol=1e-12)
        np.testing.assert_allclose(report.knn_distance, ref["knn_distance"], rtol=1e-12)
        for name in ("off_manifold", "near_duplicate", "sparse", "keep"):
            np.testing.assert_array_equal(getattr(report, name), ref[name], err_msg=name)


def test_large_pool_uses_a_seeded_sample(monkeypatch):
    monkeypatch.setattr(validate_module, "FULL_POOL_MAX", 100)
    monkeypatch.setattr(validate_module, "POOL_SAMPLE", 60)
    pool, labels, _ = clustered_pool(n=300, d=4, seed=11)
    points = same_cluster_interpolations(pool, labels, 40)
    report = validate(points, pool, k=4, seed=5)
    sample = np.sort(np.random.default_rng(5).choice(300, size=60, replace=False))
    ref = reference(points, pool, k=4, sample=sample)
    assert report.config["pool_reference_items"] == 60
    for name in ("max_distance", "max_knn_distance", "min_distance"):
        assert getattr(report, name) == pytest.approx(ref[name], rel=1e-12), name
    np.testing.assert_array_equal(report.keep, ref["keep"])


def test_accepts_an_object_with_points():
    pool, labels, _ = clustered_pool(n=300)

    class Points:
        points = same_cluster_interpolations(pool, labels, 20)

    a = validate(Points(), pool)
    b = validate(Points.points, pool)
    np.testing.assert_array_equal(a.keep, b.keep)


# --------------------------------------------------------------------------- discriminator


@settings(max_examples=60)
@given(st.integers(1, 40), st.integers(1, 40), st.booleans(), st.integers(0, 2**31))
def test_auc_equals_sklearn(n_pos, n_neg, ties, seed):
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(seed)
    n = n_pos + n_neg
    scores = rng.integers(0, 4, size=n) / 3.0 if ties else rng.normal(size=n)
    positive = np.r_[np.ones(n_pos, bool), np.zeros(n_neg, bool)]
    rng.shuffle(positive)
    got = _discriminator.mann_whitney_auc(scores.astype(np.float64), positive)
    assert got == pytest.approx(roc_auc_score(positive, scores), abs=1e-12)
    assert got == pytest.approx(slow_auc(scores, positive), abs=1e-12)


@settings(max_examples=25)
@given(st.integers(2, 25), st.integers(1, 6), st.integers(2, 5), st.booleans(),
       st.integers(0, 2**31))
def test_out_of_fold_scores_equal_slow_loop(n_each, k, folds, ties, seed):
    rng = np.random.default_rng(seed)
    x = (rng.integers(0, 3, size=(2 * n_each, 2)) if ties
         else rng.normal(size=(2 * n_each, 3))).astype(np.float32)
    positive = np.r_[np.ones(n_each, bool), np.zeros(n_each, bool)]
    folds = min(folds, n_each)
    fold = _discriminator.stratified_folds(positive, folds, rng)
    for cls in (positive, ~positive):
        counts = np.bincount(fold[cls], minlength=folds)
        assert counts.max() - counts.min() <= 1
    got = _discriminator.out_of_fold_scores(x, positive, fold, k)
    np.testing.assert_allclose(got, slow_out_of_fold(x, positive, fold, k), atol=1e-12)


@settings(max_examples=15)
@given(st.integers(2, 30), st.integers(2, 30), st.integers(0, 2**31))
def test_two_sample_auc_equals_slow_cross_validation(m, n, seed):
    rng = np.random.default_rng(seed)
    real = rng.normal(size=(n, 3)).astype(np.float32)
    synthetic = (rng.normal(size=(m, 3)) + rng.uniform(0, 2)).astype(np.float32)
    got = _discriminator.two_sample_auc(real, synthetic, k=3, folds=4, max_per_class=20,
                                        rng=np.random.default_rng(seed))
    auc, rows, scores = slow_two_sample(real, synthetic, k=3, folds=4, max_per_class=20,
                                        seed=seed)
    assert got.auc == pytest.approx(auc, abs=1e-12)
    np.testing.assert_array_equal(got.synthetic_rows, rows)
    np.testing.assert_allclose(got.synthetic_scores, scores, atol=1e-12)


def test_validate_runs_the_documented_discriminator():
    rng = np.random.default_rng(21)
    pool = rng.normal(size=(40, 3)).astype(np.float32)
    synthetic = (rng.normal(size=(15, 3)) + 0.7).astype(np.float32)
    report = validate(synthetic, pool, k=3, discriminator_k=3, folds=4, max_auc=0.6, seed=9)
    auc, rows, scores = slow_two_sample(pool, synthetic, k=3, folds=4, max_per_class=5000,
                                        seed=9)
    assert report.discriminator_auc == pytest.approx(auc, abs=1e-12)
    np.testing.assert_allclose(report.discriminator_score[rows], scores, atol=1e-12)
    assert report.max_auc == 0.6 and report.discriminator_passed == (auc <= 0.6)
    assert report.config["folds"] == 4


def test_discriminator_near_half_for_the_pools_distribution_and_near_one_shifted():
    rng = np.random.default_rng(12)
    pool = rng.normal(size=(1500, 4)).astype(np.float32)
    same = rng.normal(size=(400, 4))
    shifted = rng.normal(size=(400, 4)) + np.array([2.5, 0, 0, 0])
    a = validate(same, pool)
    b = validate(shifted, pool)
    assert abs(a.discriminator_auc - 0.5) < 0.06 and a.discriminator_passed
    assert b.discriminator_auc > 0.9 and b.discriminator_passed is False
    # points are judged per point; the discriminator's verdict rejects none of them
    assert b.keep.sum() > 0
    sampled = ~np.isnan(b.discriminator_score)
    assert sampled.all()  # 400 < 5000: every synthetic point is in the sample
    assert b.discriminator_score[sampled].mean() > a.discriminator_score.mean()
    assert validate(shifted, pool, max_auc=1.0).discriminator_passed


def test_one_synthetic_point_skips_the_discriminator():
    pool, _, _ = clustered_pool(n=200)
    report = validate(pool[:1] + 0.3, pool)
    assert report.discriminator_auc is None and report.discriminator_passed is None
    assert report.warnings[0] == ("discriminator not run: it needs at least 2 synthetic "
                                  "points and 2 pool items, got 1 and 200")
    assert np.isnan(report.discriminator_score).all()
    json.dumps(report.to_dict(), allow_nan=False)


# --------------------------------------------------------------------------- review, report


def test_review_share():
    pool, labels, _ = clustered_pool()
    points = same_cluster_interpolations(pool, labels, 300)
    report = validate(points, pool, seed=3)
    kept = report.n_kept
    assert report.review.sum() == math.ceil(0.05 * kept)
    assert not (report.review & ~report.keep).any()
    again = validate(points, pool, seed=3)
    np.testing.assert_array_equal(report.review, again.review)
    other = validate(points, pool, seed=4)
    assert not np.array_equal(report.review, other.review)
    assert validate(points, pool, review_share=1.0).review.sum() == kept
    assert validate(points, pool, review_share=0).review.sum() == 0
    one = validate(points[:3], pool, review_share=0.01)
    assert one.review.sum() == 1 and (one.review <= one.keep).all()


def test_to_dict_is_json_ready():
    pool, labels, _ = clustered_pool(n=300)
    points = np.concatenate([same_cluster_interpolations(pool, labels, 30), pool[:5]])
    report = validate(points, pool, k=1)
    assert isinstance(report, ValidationReport)
    data = json.loads(json.dumps(report.to_dict(), allow_nan=False))
    assert data["keep"] == report.keep.tolist()
    assert data["reasons"][-1] == "near-duplicate: an exact copy of real item 4 (distance 0)"
    assert data["density"][-1] is None  # 1 / 0 would be inf: JSON has no inf
    assert data["thresholds"]["max_distance"] == report.max_distance
    assert data["thresholds"]["max_auc"] == 0.75
    assert data["discriminator_auc"] == report.discriminator_auc
    assert data["n_review"] == int(report.review.sum())
    with pytest.raises(AttributeError):
        report.keep = None  # frozen


# --------------------------------------------------------------------------- hypothesis


@st.composite
def problems(draw):
    n = draw(st.integers(2, 30))
    d = draw(st.integers(1, 4))
    m = draw(st.integers(1, 12))
    values = st.floats(-5, 5, width=32) | st.sampled_from([0.0, 1.0])
    pool = draw(hnp.arrays(np.float32, (n, d), elements=values))
    synthetic = draw(hnp.arrays(np.float32, (m, d), elements=values))
    if draw(st.booleans()):  # copies of pool rows: exact duplicates, ties
        synthetic[: min(m, n)] = pool[: min(m, n)]
    if draw(st.booleans()):
        pool[n // 2:] = pool[0]
    offset = draw(st.sampled_from([0.0, 1e4]))
    scale = draw(st.sampled_from([1.0, 1e-3, 1e15]))  # tiny and huge norms
    k = draw(st.integers(1, n - 1))
    return ((pool * scale + offset).astype(np.float32),
            (synthetic * scale + offset).astype(np.float32), k)


@settings(max_examples=40)
@given(problems(), st.sampled_from([0.5, 0.9, 0.99, 1.0]))
def test_matches_reference_on_small_random_inputs(problem, quantile):
    pool, synthetic, k = problem
    report = validate(synthetic, pool, k=k, max_quantile=quantile, density_quantile=quantile)
    ref = reference(synthetic, pool, k=k, max_quantile=quantile, density_quantile=quantile)
    for name in ("max_distance", "max_knn_distance", "min_distance"):
        assert getattr(report, name) == pytest.approx(ref[name], rel=1e-9, abs=1e-300), name
    np.testing.assert_allclose(report.nearest_distance, ref["nearest_distance"], rtol=1e-9)
    np.testing.assert_array_equal(report.near_duplicate, ref["near_duplicate"])
    np.testing.assert_array_equal(report.keep, ref["keep"])
    for keep, reason in zip(report.keep, report.reasons, strict=True):
        assert (reason is None) == keep
    assert not (report.review & ~report.keep).any()
    assert (report.review.sum() >= 1) == report.keep.any()
    if report.discriminator_auc is not None:
        assert 0.0 <= report.discriminator_auc <= 1.0
    json.dumps(report.to_dict(), allow_nan=False)


# --------------------------------------------------------------------------- bad input


POOL = np.random.default_rng(0).normal(size=(50, 3)).astype(np.float32)
SYN = POOL[:5] + 0.1


@pytest.mark.parametrize("args, kwargs, message", [
    ((np.full((2, 3), np.nan), POOL), {},
     r"^synthetic must be finite: row 0, column 0 is nan; replace NaN/inf or drop those items$"),
    ((SYN, np.where(np.eye(50, 3) > 0, np.inf, POOL)), {},
     r"^pool_embeddings must be finite: row 0, column 0 is inf"),
    ((SYN[:, :2], POOL), {},
     r"^synthetic has 2 dimensions but pool_embeddings has 3; pass synthetic points in the "
     r"pool's embedding space$"),
    ((np.empty((0, 3), np.float32), POOL), {},
     r"^synthetic is empty \(shape \(0, 3\)\); pass at least one item$"),
    ((SYN[0], POOL), {}, r"^synthetic must be 2-D with shape \(N items, d dimensions\)"),
    ((SYN, POOL[:1]), {},
     r"^pool_embeddings must hold at least 2 items \(each item's distance to its nearest "
     r"other item is the reference\), got 1; pass the whole pool$"),
    ((SYN, POOL[:8]), {},
     r"^k=10 needs a pool of at least 11 items \(each pool item's k nearest other items\), "
     r"got 8; pass k=7 or fewer$"),
    ((SYN, POOL), {"max_quantile": 0},
     r"^max_quantile must be > 0, got 0; pass a quantile in \(0, 1\], e.g. 0.99$"),
    ((SYN, POOL), {"density_quantile": 1.5},
     r"^density_quantile must be <= 1, got 1.5; pass a quantile in \(0, 1\], e.g. 0.99$"),
    ((SYN, POOL), {"max_quantile": float("nan")}, r"^max_quantile must be finite, got nan"),
    ((SYN, POOL), {"min_distance": -1.0}, r"^min_distance must be >= 0, got -1.0"),
    ((SYN, POOL), {"max_auc": 0.3}, r"^max_auc must be >= 0.5, got 0.3; pass an AUC in"),
    ((SYN, POOL), {"review_share": 2}, r"^review_share must be <= 1, got 2; pass a share"),
    ((SYN, POOL), {"folds": 1}, r"^folds must be >= 2, got 1; pass e.g. folds=5$"),
    ((SYN, POOL), {"k": 0}, r"^k must be a positive integer, got 0$"),
    ((SYN, POOL), {"discriminator_k": 2.5},
     r"^discriminator_k must be a positive integer, got float 2.5$"),
    ((SYN, POOL), {"seed": -1}, r"^seed must be >= 0, got -1"),
])
def test_bad_input(args, kwargs, message):
    with pytest.raises(alcore.InvalidInputError, match=message):
        validate(*args, **kwargs)


def test_options_are_keyword_only():
    with pytest.raises(alcore.InvalidInputError,
                       match=r"^validate\(\): too many positional arguments; it takes "
                             r"synthetic=, pool_embeddings=, max_quantile="):
        validate(SYN, POOL, 0.99)
    with pytest.raises(alcore.InvalidInputError, match=r"\(did you mean max_quantile=\?\)"):
        validate(SYN, POOL, max_quantil=0.9)


@settings(max_examples=40)
@given(hnp.arrays(np.float32, st.tuples(st.integers(2, 25), st.integers(1, 3)),
                  elements=st.sampled_from([0.0, 1.0, -1.1920929e-07, 2.0, -3.0])
                  | st.floats(-4, 4, width=32)),
       st.integers(1, 8), st.sampled_from([0.0, 1e4]), st.booleans())
def test_exact_knn_equals_brute_force_on_ties(base, k, offset, own):
    from alcore._faiss import nearest_rows

    base = (base + offset).astype(np.float32)
    n = len(base)
    k = min(k, n - 1 if own else n)
    queries = base if own else (base[::-1] + np.float32(0.5)).astype(np.float32)
    q64, b64 = queries.astype(np.float64), base.astype(np.float64)
    d = ((q64[:, None, :] - b64[None, :, :]) ** 2).sum(axis=2)
    if own:
        d[np.arange(n), np.arange(n)] = np.inf
    order = np.lexsort((np.broadcast_to(np.arange(n), d.shape), d), axis=-1)[:, :k]
    sq, ids = nearest_rows(base, np.ascontiguousarray(queries), k,
                           self_rows=np.arange(n) if own else None)
    np.testing.assert_array_equal(ids, order)
    np.testing.assert_array_equal(sq, np.take_along_axis(d, order, axis=1))


def test_duplicate_pool_warns_that_its_threshold_is_zero():
    pool = np.repeat(np.eye(3, dtype=np.float32), 20, axis=0)
    report = validate(np.array([[0.5, 0.5, 0.0]]), pool, k=3)
    assert report.max_distance == 0 and report.min_distance == 0
    assert report.reasons[0].startswith("off-manifold: nearest real item (row 0) at 0.707")
    assert ("the pool's 0.99 quantile of 1-NN distances is 0 (duplicate items): every point "
            "that is not a copy is off-manifold") in report.warnings
