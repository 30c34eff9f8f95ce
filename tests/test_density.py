"""kNN density: both searches against brute force, and bad input."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import alcore
from alcore.density import knn_density


def brute_force(x: np.ndarray, k: int) -> np.ndarray:
    """Mean distance to the k nearest others, from the full distance matrix (float64)."""
    x = x.astype(np.float64)
    dist = np.sqrt(((x[:, None, :] - x[None, :, :]) ** 2).sum(axis=2))
    np.fill_diagonal(dist, np.inf)
    return np.sort(dist, axis=1)[:, :k].mean(axis=1)


def small_embeddings(max_rows: int, max_dims: int):
    """float32 (N, d) arrays, N in [2, max_rows], with ties (0 and 1 repeat)."""
    return hnp.arrays(np.float32, st.tuples(st.integers(2, max_rows), st.integers(1, max_dims)),
                      elements=st.floats(-10, 10, width=32) | st.sampled_from([0.0, 1.0]))


@settings(max_examples=40)
@given(small_embeddings(max_rows=60, max_dims=8), st.integers(1, 5))
def test_exact_matches_brute_force(x, k):
    k = min(k, len(x) - 1)
    mean = brute_force(x, k)
    got = knn_density(x, k, exact=True, return_neighbors=True)
    assert got.index.kind == "flat"
    assert np.isfinite(got.density).all() and (got.density > 0).all()
    # FAISS's exact search expands |x - y|^2 = |x|^2 + |y|^2 - 2 x.y in float32.
    scale = float(np.abs(x).max()) + 1.0
    np.testing.assert_allclose(got.distances.mean(axis=1), mean, atol=2e-3 * scale, rtol=1e-3)
    assert not (got.ids == np.arange(len(x))[:, None]).any() or (mean == 0).any()
    positive = mean > 1e-2 * scale
    np.testing.assert_allclose(got.density[positive], 1 / mean[positive], rtol=5e-3)


def test_denormal_distances_get_the_largest_finite_density_not_inf():
    # Found by hypothesis: distance 1e-45 made 1 / mean overflow float32 to inf.
    density = knn_density(np.array([[1e-45], [0.0]], dtype=np.float32), 1)
    np.testing.assert_array_equal(density, np.finfo(np.float32).max)


def test_duplicates_get_the_largest_finite_density():
    x = np.array([[0.0, 0.0]] * 4 + [[5.0, 5.0]])
    density = knn_density(x, 2)
    assert density[0] == np.finfo(np.float32).max
    assert np.isfinite(density).all()


def test_large_n_exact_search_finds_the_true_neighbours():
    """Large enough for the cluster-pruned search: the same neighbours as brute force (up to
    float rounding among near-equal distances)."""
    rng = np.random.default_rng(0)
    centers = rng.standard_normal((60, 32)).astype(np.float32) * 3
    x = centers[rng.integers(60, size=120_000)] + rng.standard_normal((120_000, 32),
                                                                        dtype=np.float32)
    found = knn_density(x, 10, exact=True, return_neighbors=True, seed=1)
    assert found.index.kind == "clustered" and found.index.exact
    sample = rng.choice(len(x), size=300, replace=False)
    exact = brute_force_ids(x, sample, 10)
    recall = np.mean([len(set(found.ids[i]) & set(exact[j])) / 10
                      for j, i in enumerate(sample)])
    assert recall >= 0.995, recall
    # And the densities are those of the true neighbours.
    exact_mean = np.array([np.sqrt(((x[exact[j]] - x[i]) ** 2).sum(axis=1)).mean()
                           for j, i in enumerate(sample)])
    np.testing.assert_allclose(1 / found.density[sample], exact_mean, rtol=1e-4)


def mixture(n: int, d: int, scale: float, seed: int) -> np.ndarray:
    """100 Gaussian components with unit noise, centres at ``scale`` (3: separated, 1:
    clusters that touch), float32."""
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((100, d), dtype=np.float32) * scale
    return centers[rng.integers(100, size=n)] + rng.standard_normal((n, d), dtype=np.float32)


def neighbours_by_hand(x: np.ndarray, rows: np.ndarray, k: int) -> np.ndarray:
    """Each of ``rows``' k nearest other rows by float64 distances, equal distances to the
    lower id (numpy, no alcore)."""
    x64 = x.astype(np.float64)
    out = []
    for i in rows:
        d = ((x64 - x64[i]) ** 2).sum(axis=1)
        d[i] = np.inf
        out.append(np.lexsort((np.arange(len(x)), d))[:k])
    return np.array(out)


@pytest.mark.parametrize("d, scale", [(32, 3.0), (32, 1.0), (128, 1.0)])
def test_automatic_search_is_approximate_above_20k_items_with_high_recall(d, scale):
    x = mixture(30_000, d, scale, seed=d)
    found = knn_density(x, 10, return_neighbors=True)
    assert found.index.kind == "ivf" and not found.index.exact
    assert found.index.clusters == round(0.5 * np.sqrt(30_000)) and found.index.probes == 4
    sample = np.random.default_rng(1).choice(len(x), size=200, replace=False)
    exact = neighbours_by_hand(x, sample, 10)
    recall = np.mean([len(set(found.ids[i]) & set(exact[j])) / 10
                      for j, i in enumerate(sample)])
    assert recall >= 0.95, recall
    # Whatever was found: k distinct other rows, nearest first, with their exact distances.
    ids = found.ids[sample]
    assert (ids != sample[:, None]).all()
    assert all(len(set(row)) == 10 for row in ids)
    x64 = x.astype(np.float64)
    dist = np.sqrt(((x64[ids] - x64[sample, None, :]) ** 2).sum(axis=2))
    np.testing.assert_allclose(found.distances[sample], dist, rtol=1e-6)
    assert (np.diff(found.distances[sample], axis=1) >= 0).all()
    np.testing.assert_allclose(found.density[sample], 1 / dist.mean(axis=1), rtol=1e-6)


def test_automatic_search_is_exact_up_to_20k_items():
    x = mixture(20_000, 8, 1.0, seed=3)
    found = knn_density(x, 5, return_neighbors=True)
    assert found.index.kind == "flat" and found.index.exact
    assert knn_density(x[:30], 5, exact=False, return_neighbors=True).index.kind == "ivf"


def test_exact_search_equals_numpy_with_ties_to_the_lower_id():
    """Integer-grid points: many equal distances, decided to the lower id."""
    x = np.random.default_rng(4).integers(0, 4, size=(400, 3)).astype(np.float32)
    found = knn_density(x, 6, exact=True, return_neighbors=True)
    assert found.index.kind == "flat"
    np.testing.assert_array_equal(found.ids, neighbours_by_hand(x, np.arange(400), 6))


def test_ivf_with_tiny_cells_falls_back_to_the_exact_search(monkeypatch):
    """One probed cell holding fewer than k + 1 items: those rows get the exact search."""
    from alcore import _faiss

    monkeypatch.setattr(_faiss, "IVF_CLUSTERS_PER_SQRT_N", 5.0)
    monkeypatch.setattr(_faiss, "IVF_PROBES", 1)
    x = mixture(400, 4, 3.0, seed=5)
    found = knn_density(x, 6, exact=False, return_neighbors=True)
    assert found.index == _faiss.IndexChoice("ivf", clusters=100, probes=1)
    np.testing.assert_array_equal(found.ids, neighbours_by_hand(x, np.arange(400), 6))


@settings(max_examples=30, deadline=None)
@given(small_embeddings(max_rows=80, max_dims=6), st.integers(1, 5))
def test_ivf_probing_every_cell_is_exact(x, k):
    """Up to 4 cells (N < 50 items) the IVF search probes them all: brute force."""
    k = min(k, len(x) - 1)
    found = knn_density(x, k, exact=False, return_neighbors=True)
    assert found.index.kind == "ivf" and found.index.probes == found.index.clusters
    mean = brute_force(x, k)
    scale = float(np.abs(x).max()) + 1.0
    np.testing.assert_allclose(found.distances.mean(axis=1), mean, atol=1e-5 * scale,
                               rtol=1e-5)


def test_ivf_does_not_depend_on_the_thread_count():
    x = mixture(25_000, 16, 1.0, seed=6)
    x[20_000:20_300] = x[:300]  # exact duplicates: equal distances
    saved = alcore.get_num_threads()
    results = []
    try:
        for threads in (1, 2, 3):
            alcore.set_num_threads(threads)
            results.append(knn_density(x, 10, return_neighbors=True, seed=3))
    finally:
        alcore.set_num_threads(saved)
    assert results[0].index.kind == "ivf"
    for other in results[1:]:
        for a, b in zip(results[0][:3], other[:3], strict=True):
            assert a.tobytes() == b.tobytes()


def test_ivf_is_deterministic_for_a_seed():
    x = mixture(25_000, 16, 1.0, seed=7)
    a = knn_density(x, 10, return_neighbors=True, seed=5)
    b = knn_density(x, 10, return_neighbors=True, seed=5)
    np.testing.assert_array_equal(a.ids, b.ids)
    np.testing.assert_array_equal(a.density, b.density)


def brute_force_ids(x: np.ndarray, rows: np.ndarray, k: int) -> np.ndarray:
    out = []
    for i in rows:
        d = ((x - x[i]) ** 2).sum(axis=1)
        d[i] = np.inf
        out.append(np.argsort(d, kind="stable")[:k])
    return np.array(out)


def test_progress_reports_every_batch():
    x = np.random.default_rng(2).standard_normal((40_000, 4)).astype(np.float32)
    calls = []
    knn_density(x, 3, progress=lambda done, total: calls.append((done, total)))
    assert calls[-1] == (40_000, 40_000) and len(calls) >= 2


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"embeddings": np.zeros((3, 2)), "k": 3}, r"k=3 needs at least 4 items"),
        ({"embeddings": np.zeros((3, 2)), "k": 0}, r"k must be a positive integer"),
        ({"embeddings": [[np.inf, 0.0], [0.0, 0.0]], "k": 1},
         r"embeddings must be finite: row 0, column 0 is inf"),
        ({"embeddings": np.zeros((3, 2)), "k": 1, "exact": "yes"},
         r"exact must be True or False"),
        ({"embeddings": np.zeros((3, 2)), "k": 1, "seed": "x"},
         r"seed must be an int or a numpy.random.Generator"),
    ],
)
def test_bad_input(kwargs, match):
    with pytest.raises(alcore.InvalidInputError, match=match):
        knn_density(**kwargs)


def test_uncentred_rows_get_their_true_density():
    """Rows far from the origin (offsets 10..800, spread 0.5, 64-d): FAISS's float32
    expanded form on the raw rows is off by about 15 in squared distances of about 30; on
    centred rows it is not."""
    rng = np.random.default_rng(5)
    x = (rng.uniform(10, 800, size=64) + rng.standard_normal((3000, 64)) * 0.5)
    x = x.astype(np.float32)  # 3000 queries: FAISS takes its BLAS path (few queries do not)
    x64 = x.astype(np.float64)
    mean = []
    for i in range(len(x)):
        d = np.sqrt(((x64 - x64[i]) ** 2).sum(axis=1))
        d[i] = np.inf
        mean.append(np.sort(d)[:5].mean())
    np.testing.assert_allclose(1 / knn_density(x, 5), mean, rtol=1e-4)


@pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning")
@settings(max_examples=40)
@given(st.sampled_from([np.float16, np.float32, np.float64]), st.integers(2, 30),
       st.integers(1, 5), st.sampled_from([0.0, 300.0, -2.0**16]), st.booleans(),
       st.integers(1, 4))
def test_any_dtype_layout_and_offset(dtype, n, d, offset, strided, k):
    k = min(k, n - 1)
    rng = np.random.default_rng(n + 100 * d)
    x = (rng.standard_normal((n, 2 * d)) + offset).astype(dtype)
    x = x[:, ::2] if strided else x[:, :d]
    if not np.isfinite(x).all():  # float16 overflows at 2^16
        with pytest.raises(alcore.InvalidInputError, match="embeddings must be finite"):
            knn_density(x, k)
        return
    got = knn_density(x, k)
    mean = brute_force(x.astype(np.float32), k)
    assert got.dtype == np.float32 and got.shape == (n,)
    positive = mean > 1e-3
    np.testing.assert_allclose(1 / got[positive], mean[positive], rtol=2e-3)


def _run_python(code: str) -> None:
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    # From outside the checkout, so that the installed package (with its compiled core) is
    # imported, not the source tree.
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                            text=True, timeout=120, cwd=os.sep)
    assert result.returncode == 0, result.stderr


def test_faiss_calls_leave_the_environment_as_it_was():
    _run_python("""
