"""Adaptive batch sizing."""

from __future__ import annotations

import numpy as np
import pytest

import alcore
from alcore.batching import BatchSizer


def test_fixed_and_bounds():
    assert BatchSizer(10_000, size=50).next_size() == 50
    assert BatchSizer(10_000, size=5000, max_fraction=0.1).next_size() == 1000
    assert BatchSizer(10_000, size=1, min_fraction=0.01).next_size() == 100
    assert BatchSizer(10_000).next_size() == 100  # 1 % by default


def test_schedule_per_round():
    sizer = BatchSizer(1000, "schedule", fraction=[0.01, 0.02, 0.05])
    sizes = []
    for labels in (10, 30, 80, 130):
        sizes.append(sizer.next_size())
        sizer.record(labels, 0.5)
    assert sizes == [10, 20, 50, 50]


def test_plateau_grows_when_learning_flattens():
    sizer = BatchSizer(100_000, "plateau", size=100, min_gain=1e-4, rounds=2)
    curve = [(100, 0.50), (200, 0.60), (300, 0.68), (400, 0.70), (500, 0.701), (600, 0.7015)]
    sizes = []
    for labels, acc in curve:
        sizer.record(labels, acc)
        sizes.append(sizer.next_size())
    assert sizes[:3] == [100, 100, 100]  # steep: 1e-3 per label
    assert sizes[-1] > sizes[2] and sizes == sorted(sizes)
    assert max(sizes) <= 10_000


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"policy": "greedy"}, r"policy must be one of 'fixed'"),
        ({"policy": "schedule"}, r"policy 'schedule' needs fraction="),
        ({"policy": "schedule", "fraction": 1.5}, r"fraction must be <= 1, got 1\.5; each "
                                                  r"fraction of the pool must be in \(0, 1\]"),
        ({"policy": "schedule", "fraction": [0.1, 0.0]}, r"fraction must be > 0, got 0\.0"),
        ({"policy": "schedule", "fraction": []}, r"fraction is empty"),
        ({"policy": "schedule", "fraction": "0.1"}, r"fraction must be a number, got '0\.1'"),
        ({"fraction": 0.1}, r"fraction= is used by policy 'schedule' only"),
        ({"min_fraction": 0.5, "max_fraction": 0.1}, r"need 0 <= min_fraction"),
        ({"min_fraction": "a"}, r"min_fraction must be a number, got 'a'"),
        ({"max_fraction": 2}, r"max_fraction must be <= 1, got 2"),
        ({"max_fraction": None}, r"max_fraction must be a number, got NoneType None"),
        ({"growth": 1.0}, r"growth must be > 1, got 1\.0"),
        ({"growth": np.nan}, r"growth must be finite, got nan"),
        ({"min_gain": -1}, r"min_gain must be >= 0, got -1"),
        ({"size": 0}, r"size must be a positive integer"),
        ({"size": 2.5}, r"size must be a positive integer, got float 2\.5"),
        ({"rounds": "2"}, r"rounds must be a positive integer"),
        ({"policy": None}, r"policy must be one of 'fixed', 'schedule', 'plateau', got None"),
    ],
)
def test_bad_configuration(kwargs, match):
    with pytest.raises(alcore.InvalidInputError, match=match):
        BatchSizer(1000, **kwargs)


def test_bad_records():
    sizer = BatchSizer(1000)
    sizer.record(10, 0.5)
    with pytest.raises(alcore.InvalidInputError, match=r"n_labeled went down"):
        sizer.record(5, 0.6)
    with pytest.raises(alcore.InvalidInputError, match=r"accuracy must be <= 1, got 1\.5"):
        sizer.record(20, 1.5)
    with pytest.raises(alcore.InvalidInputError, match=r"accuracy must be a number, got '0\.5'"):
        sizer.record(20, "0.5")
    with pytest.raises(alcore.InvalidInputError, match=r"n_labeled must be an integer, got "
                                                       r"float 20\.0"):
        sizer.record(20.0, 0.5)
    with pytest.raises(alcore.InvalidInputError, match=r"n_labeled must be >= 0, got -1"):
        sizer.record(-1, 0.5)
    assert sizer.history == [(10, 0.5)]  # rejected records leave no trace


def test_numpy_numbers_are_accepted():
    """BatchSizer.record(labeled.sum(), acc) with numpy scalars, as a training loop has."""
    labeled = np.zeros(1000, dtype=bool)
    labeled[:30] = True
    sizer = BatchSizer(np.int64(1000), "plateau", size=np.int32(10), growth=np.float32(2.0),
                       min_gain=np.float64(1e-3), rounds=np.int64(1),
                       max_fraction=np.array(0.5))
    sizer.record(labeled.sum(), np.float32(0.5))
    labeled[:40] = True
    sizer.record(labeled.sum(), np.array(0.5001))
    assert sizer.history == [(30, 0.5), (40, pytest.approx(0.5001))]
    assert sizer.next_size() == 20  # gained 1e-5 per label < min_gain: doubled
    schedule = BatchSizer(1000, "schedule", fraction=np.array([0.01, 0.02]))
    assert schedule.next_size() == 10
