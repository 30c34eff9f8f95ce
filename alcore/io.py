"""Reading pools and streams from files (through polars) and writing results atomically.

Formats, by extension: Parquet (``.parquet``), Arrow IPC (``.arrow``, ``.ipc``,
``.feather``), CSV (``.csv``, ``.csv.gz``) and NDJSON (``.ndjson``, ``.jsonl``, gzipped
too). polars is imported inside the functions, so ``import alcore`` does not pay for it.

What a pool file holds
----------------------
- **ids**: the column ``id`` (or the one named by ``id=``), taken as written: in CSV and
  NDJSON the id column is read as text, so ``002241`` stays ``"002241"``. ``id=None`` uses
  row numbers 0 … N-1 instead; a named id column that is missing is an error, never a
  silent fall-back to row numbers.
- **probabilities**: a list or fixed-size Array column (default ``probs``), one column per
  class by a glob pattern (``prob_*``, ordered by the numbers in their names), or by
  default the columns ``p0 … p{C-1}``. A **single** column holds a binary model's
  probability of the positive class p and is read as the two columns ``[1 - p, p]``.
- **embeddings**: a list/Array column (default ``embedding``, else ``emb``) or numbered
  columns by a glob pattern (``e*``; the only way a CSV can hold them).
- **labeled**: a boolean column (true/false, or 0/1 integers).

Precision: float32 columns give float32 arrays and float64 columns float64 (integer
columns, e.g. 0/1 probabilities, give float64), so the in-memory selection on
:func:`read_pool`'s arrays and the out-of-core :func:`top_k_from_file` score the same
numbers and return the same rows in the same order.
"""

from __future__ import annotations

import fnmatch
import os
import re
import tempfile
from collections.abc import Collection
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from alcore import _validation as v
from alcore._errors import InvalidInputError

# Extension -> format; gzip is recognised by a trailing ".gz" on the text formats.
_FORMATS = {".parquet": "parquet", ".csv": "csv", ".ndjson": "ndjson", ".jsonl": "ndjson",
            ".arrow": "ipc", ".ipc": "ipc", ".feather": "ipc"}
_TEXT_FORMATS = ("csv", "ndjson")
_WRITERS = {".parquet": "write_parquet", ".csv": "write_csv", ".ndjson": "write_ndjson",
            ".jsonl": "write_ndjson", ".json": "write_json"}
_SCORES = ("least_confidence", "margin", "ratio", "entropy")


def _format(path: Path) -> str:
    """The file's format from its extension (``.csv.gz`` is CSV), or an error listing the
    readable ones."""
    name = path.name.lower()
    gzipped = name.endswith(".gz")
    suffix = Path(name[:-3] if gzipped else name).suffix
    fmt = _FORMATS.get(suffix)
    if fmt is None or (gzipped and fmt not in _TEXT_FORMATS):
        shown = suffix + ".gz" if gzipped else suffix
        raise InvalidInputError(
            f"{path.name}: unknown file type {shown!r}; use one of "
            f"{', '.join(sorted(_FORMATS))}, .csv.gz, .ndjson.gz or .jsonl.gz")
    return fmt


def _columns_text(columns: list[str]) -> str:
    shown = ", ".join(columns[:20])
    return shown + (f", … ({len(columns) - 20} more)" if len(columns) > 20 else "")


def read_table(path: str | os.PathLike, *, text_columns: Collection[str] = ()) -> Any:
    """A polars DataFrame from Parquet, Arrow IPC, CSV or NDJSON (chosen by extension;
    ``.csv.gz``/``.ndjson.gz`` are decompressed).

    Parameters
    ----------
    path : str or path-like
    text_columns : collection of str
        Columns of a CSV or NDJSON file read as text, as written (ids such as ``002241``);
        names absent from the file are ignored. Parquet and Arrow keep their own types.

    Raises
    ------
    InvalidInputError
        Unknown extension, missing or unreadable file, or a file with no rows.
    """
    import polars as pl

    path = Path(path)
    fmt = _format(path)
    if not path.is_file():
        raise InvalidInputError(f"{path}: no such file")
    overrides = _text_overrides(path, fmt, text_columns)
    try:
        if fmt == "parquet":
            table = pl.read_parquet(path)
        elif fmt == "ipc":
            table = pl.read_ipc(path)
        elif fmt == "csv":
            table = pl.read_csv(path, schema_overrides=overrides)
        else:
            table = pl.read_ndjson(path, schema_overrides=overrides)
    except Exception as err:  # polars raises several types for unreadable files
        raise InvalidInputError(f"{path.name}: could not be read as {fmt} ({err})") from None
    if fmt == "csv" and table.width == 1:
        sep = next((c for c in ";\t|" if c in table.columns[0]), None)
        if sep is not None:
            raise InvalidInputError(
                f"{path.name} reads as one column {table.columns[0]!r}: its values are "
                f"separated by {sep!r}, but a CSV file is read comma-separated; write it with "
                f"commas")
    if table.height == 0:
        raise InvalidInputError(
            f"{path.name} has no rows (columns: {_columns_text(table.columns) or 'none'})")
    return table


