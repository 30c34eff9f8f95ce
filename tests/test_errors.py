"""Bad input: InvalidInputError (also a ValueError) naming the argument and the fix."""

from __future__ import annotations

import numpy as np
import pytest

import alcore
from alcore import scores

P = np.array([[0.2, 0.8], [0.5, 0.5], [0.9, 0.1]])
ROW_SCORES = [scores.least_confidence, scores.margin, scores.ratio, scores.entropy]


def everything(values, logits=False, **kw):
    """Every public entry point that takes an (N, C) matrix."""
    calls = [lambda f=f: f(values, logits=logits, **kw) for f in ROW_SCORES]
    calls.append(lambda: alcore.select_top(values, 1, logits=logits, **kw))
    calls.append(lambda: alcore.select(values, 1, logits=logits, **kw))
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
    assert_all_raise(everything(logits, logits=True),
                     r"logits must be finite: logits row 37, column 0 is nan")


def test_negative_probability():
    probs = np.array([[0.5, 0.5], [1.2, -0.2]])
    assert_all_raise(everything(probs),
                     r"probs must lie in \[0, 1\]: probs row 1, column 0 is 1\.2; pass logits=True")
    assert_all_raise(everything(np.array([[0.5, 0.5], [-0.2, 1.0]]) * [1, 1]),
                     r"probs must lie in \[0, 1\]: probs row 1, column 0 is -0\.2")


def test_above_one():
    assert_all_raise(everything(np.array([[0.0, 1.5]])),
                     r"probs row 0, column 1 is 1\.5; pass logits=True if these are raw model "
                     r"outputs, or normalize=True")


def test_rows_not_summing_to_one():
    probs = np.array([[0.2, 0.8], [0.4, 0.53]])
    assert_all_raise(everything(probs),
                     r"probs rows must sum to 1 \(probs row 1 sums to 0\.93, atol=0\.001\); "
                     r"pass logits=True for raw model outputs, normalize=True to renormalise")
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
    saved = alcore.get_num_threads()
    try:
        for threads in (1, 2, 3, 7):
            alcore.set_num_threads(threads)
            with pytest.raises(alcore.InvalidInputError,
                               match="probs row 250000, column 3 is nan"):
                alcore.select_top(probs, 5)
    finally:
        alcore.set_num_threads(saved)


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
        (None, r"probs is None; pass an \(N, C\) array of probabilities"),
    ],
)
def test_shapes_and_dtypes(value, match):
    calls = [lambda f=f: f(value) for f in ROW_SCORES]
    calls.append(lambda: alcore.select_top(value, 1))
    calls.append(lambda: alcore.select(value, 1))
    assert_all_raise(calls, match)


def test_logits_must_be_a_flag():
    """The old second-array form (logits=z) is refused with the new spelling."""
    assert_all_raise(everything(P, P), r"logits must be True or False, got array")


@pytest.mark.parametrize(
    "k, match",
    [
        (0, r"k must be a positive integer, got 0"),
        (-3, r"k must be a positive integer, got -3"),
        (1.5, r"k must be a positive integer, got float 1\.5"),
        (True, r"k must be a positive integer, got True"),
        (4, r"k=4 exceeds the 3 items that can be picked \(3 items, 0 labeled, 0 excluded\); "
            r"lower k"),
        (np.float64(2.0), r"k must be a positive integer, got float64 2\.0"),
        ("3", r"k must be a positive integer, got str '3'"),
    ],
)
def test_bad_k(k, match):
    assert_all_raise([lambda: alcore.select_top(P, k), lambda: alcore.top_k(P[:, 0], k),
                      lambda: alcore.select(P, k)], match)


@pytest.mark.parametrize("k", [np.int64(2), np.int32(2), np.array(2), np.uint8(2)])
def test_numpy_integers_are_k(k):
    # margins 0.4, 1.0, 0.2
    np.testing.assert_array_equal(alcore.select_top(P, k), [1, 0])
    np.testing.assert_array_equal(alcore.select(P, k).indices, [1, 0])
    np.testing.assert_array_equal(alcore.top_k(P[:, 1], k), [0, 1])


def test_k_counts_excluded_items():
    assert_all_raise([lambda: alcore.select_top(P, 2, exclude=[0, 2]),
                      lambda: alcore.top_k(P[:, 0], 2, exclude=np.array([True, False, True])),
                      lambda: alcore.select(P, 2, labeled=[0], exclude=[2])],
                     r"k=2 exceeds the 1 items that can be picked \(3 items, [01] labeled, "
                     r"[12] excluded\)")


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
        alcore.select_top(P, 1, exclude=exclude)
    with pytest.raises(alcore.InvalidInputError, match=match):
        alcore.select(P, 1, exclude=exclude)
    with pytest.raises(alcore.InvalidInputError, match=match.replace("exclude", "labeled")):
        alcore.select_top(P, 1, labeled=exclude)
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
        alcore.select_top(P, 1, score="uncertainty")
    with pytest.raises(alcore.InvalidInputError, match=r"atol must be in \[0, 1\), got -1"):
        scores.margin(P, atol=-1)
    with pytest.raises(alcore.InvalidInputError, match=r"atol must be a number, got 'x'"):
        scores.margin(P, atol="x")
    with pytest.raises(alcore.InvalidInputError, match=r"normalize must be True or False"):
        scores.margin(P, normalize="yes")
    with pytest.raises(alcore.InvalidInputError, match=r"scaled must be True or False"):
        scores.entropy(P, scaled="yes")
    with pytest.raises(alcore.InvalidInputError, match=r"atol must be a number, got '0\.1'"):
        scores.margin(P, atol="0.1")
    np.testing.assert_array_equal(scores.margin(P, atol=np.float32(0.01)), scores.margin(P))
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
        scores.bald(logits, logits=True)


