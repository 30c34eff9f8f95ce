"""Review of issue 8's stream gate and native boundary: inputs that broke it (crashes, a
filter spending its whole stream, states that could not be restored, wrong error types).
.ci/sanitize runs this file under ASan + UBSan too."""

from __future__ import annotations

import json

import numpy as np
import pytest

from alcore import InvalidInputError, _core
from alcore.diversity import kcenter
from alcore.stream import Router, StreamGate

# --- k-center: a segfault on finite embeddings -------------------------------------------

@pytest.mark.parametrize("labeled", [None, [0]])
def test_kcenter_on_large_finite_embeddings_is_an_error_not_a_crash(labeled):
    """Entries of 1e20 pass the finiteness check, but their float32 squared distances are
    +inf: no item ever joined a cluster, the farthest search found none and index -1 was
    read (segmentation fault)."""
    emb = np.array([[0, 0], [1e20, 0], [0, 1e20], [3e20, 1]], dtype=np.float32)
    with pytest.raises(InvalidInputError, match=r"too large for float32 squared distances.*"
                                                r"rescale the embeddings"):
        kcenter(emb, 2, labeled=labeled)


def test_kcenter_just_below_the_magnitude_limit_is_exact():
    """The limit leaves every squared distance finite: picks equal a float64 greedy's."""
    limit = np.sqrt(np.finfo(np.float32).max / 8 / 2)
    emb = np.array([[-1, 0], [1, 0], [0, 1], [0, -0.5]], dtype=np.float32) * np.float32(limit)
    picks = kcenter(emb, 3, labeled=[0])
    x = emb.astype(np.float64)
    chosen, want = [0], []
    for _ in range(3):  # farthest-first, lower index on ties
        d = np.min([((x - x[c]) ** 2).sum(axis=1) for c in chosen], axis=0)
        d[chosen] = -1
        chosen.append(int(np.argmax(d)))
        want.append(chosen[-1])
    np.testing.assert_array_equal(picks, want)


@pytest.mark.parametrize("initial", [[-5], [100], [0, 4]])
def test_private_kcenter_refuses_out_of_range_initial_centers(initial):
    """-5 corrupted the heap ("double free or corruption"), 100 read past the matrix."""
    x = np.ones((4, 2), dtype=np.float32)
    with pytest.raises(ValueError, match="initial center out of range"):
        _core.kcenter(x, np.array(initial, dtype=np.int64), 1, 0, None, True)


def test_private_kcenter_refuses_nan_rows():
    """NaN distances never lower the running minimum: the same index -1 segfault."""
    with pytest.raises(ValueError, match="finite"):
        _core.kcenter(np.full((4, 2), np.nan, dtype=np.float32), np.zeros(0, np.int64), 3, 0,
                      None, True)


# --- byte-swapped arrays at the native boundary -------------------------------------------

def _gate():
    return _core.StreamGate(0, 0, 0.5, 10, 1.0, 0.01, 1.0, 0.1, 1e-3, 50.0, 0, False)


@pytest.mark.parametrize("call", [
    lambda: _core.top_k(np.array([3.0, 1.0, 2.0], dtype=">f8"), None, 1),
    lambda: _core.score_rows(np.array([[0.25, 0.75]], dtype=">f8"), 0, False, False, 1e-3,
                             False),
    lambda: _core.select_top(np.full((4, 2), 0.5, dtype=">f4"), 0, False, False, 1e-3, False,
                             None, 1, False),
    lambda: _core.sample_scores(np.full((2, 3, 2), 0.5, dtype=">f8"), 0, False, 1e-3),
    lambda: _core.kcenter(np.arange(8, dtype=">f4").reshape(4, 2), np.zeros(0, np.int64), 2, 0,
                          None, True),
    lambda: _core.kcenter(np.arange(8, dtype=np.float32).reshape(4, 2),
                          np.array([1], dtype=">i8"), 1, 0, None, True),
    lambda: _core.smallest_k_per_row(np.ones((2, 2), dtype=">f4"), 1),
    lambda: _gate().decide_one(np.array([0.25, 0.75], dtype=">f8")),
    lambda: _gate().decide_many(np.array([[0.25, 0.75]], dtype=">f8")),
    lambda: _gate().utilities(np.array([[0.25, 0.75]], dtype=">f8")),
])
def test_private_bindings_refuse_byte_swapped_arrays(call):
    """'>f8' has kind 'f' and 8 bytes, so it was read as garbage: top_k of [3, 1, 2] returned
    index 1, kcenter picked the wrong items, and a '>i8' index 1 became 2**56 (out of
    bounds)."""
    with pytest.raises(TypeError, match="native"):
        call()


def test_public_functions_still_take_byte_swapped_arrays():
    """The public layer converts them once (float_array), so users are not affected."""
    assert StreamGate("fixed", 0.5).decide_one(np.array([0.5, 0.5], dtype=">f8"))
    rows = np.array([[0.5, 0.5]], dtype=">f4")
    assert StreamGate("fixed", 0.5).decide_many(rows).tolist() == [True]


# --- the quantile filter spent the whole stream on ties -----------------------------------

def _rows(u):
    """Two-class rows with max probability u."""
    u = np.asarray(u, dtype=np.float64)
    return np.column_stack([u, 1 - u])


