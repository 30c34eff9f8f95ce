"""BADGE: k-means++ on gradient embeddings, against a reference that forms them.

Not compared with scikit-activeml: its `Badge` seeds k-means++ with the origin as a centre
(the first pick is then drawn by |g|^2 instead of taken as the largest), a deliberate
difference documented in `alcore.diversity.badge`; the reference below follows the paper.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import alcore
from alcore.diversity import badge


def reference(probs, h, k, labeled, seed):
    """Materialise g = (onehot(argmax p) - p) ⊗ h and run the same k-means++ seeding."""
    probs = probs.astype(np.float64)
    h = h.astype(np.float64)
    n = len(probs)
    a = -probs
    a[np.arange(n), probs.argmax(axis=1)] += 1
    g = (a[:, :, None] * h[:, None, :]).reshape(n, -1)
    rng = np.random.default_rng(seed)
    available = np.ones(n, dtype=bool)
    available[list(labeled)] = False
    norms = np.where(available, (g ** 2).sum(axis=1), -1)
    picks = [int(np.argmax(norms))]
    nearest = np.full(n, np.inf)
    for _ in range(k - 1):
        c = picks[-1]
        nearest = np.minimum(nearest, ((g - g[c]) ** 2).sum(axis=1))
        available[c] = False
        weights = np.where(available, nearest, 0.0)
        if weights.sum() > 0:
            cumulative = np.cumsum(weights)
            pick = int(np.searchsorted(cumulative, rng.random() * cumulative[-1], side="right"))
            pick = min(pick, n - 1)
            while not available[pick] or weights[pick] == 0:
                pick -= 1
        else:
            pick = int(np.argmax(available))
        picks.append(pick)
    return np.array(picks)


@settings(max_examples=40)
@given(st.integers(2, 60), st.integers(2, 5), st.integers(1, 6), st.integers(0, 2**31),
       st.data())
def test_matches_materialised_reference(n, c, d, seed, data):
    rng = np.random.default_rng(seed)
    probs = rng.dirichlet(np.ones(c), size=n)
    h = rng.standard_normal((n, d))
    labeled = data.draw(st.lists(st.integers(0, n - 1), unique=True, max_size=n // 2))
    k = data.draw(st.integers(1, n - len(labeled)))
    got = badge(probs, h, k, labeled=labeled or None, seed=seed)
    np.testing.assert_array_equal(got, reference(probs, h, k, labeled, seed))
    assert len(set(got.tolist())) == k and not set(got.tolist()) & set(labeled)


def test_duplicates_are_left_for_last():
    probs = np.array([[0.6, 0.4]] * 4)
    h = np.ones((4, 3))
    # All gradients are equal: after the first pick every distance is 0.
    np.testing.assert_array_equal(badge(probs, h, 4), [0, 1, 2, 3])


def test_logits_equal_softmax():
    rng = np.random.default_rng(1)
    z = rng.standard_normal((200, 5))
    p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    h = rng.standard_normal((200, 8))
    np.testing.assert_array_equal(badge(z, h, 20, logits=True), badge(p, h, 20))


def test_scale_runs_without_the_gradient_matrix():
    rng = np.random.default_rng(2)
    probs = rng.dirichlet(np.ones(10), size=100_000).astype(np.float32)
    h = rng.standard_normal((100_000, 128)).astype(np.float32)
    picks = badge(probs, h, 50)
    assert len(np.unique(picks)) == 50


@pytest.mark.parametrize(
    "args, kwargs, match",
    [
        ((np.full((3, 2), 0.5), np.zeros((4, 2)), 1), {},
         r"embeddings has 4 rows but probs has 3"),
        ((np.full((3, 2), 0.7), np.zeros((3, 2)), 1), {}, r"probs rows must sum to 1"),
        ((np.full((3, 2), 0.5), np.zeros((3, 2)), 3), {"labeled": [0]},
         r"k=3 exceeds the 2 items that can be picked"),
        ((np.full((3, 2), 0.5), np.zeros((3, 2)), 2), {"labeled": [0], "exclude": [1]},
         r"k=2 exceeds the 1 items that can be picked \(3 items, 1 labeled, 1 excluded\)"),
    ],
)
def test_bad_input(args, kwargs, match):
    with pytest.raises(alcore.InvalidInputError, match=match):
        badge(*args, **kwargs)


def test_progress():
    rng = np.random.default_rng(3)
    calls = []
    badge(rng.dirichlet(np.ones(3), size=50), rng.standard_normal((50, 4)), 7,
          progress=lambda done, total: calls.append((done, total)))
    assert calls == [(i, 7) for i in range(1, 8)]


def test_duplicates_far_from_the_origin_weigh_exactly_zero():
    """Equal gradients with embeddings far from the origin: the float64 expanded form leaves
    rounding noise where the distance is 0; the exact re-decision leaves duplicates for
    last, lowest index first."""
    rng = np.random.default_rng(5)
    h_row = rng.uniform(300, 800, size=24)
    probs = np.tile(rng.dirichlet(np.ones(4)), (6, 1))
    h = np.tile(h_row, (6, 1))
    distinct = rng.standard_normal((3, 24)) * 50 + h_row
    probs = np.vstack([probs, rng.dirichlet(np.ones(4), size=3)])
    h = np.vstack([h, distinct])
    got = badge(probs, h, 9, seed=3)
    assert set(got[:4].tolist()) == {got[0], 6, 7, 8}  # the distinct ones first
    np.testing.assert_array_equal(got[4:], sorted(set(range(6)) - {int(got[0])}))


@st.composite
def badge_inputs(draw):
    n = draw(st.integers(1, 25))
    c = draw(st.sampled_from([2, 3, 5]))
    d = draw(st.integers(1, 4))
    seed = draw(st.integers(0, 2**16))
    rng = np.random.default_rng(seed)
    probs = rng.dirichlet(np.ones(c), size=n)
    if draw(st.booleans()):
        probs = np.round(probs, 1)
        probs[:, 0] = 1 - probs[:, 1:].sum(axis=1)
    h = rng.standard_normal((n, d)) + draw(st.sampled_from([0.0, 500.0, -3e3]))
    dtype = draw(st.sampled_from([np.float16, np.float32, np.float64, np.int64]))
    broken = draw(st.sampled_from([None, "nan", "negative", "sum"]))
    if broken == "nan":
        probs[0, 0] = np.nan
    elif broken == "negative":
        probs[0] = [-0.5, 1.5] + [0.0] * (c - 2)
    elif broken == "sum":
        probs[0, 0] += 0.5
    strided = draw(st.booleans())
    return probs, h, dtype, strided, seed


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@settings(max_examples=60)
@given(badge_inputs(), st.data())
def test_any_input_is_a_correct_result_or_invalid_input(case, data):
    probs, h, dtype, strided, seed = case
    n = len(probs)
    p = probs.astype(dtype)
    emb = np.repeat(h, 2, axis=1)[:, ::2] if strided else h
    labeled = data.draw(st.lists(st.integers(0, n - 1), unique=True, max_size=n - 1))
    k = data.draw(st.integers(1, n - len(labeled)))
    valid = dtype != np.int64 and np.isfinite(p).all() and (p >= 0).all() and (
        np.abs(p.astype(np.float64).sum(axis=1) - 1) <= 1e-3).all()
    if not valid:
        with pytest.raises(alcore.InvalidInputError, match="probs"):
            badge(p, emb, k, labeled=labeled or None, seed=seed)
        return
    got = badge(p, emb, k, labeled=labeled or None, seed=seed)
    assert got.dtype == np.int64 and len(set(got.tolist())) == k
    assert not set(got.tolist()) & set(labeled)
    if dtype == np.float64:
        np.testing.assert_array_equal(got, reference(p, emb.astype(np.float32), k, labeled,
                                                     seed))


def gradients(probs, h):
    """The materialised gradient embeddings g = (onehot(argmax p) - p) ⊗ h, float64."""
    probs = probs.astype(np.float64)
    a = -probs
    a[np.arange(len(probs)), probs.argmax(axis=1)] += 1
    return (a[:, :, None] * h.astype(np.float64)[:, None, :]).reshape(len(probs), -1)


@settings(max_examples=30)
@given(st.integers(2, 40), st.integers(2, 4), st.integers(1, 5), st.integers(0, 2**31),
       st.sampled_from([0.0, 500.0]), st.data())
def test_select_reasons_give_each_picks_d2_weight(n, c, d, seed, offset, data):
    """Each BADGE pick's D^2 (its squared gradient distance to the nearest earlier pick when
    it was drawn) and |g|^2, recomputed here from the materialised gradients."""
    rng = np.random.default_rng(seed)
    probs = rng.dirichlet(np.ones(c), size=n)
    h = (rng.standard_normal((n, d)) + offset).astype(np.float32)
    labeled = data.draw(st.lists(st.integers(0, n - 1), unique=True, max_size=n // 2))
    k = data.draw(st.integers(1, n - len(labeled)))
    got = alcore.select(probs, k, embeddings=h, labeled=labeled or None, diversity="badge",
                        seed=seed)
    np.testing.assert_array_equal(got.indices, reference(probs, h, k, labeled, seed))
    g = gradients(probs, h)
    picks = got.indices
    want_d2 = np.array([np.inf] + [((g[picks[:i]] - g[picks[i]]) ** 2).sum(axis=1).min()
                                   for i in range(1, k)])
    want_norm = (g[picks] ** 2).sum(axis=1)
    scale = float(want_norm.max())
    d2 = got.components["gradient_sq_distance"]
    assert d2.dtype == np.float64 and d2[0] == np.inf
    np.testing.assert_allclose(d2[1:], want_d2[1:], rtol=1e-9, atol=1e-12 * scale)
    np.testing.assert_allclose(got.components["gradient_sq_norm"], want_norm, rtol=1e-12)
    assert f"the largest gradient embedding, |g|^2 {want_norm[0]:.6g}" in got.reasons[0]
    for i in range(1, k):
        assert f"weight D^2 {d2[i]:.6g} (squared gradient distance" in got.reasons[i]
        np.testing.assert_allclose(float(got.reasons[i].split("D^2 ")[1].split(" ")[0]),
                                   want_d2[i], rtol=1e-5, atol=1e-12 * scale)


def test_select_duplicates_have_zero_weight():
    probs = np.array([[0.6, 0.4]] * 4)
    got = alcore.select(probs, 3, embeddings=np.ones((4, 3)), diversity="badge")
    np.testing.assert_array_equal(got.components["gradient_sq_distance"], [np.inf, 0, 0])
    assert "weight D^2 0 (" in got.reasons[1]
