"""Review of issue 9's changes (the one-frame decide_one, ProbCover's dense range search,
TypiClust's one-BLAS-thread limit, the AVX2 entropy kernels): inputs that broke them.

Each finding is a plain test, fixed (the xfail markers of the first version came off as
their fixes landed; the claim that FAISS's own BLAS runs on one thread in TypiClust was
corrected in the code instead).
"""

from __future__ import annotations

import ctypes
import glob
import os
import sys
import warnings

import numpy as np
import pytest

from alcore import InvalidInputError, scores
from alcore.diversity import probcover
from alcore.stream import StreamGate

# --- StreamGate.decide_one: masked arrays -------------------------------------------------


def _masked_row() -> np.ma.MaskedArray:
    # The raw buffer is a valid row; the mask says its second class is missing.
    return np.ma.array([0.9, 0.1], mask=[False, True])


def test_decide_one_rejects_a_masked_row_and_changes_nothing():
    """The native fast path takes any ndarray subclass as it is: a masked array's hidden
    entries were read as probabilities (a decision made, the item counted), silently."""
    gate = StreamGate("variable_uncertainty", 0.3, seed=1)
    before = gate._gate.state()
    with pytest.raises(InvalidInputError, match=r"p has masked entries"):
        gate.decide_one(_masked_row())
    assert gate._gate.state() == before


def test_decide_many_and_scores_reject_masked_rows():
    """The same in the checked paths: as_numpy returned the masked array itself."""
    rows = np.ma.array([[0.9, 0.1], [0.5, 0.5]], mask=[[False, True], [False, False]])
    gate = StreamGate("quantile", 0.3, seed=1)
    with pytest.raises(InvalidInputError, match=r"probs has masked entries"):
        gate.decide_many(rows)
    assert gate.stats.seen == 0
    with pytest.raises(InvalidInputError, match=r"probs has masked entries"):
        scores.entropy(rows)


def test_decide_one_on_a_masked_array_without_masked_entries_decides_its_data():
    """Nothing masked: the data, as decide_many and a plain array decide it."""
    a, b = StreamGate("quantile", 0.3, seed=1), StreamGate("quantile", 0.3, seed=1)
    rows = np.random.default_rng(0).dirichlet(np.ones(3), size=50)
    got = [a.decide_one(np.ma.array(r)) for r in rows]
    assert got == [b.decide_one(r) for r in rows]
    assert all(type(g) is bool for g in got)


def test_decide_one_on_memmap_and_subclass_rows_equals_plain_rows(tmp_path):
    """ndarray subclasses other than masked arrays (memmap) still decide their data."""
    rows = np.random.default_rng(1).dirichlet(np.ones(4), size=20)
    mm = np.memmap(tmp_path / "rows.bin", dtype=np.float64, mode="w+", shape=rows.shape)
    mm[:] = rows
    a, b = StreamGate("variable_uncertainty", 0.2, seed=2), StreamGate(
        "variable_uncertainty", 0.2, seed=2)
    assert [a.decide_one(r) for r in mm] == [b.decide_one(r) for r in rows]


# --- ProbCover: the dense path's float32 threshold ----------------------------------------


@pytest.mark.parametrize("radius", [1e20, 1e30])
def test_probcover_with_a_radius_beyond_float32_warns_nothing(radius):
    """radius^2 + the bound beyond float32's range: np.float32(...) overflowed with a
    RuntimeWarning (an error under -W error, as in many users' test suites)."""
    x = np.random.default_rng(0).normal(size=(300, 8)).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        picks = probcover(x, 3, radius=radius)
    # One ball covers everything: the rest go to the lowest indices.
    assert picks.tolist() == [0, 1, 2]


# --- Scores: "the first offending row" ----------------------------------------------------


@pytest.mark.parametrize("c", [4, 10, 40])  # grouped (tiled for entropy), 10-class, wide
@pytest.mark.parametrize(("score", "sum_row", "nan_row"), [
    ("entropy", 0, 1), ("least_confidence", 0, 1), ("margin", 0, 1), ("entropy", 3, 60),
    ("entropy", 1, 0), ("margin", 9, 2), ("entropy", 5, 5)])
