"""`alcore select` end to end on a 1M-row Parquet pool: read the file, score, k-center over
the whole pool, write the batch, in one process as a user runs it. Beside it, the k-center
stage's memory floor (one float32 pass over the embeddings per pick), as in
test_bench_kcenter.py, and the bare Parquet read of the same file."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from benchutil import floor, record

from alcore import cli


@pytest.fixture(scope="module")
def pools(embeddings, tmp_path_factory):
    """shape -> (path of a Parquet pool of 1M rows: 10 probability columns p0..p9 and a
    128-d float32 Array column 'embedding'; its embedding matrix)."""
    made = {}

    def pool(shape: str):
        if shape not in made:
            x = embeddings(shape, "1M")
            rng = np.random.default_rng(21)
            z = rng.standard_normal((len(x), 10), dtype=np.float32) * 3
            p = np.exp(z - z.max(axis=1, keepdims=True))
            p /= p.sum(axis=1, keepdims=True)
            frame = pl.DataFrame({f"p{j}": p[:, j] for j in range(10)})
            frame = frame.with_columns(pl.Series("embedding", x, dtype=pl.Array(pl.Float32, 128)))
            path = tmp_path_factory.mktemp("pool") / f"{shape}.parquet"
            frame.write_parquet(path)
            made[shape] = (path, x)
        return made[shape]

    return pool


@pytest.mark.parametrize("contender", ["alcore select", "floor", "parquet read"])
@pytest.mark.parametrize("shape", ["separated", "isotropic"])
def test_select_1m_kcenter_whole_pool(benchmark, pools, sizes, tmp_path, shape, contender):
    path, x = pools(shape)
    k = sizes.k_large
    benchmark.group = (f"`alcore select` {sizes.name('1M')} rows x 128 {shape}, margin, "
                       f"kcenter over the whole pool, k={k}")
    if contender == "floor":
        floor(benchmark, x, passes=k, shape=shape)
        return
    if contender == "parquet read":
        record(benchmark, "reading the pool file (polars read_parquet)", "floor", shape)
        benchmark.pedantic(pl.read_parquet, args=(path,), rounds=1, iterations=1)
        return
    record(benchmark, "alcore", "alcore", shape)
    out = tmp_path / "batch.parquet"
    argv = ["select", str(path), "-k", str(k), "--score", "margin", "--diversity", "kcenter",
            "--out", str(out), "--overwrite"]
    assert benchmark.pedantic(cli.main, args=(argv,), rounds=1, iterations=1) == 0
    assert pl.read_parquet(out).height == k
