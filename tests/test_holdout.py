"""alcore.monitor.HoldoutCurve: divergence in both directions, falls over a window, no
warning on a healthy curve, accuracies computed from a model, JSON round-trip, refusals
that record nothing, and the PNG."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import alcore
from alcore.monitor import HoldoutCurve, holdout_curve

E = alcore.InvalidInputError


def test_a_healthy_curve_warns_nothing():
    curve = HoldoutCurve(divergence=0.1, window=3)
    for r, (h, s) in enumerate([(0.60, 0.62), (0.70, 0.66), (0.69, 0.74), (0.78, 0.80),
                                (0.80, 0.85)]):
        point = curve.record(r, holdout_accuracy=h, selected_accuracy=s,
                             labels_spent=100 * (r + 1))
        assert point.warnings == () and not point.diverged and not point.dropping
    assert curve.warnings == []
    assert not curve.diverged.any() and not curve.dropping.any()
    np.testing.assert_allclose(curve.holdout_accuracy, [0.60, 0.70, 0.69, 0.78, 0.80])
    assert curve.rounds.dtype == np.int64 and len(curve) == 5


def test_divergence_names_optimistic_and_pessimistic():
    curve = HoldoutCurve(divergence=0.1)
    ok = curve.record(1, holdout_accuracy=0.80, selected_accuracy=0.9)  # gap 0.1: not beyond
    assert not ok.diverged
    up = curve.record(2, holdout_accuracy=0.70, selected_accuracy=0.95)
    assert up.diverged and up.gap == pytest.approx(0.25)
    assert up.warnings == (
        "round 2: selected-set accuracy is optimistic: 0.950 on the selected data against "
        "0.700 on the held-out set (gap +0.250, beyond divergence 0.1); the labeled set no "
        "longer represents deployment data, report the held-out figure",)
    down = curve.record(3, holdout_accuracy=0.85, selected_accuracy=0.55)
    assert down.diverged and "pessimistic: 0.550" in down.warnings[0]
    assert "concentrates on hard items" in down.warnings[0]
    assert curve.diverged.tolist() == [False, True, True]
    assert [w[:8] for w in curve.warnings] == ["round 2:", "round 3:"]


def test_falls_for_window_rounds_warn_and_a_rise_resets():
    curve = holdout_curve([0.80, 0.78, 0.75, 0.74, 0.76, 0.75, 0.74], window=3)
    assert curve.dropping.tolist() == [False, False, False, True, False, False, False]
    (warning,) = curve.warnings
    assert warning == ("round 3: held-out accuracy fell 3 rounds in a row, from 0.800 at "
                       "round 0 to 0.740; the model is getting worse on deployment data: "
                       "audit the selection and check the new labels")
    # A fall within the tolerance does not count.
    noisy = holdout_curve([0.80, 0.79, 0.785, 0.78], window=3, tolerance=0.02)
    assert not noisy.dropping.any()
    longer = holdout_curve([0.9, 0.8, 0.7, 0.6, 0.5], window=2)
    assert longer.dropping.tolist() == [False, False, True, True, True]


@given(st.lists(st.floats(0, 1), min_size=1, max_size=30), st.integers(1, 5),
       st.sampled_from([0.0, 0.01]))
def test_dropping_matches_a_direct_count(accuracies, window, tolerance):
    curve = holdout_curve(accuracies, window=window, tolerance=tolerance)
    run, expected = 0, []
    for i, acc in enumerate(accuracies):
        run = run + 1 if i and acc < accuracies[i - 1] - tolerance else 0
        expected.append(run >= window)
    assert curve.dropping.tolist() == expected


class Threshold:
    """A one-feature model: predicts 1 above a cut."""

    def __init__(self, cut):
        self.cut = cut
        self.calls = 0

    def predict(self, x):
        self.calls += 1
        return (np.asarray(x)[:, 0] > self.cut).astype(int)


def test_accuracies_from_a_model_and_data():
    rng = np.random.default_rng(0)
    x_hold = rng.normal(size=(400, 2))
    y_hold = (x_hold[:, 0] > 0).astype(int)
    x_sel = rng.normal(size=(50, 2)) * 0.1  # near the boundary: the model errs more here
    y_sel = (x_sel[:, 0] > 0).astype(int)
    model = Threshold(0.05)
    curve = HoldoutCurve(divergence=0.05)
    point = curve.record(0, model=model, holdout=(x_hold, y_hold), selected=(x_sel, y_sel),
                         labels_spent=50)
    assert point.holdout_accuracy == pytest.approx(np.mean(model.predict(x_hold) == y_hold))
    assert point.selected_accuracy == pytest.approx(np.mean(model.predict(x_sel) == y_sel))
    assert (point.n_holdout, point.n_selected) == (400, 50)
    assert point.diverged and "pessimistic" in point.warnings[0]
    # Mixed: the held-out figure given, the selected one computed; a callable as model.
    mixed = curve.record(1, holdout_accuracy=0.9, model=lambda x: np.zeros(len(x), int),
                         selected=([[0.0]] * 4, [0, 0, 1, 0]))
    assert mixed.selected_accuracy == pytest.approx(0.75) and mixed.n_holdout is None


def test_a_changed_holdout_set_is_named():
    curve = HoldoutCurve()
    x = np.zeros((10, 1))
    curve.record(0, model=Threshold(0), holdout=(x, np.zeros(10)))
    point = curve.record(1, model=Threshold(0), holdout=(x[:8], np.zeros(8)))
    assert point.warnings == ("round 1: the held-out set has 8 items, 10 at round 0; keep one "
                              "fixed held-out set so rounds compare",)


def test_json_round_trip():
    curve = HoldoutCurve(divergence=0.08, window=2, tolerance=0.005)
    curve.record(0, holdout_accuracy=0.7, selected_accuracy=0.72, labels_spent=20)
    curve.record(2, holdout_accuracy=0.65, selected_accuracy=0.85, labels_spent=40)
    curve.record(3, holdout_accuracy=0.60, labels_spent=60)
    curve.record(5, model=Threshold(0), holdout=(np.ones((4, 1)), [1, 1, 0, 1]))
    text = json.dumps(curve.to_dict(), allow_nan=False)
    back = HoldoutCurve.from_dict(json.loads(text))
    assert back.to_dict() == curve.to_dict()
    assert back.points == curve.points
    assert (back.divergence, back.window, back.tolerance) == (0.08, 2, 0.005)
    assert back.dropping.tolist() == [False, False, True, False]
    # The restored curve keeps counting where it stopped.
    assert back.record(6, holdout_accuracy=0.5).dropping == curve.record(
        6, holdout_accuracy=0.5).dropping
    assert HoldoutCurve.from_dict(HoldoutCurve().to_dict()).points == ()


def test_plot_writes_a_png(tmp_path):
    curve = holdout_curve([0.6, 0.7, 0.65, 0.6, 0.55], selected_accuracy=[0.6, 0.9, 0.7,
                                                                         np.nan, 0.5],
                          labels_spent=[10, 20, 30, 40, 50], window=2)
    out = curve.plot(tmp_path / "curve.png")
    assert out == tmp_path / "curve.png"
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 5000
    assert holdout_curve([0.5]).plot(str(tmp_path / "one.png")).exists()


def test_refusals_record_nothing():
    curve = HoldoutCurve()
    curve.record(3, holdout_accuracy=0.5, labels_spent=30)
    cases = [
        (dict(round=3, holdout_accuracy=0.6),
         r"round must be greater than the last recorded round \(3\), got 3"),
        (dict(round=-1, holdout_accuracy=0.6), r"round must be >= 0, got -1"),
        (dict(round=4), r"record needs the held-out accuracy: pass holdout_accuracy=, or "
                        r"model= with holdout=\(X, y\)"),
        (dict(round=4, holdout_accuracy=1.2), r"holdout_accuracy must be <= 1, got 1.2"),
        (dict(round=4, holdout_accuracy=np.nan), r"holdout_accuracy must be finite"),
        (dict(round=4, holdout_accuracy=0.5, selected_accuracy="high"),
         r"selected_accuracy must be a number, got 'high'"),
        (dict(round=4, holdout=(np.zeros((2, 1)), [0, 1])),
         r"holdout=/selected= data need model="),
        (dict(round=4, holdout_accuracy=0.5, model=Threshold(0), holdout=(np.zeros((2, 1)),
                                                                          [0, 1])),
         r"pass holdout_accuracy= or holdout=\(X, y\) with model=, not both"),
        (dict(round=4, selected_accuracy=0.5, model=Threshold(0),
              selected=(np.zeros((2, 1)), [0, 1]), holdout_accuracy=0.5),
         r"pass selected_accuracy= or selected=\(X, y\) with model=, not both"),
        (dict(round=4, holdout_accuracy=0.5, model=Threshold(0)),
         r"model= needs data to score"),
        (dict(round=4, model=Threshold(0), holdout=np.zeros((2, 1))),
         r"holdout must be a pair \(X, y\) of inputs and true labels, got ndarray"),
        (dict(round=4, model=Threshold(0), holdout=(np.zeros((2, 1)), [[1, 0], [0, 1]])),
         r"holdout y must be a non-empty 1-D vector .* shape \(2, 2\); for one-hot labels"),
        (dict(round=4, model=Threshold(0), holdout=(np.zeros((2, 1)), [0.0, np.nan])),
         r"holdout y must be finite: y\[1\] is not"),
        (dict(round=4, model=lambda x: np.zeros((len(x), 2)), holdout=(np.zeros((2, 1)),
                                                                      [0, 1])),
         r"model.predict\(holdout X\) returned shape \(2, 2\) for 2 true labels; .* looks "
         r"like probabilities"),
        (dict(round=4, model=object(), holdout=(np.zeros((2, 1)), [0, 1])),
         r"model must have a predict method \(or be a callable X -> labels\), got object"),
        (dict(round=4, holdout_accuracy=0.5, labels_spent=20),
         r"labels_spent must not decrease: 20 after 30"),
        (dict(round=4, holdout_accuracy=0.5, labels_spent=-1), r"labels_spent must be >= 0"),
    ]
    for kwargs, match in cases:
        with pytest.raises(E, match=match):
            curve.record(kwargs.pop("round"), **kwargs)
        assert len(curve) == 1
    with pytest.raises(E, match=r"HoldoutCurve.record\(\): .*unexpected keyword argument "
                                r"'holdout_acc'.*did you mean holdout_accuracy="):
        curve.record(4, holdout_acc=0.5)
    assert len(curve) == 1


def test_setting_and_dict_refusals(tmp_path):
    with pytest.raises(E, match=r"divergence must be > 0, got 0"):
        HoldoutCurve(divergence=0)
    with pytest.raises(E, match=r"window must be a positive integer, got 0"):
        HoldoutCurve(window=0)
    with pytest.raises(E, match=r"tolerance must be < 1"):
        HoldoutCurve(tolerance=1.0)
    with pytest.raises(E, match=r"HoldoutCurve: .*positional"):
        HoldoutCurve(0.1)
    with pytest.raises(E, match=r"data must be the dict HoldoutCurve.to_dict\(\) made, got list"):
        HoldoutCurve.from_dict([])
    with pytest.raises(E, match=r"data is not a HoldoutCurve of version 1"):
        HoldoutCurve.from_dict({"points": []})
    good = holdout_curve([0.5, 0.6]).to_dict()
    good["points"][1]["round"] = 0
    with pytest.raises(E, match=r"data\['points'\]\[1\]\['round'\] is 0, not after round 0"):
        HoldoutCurve.from_dict(good)
    good["points"][1] = {"round": 5}
    with pytest.raises(E, match=r"data\['points'\]\[1\] must be a dict with round and "
                                r"holdout_accuracy"):
        HoldoutCurve.from_dict(good)
    with pytest.raises(E, match=r"the curve has no rounds to plot"):
        HoldoutCurve().plot(tmp_path / "x.png")
    with pytest.raises(E, match=r"path must be a file path \(str or pathlib.Path\), got int"):
        holdout_curve([0.5]).plot(3)
    with pytest.raises(E, match=r"holdout_accuracy must be a non-empty 1-D sequence"):
        holdout_curve([])
    with pytest.raises(E, match=r"selected_accuracy must have shape \(2,\) like "
                                r"holdout_accuracy, got \(3,\)"):
        holdout_curve([0.5, 0.6], selected_accuracy=[0.5, 0.6, 0.7])
    with pytest.raises(E, match=r"round must be greater than the last recorded round"):
        holdout_curve([0.5, 0.6], rounds=[2, 1])
