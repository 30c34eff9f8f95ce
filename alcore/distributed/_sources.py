"""The partitions of a source: Parquet (or Arrow, CSV, NDJSON) files, a Dask array of
probabilities, or a Dask dataframe; and the task that scores each one where it lives."""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from alcore import io as io_module
from alcore._errors import InvalidInputError
from alcore.distributed import _partition as part


@dataclass
class Partitions:
    """A source cut into partitions, in order: the global row of a partition's row r is
    the rows of the partitions before it plus r. ``sizes`` (rows per partition) is known
    up front for a Dask array; for files and dataframes :func:`count_rows` fills it when
    row-number ids or the density sample need it (Parquet and Arrow from their metadata,
    text files and dataframes by reading them)."""

    kind: str  # "files", "array" or "frame"
    labels: list[str]
    items: list[Any]  # paths, (probs block, embeddings block) pairs, or frame partitions
    columns: list[str] | None  # a table's columns (the first file's schema)
    id_dtype: Any  # the id column's polars dtype; None for row numbers
    sizes: list[int] | None = None

    def __len__(self) -> int:
        return len(self.items)


def _is_dask_array(source: Any) -> bool:
    return type(source).__module__.startswith("dask.array")


def _is_dask_frame(source: Any) -> bool:
    return type(source).__module__.startswith("dask.dataframe") or (
        type(source).__module__.startswith("dask_expr"))


def partitions(source: Any, *, id: str | None, embeddings: Any) -> Partitions:
    """Resolve ``source`` into partitions, checking what can be checked without reading
    rows (paths, formats, the first file's columns, array shapes and chunks)."""
    if _is_dask_array(source):
        return _array_partitions(source, embeddings)
    if _is_dask_frame(source):
        return _frame_partitions(source, id)
    if embeddings is not None and not isinstance(embeddings, str):
        raise InvalidInputError(
            f"embeddings= names the embedding column of a table source (a string), got "
            f"{type(embeddings).__name__}; a Dask array of embeddings goes with a Dask array "
            f"of probabilities")
    return _file_partitions(source, id)


def _file_partitions(source: Any, id: str | None) -> Partitions:
    import polars as pl

    if isinstance(source, str | os.PathLike):
        text = os.fspath(source)
        paths = (sorted(glob.glob(text), key=io_module._natural_key)
                 if glob.has_magic(text) else [text])
        if not paths:
            raise InvalidInputError(f"source: no file matches {text!r}")
    elif isinstance(source, list | tuple) and all(
            isinstance(p, str | os.PathLike) for p in source):
        paths = [os.fspath(p) for p in source]
    else:
        raise InvalidInputError(
            f"source must be a Dask array or dataframe, a list of pool files, or a path or "
            f"glob of them (e.g. 'pool/*.parquet'), got {type(source).__name__}")
    if not paths:
        raise InvalidInputError("source is an empty list of files; pass at least one")
    if len({os.path.realpath(p) for p in paths}) != len(paths):
        raise InvalidInputError("source lists a file twice; its rows would be scored twice")
    for path in paths:
        io_module._format(Path(path))
        if not Path(path).is_file():
            raise InvalidInputError(f"source: {path}: no such file")
    _, schema = io_module.scan_with_schema(Path(paths[0]), id)
    columns = list(schema.names())
    id_dtype = None if id is None else schema[id]
    if id_dtype is not None and id_dtype != pl.String and not id_dtype.is_integer():
        raise InvalidInputError(
            f"{Path(paths[0]).name}: id column {id!r} is {id_dtype}; ids must be text or "
            f"integers")
    return Partitions("files", [Path(p).name for p in paths], paths, columns, id_dtype)


def _array_partitions(probs: Any, embeddings: Any) -> Partitions:
    import dask.array as da

    if probs.ndim != 2:
        raise InvalidInputError(
            f"source: a Dask array of probabilities must be (N, C), got {probs.ndim} "
            f"dimensions")
    if any(np.isnan(c) for c in probs.chunks[0]):
        raise InvalidInputError(
            "source: the Dask array's row chunks are unknown (nan); call "
            "source.compute_chunk_sizes() first")
    probs = probs.rechunk({1: -1})  # whole rows per block
    blocks = probs.to_delayed().ravel()
    emb_blocks: list[Any] = [None] * len(blocks)
    if embeddings is not None:
        if not _is_dask_array(embeddings) and not isinstance(embeddings, np.ndarray):
            raise InvalidInputError(
                f"embeddings= goes with a Dask array of probabilities as a Dask (or numpy) "
                f"array of shape (N, d), got {type(embeddings).__name__}")
        if embeddings.ndim != 2 or embeddings.shape[0] != probs.shape[0]:
            raise InvalidInputError(
                f"embeddings has shape {embeddings.shape} but source has "
                f"{probs.shape[0]} rows; pass one (N, d) embedding row per item")
        emb = da.asarray(embeddings).rechunk((probs.chunks[0], -1))
        emb_blocks = list(emb.to_delayed().ravel())
    sizes = [int(c) for c in probs.chunks[0]]
    labels = [f"block {i}" for i in range(len(blocks))]
    return Partitions("array", labels, list(zip(blocks, emb_blocks, strict=True)), None,
                      None, sizes)


