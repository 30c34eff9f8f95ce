"""Hypothesis strategies for probability matrices: ties, exact 0 and 1, one row, C = 2,
widths on both sides of the grouped-row kernel limit (32 columns) and of vector widths."""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

# Few distinct values: many ties within and between rows, exact zeros and ones.
TIE_VALUES = [0.0, 0.0, 0.25, 0.5, 1.0, 2.0]


def _normalise(raw: np.ndarray) -> np.ndarray:
    raw = raw.astype(np.float64)
    sums = raw.sum(axis=-1, keepdims=True)
    empty = sums[..., 0] == 0
    raw[empty, 0] = 1.0  # a one-hot row: p = 1 exactly
    return raw / raw.sum(axis=-1, keepdims=True)


@st.composite
def prob_matrices(draw, max_rows: int = 70, max_classes: int = 40, dtype=None):
    n = draw(st.integers(1, max_rows))
    c = draw(st.sampled_from([2, 3, 7, 10, 16, 17, 31, 32, 33, max_classes]))
    ties = draw(st.booleans())
    elements = (st.sampled_from(TIE_VALUES) if ties
                else st.floats(0, 1, allow_nan=False, allow_subnormal=True, width=32))
    raw = draw(hnp.arrays(np.float64, (n, c), elements=elements))
    if ties and n > 1 and draw(st.booleans()):
        raw[1:] = raw[0]  # identical rows: equal scores, order must follow the index
    dtype = dtype or draw(st.sampled_from([np.float32, np.float64]))
    return _normalise(raw).astype(dtype)


@st.composite
def sample_tensors(draw, max_members: int = 6, max_rows: int = 40, dtype=None):
    t = draw(st.integers(1, max_members))
    n = draw(st.integers(1, max_rows))
    c = draw(st.sampled_from([2, 3, 10, 17, 32, 33]))
    ties = draw(st.booleans())
    elements = (st.sampled_from(TIE_VALUES) if ties
                else st.floats(0, 1, allow_nan=False, width=32))
    raw = draw(hnp.arrays(np.float64, (t, n, c), elements=elements))
    dtype = dtype or draw(st.sampled_from([np.float32, np.float64]))
    return _normalise(raw).astype(dtype)


@st.composite
def logit_matrices(draw, max_rows: int = 50):
    n = draw(st.integers(1, max_rows))
    c = draw(st.sampled_from([2, 3, 10, 16, 33]))
    scale = draw(st.sampled_from([1.0, 30.0, 1e4]))
    raw = draw(hnp.arrays(np.float64, (n, c),
                          elements=st.floats(-1, 1, allow_nan=False, width=32)))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    return (raw * scale).astype(dtype)


def tolerance(dtype, classes: int = 40) -> dict:
    """Absolute tolerance against a float64 reference: a float32 row sum of C terms can be
    off by about C half-ulps of its magnitude (<= ln C)."""
    atol = 2e-6 + 1.2e-7 * classes if np.dtype(dtype) == np.float32 else 1e-12
    return {"rtol": 0, "atol": atol}
