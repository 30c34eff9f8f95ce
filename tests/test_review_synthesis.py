"""Hostile review of alcore.synthesis and alcore._faiss.nearest_rows (issue 11): each test
pins a defect found in review, with plain-numpy references."""

from __future__ import annotations

import numpy as np
import pytest

import alcore
from alcore import _faiss


def brute(base: np.ndarray, queries: np.ndarray, k: int, own: bool) -> tuple[np.ndarray, ...]:
    """k nearest rows by (float64 distance of the float32 inputs, row), self excluded."""
    b64, q64 = base.astype(np.float64), queries.astype(np.float64)
    d = ((q64[:, None, :] - b64[None, :, :]) ** 2).sum(axis=2)
    if own:
        d[np.arange(len(queries)), np.arange(len(queries))] = np.inf
    rows = np.broadcast_to(np.arange(len(base)), d.shape)
    order = np.lexsort((rows, d), axis=-1)[:, :k]
    return np.take_along_axis(d, order, axis=1), order


def counting_searches(monkeypatch) -> list[int]:
    """Record the k of every FAISS brute-force search nearest_rows makes."""
    asked: list[int] = []
    real = _faiss._flat_nearest

    def spy(base, queries, k):
        asked.append(int(k) * len(queries))
        return real(base, queries, k)

    monkeypatch.setattr(_faiss, "_flat_nearest", spy)
    return asked


def test_nearest_rows_on_a_pool_of_duplicates_does_not_fetch_every_row(monkeypatch):
    """A pool where many rows are exact copies (blank images, padding embeddings) made
    every copy's certificate fail (its k-th and last candidates tie exactly) and the
    search double its candidates up to all N rows: O(N^2) memory, 15 s at N = 4000, out of
    memory at the 50 000 items validate searches in full. Copies are now searched once, as
    one distinct row."""
    rng = np.random.default_rng(0)
    base = np.concatenate([np.zeros((1500, 3)), rng.normal(size=(500, 3))]).astype(np.float32)
    base = base[rng.permutation(len(base))]
    asked = counting_searches(monkeypatch)
    sq, ids = _faiss.nearest_rows(base, base, 10, self_rows=np.arange(len(base)))
    ref_sq, ref_ids = brute(base, base, 10, True)
    np.testing.assert_array_equal(ids, ref_ids)
    np.testing.assert_array_equal(sq, ref_sq)
    # Candidates fetched in all: a few per query and neighbour, not N per query.
    assert sum(asked) <= 20 * 10 * len(base)


@pytest.mark.parametrize("own", [False, True])
@pytest.mark.parametrize("offset", [0.0, 1e4])
def test_nearest_rows_with_duplicates_ties_between_copies_and_others(own, offset):
    """Groups of copies tie with each other and with single rows at the k-th distance:
    the lower rows win wherever they are."""
    rng = np.random.default_rng(1)
    for trial in range(30):
        n = int(rng.integers(2, 60))
        d = int(rng.integers(1, 4))
        base = (rng.integers(-2, 3, size=(n, d)) + offset).astype(np.float32)
        queries = base if own else (rng.integers(-2, 3, size=(7, d)) + offset).astype(
            np.float32)
        k = int(rng.integers(1, (n - 1 if own else n) + 1))
        sq, ids = _faiss.nearest_rows(base, np.ascontiguousarray(queries), k,
                                      self_rows=np.arange(n) if own else None)
        ref_sq, ref_ids = brute(base, queries, k, own)
        np.testing.assert_array_equal(ids, ref_ids, err_msg=f"trial {trial}")
        np.testing.assert_array_equal(sq, ref_sq, err_msg=f"trial {trial}")
        assert ids.dtype == np.int64 and sq.dtype == np.float64


def test_validate_on_a_pool_of_copies_is_fast_and_flags_off_manifold(monkeypatch):
    pool = np.repeat(np.eye(3, dtype=np.float32), 1000, axis=0)
    asked = counting_searches(monkeypatch)
    report = alcore.synthesis.validate(np.array([[0.5, 0.5, 0.0]], dtype=np.float32), pool,
                                       k=3)
    assert report.max_distance == 0
    assert report.off_manifold.tolist() == [True]
    assert sum(asked) <= 20 * 3 * len(pool) + 3 * 3 * 10  # and the discriminator's
