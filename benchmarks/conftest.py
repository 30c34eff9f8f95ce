"""Shared inputs for the benchmark suites. Inputs are generated once per session and are
fully written (pre-touched) before any timing, so no benchmark pays first-touch faults."""

from __future__ import annotations

import numpy as np
import pytest

from alcore import demo


def pool(n: int, classes: int, seed: int) -> np.ndarray:
    return demo.make_pool(n, classes, seed)


@pytest.fixture(scope="session")
def pool_1m_x_10() -> np.ndarray:
    return pool(1_000_000, 10, seed=1)


@pytest.fixture(scope="session")
def pool_100k_x_1000() -> np.ndarray:
    return pool(100_000, 1000, seed=2)


@pytest.fixture(scope="session")
def samples_20_x_100k_x_10() -> np.ndarray:
    return pool(2_000_000, 10, seed=3).reshape(20, 100_000, 10)


def mixture(n: int, d: int, components: int, seed: int) -> np.ndarray:
    """Embeddings as models produce them: clustered (a Gaussian mixture, unit noise around
    components spread with scale 3), float32, shape (n, d)."""
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((components, d), dtype=np.float32) * 3
    labels = rng.integers(components, size=n)
    x = centers[labels]
    x += rng.standard_normal((n, d), dtype=np.float32)
    return x


@pytest.fixture(scope="session")
def embeddings_100k_x_128() -> np.ndarray:
    return mixture(100_000, 128, 100, seed=4)


@pytest.fixture(scope="session")
def embeddings_1m_x_128() -> np.ndarray:
    return mixture(1_000_000, 128, 100, seed=5)
