"""StreamGate over utilities the caller computed (decide_utility_one/many) and over logits."""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alcore import InvalidInputError
from alcore.stream import STRATEGIES, Router, StreamGate

bm = pytest.importorskip("skactiveml.stream.budgetmanager")


def caller_utilities(n, seed):
    """Utilities unlike the built-in ones: a regressor's variance, on (0, 3), heavy-tailed,
    with ties (repeated values)."""
    rng = np.random.default_rng(seed)
    u = rng.gamma(0.7, 0.4, size=n)
    u[::17] = u[3]
    return u


def peer_decisions(peer, utilities, quantile=False):
    out = []
    for u in utilities:
        queried = peer.query_by_utility(np.array([u]))
        if quantile:
            peer.update(np.zeros((1, 1)), queried, utilities=np.array([u]))
        else:
            peer.update(np.zeros((1, 1)), queried)
        out.append(len(queried) == 1)
    return np.array(out)


@pytest.mark.parametrize("budget", [0.05, 0.3])
@pytest.mark.parametrize("name", ["fixed", "variable_uncertainty", "quantile"])
def test_deterministic_strategies_equal_scikit_activemls_query_by_utility(name, budget):
    u = caller_utilities(3000, 1)
    if name == "fixed":
        peer = bm.FixedUncertaintyBudgetManager(classes=np.arange(4), w=50, budget=budget)
    elif name == "variable_uncertainty":
        peer = bm.VariableUncertaintyBudgetManager(theta=1.0, s=0.01, w=50, budget=budget)
    else:
        peer = bm.BalancedIncrementalQuantileFilter(w=50, w_tol=20, budget=budget)
    want = peer_decisions(peer, u, quantile=name == "quantile")
    one = StreamGate(name, budget, window=50, classes=4, w_tol=20)
    many = StreamGate(name, budget, window=50, classes=4, w_tol=20)
    got = np.array([one.decide_utility_one(float(x)) for x in u])
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(many.decide_utility_many(u), want)
    assert 0 < want.sum() < len(u)  # the comparison decided something either way


@settings(max_examples=40, deadline=None)
@given(st.sampled_from(list(STRATEGIES)), st.floats(0.01, 1.0), st.integers(1, 300),
       st.integers(0, 2**64 - 1), st.booleans(),
       st.lists(st.floats(-5, 5) | st.sampled_from([0.0, 1.0, 1e150, -1e150]),
                min_size=0, max_size=120))
def test_many_equals_one_by_one_and_state_matches(strategy, budget, window, seed, hard_cap,
                                                  values):
    u = np.array(values, dtype=np.float64)
    a = StreamGate(strategy, budget, window=window, seed=seed, hard_cap=hard_cap, classes=3)
    b = StreamGate(strategy, budget, window=window, seed=seed, hard_cap=hard_cap, classes=3)
    half = len(u) // 2
    batch = np.concatenate([a.decide_utility_many(u[:half]), a.decide_utility_many(u[half:])])
    single = np.array([b.decide_utility_one(float(x)) for x in u], dtype=bool)
    np.testing.assert_array_equal(batch, single)
    assert a.to_json() == b.to_json()


def test_utilities_and_rows_share_one_state():
    """A row decided by decide_one and its utility decided by decide_utility_one are the same
    step of the same gate."""
    rng = np.random.default_rng(2)
    probs = rng.dirichlet(np.ones(3) * 0.5, size=400)
    rows = StreamGate("quantile", 0.2, utility="margin", window=40)
    mixed = StreamGate("quantile", 0.2, utility="margin", window=40)
    want = rows.decide_many(probs)
    utility = rows.utility(probs)
    got = [mixed.decide_one(p) if i % 2 else mixed.decide_utility_one(float(utility[i]))
           for i, p in enumerate(probs)]
    np.testing.assert_array_equal(got, want)
    assert rows.to_json() == mixed.to_json()


@pytest.mark.parametrize("value", [np.float32(0.25), np.float64(0.25), 0.25, 1, np.int64(1),
                                   np.array(0.25), np.array([0.25])])
def test_numbers_of_any_kind_decide_like_the_float(value):
    a, b = StreamGate("variable_uncertainty", 0.5), StreamGate("variable_uncertainty", 0.5)
    assert a.decide_utility_one(value) == b.decide_utility_one(float(np.asarray(value).item()))
    assert a.to_json() == b.to_json()