def test_the_first_offending_row_is_named(score, sum_row, nan_row, c):
    """scores' docs: InvalidInputError "naming the first offending row". Row sum_row sums
    to 1.5 (its elements in range), row nan_row holds a NaN: the lower of the two is named
    (a row with both: its NaN). The NaN's row was named even when later, within a group
    of vector-width rows, and for entropy within a tile of 2048 / C rows."""
    x = np.full((64, c), 1.0 / c, dtype=np.float32)
    x[sum_row, 0] += 0.5
    x[nan_row, 1] = np.nan
    first = min(sum_row, nan_row)
    what = "NaN" if first == nan_row else "sums to"
    with pytest.raises(InvalidInputError, match=rf"row {first}\b.*{what}|{what}.*row {first}\b"):
        getattr(scores, score)(x)


# --- one_blas_thread: the cached controller -----------------------------------------------


def _scipy_openblas() -> str | None:
    import numpy

    site = os.path.dirname(os.path.dirname(numpy.__file__))
    found = glob.glob(os.path.join(site, "scipy.libs", "libscipy_openblas*.so"))
    return found[0] if found else None


@pytest.mark.skipif(sys.platform != "linux" or _scipy_openblas() is None,
                    reason="needs scipy's OpenBLAS on Linux")
def test_one_blas_thread_limits_a_blas_loaded_after_the_controller_was_cached():
    from threadpoolctl import threadpool_info

    from alcore import _faiss

    path = _scipy_openblas()
    if any(i["filepath"] == os.path.realpath(path) for i in threadpool_info()):
        pytest.skip("scipy's OpenBLAS is already loaded in this process")
    with _faiss.one_blas_thread():  # builds and caches the controller
        pass
    ctypes.CDLL(path)  # a library loaded by a module already imported (ctypes)
    with _faiss.one_blas_thread():
        counts = {i["filepath"]: i["num_threads"] for i in threadpool_info()
                  if i["user_api"] == "blas"}
    assert counts[os.path.realpath(path)] == 1, counts


def test_probcover_graph_with_one_far_row_stays_small_and_exact():
    """One row at 1e4 among unit-normal rows (not centred: the mean stays near 0) widens
    the dense path's single FAISS threshold to radius^2 + ~1800: every pair came back as a
    candidate, 16k x N per block (4000 rows: 965 MB where the pruned path peaks at 8 MB,
    8000 rows: 3.8 GB and 51 s; 30k rows would not fit in memory)."""
    import tracemalloc

    from alcore import _faiss

    rng = np.random.default_rng(0)
    x = rng.normal(size=(3000, 32)).astype(np.float32)
    x[0] = 1e4
    radius = 4.0
    tracemalloc.start()
    try:
        offsets, ids = _faiss.range_graph(x, radius)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 100e6, f"peak {peak / 1e6:.0f} MB"
    x64 = x.astype(np.float64)
    want_rows, want_cols = [], []
    for i in range(len(x)):
        j = np.flatnonzero(((x64[i] - x64) ** 2).sum(axis=-1) <= radius * radius)
        want_rows.append(np.full(len(j), i))
        want_cols.append(j)
    got_rows = np.repeat(np.arange(len(x)), np.diff(offsets))
    assert np.array_equal(got_rows, np.concatenate(want_rows))
    assert np.array_equal(ids, np.concatenate(want_cols))



class _GradTensor:
    """As a torch tensor that requires grad: ``__array__`` raises RuntimeError."""

    def __array__(self, dtype=None, copy=None):
        raise RuntimeError("Can't call numpy() on Tensor that requires grad. Use "
                           "tensor.detach().numpy() instead.")


def test_an_array_conversion_runtime_error_is_an_invalid_input_error():
    """decide_one's promise (errors are InvalidInputError naming the argument): a torch
    tensor that requires grad leaked torch's RuntimeError from every entry point."""
    gate = StreamGate("quantile", 0.2)
    with pytest.raises(InvalidInputError, match=r"^p could not be converted.*detach"):
        gate.decide_one(_GradTensor())
    with pytest.raises(InvalidInputError, match=r"^probs could not be converted"):
        gate.decide_many(_GradTensor())
    with pytest.raises(InvalidInputError, match=r"^probs could not be converted"):
        scores.entropy(_GradTensor())
    assert gate.stats.seen == 0
