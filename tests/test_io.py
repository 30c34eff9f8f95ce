"""read_pool: pools from Parquet, Arrow IPC, CSV and NDJSON."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

import alcore
from alcore.io import read_pool


@pytest.fixture
def pool():
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(3), size=50).astype(np.float32)
    emb = rng.standard_normal((50, 4)).astype(np.float32)
    return probs, emb


@pytest.mark.parametrize("suffix", ["parquet", "arrow", "ndjson"])
def test_list_and_array_columns(tmp_path, pool, suffix):
    probs, emb = pool
    table = pl.DataFrame({"id": [f"item-{i}" for i in range(50)], "probs": probs.tolist(),
                          "embedding": emb.tolist()})
    if suffix == "parquet":
        table = table.with_columns(pl.col("embedding").list.to_array(4))  # fixed-size Array
    path = tmp_path / f"pool.{suffix}"
    {"parquet": table.write_parquet, "arrow": table.write_ipc,
     "ndjson": table.write_ndjson}[suffix](path)
    got = read_pool(path)
    assert got.ids[0] == "item-0" and len(got.ids) == 50
    np.testing.assert_allclose(got.probs, probs, rtol=1e-6)
    np.testing.assert_allclose(got.embeddings, emb, rtol=1e-6)
    assert got.probs.dtype == np.float32 and got.embeddings.dtype == np.float32


def test_numbered_columns_and_patterns(tmp_path, pool):
    probs, _ = pool
    path = tmp_path / "pool.csv"
    pl.DataFrame({f"p{j}": probs[:, j] for j in (2, 0, 1)}).write_csv(path)  # any order
    got = read_pool(path)
    np.testing.assert_allclose(got.probs, probs, rtol=1e-6)
    np.testing.assert_array_equal(got.ids, np.arange(50))
    assert got.embeddings is None
    path2 = tmp_path / "pool2.csv"
    pl.DataFrame({f"prob_{j}": probs[:, j] for j in range(3)}).write_csv(path2)
    np.testing.assert_allclose(read_pool(path2, probs="prob_*").probs, probs, rtol=1e-6)


def test_bad_files(tmp_path):
    ragged = tmp_path / "ragged.parquet"
    pl.DataFrame({"probs": [[0.5, 0.5], [1.0]]}).write_parquet(ragged)
    with pytest.raises(alcore.InvalidInputError, match=r"lists of different lengths"):
        read_pool(ragged)
    text = tmp_path / "text.parquet"
    pl.DataFrame({"probs": ["a", "b"]}).write_parquet(text)
    with pytest.raises(alcore.InvalidInputError, match=r"not a list of probabilities"):
        read_pool(text)
    with pytest.raises(alcore.InvalidInputError, match=r"no embedding column 'vec'"):
        read_pool(ragged, embeddings="vec")
    with pytest.raises(alcore.InvalidInputError, match=r"unknown file type '.xlsx'"):
        read_pool(tmp_path / "pool.xlsx")
    with pytest.raises(alcore.InvalidInputError, match=r"no such file"):
        read_pool(tmp_path / "missing.parquet")
