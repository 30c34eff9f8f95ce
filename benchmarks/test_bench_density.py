"""kNN density, k = 10, on every embedding shape: alcore (its automatic exact/approximate
choice, recorded as ``index``) against exact FAISS flat search, the peer timed on a sample
of 20k queries and scaled to all N; recall@10 against exact neighbours on that sample; and
the memory floor (one read of the matrix)."""

from __future__ import annotations

import time

import numpy as np
import pytest
from benchutil import SHAPES, SYNTHETIC_SHAPES, floor, record

from alcore import _faiss
from alcore.density import knn_density

K = 10
SPARE = 4  # exact neighbours fetched beyond k + 1, so near-ties are decided exactly
RECALL_TARGET = 0.95


def exact_kth_distance(x: np.ndarray, sample: np.ndarray) -> tuple[np.ndarray, float]:
    """FAISS exact flat search for the sampled queries: the float64 distance of each one's
    k-th nearest other row, and the search's seconds. The candidates' distances are
    recomputed from float64 differences (FAISS's float32 expanded form errs on un-centred
    rows)."""
    faiss = _faiss.faiss_module()
    flat = faiss.IndexFlatL2(x.shape[1])
    flat.add(x)
    start = time.perf_counter()
    _, ids = flat.search(np.ascontiguousarray(x[sample]), K + 1 + SPARE)
    seconds = time.perf_counter() - start
    diff = x[ids].astype(np.float64) - x[sample, None, :].astype(np.float64)
    dist = np.sqrt(np.einsum("ijk,ijk->ij", diff, diff))
    dist[ids == sample[:, None]] = np.inf  # a query is not its own neighbour
    return np.sort(dist, axis=1)[:, K - 1], seconds


def recall_at_k(x: np.ndarray, ids: np.ndarray, sample: np.ndarray,
                kth: np.ndarray) -> float:
    """Share of alcore's k neighbours (of the sampled queries) no farther than the exact
    k-th neighbour, in float64: recall that counts an equally distant neighbour as found
    (the real shape holds duplicate patches)."""
    found = ids[sample]
    diff = x[found].astype(np.float64) - x[sample, None, :].astype(np.float64)
    dist = np.sqrt(np.einsum("ijk,ijk->ij", diff, diff))
    ok = (dist <= kth[:, None] * (1 + 1e-6) + 1e-9) & (found != sample[:, None])
    return float(ok.mean())


def run(benchmark, x, shape, sizes, label, d, contender):
    n = len(x)
    benchmark.group = f"knn_density {sizes.name(label)} x {d} {shape}, k={K}"
    if contender == "floor":
        floor(benchmark, x, shape=shape)
        return
    record(benchmark, "alcore", "alcore", shape)
    result = benchmark.pedantic(knn_density, args=(x, K), kwargs={"return_neighbors": True},
                                rounds=1, iterations=1, warmup_rounds=0)
    sample = np.sort(np.random.default_rng(8).choice(n, size=min(sizes.density_sample, n),
                                                     replace=False))
    kth, seconds = exact_kth_distance(x, sample)
    recall = recall_at_k(x, result.ids, sample, kth)
    benchmark.extra_info["peer_seconds"] = {
        f"FAISS exact flat (scaled from {len(sample)} queries)": seconds * n / len(sample)}
    benchmark.extra_info["recall@10"] = recall
    benchmark.extra_info["index"] = repr(result.index)
    if shape != "isotropic":
        # Isotropic data has no target (its neighbourhoods carry little): reported only.
        assert recall >= RECALL_TARGET, f"recall@10 {recall:.3f} with {result.index!r}"


@pytest.mark.parametrize("contender", ["alcore", "floor"])
@pytest.mark.parametrize("shape", SHAPES)
def test_knn_density_100k_x_128(benchmark, embeddings, sizes, shape, contender):
    run(benchmark, embeddings(shape, "100k"), shape, sizes, "100k", 128, contender)


@pytest.mark.parametrize("contender", ["alcore", "floor"])
@pytest.mark.parametrize("shape", SHAPES)
def test_knn_density_100k_x_32(benchmark, embeddings, sizes, shape, contender):
    run(benchmark, embeddings(shape, "100k", 32), shape, sizes, "100k", 32, contender)


@pytest.mark.parametrize("contender", ["alcore", "floor"])
@pytest.mark.parametrize("shape", SYNTHETIC_SHAPES)
def test_knn_density_1m_x_128(benchmark, embeddings, sizes, shape, contender):
    """The real shape has 531,720 patches: 1M rows are synthetic only."""
    run(benchmark, embeddings(shape, "1M"), shape, sizes, "1M", 128, contender)
