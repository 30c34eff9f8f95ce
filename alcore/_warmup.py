"""Pay one-time costs (loading the native core, page-faulting its code, choosing the SIMD
variant, and, in later layers, compiling Numba kernels) before the first real call."""

from __future__ import annotations

import time

import numpy as np


def warmup() -> dict[str, float]:
    """Run every kernel once on a tiny input.

    Returns
    -------
    dict of str to float
        Seconds spent per kernel family, for logging.
    """
    from alcore import scores, selection

    timings: dict[str, float] = {}
    probs = np.full((4, 3), 1.0 / 3.0)
    samples = np.full((2, 4, 3), 1.0 / 3.0)
    for dtype in (np.float32, np.float64):
        start = time.perf_counter()
        for name in scores.SCORE_CODES:
            getattr(scores, name)(probs.astype(dtype))
            getattr(scores, name)(logits=probs.astype(dtype))
            selection.select_top(1, probs.astype(dtype), score=name)
        for name in scores.SAMPLE_SCORE_CODES:
            getattr(scores, name)(samples.astype(dtype))
        selection.top_k(probs[:, 0].astype(dtype), 1)
        timings[f"native-{np.dtype(dtype).name}"] = time.perf_counter() - start
    return timings
