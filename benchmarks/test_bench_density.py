"""kNN density at 1M x 128: alcore (approximate index) against exact FAISS flat search,
timed on a 20k-query sample and scaled to all 1M queries; recall@10 measured on that
sample."""

from __future__ import annotations

import time

import numpy as np
from benchutil import record

from alcore import _faiss
from alcore.density import knn_density

SAMPLE = 20_000


def test_knn_density_1m_x_128(benchmark, embeddings_1m_x_128):
    x = embeddings_1m_x_128
    n = len(x)
    benchmark.group = "knn_density 1M x 128, k=10"
    record(benchmark, "alcore", "alcore")
    result = benchmark.pedantic(knn_density, args=(x, 10), kwargs={"return_neighbors": True},
                                rounds=1, iterations=1, warmup_rounds=0)
    # Exact search, the peer: FAISS IndexFlatL2 over all items for a sample of queries.
    faiss = _faiss.faiss_module()
    sample = np.random.default_rng(8).choice(n, size=SAMPLE, replace=False)
    flat = faiss.IndexFlatL2(x.shape[1])
    flat.add(x)
    start = time.perf_counter()
    _, exact_ids = flat.search(x[sample], 11)
    exact_seconds = (time.perf_counter() - start) * n / SAMPLE
    recall = np.mean([len(set(result.ids[i]) & set(exact_ids[j][exact_ids[j] != i][:10])) / 10
                      for j, i in enumerate(sample)])
    benchmark.extra_info["peer_seconds"] = {"FAISS exact flat (scaled from 20k queries)":
                                            exact_seconds}
    benchmark.extra_info["recall@10"] = float(recall)
    benchmark.extra_info["index"] = repr(result.index)
    assert recall >= 0.95
