"""Bad input: InvalidInputError (also a ValueError) naming the argument and the fix."""

from __future__ import annotations

import numpy as np
import pytest

import alcore
from alcore import scores

P = np.array([[0.2, 0.8], [0.5, 0.5], [0.9, 0.1]])
ROW_SCORES = [scores.least_confidence, scores.margin, scores.ratio, scores.entropy]


def everything(probs=None, logits=None, **kw):
    """Every public entry point that takes an (N, C) matrix."""
    calls = [lambda f=f: f(probs, logits=logits, **kw) for f in ROW_SCORES]
    calls.append(lambda: alcore.select_top(1, probs, logits, **kw))
    return calls


def assert_all_raise(calls, match):
    for call in calls:
        with pytest.raises(alcore.InvalidInputError, match=match):
            call()


def test_error_types():
    assert issubclass(alcore.InvalidInputError, alcore.AlcoreError)
    assert issubclass(alcore.InvalidInputError, ValueError)


@pytest.mark.parametrize("bad, where", [(np.nan, "nan"), (np.inf, "inf"), (-np.inf, "-inf")])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_non_finite_probs(bad, where, dtype):
    probs = P.astype(dtype)
    probs[2, 1] = bad
    assert_all_raise(everything(probs),
                     rf"probs must be finite: probs row 2, column 1 is {where}; replace NaN/inf")


def test_non_finite_logits():
    logits = np.zeros((40, 3))
    logits[37, 0] = np.nan
    assert_all_raise(everything(logits=logits),
                     r"logits must be finite: logits row 37, column 0 is nan")


def test_negative_probability():
    probs = np.array([[0.5, 0.5], [1.2, -0.2]])
    assert_all_raise(everything(probs),
                     r"probs must lie in \[0, 1\]: probs row 1, column 0 is 1\.2; pass logits=")
    assert_all_raise(everything(np.array([[0.5, 0.5], [-0.2, 1.0]]) * [1, 1]),
                     r"probs must lie in \[0, 1\]: probs row 1, column 0 is -0\.2")


def test_above_one():
    assert_all_raise(everything(np.array([[0.0, 1.5]])),
                     r"probs row 0, column 1 is 1\.5; pass logits= if these are raw model "
                     r"outputs, or normalize=True")


def test_rows_not_summing_to_one():
    probs = np.array([[0.2, 0.8], [0.4, 0.53]])
    assert_all_raise(everything(probs),
                     r"probs rows must sum to 1 \(probs row 1 sums to 0\.93, atol=0\.001\); "
                     r"pass logits= for raw model outputs, normalize=True to renormalise")
    # Within the tolerance, or renormalised: accepted.
    scores.margin(probs, atol=0.1)
    np.testing.assert_allclose(scores.margin(probs, normalize=True),
                               [0.4, 1 - (0.53 - 0.4) / 0.93])


def test_zero_row_cannot_be_renormalised():
    assert_all_raise(everything(np.array([[0.2, 0.8], [0.0, 0.0]]), normalize=True),
                     r"probs rows must have a positive sum to be renormalised \(probs row 1 "
                     r"sums to 0\)")


def test_first_offending_row_is_reported_at_any_size():
    probs = np.full((300_000, 4), 0.25, dtype=np.float32)
    probs[250_000, 3] = np.nan
    probs[260_000, 0] = -1
    for threads in (1, 2):
        alcore.set_num_threads(threads)
        with pytest.raises(alcore.InvalidInputError, match="probs row 250000, column 3 is nan"):
            alcore.select_top(5, probs)
    alcore.set_num_threads(2)


@pytest.mark.parametrize(
    "value, match",
    [
        (np.array([0.2, 0.8]), r"probs must be 2-D with shape \(N items, C classes\), got shape "
                               r"\(2,\) \(a single row: probs\[None, :\]\)"),
        (np.ones((2, 2, 2)) / 2, r"probs must be 2-D .* got shape \(2, 2, 2\)"),
        (np.ones((3, 1)), r"probs must have at least 2 classes \(columns\), got shape \(3, 1\); "
                          r"for a binary model with one output column"),
        (np.ones((0, 3)), r"probs has no items \(shape \(0, 3\)\); pass at least one row"),
        (np.array([[1, 0], [0, 1]]), r"probs must have a floating dtype \(float32 or float64\), "
                                     r"got int64; convert with probs\.astype\(numpy\.float32\)"),
        (np.array([[True, False]]), r"got bool; pass probabilities or scores, not a boolean"),
        (np.array([[0.5 + 0j, 0.5]]), r"got complex128; pass a real array"),
        (np.array([[0.5, "a"]], dtype=object), r"got object; mixed or ragged input\?"),
        ([[0.5, 0.5], [1.0]], r"probs could not be converted to an array"),
        (None, r"pass exactly one of probs= or logits="),
    ],
)
def test_shapes_and_dtypes(value, match):
    calls = [lambda f=f: f(value) for f in ROW_SCORES]
    calls.append(lambda: alcore.select_top(1, value))
    assert_all_raise(calls, match)


def test_probs_and_logits_together():
    assert_all_raise(everything(P, P), r"pass exactly one of probs= or logits=")