def _text_overrides(path: Path, fmt: str, text_columns: Collection[str]) -> dict[str, Any]:
    """Schema overrides for a CSV/NDJSON file: ``text_columns`` read as text, and every
    other column whose first rows look like integers read as Float64. polars infers types
    from the first 100 rows, so a probability column that starts with 0s and 1s (a confident
    model) would be read as integers and fail at its first 0.5, with advice to change an
    option neither this module nor the CLI has. Limited to the columns the file has: polars'
    NDJSON reader fails on an absent name."""
    import polars as pl

    if fmt not in _TEXT_FORMATS:
        return {}
    scan = pl.scan_csv if fmt == "csv" else pl.scan_ndjson
    try:
        schema = scan(path).collect_schema()
    except Exception:  # an unreadable file: the reader reports it with its own message
        return {}
    text = set(text_columns)
    overrides = {name: pl.String for name in schema.names() if name in text}
    overrides.update({name: pl.Float64 for name, dtype in schema.items()
                      if name not in text and dtype.is_integer()})
    return overrides


def _float_dtype(dtypes: list[Any]) -> type:
    """float32 when every column is Float32, else float64 (the file's precision)."""
    import polars as pl

    return np.float32 if dtypes and all(d == pl.Float32 for d in dtypes) else np.float64


def _first_null(series: Any) -> int | None:
    """Position of the first null in a polars Series, or None when it has none."""
    nulls = series.is_null()
    return int(nulls.arg_true()[0]) if nulls.any() else None


def _numeric_columns(table: Any, chosen: list[str], what: str, row_offset: int) -> np.ndarray:
    """(N, len(chosen)) matrix of numeric columns in the file's precision; nulls and text
    columns are errors naming the column and row."""
    part = table.select(chosen)
    for name in chosen:
        dtype = part[name].dtype
        if not dtype.is_numeric():
            raise InvalidInputError(
                f"{what} column {name!r} is {dtype}, not numbers; check the column names "
                f"(columns used: {_columns_text(chosen)})")
        null = _first_null(part[name])
        if null is not None:
            raise InvalidInputError(
                f"{what} column {name!r} is missing (empty or null) in row "
                f"{null + row_offset} (0-based); fill it in or drop that row")
    dtype = _float_dtype([part[name].dtype for name in chosen])
    return np.ascontiguousarray(part.to_numpy(), dtype=dtype)


def _matrix_column(table: Any, name: str, what: str, row_offset: int = 0) -> np.ndarray:
    """A list or fixed-size Array column as an (N, width) matrix in the file's precision,
    without a Python loop over rows."""
    import polars as pl

    series = table[name]
    if not isinstance(series.dtype, pl.List | pl.Array):
        raise InvalidInputError(f"{what} column {name!r} is {series.dtype}, not a list of "
                                f"numbers")
    null = _first_null(series)
    if null is not None:
        raise InvalidInputError(
            f"{what} column {name!r} is missing (null) in row {null + row_offset} (0-based); "
            f"every row needs its {what}: fill it in or drop that row")
    if isinstance(series.dtype, pl.List):
        widths = series.list.len()
        first = int(widths[0])
        wrong = widths != first
        if wrong.any():
            row = int(wrong.arg_true()[0])
            raise InvalidInputError(
                f"{what} column {name!r} holds lists of different lengths (row "
                f"{row_offset} has {first}, row {row + row_offset} has {int(widths[row])}); "
                f"every row needs the same length")
        series = series.list.to_array(first)
    inner = series.dtype.inner
    if not inner.is_numeric():
        raise InvalidInputError(f"{what} column {name!r} holds {inner}, not numbers")
    try:
        # Null elements inside a list become NaN here; the scoring kernels report them with
        # their row and column.
        return np.ascontiguousarray(series.to_numpy(), dtype=_float_dtype([inner]))
    except Exception as err:
        raise InvalidInputError(f"{what} column {name!r} is not numeric ({err})") from None


