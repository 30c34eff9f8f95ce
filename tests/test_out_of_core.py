"""Out-of-core top-k over a pool file, against numpy references (margin + lexsort)."""

from __future__ import annotations

import gzip
import subprocess
import sys
import textwrap

import numpy as np
import polars as pl
import pytest

import alcore
from alcore.io import read_pool, top_k_from_file


def margin_ref(probs):
    """numpy margin, 1 - (p1 - p2), in the input's dtype."""
    top = np.sort(probs, axis=1)
    return probs.dtype.type(1) - (top[:, -1] - top[:, -2])


def top_ref(scores, k, never=None):
    """The k best scores, equal scores to the lower row (numpy lexsort)."""
    rows = np.arange(len(scores)) if never is None else np.flatnonzero(~never)
    return rows[np.lexsort((rows, -scores[rows]))[:k]]


def tied_pool(n, dtype, seed=0):
    """Probabilities rounded to 2 decimals (thousands of exact ties), renormalised in the
    target dtype."""
    rng = np.random.default_rng(seed)
    probs = np.round(rng.dirichlet(np.ones(4), size=n), 2).astype(dtype)
    probs[probs.sum(axis=1) == 0] = dtype(0.25)
    return probs / probs.sum(axis=1, keepdims=True)


def write_pool(path, probs, ids, extra=None):
    float_type = pl.Float32 if probs.dtype == np.float32 else pl.Float64
    table = pl.DataFrame({"id": ids} | {f"p{j}": pl.Series(probs[:, j], dtype=float_type)
                                        for j in range(probs.shape[1])} | (extra or {}))
    name = path.name
    if name.endswith(".gz"):
        inner = path.with_name(name[:-3])
        getattr(table, "write_" + inner.suffix[1:])(inner)
        path.write_bytes(gzip.compress(inner.read_bytes()))
        inner.unlink()
    else:
        getattr(table, "write_" + path.suffix[1:])(path)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("suffix", ["parquet", "csv", "csv.gz", "ndjson"])
def test_equals_the_numpy_reference_and_the_in_memory_selection(tmp_path, suffix, dtype):
    n = 20_000
    probs = tied_pool(n, dtype)
    path = tmp_path / f"pool.{suffix}"
    write_pool(path, probs, np.arange(n) * 7)
    # Text formats hold decimal text: polars reads them back as float64.
    file_dtype = dtype if suffix == "parquet" else np.float64
    in_file = probs.astype(file_dtype) if suffix == "parquet" else \
        read_pool(path, id=None).probs
    assert in_file.dtype == file_dtype
    scores = margin_ref(in_file)
    assert len(np.unique(scores)) < n // 10  # plenty of ties
    want = top_ref(scores, 500)
    rows, ids, got_scores = top_k_from_file(path, 500, score="margin", chunk_rows=3_000)
    np.testing.assert_array_equal(rows, want)
    np.testing.assert_array_equal(ids.astype(np.int64), want * 7)
    assert got_scores.dtype == file_dtype
    np.testing.assert_array_equal(got_scores, scores[want])
    # read_pool + select_top (what `alcore select` runs) gives the same rows in the same order.
    pool = read_pool(path)
    assert pool.probs.dtype == file_dtype
    np.testing.assert_array_equal(alcore.select_top(pool.probs, 500), want)


def test_labeled_column_and_excluded_ids(tmp_path):
    n = 5_000
    probs = tied_pool(n, np.float64, seed=3)
    done = np.zeros(n, dtype=bool)
    done[::3] = True
    ids = [f"{i:05d}" for i in range(n)]
    path = tmp_path / "pool.csv"
    write_pool(path, probs, ids, {"done": done})
    scores = margin_ref(probs)
    best = top_ref(scores, 50, never=done)
    excluded = [ids[i] for i in best[:10]]
    never = done.copy()
    never[best[:10]] = True
    rows, got_ids, _ = top_k_from_file(path, 40, labeled="done", exclude=excluded,
                                       chunk_rows=700)
    np.testing.assert_array_equal(rows, top_ref(scores, 40, never=never))
    assert got_ids.tolist() == [ids[i] for i in rows]  # text ids, as written ("00042")
    with pytest.raises(alcore.InvalidInputError,
                       match=r"exclude holds 42 but the ids are text .*pass the ids as "
                             r"strings, e.g. '42'"):
        top_k_from_file(path, 5, exclude=[42])
    # With id=None the ids are row numbers, and exclude names rows.
    first = int(top_ref(scores, 1)[0])
    never = np.zeros(n, dtype=bool)
    never[first] = True
    rows, got_ids, _ = top_k_from_file(path, 5, id=None, exclude=[first], chunk_rows=999)
    np.testing.assert_array_equal(rows, top_ref(scores, 5, never=never))
    np.testing.assert_array_equal(got_ids, rows)


