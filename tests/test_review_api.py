"""Hostile review of the issue-8 public API: each test pins a defect found in review."""

from __future__ import annotations

import numpy as np
import pytest

import alcore
from alcore import InvalidInputError
from alcore import diversity as D


def test_batch_sizer_huge_growth_neither_crashes_nor_half_records():
    # size * growth overflowed to inf and int(inf) raised OverflowError after the round
    # had been appended to the history.
    sizer = alcore.BatchSizer(1000, "plateau", size=10, growth=1e308, rounds=1,
                              max_fraction=1.0)
    sizer.record(10, 0.5)
    sizer.record(20, 0.5)  # no gain: the batch grows, capped at the pool
    assert sizer.next_size() == 1000
    assert len(sizer.history) == 2
    huge = alcore.BatchSizer(1000, "plateau", size=2**1100, rounds=1, max_fraction=1.0)
    huge.record(10, 0.5)
    huge.record(20, 0.5)
    assert huge.next_size() == 1000


def test_batch_sizer_pool_beyond_int64_is_refused():
    # min_fraction * pool_size raised OverflowError for a pool of 2**1100 items.
    with pytest.raises(InvalidInputError, match="pool_size must be <= "):
        alcore.BatchSizer(2**1100, "schedule", fraction=0.5)
    assert alcore.BatchSizer(np.int64(1000), "schedule", fraction=0.5).next_size() == 100


def test_spread_cosine_accepts_an_excluded_zero_row():
    # kcenter(metric="cosine", exclude=[0]) leaves a zero row 0 out; spread refused it
    # ("row 0 has zero norm ... drop it") although exclude= is how one drops it.
    rng = np.random.default_rng(0)
    emb = rng.normal(size=(8, 3)).astype(np.float32)
    emb[0] = 0.0
    scores = np.arange(8, 0, -1, dtype=np.float64)
    got = D.spread(scores, emb, 8, min_distance=0.0, metric="cosine", exclude=[0])
    assert got.tolist() == list(range(1, 8))
    with pytest.raises(InvalidInputError, match="row 0 has zero norm"):
        D.spread(scores, emb, 8, min_distance=0.0, metric="cosine", labeled=[0])