@pytest.mark.parametrize("call, match", [
    (lambda g: g.decide_utility_one(float("nan")),
     r"^u must be finite: u is nan; replace or drop that item \(a rejected call decides "
     r"nothing\)$"),
    (lambda g: g.decide_utility_one(float("-inf")), r"^u must be finite: u is -inf"),
    (lambda g: g.decide_utility_one(2e150), r"^u must lie in \[-1e150, 1e150\]: u is 2e\+150"),
    (lambda g: g.decide_utility_many([0.1, 0.2, np.nan, np.inf]),
     r"^utilities must be finite: utilities\[2\] is nan; replace or drop that item"),
    (lambda g: g.decide_utility_many(np.array([0.1, -1e151])),
     r"^utilities must lie in \[-1e150, 1e150\]: utilities\[1\] is -1e\+151"),
    (lambda g: g.decide_utility_many(np.zeros((2, 2))),
     r"^utilities must be 1-D with shape \(N,\), got shape \(2, 2\); pass one utility per item"),
    (lambda g: g.decide_utility_one([0.1, 0.2]),
     r"^u must be one utility \(a float\), got shape \(2,\); use decide_utility_many"),
    (lambda g: g.decide_utility_one("0.5"), r"^u must have a floating dtype .*got <U3"),
    (lambda g: g.decide_utility_one(None), r"^u is None; pass an array"),
    (lambda g: g.decide_utility_one(True), r"^u must have a floating dtype .*got bool"),
    (lambda g: g.decide_utility_many(["a"]), r"^utilities must have a floating dtype"),
])
def test_bad_utilities_are_refused_and_change_nothing(call, match):
    gate = StreamGate("quantile", 0.1, window=20)
    gate.decide_utility_many(caller_utilities(30, 3))
    before = gate.to_json()
    with pytest.raises(InvalidInputError, match=match):
        call(gate)
    assert gate.to_json() == before


def test_fixed_strategy_needs_the_class_count_for_utilities():
    gate = StreamGate("fixed", 0.1)
    with pytest.raises(InvalidInputError, match=r"the fixed strategy compares confidence with "
                       r"1/C \+ budget \(1 - 1/C\) and this gate has no class count yet; "
                       r"make the gate with classes=C$"):
        gate.decide_utility_one(0.5)
    assert gate.stats.seen == 0
    assert gate.decide_utility_many([]).shape == (0,)  # nothing to decide: no class count needed
    gate.decide_one(np.array([0.5, 0.3, 0.2]))  # a row fixes C = 3
    assert gate.classes == 3
    # confidence 1 - u <= 1/3 + 0.1 (2/3): u = 0.7 is queried, u = 0.5 is not.
    assert gate.decide_utility_one(0.7) and not gate.decide_utility_one(0.5)


def test_classes_fixed_at_construction_refuses_other_rows():
    gate = StreamGate("variable_uncertainty", 0.1, classes=4)
    assert gate.classes == 4
    with pytest.raises(InvalidInputError, match=r"this gate has seen rows of 4 classes, got 3"):
        gate.decide_one(np.array([0.5, 0.3, 0.2]))
    with pytest.raises(InvalidInputError, match=r"classes must be >= 2, got 1"):
        StreamGate("fixed", 0.1, classes=1)


def test_json_keeps_caller_utilities_and_reads_version_2():
    gate = StreamGate("quantile", 0.1, window=50, classes=5)
    gate.decide_utility_many(caller_utilities(80, 4) * 40 - 10)  # outside [0, 1]
    restored = StreamGate.from_json(gate.to_json())
    u = caller_utilities(200, 5)
    np.testing.assert_array_equal(restored.decide_utility_many(u), gate.decide_utility_many(u))
    old = json.loads(StreamGate("fixed", 0.1).to_json())
    old["version"] = 2
    del old["config"]["logits"]
    assert StreamGate.from_json(json.dumps(old)).logits is False


def test_concurrent_callers_share_the_budget_exactly():
    gate = StreamGate("variable_uncertainty", 0.1, window=100)
    u = caller_utilities(20_000, 6)
    results = {}

    def ones(i):
        results[i] = sum(gate.decide_utility_one(float(x)) for x in u[i::4])

    def batch():
        results["many"] = int(gate.decide_utility_many(u).sum())

    threads = [threading.Thread(target=ones, args=(i,)) for i in range(4)]
    threads.append(threading.Thread(target=batch))
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stats = gate.stats
    assert stats.seen == 2 * len(u)
    assert stats.queried == sum(results.values())


# --- logits ----------------------------------------------------------------------------------

