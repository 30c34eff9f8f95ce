"""Plain-numpy versions of the scores: the code a user would write without alcore.

The demo times them beside alcore's kernels and the benchmarks use them as the "best plain
numpy" peer. The test oracles are separate and deliberately slower (tests/oracles.py).
"""

from __future__ import annotations

import numpy as np


def score(name: str, probs: np.ndarray) -> np.ndarray:
    """Score (N, C) probabilities with vectorised numpy."""
    if name == "least_confidence":
        return 1 - probs.max(axis=1)
    if name == "entropy":
        # log(max(p, tiny)) keeps 0 * log 0 at 0 without nansum's extra passes.
        logp = np.log(np.maximum(probs, np.finfo(probs.dtype).tiny))
        return -np.einsum("ij,ij->i", probs, logp)
    top2 = np.partition(probs, probs.shape[1] - 2, axis=1)[:, -2:]
    if name == "margin":
        return 1 - (top2[:, 1] - top2[:, 0])
    if name == "ratio":
        return top2[:, 0] / top2[:, 1]
    raise ValueError(name)


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """argpartition + sort of the k highest, ties to the lower index."""
    part = np.argpartition(-scores, k - 1)[:k]
    order = np.lexsort((part, -scores[part]))
    return part[order]


def bald(samples: np.ndarray) -> np.ndarray:
    """Mutual information of (T, N, C) samples."""
    tiny = np.finfo(samples.dtype).tiny
    mean = samples.mean(axis=0)
    h_mean = -np.einsum("nc,nc->n", mean, np.log(np.maximum(mean, tiny)))
    h_members = -np.einsum("tnc,tnc->n", samples, np.log(np.maximum(samples, tiny)))
    return h_mean - h_members / samples.shape[0]