STREAMS = {
    "constant": lambda n: _rows(np.full(n, 0.5)),
    "saturated float32": lambda n: _rows(np.ones(n)).astype(np.float32),  # softmax at 1.0
    "bursts": lambda n: _rows(np.where((np.arange(n) // 20_000) % 2 == 0, 0.5, 0.999)),
}


@pytest.mark.parametrize("budget", [0.001, 0.05, 0.5])
@pytest.mark.parametrize("kind", list(STREAMS))
def test_quantile_filter_keeps_the_budget_when_utilities_tie(kind, budget):
    """With every utility in the window equal, the range is 0 and the balancing term
    vanished: u >= theta held for every item and the filter queried all of them (1000x a
    0.1 % budget, 50x on bursts of confident items)."""
    n = 1_000_000 if kind == "bursts" else 200_000  # bursts: enough labels at 0.1 %
    gate = StreamGate("quantile", budget)
    queried = gate.decide_many(STREAMS[kind](n))
    assert abs(queried.mean() / budget - 1) <= 0.05, queried.mean()
    if kind != "bursts":  # only labels owed decide on ties: no prefix runs ahead either
        assert (np.cumsum(queried) <= budget * np.arange(1, n + 1) + 1).all()


def test_quantile_filter_with_a_window_of_one_follows_the_budget():
    """window=1: range 0 always; every item used to be queried."""
    queried = StreamGate("quantile", 0.1, window=1).decide_many(_rows(np.linspace(0.5, 1, 5000)))
    assert queried.sum() == 500


# --- settings the native gate could not take -----------------------------------------------

@pytest.mark.parametrize("budget", [1e-300, 5e-324])
def test_budget_too_small_for_the_default_window(budget):
    """50 / budget overflowed int64 (TypeError from the binding) or was inf (OverflowError)."""
    with pytest.raises(InvalidInputError, match=r"budget .* too small for the default window.*"
                                                r"pass window="):
        StreamGate("variable_uncertainty", budget)
    assert StreamGate("variable_uncertainty", budget, window=100).window == 100


@pytest.mark.parametrize("window", [2**63, 2**64, 10**30, np.uint64(2**63)])
def test_window_beyond_int64_is_invalid_input(window):
    with pytest.raises(InvalidInputError, match=r"window must be at most 2\*\*62"):
        StreamGate("quantile", 0.1, window=window)


@pytest.mark.parametrize("classes", [2**63, 2**70])
def test_class_count_beyond_int64_is_invalid_input(classes):
    gate = StreamGate("fixed", 0.1)
    with pytest.raises(InvalidInputError, match="classes must be <="):
        gate.max_utility(classes)
    with pytest.raises(InvalidInputError, match="classes must be <="):
        gate.fixed_threshold(classes)


@pytest.mark.parametrize("theta", [0, -1.0, np.float64(-0.5)])
def test_theta_must_be_positive(theta):
    with pytest.raises(InvalidInputError, match=r"theta must be > 0"):
        StreamGate("variable_uncertainty", 0.1, theta=theta)


def test_long_stream_state_is_restorable():
    """theta=-1 was accepted, grew by (1 + s) per item to -inf after ~71k items, and
    to_json then wrote -Infinity, which from_json refuses: the gate could not be saved. A
    positive theta stays finite: the state restores and continues identically."""
    probs = _rows(np.full(100_000, 0.5))
    gate = StreamGate("variable_uncertainty", 0.1, theta=1e-300)
    gate.decide_many(probs)
    restored = StreamGate.from_json(gate.to_json())
    np.testing.assert_array_equal(restored.decide_many(probs[:1000]),
                                  gate.decide_many(probs[:1000]))


# --- from_json accepted states no gate can reach -------------------------------------------

def _saved():
    gate = StreamGate("quantile", 0.1, window=5)
    gate.decide_many(_rows(np.linspace(0.5, 1, 20)))
    return json.loads(gate.to_json())


@pytest.mark.parametrize("key, value, match", [
    ("history", [2.0, 0.1], r"state.history item must be <= 1"),
    ("history", [0.1, -5.0], r"state.history item must be >= 0"),
    ("history", [1e308, -1e308], r"state.history item"),
    ("theta", -5.0, r"state.theta must be >= 0"),
    ("spent", 1e308, r"state.spent must be <= 6"),
])
def test_from_json_refuses_unreachable_state(key, value, match):
    """A history of +-1e308 made the range inf and every later query decision NaN-driven; a
    negative theta never queries; spent above the window blocks queries for ages."""
    data = _saved()
    data["state"][key] = value
    with pytest.raises(InvalidInputError, match=r"corrupt StreamGate state: " + match):
        StreamGate.from_json(json.dumps(data))


def test_from_json_still_takes_every_reachable_state():
    for strategy, utility in [("quantile", "entropy"), ("variable_uncertainty", "margin")]:
        gate = StreamGate(strategy, 0.2, utility=utility, window=50)
        gate.decide_many(np.full((300, 7), 1 / 7))  # scaled entropy of uniform rows: 1 (+ulp)
        assert StreamGate.from_json(gate.to_json()).to_json() == gate.to_json()


# --- Router.route: the samples message -----------------------------------------------------

def test_route_samples_with_wrong_class_count_names_the_row_shape():
    """route(p, samples=(T, 3)) for a 2-class row said "shape (T, 1, 2) to match probs",
    the internal batch shape, not the (T, C) route takes."""
    router = Router(StreamGate("fixed", 0.5))
    with pytest.raises(InvalidInputError, match=r"samples must have shape \(T, 2\) for one row"):
        router.route(np.array([0.5, 0.5]), samples=np.array([[0.5, 0.25, 0.25]]))
