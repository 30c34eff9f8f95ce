"""alcore simulate: learning curves, summary, plot."""

from __future__ import annotations

import json

import numpy as np
import pytest

from alcore.cli import main

pytest.importorskip("sklearn")
pytest.importorskip("matplotlib")


def test_simulation_outputs(tmp_path, capsys):
    out = tmp_path / "sim"
    assert main(["simulate", "--dataset", "wine", "--rounds", "4", "--batch", "5",
                 "--seeds", "2", "--strategies", "random,margin,skactiveml-margin,"
                 "margin+kcenter", "--out", str(out)]) == 0
    results = json.loads((out / "curves.json").read_text())
    assert results["labels"] == [10, 15, 20, 25]
    strategies = results["strategies"]
    assert set(strategies) == {"random", "margin", "skactiveml-margin", "margin+kcenter"}
    for entry in strategies.values():
        curves = np.array(entry["curves"])
        assert curves.shape == (2, 4) and ((0 <= curves) & (curves <= 1)).all()
        assert entry["aulc"] == pytest.approx(curves.mean())
    # The same margin ranking (ties aside) gives the same curve as scikit-activeml's.
    np.testing.assert_allclose(strategies["margin"]["mean"],
                               strategies["skactiveml-margin"]["mean"])
    assert (out / "learning_curves.png").stat().st_size > 10_000
    assert "full-pool accuracy" in (out / "summary.txt").read_text()
    assert "AULC" in capsys.readouterr().out


def test_unknown_strategy(tmp_path, capsys):
    assert main(["simulate", "--dataset", "wine", "--strategies", "oracle", "--out",
                 str(tmp_path)]) == 2
    assert "unknown strategy 'oracle'" in capsys.readouterr().err
