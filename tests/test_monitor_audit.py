"""PoolSketch.audit and AuditReport (alcore.monitor): every metric against a direct
numpy (or scipy) computation that does not call the code under test, the verdicts on a
selection from one cluster and on a random one, the report's JSON and PNG, bad inputs."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import ks_2samp

from alcore import InvalidInputError
from alcore.monitor import DEFAULT_THRESHOLDS, AuditReport, PoolSketch

EPS = 1e-4  # PSI's documented share of an empty bin


def clustered(n: int, d: int, seed: int, clusters: int = 8, offset: float = 0.0):
    rng = np.random.default_rng(seed)
    centres = 5 * rng.standard_normal((clusters, d))
    labels = rng.integers(clusters, size=n)
    x = (centres[labels] + rng.standard_normal((n, d)) + offset).astype(np.float32)
    return x, labels


def direct_psi(pool: np.ndarray, selected: np.ndarray, edges: np.ndarray) -> np.ndarray:
    out = []
    for j in range(pool.shape[1]):
        p = np.bincount(np.searchsorted(edges[j], pool[:, j].astype(np.float64), "right"),
                        minlength=edges.shape[1] + 1) / len(pool)
        q = np.bincount(np.searchsorted(edges[j], selected[:, j].astype(np.float64),
                                        "right"), minlength=edges.shape[1] + 1) / len(selected)
        p, q = np.maximum(p, EPS), np.maximum(q, EPS)
        out.append(float(np.sum((q - p) * np.log(q / p))))
    return np.array(out)


def direct_ks(reference: np.ndarray, selected: np.ndarray) -> np.ndarray:
    """sup |F_ref - F_sel| over every value either side holds, by counting."""
    out = []
    for j in range(reference.shape[1]):
        r, s = reference[:, j], selected[:, j]
        points = np.concatenate([r, s])
        f_r = (r[None, :] <= points[:, None]).mean(axis=1)
        f_s = (s[None, :] <= points[:, None]).mean(axis=1)
        out.append(float(np.abs(f_r - f_s).max()))
    return np.array(out)


def nearest_labels(x: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    diff = x.astype(np.float64)[:, None, :] - centroids[None]
    return np.argmin((diff * diff).sum(axis=2), axis=1)


@pytest.fixture(scope="module")
def pool():
    x, labels = clustered(20_000, 6, seed=1)
    probs = np.random.default_rng(1).dirichlet(np.ones(4), size=len(x))
    probs[np.arange(len(x)), labels % 4] += 1
    probs /= probs.sum(axis=1, keepdims=True)
    sketch = PoolSketch.build(x, probs, sample=5000, clusters=16, rff_features=256)
    return x, labels, probs, sketch


# ------------------------------------------------------------------ metrics, directly


def test_psi_equals_a_direct_bin_count_with_the_same_edges(pool):
    x, labels, _, sk = pool
    rng = np.random.default_rng(2)
    for selected in (x[rng.choice(len(x), 300, replace=False)], x[labels == 2][:200],
                     x[:1]):
        report = sk.audit(selected)
        np.testing.assert_allclose(report.psi, direct_psi(x, selected, sk.edges),
                                   rtol=1e-12, atol=1e-15)


def test_ks_equals_scipy_when_the_sample_holds_the_pool():
    x, labels = clustered(3000, 4, seed=3)
    sk = PoolSketch.build(x, sample=3000, clusters=8, rff_features=64)
    rng = np.random.default_rng(3)
    for selected in (x[rng.choice(3000, 200, replace=False)], x[labels == 1], x[5:6],
                     x[:50] + np.float32(0.3)):
        report = sk.audit(selected)
        want = [ks_2samp(x[:, j], selected[:, j]).statistic for j in range(4)]
        np.testing.assert_allclose(report.ks, want, rtol=0, atol=1e-12)


def test_ks_against_the_sample_when_it_does_not(pool):
    x, labels, _, sk = pool
    selected = x[labels == 3][:150]
    np.testing.assert_allclose(sk.audit(selected).ks, direct_ks(sk.sample, selected),
                               atol=1e-12)


def test_cluster_coverage_and_tvd_directly(pool):
    x, labels, _, sk = pool
    selected = np.concatenate([x[labels == 0][:100], x[labels == 5][:20]])
    report = sk.audit(selected)
    pool_share = np.bincount(nearest_labels(x, sk.centroids), minlength=16) / len(x)
    mine = np.bincount(nearest_labels(selected, sk.centroids), minlength=16) / len(selected)
    np.testing.assert_allclose(report.pool_cluster_share, pool_share)
    np.testing.assert_allclose(report.selected_cluster_share, mine)
    assert report.cluster_tvd == pytest.approx(0.5 * np.abs(pool_share - mine).sum())
    assert report.cluster_coverage == pytest.approx(pool_share[mine > 0].sum())
    assert report.clusters_covered == np.count_nonzero((mine > 0) & (pool_share > 0))
    assert report.clusters_nonempty == np.count_nonzero(pool_share)


def test_class_tvd_directly(pool):
    x, labels, probs, sk = pool
    pick = np.flatnonzero(labels == 1)[:80]
    report = sk.audit(x[pick], probs[pick])
    p = np.bincount(probs.argmax(axis=1), minlength=4) / len(x)
    q = np.bincount(probs[pick].argmax(axis=1), minlength=4) / len(pick)
    assert report.class_tvd == pytest.approx(0.5 * np.abs(p - q).sum(), abs=1e-15)
    # Class ids give the same; ids beyond the pool's classes count as classes of share 0.
    ids = sk.audit(x[pick], probs[pick].argmax(axis=1))
    assert ids.class_tvd == pytest.approx(report.class_tvd)
    beyond = sk.audit(x[:4], np.array([0, 6, 6, 6]))
    p7 = np.append(p, [0, 0, 0])
    assert beyond.class_tvd == pytest.approx(0.5 * np.abs(p7 - [0.25, 0, 0, 0, 0, 0, 0.75])
                                             .sum())
    assert sk.audit(x[pick]).class_tvd is None


def test_kcenter_radius_against_brute_force(pool):
    x, labels, _, sk = pool
    selected = x[labels == 4][:60]
    report = sk.audit(selected, seed=5)
    queries = sk.sample[sk.radius_rows].astype(np.float64)
    diff = queries[:, None, :] - selected.astype(np.float64)[None]
    nearest = np.sqrt((diff * diff).sum(axis=2)).min(axis=1)
    assert report.kcenter_radius == pytest.approx(nearest.max(), rel=1e-6)
    assert report.kcenter_farthest_row == sk.sample_rows[sk.radius_rows[np.argmax(nearest)]]
    # The random reference: the same size from the sample, seeded.
    pick = np.sort(np.random.default_rng(5).choice(len(sk.sample), 60, replace=False))
    diff = queries[:, None, :] - sk.sample[pick].astype(np.float64)[None]
    ref = np.sqrt((diff * diff).sum(axis=2)).min(axis=1).max()
    assert report.random_reference["kcenter_radius"] == pytest.approx(ref, rel=1e-6)
    assert report.radius_ratio == pytest.approx(nearest.max() / ref, rel=1e-6)
    assert sk.audit(selected, seed=5).to_dict() == report.to_dict()


def test_mmd_near_zero_for_a_random_subset_larger_when_shifted():
    x, _ = clustered(6000, 5, seed=6)
    sk = PoolSketch.build(x, sample=6000, clusters=8, rff_features=1024)
    rng = np.random.default_rng(6)
    random = sk.audit(x[rng.choice(6000, 1500, replace=False)]).mmd
    shifted = sk.audit(x[rng.choice(6000, 1500, replace=False)] + np.float32(1.0)).mmd
    assert random < 0.05 and shifted > max(0.1, 4 * random), (random, shifted)
    assert sk.audit(x).mmd == pytest.approx(0.0, abs=1e-12)  # the whole pool


def test_rff_mmd_approximates_the_exact_gaussian_kernel_mmd():
    x, labels = clustered(1500, 3, seed=7)
    sk = PoolSketch.build(x, sample=1500, clusters=4, rff_features=20_000, seed=1)
    selected = x[labels < 3]
    scale = np.where(sk.std > 0, sk.std, 1)
    a = (x.astype(np.float64) - sk.mean) / scale
    b = (selected.astype(np.float64) - sk.mean) / scale

    def kernel_mean(u, w):
        sq = ((u[:, None, :] - w[None]) ** 2).sum(axis=2)
        return np.exp(-sq / (2 * sk.rff_bandwidth**2)).mean()

    exact = math.sqrt(kernel_mean(a, a) + kernel_mean(b, b) - 2 * kernel_mean(a, b))
    assert sk.audit(selected).mmd == pytest.approx(exact, abs=0.02)


# ------------------------------------------------------------------ verdicts


def test_flags_a_selection_from_one_cluster_and_passes_a_random_one(pool):
    x, labels, probs, sk = pool
    rng = np.random.default_rng(8)
    pick = rng.choice(len(x), 800, replace=False)
    random = sk.audit(x[pick], probs[pick])
    assert random.warnings == [] and random.passed, random.warnings
    one = np.flatnonzero(labels == 6)[:800]
    flagged = sk.audit(x[one], probs[one])
    assert not flagged.passed
    text = " | ".join(flagged.warnings)
    for phrase in ("PSI above 0.25", "KS distance above 0.2", "MMD", "cluster coverage",
                   "cluster histogram distance (TVD)", "predicted-class distance (TVD)",
                   "k-center radius"):
        assert phrase in text, (phrase, text)
    assert flagged.cluster_coverage < 0.3 and flagged.cluster_tvd > 0.7
    # The random reference is the noise floor: the random selection is near it.
    assert random.psi.max() < 3 * flagged.random_reference["psi_max"] + 0.05


def test_thresholds_are_configurable(pool):
    x, _, _, sk = pool
    pick = np.random.default_rng(9).choice(len(x), 500, replace=False)
    strict = sk.audit(x[pick], thresholds={"psi": 0.0, "mmd": 0})
    assert len(strict.warnings) == 2 and strict.thresholds["psi"] == 0.0
    assert strict.thresholds["ks"] == DEFAULT_THRESHOLDS["ks"]
    with pytest.raises(InvalidInputError, match=r"thresholds has unknown metric\(s\) 'pis'; "
                                                r"the metrics are psi, ks"):
        sk.audit(x[pick], thresholds={"pis": 0.1})
    with pytest.raises(InvalidInputError, match=r"thresholds\['psi'\] must be >= 0"):
        sk.audit(x[pick], thresholds={"psi": -1})
    with pytest.raises(InvalidInputError, match=r"thresholds must be a dict"):
        sk.audit(x[pick], thresholds=[0.1])


# ------------------------------------------------------------------ the report


def test_to_dict_is_json_ready(pool):
    x, labels, probs, sk = pool
    report = sk.audit(x[labels == 2][:40], probs[labels == 2][:40])
    data = report.to_dict()
    again = json.loads(json.dumps(data, allow_nan=False))
    assert again == data
    assert isinstance(data["psi"], list) and isinstance(data["psi"][0], float)
    assert isinstance(data["mmd"], float) and isinstance(data["n_selected"], int)
    assert data["warnings"] == report.warnings and data["passed"] is False
    assert set(data["random_reference"]) >= {"psi_max", "kcenter_radius"}


def test_plot_writes_a_png(pool, tmp_path):
    x, labels, probs, sk = pool
    with_classes = sk.audit(x[labels == 2][:40], probs[labels == 2][:40])
    with_classes.plot(tmp_path / "audit.png")
    assert (tmp_path / "audit.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    sk.audit(x[:30]).plot(str(tmp_path / "plain.png"))
    assert (tmp_path / "plain.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(InvalidInputError, match=r"does not exist; create it first"):
        with_classes.plot(tmp_path / "missing" / "a.png")


def test_report_type_and_repr(pool):
    x, _, _, sk = pool
    report = sk.audit(x[:100])
    assert isinstance(report, AuditReport)
    assert repr(report).startswith("AuditReport(100 selected of 20000")


# ------------------------------------------------------------------ bad input


def test_bad_selections(pool):
    x, _, probs, sk = pool
    with pytest.raises(InvalidInputError, match=r"selected_embeddings is empty \(shape "
                                                r"\(0, 6\)\); pass at least one item"):
        sk.audit(x[:0])
    with pytest.raises(InvalidInputError, match=r"selected_embeddings has 5 features \(shape "
                                                r"\(10, 5\)\) but the pool was sketched with 6"):
        sk.audit(x[:10, :5])
    bad = x[:10].copy()
    bad[3, 2] = np.nan
    with pytest.raises(InvalidInputError, match=r"selected_embeddings must be finite: row 3, "
                                                r"column 2 is nan"):
        sk.audit(bad)
    with pytest.raises(InvalidInputError, match=r"selected_embeddings must be 2-D"):
        sk.audit(x[0])
    with pytest.raises(InvalidInputError, match=r"selected_predictions has 9 rows but "
                                                r"selected_embeddings has 10"):
        sk.audit(x[:10], probs[:9])
    with pytest.raises(InvalidInputError, match=r"selected_predictions has 3 classes \(columns"
                                                r"\) but the pool's predictions had 4"):
        sk.audit(x[:10], probs[:10, :3])
    nan = probs[:10].copy()
    nan[4, 0] = np.nan
    with pytest.raises(InvalidInputError, match=r"selected_predictions must be finite: row 4"):
        sk.audit(x[:10], nan)
    plain = PoolSketch.build(x[:500], sample=100, clusters=2, rff_features=8)
    with pytest.raises(InvalidInputError, match=r"the sketch was built without "
                                                r"pool_predictions"):
        plain.audit(x[:10], probs[:10])
    with pytest.raises(InvalidInputError, match=r"PoolSketch.audit\(\): got an unexpected "
                                                r"keyword argument 'threshold'"):
        sk.audit(x[:10], threshold={})


# ------------------------------------------------------------------ random pools


@st.composite
def cases(draw):
    n = draw(st.integers(2, 80))
    d = draw(st.integers(1, 3))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    kind = draw(st.sampled_from(["normal", "integers", "constant"]))
    if kind == "normal":
        x = rng.standard_normal((n, d))
    elif kind == "integers":
        x = rng.integers(-2, 3, size=(n, d)).astype(np.float64)
    else:
        x = np.full((n, d), -1.25)
    x = (x + draw(st.sampled_from([0.0, 1e4]))).astype(np.float32)
    m = draw(st.integers(1, n))
    selected = x[rng.choice(n, size=m, replace=False)]
    if draw(st.booleans()):  # something the pool does not hold
        selected = selected + np.float32(draw(st.sampled_from([0.5, -3.0])))
    return x, selected


@settings(max_examples=50, deadline=None)
@given(case=cases(), bins=st.integers(2, 8), whole=st.booleans())
def test_random_pools_and_selections(case, bins, whole):
    x, selected = case
    sample = len(x) if whole else max(1, len(x) // 2)
    sk = PoolSketch.build(x, bins=bins, sample=sample, clusters=3, rff_features=16)
    report = sk.audit(selected)
    np.testing.assert_allclose(report.psi, direct_psi(x, selected, sk.edges),
                               rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(report.ks, direct_ks(sk.sample, selected), atol=1e-12)
    if whole:
        want = [ks_2samp(x[:, j], selected[:, j]).statistic for j in range(x.shape[1])]
        np.testing.assert_allclose(report.ks, want, atol=1e-12)
    data = report.to_dict()
    json.dumps(data, allow_nan=False)  # every value finite
    assert 0 <= report.cluster_coverage <= 1 and 0 <= report.cluster_tvd <= 1
    assert report.mmd >= 0 and report.kcenter_radius >= 0


def test_the_sketch_and_so_the_audit_do_not_grow_with_the_pool(tmp_path):
    """Every array an audit reads has the same shape for a pool 10 times larger."""
    small, _ = clustered(3000, 4, seed=10)
    large, _ = clustered(30_000, 4, seed=10)
    opts = {"sample": 1000, "clusters": 6, "rff_features": 32}
    a, b = PoolSketch.build(small, **opts), PoolSketch.build(large, **opts)
    a.save(tmp_path / "a.npz")
    b.save(tmp_path / "b.npz")
    with np.load(tmp_path / "a.npz") as fa, np.load(tmp_path / "b.npz") as fb:
        assert {k: fa[k].shape for k in fa.files if k != "header"} == {
            k: fb[k].shape for k in fb.files if k != "header"}
    assert b.audit(large[:100]).n_pool == 30_000
