"""Information density: the density term against modAL and brute force."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import alcore
from alcore.density import information_density, similarity_density


def brute(x, similarity, include_self):
    x = x.astype(np.float64)
    if similarity == "cosine":
        u = x / np.linalg.norm(x, axis=1, keepdims=True)
        sim = u @ u.T
    else:
        sim = 1 / (1 + np.sqrt(((x[:, None] - x[None]) ** 2).sum(axis=2)))
    if not include_self:
        np.fill_diagonal(sim, 0)
        return sim.sum(axis=1) / (len(x) - 1)
    return sim.mean(axis=1)


@settings(max_examples=40)
@given(hnp.arrays(np.float64, st.tuples(st.integers(2, 30), st.integers(1, 5)),
                  elements=st.floats(0.1, 5)),
       st.sampled_from(["cosine", "inverse_euclidean"]), st.booleans())
def test_exact_matches_brute_force(x, similarity, include_self):
    got = similarity_density(x, similarity=similarity, include_self=include_self)
    np.testing.assert_allclose(got, brute(x.astype(np.float32), similarity, include_self),
                               rtol=1e-5, atol=1e-6)


def test_equals_modal():
    density = pytest.importorskip("modAL.density")
    x = np.random.default_rng(0).standard_normal((300, 6))
    np.testing.assert_allclose(similarity_density(x, similarity="inverse_euclidean"),
                               density.information_density(x, "euclidean"), rtol=1e-5)


def test_centroid_approximation_is_close():
    rng = np.random.default_rng(1)
    centers = rng.standard_normal((20, 8)) * 5
    x = centers[rng.integers(20, size=6000)] + rng.standard_normal((6000, 8))
    exact = similarity_density(x, similarity="inverse_euclidean", exact=True)
    approx = similarity_density(x, similarity="inverse_euclidean", exact=False, n_clusters=64)
    np.testing.assert_allclose(approx, exact, rtol=0.05)
    assert np.corrcoef(approx, exact)[0, 1] > 0.99


def test_information_density_combines():
    x = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0]])
    scores = np.array([1.0, 0.5, 2.0])
    d = similarity_density(x)
    np.testing.assert_allclose(information_density(scores, x, beta=2.0), scores * d ** 2)
    np.testing.assert_allclose(information_density(scores, x, beta=0.0), scores)


@pytest.mark.parametrize(
    "args, kwargs, match",
    [
        ((np.ones(3), np.ones((3, 2))), {"beta": -1}, r"beta must be >= 0, got -1"),
        ((np.ones(2), np.ones((3, 2))), {}, r"scores has 2 items but embeddings has 3"),
        ((np.array([1.0, np.nan, 1.0]), np.ones((3, 2))), {}, r"scores must be finite"),
        ((np.ones(3), np.ones((3, 2))), {"similarity": "dot"},
         r"similarity must be one of 'cosine', 'inverse_euclidean', got 'dot'"),
        ((np.ones(3), np.zeros((3, 2))), {}, r"embeddings row 0 has zero norm"),
        ((np.ones(1), np.ones((1, 2))), {"include_self": False}, r"needs at least 2 items"),
    ],
)
def test_bad_input(args, kwargs, match):
    with pytest.raises(alcore.InvalidInputError, match=match):
        information_density(*args, **kwargs)


def test_exact_inverse_euclidean_working_memory_is_bounded():
    """Temporaries stay under alcore.density.WORK_BYTES (32 MB) beside the float64 copy of
    the points; the old 2048-row blocks allocated several 2048 x N float64 matrices (about
    100 MB each here)."""
    import tracemalloc

    from alcore.density import WORK_BYTES

    n, d = 6000, 8
    x = np.random.default_rng(3).standard_normal((n, d)).astype(np.float32)
    tracemalloc.start()
    try:
        similarity_density(x, similarity="inverse_euclidean", exact=True)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    inputs = 2 * n * d * 8 + 4 * n * 8  # float64 copies of the points and one block, outputs
    assert peak <= WORK_BYTES + inputs + 2**20, peak


def test_inverse_euclidean_on_uncentred_rows():
    rng = np.random.default_rng(4)
    x = (rng.uniform(10, 800, size=16) + rng.standard_normal((300, 16)) * 1e-3)
    x = x.astype(np.float32)
    got = similarity_density(x, similarity="inverse_euclidean", exact=True)
    np.testing.assert_allclose(got, brute(x, "inverse_euclidean", True), rtol=1e-9)


@settings(max_examples=40)
@given(st.sampled_from([np.float16, np.float32, np.float64, np.int64]),
       st.integers(1, 12), st.integers(1, 4), st.sampled_from([0.0, 100.0, 1e4]),
       st.booleans(), st.sampled_from(["cosine", "inverse_euclidean"]))
def test_any_dtype_shape_and_layout(dtype, n, d, offset, strided, similarity):
    rng = np.random.default_rng(n * 10 + d)
    x = (rng.standard_normal((n, 2 * d)) + offset).astype(dtype)
    x = x[:, ::2] if strided else x[:, :d]
    scores = np.linspace(0, 1, n)
    if dtype == np.int64:
        with pytest.raises(alcore.InvalidInputError, match="embeddings must have a floating"):
            information_density(scores, x, similarity=similarity)
        return
    got = information_density(scores, x, similarity=similarity)
    ref = np.maximum(brute(x.astype(np.float32), similarity, True), 0)
    np.testing.assert_allclose(got, scores * ref, rtol=1e-4, atol=1e-6)
