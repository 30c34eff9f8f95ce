"""Custom utilities (alcore.utility): oracle, thread-count independence, bad input.

The oracle is a Python loop calling the plain function on each row, then a stable sort by
(-score, index). The utilities here convert every element with float() before any
arithmetic, so Python (numpy scalars promoted to float) and Numba (float64) do the same
IEEE operations and the scores agree bit for bit: equal scores, equal ties, equal picks.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import alcore

THREADS = (1, 2, 3, 7)


@alcore.utility
def top_gap(p):
    """1 - (largest - second largest): the margin, in float64."""
    a = -np.inf
    b = -np.inf
    for i in range(p.shape[0]):
        v = float(p[i])
        if v > a:
            b = a
            a = v
        elif v > b:
            b = v
    return 1.0 - (a - b)


@alcore.utility
def first_times_cost(p, cost):
    return float(p[0]) * cost


@alcore.utility(name="weighted")
def least_conf_weighted(p, cost, priority):
    return (1.0 - float(p.max())) * cost + priority


def first_class(p):  # plain function: select_top wraps it
    return float(p[0])


def raises_on_big(p):
    if float(p[0]) > 0.9:
        raise ValueError("first class too likely")
    return float(p[0])


def log_of_first(p):
    return np.log(float(p[0]))


def returns_row(p):
    return p * 2.0


def returns_tuple(p):
    return (1.0, 2.0)


def sometimes_none(p):
    if float(p[0]) > 0.5:
        return None
    return 1.0


def uses_dict(p):
    d = {}
    d["a"] = 1.0
    d["b"] = "text"
    return 1.0


UTILITIES = {0: top_gap, 1: first_times_cost, 2: least_conf_weighted}


def reference(u, x, k, extra_columns=(), never=None):
    """Slow and obviously correct: the plain function per row, stable sort by (-s, i)."""
    fn = u.py_func if isinstance(u, alcore.Utility) else u
    scores = np.array([float(fn(x[i], *(float(c[i]) for c in extra_columns)))
                       for i in range(x.shape[0])])
    order = np.lexsort((np.arange(len(scores)), -scores))
    if never is not None:
        order = order[~never[order]]
    return order[:k], scores


def tied_rows(rng, n, c, dtype, distinct):
    rows = rng.dirichlet(np.ones(c), size=distinct)
    return np.ascontiguousarray(rows[rng.integers(distinct, size=n)].astype(dtype))


@st.composite
def cases(draw):
    n = draw(st.integers(1, 300))
    c = draw(st.integers(2, 12))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    logits = draw(st.booleans())
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    distinct = draw(st.integers(1, 8))  # few distinct rows: many exact ties
    if logits:
        x = (rng.normal(size=(distinct, c)) * 5).astype(dtype)[rng.integers(distinct, size=n)]
        x = np.ascontiguousarray(x)
    else:
        x = tied_rows(rng, n, c, dtype, distinct)
    arity = draw(st.sampled_from([0, 1, 2]))
    extra = [rng.integers(0, 3, size=n).astype(np.float64) for _ in range(arity)]
    never = rng.random(n) < draw(st.sampled_from([0.0, 0.3]))
    available = int((~never).sum())
    if available == 0:
        never[:] = False
        available = n
    k = draw(st.integers(1, available))
    return x, logits, arity, extra, never, k


@settings(max_examples=40)
@given(cases())
def test_select_top_custom_equals_python_reference(case):
    x, logits, arity, extra, never, k = case
    u = UTILITIES[arity]
    spec = None if arity == 0 else extra[0] if arity == 1 else dict(zip(u.extra, extra,
                                                                      strict=True))
    got = alcore.select_top(x, k, score=u, logits=logits, exclude=np.flatnonzero(never),
                            extra=spec)
    want, _ = reference(u, x, k, extra, never)
    np.testing.assert_array_equal(got, want)
    assert got.dtype == np.int64
    # The same with labeled= (never picked, as exclude= in a plain ranking).
    np.testing.assert_array_equal(
        alcore.select_top(x, k, score=u, logits=logits, labeled=never, extra=spec), want)


def test_one_row_and_plain_function():
    x = np.array([[0.25, 0.75]])
    np.testing.assert_array_equal(alcore.select_top(x, 1, score=first_class), [0])


def test_empty_input_is_refused():
    with pytest.raises(alcore.InvalidInputError, match="probs"):
        alcore.select_top(np.empty((0, 3)), 1, score=top_gap)


def test_nan_row_is_refused_with_the_builtin_message():
    x = np.full((5, 3), 1 / 3)
    x[3, 1] = np.nan
    with pytest.raises(alcore.InvalidInputError,
                       match=re.escape("probs must be finite: probs row 3, column 1 is nan")):
        alcore.select_top(x, 1, score=top_gap)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_rows_not_summing_to_one_are_refused_unless_normalize(dtype):
    x = np.full((4, 3), 0.5, dtype=dtype)
    with pytest.raises(alcore.InvalidInputError, match="probs row 0"):
        alcore.select_top(x, 1, score=first_class)
    # normalize=True: the rows are given to the function as they are (raw weights).
    x[2, 0] = 0.9
    np.testing.assert_array_equal(alcore.select_top(x, 1, score=first_class, normalize=True),
                                  [2])


def test_logits_are_given_raw():
    z = np.array([[10.0, -3.0], [50.0, 1.0], [-2.0, 0.0]])
    np.testing.assert_array_equal(alcore.select_top(z, 3, score=first_class, logits=True),
                                  [1, 0, 2])


def test_equal_to_builtin_margin():
    # Dyadic probabilities: both margins are exact, so the rankings (and ties) agree.
    rng = np.random.default_rng(5)
    x = rng.multinomial(64, np.full(6, 1 / 6), size=20_000).astype(np.float64) / 64
    np.testing.assert_array_equal(alcore.select_top(x, 500, score=top_gap),
                                  alcore.select_top(x, 500, score="margin"))


def test_thread_count_independence():
    rng = np.random.default_rng(7)
    x = tied_rows(rng, 150_000, 4, np.float32, 50)
    cost = rng.integers(0, 4, size=150_000).astype(np.float64)
    exclude = rng.random(150_000) < 0.2
    results = []
    for t in THREADS:
        alcore.set_num_threads(t)
        results.append(alcore.select_top(x, 2000, score=first_times_cost, extra=cost,
                                         exclude=exclude))
    for r in results[1:]:
        np.testing.assert_array_equal(r, results[0])
    want, _ = reference(first_times_cost, x, 2000, [cost], exclude)
    np.testing.assert_array_equal(results[0], want)


def test_first_bad_row_does_not_depend_on_the_thread_count():
    x = np.full((200_000, 3), 1 / 3)
    x[:, 0] = 0.2
    x[:, 1] = 0.4
    x[:, 2] = 0.4
    x[150_001, 0] = 0.95  # raises_on_big raises here
    x[150_001, 1:] = 0.025
    x[170_000, 2] = np.nan  # a later bad input row
    for t in THREADS:
        alcore.set_num_threads(t)
        with pytest.raises(alcore.InvalidInputError, match=r"row 150001 \(probs\[150001\]\)"):
            alcore.select_top(x, 1, score=raises_on_big)


def test_error_messages_are_pinned():
    x = np.array([[0.5, 0.5], [0.95, 0.05], [0.2, 0.8]])
    with pytest.raises(alcore.InvalidInputError, match=re.escape(
            "score function 'raises_on_big' raised ValueError: first class too likely for "
            "row 1 (probs[1]); make it return a finite number for every valid row")):
        alcore.select_top(x, 1, score=raises_on_big)
    z = np.array([[0.5, 0.5], [0.0, 1.0]])
    with pytest.raises(alcore.InvalidInputError, match=re.escape(
            "score function 'log_of_first' returned -inf for row 1 (probs[1]), a valid row; "
            "return a finite number for every row")):
        alcore.select_top(z, 1, score=log_of_first)
    with pytest.raises(alcore.InvalidInputError, match=re.escape(
            "score function 'returns_row' must return a number (a float) for each row, but "
            "returns array(float64, 1d, C)")):
        alcore.select_top(x, 1, score=returns_row)
    with pytest.raises(alcore.InvalidInputError, match=re.escape(
            "score function 'returns_tuple' must return a number (a float) for each row, but "
            "returns UniTuple(float64 x 2)")):
        alcore.select_top(x, 1, score=returns_tuple)
    with pytest.raises(alcore.InvalidInputError, match=re.escape(
            "score function 'sometimes_none' must return a number (a float) for each row, but "
            "returns OptionalType(float64)")):
        alcore.select_top(x, 1, score=sometimes_none)
    with pytest.raises(alcore.InvalidInputError,
                       match=r"score function 'uses_dict' cannot be compiled by Numba for "
                             r"float64 rows: TypingError: .*avoid Python objects .*dicts.*"
                             r"use a tuple or a module-level array instead"):
        alcore.select_top(x, 1, score=uses_dict)


def test_extra_errors_are_pinned():
    x = np.full((4, 2), 0.5)
    with pytest.raises(alcore.InvalidInputError, match=re.escape(
            "score function 'first_times_cost' takes 1 extra parameter(s) cost after the row, "
            "but extra= was not given")):
        alcore.select_top(x, 1, score=first_times_cost)
    with pytest.raises(alcore.InvalidInputError, match=re.escape(
            "extra= was given but score function 'top_gap' takes only the row")):
        alcore.select_top(x, 1, score=top_gap, extra=np.ones(4))
    with pytest.raises(alcore.InvalidInputError, match=re.escape(
            "extra['cost'] must have shape (4,) (one value per row), got shape (3,)")):
        alcore.select_top(x, 1, score=first_times_cost, extra=np.ones(3))
    with pytest.raises(alcore.InvalidInputError, match=re.escape(
            "extra['priority'] must be finite: row 2 is inf")):
        alcore.select_top(x, 1, score=least_conf_weighted,
                          extra={"cost": np.ones(4), "priority": [0, 0, np.inf, 0]})
    with pytest.raises(alcore.InvalidInputError, match=re.escape(
            "extra= must have one array per extra parameter of score function 'weighted' "
            "(cost, priority): missing priority; unknown prio")):
        alcore.select_top(x, 1, score=least_conf_weighted,
                          extra={"cost": np.ones(4), "prio": np.ones(4)})
    with pytest.raises(alcore.InvalidInputError, match=re.escape(
            "extra= is for a custom score function")):
        alcore.select_top(x, 1, score="margin", extra=np.ones(4))
    with pytest.raises(alcore.InvalidInputError, match="must take the row"):
        alcore.utility(lambda *rows: 1.0)
    with pytest.raises(alcore.InvalidInputError, match="must be a Python function"):
        alcore.utility(np.max)


def test_utility_object():
    assert top_gap.name == "top_gap" and top_gap.extra == ()
    assert least_conf_weighted.name == "weighted"
    assert least_conf_weighted.extra == ("cost", "priority")
    assert alcore.utility(top_gap) is top_gap
    assert top_gap(np.array([0.2, 0.5, 0.3])) == pytest.approx(0.8)
    assert isinstance(top_gap.compile(dtypes=[np.float64]), float)
    assert top_gap._address(np.float64) == top_gap._address("float64") > 0


CHILD = textwrap.dedent("""
    import sys, time
    sys.path.insert(0, {here!r})
    import alcore
    assert "numba" not in sys.modules
    import child_utility
    assert "numba" not in sys.modules  # decorating compiles nothing
    seconds = child_utility.gap.compile(dtypes=["float32"])
    jitted = len(child_utility.gap._jitted.overloads)
    print(seconds, jitted)
