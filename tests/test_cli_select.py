"""`alcore select`: a batch from a pool file."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

import alcore
from alcore.cli import main


@pytest.fixture
def pool_file(tmp_path):
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(4), size=400)
    emb = rng.standard_normal((400, 6))
    path = tmp_path / "pool.parquet"
    pl.DataFrame({"id": [f"doc{i}" for i in range(400)], "probs": probs.tolist(),
                  "embedding": emb.tolist(), "done": np.arange(400) < 5}).write_parquet(path)
    return path, probs, emb


def test_select_matches_the_api(tmp_path, pool_file, capsys):
    path, probs, emb = pool_file
    out = tmp_path / "batch.parquet"
    assert main(["select", str(path), "-k", "12", "--diversity", "kcenter", "--candidates",
                 "5", "--labeled", "done", "--out", str(out), "--explain"]) == 0
    batch = pl.read_parquet(out)
    want = alcore.select(12, probs.astype(np.float32), embeddings=emb.astype(np.float32),
                         labeled=np.arange(400) < 5, diversity="kcenter", candidates=5)
    assert batch["id"].to_list() == [f"doc{i}" for i in want.indices]
    assert batch["rank"].to_list() == list(range(1, 13))
    assert set(batch.columns) >= {"id", "rank", "score", "reason", "uncertainty"}
    assert "timings:" in capsys.readouterr().out


def test_refusals(tmp_path, pool_file, capsys):
    path, _, _ = pool_file
    out = tmp_path / "b.csv"
    assert main(["select", str(path), "-k", "3", "--out", str(out)]) == 0
    assert main(["select", str(path), "-k", "3", "--out", str(out)]) == 2
    assert "exists; pass --overwrite" in capsys.readouterr().err
    assert main(["select", str(path), "-k", "3", "--diversity", "probcover", "--out",
                 str(tmp_path / "c.csv")]) == 2
    assert "needs --radius" in capsys.readouterr().err
    assert main(["select", str(path), "-k", "3", "--labeled", "nope", "--out",
                 str(tmp_path / "d.csv")]) == 2
    assert "no column 'nope'" in capsys.readouterr().err
