"""What a worker does with one partition: score it with the native kernels, chunk by
chunk, and keep only its best candidates (and the rows of its labeled items, which the
diversity stage counts as covered). Runs wherever the partition lives; imports no Dask."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from alcore import _core, _utility
from alcore import _validation as v
from alcore import io as io_module
from alcore import scores as scores_module
from alcore._errors import InvalidInputError
from alcore._faiss import SampleIndex


@dataclass(frozen=True)
class Plan:
    """Everything a worker needs besides its partition, shipped once per worker.

    ``labeled`` and ``exclude`` are the id sets (a list of ids as the partitions hold
    them: text or integers; global row numbers for row-numbered sources)."""

    candidates: int  # per partition
    score: Any  # a built-in score's name, or a Utility
    logits: bool
    normalize: bool
    atol: float
    probs: str | None
    embeddings: str | None
    id: str | None
    extra_columns: dict[str, str] | None
    labeled: list[Any] | None
    exclude: list[Any] | None
    keep_embeddings: bool  # the diversity stage needs the candidates' embeddings
    keep_probs: bool  # BADGE needs their probabilities
    density: SampleIndex | None
    density_k: int
    density_scale: float  # raw k-NN densities are divided by it (the sample's largest)
    beta: float
    sample_rows: dict[int, tuple[np.ndarray, np.ndarray]]  # partition -> (rows, positions)
    chunk_rows: int


@dataclass(frozen=True)
class Chunk:
    """Rows of one partition: ``start`` is the first row's number within the partition."""

    start: int
    ids: np.ndarray
    probs: np.ndarray
    embeddings: np.ndarray | None
    extra: dict[str, np.ndarray] | None
    table: Any  # the polars frame it came from (id matching keeps the ids' own type), or None


@dataclass(frozen=True)
class PartitionTop:
    """A partition's answer: its best candidates, best first, and its labeled rows.

    Rows are numbers within the partition (the driver adds the partition's offset)."""

    partition: int
    n_rows: int
    n_never: int
    rows: np.ndarray  # int64 (m,)
    ids: np.ndarray  # (m,)
    scores: np.ndarray  # float64 (m,), the combined score
    uncertainty: np.ndarray  # float64 (m,)
    density: np.ndarray | None  # float64 (m,)
    probs: np.ndarray | None  # (m, C)
    embeddings: np.ndarray | None  # float32 (m, d)
    labeled_rows: np.ndarray  # int64
    labeled_ids: np.ndarray
    labeled_probs: np.ndarray | None
    labeled_embeddings: np.ndarray | None
    layout: tuple | None  # (classes, probability dtype, embedding width, id kind); None: empty

    @property
    def nbytes(self) -> int:
        """The bytes of arrays this answer carries back to the driver."""
        return int(sum(a.nbytes for a in vars(self).values() if isinstance(a, np.ndarray)))


def table_chunks(table: Any, start: int, plan: Plan, offset: int,
                 label: str) -> Chunk:
    """A polars frame of a partition's rows as a Chunk (``offset``: the partition's first
    global row, for row-number ids)."""
    probs = io_module.probability_matrix(table, plan.probs, logits=plan.logits,
                                         row_offset=start)
    ids = (np.arange(offset + start, offset + start + table.height, dtype=np.int64)
           if plan.id is None else table[plan.id].to_numpy())
    need_embeddings = plan.keep_embeddings or plan.density is not None
    emb = io_module.embedding_matrix(table, plan.embeddings) if need_embeddings else None
    if need_embeddings and emb is None:
        raise InvalidInputError(f"{label}: no embedding column; name it with embeddings=")
    if emb is not None:
        emb = _checked_embeddings(emb, start)
    extra = None if not plan.extra_columns else {
        param: table[column].to_numpy() for param, column in plan.extra_columns.items()}
    return Chunk(start, ids, probs, emb, extra, table if plan.id is not None else None)


def file_chunks(path: str, plan: Plan, offset: int) -> Iterator[Chunk]:
    """A Parquet / Arrow / CSV / NDJSON file in chunks of at most ``plan.chunk_rows`` rows,
    each row parsed once (as :func:`alcore.io.top_k_from_file` reads)."""
    from pathlib import Path

    path_ = Path(path)
    lazy, schema = io_module.scan_with_schema(path_, plan.id)
    columns, lists = list(schema.names()), io_module.list_columns(schema)
    if plan.extra_columns:  # the driver checked the first file; each file has its own
        io_module._extra_columns(plan.score, plan.extra_columns, columns, path_)
    used = [*([] if plan.id is None else [plan.id]),
            *io_module.probability_columns(columns, plan.probs, lists),
            *(plan.extra_columns or {}).values()]
    if plan.keep_embeddings or plan.density is not None:
        used += io_module.embedding_columns(columns, plan.embeddings, lists)
    start = 0
    for table in io_module._chunks(lazy, path_, plan.chunk_rows, used):
        yield table_chunks(table, start, plan, offset, path_.name)
        start += table.height


