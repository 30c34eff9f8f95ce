"""Per-row uncertainty scores against the slow references."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import oracles
import pytest
from hypothesis import given
from hypothesis import strategies as st
from strategies import logit_matrices, prob_matrices, tolerance

import alcore
from alcore import scores

SCORE_NAMES = list(oracles.SCORES)


@pytest.mark.parametrize("name", SCORE_NAMES)
@given(probs=prob_matrices())
def test_matches_reference(name, probs):
    got = getattr(scores, name)(probs)
    assert got.dtype == probs.dtype and got.shape == (probs.shape[0],)
    assert np.isfinite(got).all()
    np.testing.assert_allclose(got, oracles.SCORES[name](probs), **tolerance(probs.dtype))


@pytest.mark.parametrize("name", SCORE_NAMES)
@given(probs=prob_matrices(dtype=np.float64))
def test_float32_agrees_with_float64(name, probs):
    f64 = getattr(scores, name)(probs)
    f32 = getattr(scores, name)(probs.astype(np.float32))
    np.testing.assert_allclose(f32, f64, **tolerance(np.float32))


@pytest.mark.parametrize("name", SCORE_NAMES)
@given(logits=logit_matrices())
def test_logits_match_softmax_reference(name, logits):
    got = getattr(scores, name)(logits, logits=True)
    assert np.isfinite(got).all()
    want = oracles.SCORES[name](oracles.softmax(logits))
    atol = 1e-5 if logits.dtype == np.float32 else 1e-10
    np.testing.assert_allclose(got, want, rtol=0, atol=atol)


def test_extreme_logits_do_not_overflow():
    logits = np.array([[1e4, -1e4, 0.0], [-1e4, -1e4, -1e4], [3e38, -3e38, 0.0]],
                      dtype=np.float32)
    for name in SCORE_NAMES:
        got = getattr(scores, name)(logits, logits=True)
        assert np.isfinite(got).all(), name
    np.testing.assert_allclose(scores.entropy(logits, logits=True), [0.0, np.log(3), 0.0],
                               atol=1e-6)
    np.testing.assert_allclose(scores.margin(logits, logits=True), [0.0, 1.0, 0.0], atol=1e-6)


@given(probs=prob_matrices())
def test_normalize_renormalises_rows(probs):
    weights = probs * 7.5
    for name in ("least_confidence", "margin", "ratio"):
        np.testing.assert_allclose(
            getattr(scores, name)(weights, normalize=True), getattr(scores, name)(probs),
            rtol=0, atol=2 * tolerance(probs.dtype)["atol"],
        )


@given(probs=prob_matrices())
def test_entropy_scaled_divides_by_log_c(probs):
    want = oracles.entropy(probs) / np.log(probs.shape[1])
    got = scores.entropy(probs, scaled=True)
    np.testing.assert_allclose(got, want, rtol=0, atol=4 * tolerance(probs.dtype)["atol"])
    assert (got <= 1 + 1e-6).all()
    both = scores.entropy(probs * 3.0, normalize=True, scaled=True)
    np.testing.assert_allclose(both, want, rtol=0, atol=4 * tolerance(probs.dtype)["atol"])


@given(probs=prob_matrices())
def test_entropy_normalize_only_renormalises(probs):
    """normalize=True means the same for every score: rows divided by their sums, no ln C."""
    got = scores.entropy(probs * 3.0, normalize=True)
    np.testing.assert_allclose(got, oracles.entropy(probs), rtol=0,
                               atol=4 * tolerance(probs.dtype)["atol"])


def test_exact_zero_and_one():
    probs = np.array([[1.0, 0.0, 0.0], [0.5, 0.5, 0.0], [0.0, 0.0, 1.0]])
    np.testing.assert_array_equal(scores.entropy(probs), [0.0, np.log(2), 0.0])
    np.testing.assert_array_equal(scores.margin(probs), [0.0, 1.0, 0.0])
    np.testing.assert_array_equal(scores.ratio(probs), [0.0, 1.0, 0.0])
    np.testing.assert_array_equal(scores.least_confidence(probs), [0.0, 0.5, 0.0])


def test_subnormal_probabilities():
    tiny = np.float32(1e-40)  # subnormal in float32
    probs = np.array([[1 - 2 * tiny, tiny, tiny]], dtype=np.float32)
    want = oracles.entropy(probs)
    np.testing.assert_allclose(scores.entropy(probs), want, rtol=1e-5, atol=1e-30)


@pytest.mark.parametrize("threads", [1, 2, 3, 7])
def test_large_input_is_thread_count_independent(threads):
    rng = np.random.default_rng(3)
    probs = rng.dirichlet(np.ones(10), size=150_000).astype(np.float32)
    saved = alcore.get_num_threads()
    alcore.set_num_threads(threads)
    try:
        for name in SCORE_NAMES:
            got = getattr(scores, name)(probs)
            want = oracles.SCORES[name](probs[:2000])
            np.testing.assert_allclose(got[:2000], want, rtol=0, atol=2e-6)
            alcore.set_num_threads(1)
            np.testing.assert_array_equal(got, getattr(scores, name)(probs))
            alcore.set_num_threads(threads)
    finally:
        alcore.set_num_threads(saved)


def test_wide_rows_take_the_generic_path():
    rng = np.random.default_rng(4)
    probs = rng.dirichlet(np.full(1000, 0.1), size=300)
    for name in SCORE_NAMES:
        np.testing.assert_allclose(getattr(scores, name)(probs), oracles.SCORES[name](probs),
                                   rtol=0, atol=1e-12)
        np.testing.assert_allclose(getattr(scores, name)(np.log(probs + 1e-300), logits=True),
                                   oracles.SCORES[name](probs), rtol=0, atol=1e-9)


@pytest.mark.parametrize("layout", ["fortran", "strided", "memmap", "readonly"])
def test_non_contiguous_and_mapped_inputs(layout, tmp_path):
    rng = np.random.default_rng(5)
    probs = rng.dirichlet(np.ones(6), size=101)
    if layout == "fortran":
        given_probs = np.asfortranarray(probs)
    elif layout == "strided":
        wide = np.zeros((101, 12))
        wide[:, ::2] = probs
        given_probs = wide[:, ::2]
    elif layout == "memmap":
        path = tmp_path / "probs.f64"
        probs.tofile(path)
        given_probs = np.memmap(path, dtype=np.float64, mode="r", shape=probs.shape)
    else:
        given_probs = probs.copy()
        given_probs.flags.writeable = False
    np.testing.assert_array_equal(scores.margin(given_probs), scores.margin(probs))


def test_array_likes():
    rng = np.random.default_rng(6)
    probs = rng.dirichlet(np.ones(4), size=20)
    want = scores.entropy(probs)
    np.testing.assert_array_equal(scores.entropy(probs.tolist()), want)

    class DLPackOnly:
        def __init__(self, array):
            self._array = array

        def __dlpack__(self, **kwargs):
            return self._array.__dlpack__(**kwargs)

        def __dlpack_device__(self):
            return self._array.__dlpack_device__()

    np.testing.assert_array_equal(scores.entropy(DLPackOnly(probs)), want)
    pandas = pytest.importorskip("pandas")
    np.testing.assert_array_equal(scores.entropy(pandas.DataFrame(probs)), want)


def test_float16_and_big_endian_are_cast_once():
    probs = np.array([[0.25, 0.75], [0.5, 0.5]])
    np.testing.assert_allclose(scores.margin(probs.astype(np.float16)), [0.5, 1.0])
    assert scores.margin(probs.astype(np.float16)).dtype == np.float32
    np.testing.assert_array_equal(scores.margin(probs.astype(">f8")), [0.5, 1.0])


@pytest.mark.parametrize("isa", ["baseline", "avx2"])
def test_portable_variants_agree(isa):
    """The run-time dispatch can be capped; every variant computes the same scores."""
    code = (
        "import numpy as np, alcore, json, sys\n"
        "from alcore import _core\n"
        "rng = np.random.default_rng(7)\n"
        "out = {'isa': _core.isa()}\n"
        "for c in (3, 10, 40):\n"
        "    p = rng.dirichlet(np.ones(c), size=77)\n"
        "    for name in ('least_confidence', 'margin', 'ratio', 'entropy'):\n"
        "        f = getattr(alcore.scores, name)\n"
        "        out[f'{name}-{c}'] = f(p).tolist()\n"
        "        out[f'{name}-{c}-logits'] = f(np.log(p), logits=True).tolist()\n"
        "    s = rng.dirichlet(np.ones(c), size=(4, 33))\n"
        "    out[f'bald-{c}'] = alcore.scores.bald(s).tolist()\n"
        "json.dump(out, sys.stdout)\n"
    )
    import json

    env = dict(os.environ, ALCORE_ISA=isa)
    # Outside the repository, so the installed package (with its compiled core) is imported.
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                            text=True, check=True, cwd=os.sep)
    got = json.loads(result.stdout)
    assert got.pop("isa") in (isa, "baseline")
    rng = np.random.default_rng(7)
    for c in (3, 10, 40):
        p = rng.dirichlet(np.ones(c), size=77)
        for name in SCORE_NAMES:
            want = oracles.SCORES[name](p)
            np.testing.assert_allclose(got[f"{name}-{c}"], want, rtol=0, atol=1e-12)
            np.testing.assert_allclose(got[f"{name}-{c}-logits"], want, rtol=0, atol=1e-9)
        s = rng.dirichlet(np.ones(c), size=(4, 33))
        np.testing.assert_allclose(got[f"bald-{c}"], oracles.bald(s), rtol=0, atol=1e-12)


@given(st.integers(2, 40))
def test_uniform_rows(c):
    probs = np.full((3, c), 1.0 / c)
    np.testing.assert_allclose(scores.entropy(probs), np.log(c), rtol=1e-12)
    np.testing.assert_allclose(scores.entropy(probs, scaled=True), 1.0, rtol=1e-12)
    np.testing.assert_allclose(scores.margin(probs), 1.0, rtol=1e-12)
    np.testing.assert_allclose(scores.ratio(probs), 1.0, rtol=1e-12)