""")

CHILD_MODULE = textwrap.dedent("""
    import alcore

    @alcore.utility
    def gap(p):
        return 1.0 - float(p.max())
""")


def test_second_process_loads_the_compiled_code_from_the_cache(tmp_path):
    (tmp_path / "child_utility.py").write_text(CHILD_MODULE)
    env = {**os.environ, "ALCORE_CACHE_DIR": str(tmp_path / "cache")}
    code = CHILD.format(here=str(tmp_path))
    runs = [subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           env=env, cwd="/", check=True).stdout.split() for _ in range(2)]
    # The first process compiled the user's function; the second loaded the wrapper's
    # machine code and never compiled it.
    assert runs[0][1] == "1" and runs[1][1] == "0", runs


def test_select_with_a_custom_utility_and_its_reasons():
    rng = np.random.default_rng(3)
    x = tied_rows(rng, 500, 4, np.float64, 40)
    cost = rng.integers(1, 4, size=500).astype(np.float64)
    chosen = alcore.select(x, 20, score=first_times_cost, extra={"cost": cost},
                           return_utilities=True)
    want, scores = reference(first_times_cost, x, 20, [cost])
    np.testing.assert_array_equal(chosen.indices, want)
    np.testing.assert_array_equal(chosen.utilities, scores)
    assert chosen.reasons[0].startswith("rank 1 of 500 by first_times_cost ")
    with pytest.raises(alcore.InvalidInputError, match="extra= is for a custom score"):
        alcore.select(x, 2, extra=cost)


def test_top_k_from_file_reads_extras_from_columns(tmp_path):
    pl = pytest.importorskip("polars")
    rng = np.random.default_rng(4)
    x = tied_rows(rng, 2_000, 3, np.float64, 30)
    cost = rng.integers(0, 5, size=2_000).astype(np.float64)
    path = tmp_path / "pool.parquet"
    pl.DataFrame({"id": np.arange(2_000), **{f"p{j}": x[:, j] for j in range(3)},
                  "cost": cost, "usd": cost[::-1].copy()}).write_parquet(path)
    want, scores = reference(first_times_cost, x, 50, [cost])
    rows, ids, top = alcore.io.top_k_from_file(path, 50, score=first_times_cost,
                                               chunk_rows=300)
    np.testing.assert_array_equal(rows, want)
    np.testing.assert_array_equal(ids, want)  # the id column holds the row numbers
    np.testing.assert_array_equal(top, scores[want])
    mapped, _, _ = alcore.io.top_k_from_file(path, 50, score=first_times_cost,
                                             extra={"cost": "usd"}, chunk_rows=700)
    np.testing.assert_array_equal(mapped, reference(first_times_cost, x, 50,
                                                    [cost[::-1]])[0])
    with pytest.raises(alcore.InvalidInputError, match=re.escape(
            "pool.parquet: no column for score function 'weighted''s parameter priority "
            "(column 'priority')")):
        alcore.io.top_k_from_file(path, 5, score=least_conf_weighted)


def test_warmup_compiles_utilities():
    timings = alcore.warmup(utilities=[top_gap, first_class])
    assert timings["utility-top_gap"] >= 0 and "utility-first_class" in timings
    with pytest.raises(alcore.InvalidInputError, match="utilities must be"):
        alcore.warmup(utilities=3)


def test_cli_select_with_a_custom_utility(tmp_path, capsys):
    pl = pytest.importorskip("polars")
    from clitools import run, write

    rng = np.random.default_rng(8)
    x = tied_rows(rng, 400, 3, np.float64, 20)
    cost = rng.integers(1, 4, size=400).astype(np.float64)
    pool = write(pl.DataFrame({"id": [f"item{i}" for i in range(400)],
                               "probs": x.tolist(), "usd": cost}), tmp_path / "pool.parquet")
    (tmp_path / "mine.py").write_text("def per_cost(p, cost):\n"
                                      "    return float(p[0]) * cost\n")
    out = tmp_path / "batch.csv"
    code, _, err = run(["select", pool, "-k", 10, "--score", f"{tmp_path / 'mine.py'}:per_cost",
                        "--extra", "cost=usd", "--diversity", "none", "--out", out], capsys)
    assert code == 0, err
    want, _ = reference(first_times_cost, x, 10, [cost])
    assert pl.read_csv(out)["id"].to_list() == [f"item{i}" for i in want]
    code, _, err = run(["select", pool, "-k", 10, "--score", f"{tmp_path / 'mine.py'}:per_cost",
                        "--diversity", "none", "--out", tmp_path / "b2.csv"], capsys)
    assert code != 0 and "no column 'cost' for 'per_cost''s parameter cost" in err
    code, _, err = run(["select", pool, "-k", 10, "--score", "nope", "--out", out], capsys)
    assert code != 0 and "argument --score: invalid choice: 'nope'" in err