def test_rejected_call_leaves_inputs_and_state_unchanged():
    """A rejected call changes nothing: not the caller's arrays, not the thread count, and
    the next valid call gives the same answer as before it."""
    probs = np.array([[0.5, 0.5], [np.nan, 1.0], [0.9, 0.1]])
    before = probs.copy()
    labeled = np.array([False, False, True])
    threads = alcore.get_num_threads()
    good = np.array([[0.5, 0.5], [0.3, 0.7], [0.9, 0.1]])
    want = (scores.entropy(good), alcore.select_top(good, 2), alcore.select(good, 2).indices)
    for call in (lambda: scores.entropy(probs), lambda: alcore.select_top(probs, 1),
                 lambda: alcore.select(probs, 1, labeled=labeled),
                 lambda: alcore.select(good, 1, labeled=labeled, density="knn")):
        with pytest.raises(alcore.InvalidInputError):
            call()
        np.testing.assert_array_equal(probs, before, strict=True)
        np.testing.assert_array_equal(labeled, [False, False, True])
        assert alcore.get_num_threads() == threads
    np.testing.assert_array_equal(scores.entropy(good), want[0])
    np.testing.assert_array_equal(alcore.select_top(good, 2), want[1])
    np.testing.assert_array_equal(alcore.select(good, 2).indices, want[2])


def _checkout_without_core(root):
    """A copy of the alcore/ sources without the compiled extension, as a source checkout
    that was never built looks."""
    import shutil
    from pathlib import Path

    source = Path(alcore.__file__).parent
    shutil.copytree(source, root / "alcore",
                    ignore=shutil.ignore_patterns("_core*.so", "_core*.pyd", "__pycache__"))
    return root


@pytest.mark.parametrize("installed", [False, True])
def test_import_from_an_unbuilt_checkout_says_what_to_do(tmp_path, installed):
    """Running Python in a source checkout: its alcore/ (no compiled core) shadows the
    installed package; the error names that and the fixes, not a circular import."""
    import os
    import subprocess
    import sys

    root = _checkout_without_core(tmp_path / "repo")
    env = dict(os.environ)
    if installed:  # a stand-in for the installed package, later on sys.path
        (tmp_path / "site" / "alcore").mkdir(parents=True)
        (tmp_path / "site" / "alcore" / "__init__.py").write_text("")
        env["PYTHONPATH"] = str(tmp_path / "site")
    # -S: without site-packages' editable-install finder, the current directory's alcore/
    # comes first on sys.path, as for a regular (non-editable) install.
    result = subprocess.run([sys.executable, "-S", "-c", "import alcore"], cwd=root, env=env,
                            capture_output=True, text=True)
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("ImportError: alcore's compiled core (alcore._core) is missing: "
                           f"the source checkout at {root.resolve()} has no compiled "
                           "alcore._core and shadows ")
    if installed:
        assert f"the installed package at {(tmp_path / 'site' / 'alcore').resolve()}" in last
    assert "Run Python from another directory" in last and "`pip install -e .`" in last
    assert "circular import" not in last


@pytest.mark.parametrize(
    "seed, match",
    [
        (-1, r"seed must be >= 0, got -1"),
        (1.5, r"seed must be an int or a numpy.random.Generator \(or None\), got float 1\.5"),
        (True, r"seed must be an int or a numpy.random.Generator \(or None\), got True"),
        ("0", r"seed must be an int or a numpy.random.Generator \(or None\), got str '0'"),
    ],
)
def test_bad_seed(seed, match):
    probs = np.random.default_rng(0).dirichlet(np.ones(3), size=20)
    emb = np.random.default_rng(1).standard_normal((20, 2))
    with pytest.raises(alcore.InvalidInputError, match=match):
        alcore.select(probs, 2, embeddings=emb, seed=seed)


@pytest.mark.parametrize("seed", [3, np.int64(3), np.array(3), np.uint16(3)])
def test_numpy_integer_seeds_are_the_same_seed(seed):
    probs = np.random.default_rng(0).dirichlet(np.ones(3), size=50)
    emb = np.random.default_rng(1).standard_normal((50, 2))
    want = alcore.select(probs, 4, embeddings=emb, diversity="kcenter", seed=3).indices
    got = alcore.select(probs, 4, embeddings=emb, diversity="kcenter", seed=seed).indices
    np.testing.assert_array_equal(got, want)


def test_row_sum_message_shows_the_digits_that_break_atol():
    # Rounded to three decimals, this row sums to the float 0.999, which is 1.0000000000000009e-3
    # from 1: outside atol=1e-3, though "sums to 0.999" alone reads as within it.
    row = np.array([[0.25, 0.25, 0.25, 0.249]])
    expected = (r"sums to 0\.999 \(0\.00100000000000\d* from 1, just beyond the tolerance\), "
                r"atol=0\.001")
    with pytest.raises(alcore.InvalidInputError, match=expected):
        alcore.scores.margin(row)
