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
    return _core.StreamGate(0, 0, 0.5, 10, 1.0, 0.01, 1.0, 0.1, 1e-3, 50.0, 0, False, False, 0, 0)


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
    lambda: _gate().decide_many(np.array([[0.25, 0.75]], dtype=">f8")),
    lambda: _gate().utilities(np.array([[0.25, 0.75]], dtype=">f8")),
])
def test_private_bindings_refuse_byte_swapped_arrays(call):
    """'>f8' has kind 'f' and 8 bytes, so it was read as garbage: top_k of [3, 1, 2] returned
    index 1, kcenter picked the wrong items, and a '>i8' index 1 became 2**56 (out of
    bounds)."""
    with pytest.raises(TypeError, match="native"):
        call()


@pytest.mark.parametrize("row", [
    np.array([0.25, 0.75], dtype=">f8"),  # byte-swapped
    np.array([0.25, 0.75], dtype=np.float16),
    np.array([0.25, 0.0, 0.75, 0.0])[::2],  # not contiguous
    np.array([[0.25, 0.75]]),  # 2-D
    [0.25, 0.75],  # not an ndarray
])
def test_private_decide_one_answers_none_for_what_it_does_not_read(row):
    """The per-item binding takes any object and leaves conversion to the Python layer: it
    answers None (not a decision, and not a pybind11 overload error, which costs
    microseconds to build) and the gate has not counted the item."""
    gate = _gate()
    assert gate.decide_one(row) is None
    assert gate.state()[2] == 0  # seen


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
    with pytest.raises(InvalidInputError, match=r"theta must be >= 1e-06"):
        StreamGate("variable_uncertainty", 0.1, theta=theta)


def test_long_stream_state_is_restorable():
    """theta=-1 was accepted, grew by (1 + s) per item to -inf after ~71k items, and
    to_json then wrote -Infinity, which from_json refuses: the gate could not be saved. A
    positive theta stays finite: the state restores and continues identically."""
    probs = _rows(np.full(100_000, 0.5))
    gate = StreamGate("variable_uncertainty", 0.1, theta=1e-6)
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
    ("history", [2e150, 0.1], r"state.history item must be <= 1e\+150"),
    ("history", [0.1, -5e150], r"state.history item must be >= -1e\+150"),
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


# --- second review: unknown keywords, from_json laxness, parameter ranges, random's spend --

from alcore import stream as stream_module  # noqa: E402
from alcore.batching import BatchSizer  # noqa: E402
from alcore.stopping import (  # noqa: E402
    AllOf,
    AnyOf,
    MaxLabels,
    OverallUncertainty,
    StabilizingPredictions,
)