def frame_chunks(frame: Any, plan: Plan, offset: int, label: str) -> Iterator[Chunk]:
    """A pandas partition of a Dask dataframe, through polars, in chunks."""
    import polars as pl

    try:
        table = pl.from_pandas(frame)
    except Exception as err:
        raise InvalidInputError(f"{label}: could not be read into polars ({err})") from None
    for start in range(0, table.height, plan.chunk_rows):
        yield table_chunks(table.slice(start, plan.chunk_rows), start, plan, offset, label)


def array_chunks(probs: np.ndarray, emb: np.ndarray | None, plan: Plan,
                 offset: int) -> Iterator[Chunk]:
    """Blocks of a Dask array (and its embeddings), in chunks; ids are global rows."""
    probs = np.asarray(probs)
    for start in range(0, len(probs), plan.chunk_rows):
        stop = min(len(probs), start + plan.chunk_rows)
        ids = np.arange(offset + start, offset + stop, dtype=np.int64)
        yield Chunk(start, ids, probs[start:stop],
                    None if emb is None else _checked_embeddings(emb[start:stop], start), None,
                    None)


def _checked_embeddings(emb: Any, start: int) -> np.ndarray:
    """float32 (n, d) embeddings, finite: checked where they are read, so that a bad row is
    named by its row in the partition (not in the merged candidates)."""
    try:
        return v.embeddings_matrix(emb)
    except InvalidInputError as err:
        raise InvalidInputError(io_module._shift_rows(str(err), start)) from None


def _members(chunk: Chunk, wanted: list[Any] | None, id_name: str | None) -> np.ndarray:
    """Which rows of the chunk have an id in ``wanted`` (boolean mask)."""
    if not wanted:
        return np.zeros(len(chunk.ids), dtype=bool)
    if chunk.table is not None:
        column = chunk.table[id_name]
        try:
            return column.is_in(wanted).to_numpy()
        except Exception:  # polars refuses to compare text ids with numbers
            raise InvalidInputError(
                f"its id column {id_name!r} is {column.dtype}, which the labeled/exclude ids "
                f"({type(wanted[0]).__name__}) cannot match; every partition's ids must have "
                f"one type") from None
    return np.isin(chunk.ids, np.asarray(wanted))


def _uncertainty(plan: Plan, chunk: Chunk, label: str) -> np.ndarray:
    """Every row's score (float64), the values checked as the single-machine calls check."""
    x, is_logits, name = v.outputs_matrix(chunk.probs, plan.logits)
    if isinstance(plan.score, _utility.Utility):
        extra = (None if chunk.extra is None
                 else _utility.extra_matrix(plan.score, chunk.extra, len(chunk.ids)))
        return _utility.scores_custom(plan.score, x, is_logits, name, plan.normalize,
                                      plan.atol, extra)
    return scores_module._score_validated(
        plan.score, x, is_logits, name, normalize=plan.normalize,
        atol=plan.atol).astype(np.float64)


def _density(plan: Plan, chunk: Chunk, partition: int) -> np.ndarray:
    """k-NN density of every row against the sample index, scaled by the sample's own
    largest density: 1 / (mean distance to the k nearest sample items, itself excluded)."""
    self_rows = None
    rows, positions = plan.sample_rows.get(partition, (None, None))
    if rows is not None:
        local = np.arange(chunk.start, chunk.start + len(chunk.ids))
        self_rows = np.full(len(local), -1, dtype=np.int64)
        at = np.searchsorted(rows, local)
        hit = (at < len(rows)) & (rows[np.minimum(at, len(rows) - 1)] == local)
        self_rows[hit] = positions[at[hit]]
    sq = plan.density.neighbours(chunk.embeddings, plan.density_k, self_rows)
    return inverse_mean_distance(sq) / plan.density_scale


def inverse_mean_distance(sq: np.ndarray) -> np.ndarray:
    """1 / the mean of each row's distances (from squared ones), float64: the raw k-NN
    density of the workers and of the driver's scale alike. k copies (mean 0) get the
    largest finite float32, as :func:`alcore.density.knn_density` gives them."""
    with np.errstate(divide="ignore"):
        return np.minimum(1.0 / np.sqrt(sq).mean(axis=1), np.finfo(np.float32).max)