def softmax64(z):
    z = np.asarray(z, dtype=np.float64)
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("utility", ["least_confidence", "margin", "entropy"])
def test_logits_gate_decides_on_the_softmax(utility, dtype):
    rng = np.random.default_rng(7)
    z = (rng.normal(size=(3000, 5)) * 3 + 50).astype(dtype)  # un-centred logits
    z[5] = z[4]
    on_logits = StreamGate("quantile", 0.1, utility=utility, window=200, logits=True)
    on_probs = StreamGate("quantile", 0.1, utility=utility, window=200)
    np.testing.assert_allclose(on_logits.utility(z), on_probs.utility(softmax64(z)),
                               rtol=1e-12, atol=1e-13)
    ones = StreamGate("quantile", 0.1, utility=utility, window=200, logits=True)
    batch = on_logits.decide_many(z)
    np.testing.assert_array_equal(batch, [ones.decide_one(row) for row in z])
    agree = (batch == on_probs.decide_many(softmax64(z))).mean()
    assert agree > 0.99  # the same up to rounding at the quantile's boundary


def test_logits_of_huge_magnitude_are_fine_and_nan_is_named():
    gate = StreamGate("variable_uncertainty", 0.5, logits=True)
    z = np.array([[3e38, -3e38, 0.0], [1e308, 1e308, -1e308]])
    np.testing.assert_allclose(gate.utility(z), [0.0, 0.5])
    with pytest.raises(InvalidInputError, match=r"^probs must be finite: probs row 1, column 2 "
                       r"is nan"):
        gate.decide_many(np.array([[0.0, 1.0, 2.0], [0.0, 1.0, np.nan]]))
    with pytest.raises(InvalidInputError, match=r"^p must be finite: p row 0, column 0 is inf"):
        gate.decide_one(np.array([np.inf, 0.0]))
    assert gate.stats.seen == 0
    big = np.zeros((5000, 3))
    big[4321, 1] = np.nan  # the threaded path names the same first row
    with pytest.raises(InvalidInputError, match=r"probs row 4321, column 1 is nan"):
        gate.decide_many(big)
    assert gate.stats.seen == 0


def test_logits_gate_saves_the_setting_and_routes_on_probabilities():
    gate = StreamGate("variable_uncertainty", 0.5, logits=True, utility="margin")
    restored = StreamGate.from_json(gate.to_json())
    assert restored.logits and json.loads(gate.to_json())["config"]["logits"] is True
    router = Router(gate, auto_label_at=0.9)
    z = np.array([[10.0, 0.0, 0.0], [0.1, 0.0, 0.05]])  # max p 0.99991 and ~0.35
    routes = router.route_many(z)
    assert routes[0] == "auto_label" and routes[1] != "auto_label"


# --- a custom utility of one row inside the gate ---------------------------------------------

def top_gap(p):
    """1 - (p1 - p2), written as a user would."""
    a, b = -np.inf, -np.inf
    for x in p:
        if x > a:
            a, b = x, a
        elif x > b:
            b = x
    return 1.0 - (a - b)


def first_logit(z):
    return 1.0 / (1.0 + np.exp(-z[0]))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_custom_utility_decides_as_the_builtin_it_equals(dtype):
    rng = np.random.default_rng(8)
    probs = rng.dirichlet(np.ones(4) * 0.7, size=5000).astype(dtype)
    custom = StreamGate("quantile", 0.1, utility=top_gap, window=100)
    builtin = StreamGate("quantile", 0.1, utility="margin", window=100)
    # The user's float32 arithmetic may round differently from the native float64 margin.
    np.testing.assert_allclose(custom.utility(probs), builtin.utility(probs), atol=1e-6)
    ones = StreamGate("quantile", 0.1, utility=top_gap, window=100)
    batch = custom.decide_many(probs)
    np.testing.assert_array_equal(batch, [ones.decide_one(p) for p in probs])
    assert (batch == builtin.decide_many(probs)).mean() > 0.99
    assert custom.utility == "custom:top_gap" and custom.max_utility(4) == 1.0


def test_custom_utility_gets_raw_logits_and_the_checks_still_run():
    z = np.random.default_rng(9).normal(size=(3000, 3)) * 2
    gate = StreamGate("variable_uncertainty", 0.2, utility=first_logit, logits=True)
    np.testing.assert_allclose(gate.utility(z), 1 / (1 + np.exp(-z[:, 0])), rtol=1e-12)
    z[2000, 1] = np.inf
    with pytest.raises(InvalidInputError, match=r"probs must be finite: probs row 2000, "
                       r"column 1 is inf"):
        gate.decide_many(z)
    probs_gate = StreamGate("variable_uncertainty", 0.2, utility=top_gap)
    with pytest.raises(InvalidInputError, match=r"p must lie in \[0, 1\]: p row 0, column 0 is "
                       r"-0\.5"):
        probs_gate.decide_one(np.array([-0.5, 1.5]))
    assert gate.stats.seen == 0 and probs_gate.stats.seen == 0