def _refuse_one_of_numbered(columns: list[str], name: str, argument: str, meaning: str) -> None:
    """Refuse a single numbered column (``p0``, ``e3``) named where its numbered siblings
    also exist: the user meant the columns' pattern, and reading one column alone as
    ``meaning`` would silently score something else."""
    match = re.fullmatch(r"(.*?)(\d+)", name)
    if match is None:
        return
    siblings = [c for c in columns if c != name
                and re.fullmatch(re.escape(match[1]) + r"\d+", c)]
    if siblings:
        raise InvalidInputError(
            f"{argument}={name!r} names one column, which would be read as {meaning}, but "
            f"the file also has {_columns_text(sorted(siblings, key=_natural_key))}; for one "
            f"column each pass a pattern: {argument}='{match[1]}*'")


def _pattern_columns(columns: list[str], spec: str, what: str) -> list[str]:
    chosen = [c for c in columns if fnmatch.fnmatchcase(c, spec)]
    if not chosen:
        raise InvalidInputError(
            f"no column matches {spec!r} for the {what}; columns are {_columns_text(columns)}")
    prefix = spec[:-1]
    if spec.endswith("*") and not any(ch in prefix for ch in "*?["):
        # 'e*' over e0, e1, e2 and 'entropy': the pattern meant the numbered columns; taking
        # the other one too would silently add a feature (or a class).
        numbered = [c for c in chosen if re.fullmatch(re.escape(prefix) + r"\d+", c)]
        others = [c for c in chosen if c not in numbered]
        if numbered and others:
            raise InvalidInputError(
                f"the pattern {spec!r} for the {what} matches the numbered columns "
                f"{_columns_text(sorted(numbered, key=_natural_key))} and also "
                f"{_columns_text(others)}; name the numbered ones only: "
                f"{'probs' if what == 'probabilities' else what}='{prefix}[0-9]*'")
    return sorted(chosen, key=_natural_key)


def list_columns(schema: Any) -> set[str]:
    """The names of a polars schema's (or frame's) list/Array columns."""
    import polars as pl

    items = schema.schema.items() if hasattr(schema, "schema") else schema.items()
    return {name for name, dtype in items if isinstance(dtype, pl.List | pl.Array)}


def probability_columns(columns: list[str], spec: str | None,
                        lists: Collection[str] = ()) -> list[str]:
    """The columns :func:`probability_matrix` reads for ``spec`` (``lists``: the list/Array
    columns among ``columns``): one list/Array column (or a binary model's single column),
    or one column per class. Readers select these alone, so a pool file's embeddings are
    not decoded when only the scores are needed; the checks are made on all ``columns``."""
    if spec is None and "probs" in columns:
        return ["probs"]
    if spec is not None and spec in columns:
        if spec not in lists:
            _refuse_one_of_numbered(columns, spec, "probs", "a binary model's positive-class "
                                    "probability p ([1 - p, p])")
        return [spec]
    if spec is not None:
        return _pattern_columns(columns, spec, "probabilities")
    chosen = sorted((c for c in columns if re.fullmatch(r"p\d+", c)), key=_natural_key)
    if not chosen:
        raise InvalidInputError(
            f"no probability columns: expected a list column 'probs' or columns p0, p1, "
            f"...; columns are {_columns_text(columns)}; name them with probs=")
    return chosen


def embedding_columns(columns: list[str], spec: str | None,
                      lists: Collection[str] = ()) -> list[str]:
    """The columns :func:`embedding_matrix` reads for ``spec`` (empty: no default column)."""
    if spec is None:
        spec = next((c for c in ("embedding", "emb") if c in columns), None)
        if spec is None:
            return []
        return [spec]
    if spec in columns:
        if spec not in lists:
            _refuse_one_of_numbered(columns, spec, "embeddings", "a one-dimensional embedding")
        return [spec]
    if any(ch in spec for ch in "*?["):
        return _pattern_columns(columns, spec, "embeddings")
    raise InvalidInputError(
        f"no embedding column {spec!r}; columns are {_columns_text(columns)}; name a list "
        f"column or a pattern such as 'e*' for numbered columns")


