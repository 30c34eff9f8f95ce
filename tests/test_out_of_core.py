"""Out-of-core top-k over a pool file."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import polars as pl
import pytest

import alcore
from alcore.io import top_k_from_file


@pytest.mark.parametrize("suffix", ["parquet", "csv"])
def test_equals_in_memory_selection(tmp_path, suffix):
    rng = np.random.default_rng(0)
    probs = np.round(rng.dirichlet(np.ones(4), size=50_000), 2)  # many ties
    probs /= probs.sum(axis=1, keepdims=True)
    path = tmp_path / f"pool.{suffix}"
    table = pl.DataFrame({"id": np.arange(50_000) * 7} | {f"p{j}": probs[:, j] for j in range(4)})
    getattr(table, f"write_{suffix}")(path)
    probs = pl.read_parquet(path).select([f"p{j}" for j in range(4)]).to_numpy() \
        if suffix == "parquet" else pl.read_csv(path).select([f"p{j}" for j in range(4)]).to_numpy()
    rows, ids, scores = top_k_from_file(path, 500, "margin", chunk_rows=7_000)
    want = alcore.select_top(500, probs, score="margin")
    np.testing.assert_array_equal(rows, want)
    np.testing.assert_array_equal(ids, want * 7)
    np.testing.assert_array_equal(scores, alcore.scores.margin(probs)[want])


def test_memory_stays_bounded_by_the_chunk(tmp_path):
    """A pool file of 3M rows x 10 float64 probabilities (240 MB in memory) is scored in
    chunks of 100k rows; the process's peak memory grows by far less than the pool."""
    path = tmp_path / "big.parquet"
    rng = np.random.default_rng(1)
    parts = []
    for _ in range(3):
        z = rng.standard_normal((1_000_000, 10))
        p = np.exp(z - z.max(axis=1, keepdims=True))
        parts.append(p / p.sum(axis=1, keepdims=True))
    probs = np.concatenate(parts)
    pl.DataFrame({f"p{j}": probs[:, j] for j in range(10)}).write_parquet(
        path, row_group_size=100_000)
    del probs, parts
    # VmHWM is this process's own peak (ru_maxrss would inherit the forking parent's).
    code = textwrap.dedent(f"""
        import alcore, polars
        from alcore.io import top_k_from_file

        def peak():
            for line in open("/proc/self/status"):
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024

        before = peak()
        rows, _, _ = top_k_from_file({str(path)!r}, 1000, chunk_rows=100_000)
        print(peak() - before, len(rows))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd="/").stdout.split()
    grown, count = int(out[0]), int(out[1])
    assert count == 1000
    assert grown < 120e6, f"peak memory grew by {grown / 1e6:.0f} MB"
