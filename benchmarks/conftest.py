"""Shared inputs for the benchmark suites.

Sizes: full runs and smoke runs
-------------------------------
The full run (``pytest benchmarks --benchmark-only ...``, report.py's ``RUNS``) measures
at the sizes the benchmarks' names give: 100k and 1M rows, k = 100 and 1000, 50,000
decide_one calls. The README's test command (``pytest --benchmark-disable``, what .ci/run
runs) runs every benchmark once as a smoke test; then (pytest-benchmark's
``--benchmark-disable`` given, ``--benchmark-enable`` not) every input is small: at most
20k rows, k <= 50 (``benchutil.SMOKE``), so that all benchmarks together take well under a
minute. ``ALCORE_BENCH_SIZES=full`` or ``=smoke`` overrides the choice (e.g. full sizes
with timing disabled, to check the assertions at size). Assertions hold at both sizes:
the recall checks compare alcore's neighbours with exact ones on a sample (at smoke size
alcore's search is exact, so they check its result against FAISS's).

Embedding shapes (``benchutil.SHAPES``)
---------------------------------------
- ``separated``: 100 Gaussian components, centres at scale 3, unit noise (the mixture the
  figures before issue 9 came from; triangle-inequality pruning skips almost everything).
- ``overlapping``: the same with centres at scale 1, so that the clusters touch.
- ``isotropic``: standard Gaussian, no structure: no pruning can help.
- ``real``: 8x8 RGB patches of the two photographs scikit-learn ships
  (``load_sample_images``, offline; 531,720 patches of 192 values in [0, 1]) through a
  fixed Gaussian random projection to d dimensions, rows drawn at random, not centred.
  Real features with many rows: ``load_digits`` has 1,797 and river's bundled data sets
  (Shuttle 49k x 9, ImageSegments, Yeast, ...) are too small or too narrow for 100k x 128.

All float32, C-contiguous, generated once per (shape, size, d) in the session and fully
written before any timing, so no benchmark pays first-touch faults. Arrays beyond
``CACHE_BYTES`` are evicted least recently used (the 1M x 128 ones are 512 MB each).
"""

from __future__ import annotations

import os
import platform
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
from benchutil import FULL, SHAPES, SMOKE, Sizes

from alcore import demo

CACHE_BYTES = 1_600_000_000
PATCH = 8


def smoke_run(config: pytest.Config) -> bool:
    """Small sizes when timing is disabled, unless ALCORE_BENCH_SIZES says otherwise."""
    forced = os.environ.get("ALCORE_BENCH_SIZES", "").strip().lower()
    if forced in ("full", "smoke"):
        return forced == "smoke"
    if forced:
        raise pytest.UsageError(f"ALCORE_BENCH_SIZES must be 'full' or 'smoke', got {forced!r}")
    return bool(config.getoption("benchmark_disable", False)
                and not config.getoption("benchmark_enable", False))


@pytest.fixture(scope="session")
def sizes(pytestconfig) -> Sizes:
    return SMOKE if smoke_run(pytestconfig) else FULL


def mixture(n: int, d: int, components: int, seed: int, scale: float = 3.0) -> np.ndarray:
    """A Gaussian mixture: unit noise around ``components`` centres spread with ``scale``,
    float32, shape (n, d)."""
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((components, d), dtype=np.float32) * scale
    labels = rng.integers(components, size=n)
    x = centers[labels]
    x += rng.standard_normal((n, d), dtype=np.float32)
    return x


def image_patches(n: int, d: int, seed: int) -> np.ndarray:
    """n random 8x8 RGB patches of scikit-learn's sample photographs, values in [0, 1],
    through a fixed Gaussian random projection to d dimensions (distances kept up to a few
    per cent), float32 (n, d)."""
    try:
        from sklearn.datasets import load_sample_images

        images = load_sample_images().images
    except ImportError as err:  # the photographs need Pillow
        pytest.skip(f"the 'real' shape needs scikit-learn's sample images: {err}")
    windows = [np.lib.stride_tricks.sliding_window_view(im, (PATCH, PATCH), axis=(0, 1))
               for im in images]  # (rows, cols, 3, 8, 8) views, nothing copied
    counts = [w.shape[0] * w.shape[1] for w in windows]
    if n > sum(counts):
        pytest.skip(f"the 'real' shape has {sum(counts)} patches, {n} were asked for")
    rng = np.random.default_rng(seed)
    picks = np.sort(rng.choice(sum(counts), size=n, replace=False))
    which = picks >= counts[0]
    patches = np.empty((n, 3 * PATCH * PATCH), dtype=np.float32)
    for i, w in enumerate(windows):
        local = picks[which == bool(i)] - (counts[0] if i else 0)
        r, c = np.divmod(local, w.shape[1])
        patches[which == bool(i)] = w[r, c].reshape(len(local), -1)
    patches /= 255
    projection = rng.standard_normal((patches.shape[1], d), dtype=np.float32)
    projection /= np.float32(np.sqrt(d))
    return np.ascontiguousarray(patches @ projection)


