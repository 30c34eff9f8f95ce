"""Per-row uncertainty scores against the slow references."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import oracles
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from strategies import logit_matrices, prob_matrices, tolerance

import alcore
from alcore import scores
from alcore._errors import InvalidInputError

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


# --- every score inside its documented range, for every valid row ---------------------

RANGE_CLASSES = [2, 3, 7, 10, 16, 17, 31, 32, 33, 100]
MAGNITUDES = [1e-40, 1e-30, 1e-8, 1.0, 22.0, 1e8, 1e30]


def row_score_bounds(name: str, c: int, dtype, scaled: bool = False) -> tuple[float, float]:
    """The documented range, in the score's dtype: LC in [0, 1 - 1/C], margin and ratio in
    [0, 1], entropy in [0, ln C] (or [0, 1] scaled)."""
    one = dtype(1)
    if name == "least_confidence":
        return 0.0, one - one / dtype(c)
    if name == "entropy":
        return 0.0, (one if scaled else dtype(np.log(c)))
    return 0.0, one


@st.composite
def raw_rows(draw, c: int) -> np.ndarray:
    """Non-negative float64 rows: uniform values, few tied values, or one class dominating
    the others by up to 40 orders of magnitude."""
    n = draw(st.integers(1, 12))
    kind = draw(st.sampled_from(["uniform", "ties", "dominant", "equal"]))
    if kind == "equal":
        return np.ones((n, c))
    if kind == "ties":
        values = st.sampled_from([0.0, 0.25, 0.5, 1.0, 2.0, 22.0])
    else:
        values = st.floats(0, 1, allow_nan=False, allow_subnormal=True, width=32)
    raw = draw(hnp.arrays(np.float64, (n, c), elements=values))
    if kind == "dominant":
        raw *= draw(st.sampled_from([0.0, 1e-40, 1e-20, 1e-8, 1e-3]))
        raw[:, draw(st.integers(0, c - 1))] = 1.0
    raw[raw.sum(axis=1) == 0, 0] = 1.0
    return raw


@st.composite
def valid_rows(draw):
    """(x, logits, normalize, dtype): rows every score must accept, at every magnitude."""
    c = draw(st.sampled_from(RANGE_CLASSES))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    mode = draw(st.sampled_from(["probs", "normalize", "logits"]))
    raw = draw(raw_rows(c))
    if mode == "logits":
        scale = draw(st.sampled_from([1.0, 30.0, 1e4, 1e30]))
        signs = draw(st.sampled_from([1.0, -1.0]))
        return (signs * raw * scale).astype(dtype), True, False, dtype
    if mode == "normalize":
        x = (raw * draw(st.sampled_from(MAGNITUDES))).astype(dtype)
        # A row of small weights at 1e-40 can round to all zeros in float32: that row is
        # invalid for normalize=True (no positive sum), not a row every score must accept.
        assume((x.sum(axis=1) > 0).all())
        return x, False, True, dtype
    probs = raw / raw.sum(axis=1, keepdims=True)
    # Rows summing to 1 only within atol (1e-3) are valid too; no value above 1.
    probs = np.minimum(probs * (1 + draw(st.floats(-9e-4, 9e-4))), 1.0)
    return probs.astype(dtype), False, False, dtype


@given(case=valid_rows(), scaled=st.booleans())
def test_row_scores_stay_in_their_documented_range(case, scaled):
    x, is_logits, normalize, dtype = case
    c = x.shape[1]
    for name in SCORE_NAMES:
        options = {"scaled": scaled} if name == "entropy" else {}
        got = getattr(scores, name)(x, logits=is_logits, normalize=normalize, **options)
        lo, hi = row_score_bounds(name, c, dtype, scaled)
        assert got.dtype == dtype and np.isfinite(got).all(), name
        assert (got >= lo).all() and (got <= hi).all(), (name, got.min(), got.max(), hi)


def test_renormalised_one_hot_row_has_scores_of_exactly_zero():
    """[22, 0] / 22 leaves a top probability of 1 + 2^-53: margin and least confidence
    came out as -2.8e-17, below their minimum 0."""
    for dtype in (np.float32, np.float64):
        x = np.array([[22.0, 0.0], [0.0, 22.0], [3.0, 0.0]], dtype=dtype)
        for name in ("least_confidence", "margin", "ratio", "entropy"):
            got = getattr(scores, name)(x, normalize=True)
            np.testing.assert_array_equal(got, np.zeros(3, dtype=dtype), err_msg=name)


def test_uniform_rows_do_not_exceed_their_maxima():
    for dtype in (np.float32, np.float64):
        for c in (3, 7, 10, 33, 100):
            x = np.full((2, c), 1.0 / c).astype(dtype)
            assert (scores.entropy(x) <= dtype(np.log(c))).all()
            assert (scores.entropy(x, scaled=True) <= 1).all()
            assert (scores.least_confidence(x) <= dtype(1) - dtype(1) / dtype(c)).all()
            low = x * dtype(1 - 9e-4)  # sums to 1 - 9e-4: within atol, max below 1/C
            assert (scores.least_confidence(low) <= dtype(1) - dtype(1) / dtype(c)).all()
            high = x * dtype(1 + 9e-4)
            assert (scores.entropy(high) <= dtype(np.log(c))).all()


def test_clamping_keeps_the_order_of_scores():
    """The clamp is monotone: scores inside the range are untouched and equal rows stay
    equal, so rankings and their ties (lower row first) do not change."""
    rng = np.random.default_rng(11)
    probs = rng.dirichlet(np.ones(5), size=500)
    probs[::7] = probs[0]
    for name in SCORE_NAMES:
        got = getattr(scores, name)(probs)
        np.testing.assert_allclose(got, oracles.SCORES[name](probs), rtol=0, atol=1e-12)
        assert len(set(got[::7].tolist())) == 1


@pytest.mark.parametrize("name", SCORE_NAMES)
def test_one_class_is_refused(name):
    with pytest.raises(InvalidInputError, match=r"at least 2 classes.*shape \(3, 1\)"):
        getattr(scores, name)(np.ones((3, 1)))


@st.composite
def valid_samples(draw):
    t = draw(st.integers(1, 6))
    c = draw(st.sampled_from([2, 3, 10, 17, 33]))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    mode = draw(st.sampled_from(["probs", "normalize", "logits"]))
    raw = np.stack([draw(raw_rows(c))[:1].repeat(5, axis=0) if draw(st.booleans())
                    else draw(hnp.arrays(np.float64, (5, c),
                                         elements=st.sampled_from([0.0, 0.5, 1.0, 3.0])))
                    for _ in range(t)])
    raw[raw.sum(axis=-1) == 0, 0] = 1.0
    if mode == "logits":
        return (raw * draw(st.sampled_from([1.0, 1e4]))).astype(dtype), True, False, dtype
    if mode == "normalize":
        x = (raw * draw(st.sampled_from(MAGNITUDES))).astype(dtype)
        # A row of small weights at 1e-40 can round to all zeros in float32: that row is
        # invalid for normalize=True (no positive sum), not a row every score must accept.
        assume((x.sum(axis=-1) > 0).all())
        return x, False, True, dtype
    return (raw / raw.sum(axis=-1, keepdims=True)).astype(dtype), False, False, dtype


@given(case=valid_samples())
def test_sample_scores_stay_in_their_documented_range(case):
    x, is_logits, normalize, dtype = case
    t, _, c = x.shape
    log_bound = dtype(np.log(min(c, t)))
    bounds = {"bald": log_bound, "kl_consensus": log_bound, "vote_entropy": log_bound,
              "variation_ratio": dtype(1) - dtype(1) / dtype(t)}
    for name, hi in bounds.items():
        got = getattr(scores, name)(x, logits=is_logits, normalize=normalize)
        assert got.dtype == dtype and np.isfinite(got).all(), name
        assert (got >= 0).all() and (got <= hi).all(), (name, got.min(), got.max(), hi)


# --- entropy accuracy: the bound stated in alcore.scores.entropy ----------------------


def entropy_reference(x: np.ndarray, normalize: bool) -> np.ndarray:
    """-sum q ln q in extended precision (x86 long double, eps 1.1e-19; at worst float64)
    from the given values, q = p / sum(p) with normalize. Plain numpy, no alcore."""
    p = x.astype(np.longdouble)
    q = p / p.sum(axis=1, keepdims=True) if normalize else p
    safe = np.where(q > 0, q, 1)
    return -(q * np.log(safe)).sum(axis=1)


def assert_entropy_within_bound(x: np.ndarray, normalize: bool) -> None:
    got = scores.entropy(x, normalize=normalize).astype(np.longdouble)
    want = entropy_reference(x, normalize)
    eps = np.finfo(x.dtype).eps
    bound = (1 + np.log2(x.shape[1])) * eps * (1 + want)
    worst = np.argmax(np.abs(got - want) / bound)
    assert abs(got[worst] - want[worst]) <= bound[worst], (
        x[worst], float(got[worst]), float(want[worst]), float(bound[worst]))


@given(x=st.sampled_from(RANGE_CLASSES).flatmap(raw_rows),
       dtype=st.sampled_from([np.float32, np.float64]),
       magnitude=st.sampled_from(MAGNITUDES[1:]))
def test_renormalised_entropy_is_within_its_stated_error_bound(x, dtype, magnitude):
    """float32 entropy with normalize=True computed ln(sum) - sum(p ln p) / sum and lost
    10-340 eps * (1 + H) against a float64 reference (counts, large or tiny sums)."""
    scaled = (x * magnitude).astype(dtype)
    # A row of tiny values times a tiny magnitude can round to all zeros in float32: such a
    # row has no distribution to renormalise (refused by design, tested elsewhere).
    assume((scaled.sum(axis=1) > 0).all())
    assert_entropy_within_bound(scaled, normalize=True)
    probs = (x / x.sum(axis=1, keepdims=True)).astype(dtype)
    assert_entropy_within_bound(probs, normalize=False)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("c", [2, 10, 33, 100])
def test_renormalised_entropy_of_counts_is_accurate(dtype, c):
    rng = np.random.default_rng(c)
    for magnitude in (1e-30, 1.0, 7.5, 1e3, 1e30):
        counts = rng.dirichlet(np.full(c, 0.3), size=3000) * magnitude
        counts[:300, 0] += 50 * magnitude  # one class dominating
        assert_entropy_within_bound(counts.astype(dtype), normalize=True)


# --- the x ln x terms of float32 entropy, float by float ------------------------------

# Worst |term - x ln x| over every normal float32 x in [0.5, 1] and a stride below, as
# K * eps * |x ln x| + A, measured per kernel variant: the AVX2 table log K = 1.152 (with
# its polynomial cut one degree shorter, about 8); the polynomial log (baseline, without
# fused multiply-adds) 1.397; the AVX-512 table log is within A = 4.86e-8 absolute (its
# table entries carry one rounding, so even ln 1 is not exactly 0, and the rows [x, 1]
# below carry that along).
TERM_ERROR = {"avx512": (1.5, 5e-8), "avx2": (1.25, 0.0), "baseline": (1.5, 0.0)}
# Subnormal x: the AVX2 table log gives ln x to within 16 there; every variant gives the
# term to within |x ln x| <= FLT_MIN * 87.4 = 1.03e-36 (also past the rows' other term).
SUBNORMAL_TERM_ERROR = 1.1e-36

_TERMS_SCRIPT = """
import json, sys
import numpy as np
from alcore import _core, scores