@pytest.mark.parametrize("call, match", [
    (lambda: Router(StreamGate("fixed", 0.1), expert=0.5),
     r"Router got an unknown argument expert= \(did you mean expert_at=\?\); it takes gate=, "
     r"auto_label_at=, expert_at=, expert_disagreement=, queue_capacity=$"),
    (lambda: Router(StreamGate("fixed", 0.1), colour=1, auto_label=0.9),
     r"Router got an unknown argument auto_label=, colour= \(did you mean auto_label_at=\?\)"),
    (lambda: StreamGate("fixed", 0.1, windw=10),
     r"unknown parameter 'windw' \(did you mean 'window'\?\); StreamGate takes strategy, "
     r"budget, utility, window, seed, hard_cap, classes, logits and the strategy parameters "
     r"theta, s, delta, v, w_tol, atol"),
    (lambda: BatchSizer(100, sise=5),
     r"BatchSizer got an unknown argument sise= \(did you mean size=\?\); it takes "
     r"pool_size=, policy=, size=, fraction=, growth=, min_gain=, rounds=, min_fraction=, "
     r"max_fraction=$"),
    (lambda: BatchSizer(100).record(5, 0.5, round=1),
     r"BatchSizer.record got an unknown argument round=; it takes n_labeled=, accuracy=$"),
    (lambda: StabilizingPredictions(treshold=0.9),
     r"StabilizingPredictions got an unknown argument treshold= \(did you mean threshold=\?\)"
     r"; it takes threshold=, window=$"),
    (lambda: OverallUncertainty(0.1, window=3),
     r"OverallUncertainty got an unknown argument window=; it takes threshold=$"),
    (lambda: MaxLabels(10, budget=5),
     r"MaxLabels got an unknown argument budget=; it takes max_labels=$"),
    (lambda: AnyOf(MaxLabels(1), mode="any"),
     r"AnyOf got an unknown argument mode=; it takes \*criteria$"),
    (lambda: AllOf(MaxLabels(1), mode="all"), r"AllOf got an unknown argument mode="),
    (lambda: MaxLabels(10).update(n_labels=3),
     r"MaxLabels.update got an unknown argument n_labels= \(did you mean n_labeled=\?\); it "
     r"takes n_labeled=, predictions=, scores=$"),
    (lambda: StabilizingPredictions().update(prediction=[1]),
     r"StabilizingPredictions.update got an unknown argument prediction="),
    (lambda: Router(StreamGate("fixed", 0.1)).route_many(np.full((1, 2), 0.5), sample=None),
     r"Router.route_many got an unknown argument sample= \(did you mean samples=\?\); it "
     r"takes probs=, samples=, exclude=$"),
    (lambda: Router(StreamGate("fixed", 0.1)).route(np.full(2, 0.5), excluded=[0]),
     r"Router.route got an unknown argument excluded=; it takes p=, samples=$"),
    (lambda: OverallUncertainty(0.1).update(score=[0.1]),
     r"OverallUncertainty.update got an unknown argument score= \(did you mean scores=\?\)"),
])
def test_unknown_keywords_are_named_with_the_valid_ones(call, match):
    """Router(gate, expert=0.5) raised Python's TypeError ("unexpected keyword argument"),
    naming neither the valid arguments nor the fix; so did BatchSizer and the stopping
    criteria."""
    with pytest.raises(InvalidInputError, match=match):
        call()


def _saved_gate(strategy="quantile"):
    gate = StreamGate(strategy, 0.2, window=5, seed=3)
    gate.decide_many(np.full((8, 3), 1 / 3))
    return json.loads(gate.to_json())


@pytest.mark.parametrize("version, match", [
    (2.0, r"version 2\.0 \(a JSON number with a fraction or exponent\) is not supported; "
          r"this alcore reads versions 2 and 3 \(the integers"),
    (True, r"version True \(a JSON boolean\) is not supported"),
    ("2", r"version '2' \(a JSON string\) is not supported"),
    (None, r"version None \(a JSON null\) is not supported"),
    ([2], r"version \[2\] \(a JSON array\) is not supported"),
    (4, r"version 4 \(a JSON integer\) is not supported; this alcore reads versions 2 and 3"),
])
def test_from_json_version_must_be_the_integer_2(version, match):
    """"version": 2.0 was accepted (2.0 == 2 in Python)."""
    data = _saved_gate()
    data["version"] = version
    with pytest.raises(InvalidInputError, match=match):
        StreamGate.from_json(json.dumps(data))
    del data["version"]
    with pytest.raises(InvalidInputError, match=r"version missing is not supported"):
        StreamGate.from_json(json.dumps(data))