def test_bad_arguments_and_files(tmp_path):
    probs = tied_pool(100, np.float64)
    path = tmp_path / "pool.parquet"
    write_pool(path, probs, np.arange(100))
    with pytest.raises(alcore.InvalidInputError, match=r"score must be one of"):
        top_k_from_file(path, 5, score="bald")
    with pytest.raises(alcore.InvalidInputError, match=r"no id column 'doc'"):
        top_k_from_file(path, 5, id="doc")
    with pytest.raises(alcore.InvalidInputError, match=r"no column 'done' for labeled="):
        top_k_from_file(path, 5, labeled="done")
    with pytest.raises(alcore.InvalidInputError,
                       match=r"k=101 exceeds the 100 rows of pool.parquet that can be picked"):
        top_k_from_file(path, 101)
    with pytest.raises(alcore.InvalidInputError, match=r"unknown file type '.xlsx'"):
        top_k_from_file(tmp_path / "pool.xlsx", 5)
    broken = probs.copy()
    broken[1234 % 100 + 50] = [0.5, 0.5, 0.5, 0.0]  # row 84: sums to 1.5
    bad = tmp_path / "bad.parquet"
    write_pool(bad, broken, np.arange(100))
    with pytest.raises(alcore.InvalidInputError, match=r"row 84 sums to 1\.5"):
        top_k_from_file(bad, 5, chunk_rows=30)  # row 84 is row 24 of the third chunk
    np.testing.assert_array_equal(
        top_k_from_file(bad, 5, normalize=True, chunk_rows=30)[0],
        top_ref(margin_ref(broken / broken.sum(axis=1, keepdims=True)), 5))


def test_memory_stays_bounded_by_the_chunk(tmp_path):
    """A pool file of 3M rows x 10 float64 probabilities (240 MB in memory) is scored in
    chunks of 100k rows; the process's peak memory grows by far less than the pool."""
    path = tmp_path / "big.parquet"
    rng = np.random.default_rng(1)
    parts = []
    for _ in range(3):
        z = rng.standard_normal((1_000_000, 10))
        p = np.exp(z - z.max(axis=1, keepdims=True))
        parts.append(p / p.sum(axis=1, keepdims=True))
    probs = np.concatenate(parts)
    pl.DataFrame({f"p{j}": probs[:, j] for j in range(10)}).write_parquet(
        path, row_group_size=100_000)
    del probs, parts
    # VmHWM is this process's own peak (ru_maxrss would inherit the forking parent's).
    code = textwrap.dedent(f"""
        import alcore, polars
        from alcore.io import top_k_from_file

        def peak():
            for line in open("/proc/self/status"):
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024

        before = peak()
        rows, _, _ = top_k_from_file({str(path)!r}, 1000, id=None, chunk_rows=100_000)
        print(peak() - before, len(rows))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd="/").stdout.split()
    grown, count = int(out[0]), int(out[1])
    assert count == 1000
    assert grown < 120e6, f"peak memory grew by {grown / 1e6:.0f} MB"


TEXT_SUFFIXES = ["csv", "csv.gz", "ndjson", "ndjson.gz"]


@pytest.mark.parametrize("suffix", TEXT_SUFFIXES)
def test_a_text_file_is_parsed_once(tmp_path, suffix, monkeypatch):
    """Chunk i was a lazy slice(offset, chunk_rows).collect(): polars parsed the text from
    the start up to the chunk each time (20 passes here, quadratic in the file's length).
    Every execution of a polars query is counted; one pass must read all rows."""
    n = 2_000
    probs = tied_pool(n, np.float64, seed=5)
    path = tmp_path / f"pool.{suffix}"
    write_pool(path, probs, [f"{i:05d}" for i in range(n)])
    passes = []
    real_collect, real_batches = pl.LazyFrame.collect, pl.LazyFrame.collect_batches

    def collect(self, *args, **kwargs):
        passes.append("collect")
        return real_collect(self, *args, **kwargs)

    def collect_batches(self, *args, **kwargs):
        passes.append("collect_batches")
        return real_batches(self, *args, **kwargs)

    monkeypatch.setattr(pl.LazyFrame, "collect", collect)
    monkeypatch.setattr(pl.LazyFrame, "collect_batches", collect_batches)
    rows, ids, _ = top_k_from_file(path, 30, chunk_rows=100)
    assert len(passes) == 1, passes
    want = top_ref(margin_ref(read_pool(path, id=None).probs), 30)
    np.testing.assert_array_equal(rows, want)
    assert ids.tolist() == [f"{i:05d}" for i in want]


@pytest.mark.parametrize("suffix", [*TEXT_SUFFIXES, "parquet"])
def test_results_do_not_depend_on_the_chunk_size(tmp_path, suffix):
    """Same rows, same order (ties to the lower row), same ids as written, same scores for
    chunks of 1 row, 7 rows and one chunk for the whole file, against numpy."""
    n = 400
    probs = tied_pool(n, np.float64, seed=9)
    ids = [f"{i:04d}" for i in range(n)]
    done = np.zeros(n, dtype=bool)
    done[::5] = True
    path = tmp_path / f"pool.{suffix}"
    write_pool(path, probs, ids, {"done": done})
    in_file = read_pool(path, id=None).probs
    scores = margin_ref(in_file)
    never = done.copy()
    excluded = top_ref(scores, 3, never=done)
    never[excluded] = True
    want = top_ref(scores, 60, never=never)
    assert len(np.unique(scores[want])) < 50  # ties inside the answer
    for chunk_rows in (1, 7, 10**9):
        rows, got_ids, got_scores = top_k_from_file(
            path, 60, labeled="done", exclude=[ids[i] for i in excluded],
            chunk_rows=chunk_rows)
        np.testing.assert_array_equal(rows, want, err_msg=f"chunk_rows={chunk_rows}")
        assert got_ids.tolist() == [ids[i] for i in want]
        np.testing.assert_array_equal(got_scores, scores[want])


def test_a_malformed_row_late_in_a_text_file_is_an_error(tmp_path):
    path = tmp_path / "pool.csv"
    lines = ["id,p0,p1"] + [f"{i},0.5,0.5" for i in range(500)] + ["500,0.5,oops"]
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(alcore.InvalidInputError, match=r"pool\.csv"):
        top_k_from_file(path, 5, chunk_rows=50)