def terms(bits):
    # Rows [x, 1] (x <= 0.5) and [x, 0] (x > 0.5): 1 ln 1 and 0 ln 0 are exactly 0, so the
    # entropy is -(x ln x) as the kernel computes it, with nothing else rounded in.
    x = bits.view(np.float32)
    rows = np.zeros((len(x), 2), np.float32)
    rows[:, 0] = x
    rows[:, 1] = np.where(x <= 0.5, 1, 0)
    got = scores.entropy(rows, atol=0.5).astype(np.float64)
    x64 = x.astype(np.float64)
    want = -x64 * np.log(x64)
    return x64, np.abs(got - want), want

one = np.float32(1).view(np.uint32)
half = np.float32(0.5).view(np.uint32)
normal = np.uint32(0x00800000)
eps = float(np.finfo(np.float32).eps)
k, a = json.loads(sys.argv[1])[_core.isa()]
worst = 0.0
# Every float in [0.5, 1] (where x ln x weighs most, and the table interval holding 1),
# every 251st normal float below, in chunks.
for bits in (np.arange(half, one + 1, dtype=np.uint32),
             np.arange(normal, half, 251, dtype=np.uint32)):
    for chunk in np.array_split(bits, max(1, len(bits) // 2**21)):
        x, err, want = terms(chunk)
        with np.errstate(divide="ignore", invalid="ignore"):  # x = 1: 0 / 0 is fine
            ratio = np.where(err > a, (err - a) / (eps * want), 0)
        worst = max(worst, float(ratio.max()))
x, err, _ = terms(np.arange(1, normal, 4099, dtype=np.uint32))  # subnormals
json.dump({"isa": _core.isa(), "worst": worst, "bound": k, "subnormal": float(err.max())},
          sys.stdout)
"""


@pytest.mark.parametrize("isa", ["native", "avx2", "baseline"])
def test_entropy_terms_are_accurate_for_every_float32_in_range(isa):
    """The vector log behind x ln x, through scores.entropy, against float64 over every
    float32 in [0.5, 1] and a stride through the rest of (0, 0.5): each term within
    K * eps * (x + |x ln x|) + A of TERM_ERROR (about an ulp), which a log with a dropped
    polynomial term or a rounded table (as the AVX-512 one's) fails on AVX2."""
    env = dict(os.environ)
    env.pop("ALCORE_ISA", None)
    if isa != "native":
        env["ALCORE_ISA"] = isa
    result = subprocess.run([sys.executable, "-c", _TERMS_SCRIPT, json.dumps(TERM_ERROR)],
                            env=env,
                            capture_output=True, text=True, check=True, cwd=os.sep)
    got = json.loads(result.stdout)
    if isa != "native" and got["isa"] != isa:
        pytest.skip(f"this CPU has no {isa} kernels")
    assert got["worst"] <= got["bound"], got
    assert got["subnormal"] <= SUBNORMAL_TERM_ERROR, got


# --- 10-class float32 entropy (a one-pass kernel on AVX2), per variant ------------------

_TEN_CLASS_SCRIPT = """
import json
import re
import sys
import numpy as np
import alcore
from alcore import _core, scores

rng = np.random.default_rng(10)
n = 1003  # groups of 8 rows and a short last group
x = rng.dirichlet(np.full(10, 0.3), size=n).astype(np.float32)
x[::7] = np.eye(10, dtype=np.float32)[rng.integers(10, size=len(x[::7]))]  # one-hot rows
x[3, 9] = 0  # a zero among a row's last two values (packed with other rows' on AVX2)
h = scores.entropy(x, atol=0.01)
x64 = x.astype(np.float64)
with np.errstate(divide="ignore", invalid="ignore"):
    want = -np.where(x64 > 0, x64 * np.log(x64), 0).sum(axis=1)
eps = float(np.finfo(np.float32).eps)
worst = float((np.abs(h - want) / ((1 + np.log2(10)) * eps * (1 + want))).max())
# A row's score does not depend on where it sits: shifted by 1-7 rows, alone, or in a
# select_top over the whole matrix.
moved = all(np.array_equal(scores.entropy(np.roll(x, s, axis=0), atol=0.01), np.roll(h, s))
            for s in range(1, 8))
alone = all(scores.entropy(x[i:i + 1], atol=0.01)[0] == h[i] for i in range(0, n, 37))
top = alcore.select_top(x, 50, score="entropy", atol=0.01)
ranked = np.array_equal(top, np.lexsort((np.arange(n), -h))[:50])
# -0 is a valid 0 (its bits fail the kernel's unsigned range check), the same score.
signed = x.copy()
signed[signed == 0] = -0.0
negative_zero = np.array_equal(scores.entropy(signed, atol=0.01), h)
# The first bad row is reported, whatever its place in its group of 8.
reports = []
for row in (0, 5, 9, 1002):
    for col, value in ((0, np.nan), (8, -0.25), (9, np.inf), (None, None)):
        bad = x.copy()
        if col is None:
            bad[row] *= 0.5
        else:
            bad[row, col] = value
        try:
            scores.entropy(bad, atol=0.01)
            reports.append("accepted")
        except alcore.InvalidInputError as err:
            reports.append(re.search(rf"row {row}\\b", str(err)) is not None)
json.dump({"isa": _core.isa(), "worst": worst, "moved": moved, "alone": alone,
           "ranked": ranked, "negative_zero": negative_zero, "reports": reports},
          sys.stdout)
"""


@pytest.mark.parametrize("isa", ["native", "avx2", "baseline"])
def test_ten_class_entropy_is_accurate_and_independent_of_position(isa):
    """The shape the AVX2 one-pass kernel handles: within the stated error bound, the same
    bits for a row wherever it sits, -0 taken as 0, and errors at the right row (a kernel
    that packed the wrong rows' last two values together fails the first two)."""
    env = dict(os.environ)
    env.pop("ALCORE_ISA", None)
    if isa != "native":
        env["ALCORE_ISA"] = isa
    result = subprocess.run([sys.executable, "-c", _TEN_CLASS_SCRIPT], env=env,
                            capture_output=True, text=True, check=True, cwd=os.sep)
    got = json.loads(result.stdout)
    if isa != "native" and got["isa"] != isa:
        pytest.skip(f"this CPU has no {isa} kernels")
    assert got["worst"] <= 1, got
    assert got["moved"] and got["alone"] and got["ranked"] and got["negative_zero"], got
    assert got["reports"] == [True] * 16, got
