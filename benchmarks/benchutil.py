"""Helpers shared by the benchmark suites: the embedding shapes, the run's sizes, the tags
benchmarks/report.py reads, and the memory floor."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# The embedding shapes every diversity and density benchmark runs on (see conftest.py).
SHAPES = ("separated", "overlapping", "isotropic", "real")
SYNTHETIC_SHAPES = SHAPES[:3]


@dataclass(frozen=True)
class Sizes:
    """The sizes of one run: the names' sizes in a full run, small ones in a smoke run
    (conftest.py explains when each applies). Size labels ("20k", "100k", "1M", "2M") name
    benchmarks and groups; ``rows(label)`` is what the run really uses."""

    smoke: bool
    table: dict[str, int]
    k: int  # batch size of the 100-pick diversity benchmarks
    k_large: int  # 1000-pick k-center, top-1000 uncertainty
    labeled: int  # 100 labeled items
    labeled_large: int  # 1000 labeled items
    spread_k: int  # 4000 spread picks
    typiclust_labeled: int  # 4000 labeled items in the TypiClust growth benchmark
    density_sample: int  # queries timed for the FAISS exact peer, and checked for recall
    decide_one_calls: int  # single-row decide_one calls per loop

    def rows(self, label: str) -> int:
        return self.table[label]

    def name(self, label: str) -> str:
        """The size as it appears in a group name: the label in a full run, the actual rows
        in a smoke run (whose groups are not reported, but stay honest)."""
        return f"{self.rows(label)}" if self.smoke else label


FULL = Sizes(smoke=False, table={"20k": 20_000, "100k": 100_000, "1M": 1_000_000,
                                 "2M": 2_000_000},
             k=100, k_large=1000, labeled=100, labeled_large=1000, spread_k=4000,
             typiclust_labeled=4000, density_sample=20_000, decide_one_calls=50_000)
SMOKE = Sizes(smoke=True, table={"20k": 2_000, "100k": 3_000, "1M": 6_000, "2M": 20_000},
              k=20, k_large=50, labeled=20, labeled_large=50, spread_k=200,
              typiclust_labeled=200, density_sample=500, decide_one_calls=2_000)


def record(benchmark, contender: str, role: str, shape: str | None = None) -> None:
    """Tag a benchmark so benchmarks/report.py can form the ratios of its group (role
    "alcore", "peer", "floor" or "absolute") and file it under its embedding shape."""
    benchmark.extra_info["contender"] = contender
    benchmark.extra_info["role"] = role
    if shape is not None:
        benchmark.extra_info["shape"] = shape


def floor(benchmark, x: np.ndarray, passes: int = 1, shape: str | None = None) -> None:
    """The memory floor of a workload over ``x``: one streaming read of its bytes (counting
    the non-zero 32-bit words touches every byte and does no arithmetic worth the name, as
    the BALD floor in test_bench_uncertainty.py), timed here; report.py multiplies it by
    ``passes``, the reads the workload cannot avoid (k-center: one per pick)."""
    plural = "pass" if passes == 1 else f"{passes} passes"
    size = f"{x.nbytes / 1e6:.0f} MB" if x.nbytes >= 1e6 else f"{x.nbytes / 1e3:.0f} kB"
    record(benchmark, f"memory floor ({plural} over {size})", "floor", shape)
    benchmark.extra_info["passes"] = passes
    words = np.ascontiguousarray(x).reshape(-1).view(np.uint32)
    benchmark(np.count_nonzero, words)


def median_seconds(benchmark) -> float | None:
    """The median of a finished benchmark, None when timing is disabled (smoke runs)."""
    stats = getattr(benchmark, "stats", None)
    return None if stats is None else float(stats.stats.median)


def neighbour_scale(x: np.ndarray, sample: int = 256, k: int = 1, seed: int = 0) -> float:
    """Median distance from a sampled row to its k-th nearest other row, in float64 on
    centred rows: the length scale of a shape, from which the radius benchmarks (ProbCover's
    ball, spread's minimum distance) take theirs, so that each does comparable work on every
    shape. O(sample N d) time, (sample, N) float64 memory."""
    rng = np.random.default_rng(seed)
    rows = rng.choice(len(x), size=min(sample, len(x)), replace=False)
    centred = x.astype(np.float64)
    centred -= centred.mean(axis=0)
    sq_norms = np.einsum("ij,ij->i", centred, centred)
    sq = sq_norms[rows, None] - 2 * centred[rows] @ centred.T + sq_norms[None, :]
    sq[np.arange(len(rows)), rows] = np.inf  # not its own neighbour
    kth = np.partition(sq, k - 1, axis=1)[:, k - 1]
    return float(math.sqrt(max(float(np.median(kth)), 0.0)))


def inertia(x: np.ndarray, labels: np.ndarray) -> float:
    """k-means inertia of a clustering given by its labels: the sum of squared distances of
    the rows to their cluster's mean (float64). Means minimise it, so the figure compares
    clusterings, whichever centroids each method ended with."""
    labels = np.asarray(labels, dtype=np.int64)
    counts = np.bincount(labels).astype(np.float64)
    x64 = x.astype(np.float64)
    sums = np.zeros((len(counts), x.shape[1]))
    np.add.at(sums, labels, x64)
    means = sums / np.maximum(counts, 1)[:, None]
    diff = x64 - means[labels]
    return float(np.einsum("ij,ij->", diff, diff))
