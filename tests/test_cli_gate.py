"""`alcore gate`: replay a recorded stream from Parquet, CSV or NDJSON."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from alcore.cli import main
from alcore.stream import StreamGate


@pytest.fixture
def probs():
    return np.random.default_rng(0).dirichlet(np.ones(4), size=500)


@pytest.mark.parametrize("layout", ["list.parquet", "columns.csv", "list.ndjson",
                                    "pattern.parquet"])
def test_replay_matches_the_gate(tmp_path, probs, layout, capsys):
    kind, suffix = layout.split(".")
    path = tmp_path / f"stream.{suffix}"
    if kind == "list":
        table = pl.DataFrame({"id": np.arange(500) + 100, "probs": probs.tolist()})
    elif kind == "columns":
        table = pl.DataFrame({f"p{j}": probs[:, j] for j in range(4)})
    else:
        table = pl.DataFrame({f"prob_{j}": probs[:, j] for j in range(4)})
    getattr(table, {"parquet": "write_parquet", "csv": "write_csv",
                    "ndjson": "write_ndjson"}[suffix])(path)
    out = tmp_path / "decisions.parquet"
    args = ["gate", str(path), "--strategy", "split", "--budget", "0.2", "--seed", "3",
            "--out", str(out)]
    if kind == "pattern":
        args += ["--probs", "prob_*"]
    assert main(args) == 0
    decisions = pl.read_parquet(out)
    want = StreamGate("split", 0.2, seed=3).decide_many(probs)
    np.testing.assert_array_equal(decisions["query"].to_numpy(), want)
    if kind == "list":
        assert decisions["id"].to_list()[:2] == [100, 101]
    printed = capsys.readouterr().out
    assert f"{int(want.sum())} queried" in printed and "threshold after each tenth" in printed


def test_refuses_to_overwrite_and_reports_bad_input(tmp_path, probs, capsys):
    path = tmp_path / "s.parquet"
    pl.DataFrame({"probs": probs.tolist()}).write_parquet(path)
    out = tmp_path / "d.csv"
    assert main(["gate", str(path), "--out", str(out)]) == 0
    assert main(["gate", str(path), "--out", str(out)]) == 2
    assert "exists; pass --overwrite" in capsys.readouterr().err
    assert main(["gate", str(path), "--out", str(out), "--overwrite"]) == 0
    assert main(["gate", str(path), "--probs", "nothing*", "--out", str(tmp_path / "x.csv")]) == 2
    assert "no column matches 'nothing*'" in capsys.readouterr().err
    assert main(["gate", str(path), "--strategy", "greedy", "--out",
                 str(tmp_path / "y.csv")]) == 2
    assert "strategy must be one of" in capsys.readouterr().err
    assert main(["gate", str(tmp_path / "missing.parquet"), "--out",
                 str(tmp_path / "z.csv")]) == 2
    assert "no such file" in capsys.readouterr().err
