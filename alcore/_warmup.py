"""Pay one-time costs (loading the native core, page-faulting its code, choosing the SIMD
variant) before the first real call."""

from __future__ import annotations

import time
from typing import Any

import numpy as np


def warmup(*, utilities: Any = ()) -> dict[str, float]:
    """Run every kernel once on a tiny input, and compile the given custom utilities.

    Parameters
    ----------
    utilities : iterable of callables
        Custom utilities (:func:`alcore.utility`, or plain functions, which are wrapped)
        to compile now for float32 and float64 rows, so that the first selection does not
        pay Numba's compile time (or, in a process after the first, its cache load).

    Returns
    -------
    dict of str to float
        Seconds spent per kernel family, for logging; ``"utility-<name>"`` per utility
        (the first includes importing Numba).
    """
    from alcore import _top, _utility, scores
    from alcore._errors import InvalidInputError

    if callable(utilities):
        utilities = [utilities]
    try:
        compiled = [_utility.as_utility(u) for u in utilities]
    except TypeError:
        raise InvalidInputError(
            f"utilities must be a list of custom utility functions, got "
            f"{type(utilities).__name__}") from None

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
    for u in compiled:
        timings[f"utility-{u.name}"] = u.compile()
    return timings
