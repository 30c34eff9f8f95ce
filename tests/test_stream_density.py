"""DensityGate: the window's densities against slow references, decisions against a twin
gate fed the reference utilities, batch == one by one, scikit-activeml's
StreamDensityBasedAL item by item, rejected calls, JSON."""

from __future__ import annotations

import copy
import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import alcore
from alcore.stream import StreamGate
from alcore.stream_density import LOWEST_UTILITY, DensityGate


class SlowWindow:
    """The obvious reference: a list of the last W items, float64 distances by loops."""

    def __init__(self, window, density="ldf", k=10):
        self.window, self.density, self.k = window, density, k
        self.items, self.min_sq = [], []

    @staticmethod
    def sq(a, b):
        return sum((float(x) - float(y)) ** 2 for x, y in zip(a, b, strict=True))

    def step(self, x):
        if self.density == "ldf":
            ldf, nearest = 0, math.inf
            for i, w in enumerate(self.items):
                d = self.sq(w, x)
                nearest = min(nearest, d)
                if d < self.min_sq[i]:
                    ldf += 1
                    self.min_sq[i] = d
            self.items.append(list(x))
            self.min_sq.append(nearest)
            result = float(ldf)
        else:
            norm = math.sqrt(sum(float(t) ** 2 for t in x))
            unit = [float(t) / norm for t in x]
            sims = sorted((sum(a * b for a, b in zip(w, unit, strict=True)) for w in self.items),
                          reverse=True)
            result = 1.0 if not sims else max(0.0, sum(sims[:self.k]) / len(sims[:self.k]))
            self.items.append(unit)
            self.min_sq.append(0.0)
        if len(self.items) > self.window:
            del self.items[0], self.min_sq[0]
        return result


# Small integers: every squared distance is exact in float32, so ties stay ties and the
# kernel's densities must equal the reference's exactly.
@st.composite
def int_streams(draw, max_items=40):
    n = draw(st.integers(1, max_items))
    d = draw(st.integers(1, 6))
    values = draw(st.sampled_from([[0, 1], [-2, -1, 0, 1, 2], [-3, 0, 3, 5]]))
    e = draw(hnp.arrays(np.float64, (n, d), elements=st.sampled_from(values)))
    if n > 2 and draw(st.booleans()):
        e[1:3] = e[0]  # exact duplicates
    return e


def _variable_gate(**kw):
    return StreamGate("variable_uncertainty", 0.2, utility="margin", window=20, **kw)


@settings(max_examples=150, deadline=None)
@given(int_streams(), st.integers(1, 8), st.sampled_from(["float32", "float64"]),
       st.integers(1, 3), st.booleans())
def test_ldf_equals_slow_reference_and_twin_gate(e, window, dtype, min_ldf, count_sparse):
    rng = np.random.default_rng(len(e))
    u = rng.random(len(e))
    dg = DensityGate(_variable_gate(), window=window, dtype=dtype, min_ldf=min_ldf,
                     count_sparse=count_sparse)
    twin = _variable_gate()
    ref = SlowWindow(window)
    for i in range(len(e)):
        peek = dg.densities(e[i:i + 1])[0]
        density = ref.step(e[i])
        assert peek == density
        if density >= min_ldf:
            expected = twin.decide_utility_one(float(u[i]))
        else:
            expected = count_sparse and twin.decide_utility_one(LOWEST_UTILITY)
        assert dg.decide_one(float(u[i]), e[i]) == expected
    assert dg.filled == min(window, len(e))
    assert dg.gate.to_json() == twin.to_json()


@settings(max_examples=60, deadline=None)
@given(int_streams(), st.integers(1, 8), st.integers(1, 4), st.sampled_from([0.0, 1.0, 2.5]))
def test_similarity_matches_slow_reference(e, window, k, beta):
    e = e.copy()
    e[np.all(e == 0, axis=1), 0] = 1.0  # cosine needs non-zero rows
    dg = DensityGate(_variable_gate(), window=window, density="similarity", k=k, beta=beta,
                     dtype="float64")
    ref = SlowWindow(window, "similarity", k)
    for i in range(len(e)):
        got = dg.densities(e[i:i + 1])[0]
        want = ref.step(e[i])
        assert got == pytest.approx(want, abs=1e-12)
        assert 0.0 <= got <= 1.0 + 1e-12
        dg.decide_one(0.5, e[i])