def probability_matrix(table: Any, spec: str | None = None, *, logits: bool = False,
                       row_offset: int = 0) -> np.ndarray:
    """(N, C) probabilities (or logits) of a table, in the file's precision.

    Parameters
    ----------
    table : polars.DataFrame
    spec : str, optional
        A list/Array column, one column (a binary model's single output), or a glob pattern
        matching one column per class (``prob_*``). Default: the column ``probs``, else
        ``p0 … p{C-1}``.
    logits : bool
        Whether the columns hold logits; only changes how a single column is read: a
        positive-class probability p becomes ``[1 - p, p]``, a logit z becomes ``[0, z]``
        (whose softmax is ``[1 - sigmoid(z), sigmoid(z)]``).
    row_offset : int
        Added to row numbers in error messages (a chunk of a larger file).

    Returns
    -------
    numpy.ndarray of shape (N, C), float32 when the columns are float32, else float64
    """
    import polars as pl

    columns = table.columns
    chosen = probability_columns(columns, spec, list_columns(table))
    if len(chosen) == 1 and isinstance(table[chosen[0]].dtype, pl.List | pl.Array):
        return _matrix_column(table, chosen[0], "probabilities", row_offset)
    matrix = _numeric_columns(table, chosen, "probabilities", row_offset)
    if matrix.shape[1] == 1:
        x = matrix[:, 0]
        first = np.zeros_like(x) if logits else matrix.dtype.type(1) - x
        matrix = np.column_stack([first, x])
    return matrix


def embedding_matrix(table: Any, spec: str | None = None) -> np.ndarray | None:
    """(N, d) embeddings of a table in the file's precision: a list/Array column ``spec``
    (default ``embedding``, else ``emb``), or the columns matching a glob ``spec`` (``e*``),
    ordered by the numbers in their names. None when ``spec`` is None and neither default
    column exists."""
    import polars as pl

    columns = table.columns
    chosen = embedding_columns(columns, spec, list_columns(table))
    if not chosen:
        return None
    if len(chosen) == 1 and isinstance(table[chosen[0]].dtype, pl.List | pl.Array):
        return _matrix_column(table, chosen[0], "embeddings")
    return _numeric_columns(table, chosen, "embeddings", 0)


def labeled_column(table: Any, name: str, row_offset: int = 0) -> np.ndarray:
    """A boolean (N,) mask from a true/false column (or one holding only 0 and 1)."""
    import polars as pl

    if name not in table.columns:
        raise InvalidInputError(
            f"no column {name!r} for labeled=; columns are {_columns_text(table.columns)}")
    series = table[name]
    null = _first_null(series)
    if null is not None:
        raise InvalidInputError(
            f"labeled column {name!r} is missing (empty or null) in row {null + row_offset} "
            f"(0-based); write true or false in every row")
    if series.dtype == pl.Boolean:
        return series.to_numpy().astype(bool, copy=False)
    if series.dtype.is_numeric():  # 0/1, also as floats (pandas writes 0.0/1.0)
        if ((series == 0) | (series == 1)).all():
            return (series == 1).to_numpy()
    seen = series.unique(maintain_order=True).head(5).to_list()
    raise InvalidInputError(
        f"labeled column {name!r} must hold true/false (or 0/1), got {series.dtype} values "
        f"such as {', '.join(repr(s) for s in seen)}; write the column as true/false")


class Pool(NamedTuple):
    """What :func:`read_pool` returns."""

    ids: np.ndarray
    """(N,): the id column as written (text for CSV/NDJSON), or 0 … N-1 with ``id=None``."""
    probs: np.ndarray | None
    """(N, C) probabilities in the file's precision, or None when the file has none."""
    embeddings: np.ndarray | None
    """(N, d) embeddings in the file's precision, or None when the file has none."""
    labeled: np.ndarray | None
    """(N,) bool, the ``labeled=`` column, or None when not asked for."""