def test_custom_utility_result_is_independent_of_the_thread_count():
    from alcore import get_num_threads, set_num_threads

    probs = np.random.default_rng(10).dirichlet(np.ones(5), size=60_000)
    before = get_num_threads()
    try:
        results = []
        for threads in (1, 2, 3):
            set_num_threads(threads)
            results.append(StreamGate("quantile", 0.05, utility=top_gap).utility(probs))
    finally:
        set_num_threads(before)
    for other in results[1:]:
        np.testing.assert_array_equal(results[0], other)


def nan_after_half(p):
    return np.nan if p[0] > 0.5 else p[0]


def raise_on_ties(p):
    if p[0] == p[1]:
        raise ValueError("tie")
    return p[0]


def huge(p):
    return 1e200 * p[0] if p[0] > 0.15 else p[0]


@pytest.mark.parametrize("fn, rows, match", [
    (nan_after_half, [[0.2, 0.8], [0.3, 0.7], [0.6, 0.4]],
     r"^score function 'nan_after_half' returned nan for row 2 \(probs\[2\]\), a valid row; "
     r"return a finite number for every row"),
    (raise_on_ties, [[0.2, 0.8], [0.5, 0.5]],
     r"^score function 'raise_on_ties' raised ValueError: tie for row 1 \(probs\[1\]\); make "
     r"it return a finite number for every valid row$"),
    (huge, [[0.2, 0.8]],
     r"^utility 'huge' returned 2e\+199 for probs row 0; a gate's utilities must lie in "
     r"\[-1e150, 1e150\] \(rescale it\)$"),
])
def test_custom_utility_failures_name_the_row_and_change_nothing(fn, rows, match):
    gate = StreamGate("quantile", 0.1, utility=fn, window=10)
    gate.decide_many(np.array([[0.1, 0.9]] * 3))
    before = gate.to_json()
    with pytest.raises(InvalidInputError, match=match):
        gate.decide_many(np.array(rows))
    with pytest.raises(InvalidInputError, match=rf"{match.split(' for ')[0]} for (p )?row 0"):
        gate.decide_one(np.array(rows[-1]))
    assert gate.to_json() == before


def with_cost(p, cost):
    return p[0] * cost


def test_custom_utility_with_extra_inputs_is_refused_with_the_way_out():
    with pytest.raises(InvalidInputError, match=r"^a gate's utility takes the row alone "
                       r"\(def f\(p\)\); 'with_cost' also takes cost: compute those utilities "
                       r"yourself and call decide_utility_one\(u\)"):
        StreamGate("quantile", 0.1, utility=with_cost)


def test_custom_gate_state_needs_its_function_back():
    gate = StreamGate("quantile", 0.1, utility=top_gap, window=20)
    probs = np.random.default_rng(11).dirichlet(np.ones(3), size=300)
    gate.decide_many(probs[:100])
    text = gate.to_json()
    with pytest.raises(InvalidInputError, match=r"saved with the custom utility 'top_gap'; "
                       r"pass its function: StreamGate.from_json\(text, utility=f\)"):
        StreamGate.from_json(text)
    with pytest.raises(InvalidInputError, match=r"utility= is only for a gate saved with a "
                       r"custom utility; this one uses 'margin'"):
        StreamGate.from_json(StreamGate("fixed", 0.1, utility="margin").to_json(),
                             utility=top_gap)
    restored = StreamGate.from_json(text, utility=top_gap)
    np.testing.assert_array_equal(restored.decide_many(probs[100:]),
                                  gate.decide_many(probs[100:]))


def nan_on_first_class_big(p):
    return np.nan if p[0] > 0.9 else p[0]


def test_custom_gate_names_the_lowest_failing_row_for_every_thread_count():
    """A row whose utility is NaN before a row whose values are invalid: the lower one is
    reported, wherever the thread chunks start."""
    from alcore import get_num_threads, set_num_threads

    probs = np.full((40_000, 2), 0.5)
    probs[30_001] = [0.95, 0.05]   # utility NaN
    probs[30_002] = [1.5, -0.5]    # invalid input, in the same block for one thread
    before = get_num_threads()
    try:
        for threads in (1, 2, 3):
            set_num_threads(threads)
            gate = StreamGate("quantile", 0.1, utility=nan_on_first_class_big)
            with pytest.raises(InvalidInputError, match=r"returned nan for row 30001"):
                gate.decide_many(probs)
    finally:
        set_num_threads(before)