@pytest.mark.parametrize("strategy, edit, match", [
    ("quantile", lambda d: d["state"].update(history=[0.5] * 3),
     r"state.history holds 3 utilities; a 'quantile' gate that saw 8 items keeps 5"),
    ("variable_uncertainty", lambda d: d["state"].update(history=[0.5]),
     r"state.history holds 1 utilities; a 'variable_uncertainty' gate that saw 8 items "
     r"keeps 0"),
    ("fixed", lambda d: d["config"].update(budget=10**400),
     r"config.budget must be a finite number, got an integer of 401 digits"),
    ("fixed", lambda d: d["config"].update(window=2**62 + 1), r"config.window must be <= "),
    ("fixed", lambda d: d["state"].update(classes=2**63 - 1), r"state.classes must be <= "),
    ("fixed", lambda d: d["config"]["params"].update(w_tol=1e-320),
     r"config: w_tol must be >= 1, got 1e-320"),
    ("fixed", lambda d: d["config"]["params"].update(theta=1e7),
     r"config: theta must be <= 1e\+06, got 10000000.0"),
    ("fixed", lambda d: d["config"]["params"].update(s=True),
     r"config.params.s must be a number, got bool"),
    ("fixed", lambda d: d["state"].update(queried=-1), r"state.queried must be >= 0"),
    ("fixed", lambda d: d["state"].update(seen=8.0), r"state.seen must be an integer, got float"),
])
def test_from_json_refuses_inconsistent_or_out_of_range_state(strategy, edit, match):
    """States no gate can reach (a class count unknown after items, a history the strategy
    does not keep, numbers beyond float64 that raised OverflowError) are refused."""
    data = _saved_gate(strategy)
    edit(data)
    with pytest.raises(InvalidInputError, match=r"corrupt StreamGate state: " + match):
        StreamGate.from_json(json.dumps(data))


def test_rejected_from_json_creates_no_gate(monkeypatch):
    """The gate was built from config before the state was checked: a rejected text had
    already made (and configured) a native gate."""
    data = _saved_gate()
    made = []
    native = stream_module._core.StreamGate

    def counting(*args):
        made.append(args)
        return native(*args)

    monkeypatch.setattr(stream_module._core, "StreamGate", counting)
    data["state"]["queried"] = 99
    with pytest.raises(InvalidInputError, match=r"state.queried must be <= 8"):
        StreamGate.from_json(json.dumps(data))
    assert made == []
    data["state"]["queried"] = 1
    StreamGate.from_json(json.dumps(data))
    assert len(made) == 1


@pytest.mark.parametrize("name, value, match", [
    ("w_tol", 1e-320, r"w_tol must be >= 1, got 1e-320; pass a value in \[1, 2\*\*62\] "
                      r"\(default 50\)"),
    ("w_tol", 0.5, r"w_tol must be >= 1, got 0.5"),
    ("w_tol", 2.0**63, r"w_tol must be <= 4.61169e\+18"),
    ("w_tol", float("inf"), r"w_tol must be finite, got inf"),
    ("w_tol", float("nan"), r"w_tol must be finite, got nan"),
    ("theta", 1e-320, r"theta must be >= 1e-06, got 1e-320; pass a value in \[1e-06, 1e\+06\]"),
    ("theta", 1e7, r"theta must be <= 1e\+06, got 10000000.0"),
    ("theta", float("inf"), r"theta must be finite, got inf"),
    ("s", 0.6, r"s must be <= 0.5, got 0.6; pass a value in \[0, 0.5\] \(default 0.01\)"),
    ("s", -1e-320, r"s must be >= 0"),
    ("delta", 1e3, r"delta must be <= 100, got 1000.0; pass a value in \[0, 100\]"),
    ("delta", float("inf"), r"delta must be finite, got inf"),
    ("v", 1.5, r"v must be <= 1, got 1.5"),
    ("atol", 1.0, r"atol must be < 1, got 1.0; pass a value in \[0, 1\)"),
    ("atol", float("-inf"), r"atol must be finite"),
])
def test_parameters_outside_their_documented_range_are_refused(name, value, match):
    """w_tol=1e-320 was accepted: owed / w_tol overflowed to inf in the quantile filter."""
    with pytest.raises(InvalidInputError, match=match):
        StreamGate("quantile", 0.1, **{name: value})


def test_parameter_ranges_are_the_documented_ones():
    import re

    doc = StreamGate.__doc__
    for name, (low, high, _, high_open) in stream_module.PARAMETER_BOUNDS.items():
        found = re.search(rf"``{name}`` \(([^)]+)\) in \[([^,]+), ([^\])]+)([\])])", doc)
        assert found, name
        default, doc_low, doc_high, bracket = found.groups()
        assert float(default) == stream_module.PARAMETERS[name], name
        assert float(doc_low) == low and bracket == (")" if high_open else "]"), name
        assert (2.0**62 if doc_high == "2**62" else float(doc_high)) == high, name