def score_partition(chunks: Iterator[Chunk], plan: Plan, partition: int,
                    label: str) -> PartitionTop:
    """The partition's best ``plan.candidates`` rows by the combined score (ties to the
    lower row, as :func:`alcore.select_top` ranks), merged chunk by chunk."""
    m = plan.candidates
    best: dict[str, Any] = {}
    lab_parts: list[tuple[np.ndarray, np.ndarray, Any, Any]] = []
    n_rows = n_never = 0
    layout = None
    for chunk in chunks:
        n = len(chunk.ids)
        n_rows += n
        if n:
            layout = _layout(chunk, layout)
        labeled = _members(chunk, plan.labeled, plan.id)
        never = labeled | _members(chunk, plan.exclude, plan.id)
        n_never += int(never.sum())
        if labeled.any():
            where = np.flatnonzero(labeled)
            lab_parts.append((where + chunk.start, chunk.ids[where],
                              chunk.probs[where] if plan.keep_probs else None,
                              chunk.embeddings[where] if plan.keep_embeddings else None))
        take = min(m, n - int(never.sum()))
        try:
            if plan.density is None:
                # The plain scores: the same kernel and precision as select_top.
                picked, scores = _top_scores(plan, chunk, take, never)
                uncertainty, dens = scores.astype(np.float64), None
                combined = uncertainty
            else:
                all_uncertainty = _uncertainty(plan, chunk, label)
                if isinstance(plan.score, _utility.Utility) and n and all_uncertainty.min() < 0:
                    row = int(np.argmin(all_uncertainty)) + chunk.start
                    raise InvalidInputError(
                        f"density='knn' multiplies each utility by a density, which needs "
                        f"utilities >= 0, but score function {plan.score.name!r} gives "
                        f"{all_uncertainty.min()!r} for row {row}; shift or rescale it")
                all_density = _density(plan, chunk, partition)
                all_combined = all_uncertainty * all_density ** plan.beta
                picked = (_core.top_k(all_combined, never.view(np.uint8) if never.any()
                                      else None, take) if take else np.empty(0, np.int64))
                uncertainty = all_uncertainty[picked]
                dens = all_density[picked]
                combined = all_combined[picked]
        except InvalidInputError as err:
            raise InvalidInputError(io_module._shift_rows(str(err), chunk.start)) from None
        found = {
            "rows": picked + chunk.start, "ids": chunk.ids[picked], "scores": combined,
            "uncertainty": uncertainty, "density": dens,
            "probs": chunk.probs[picked] if plan.keep_probs else None,
            "embeddings": chunk.embeddings[picked] if plan.keep_embeddings else None}
        best = found if not best else _merged(best, found, m)
    if not best:  # an empty partition
        best = {"rows": np.empty(0, np.int64), "ids": np.empty(0, np.int64),
                "scores": np.empty(0), "uncertainty": np.empty(0), "density": None,
                "probs": None, "embeddings": None}
    lab = _concatenated(lab_parts)
    return PartitionTop(partition, n_rows, n_never, best["rows"], best["ids"],
                        best["scores"], best["uncertainty"], best["density"], best["probs"],
                        best["embeddings"], *lab, layout)


def _layout(chunk: Chunk, before: tuple | None) -> tuple:
    """What must be the same in every row of the pool: the number of classes, the
    probabilities' precision (scores computed at two precisions do not rank alike), the
    embedding width and whether ids are text."""
    ids = chunk.ids
    kind = "text" if ids.dtype.kind in "OUS" else "integer"
    layout = (chunk.probs.shape[1], str(chunk.probs.dtype),
              None if chunk.embeddings is None else chunk.embeddings.shape[1], kind)
    if before is not None and layout != before:
        raise InvalidInputError(_layout_difference(before, layout, f"row {chunk.start}"))
    return layout


def _layout_difference(first: tuple, other: tuple, where: str) -> str:
    names = ("classes", "probability dtype", "embedding width", "id type")
    changed = [f"{name} {a} then {b}" for name, a, b in zip(names, first, other, strict=True)
               if a != b]
    return (f"the pool changes at {where}: {', '.join(changed)}; every partition must hold "
            f"the same columns in the same types (write the probabilities in one precision)")


def _top_scores(plan: Plan, chunk: Chunk, take: int,
                never: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    from alcore._top import select_top_with_scores

    if take == 0:  # still check the values, as a chunk with picks would be
        _uncertainty(plan, chunk, "")
        return np.empty(0, dtype=np.int64), np.empty(0)
    return select_top_with_scores(
        chunk.probs, take, score=plan.score, logits=plan.logits,
        exclude_mask=never if never.any() else None, normalize=plan.normalize,
        atol=plan.atol, extra=chunk.extra)


def _merged(best: dict[str, Any], found: dict[str, Any], m: int) -> dict[str, Any]:
    """The m best of two candidate sets (score descending, row ascending)."""
    joined = {key: None if best[key] is None else np.concatenate([best[key], found[key]])
              for key in best}
    keep = np.lexsort((joined["rows"], -joined["scores"]))[:m]
    return {key: None if value is None else value[keep] for key, value in joined.items()}


def _concatenated(parts: list[tuple[np.ndarray, np.ndarray, Any, Any]]) -> tuple:
    if not parts:
        return np.empty(0, np.int64), np.empty(0, np.int64), None, None
    columns = list(zip(*parts, strict=True))
    return tuple(None if column[0] is None else np.concatenate(column) for column in columns)
