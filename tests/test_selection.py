"""top_k and the fused select_top: exact, ties to the lower index, exclude honoured."""

from __future__ import annotations

import numpy as np
import oracles
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from strategies import prob_matrices, sample_tensors

import alcore
from alcore import scores
from alcore._top import select_top_with_scores


@st.composite
def scores_and_k(draw):
    n = draw(st.integers(1, 300))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    values = draw(hnp.arrays(dtype, n, elements=st.sampled_from([0.0, 0.5, 1.0, -2.0, 3.25])
                             | st.floats(-10, 10, width=32)))
    exclude = draw(st.none() | hnp.arrays(np.bool_, n))
    available = n if exclude is None else int((~exclude).sum())
    if available == 0:
        exclude = None
        available = n
    k = draw(st.integers(1, available))
    return values, k, exclude


@given(scores_and_k())
def test_top_k_matches_reference(case):
    values, k, exclude = case
    got = alcore.top_k(values, k, exclude=exclude)
    assert got.dtype == np.int64
    np.testing.assert_array_equal(got, oracles.top_k(values, k, exclude))


@given(scores_and_k())
def test_exclude_as_indices_equals_mask(case):
    values, k, exclude = case
    if exclude is None:
        return
    np.testing.assert_array_equal(alcore.top_k(values, k, exclude=np.flatnonzero(exclude)),
                                  alcore.top_k(values, k, exclude=exclude))


@pytest.mark.parametrize("score", list(oracles.SCORES))
@given(probs=prob_matrices(), data=st.data())
def test_select_top_equals_top_k_of_scores(score, probs, data):
    n = probs.shape[0]
    exclude = data.draw(st.none() | hnp.arrays(np.bool_, n))
    available = n if exclude is None else int((~exclude).sum())
    if available == 0:
        exclude, available = None, n
    k = data.draw(st.integers(1, available))
    all_scores = getattr(scores, score)(probs)
    want = alcore.top_k(all_scores, k, exclude=exclude)
    np.testing.assert_array_equal(alcore.select_top(probs, k, score=score, exclude=exclude), want)
    np.testing.assert_array_equal(alcore.select_top(probs, k, score=score, labeled=exclude), want)
    indices, top = select_top_with_scores(probs, k, score=score, exclude_mask=exclude)
    np.testing.assert_array_equal(indices, want)
    assert top.dtype == probs.dtype
    np.testing.assert_array_equal(top, all_scores[want])
    logits = np.log(np.clip(probs, 1e-30, None))
    np.testing.assert_array_equal(
        alcore.select_top(logits, k, logits=True, score=score, exclude=exclude),
        alcore.top_k(getattr(scores, score)(logits, logits=True), k, exclude=exclude))


@pytest.mark.parametrize("score", list(oracles.SAMPLE_SCORES))
@given(samples=sample_tensors())
def test_select_top_on_samples(score, samples):
    k = max(1, samples.shape[1] // 2)
    every = getattr(scores, score)(samples)
    np.testing.assert_array_equal(alcore.select_top(samples, k, score=score),
                                  alcore.top_k(every, k))
    indices, top = select_top_with_scores(samples, k, score=score)
    np.testing.assert_array_equal(top, every[indices])


def test_all_ties_return_lowest_indices():
    probs = np.full((1000, 4), 0.25, dtype=np.float32)
    for score in oracles.SCORES:
        np.testing.assert_array_equal(alcore.select_top(probs, 10, score=score), np.arange(10))
    labeled = np.zeros(1000, dtype=bool)
    labeled[:5] = True
    np.testing.assert_array_equal(alcore.select_top(probs, 3, exclude=labeled), [5, 6, 7])


@pytest.mark.parametrize("threads", [1, 2, 3, 7])
@pytest.mark.parametrize("k", [1, 1000, 200_000])
def test_large_selection_matches_reference_at_every_thread_count(threads, k):
    rng = np.random.default_rng(11)
    # Rounded values force many ties across thread chunk boundaries.
    probs = np.round(rng.dirichlet(np.ones(10), size=200_000), 2)
    probs /= probs.sum(axis=1, keepdims=True)
    probs = probs.astype(np.float32)
    exclude = rng.random(200_000) < 0.01
    k = min(k, int((~exclude).sum()))
    margin = scores.margin(probs)
    want = np.lexsort((np.arange(len(margin)), -margin.astype(np.float64)))
    want = want[~exclude[want]][:k]
    saved = alcore.get_num_threads()
    alcore.set_num_threads(threads)
    try:
        np.testing.assert_array_equal(alcore.select_top(probs, k, exclude=exclude), want)
        np.testing.assert_array_equal(alcore.top_k(margin, k, exclude=exclude), want)
    finally:
        alcore.set_num_threads(saved)


def test_k_equal_to_available_returns_a_full_ranking():
    values = np.array([0.1, 0.9, 0.5, 0.9, 0.0])
    np.testing.assert_array_equal(alcore.top_k(values, 5), [1, 3, 2, 0, 4])
    np.testing.assert_array_equal(alcore.top_k(values, 3, exclude=[1, 4]), [3, 2, 0])


def test_labeled_and_exclude_together_and_skactiveml_y():
    values = np.array([0.9, 0.8, 0.7, 0.6, 0.5])
    np.testing.assert_array_equal(alcore.top_k(values, 2, labeled=[0], exclude=[2]), [1, 3])
    y = np.array([1.0, np.nan, np.nan, 0.0, np.nan])  # scikit-activeml: NaN = unlabeled
    np.testing.assert_array_equal(alcore.top_k(values, 3, labeled=y), [1, 2, 4])
    probs = np.column_stack([1 - values / 2, values / 2])
    np.testing.assert_array_equal(alcore.select_top(probs, 3, labeled=y),
                                  oracles.top_k(oracles.margin(probs), 3,
                                                ~np.isnan(y)))