@pytest.mark.parametrize(
    "k, match",
    [
        (0, r"k must be a positive integer, got 0"),
        (-3, r"k must be a positive integer, got -3"),
        (1.5, r"k must be a positive integer, got float 1\.5"),
        (True, r"k must be a positive integer, got True"),
        (4, r"k=4 exceeds the 3 items available \(3 items, 0 excluded\); lower k"),
    ],
)
def test_bad_k(k, match):
    assert_all_raise([lambda: alcore.select_top(k, P), lambda: alcore.top_k(P[:, 0], k)], match)


def test_k_counts_excluded_items():
    assert_all_raise([lambda: alcore.select_top(2, P, exclude=[0, 2]),
                      lambda: alcore.top_k(P[:, 0], 2, exclude=np.array([True, False, True]))],
                     r"k=2 exceeds the 1 items available \(3 items, 2 excluded\)")


@pytest.mark.parametrize(
    "exclude, match",
    [
        (np.array([True, False]), r"exclude mask has length 2 but probs has 3 items; pass a "
                                  r"boolean mask of length 3 or an index array"),
        ([0, 3], r"exclude holds index 3, outside \[0, 3\) for probs with 3 items"),
        ([-1], r"exclude holds index -1, outside \[0, 3\).*negative indices are not wrapped"),
        ([1, 1], r"exclude holds index 1 2 times; pass unique indices"),
        (np.array([0.0, 1.0]), r"exclude must be a boolean mask or an integer index array, "
                               r"got dtype float64"),
        (np.zeros((3, 1), dtype=bool), r"exclude must be 1-D"),
    ],
)
def test_bad_exclude(exclude, match):
    with pytest.raises(alcore.InvalidInputError, match=match):
        alcore.select_top(1, P, exclude=exclude)
    with pytest.raises(alcore.InvalidInputError, match=match.replace("probs", "scores")):
        alcore.top_k(P[:, 0], 1, exclude=exclude)


def test_bad_scores_for_top_k():
    with pytest.raises(alcore.InvalidInputError,
                       match=r"scores must be finite: scores\[1\] is nan"):
        alcore.top_k(np.array([0.1, np.nan, 0.3]), 1)
    with pytest.raises(alcore.InvalidInputError, match=r"scores must be 1-D with shape \(N,\)"):
        alcore.top_k(P, 1)
    with pytest.raises(alcore.InvalidInputError, match=r"scores is empty"):
        alcore.top_k(np.array([]), 1)
    with pytest.raises(alcore.InvalidInputError, match=r"scores must have a floating dtype"):
        alcore.top_k(np.array([1, 2, 3]), 1)


def test_bad_parameters():
    with pytest.raises(alcore.InvalidInputError, match=r"score must be one of 'least_confidence'"):
        alcore.select_top(1, P, score="uncertainty")
    with pytest.raises(alcore.InvalidInputError, match=r"atol must be in \[0, 1\), got -1"):
        scores.margin(P, atol=-1)
    with pytest.raises(alcore.InvalidInputError, match=r"atol must be a number, got 'x'"):
        scores.margin(P, atol="x")
    with pytest.raises(alcore.InvalidInputError, match=r"normalize must be True or False"):
        scores.margin(P, normalize="yes")
    with pytest.raises(alcore.InvalidInputError, match=r"return_scores must be True or False"):
        alcore.select_top(1, P, return_scores=1)
    with pytest.raises(alcore.InvalidInputError, match=r"n must be a positive integer, got 0"):
        alcore.set_num_threads(0)


SAMPLE_SCORES = [scores.bald, scores.variation_ratio, scores.vote_entropy, scores.kl_consensus]


@pytest.mark.parametrize(
    "value, match",
    [
        (np.ones((3, 2)) / 2, r"probs must be 3-D with shape \(T samples, N items, C classes\), "
                              r"got shape \(3, 2\); stack ensemble members"),
        (np.ones((0, 3, 2)), r"probs has no samples \(T = 0, shape \(0, 3, 2\)\)"),
        (np.ones((2, 0, 2)), r"probs has no items"),
        (np.ones((2, 3, 1)), r"probs must have at least 2 classes"),
        ([np.ones((3, 2)) / 2, np.ones((4, 2)) / 2],
         r"probs\[1\] has shape \(4, 2\) and dtype float64 but probs\[0\] has shape \(3, 2\)"),
        ([np.ones((3, 2)) / 2, np.ones((3, 3)) / 3], r"every sample must have the same"),
        ([], r"probs has no samples \(T = 0\)"),
        ([np.ones(3) / 3], r"each sample in probs must be 2-D"),
        (np.ones((2, 3, 2), dtype=int), r"probs must have a floating dtype"),
    ],
)
def test_bad_samples(value, match):
    assert_all_raise([lambda f=f: f(value) for f in SAMPLE_SCORES], match)


def test_invalid_sample_values_name_member_and_row():
    samples = np.full((3, 50, 4), 0.25)
    samples[2, 41, 1] = 0.5
    samples[1, 45, 0] = np.nan
    assert_all_raise([lambda f=f: f(samples) for f in SAMPLE_SCORES],
                     r"probs rows must sum to 1 \(probs\[2\] row 41 sums to 1\.25")
    logits = np.zeros((2, 5, 3))
    logits[1, 4, 2] = np.inf
    with pytest.raises(alcore.InvalidInputError,
                       match=r"logits must be finite: logits\[1\] row 4, column 2 is inf"):
        scores.bald(logits=logits)


def test_rejected_call_leaves_no_nan():
    probs = np.array([[0.5, 0.5], [np.nan, 1.0]])
    with pytest.raises(alcore.InvalidInputError):
        scores.entropy(probs)