# Seeds of the synthetic shapes per size: the separated 100k and 1M arrays are those the
# figures before issue 9 came from (seeds 4 and 5).
SEEDS = {"100k": 4, "1M": 5}


def make_embeddings(shape: str, n: int, d: int, seed: int) -> np.ndarray:
    if shape == "separated":
        return mixture(n, d, 100, seed, scale=3.0)
    if shape == "overlapping":
        return mixture(n, d, 100, seed, scale=1.0)
    if shape == "isotropic":
        return np.random.default_rng(seed).standard_normal((n, d), dtype=np.float32)
    if shape == "real":
        return image_patches(n, d, seed)
    raise ValueError(f"unknown shape {shape!r}; one of {SHAPES}")


class Embeddings:
    """``embeddings(shape, label, d)``: the (rows(label), d) float32 array of a shape,
    generated once. The "20k" arrays are the first rows of the "100k" ones, as before."""

    def __init__(self, sizes: Sizes):
        self.sizes = sizes
        self.cache: OrderedDict[tuple[str, str, int], np.ndarray] = OrderedDict()

    def __call__(self, shape: str, label: str, d: int = 128) -> np.ndarray:
        key = (shape, label, d)
        if key in self.cache:
            self.cache.move_to_end(key)
            return self.cache[key]
        if label == "20k":
            x = np.ascontiguousarray(self(shape, "100k", d)[:self.sizes.rows("20k")])
        else:
            x = make_embeddings(shape, self.sizes.rows(label), d, SEEDS.get(label, 6))
        x = np.ascontiguousarray(x, dtype=np.float32)
        x.setflags(write=False)  # shared by every benchmark of the session
        self.cache[key] = x
        while sum(a.nbytes for a in self.cache.values()) > CACHE_BYTES and len(self.cache) > 1:
            self.cache.popitem(last=False)
        return x


@pytest.fixture(scope="session")
def embeddings(sizes) -> Embeddings:
    return Embeddings(sizes)


def pool(n: int, classes: int, seed: int) -> np.ndarray:
    return demo.make_pool(n, classes, seed)


@pytest.fixture(scope="session")
def pool_1m_x_10(sizes) -> np.ndarray:
    return pool(sizes.rows("1M"), 10, seed=1)


@pytest.fixture(scope="session")
def pool_100k_x_1000(sizes) -> np.ndarray:
    return pool(sizes.rows("20k" if sizes.smoke else "100k"), 1000, seed=2)


@pytest.fixture(scope="session")
def samples_20_x_100k_x_10(sizes) -> np.ndarray:
    n = sizes.rows("100k")
    return pool(20 * n, 10, seed=3).reshape(20, n, 10)


def cpu_flags(machine_info: dict) -> set[str]:
    flags = set(machine_info.get("cpu", {}).get("flags", []) or [])
    cpuinfo = Path("/proc/cpuinfo")
    if not flags and cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                break
    return flags


def pytest_benchmark_update_machine_info(config, machine_info):
    """The instruction set the kernels run on, and what the CPU offers: figures differ
    between AVX2 and AVX-512 machines (report.py prints both in its header)."""
    from alcore import _core

    flags = cpu_flags(machine_info)
    machine_info["alcore"] = {
        "isa": _core.isa(),
        "ALCORE_ISA": os.environ.get("ALCORE_ISA"),
        # What the peers' libraries dispatch to: numpy, OpenBLAS and FAISS pick AVX-512
        # code on their own unless told otherwise (an AVX2 machine emulated for all).
        "env": {name: os.environ[name] for name in
                ("NPY_DISABLE_CPU_FEATURES", "OPENBLAS_CORETYPE", "FAISS_OPT_LEVEL")
                if name in os.environ},
        "cpu_flags": {flag: flag in flags for flag in ("avx2", "avx512f")},
        "machine": platform.machine(),
        "sizes": "smoke" if smoke_run(config) else "full",
    }
