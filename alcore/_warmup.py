"""Pay one-time costs (loading the native core, page-faulting its code, choosing the SIMD
variant) before the first real call."""

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
    from alcore import _top, scores

    timings: dict[str, float] = {}
    probs = np.full((4, 3), 1.0 / 3.0)
    samples = np.full((2, 4, 3), 1.0 / 3.0)
    for dtype in (np.float32, np.float64):
        start = time.perf_counter()
        for name in scores.SCORE_CODES:
            getattr(scores, name)(probs.astype(dtype))
            getattr(scores, name)(probs.astype(dtype), logits=True)
            _top.select_top(probs.astype(dtype), 1, score=name)
        for name in scores.SAMPLE_SCORE_CODES:
            getattr(scores, name)(samples.astype(dtype))
        _top.top_k(probs[:, 0].astype(dtype), 1)
        timings[f"native-{np.dtype(dtype).name}"] = time.perf_counter() - start
    return timings
