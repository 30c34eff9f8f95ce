"""alcore simulate: learning curves, summary with confidence intervals, plot."""

from __future__ import annotations

import json
import sys

import numpy as np
import polars as pl
import pytest
from clitools import run

from alcore import simulate

pytest.importorskip("sklearn")
pytest.importorskip("matplotlib")




@pytest.fixture
def no_skactiveml(monkeypatch):
    """The `.[full]` install: scikit-activeml absent (a None entry makes its import fail)."""
    monkeypatch.setitem(sys.modules, "skactiveml", None)
    monkeypatch.setitem(sys.modules, "skactiveml.pool", None)


def test_simulation_outputs(tmp_path, capsys):
    pytest.importorskip("skactiveml")
    out = tmp_path / "sim"
    code, printed, err = run(["simulate", "--dataset", "wine", "--rounds", "4", "--batch", "5",
                              "--seeds", "3", "--strategies", "random,margin,"
                              "skactiveml-margin,margin+kcenter", "--out", out], capsys)
    assert code == 0, err
    results = json.loads((out / "curves.json").read_text())
    assert results["labels"] == [10, 15, 20, 25] and results["seeds"] == 3
    strategies = results["strategies"]
    assert set(strategies) == {"random", "margin", "skactiveml-margin", "margin+kcenter"}
    for entry in strategies.values():
        curves = np.array(entry["curves"])
        assert curves.shape == (3, 4) and ((0 <= curves) & (curves <= 1)).all()
        assert entry["aulc"] == pytest.approx(curves.mean())
        np.testing.assert_allclose(entry["aulc_per_seed"], curves.mean(axis=1))
        low, high = entry["aulc_ci"]
        assert low <= entry["aulc"] <= high
    # The same margin ranking (ties aside) gives the same curve as scikit-activeml's.
    np.testing.assert_allclose(strategies["margin"]["mean"],
                               strategies["skactiveml-margin"]["mean"])
    assert strategies["margin"]["vs_best"]["distinguishable"] is False or \
        results["best"] not in ("margin", "skactiveml-margin")
    assert (out / "learning_curves.png").stat().st_size > 10_000
    summary = (out / "summary.txt").read_text()
    assert "full-pool accuracy" in summary and "95% CI" in summary
    assert f"AULC difference from the best ({results['best']}), paired over 3 seeds" in summary
    assert "AULC" in printed


def test_default_strategies_do_not_need_scikit_activeml(tmp_path, capsys, no_skactiveml):
    out = tmp_path / "sim"
    code, _, err = run(["simulate", "--dataset", "wine", "--rounds", "2", "--batch", "5",
                        "--seeds", "2", "--out", out], capsys)
    assert code == 0, err
    assert set(json.loads((out / "curves.json").read_text())["strategies"]) == {
        "random", "margin", "margin+kcenter"}
    code, _, err = run(["simulate", "--dataset", "wine", "--strategies", "skactiveml-margin",
                        "--out", tmp_path / "other"], capsys)
    assert code == 2
    assert ("strategy 'skactiveml-margin' is a reference computed by scikit-activeml, which "
            "is not installed: pip install scikit-activeml, or leave it out of --strategies"
            ) in err
    assert not (tmp_path / "other").exists()


def test_refuses_to_overwrite_before_any_work(tmp_path, capsys, monkeypatch):
    out = tmp_path / "sim"
    out.mkdir()
    (out / "curves.json").write_text("{}")
    calls = []
    monkeypatch.setattr(simulate, "run", lambda *a, **k: calls.append(a))
    code, _, err = run(["simulate", "--dataset", "wine", "--out", out], capsys)
    assert code == 2 and f"{out} exists; pass --overwrite to replace its files" in err
    code, _, err = run(["simulate", "--dataset", "wine", "--out", tmp_path / "a" / "b"], capsys)
    assert code == 2 and "does not exist; create it first" in err
    assert calls == [] and (out / "curves.json").read_text() == "{}"


def test_datasets_and_label_columns(tmp_path, capsys):
    code, _, err = run(["simulate", "--dataset", "mnist", "--out", tmp_path / "s"], capsys)
    assert code == 2
    assert ("dataset 'mnist' is neither a built-in dataset (digits, breast_cancer, wine) nor "
            "an existing file") in err
    rng = np.random.default_rng(0)
    path = tmp_path / "data.csv"
    pl.DataFrame({"a": rng.standard_normal(60), "b": rng.standard_normal(60),
                  "label": np.arange(60) % 2}).write_csv(path)
    code, _, err = run(["simulate", "--dataset", path, "--label-column", "target", "--out",
                        tmp_path / "s"], capsys)
    assert code == 2 and "data.csv has no label column 'target'; columns are a, b, label" in err
    code, _, err = run(["simulate", "--dataset", path, "--out", tmp_path / "s"], capsys)
    assert code == 2
    assert "name its label column with --label-column (columns are a, b, label)" in err
    code, _, err = run(["simulate", "--dataset", path, "--label-column", "label", "--rounds",
                        "2", "--seeds", "2", "--strategies", "random,margin", "--out",
                        tmp_path / "s"], capsys)
    assert code == 0, err


def test_unknown_strategy(tmp_path, capsys):
    code, _, err = run(["simulate", "--dataset", "wine", "--strategies", "oracle", "--out",
                        tmp_path / "s"], capsys)
    assert code == 2 and "unknown strategy 'oracle'; choose from random, margin" in err


def test_confidence_intervals_and_verdicts():
    # Student's t with 4 degrees of freedom: t_0.975 = 2.7764 (tables).
    values = np.array([0.80, 0.82, 0.81, 0.79, 0.83])
    low, high = simulate._interval(values)
    half = 2.7764 * values.std(ddof=1) / np.sqrt(5)
    assert low == pytest.approx(0.81 - half, abs=1e-4)
    assert high == pytest.approx(0.81 + half, abs=1e-4)
    assert simulate._interval(np.array([0.5])) is None

    def entry(per_seed):
        per_seed = np.array(per_seed)
        return {"aulc": float(per_seed.mean()), "aulc_per_seed": per_seed.tolist(),
                "aulc_ci": simulate._interval(per_seed), "final": 0.9,
                "labels_to_98pct": None, "select_seconds": 0.0}

    results = {"seeds": 4, "full_accuracy": 0.95, "best": "a", "strategies": {
        "a": entry([0.90, 0.91, 0.92, 0.93]),
        "b": entry([0.80, 0.81, 0.82, 0.83]),  # 0.1 worse on every seed
        "c": entry([0.92, 0.89, 0.93, 0.90])}}  # same mean, noisy: not distinguishable
    for e in results["strategies"].values():
        diff = np.array(e["aulc_per_seed"]) - np.array(
            results["strategies"]["a"]["aulc_per_seed"])
        ci = simulate._interval(diff)
        e["vs_best"] = {"difference": float(diff.mean()), "ci": ci,
                        "distinguishable": ci[1] < 0 or ci[0] > 0}
    text = simulate.table(results)
    assert "b                     -0.1000" in text and "a is better" in text
    assert "c                     " in text and "not distinguishable with these seeds" in text