import os
import numpy as np
import alcore
before = dict(os.environ)
alcore.density.knn_density(np.random.default_rng(0).standard_normal((50, 3)), 3)
assert dict(os.environ) == before, set(os.environ.items()) ^ set(before.items())
assert "OMP_WAIT_POLICY" not in os.environ
""")


def test_faiss_thread_count_is_alcores_only_during_its_calls():
    _run_python("""
import faiss
import numpy as np
import alcore
faiss.omp_set_num_threads(1)
alcore.set_num_threads(2)
inside = []
x = np.random.default_rng(0).standard_normal((50, 3)).astype(np.float32)
alcore.density.knn_density(x, 3, progress=lambda d, t: inside.append(faiss.omp_get_max_threads()))
assert inside and set(inside) == {2}, inside
assert faiss.omp_get_max_threads() == 1, faiss.omp_get_max_threads()
alcore.diversity.typiclust(x, 3)  # k-means
assert faiss.omp_get_max_threads() == 1, faiss.omp_get_max_threads()
""")


def test_threads_change_nothing():
    rng = np.random.default_rng(7)
    x = rng.standard_normal((5000, 16)).astype(np.float32)
    saved = alcore.get_num_threads()
    results = []
    try:
        for threads in (1, 2, 3, 7):
            alcore.set_num_threads(threads)
            results.append(knn_density(x, 5, return_neighbors=True))
    finally:
        alcore.set_num_threads(saved)
    for other in results[1:]:
        np.testing.assert_array_equal(other.ids, results[0].ids)
        np.testing.assert_allclose(other.density, results[0].density, rtol=1e-6)


def test_ivf_restores_the_blas_thread_count():
    threadpoolctl = pytest.importorskip("threadpoolctl")

    def blas_threads():
        return [(i["filepath"], i["num_threads"]) for i in threadpoolctl.threadpool_info()
                if i["user_api"] == "blas"]

    x = mixture(21_000, 8, 1.0, seed=8)
    knn_density(x[:50], 3)  # FAISS (and its BLAS) loaded before the first reading
    before = blas_threads()
    with threadpoolctl.threadpool_limits(limits=2, user_api="blas"):
        inside = blas_threads()
        assert knn_density(x, 3, return_neighbors=True).index.kind == "ivf"
        assert blas_threads() == inside
    assert blas_threads() == before


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 300), st.integers(1, 40), st.integers(1, 20),
       st.sampled_from([0.0, 1e4, -3e6]), st.integers(0, 2**31))
def test_candidate_distances_are_those_of_plain_float64_differences(n, d, m, offset, seed):
    from alcore._distances import exact_sq_to_rows

    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((n, d)) * 3 + offset).astype(np.float32)
    ids = rng.integers(n, size=(n, m))
    x64 = x.astype(np.float64)
    expected = ((x64[:, None, :] - x64[ids]) ** 2).sum(axis=-1)
    got = exact_sq_to_rows(x, ids)
    assert got.tobytes() == expected.tobytes()
