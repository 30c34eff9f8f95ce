"""Reading pools and streams from files (through polars) and writing results atomically."""

from __future__ import annotations

import fnmatch
import os
import re
import tempfile
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from alcore._errors import InvalidInputError

_READERS = {".parquet": "read_parquet", ".csv": "read_csv", ".ndjson": "read_ndjson",
            ".jsonl": "read_ndjson", ".arrow": "read_ipc", ".ipc": "read_ipc",
            ".feather": "read_ipc"}


def read_table(path: str | os.PathLike) -> Any:
    """A polars DataFrame from Parquet, CSV, NDJSON or Arrow IPC (chosen by extension)."""
    import polars as pl

    path = Path(path)
    reader = _READERS.get(path.suffix.lower())
    if reader is None:
        raise InvalidInputError(
            f"{path.name}: unknown file type {path.suffix!r}; use one of "
            f"{', '.join(sorted(_READERS))}")
    if not path.exists():
        raise InvalidInputError(f"{path}: no such file")
    try:
        return getattr(pl, reader)(path)
    except Exception as err:  # polars raises several types for unreadable files
        raise InvalidInputError(f"{path.name}: could not be read as {path.suffix} ({err})") \
            from None


def probability_matrix(table: Any, spec: str | None = None) -> np.ndarray:
    """(N, C) float64 probabilities from a table: a list or fixed-size Array column (``spec``
    or ``probs``), one column named ``spec``, columns matching a glob ``spec`` (``prob_*``),
    or, by default, numbered columns ``p0 … p{C-1}``."""
    import polars as pl

    columns = table.columns
    if spec is None and "probs" in columns:
        spec = "probs"
    if spec is not None and spec in columns:
        if not isinstance(table[spec].dtype, pl.List | pl.Array):
            raise InvalidInputError(
                f"column {spec!r} is {table[spec].dtype}, not a list of probabilities; pass "
                f"a list column, or a pattern matching one column per class (e.g. 'p*')")
        return _matrix_column(table, spec, np.float64)
    if spec is not None:
        chosen = [c for c in columns if fnmatch.fnmatchcase(c, spec)]
        if not chosen:
            raise InvalidInputError(
                f"no column matches {spec!r}; columns are {', '.join(columns[:20])}")
        chosen.sort(key=_natural_key)
    else:
        chosen = sorted((c for c in columns if re.fullmatch(r"p\d+", c)), key=_natural_key)
        if not chosen:
            raise InvalidInputError(
                f"no probability columns: expected a list column 'probs' or columns p0, p1, "
                f"...; columns are {', '.join(columns[:20])}; name them with --probs")
    try:
        return table.select(chosen).to_numpy().astype(np.float64)
    except Exception as err:
        raise InvalidInputError(f"probability columns {chosen[:5]} are not numeric ({err})") \
            from None


def _matrix_column(table: Any, name: str, dtype: Any = np.float32) -> np.ndarray:
    """A list or fixed-size Array column as an (N, width) matrix of ``dtype``, without a
    Python loop over rows."""
    import polars as pl

    series = table[name]
    if isinstance(series.dtype, pl.List):
        widths = series.list.len().unique()
        if len(widths) != 1:
            raise InvalidInputError(
                f"column {name!r} holds lists of different lengths "
                f"({sorted(widths.to_list())[:5]}); every row needs the same length")
        series = series.list.to_array(int(widths[0]))
    if not isinstance(series.dtype, pl.Array):
        raise InvalidInputError(
            f"column {name!r} is {series.dtype}, not a list or array of numbers")
    try:
        return np.ascontiguousarray(series.to_numpy(), dtype=dtype)
    except Exception as err:
        raise InvalidInputError(f"column {name!r} is not numeric ({err})") from None


class Pool(NamedTuple):
    """What :func:`read_pool` returns."""

    ids: np.ndarray
    """(N,): the id column, or 0 … N-1 when the file has none."""
    probs: np.ndarray | None
    """(N, C) float32 probabilities, or None when the file has none."""
    embeddings: np.ndarray | None
    """(N, d) float32 embeddings, or None when the file has none."""


