"""spread: a ranking thinned by a minimum distance, against the sequential definition."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import alcore
from alcore.diversity import spread


def as_scores(ranked, n):
    """Scores whose descending walk is ``ranked``, and the items left out (to exclude)."""
    scores = np.zeros(n)
    scores[np.asarray(ranked, dtype=np.int64)] = np.arange(len(ranked), 0, -1)
    return scores, np.setdiff1d(np.arange(n), ranked)


def sequential(ranked, x, k, radius, labeled):
    """The definition: every candidate in order against everything taken or labeled."""
    x = x.astype(np.float64)
    anchors = [x[i] for i in labeled]
    taken = []
    for i in ranked:
        if i in labeled:
            continue
        if all(((x[i] - a) ** 2).sum() >= radius * radius for a in anchors):
            taken.append(int(i))
            anchors.append(x[i])
            if len(taken) == k:
                break
    return np.array(taken, dtype=np.int64)


@settings(max_examples=60)
@given(
    hnp.arrays(np.float32, st.tuples(st.integers(1, 50), st.integers(1, 4)),
               elements=st.integers(-3, 3).map(float)),
    st.data(),
)
def test_matches_sequential_definition(x, data):
    n = len(x)
    ranked = np.array(data.draw(st.permutations(range(n))))[: data.draw(st.integers(1, n))]
    labeled = data.draw(st.lists(st.integers(0, n - 1), unique=True, max_size=3))
    k = data.draw(st.integers(1, n))
    radius = data.draw(st.sampled_from([0.0, 1.0, 1.5, 2.0, np.sqrt(5.0), 4.0]))
    scores, left_out = as_scores(ranked, n)
    got = spread(scores, x, k, min_distance=radius, labeled=labeled or None, exclude=left_out)
    np.testing.assert_array_equal(got, sequential(ranked, x, k, radius, set(labeled)))


def test_many_batches():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((20_000, 8)).astype(np.float32)
    ranked = rng.permutation(20_000)
    labeled = rng.choice(20_000, 50, replace=False)
    scores, _ = as_scores(ranked, 20_000)
    got = spread(scores, x, 300, min_distance=2.5, labeled=labeled)
    want = sequential(ranked, x, 300, 2.5, set(labeled.tolist()))
    np.testing.assert_array_equal(got, want)


def test_zero_distance_keeps_the_ranking_and_runs_out():
    x = np.zeros((5, 2))
    scores = np.array([0.0, 2.0, 0.0, 3.0, 1.0])
    np.testing.assert_array_equal(spread(scores, x, 2, min_distance=0.0), [3, 1])
    np.testing.assert_array_equal(spread(scores, x, 10, min_distance=1.0), [3])


def test_equal_scores_go_to_the_lower_index():
    x = np.arange(6, dtype=np.float32)[:, None] * 10
    got = spread(np.array([1.0, 2.0, 2.0, 1.0, 2.0, 0.0]), x, 6, min_distance=1.0)
    np.testing.assert_array_equal(got, [1, 2, 4, 0, 3, 5])


@pytest.mark.parametrize(
    "args, match",
    [
        (([1.0, 2.0], np.zeros((3, 2)), 1, 1.0),
         r"scores must be 1-D with one score per item, shape \(3,\), got shape \(2,\)"),
        (([1.0, np.nan, 0.0], np.zeros((3, 2)), 1, 1.0), r"scores must be finite: scores\[1\]"),
        (([1, 2, 3], np.zeros((3, 2)), 1, 1.0), r"scores must have a floating dtype"),
        (([1.0, 2.0, 3.0], np.zeros((3, 2)), 1, -1.0), r"min_distance must be >= 0, got -1.0"),
        (([1.0, 2.0, 3.0], np.zeros((3, 2)), 1, "far"), r"min_distance must be a number"),
        (([1.0, 2.0, 3.0], np.zeros((3, 2)), 0, 1.0), r"k must be a positive integer"),
    ],
)
def test_bad_input(args, match):
    scores, emb, k, radius = args
    with pytest.raises(alcore.InvalidInputError, match=match):
        spread(np.asarray(scores), emb, k, min_distance=radius)
