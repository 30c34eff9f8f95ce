"""Scores of Monte-Carlo / ensemble samples against the references and scikit-activeml."""

from __future__ import annotations

import numpy as np
import oracles
import pytest
from hypothesis import given
from strategies import sample_tensors

from alcore import scores

SAMPLE_NAMES = list(oracles.SAMPLE_SCORES)


@pytest.mark.parametrize("name", SAMPLE_NAMES)
@given(samples=sample_tensors())
def test_matches_reference(name, samples):
    got = getattr(scores, name)(samples)
    assert got.dtype == samples.dtype and got.shape == (samples.shape[1],)
    assert np.isfinite(got).all() and (got >= 0).all()
    atol = 5e-6 if samples.dtype == np.float32 else 1e-12
    np.testing.assert_allclose(got, oracles.SAMPLE_SCORES[name](samples), rtol=0, atol=atol)


@given(samples=sample_tensors(dtype=np.float64))
def test_list_of_members_equals_tensor(samples):
    members = [samples[t] for t in range(samples.shape[0])]
    np.testing.assert_array_equal(scores.bald(members), scores.bald(samples))


@given(samples=sample_tensors(dtype=np.float64))
def test_logits_and_normalize(samples):
    logits = np.log(np.clip(samples, 1e-300, None))
    np.testing.assert_allclose(scores.bald(logits, logits=True), oracles.bald(samples), atol=1e-9)
    np.testing.assert_allclose(scores.bald(samples * 4, normalize=True), oracles.bald(samples),
                               atol=1e-12)


def test_bald_large_block_and_threads():
    rng = np.random.default_rng(8)
    samples = rng.dirichlet(np.ones(10), size=(20, 30_000)).astype(np.float32)
    got = scores.bald(samples)
    np.testing.assert_allclose(got[:500], oracles.bald(samples[:, :500]), atol=5e-6)


def test_kl_consensus_equals_scikit_activeml():
    qbc = pytest.importorskip("skactiveml.pool._query_by_committee")
    rng = np.random.default_rng(9)
    # scikit-activeml clips probabilities at eps=1e-7 and renormalises: keep them above it.
    samples = rng.dirichlet(np.full(5, 2.0), size=(7, 200))
    samples = np.clip(samples, 1e-6, None)
    samples /= samples.sum(axis=2, keepdims=True)
    want = qbc.average_kl_divergence(samples.copy())
    np.testing.assert_allclose(scores.kl_consensus(samples), want, rtol=1e-9, atol=1e-12)


def test_votes_equal_scikit_activeml():
    qbc = pytest.importorskip("skactiveml.pool._query_by_committee")
    rng = np.random.default_rng(10)
    samples = rng.dirichlet(np.ones(4), size=(9, 300))
    votes = samples.argmax(axis=2).T  # (N, T) predicted classes
    np.testing.assert_allclose(scores.vote_entropy(samples),
                               qbc.vote_entropy(votes, classes=np.arange(4)), atol=1e-12)
    np.testing.assert_allclose(scores.variation_ratio(samples), qbc.variation_ratios(votes),
                               atol=1e-12)