@pytest.mark.parametrize("strategy", ["quantile", "randomized_variable_uncertainty", "split"])
def test_extreme_parameters_keep_the_state_finite(strategy):
    """At every bound at once the gate's arithmetic stays finite over a stream of constant,
    tied and varied rows, and the state restores."""
    rows = np.concatenate([np.full((20_000, 2), 0.5), _rows(np.linspace(0.5, 1, 20_000))])
    for theta, s, delta, w_tol in [(1e-6, 0.5, 100.0, 1.0), (1e6, 0.0, 0.0, 2.0**62),
                                   (1e6, 0.5, 100.0, 1.0)]:
        gate = StreamGate(strategy, 0.999, window=3, theta=theta, s=s, delta=delta,
                          w_tol=w_tol, v=1.0)
        gate.decide_many(rows)
        stats = gate.stats
        assert all(np.isfinite([stats.windowed_spending, stats.threshold, stats.budget_used]))
        StreamGate.from_json(gate.to_json())


def _random_bounds():
    """The share of the budget the docstring promises for "random" (default window)."""
    import re

    found = re.search(r"with the default window between ([0-9.]+) and ([0-9.]+) times the\s+"
                      r"budget", StreamGate.__doc__)
    assert found, "StreamGate's docstring no longer states random's spending"
    return float(found[1]), float(found[2])


@pytest.mark.parametrize("budget", [0.001, 0.01, 0.1, 0.5])
def test_random_spends_what_its_docstring_says(budget):
    """The docstring said "query with probability budget", yet the windowed check refuses
    heads whenever the estimate has reached the budget: 0.93-0.98 of it was spent. As
    scikit-activeml's RandomBudgetManager does; the docstring now states the share, and
    every seed over a 1M-item stream lands in it and within the hard bound
    budget n + n / w + budget w + 1."""
    low, high = _random_bounds()
    n = 1_000_000
    rows = np.full((n, 2), 0.5)
    for seed in range(4):
        gate = StreamGate("random", budget, seed=seed)
        queried = int(gate.decide_many(rows).sum())
        assert low <= queried / (budget * n) <= high, (seed, queried / (budget * n))
        assert queried < budget * n + n / gate.window + budget * gate.window + 1


def test_random_spends_like_scikit_activemls_random_budget_manager():
    """With scikit-activeml's window of 100 both spend the same share below the budget."""
    bm = pytest.importorskip("skactiveml.stream.budgetmanager")
    for budget in (0.01, 0.3):
        peer = bm.RandomBudgetManager(random_state=0, w=100, budget=budget)
        theirs = len(peer.query_by_utility(np.full(100_000, 0.5))) / 100_000
        ours = StreamGate("random", budget, window=100, seed=0).decide_many(
            np.full((100_000, 2), 0.5)).mean()
        assert theirs < budget and ours < budget
        assert abs(ours / theirs - 1) < 0.06, (budget, ours, theirs)


@pytest.mark.parametrize("strategy", ["variable_uncertainty", "split"])
def test_threshold_never_underflows_to_a_dead_gate(strategy):
    # Tied rows have confidence 0: every query shrinks theta by (1 - s). At s = 0.5 it
    # underflowed to 0 after about 1,075 queries, and the gate never queried again.
    gate = StreamGate(strategy, 0.5, utility="margin", s=0.5)
    tied = np.full((200_000, 2), 0.5)
    decisions = gate.decide_many(tied)
    assert decisions[-10_000:].sum() > 1_000
    assert gate.to_json()  # the floor is a valid saved state
    assert json.loads(gate.to_json())["state"]["theta"] > 0


def test_huge_python_integers_are_refused_with_a_message():
    with pytest.raises(InvalidInputError,
                       match=r"auto_label_at must be a finite number, got an integer of 401 "):
        Router(StreamGate("fixed", 0.1), auto_label_at=10**400)