def read_pool(path: str | os.PathLike, *, id: str | None = "id", probs: str | None = None,
              embeddings: str | None = None, labeled: str | None = None,
              logits: bool = False) -> Pool:
    """Read a pool from Parquet, Arrow IPC, CSV or NDJSON (gzipped CSV/NDJSON too).

    Parameters
    ----------
    path : str or path-like
    id : str or None
        Id column (default ``id``), read as written (text in CSV/NDJSON). It must exist;
        ``id=None`` uses row numbers.
    probs : str, optional
        Probabilities: a list/Array column, one column per class by a glob pattern
        (``prob_*``), a single column p of a binary model (read as ``[1 - p, p]``), or by
        default the column ``probs``, else ``p0 … p{C-1}``.
    embeddings : str, optional
        A list/Array column or a glob pattern over numbered columns (``e*``); default the
        column ``embedding``, else ``emb``, else none.
    labeled : str, optional
        Name of a boolean column (true/false or 0/1) marking the labeled items.
    logits : bool
        The probability columns hold logits: only changes how a single column is read
        (a logit z becomes ``[0, z]`` instead of ``[1 - z, z]``).

    Returns
    -------
    Pool
        ``(ids, probs, embeddings, labeled)``; probs and embeddings in the file's precision
        (float32 columns stay float32, float64 stay float64).
    """
    table = read_table(path, text_columns=() if id is None else (id,))
    return pool_from_table(table, Path(path).name, id=id, probs=probs,
                           embeddings=embeddings, labeled=labeled, logits=logits)


def pool_from_table(table: Any, source: str, *, id: str | None = "id",
                    probs: str | None = None, embeddings: str | None = None,
                    labeled: str | None = None, logits: bool = False) -> Pool:
    """:func:`read_pool` on a table already read (``source`` names it in messages)."""
    logits = v.flag(logits, "logits")
    columns = table.columns
    if id is None:
        ids = np.arange(table.height, dtype=np.int64)
    elif id in columns:
        ids = table[id].to_numpy()
    else:
        raise InvalidInputError(
            f"{source}: no id column {id!r}; columns are {_columns_text(columns)}; name the "
            f"id column with id=, or pass id=None to use row numbers")
    has_probs = probs is not None or "probs" in columns or any(
        re.fullmatch(r"p\d+", c) for c in columns)
    matrix = probability_matrix(table, probs, logits=logits) if has_probs else None
    emb = embedding_matrix(table, embeddings)
    mask = labeled_column(table, labeled) if labeled is not None else None
    return Pool(ids, matrix, emb, mask)


def _scanner(path: Path, text_columns: Collection[str]) -> Any:
    import polars as pl

    fmt = _format(path)
    if not path.is_file():
        raise InvalidInputError(f"{path}: no such file")
    overrides = _text_overrides(path, fmt, text_columns)
    try:
        if fmt == "parquet":
            return pl.scan_parquet(path)
        if fmt == "ipc":
            return pl.scan_ipc(path)
        if fmt == "csv":
            return pl.scan_csv(path, schema_overrides=overrides)
        return pl.scan_ndjson(path, schema_overrides=overrides)
    except Exception as err:
        raise InvalidInputError(f"{path.name}: could not be read as {fmt} ({err})") from None


def file_score(score: Any, extra: Any) -> Any:
    """``score=`` of a file reader: a built-in row score's name, or a custom utility (as an
    :class:`alcore.Utility`); ``extra=`` (columns for its parameters) only with the latter."""
    from alcore import _utility

    if _utility.is_custom(score):
        return _utility.as_utility(score)
    score = v.choice(score, "score", _SCORES)
    if extra is not None:
        raise InvalidInputError(
            "extra= maps a custom score function's parameters to columns; the built-in "
            "scores take no extra inputs")
    return score


def scan_with_schema(path: Path, id: str | None) -> tuple[Any, Any]:
    """A lazy scan of a pool file and its schema, the id column checked (``id=None``: row
    numbers)."""
    lazy = _scanner(path, () if id is None else (id,))
    try:
        schema = lazy.collect_schema()
    except Exception as err:
        raise InvalidInputError(f"{path.name}: could not be read ({err})") from None
    if id is not None and id not in schema.names():
        raise InvalidInputError(
            f"{path.name}: no id column {id!r}; columns are "
            f"{_columns_text(list(schema.names()))}; name the id column with id=, or pass "
            f"id=None to use row numbers")
    return lazy, schema


