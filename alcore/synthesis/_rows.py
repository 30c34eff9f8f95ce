"""The float32 rows the synthesis searches: float64 input centred in float64 first."""

from __future__ import annotations

from typing import Any

import numpy as np

from alcore import _validation as v


def _lossy(arr: np.ndarray, rows: np.ndarray) -> bool:
    """Whether rounding ``arr`` to the float32 ``rows`` changed a value."""
    return arr.dtype != np.float32 and not np.array_equal(rows, arr)


def search_rows(value: Any, name: str) -> np.ndarray:
    """float32 C-contiguous (N, d) rows of ``value`` for a neighbour search.

    float64 rows that float32 cannot hold exactly are moved to their float64 mean before
    rounding: distances do not change, and float32 then keeps the digits of the spread,
    not of the offset (rounded first, rows 1e6 from the origin keep about 3 digits of a
    unit spread). Rows float32 holds exactly (float32 input, small integers, ...) are
    used as they are, so their exact distance ties stay ties."""
    arr = v.float_array(value, name)
    rows = v.embeddings_matrix(arr, name)  # shape, emptiness, finiteness, float32 range
    if not _lossy(arr, rows):
        return rows
    return np.ascontiguousarray(arr - arr.mean(axis=0, dtype=np.float64), dtype=np.float32)


def paired_rows(points: Any, pool: Any, points_name: str, pool_name: str
                ) -> tuple[np.ndarray, np.ndarray]:
    """float32 rows of ``points`` and ``pool`` (validated; the caller checks that their d
    agree), both moved by the pool's float64 mean when the pool is float64 that float32
    cannot hold exactly (see :func:`search_rows`); else rounded as they are (a float32
    pool is never moved: that would round its values)."""
    p_arr, q_arr = v.float_array(points, points_name), v.float_array(pool, pool_name)
    p_rows = v.embeddings_matrix(p_arr, points_name)
    q_rows = v.embeddings_matrix(q_arr, pool_name)
    if p_rows.shape[1] != q_rows.shape[1] or not _lossy(q_arr, q_rows):
        return p_rows, q_rows
    mean = q_arr.mean(axis=0, dtype=np.float64)
    return (np.ascontiguousarray(p_arr - mean, dtype=np.float32),
            np.ascontiguousarray(q_arr - mean, dtype=np.float32))