def read_pool(path: str | os.PathLike, id: str = "id", probs: str | None = None,
              embeddings: str | None = None) -> Pool:
    """Read a pool from Parquet, Arrow IPC, CSV or NDJSON through polars.

    Parameters
    ----------
    path : str or path-like
    id : str
        Id column (default ``id``; row numbers when absent).
    probs : str, optional
        Probabilities: a list/Array column, one column per class by a glob pattern
        (``prob_*``), or by default the column ``probs``, else ``p0 … p{C-1}``.
    embeddings : str, optional
        A list/Array column (default ``embedding``, else ``emb``).

    Returns
    -------
    Pool
    """
    table = read_table(path)
    columns = table.columns
    ids = (table[id].to_numpy() if id in columns else np.arange(table.height, dtype=np.int64))
    if embeddings is None:
        embeddings = next((c for c in ("embedding", "emb") if c in columns), None)
    elif embeddings not in columns:
        raise InvalidInputError(
            f"no embedding column {embeddings!r}; columns are {', '.join(columns[:20])}")
    has_probs = probs is not None or "probs" in columns or any(
        re.fullmatch(r"p\d+", c) for c in columns)
    matrix = probability_matrix(table, probs).astype(np.float32) if has_probs else None
    emb = _matrix_column(table, embeddings) if embeddings is not None else None
    return Pool(ids, matrix, emb)


def top_k_from_file(path: str | os.PathLike, k: int, score: str = "margin",
                    probs: str | None = None, id: str = "id",
                    chunk_rows: int = 1_000_000) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The k highest-scoring rows of a pool file, scored out of core.

    The file is scanned ``chunk_rows`` rows at a time (polars' lazy scan reads only the
    rows of each slice); each chunk is scored natively and only its best k rows are kept,
    then merged with the best so far. Peak memory is about one chunk:
    ``chunk_rows x (8 C + 8)`` bytes for float64 probabilities and their ids, plus the
    reader's buffers, whatever the file's size.

    Returns
    -------
    (row numbers int64 (k,), ids (k,), scores float64 (k,)), best first; equal scores go to
    the lower row number, exactly as alcore.select_top on the whole file would.
    """
    import polars as pl

    from alcore import _validation as v
    from alcore.selection import select_top, top_k

    k = v.count(k)
    chunk_rows = v.count(chunk_rows, "chunk_rows")
    path = Path(path)
    scanners = {".parquet": pl.scan_parquet, ".arrow": pl.scan_ipc, ".ipc": pl.scan_ipc,
                ".feather": pl.scan_ipc, ".csv": pl.scan_csv, ".ndjson": pl.scan_ndjson,
                ".jsonl": pl.scan_ndjson}
    scan = scanners.get(path.suffix.lower())
    if scan is None:
        raise InvalidInputError(f"{path.name}: unknown file type {path.suffix!r}")
    if not path.exists():
        raise InvalidInputError(f"{path}: no such file")
    lazy = scan(path)
    total = lazy.select(pl.len()).collect().item()
    best_rows = np.empty(0, dtype=np.int64)
    best_scores = np.empty(0, dtype=np.float64)
    best_ids: list[Any] = []
    for offset in range(0, total, chunk_rows):
        chunk = lazy.slice(offset, chunk_rows).collect()
        matrix = probability_matrix(chunk, probs)
        m = min(k, len(matrix))
        picked = select_top(m, matrix, score=score, return_scores=True)
        rows = picked.indices + offset
        ids = (chunk[id].to_numpy()[picked.indices] if id in chunk.columns else rows)
        # Merge: all candidates so far, ranked by (score desc, row asc) as select_top ranks.
        merged_rows = np.concatenate([best_rows, rows])
        merged_scores = np.concatenate([best_scores, picked.scores[picked.indices]])
        merged_ids = list(best_ids) + list(ids)
        keep = top_k(merged_scores, min(k, len(merged_rows)))
        order = np.lexsort((merged_rows[keep], -merged_scores[keep]))
        keep = keep[order]
        best_rows, best_scores = merged_rows[keep], merged_scores[keep]
        best_ids = [merged_ids[i] for i in keep]
    if len(best_rows) < k:
        raise InvalidInputError(f"k={k} exceeds the {len(best_rows)} rows of {path.name}")
    return best_rows, np.asarray(best_ids), best_scores


def _natural_key(name: str) -> list:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def write_table(table: Any, path: str | os.PathLike, overwrite: bool = False) -> None:
    """Write a polars DataFrame (Parquet, CSV or NDJSON by extension) atomically: to a
    temporary file beside the target, then renamed over it."""
    path = Path(path)
    suffix = path.suffix.lower()
    writer = {".parquet": "write_parquet", ".csv": "write_csv", ".ndjson": "write_ndjson",
              ".jsonl": "write_ndjson", ".json": "write_json"}.get(suffix)
    if writer is None:
        raise InvalidInputError(
            f"{path.name}: cannot write {suffix!r}; use .parquet, .csv, .ndjson or .json")
    if path.exists() and not overwrite:
        raise InvalidInputError(f"{path} exists; pass --overwrite to replace it")
    handle, temp = tempfile.mkstemp(suffix=suffix, dir=path.parent or Path("."))
    os.close(handle)
    try:
        getattr(table, writer)(temp)
        os.replace(temp, path)
    finally:
        if os.path.exists(temp):
            os.remove(temp)