def top_k_from_file(path: str | os.PathLike, k: int, *, score: Any = "margin",
                    probs: str | None = None, id: str | None = "id",
                    labeled: str | None = None, exclude: Collection[Any] | None = None,
                    chunk_rows: int = 1_000_000, logits: bool = False,
                    normalize: bool = False, atol: float = 1e-3,
                    extra: dict[str, str] | None = None,
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The k highest-scoring rows of a pool file, scored out of core.

    Every row is parsed once: CSV and NDJSON in one streaming pass of batches of at most
    ``chunk_rows`` rows, Parquet and Arrow IPC in slices of ``chunk_rows`` rows that read
    only their own row groups. Each batch is scored natively in the file's precision and
    only its best k rows are kept, then merged with the best so far. For Parquet and Arrow
    IPC peak memory is about one chunk, ``chunk_rows x (C x itemsize + 8)`` bytes for the
    probabilities and their ids, plus the reader's buffers, whatever the file's size.
    polars' CSV/NDJSON reader (2.1) may hold the file's text in memory (a gzipped file's
    decompressed text), so for large text pools convert to Parquet first.

    Parameters
    ----------
    path : str or path-like
        Parquet, Arrow IPC, CSV or NDJSON (gzipped CSV/NDJSON too).
    k : int
        How many rows to return.
    score : str or callable
        ``"least_confidence"``, ``"margin"``, ``"ratio"`` or ``"entropy"``, or a custom
        utility of one row (an :func:`alcore.utility` or a plain function), run compiled
        on each batch as in :func:`alcore.select_top`.
    probs : str, optional
        Probability columns, as in :func:`read_pool`.
    id : str or None
        Id column (must exist; read as written), or None for row numbers.
    labeled : str, optional
        A boolean column: rows marked true are never returned.
    exclude : collection of ids, optional
        Ids never returned (compared with the id column as written, so CSV ids are text;
        with ``id=None``, row numbers).
    chunk_rows : int
        Rows per batch, at most (the reader may hand over fewer). The result does not
        depend on it.
    logits, normalize, atol
        As in :func:`alcore.select_top`.
    extra : dict of str to str, optional
        For a custom utility with extra parameters (``def f(p, cost)``): which column fills
        each parameter, ``{"cost": "column"}``; by default the columns named as the
        parameters. Numeric columns, finite in every row (checked per batch).

    Returns
    -------
    rows : numpy.ndarray of shape (k,), int64
        Row numbers, best first; equal scores go to the lower row number, exactly as
        :func:`alcore.select_top` on :func:`read_pool`'s probabilities ranks them.
    ids : numpy.ndarray of shape (k,)
        Their ids.
    scores : numpy.ndarray of shape (k,)
        Their scores, in the file's precision (float32 or float64; float64 for a custom
        utility).
    """
    import polars as pl

    from alcore import _utility
    from alcore._top import select_top_with_scores

    k = v.count(k)
    chunk_rows = v.count(chunk_rows, "chunk_rows")
    score = file_score(score, extra)
    utility = score if _utility.is_custom(score) else None
    logits = v.flag(logits, "logits")
    normalize = v.flag(normalize, "normalize")
    atol = v.tolerance(atol)
    path = Path(path)
    lazy, schema = scan_with_schema(path, id)
    columns = list(schema.names())
    if labeled is not None and labeled not in columns:
        raise InvalidInputError(
            f"no column {labeled!r} for labeled=; columns are {_columns_text(columns)}")
    extra_columns = None if utility is None else _extra_columns(utility, extra, columns,
                                                                  path)
    excluded = _exclude_ids(exclude, None if id is None else schema[id])
    best_rows = np.empty(0, dtype=np.int64)
    best_scores: np.ndarray | None = None
    best_ids: np.ndarray | None = None
    n_never = 0
    offset = 0  # file row number of the batch's first row
    used = [*([] if id is None else [id]),
            *probability_columns(columns, probs, list_columns(schema)),
            *([] if labeled is None else [labeled]), *(extra_columns or {}).values()]
    for chunk in _chunks(lazy, path, chunk_rows, used):
        offset, chunk_offset = offset + chunk.height, offset
        matrix = probability_matrix(chunk, probs, logits=logits, row_offset=chunk_offset)
        ids = (np.arange(chunk_offset, offset, dtype=np.int64) if id is None
               else chunk[id].to_numpy())
        never = np.zeros(chunk.height, dtype=bool)
        if labeled is not None:
            never |= labeled_column(chunk, labeled, row_offset=chunk_offset)
        if excluded is not None:
            key = pl.Series(ids) if id is None else chunk[id]
            never |= key.is_in(excluded).to_numpy()
        n_never += int(never.sum())
        m = min(k, chunk.height - int(never.sum()))
        if m == 0:
            continue
        try:
            picked, scores = select_top_with_scores(
                matrix, m, score=score, logits=logits,
                exclude_mask=never if never.any() else None, normalize=normalize, atol=atol,
                extra=None if not extra_columns else {
                    param: chunk[column].to_numpy() for param, column in extra_columns.items()})
        except InvalidInputError as err:
            raise InvalidInputError(_shift_rows(str(err), chunk_offset)) from None
        rows = picked + chunk_offset
        merged_rows = np.concatenate([best_rows, rows])
        merged_scores = scores if best_scores is None else np.concatenate([best_scores, scores])
        merged_ids = ids[picked] if best_ids is None else np.concatenate([best_ids,
                                                                         ids[picked]])
        # Exact merge: rank all candidates by (score desc, row asc), as select_top ranks.
        keep = np.lexsort((merged_rows, -merged_scores))[:k]
        best_rows, best_scores, best_ids = (merged_rows[keep], merged_scores[keep],
                                            merged_ids[keep])
    total = offset
    if total == 0:
        raise InvalidInputError(f"{path.name} has no rows (columns: {_columns_text(columns)})")
    if len(best_rows) < k:
        raise InvalidInputError(
            f"k={v.shown(k)} exceeds the {total - n_never} rows of {path.name} that can be "
            f"picked ({total} rows, {n_never} labeled or excluded); lower k")
    return best_rows, best_ids, best_scores


def _extra_columns(utility: Any, extra: Any, columns: list[str],
                   path: Path) -> dict[str, str]:
    """Which column fills each extra parameter of a custom utility (checked before any
    row is read): ``extra`` maps parameter -> column; unmapped parameters take the column
    of their own name."""
    if extra is not None and not isinstance(extra, dict):
        raise InvalidInputError(
            f"extra= must map the score function's parameters to column names, e.g. "
            f"{{'cost': 'cost_usd'}}, got {type(extra).__name__}")
    mapping = dict(extra or {})
    unknown = sorted(str(p) for p in mapping if p not in utility.extra)
    if unknown:
        raise InvalidInputError(
            f"extra= names {', '.join(unknown)}, which score function {utility.name!r} does "
            f"not take (its extra parameters: {', '.join(utility.extra) or 'none'})")
    chosen = {p: mapping.get(p, p) for p in utility.extra}
    missing = [f"{p} (column {c!r})" for p, c in chosen.items() if c not in columns]
    if missing:
        raise InvalidInputError(
            f"{path.name}: no column for score function {utility.name!r}'s parameter "
            f"{', '.join(missing)}; columns are {_columns_text(columns)}; map parameters to "
            f"columns with extra={{'param': 'column'}}")
    return chosen


def _chunks(lazy: Any, path: Path, chunk_rows: int, columns: list[str] | None = None) -> Any:
    """The rows of a scan in file order, as DataFrames of at most ``chunk_rows`` rows, each
    row parsed once.

    CSV and NDJSON (gzipped too) go through one streaming pass (``collect_batches``): a
    lazy ``slice`` per chunk parses the text again from the start up to the chunk, which
    is quadratic in the file's length. Parquet and Arrow IPC are sliced: their slices read
    only the row groups or record batches they need, and the streaming pass would run
    ahead of the scoring and buffer batches (160 MB for a 240 MB Parquet pool).
    ``columns``: read only these (Parquet never decodes the others: the embeddings of a
    pool scored for its probabilities alone)."""
    import polars as pl

    if columns is not None:
        lazy = lazy.select(list(dict.fromkeys(columns)))
    try:
        if _format(path) in _TEXT_FORMATS:
            for batch in lazy.collect_batches(chunk_size=chunk_rows, maintain_order=True):
                if batch.height:
                    yield batch
            return
        total = lazy.select(pl.len()).collect().item()  # from the file's metadata
        for offset in range(0, total, chunk_rows):
            yield lazy.slice(offset, chunk_rows).collect()
    except Exception as err:  # polars raises several types for unreadable rows
        raise InvalidInputError(f"{path.name}: could not be read ({err})") from None


def _exclude_ids(exclude: Collection[Any] | None, id_dtype: Any,
                 name: str = "exclude") -> list[Any] | None:
    """``exclude`` ids as a list (None when empty), after checking they can match the id column's
    type (text ids against text, numbers against numbers): a mismatch would exclude
    nothing, silently. ``name``: the argument, for messages."""
    if exclude is None:
        return None
    import polars as pl

    if isinstance(exclude, str | bytes) or not isinstance(exclude, Collection):
        raise InvalidInputError(
            f"{name} must be a collection of ids (a list, set or array), got "
            f"{type(exclude).__name__}")
    values = list(exclude.tolist() if isinstance(exclude, np.ndarray) else exclude)
    if not values:
        return None
    text = [isinstance(x, str) for x in values]
    numbers = [isinstance(x, int | np.integer) and not isinstance(x, bool) for x in values]
    want_text = id_dtype is not None and id_dtype == pl.String
    if want_text and not all(text):
        bad = values[text.index(False)]
        raise InvalidInputError(
            f"{name} holds {bad!r} but the ids are text (CSV/NDJSON ids are read as "
            f"written); pass the ids as strings, e.g. {str(bad)!r}")
    if not want_text and not all(numbers):
        bad = values[numbers.index(False)]
        what = "row numbers" if id_dtype is None else f"{id_dtype} ids"
        raise InvalidInputError(f"{name} holds {bad!r} but the file's ids are {what}")
    return values


def _shift_rows(message: str, offset: int) -> str:
    """A kernel message about a chunk, with its row numbers made file row numbers."""
    if offset == 0:
        return message
    return re.sub(r"\brow (\d+)", lambda m: f"row {int(m[1]) + offset}", message)


def _natural_key(name: str) -> list:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def check_writable(path: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Check, before any work, that :func:`write_table` can write ``path``: a known
    extension, an existing folder that can be written, and no existing file unless
    ``overwrite``."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in _WRITERS:
        raise InvalidInputError(
            f"{path.name}: cannot write {suffix or 'a file without extension'!r}; use "
            f".parquet, .csv, .ndjson or .json")
    return check_target(path, overwrite=overwrite)


def check_target(path: Path, *, overwrite: bool) -> Path:
    """The rules of every file alcore writes, whatever its format: an existing folder that
    can be written, ``path`` not a folder, and no existing file unless ``overwrite``."""
    folder = path.parent
    if not folder.is_dir():
        raise InvalidInputError(
            f"{path}: the folder {str(folder)!r} does not exist; create it first")
    if path.is_dir():
        raise InvalidInputError(f"{path} is a folder; name a file")
    if path.exists() and not overwrite:
        raise InvalidInputError(f"{path} exists; pass overwrite=True to replace it")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise InvalidInputError(f"{path}: cannot write into the folder {str(folder)!r}")
    return path


def write_table(table: Any, path: str | os.PathLike, *, overwrite: bool = False) -> None:
    """Write a polars DataFrame (Parquet, CSV, NDJSON or JSON by extension) atomically: to
    a temporary file beside the target, then renamed over it."""
    path = check_writable(path, overwrite=overwrite)
    suffix = path.suffix.lower()
    handle, temp = tempfile.mkstemp(suffix=suffix, dir=path.parent)
    os.close(handle)
    try:
        getattr(table, _WRITERS[suffix])(temp)
        os.replace(temp, path)
    finally:
        if os.path.exists(temp):
            os.remove(temp)


# The helpers the command line shares (pool_from_table, labeled_column) stay importable but
# are not part of the public surface.
__all__ = ["Pool", "check_writable", "embedding_matrix", "probability_matrix", "read_pool",
           "read_table", "top_k_from_file", "write_table"]

v.guard_signatures(globals())