@settings(max_examples=80, deadline=None)
@given(int_streams(max_items=60), st.integers(1, 10),
       st.sampled_from(["ldf", "similarity"]), st.sampled_from([1.0, 0.5]),
       st.lists(st.integers(0, 60), max_size=4), st.booleans(), st.booleans())
def test_batch_equals_one_by_one(e, window, density, beta, cuts, rows, count_sparse):
    e = e.copy()
    e[np.all(e == 0, axis=1), 0] = 1.0
    n = len(e)
    rng = np.random.default_rng(n)
    probs = rng.dirichlet(np.ones(3), size=n)
    p = probs if rows else rng.random(n)

    def make():
        return DensityGate(_variable_gate(), window=window, density=density, beta=beta, k=3,
                           min_ldf=2, count_sparse=count_sparse)

    one, many = make(), make()
    singles = [one.decide_one(p[i] if rows else float(p[i]), e[i]) for i in range(n)]
    bounds = [0, *sorted(c % (n + 1) for c in cuts), n]
    batched = np.concatenate([many.decide_many(p[a:b], e[a:b])
                              for a, b in itertools.pairwise(bounds)])
    assert batched.dtype == bool
    assert batched.tolist() == singles
    assert one.to_json() == many.to_json()


def _skactiveml_stream(manager, gate, n=400, d=4, window=30, seed=0):
    stream_mod = pytest.importorskip("skactiveml.stream")
    from skactiveml.base import SkactivemlClassifier

    class Fixed(SkactivemlClassifier):
        """Returns the stream's probability row for the one candidate."""

        def __init__(self):
            super().__init__(classes=[0, 1, 2])

        def fit(self, X, y, sample_weight=None):
            return self

        def predict_proba(self, X):
            return self.row

    rng = np.random.default_rng(seed)
    # Clustered so the ldf varies; continuous so no two distances tie within rounding.
    centers = rng.normal(scale=3.0, size=(4, d))
    X = centers[rng.integers(4, size=n)] + rng.normal(size=(n, d))
    P = rng.dirichlet(np.ones(3) * 0.7, size=n)
    qs = stream_mod.StreamDensityBasedAL(window_size=window, budget_manager=manager)
    clf = Fixed().fit(X[:1], np.array([0]))
    dg = DensityGate(gate, window=window, dtype="float64")
    theirs_q, theirs_ldf, ours_q, ours_ldf = [], [], [], []
    for i in range(n):
        clf.row = P[i:i + 1]
        queried = qs.query(X[i:i + 1], clf)
        probe = copy.deepcopy(qs)
        theirs_ldf.append(probe._calculate_ldf([X[i]]) if hasattr(probe, "window_") else 0)
        qs.update(X[i:i + 1], queried)
        theirs_q.append(len(queried) > 0)
        ours_ldf.append(dg.densities(X[i:i + 1])[0])
        ours_q.append(dg.decide_one(P[i], X[i]))
    return theirs_q, theirs_ldf, ours_q, ours_ldf


@pytest.mark.parametrize("which", ["variable_uncertainty", "fixed"])
def test_equals_skactiveml_stream_density_based_al(which):
    bm = pytest.importorskip("skactiveml.stream.budgetmanager")
    if which == "fixed":
        manager = bm.FixedUncertaintyBudgetManager(classes=[0, 1, 2], w=50, budget=0.3)
        gate = StreamGate("fixed", 0.3, utility="margin", window=50, classes=3)
    else:
        manager = bm.VariableUncertaintyBudgetManager(budget=0.1, w=50)
        gate = StreamGate("variable_uncertainty", 0.1, utility="margin", window=50)
    theirs_q, theirs_ldf, ours_q, ours_ldf = _skactiveml_stream(manager, gate)
    assert ours_ldf == [float(x) for x in theirs_ldf]  # item by item
    assert ours_q == theirs_q
    assert 5 < sum(ours_q) < 395  # the comparison is not vacuous
    assert 0 in ours_ldf and max(ours_ldf) >= 3


