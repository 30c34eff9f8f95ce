"""Property tests over the pool API: on random dtypes (float16/32/64, integers, booleans),
shapes (empty, one row, one column, 3-D), strides (slices, transposes), NaN/inf, wrong
types and numpy scalars for k, the only outcomes are the correct result (against a numpy
reference written here) or an InvalidInputError naming the argument."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import alcore
from alcore import scores
from alcore.batching import BatchSizer
from alcore.stopping import MaxLabels, OverallUncertainty, StabilizingPredictions

ROW_SCORES = ["least_confidence", "margin", "ratio", "entropy"]
FLOATS = [np.float16, np.float32, np.float64]


# --- references -------------------------------------------------------------------------

def reference_score(name: str, probs: np.ndarray) -> np.ndarray:
    p = np.asarray(probs, dtype=np.float64)
    top2 = np.sort(p, axis=1)[:, -2:]
    if name == "least_confidence":
        return 1.0 - top2[:, 1]
    if name == "margin":
        return 1.0 - (top2[:, 1] - top2[:, 0])
    if name == "ratio":
        return top2[:, 0] / top2[:, 1]
    with np.errstate(divide="ignore", invalid="ignore"):
        return -np.where(p > 0, p * np.log(p), 0.0).sum(axis=1)


def reference_top(values: np.ndarray, k: int, never: np.ndarray | None) -> np.ndarray:
    order = np.lexsort((np.arange(len(values)), -np.asarray(values, dtype=np.float64)))
    if never is not None:
        order = order[~never[order]]
    return order[:k]


def tolerance(dtype) -> float:
    return {np.dtype(np.float16): 5e-3, np.dtype(np.float32): 1e-5}.get(np.dtype(dtype), 1e-11)


def working_dtype(dtype) -> np.dtype:
    """What the kernels score in: float32 and float64 as given, float16 as float32."""
    return np.dtype(np.float64) if np.dtype(dtype) == np.float64 else np.dtype(np.float32)


# --- inputs -----------------------------------------------------------------------------

@st.composite
def layouts(draw, array: np.ndarray) -> np.ndarray:
    """The same values as a C array, a Fortran array, a strided view or a read-only view."""
    layout = draw(st.sampled_from(["c", "fortran", "strided", "readonly"]))
    if layout == "fortran" and array.ndim == 2:
        return np.asfortranarray(array)
    if layout == "strided":
        if array.ndim:
            wide = np.zeros((*array.shape[:-1], 2 * array.shape[-1]), dtype=array.dtype)
            wide[..., ::2] = array
            return wide[..., ::2]
    if layout == "readonly":
        view = array.view()
        view.flags.writeable = False
        return view
    return array


@st.composite
def model_outputs(draw):
    """(array, problem): problem None when the array is valid probabilities."""
    problem = draw(st.sampled_from([None, None, None, "nan", "inf", "negative", "row_sum",
                                    "int", "bool", "1-D", "3-D", "no rows", "one class"]))
    n = draw(st.integers(1, 40))
    c = draw(st.integers(2, 12))
    dtype = draw(st.sampled_from(FLOATS))
    raw = draw(hnp.arrays(np.float64, (n, c), elements=st.sampled_from([0.0, 0.1, 0.5, 1.0])
                          | st.floats(0, 1, width=16)))
    raw[raw.sum(axis=1) == 0, 0] = 1.0
    probs = raw / raw.sum(axis=1, keepdims=True)
    # float16 rounding of each entry can move a row sum by about C * 5e-4: renormalise in
    # the target dtype's precision by putting the residual in the largest entry.
    probs = probs.astype(dtype)
    row, col = np.arange(n), probs.argmax(axis=1)
    probs[row, col] += (1 - probs.astype(np.float64).sum(axis=1)).astype(dtype)
    sums_ok = np.abs(probs.astype(np.float64).sum(axis=1) - 1) <= 1e-3
    assume(sums_ok.all() and (probs >= 0).all())
    i, j = draw(st.integers(0, n - 1)), draw(st.integers(0, c - 1))
    if problem == "nan":
        probs[i, j] = np.nan
    elif problem == "inf":
        probs[i, j] = np.inf
    elif problem == "negative":
        probs[i, j] = -0.5
    elif problem == "row_sum":
        probs[i] = probs[i] * dtype(0.5)
    elif problem == "int":
        probs = (probs > 0.5).astype(draw(st.sampled_from([np.int32, np.int64, np.uint8])))
    elif problem == "bool":
        probs = probs > 0.5
    elif problem == "1-D":
        probs = probs[0]
    elif problem == "3-D":
        probs = probs[None]
    elif problem == "no rows":
        probs = probs[:0]
    elif problem == "one class":
        probs = probs[:, :1]
    return draw(layouts(probs)), problem


ks = st.one_of(
    st.integers(-2, 45),
    st.integers(1, 45).map(lambda k: np.int64(k)),
    st.integers(1, 45).map(lambda k: np.uint8(k)),
    st.integers(1, 45).map(lambda k: np.array(k, dtype=np.int32)),
    st.sampled_from([1.0, np.float64(2.0), "3", None, True, np.bool_(True), [1]]),
)


def as_count(k):
    """The k a valid call takes, or None if k itself is invalid."""
    if isinstance(k, bool | np.bool_ | float | str | list) or k is None:
        return None
    if isinstance(k, np.floating):
        return None
    value = int(k)
    return value if value >= 1 else None


masks = st.one_of(st.none(), st.integers(0, 2**32 - 1))


def draw_mask(seed, n: int):
    if seed is None:
        return None
    rng = np.random.default_rng(seed)
    mask = rng.random(n) < 0.3
    return mask if seed % 2 else np.flatnonzero(mask)


def as_bool(mask, n: int) -> np.ndarray | None:
    if mask is None:
        return None
    if mask.dtype == bool:
        return mask
    out = np.zeros(n, dtype=bool)
    out[mask] = True
    return out


# --- properties -------------------------------------------------------------------------

@pytest.mark.parametrize("name", ROW_SCORES)
@given(case=model_outputs())
def test_row_scores_are_right_or_refused(name, case):
    probs, problem = case
    fn = getattr(scores, name)
    if problem is not None:
        with pytest.raises(alcore.InvalidInputError, match=r"^probs "):
            fn(probs)
        return
    got = fn(probs)
    assert got.dtype == working_dtype(probs.dtype) and got.shape == (probs.shape[0],)
    np.testing.assert_allclose(got, reference_score(name, probs), rtol=0,
                               atol=tolerance(probs.dtype) * (1 + np.log(probs.shape[1])))


@given(case=model_outputs(), k=ks, seed=masks, score=st.sampled_from(ROW_SCORES))
def test_select_top_is_right_or_refused(case, k, seed, score):
    probs, problem = case
    n = probs.shape[0] if probs.ndim >= 1 else 0
    exclude = draw_mask(seed, n) if n else None
    never = as_bool(exclude, n)
    count = as_count(k)
    available = n - (0 if never is None else int(never.sum()))
    if problem is not None or count is None or count > available:
        with pytest.raises(alcore.InvalidInputError, match=r"^(probs|k|exclude) "
                                                           r"|^k=\d+ exceeds"):
            alcore.select_top(probs, k, score=score, exclude=exclude)
        return
    got = alcore.select_top(probs, k, score=score, exclude=exclude)
    assert got.dtype == np.int64 and len(got) == count
    # The kernel's own rounding may order near-equal scores differently from the float64
    # reference: compare the scores of the picks, not the indices.
    want = reference_top(reference_score(score, probs), count, never)
    values = reference_score(score, probs)
    np.testing.assert_allclose(values[got], values[want], rtol=0,
                               atol=tolerance(probs.dtype) * (1 + np.log(probs.shape[1])))
    assert never is None or not never[got].any()
    assert len(set(got.tolist())) == count


@st.composite
def score_vectors(draw):
    dtype = draw(st.sampled_from([*FLOATS, np.int64, np.bool_]))
    n = draw(st.integers(0, 50))
    values = draw(hnp.arrays(np.float64, n, elements=st.sampled_from([0.0, 0.5, -1.0, 3.0])
                             | st.floats(-1e4, 1e4, width=16)))
    special = draw(st.sampled_from([None, None, np.nan, np.inf, -np.inf]))
    if special is not None and n:
        values[draw(st.integers(0, n - 1))] = special
    values = values.astype(dtype) if dtype not in (np.int64, np.bool_) or special is None \
        else values
    if draw(st.booleans()) and n:
        values = np.repeat(values, 2)[::2]  # a strided view of the same values
    return values


@given(values=score_vectors(), k=ks, seed=masks)
def test_top_k_is_right_or_refused(values, k, seed):
    n = len(values)
    labeled = draw_mask(seed, n) if n else None
    never = as_bool(labeled, n)
    count = as_count(k)
    available = n - (0 if never is None else int(never.sum()))
    valid = (values.dtype.kind == "f" and n > 0 and np.isfinite(values).all()
             and count is not None and count <= available)
    if not valid:
        with pytest.raises(alcore.InvalidInputError,
                           match=r"^(scores|k|labeled) |^k=\d+ exceeds"):
            alcore.top_k(values, k, labeled=labeled)
        return
    got = alcore.top_k(values, k, labeled=labeled)
    np.testing.assert_array_equal(got, reference_top(values.astype(np.float64), count, never))


@given(case=model_outputs(), k=ks, seed=masks)
def test_select_is_right_or_refused(case, k, seed):
    probs, problem = case
    n = probs.shape[0] if probs.ndim >= 1 else 0
    labeled = draw_mask(seed, n) if n else None
    never = as_bool(labeled, n)
    count = as_count(k)
    available = n - (0 if never is None else int(never.sum()))
    if problem is not None or count is None or count > available:
        with pytest.raises(alcore.InvalidInputError, match=r"^(probs|k|labeled) "
                                                           r"|^k=\d+ exceeds"):
            alcore.select(probs, k, labeled=labeled)
        return
    got = alcore.select(probs, k, labeled=labeled, return_utilities=True)
    values = reference_score("margin", probs)
    want = reference_top(values, count, never)
    atol = tolerance(probs.dtype) * 2
    np.testing.assert_allclose(values[got.indices], values[want], rtol=0, atol=atol)
    np.testing.assert_allclose(got.scores, values[got.indices], rtol=0, atol=atol)
    assert len(got.reasons) == count and got.shortfall is None
    assert np.isnan(got.utilities[never]).all() if never is not None else True
    pickable = np.ones(n, bool) if never is None else ~never
    np.testing.assert_allclose(got.utilities[pickable], values[pickable], rtol=0, atol=atol)


@given(n=st.integers(1, 30), d=st.integers(1, 4), k=ks, seed=masks,
       dtype=st.sampled_from(FLOATS), scale=st.sampled_from([1.0, 1e3]),
       bad=st.sampled_from([None, None, "nan", "rows", "int"]))
def test_select_kcenter_is_right_or_refused(n, d, k, seed, dtype, scale, bad):
    rng = np.random.default_rng(n * 31 + d)
    probs = rng.dirichlet(np.ones(3), size=n)
    emb = (rng.standard_normal((n, d)) * scale + scale).astype(dtype)
    if bad == "nan":
        emb[n // 2, 0] = np.nan
    elif bad == "rows":
        emb = emb[:-1]
    elif bad == "int":
        emb = emb.astype(np.int64)
    labeled = draw_mask(seed, n)
    never = as_bool(labeled, n)
    count = as_count(k)
    available = n - (0 if never is None else int(never.sum()))
    if bad is not None or count is None or count > available:
        with pytest.raises(alcore.InvalidInputError,
                           match=r"^(embeddings|k|labeled) |^k=\d+ exceeds"):
            alcore.select(probs, k, embeddings=emb, labeled=labeled, diversity="kcenter")
        return
    got = alcore.select(probs, k, embeddings=emb, labeled=labeled, diversity="kcenter")
    assert len(got.indices) == count and len(set(got.indices.tolist())) == count
    assert never is None or not never[got.indices].any()
    # Every pick's distance is to its nearest covered item, recomputed here in float64.
    x = emb.astype(np.float32).astype(np.float64)
    covered = [] if never is None else np.flatnonzero(never).tolist()
    for i, item in enumerate(got.indices):
        if covered:
            want = np.sqrt(((x[covered] - x[item]) ** 2).sum(axis=1)).min()
            np.testing.assert_allclose(got.components["distance"][i], want, rtol=1e-6,
                                       atol=1e-9 * scale)
        else:
            assert got.components["nearest"][i] == -1
        covered.append(int(item))


numbers = st.one_of(
    st.floats(-2, 2000),
    st.sampled_from([np.nan, np.inf, -np.inf, np.float64(np.nan)]),
    st.integers(-5, 2000),
    st.integers(0, 2000).map(np.int64),
    st.floats(0, 1).map(np.float32),
    st.floats(0, 1).map(lambda f: np.array(f)),
    st.sampled_from([None, "1", True, [0.1], np.array([1, 2])]),
)


@given(pool=numbers, size=numbers, growth=numbers, min_fraction=numbers,
       max_fraction=numbers, n_labeled=numbers, accuracy=numbers,
       policy=st.sampled_from(["fixed", "plateau", "schedule", "bad"]))
def test_batch_sizer_works_or_refuses(pool, size, growth, min_fraction, max_fraction,
                                      n_labeled, accuracy, policy):
    kwargs = {"size": size, "growth": growth, "min_fraction": min_fraction,
              "max_fraction": max_fraction}
    if policy == "schedule":
        kwargs["fraction"] = max_fraction
    try:
        sizer = BatchSizer(pool, policy, **kwargs)
    except alcore.InvalidInputError:
        return
    first = sizer.next_size()
    assert 1 <= sizer.low <= first <= sizer.high <= sizer.pool_size
    try:
        sizer.record(n_labeled, accuracy)
    except alcore.InvalidInputError:
        assert sizer.history == []
        return
    assert sizer.history == [(int(n_labeled), float(accuracy))]
    assert sizer.low <= sizer.next_size() <= sizer.high


@given(threshold=numbers, n_labeled=numbers,
       predictions=st.one_of(st.none(), hnp.arrays(np.int64, st.integers(0, 5)),
                             st.just(np.zeros((2, 2))), st.just("abc")),
       values=st.one_of(st.none(), hnp.arrays(np.float64, st.integers(0, 5)),
                        st.just([0.1, 0.2])))
def test_stopping_criteria_work_or_refuse(threshold, n_labeled, predictions, values):
    for make in (lambda: StabilizingPredictions(threshold=threshold, window=1),
                 lambda: OverallUncertainty(threshold),
                 lambda: MaxLabels(n_labeled) | OverallUncertainty(0.5)):
        try:
            criterion = make()
        except alcore.InvalidInputError:
            continue
        try:
            outcome = criterion.update(n_labeled=n_labeled, predictions=predictions,
                                       scores=values)
        except alcore.InvalidInputError:
            continue
        assert outcome is criterion.should_stop and isinstance(outcome, bool)


@pytest.mark.parametrize("name", ROW_SCORES)
@given(logits=hnp.arrays(st.sampled_from([np.float32, np.float64]),
                         st.tuples(st.integers(1, 20), st.integers(2, 9)),
                         elements=st.floats(-50, 50, width=32)),
       special=st.sampled_from([None, None, np.nan, np.inf, -np.inf]))
def test_logits_are_right_or_refused(name, logits, special):
    if special is not None:
        logits[logits.shape[0] // 2, 0] = special
        with pytest.raises(alcore.InvalidInputError, match=r"^logits must be finite"):
            getattr(scores, name)(logits, logits=True)
        return
    z = logits.astype(np.float64)
    e = np.exp(z - z.max(axis=1, keepdims=True))
    want = reference_score(name, e / e.sum(axis=1, keepdims=True))
    got = getattr(scores, name)(logits, logits=True)
    atol = 1e-5 if logits.dtype == np.float32 else 1e-10
    np.testing.assert_allclose(got, want, rtol=0, atol=atol)
