"""alcore.distributed.select over Parquet partitions (2M rows x 10 probabilities + 64-d
embeddings in 8 files): in one process (client="sync", the out-of-core baseline) against a
LocalCluster of 2 worker processes, in the same run, and beside them the floor of reading
the columns the workload needs (the probabilities; with a diversity stage the embeddings
too). The 20M-row figures of benchmarks/RESULTS.md come from
benchmarks/distributed_pool.py (the same code at 10x the rows)."""

from __future__ import annotations

import itertools

import numpy as np
import polars as pl
import pytest
from benchutil import record

import alcore.distributed as ad

distributed = pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def partitions(sizes, embeddings, tmp_path_factory):
    """shape -> the Parquet files of a 2M-row pool (8 partitions) with that embedding
    shape: scoring reads no embeddings, the diversity stage only the candidates'."""
    made = {}

    def files(shape: str) -> list[str]:
        if shape not in made:
            x = embeddings(shape, "2M", 64)
            n = len(x)
            rng = np.random.default_rng(13)
            z = rng.standard_normal((n, 10), dtype=np.float32) * 2
            p = np.exp(z - z.max(axis=1, keepdims=True))
            p /= p.sum(axis=1, keepdims=True)
            folder = tmp_path_factory.mktemp(f"partitions-{shape}")
            bounds = np.linspace(0, n, 9).astype(int)
            made[shape] = []
            for i, (lo, hi) in enumerate(itertools.pairwise(bounds)):
                path = folder / f"part-{i}.parquet"
                pl.DataFrame({"id": np.arange(lo, hi), "probs": p[lo:hi],
                              "embedding": x[lo:hi]}).write_parquet(path)
                made[shape].append(str(path))
        return made[shape]

    return files


@pytest.fixture(scope="module")
def client():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as made:
        # Each worker imports alcore and compiles nothing on a first task: paid here, not
        # in the first timed call.
        made.run(__import__("alcore").warmup)
        yield made


@pytest.mark.parametrize("contender", ["LocalCluster 2 workers", "sync", "floor"])
@pytest.mark.parametrize("diversity", [None, "kcenter"])
@pytest.mark.parametrize("shape", ["separated", "overlapping", "isotropic"])
def test_distributed_select_2m(benchmark, partitions, client, sizes, shape, diversity,
                               contender):
    files = partitions(shape)
    k = sizes.k_large
    benchmark.group = (f"distributed select {sizes.name('2M')} rows x 10 + 64-d {shape}, "
                       f"margin{' + ' + diversity + ' over 5k' if diversity else ''}, k={k}")
    if contender == "floor":
        # What the workload cannot avoid reading: the probabilities, and with a diversity
        # stage the embeddings too (Parquet decodes a column's pages whole).
        columns = ["id", "probs"] + (["embedding"] if diversity else [])
        record(benchmark, f"reading {', '.join(columns)} (polars)", "floor", shape)
        benchmark.pedantic(lambda: [pl.read_parquet(f, columns=columns) for f in files],
                           rounds=3, iterations=1, warmup_rounds=1)
        return
    record(benchmark, contender, "alcore" if contender != "sync" else "peer", shape)
    found = benchmark.pedantic(
        ad.select, args=(files, k),
        kwargs={"diversity": diversity, "client": client if contender != "sync" else "sync"},
        rounds=3, iterations=1, warmup_rounds=1)
    assert len(found.indices) == k and found.exact
    benchmark.extra_info["bytes_returned_per_partition"] = int(
        np.mean(found.config["bytes_returned"]))