def _frame_partitions(frame: Any, id: str | None) -> Partitions:
    columns = [str(c) for c in frame.columns]
    if id is not None and id not in columns:
        raise InvalidInputError(
            f"source: the dataframe has no id column {id!r}; columns are "
            f"{io_module._columns_text(columns)}; name it with id=, or pass id=None")
    id_dtype = None
    if id is not None:
        import pandas as pd
        import polars as pl

        dtype = frame[id].dtype
        if pd.api.types.is_integer_dtype(dtype):
            id_dtype = pl.Int64
        elif pd.api.types.is_string_dtype(dtype) or pd.api.types.is_object_dtype(dtype):
            id_dtype = pl.String
        else:
            raise InvalidInputError(
                f"source: the dataframe's id column {id!r} is {dtype}; ids must be text or "
                f"integers")
    parts = list(frame.to_delayed())
    return Partitions("frame", [f"partition {i}" for i in range(len(parts))], parts, columns,
                      id_dtype)


def count_rows(parts: Partitions, client: Any) -> list[int]:
    """Rows per partition (Parquet and Arrow from their metadata; text files and
    dataframes are read)."""
    if parts.sizes is not None:
        return parts.sizes
    if parts.kind == "files":
        import polars as pl

        sizes = []
        for path in parts.items:
            try:
                lazy = io_module._scanner(Path(path), ())
                sizes.append(int(lazy.select(pl.len()).collect().item()))
            except InvalidInputError:
                raise
            except Exception as err:
                raise InvalidInputError(f"{Path(path).name}: could not be read ({err})") from None
    else:
        import dask

        tasks = [dask.delayed(len)(p) for p in parts.items]
        sizes = [int(n) for n in (dask.compute(*tasks, scheduler="sync") if client is None
                                  else client.gather(client.compute(tasks)))]
    parts.sizes = sizes
    return sizes


def _chunks_of(kind: str, item: Any, plan: part.Plan, offset: int, label: str) -> Any:
    if kind == "files":
        return part.file_chunks(item, plan, offset)
    if kind == "frame":
        return part.frame_chunks(item, plan, offset, label)
    probs, emb = item
    return part.array_chunks(probs, emb, plan, offset)


def _labelled(label: str, err: InvalidInputError) -> InvalidInputError:
    text = str(err)
    return InvalidInputError(text if text.startswith(f"{label}:") else f"{label}: {text}")


def score_task(kind: str, item: Any, plan: part.Plan, partition: int, offset: int,
               label: str) -> part.PartitionTop:
    """The task a worker runs: one partition's candidates."""
    try:
        return part.score_partition(_chunks_of(kind, item, plan, offset, label), plan,
                                    partition, label)
    except InvalidInputError as err:
        raise _labelled(label, err) from None


def rows_task(kind: str, item: Any, plan: part.Plan, rows: np.ndarray, offset: int,
              label: str) -> np.ndarray:
    """The embeddings (float32) of the given rows (sorted, within the partition): the
    density sample."""
    out = []
    try:
        for chunk in _chunks_of(kind, item, plan, offset, label):
            if chunk.embeddings is None:
                raise InvalidInputError("density='knn' needs embeddings")
            lo, hi = np.searchsorted(rows, [chunk.start, chunk.start + len(chunk.ids)])
            if hi > lo:
                out.append(chunk.embeddings[rows[lo:hi] - chunk.start])
    except InvalidInputError as err:
        raise _labelled(label, err) from None
    return np.concatenate(out) if out else np.empty((0, 0), np.float32)


def run(parts: Partitions, task: Any, arguments: list[tuple], plan: part.Plan,
        client: Any) -> list[Any]:
    """``task(kind, item, plan, *arguments[p], label)`` for every partition p: in this
    process one after another (``client=None``), else on the cluster, the plan scattered
    once to every worker and each partition read where its task runs."""
    if client is None:
        if parts.kind == "files":
            return [task(parts.kind, item, plan, *args, label)
                    for item, args, label in zip(parts.items, arguments, parts.labels,
                                                 strict=True)]
        import dask

        tasks = [dask.delayed(task, pure=False)(parts.kind, item, plan, *args, label)
                 for item, args, label in zip(parts.items, arguments, parts.labels,
                                              strict=True)]
        return list(dask.compute(*tasks, scheduler="sync"))
    import dask

    shipped = client.scatter(plan, broadcast=True, hash=False)
    tasks = [dask.delayed(task, pure=False)(parts.kind, item, shipped, *args, label)
             for item, args, label in zip(parts.items, arguments, parts.labels, strict=True)]
    futures = client.compute(tasks)
    try:
        return client.gather(futures)
    finally:
        client.cancel([*futures, shipped])
