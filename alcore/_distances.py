"""Squared L2 distances by the expanded form ``|a|^2 + |b|^2 - 2 a.b``, with a rigorous
error bound, and the exact float64 re-decision of the cases the bound leaves open.

Every place in alcore where an expanded-form distance decides something (spread's
coverage test, ProbCover's radius graph, the self-join's pruning, k-means++ and BADGE's
zero weights, typicality) goes through this module, so there is one error policy.

The error bound
---------------
Let ``u = 2^-24`` (float32 unit roundoff) and ``gamma_n = n u / (1 - n u)``. A float32
dot product of length d, in any summation order (BLAS blocking and FMA included), has
``|fl(a.b) - a.b| <= gamma_d sum|a_i b_i| <= gamma_d |a||b|`` (Higham, *Accuracy and
Stability of Numerical Algorithms*, 2nd ed., eq. 3.5), and a squared norm
``|fl(|a|^2) - |a|^2| <= gamma_d |a|^2``. The expanded form ``s = fl(fl(na + nb) - 2p)``
(the doubling is exact) adds two roundings of magnitude at most
``(1 + gamma_d)(|a| + |b|)^2``; collecting terms with ``(1 + theta_j)(1 + theta_k) =
1 + theta_{j+k}``::

    |s - |a - b|^2| <= gamma_{d+2} (|a| + |b|)^2.                                 (1)

The bound scales with the rows' norms, not with the distance: for rows far from the
origin (ReLU features, un-centred data, norms of 10-800) it dwarfs the distances that
matter. So the rows are first *centred*: ``c = fl32(x - m)`` with ``m`` the float64 mean
(any ``m`` works: distances do not depend on it; the difference is formed in float64, so
only the final rounding to float32 counts). Each coordinate moves by at most
``u |c_i|``, so ``| |c_a - c_b| - |x_a - x_b| | <= e = u (|c_a| + |c_b|)`` and hence
``| |c_a - c_b|^2 - |x_a - x_b|^2 | <= (2u + u^2) (|c_a| + |c_b|)^2``. With (1) applied to
``c``::

    |s(c_a, c_b) - |x_a - x_b|^2| <= (gamma_{d+2} + 3u) (|c_a| + |c_b|)^2 + t_d,   (2)

where ``t_d = (d + 3) 2^-149`` covers gradual underflow (each product or square that
underflows is off by at most half a subnormal spacing, 2^-150). :func:`bound` returns
twice the right-hand side of (2) (the factor 2 absorbs the float64 rounding of the norms
used to evaluate it and leaves room for any library's extra rounding), so

    ``exact in [s - bound, s + bound]``

holds for FAISS's and numpy's float32 expanded forms alike. For float64 arithmetic on
float64 inputs, :func:`bound64` is the same with ``u = 2^-53`` and no centring term.

A decision ``|x_a - x_b|^2 <= t`` is then clear when ``s + bound <= t`` (true) or
``s - bound > t`` (false); in between it is made again with float64 differences of the
float32 inputs (:func:`exact_sq`), the same arithmetic a plain reference uses.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from alcore import _threads
from alcore._errors import InvalidInputError

U32 = 2.0**-24
U64 = 2.0**-53
# Rows per block when centring or taking float64 differences: 2048 x 512 float64 = 8 MB.
_BLOCK_ELEMENTS = 1 << 20
# Above this centred row norm the float32 expanded form could overflow ((2 n)^2 < 3.4e38).
_MAX_NORM32 = 2.0**62


def gamma(n: int, u: float = U32) -> float:
    """``n u / (1 - n u)``: the relative error bound of an n-term float dot product."""
    return n * u / (1.0 - n * u)


def error_factor(d: int) -> float:
    """K in ``bound = K (|c_a| + |c_b|)^2 + t_d`` for float32 rows of dimension d."""
    return 2.0 * (gamma(d + 2) + 3.0 * U32)


def underflow_term(d: int) -> float:
    return 2.0 * (d + 3) * 2.0**-149


def bound(d: int, norm_a: np.ndarray | float, norm_b: np.ndarray | float) -> np.ndarray:
    """Bound (2) on ``|computed - exact|`` of the float32 expanded form of centred rows with
    norms ``norm_a``, ``norm_b`` (float64, broadcast)."""
    total = np.add(norm_a, norm_b, dtype=np.float64)
    return error_factor(d) * total * total + underflow_term(d)


def bound64(terms: int, norm_a: np.ndarray | float, norm_b: np.ndarray | float) -> np.ndarray:
    """The float64 counterpart of :func:`bound`: ``2 gamma_{terms+2} (|a| + |b|)^2`` (plus
    an underflow term), for an expanded form whose products have ``terms`` terms."""
    total = np.add(norm_a, norm_b, dtype=np.float64)
    return 2.0 * gamma(terms + 2, U64) * total * total + 2.0 * (terms + 3) * 2.0**-1074


class Centred(NamedTuple):
    """Rows moved to their mean: what the float32 expanded form should be computed on."""

    rows: np.ndarray
    """float32 (N, d), C-contiguous: ``fl32(x - mean)``, or x itself when mean is 0."""
    mean: np.ndarray
    """float64 (d,)."""
    norms: np.ndarray | None
    """float64 (N,): ``|rows_i|`` (None when not asked for)."""


def row_norms(x: np.ndarray) -> np.ndarray:
    """float64 norms of the rows of x, a block of rows at a time."""
    norms = np.empty(x.shape[0])
    step = max(1, _BLOCK_ELEMENTS // max(x.shape[1], 1))
    for start in range(0, x.shape[0], step):
        block = x[start:start + step].astype(np.float64)
        norms[start:start + step] = np.sqrt(np.einsum("ij,ij->i", block, block))
    return norms


# Rows sampled to decide whether centring pays (the mean and spread of a large sample).
_DECISION_SAMPLE = 65_536


def centre(x: np.ndarray, name: str = "embeddings", *, norms: bool = True) -> Centred:
    """Rows on which to compute float32 expanded forms, and (with ``norms=True``) their
    float64 norms for :func:`bound`.

    Rows whose mean lies far from the origin compared with their spread (|mean| above a
    quarter of the root-mean-square distance to the mean, judged on an evenly strided
    sample of at most 65 536 rows and 2^20 values) are centred on their float64 mean,
    block by block (a float32 copy of x, O(block) temporaries); otherwise x is used as it
    is (no copy: centring would shrink the rows' root-mean-square norm by at most
    sqrt(17/16), about 3 %). Raises
    :class:`InvalidInputError` when even centred rows would overflow float32 squares.
    """
    n, d = x.shape
    rows, mean = x, np.zeros(d)
    if n:
        wanted = max(256, min(_DECISION_SAMPLE, _BLOCK_ELEMENTS // max(d, 1)))
        sample = x[::max(1, -(-n // wanted))].astype(np.float64)
        sample_mean = sample.mean(axis=0)
        spread_sq = float(np.mean(np.einsum("ij,ij->i", sample, sample))) - float(
            sample_mean @ sample_mean)
        if float(sample_mean @ sample_mean) > max(spread_sq, 0.0) / 16:
            mean = x.mean(axis=0, dtype=np.float64)
            rows = np.empty((n, d), dtype=np.float32)
            step = max(1, _BLOCK_ELEMENTS // max(d, 1))
            for start in range(0, n, step):
                block = x[start:start + step].astype(np.float64)
                block -= mean
                rows[start:start + step] = block
    lengths = row_norms(rows) if norms else None
    # max and min, not abs: no (N, d) temporary.
    largest = max(float(rows.max()), -float(rows.min())) if n else 0.0
    if n and (lengths is not None or largest * np.sqrt(d) > _MAX_NORM32):
        lengths = row_norms(rows) if lengths is None else lengths
        if float(lengths.max()) > _MAX_NORM32:
            row = int(np.argmax(lengths))
            raise InvalidInputError(
                f"{name} are too spread out for float32 distances: row {row} lies "
                f"{float(lengths[row]):.3g} from the mean (at most {_MAX_NORM32:.3g}); "
                f"rescale {name} (e.g. divide by {float(lengths[row]) / 1e6:.3g})"
            )
    return Centred(rows, mean, lengths if norms else None)


def sq_norms32(rows: np.ndarray) -> np.ndarray:
    """float32 squared norms, as FAISS and BLAS-based code use them."""
    return np.einsum("ij,ij->i", rows, rows)


def expanded_sq(a: np.ndarray, a_sq: np.ndarray, b: np.ndarray, b_sq: np.ndarray) -> np.ndarray:
    """(len(a), len(b)) float32 expanded-form squared distances (one matrix product)."""
    sq = a @ b.T
    sq *= -2
    sq += a_sq[:, None]
    sq += b_sq[None, :]
    return sq


def exact_sq(x: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Squared distances of the pairs (x[rows[i]], x[cols[i]]) from float64 differences of
    the float32 inputs: the reference arithmetic. Blocked: O(block) temporaries."""
    out = np.empty(len(rows))
    d = x.shape[1]
    step = max(1, _BLOCK_ELEMENTS // max(d, 1))
    for start in range(0, len(rows), step):
        diff = x[rows[start:start + step]].astype(np.float64)
        diff -= x[cols[start:start + step]]
        # square then sum over the last axis: the same (pairwise) summation as a plain
        # ((a - b) ** 2).sum(axis=-1), so both round alike.
        np.square(diff, out=diff)
        out[start:start + step] = diff.sum(axis=1)
    return out


def exact_sq_to_rows(x: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """|x_i - x_ids[i, j]|^2 (float64, shape of ids) from float64 differences of the float32
    inputs, summed as :func:`exact_sq` sums (numpy's pairwise sum over the last axis), so
    to the same bits: the pairs (i, ids[i, j]) of a row and its candidates, each row
    gathered once, blocks on alcore's threads."""
    return exact_sq_to_base(x, x, ids)


def exact_sq_to_base(queries: np.ndarray, base: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """|queries_i - base_ids[i, j]|^2 (float64, shape of ids), the arithmetic of
    :func:`exact_sq_to_rows` for queries that are not rows of the base (a sample index's
    neighbours)."""
    from concurrent.futures import ThreadPoolExecutor

    n, m = ids.shape
    out = np.empty((n, m))
    step = max(1, 2**20 // max(1, m * base.shape[1]))  # (step, m, d) float64: 8 MB blocks

    def block(start: int) -> None:
        diff = base[ids[start:start + step]].astype(np.float64)
        diff -= queries[start:start + step, None, :]
        np.square(diff, out=diff)
        out[start:start + step] = diff.sum(axis=2)

    with ThreadPoolExecutor(_threads.get_num_threads()) as pool:
        list(pool.map(block, range(0, n, step)))
    return out


def exact_min_sq(x: np.ndarray, queries: np.ndarray, anchors: np.ndarray) -> np.ndarray:
    """For each row index in ``queries``, the smallest squared distance (float64 differences)
    to the rows ``anchors`` of x (inf when there are none). Blocked over both queries and
    anchors: O(block) temporaries however many anchors there are."""
    out = np.full(len(queries), np.inf)
    if not len(anchors) or not len(queries):
        return out
    d = x.shape[1]
    per_block = max(1, _BLOCK_ELEMENTS // max(d, 1))  # (query, anchor) pairs per block
    anchor_step = min(len(anchors), per_block)
    query_step = max(1, per_block // anchor_step)
    for a0 in range(0, len(anchors), anchor_step):
        points = x[anchors[a0:a0 + anchor_step]].astype(np.float64)
        for q0 in range(0, len(queries), query_step):
            q = x[queries[q0:q0 + query_step]].astype(np.float64)
            diff = q[:, None, :] - points[None, :, :]
            np.square(diff, out=diff)
            best = diff.sum(axis=2).min(axis=1)
            np.minimum(out[q0:q0 + query_step], best, out=out[q0:q0 + query_step])
    return out


def at_most(approx: np.ndarray, err: np.ndarray, threshold: float,
            exact: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """``exact_value <= threshold`` for every entry, where ``|approx - exact_value| <= err``;
    ``exact(positions)`` computes the exact values of the flat positions the bound leaves
    open. Returns a bool array shaped like ``approx``."""
    approx = np.asarray(approx, dtype=np.float64)
    result = approx + err <= threshold
    open_ = np.flatnonzero(~result & (approx - err <= threshold))
    if len(open_):
        result.flat[open_] = exact(open_) <= threshold
    return result


def less_than(approx: np.ndarray, err: np.ndarray, threshold: float,
              exact: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """As :func:`at_most` for ``exact_value < threshold``."""
    approx = np.asarray(approx, dtype=np.float64)
    result = approx + err < threshold
    open_ = np.flatnonzero(~result & (approx - err < threshold))
    if len(open_):
        result.flat[open_] = exact(open_) < threshold
    return result


__all__ = ["Centred", "at_most", "bound", "bound64", "centre", "error_factor", "exact_min_sq",
           "exact_sq", "exact_sq_to_rows", "expanded_sq", "gamma", "less_than", "row_norms",
           "sq_norms32", "underflow_term"]