def test_nan_and_bad_inputs_are_rejected_without_state_change():
    rng = np.random.default_rng(1)
    dg = DensityGate(_variable_gate(), window=5)
    e = rng.normal(size=(8, 3)).astype(np.float32)
    dg.decide_many(rng.random(8), e)
    before = dg.to_json()
    bad = e[0].copy()
    bad[2] = np.nan
    with pytest.raises(alcore.InvalidInputError, match=r"embedding must be finite: "
                                                       r"embedding\[2\] is nan"):
        dg.decide_one(0.5, bad)
    with pytest.raises(alcore.InvalidInputError, match=r"^p_or_utility must be finite: "
                                                       r"p_or_utility is nan; replace or "
                                                       r"drop that item"):
        dg.decide_one(float("nan"), e[0])
    with pytest.raises(alcore.InvalidInputError, match=r"^P must be finite: P\[1\] is inf"):
        dg.decide_many(np.array([0.1, np.inf]), e[:2])
    E = e[:3].copy()
    E[2, 0] = np.inf
    with pytest.raises(alcore.InvalidInputError, match=r"E must be finite: E\[2, 0\] is inf"):
        dg.decide_many(np.array([0.1, 0.2, 0.3]), E)
    with pytest.raises(alcore.InvalidInputError, match=r"p_or_utility: .*sum to 1"):
        dg.decide_one(np.array([0.5, 0.6]), e[0])
    with pytest.raises(alcore.InvalidInputError, match=r"dimension 4 but .* dimension 3"):
        dg.decide_one(0.5, np.zeros(4, np.float32))
    with pytest.raises(alcore.InvalidInputError, match="P has 2 items but E has 3"):
        dg.decide_many(np.array([0.1, 0.2]), e[:3])
    assert dg.to_json() == before


def test_settings_errors_and_similarity_zero_vector():
    gate = _variable_gate()
    with pytest.raises(alcore.InvalidInputError, match=r"gate must be an alcore\.stream"):
        DensityGate("variable_uncertainty")
    with pytest.raises(alcore.InvalidInputError, match="classes=C"):
        DensityGate(StreamGate("fixed", 0.1))
    with pytest.raises(alcore.InvalidInputError, match="density"):
        DensityGate(gate, density="knn")
    with pytest.raises(alcore.InvalidInputError, match="window"):
        DensityGate(gate, window=0)
    with pytest.raises(alcore.InvalidInputError, match="unknown argument windw="):
        DensityGate(gate, windw=10)
    dg = DensityGate(gate, density="similarity")
    with pytest.raises(alcore.InvalidInputError, match="non-zero under density='similarity'"):
        dg.decide_one(0.5, np.zeros(3))
    assert dg.filled == 0


def test_first_item_and_weighting():
    # An empty window: ldf 0 (never queried), similarity 1 (the utility alone).
    gate = StreamGate("variable_uncertainty", 0.5, window=10, theta=1.0)
    ldf = DensityGate(gate, window=3)
    assert ldf.densities(np.ones((1, 2)))[0] == 0.0
    assert ldf.decide_one(1.0, np.ones(2)) is False
    sim = DensityGate(StreamGate("variable_uncertainty", 0.5, window=10), density="similarity")
    assert sim.densities(np.ones((1, 2)))[0] == 1.0
    assert sim.decide_one(1.0, np.ones(2)) is True  # confidence 0 < theta 1


def test_json_round_trip_continues_identically():
    rng = np.random.default_rng(3)
    e = rng.normal(size=(60, 5))
    u = rng.random(60)
    for density in ("ldf", "similarity"):
        dg = DensityGate(_variable_gate(), window=7, density=density, k=2, beta=2.0)
        dg.decide_many(u[:30], e[:30])
        restored = DensityGate.from_json(dg.to_json())
        assert restored.to_json() == dg.to_json()
        assert (restored.decide_many(u[30:], e[30:]) == dg.decide_many(u[30:], e[30:])).all()
    empty = DensityGate.from_json(DensityGate(_variable_gate()).to_json())
    assert empty.filled == 0
    with pytest.raises(alcore.InvalidInputError, match="corrupt DensityGate state"):
        DensityGate.from_json("{")
    with pytest.raises(alcore.InvalidInputError, match="not a DensityGate state"):
        DensityGate.from_json(_variable_gate().to_json())
