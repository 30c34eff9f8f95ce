"""The driver of :func:`alcore.distributed.select`: check everything, ship the plan once,
let each worker score its partitions, merge the candidates exactly, and run the diversity
stage on them with the single-machine code."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from alcore import _pipeline, _utility
from alcore import _validation as v
from alcore import io as io_module
from alcore._errors import InvalidInputError
from alcore._faiss import SampleIndex
from alcore.distributed import _partition as part
from alcore.distributed import _sources

DIVERSITIES = (None, "kcenter", "badge", "typiclust", "probcover", "spread")
# With a diversity stage and candidates=None: the candidate pool of alcore.select's default
# ("auto": k-center over the 5k best).
DEFAULT_CANDIDATES = 5
DEFAULT_SAMPLE = 20_000
DEFAULT_CHUNK_ROWS = 262_144
CONNECT_TIMEOUT = "10s"


@dataclass(frozen=True)
class DistributedSelection(_pipeline.Selection):
    """What :func:`alcore.distributed.select` returns: an :class:`alcore.Selection` whose
    ``indices`` are global row numbers (the rows of the partitions one after another, in
    order), with the items' ids and how exact the merge was.

    Attributes
    ----------
    ids : numpy.ndarray of shape (m,)
        The picks' ids (the id column's values; the row numbers with ``id=None`` and for a
        Dask array).
    exact : bool
        True when the merged candidates are provably the global best ones (always, with
        ``candidates_per_partition`` at its default); False when a partition sent its full
        quota and all of it ranked inside the merged pool, so it may hold more.
    """

    ids: np.ndarray | None = None
    exact: bool = True


def _client(client: Any) -> tuple[Any, list[Any]]:
    """(the client to use, or None to run in this process; what to close afterwards)."""
    if isinstance(client, str) and client == "sync":
        return None, []
    try:
        import distributed
    except ImportError:
        raise InvalidInputError(
            "alcore.distributed needs dask.distributed: pip install 'alcore[distributed]' "
            "(or pass client='sync' to run in this process)") from None
    if client is None:
        try:
            return distributed.default_client(), []
        except ValueError:  # no client yet: a local cluster of processes, for this call
            cluster = distributed.LocalCluster(processes=True, dashboard_address=None)
            made = distributed.Client(cluster)
            return made, [made, cluster]
    if isinstance(client, str):
        import dask

        _probe(client)
        # A refused connection is retried until the timeout: a few seconds, not Dask's 30.
        try:
            with dask.config.set({"distributed.comm.timeouts.connect": CONNECT_TIMEOUT}):
                made = distributed.Client(client, timeout=CONNECT_TIMEOUT)
        except (OSError, ValueError, TypeError) as err:
            raise InvalidInputError(
                f"client={client!r}: no Dask scheduler answered there within "
                f"{CONNECT_TIMEOUT} ({type(err).__name__}: {err}); pass the scheduler's "
                f"address, e.g. 'tcp://host:8786'") from None
        return made, [made]
    if isinstance(client, distributed.Client):
        return client, []
    raise InvalidInputError(
        f"client must be a dask.distributed.Client, a scheduler address such as "
        f"'tcp://host:8786', 'sync' (this process) or None (the default client, else a "
        f"LocalCluster), got {type(client).__name__}")


def _probe(address: str) -> None:
    """Refuse a tcp:// address where nothing speaks first: a Dask scheduler sends its
    handshake as soon as a connection opens, while Dask's own client would wait forever on
    a service that waits for a request (an HTTP server, say)."""
    import socket
    from urllib.parse import urlsplit

    if not address.startswith("tcp://"):
        return  # tls:// and in-process addresses: Dask's own connect decides
    try:
        parts = urlsplit(address)
        host, port = parts.hostname, parts.port
    except ValueError:
        host = port = None
    if not host or not port:
        raise InvalidInputError(
            f"client={address!r} is not a scheduler address; pass e.g. 'tcp://host:8786'")
    seconds = float(CONNECT_TIMEOUT.rstrip("s"))
    try:
        with socket.create_connection((host, port), timeout=seconds) as sock:
            sock.settimeout(seconds)
            first = sock.recv(1)
    except TimeoutError:
        first = b""
    except OSError as err:
        raise InvalidInputError(
            f"client={address!r}: no Dask scheduler answered there ({err}); pass the "
            f"scheduler's address, e.g. 'tcp://host:8786'") from None
    if not first:
        raise InvalidInputError(
            f"client={address!r}: something listens there but sent no Dask handshake within "
            f"{CONNECT_TIMEOUT}; is it the scheduler's port (8786 by default)?")


def select(source: Any, k: int, *, score: Any = "margin", logits: bool = False,
           normalize: bool = False, atol: float = 1e-3, probs: str | None = None,
           embeddings: Any = None, id: str | None = "id", labeled: Any = None,
           exclude: Any = None, density: str | None = None, beta: float = 1.0,
           density_k: int = 10, density_sample: int = DEFAULT_SAMPLE,
           diversity: str | None = None, candidates: int | None = None,
           candidates_per_partition: int | None = None, extra: dict[str, str] | None = None,
           chunk_rows: int = DEFAULT_CHUNK_ROWS, client: Any = None,
           seed: int | np.random.Generator | None = 0,
           **diversity_params: Any) -> DistributedSelection:
    """Choose k items of a partitioned pool on a Dask cluster: each partition is scored
    where it lives, only its best candidates travel, and the driver merges them exactly.

    1. **score** (workers): a built-in score or a custom utility, on every row, in chunks of
       ``chunk_rows``; with ``density="knn"``, times the k-NN density against a sample
       index raised to ``beta``. Each partition keeps its ``candidates_per_partition`` best
       rows (ties to the lower row).
    2. **merge** (driver): the best ``M`` candidates over all partitions, ranked by (score
       descending, global row ascending), the order of :func:`alcore.select_top`: ``M = k``
       without diversity, ``candidates * k`` with it.
    3. **diversity** (driver, optional): the single-machine stage of :func:`alcore.select`
       on the merged candidates, labeled items counting as covered (their embeddings are
       sent too).

    Without density the picks equal the single-machine ones on the whole pool: the top k
    equal :func:`alcore.select_top`'s, and with a diversity stage the picks equal
    ``alcore.select(probs, k, embeddings=emb, diversity=..., candidates=candidates, ...)``.

    Parameters
    ----------
    source : list of paths, a path or glob, dask.array.Array or dask.dataframe.DataFrame
        Pool files (Parquet, Arrow IPC, CSV, NDJSON; one partition per file, read as
        :func:`alcore.io.read_pool` reads), a Dask array of probabilities (N, C), chunked
        along rows (its ids are row numbers), or a Dask dataframe whose partitions hold the
        pool's columns.
    k : int
        Items to pick.
    score : str or callable
        ``"least_confidence"``, ``"margin"``, ``"ratio"``, ``"entropy"``, or a custom
        utility of one row (compiled on each worker; it must be picklable, e.g. defined
        in an importable module or a closure, which Dask pickles by value).
    logits, normalize, atol
        As in :func:`alcore.select_top`.
    probs : str, optional
        Probability columns of a table source, as in :func:`alcore.io.read_pool`.
    embeddings : str or dask.array.Array, optional
        A table's embedding column (default ``embedding``, else ``emb``), or for a Dask
        array source the (N, d) Dask array of embeddings. Read only with a density or a
        diversity stage.
    id : str or None
        A table's id column; None for global row numbers.
    labeled, exclude : collection of ids, optional
        Ids never picked; labeled ones count as covered for the diversity stage. Shipped
        once to each worker.
    density : {None, "knn"}
        ``"knn"``: 1 / the mean distance to the ``density_k`` nearest items of a uniform
        sample of ``density_sample`` items (an item of the sample does not count itself),
        divided by the largest such density among the sample's own items, so the sample's
        densities lie in (0, 1]. The sample's index (exact up to 4096 items, else a FAISS
        IVF index trained on the sample) is built on the driver and shipped to the
        workers. It is an estimate of :func:`alcore.density.knn_density` over the whole
        pool, which no partition can compute alone.
    beta : float
        Exponent of the density.
    density_k, density_sample : int
    diversity : {None, "kcenter", "badge", "typiclust", "probcover", "spread"}
        ``"cluster_margin"`` clusters the whole pool and is not available here.
    candidates : int, optional
        With a diversity stage: the merged pool is ``candidates * k`` items. Default 5, the
        pool of :func:`alcore.select`'s ``diversity="auto"``; ``alcore.select`` with an
        explicit diversity and no ``candidates`` runs over the whole pool, which no driver
        holds, so pass the same ``candidates=`` to both to compare them.
    candidates_per_partition : int, optional
        Candidates each partition sends, at least k; default ``M``, which makes the merge
        exact. Fewer send less; ``DistributedSelection.exact`` then says whether the merge
        was still provably exact.
    extra : dict of str to str, optional
        For a custom utility with extra parameters: parameter -> column (table sources).
    chunk_rows : int
        Rows scored at a time on a worker: a worker's memory is bounded by about one chunk
        (``chunk_rows x (C + d) x itemsize``) plus its candidates, whatever a partition's
        size.
    client : dask.distributed.Client, str or None
        A client; a scheduler address; None for the default client, else a
        ``LocalCluster`` of processes made (and closed) for this call; ``"sync"`` runs
        every partition in this process, one after another.
    seed : None, int or numpy.random.Generator
        Seeds the density sample and the diversity stage.
    **diversity_params
        Options of the diversity method, as in :func:`alcore.select`.

    Returns
    -------
    DistributedSelection
        ``indices`` (int64 global rows, pick order), ``ids``, scores, components, reasons;
        ``config`` also holds ``"partitions"``, ``"candidates_per_partition"``,
        ``"bytes_shipped"`` (to each worker) and ``"bytes_returned"`` (by each partition).
    """
    state = seed.bit_generator.state if isinstance(seed, np.random.Generator) else None
    try:
        return _select(source, k, score=score, logits=logits, normalize=normalize, atol=atol,
                       probs=probs, embeddings=embeddings, id=id, labeled=labeled,
                       exclude=exclude, density=density, beta=beta, density_k=density_k,
                       density_sample=density_sample, diversity=diversity,
                       candidates=candidates,
                       candidates_per_partition=candidates_per_partition, extra=extra,
                       chunk_rows=chunk_rows, client=client, seed=seed, **diversity_params)
    except BaseException:  # a rejected or failed call changes no state
        if state is not None:
            seed.bit_generator.state = state
        raise


def _options(k: Any, score: Any, logits: Any, normalize: Any, atol: Any, density: Any,
             beta: Any, density_k: Any, density_sample: Any, diversity: Any, candidates: Any,
             candidates_per_partition: Any, extra: Any, chunk_rows: Any, probs: Any, id: Any,
             seed: Any, params: dict[str, Any]) -> dict[str, Any]:
    """Every option checked, before any data is touched or a cluster is made."""
    k = v.count(k)
    score = io_module.file_score(score, extra)
    density = v.choice(density, "density", (None, "knn"))
    beta = v.number(beta, "beta", low=0.0, hint="beta is the exponent of the density")
    if density is None and beta != 1.0:
        raise InvalidInputError(
            f"beta={beta:g} weights the density, but density=None; pass density='knn', or "
            f"drop beta=")
    if diversity == "cluster_margin":
        raise InvalidInputError(
            "diversity='cluster_margin' clusters the whole pool, which no worker holds; "
            "use 'kcenter', 'badge', 'typiclust', 'probcover' or 'spread' over the merged "
            "candidates, or alcore.select on one machine")
    diversity = v.choice(diversity, "diversity", DIVERSITIES)
    if "clusters" in params:
        raise InvalidInputError(
            "clusters= gives a label per item of the pool, which the driver never holds; "
            "drop it (typiclust clusters the merged candidates itself)")
    params = _pipeline._check_diversity_params(diversity, params)
    if candidates is not None:
        candidates = v.count(candidates, "candidates")
        if diversity is None:
            raise InvalidInputError(
                f"candidates={candidates} sizes the pool of a diversity stage, but "
                f"diversity=None; pass diversity=, or drop candidates=")
    elif diversity is not None:
        candidates = DEFAULT_CANDIDATES
    merged = k if diversity is None else candidates * k
    per_partition = (merged if candidates_per_partition is None
                     else v.count(candidates_per_partition, "candidates_per_partition"))
    if per_partition < k:
        # One partition may hold the whole top k: fewer would not even find the top k.
        raise InvalidInputError(
            f"candidates_per_partition={per_partition} is below k={k}; one partition may hold "
            f"all of the best k, so each must send at least k (it sends {merged} by default)")
    if probs is not None and not isinstance(probs, str):
        raise InvalidInputError(
            f"probs= names a table's probability columns (a column or a pattern such as "
            f"'p*'), got {v.shown(probs)}")
    if id is not None and not isinstance(id, str):
        raise InvalidInputError(f"id must be a column name or None, got {v.shown(id)}")
    v.rng(seed)
    return {"k": k, "score": score, "logits": v.flag(logits, "logits"),
            "normalize": v.flag(normalize, "normalize"), "atol": v.tolerance(atol),
            "density": density, "beta": beta, "density_k": v.count(density_k, "density_k"),
            "density_sample": v.count(density_sample, "density_sample"),
            "diversity": diversity, "candidates": candidates, "merged": merged,
            "per_partition": per_partition, "chunk_rows": v.count(chunk_rows, "chunk_rows"),
            "params": params, "seed": seed}


def _select(source: Any, k: Any, *, score: Any, logits: Any, normalize: Any, atol: Any,
            probs: Any, embeddings: Any, id: Any, labeled: Any, exclude: Any, density: Any,
            beta: Any, density_k: Any, density_sample: Any, diversity: Any, candidates: Any,
            candidates_per_partition: Any, extra: Any, chunk_rows: Any, client: Any,
            seed: Any, **diversity_params: Any) -> DistributedSelection:
    timings: dict[str, float] = {}
    start = time.perf_counter()
    o = _options(k, score, logits, normalize, atol, density, beta, density_k, density_sample,
                 diversity, candidates, candidates_per_partition, extra, chunk_rows, probs, id,
                 seed, diversity_params)
    parts = _sources.partitions(source, id=None if _sources._is_dask_array(source) else id,
                                embeddings=embeddings)
    if parts.kind == "array" and probs is not None:
        raise InvalidInputError(
            "probs= names a table's columns, but source is a Dask array of probabilities; "
            "drop probs=")
    row_ids = parts.kind == "array" or id is None
    id_dtype = None if row_ids else parts.id_dtype
    for name, ids in (("labeled", labeled), ("exclude", exclude)):
        if isinstance(ids, np.ndarray) and ids.dtype == bool:
            raise InvalidInputError(
                f"{name}= takes the items' ids here (a partitioned pool has no global mask), "
                f"got a boolean array; pass the ids it selects")
    lab_ids = io_module._exclude_ids(labeled, id_dtype, "labeled")
    exc_ids = io_module._exclude_ids(exclude, id_dtype, "exclude")
    extra_columns = None
    if isinstance(o["score"], _utility.Utility) and o["score"].extra:
        if parts.kind == "array":
            raise InvalidInputError(
                f"score function {o['score'].name!r} takes extra inputs "
                f"({', '.join(o['score'].extra)}), which a Dask array of probabilities "
                f"cannot hold; use a table source (files or a dataframe) with those columns")
        from pathlib import Path

        extra_columns = io_module._extra_columns(o["score"], extra, parts.columns,
                                                 Path(parts.labels[0]))
    needs_embeddings = o["density"] is not None or o["diversity"] is not None
    if needs_embeddings and parts.kind == "array" and embeddings is None:
        raise InvalidInputError(
            f"{'density' if o['density'] else 'diversity'}= needs embeddings=: pass the "
            f"(N, d) Dask array of embeddings")
    timings["validate"] = time.perf_counter() - start

    cluster_client, to_close = _client(client)
    try:
        generator = v.rng(seed)
        plan = part.Plan(
            candidates=o["per_partition"], score=o["score"], logits=o["logits"],
            normalize=o["normalize"], atol=o["atol"], probs=probs,
            embeddings=embeddings if isinstance(embeddings, str) else None,
            id=None if row_ids else id, extra_columns=extra_columns, labeled=lab_ids,
            exclude=exc_ids, keep_embeddings=o["diversity"] is not None,
            keep_probs=o["diversity"] == "badge", density=None, density_k=o["density_k"],
            density_scale=1.0, beta=o["beta"], sample_rows={}, chunk_rows=o["chunk_rows"])
        sizes = (_sources.count_rows(parts, cluster_client)
                 if row_ids or o["density"] is not None else None)
        offsets = None if sizes is None else np.concatenate([[0], np.cumsum(sizes)[:-1]])
        if o["density"] is not None:
            start = time.perf_counter()
            plan = _with_density(plan, parts, sizes, o, generator, cluster_client)
            timings["sample"] = time.perf_counter() - start
        start = time.perf_counter()
        arguments = [(p, 0 if offsets is None else int(offsets[p])) for p in range(len(parts))]
        tops = _sources.run(parts, _sources.score_task, arguments, plan, cluster_client)
        timings["score"] = time.perf_counter() - start
    finally:
        for resource in to_close:
            resource.close()
    return _finish(tops, o, plan, timings, len(parts))


def _with_density(plan: part.Plan, parts: _sources.Partitions, sizes: list[int],
                  o: dict[str, Any], generator: np.random.Generator,
                  client: Any) -> part.Plan:
    """The plan with a sample index: a uniform sample of the pool's rows, read where they
    live, indexed on the driver."""
    import dataclasses

    total = int(sum(sizes))
    n_sample = min(o["density_sample"], total)
    if n_sample <= o["density_k"]:
        raise InvalidInputError(
            f"density='knn' with density_k={o['density_k']} needs a sample of more than "
            f"{o['density_k']} items; got {n_sample} (density_sample={o['density_sample']}, "
            f"{total} items in the pool): raise density_sample or lower density_k")
    chosen = np.sort(generator.choice(total, n_sample, replace=False))
    bounds = np.concatenate([[0], np.cumsum(sizes)])
    which = np.searchsorted(bounds, chosen, side="right") - 1
    per_partition = {int(p): chosen[which == p] - bounds[p] for p in np.unique(which)}
    reading = dataclasses.replace(plan, keep_embeddings=True)
    wanted = [p for p in range(len(parts)) if p in per_partition]
    subset = _sources.Partitions(parts.kind, [parts.labels[p] for p in wanted],
                                 [parts.items[p] for p in wanted], parts.columns,
                                 parts.id_dtype)
    arguments = [(per_partition[p], int(bounds[p])) for p in wanted]
    blocks = _sources.run(subset, _sources.rows_task, arguments, reading, client)
    widths = {block.shape[1] for block in blocks if len(block)}
    if len(widths) > 1:
        raise InvalidInputError(
            f"the partitions' embeddings have different widths ({sorted(widths)}); every "
            f"partition must hold embeddings of one dimension")
    sample = np.concatenate(blocks)
    index = SampleIndex(sample, int(generator.integers(2**31)))
    own = part.inverse_mean_distance(index.neighbours(sample, o["density_k"],
                                                      np.arange(n_sample)))
    positions, at = {}, 0
    for p in wanted:
        positions[p] = (per_partition[p], np.arange(at, at + len(per_partition[p])))
        at += len(per_partition[p])
    return dataclasses.replace(plan, density=index, density_scale=float(own.max()),
                               sample_rows=positions)


def _finish(tops: list[part.PartitionTop], o: dict[str, Any], plan: part.Plan,
            timings: dict[str, float], n_parts: int) -> DistributedSelection:
    """Merge the partitions' candidates exactly and run the diversity stage on them."""
    start = time.perf_counter()
    k, merged_size = o["k"], o["merged"]
    tops = sorted(tops, key=lambda t: t.partition)
    _check_layouts(tops, n_parts)
    offsets = np.concatenate([[0], np.cumsum([t.n_rows for t in tops])[:-1]])
    n_rows = int(sum(t.n_rows for t in tops))
    n_pickable = n_rows - int(sum(t.n_never for t in tops))
    if k > n_pickable:
        raise InvalidInputError(
            f"k={k} exceeds the {n_pickable} items that can be picked ({n_rows} rows in "
            f"{n_parts} partitions, {n_rows - n_pickable} labeled or excluded); lower k")

    def joined(name: str, labeled: bool = False) -> np.ndarray | None:
        """A field of every partition that has such rows, joined (None: none has any, or
        the field was not asked for)."""
        key = f"labeled_{name}" if labeled else name
        values = [getattr(t, key) for t in tops if len(t.labeled_rows if labeled else t.rows)]
        if not values or any(value is None for value in values):
            return None
        return np.concatenate(values)

    def global_rows(name: str) -> np.ndarray:
        """A row field (partition rows) of every partition, as global rows, joined."""
        return np.concatenate([getattr(t, name) + offsets[i] for i, t in enumerate(tops)
                               if len(getattr(t, name))] or [np.empty(0, np.int64)])

    rows = global_rows("rows")
    scores = joined("scores")
    # Global row order is (partition, row) order: ties to the lower row, as select_top.
    order = np.lexsort((rows, -scores))
    keep = order[:merged_size]
    exact = _merge_exact(tops, rows, order, merged_size, plan.candidates)
    candidates = {"rows": rows[keep], "ids": joined("ids")[keep], "scores": scores[keep],
                  "uncertainty": joined("uncertainty")[keep]}
    for name in ("density", "probs", "embeddings"):
        values = joined(name)
        candidates[name] = None if values is None else values[keep]
    timings["merge"] = time.perf_counter() - start

    start = time.perf_counter()
    lab_rows = global_rows("labeled_rows")
    if o["diversity"] is None:
        chosen_rows, chosen_ids = candidates["rows"][:k], candidates["ids"][:k]
        components = {"uncertainty": candidates["uncertainty"][:k],
                      "rank": np.arange(1, k + 1, dtype=np.int64)}
        if candidates["density"] is not None:
            components["density"] = candidates["density"][:k]
        reasons = _pipeline._reasons(
            np.arange(k), candidates["scores"], components, _score_name(o), o["density"],
            o["beta"], None, n_pickable, None, o["params"], o["seed"], None)
        combined, shortfall = candidates["scores"][:k], None
    else:
        chosen_rows, chosen_ids, combined, components, reasons, shortfall = _diverse(
            candidates, lab_rows, joined("ids", True), joined("embeddings", True),
            joined("probs", True), o, n_pickable)
    timings["diversity"] = time.perf_counter() - start
    config = {"k": k, "score": _score_name(o), "logits": o["logits"],
              "normalize": o["normalize"], "atol": o["atol"], "density": o["density"],
              "beta": o["beta"], "diversity": o["diversity"], "candidates": o["candidates"],
              "candidates_per_partition": plan.candidates, "partitions": n_parts,
              "rows": n_rows, **o["params"],
              "bytes_shipped": _plan_bytes(plan),
              "bytes_returned": [t.nbytes for t in tops]}
    if o["density"] is not None:
        config.update(density_k=o["density_k"], density_sample=len(plan.density.sample),
                      density_index=plan.density.kind)
    return DistributedSelection(chosen_rows, np.asarray(combined, dtype=np.float64),
                                components, reasons, None, shortfall, timings, config,
                                ids=chosen_ids, exact=exact)


def _check_layouts(tops: list[part.PartitionTop], n_parts: int) -> None:
    """Every non-empty partition has the first one's classes, precision, embedding width
    and id type (a worker checks its own chunks; this compares the partitions)."""
    filled = [t for t in tops if t.layout is not None]
    for top in filled[1:]:
        if top.layout != filled[0].layout:
            raise InvalidInputError(part._layout_difference(
                filled[0].layout, top.layout, f"partition {top.partition} of {n_parts} "
                f"(partition {filled[0].partition} is the first with rows)"))


def _merge_exact(tops: list[part.PartitionTop], rows: np.ndarray, order: np.ndarray,
                 merged_size: int, per_partition: int) -> bool:
    """Whether the merged pool is provably the global best: every partition that sent its
    full quota has its last (worst) candidate at or below the pool's last place, so what
    it did not send ranks below the pool."""
    if per_partition >= merged_size:
        return True
    place = np.empty(len(order), dtype=np.int64)
    place[order] = np.arange(len(order))
    at = 0
    for top in tops:
        n = len(top.rows)
        if n == per_partition and place[at + n - 1] < merged_size - 1:
            return False
        at += n
    return True


def _diverse(candidates: dict[str, Any], lab_rows: np.ndarray, lab_ids: np.ndarray,
             lab_emb: np.ndarray | None, lab_probs: np.ndarray | None, o: dict[str, Any],
             n_pickable: int) -> tuple:
    """alcore.select's diversity stage on [labeled items, candidates by global row]: the
    arrays it would build from the whole pool, so the picks are the same."""
    by_row = np.argsort(candidates["rows"], kind="stable")
    lab_order = np.argsort(lab_rows, kind="stable")
    n_lab = len(lab_rows)
    sub_rows = np.concatenate([lab_rows[lab_order], candidates["rows"][by_row]])
    sub_ids = (np.concatenate([lab_ids[lab_order], candidates["ids"][by_row]]) if n_lab
               else candidates["ids"][by_row])
    emb = np.concatenate([lab_emb[lab_order], candidates["embeddings"][by_row]]) \
        if n_lab else candidates["embeddings"][by_row]
    x = None
    if o["diversity"] == "badge":
        x = np.concatenate([lab_probs[lab_order], candidates["probs"][by_row]]) \
            if n_lab else candidates["probs"][by_row]

    def padded(values: np.ndarray | None) -> np.ndarray | None:
        # Labeled items are never picked: their scores play no part, 0 keeps them finite.
        if values is None:
            return None
        return np.concatenate([np.zeros(n_lab), values[by_row]])

    combined, uncertainty = padded(candidates["scores"]), padded(candidates["uncertainty"])
    dens = padded(candidates["density"])
    masks = v.item_masks(len(sub_rows), "candidates",
                         labeled=np.arange(n_lab) if n_lab else None)
    # The pool, best first: the candidates' places in the sub-arrays, in merged order.
    pool = np.empty(len(by_row), dtype=np.int64)
    pool[by_row] = np.arange(n_lab, len(sub_rows))
    seed = o["seed"]  # as alcore.select passes it, so the same seed gives the same picks
    chosen, explained = _pipeline._diverse(o["diversity"], o["k"], pool, emb, masks, x,
                                           o["logits"], o["normalize"], o["atol"], combined,
                                           seed, o["params"])
    components, _, shortfall = _pipeline._explain(
        chosen, o["k"], uncertainty, dens, combined, masks, n_pickable, pool, emb,
        _score_name(o), o["density"], o["beta"], o["diversity"], o["params"], seed, explained)
    if "nearest" in components:
        nearest = components["nearest"]
        components["nearest"] = np.where(nearest >= 0, sub_rows[np.maximum(nearest, 0)], -1)
    reasons = _pipeline._reasons(chosen, combined, components, _score_name(o), o["density"],
                                 o["beta"], o["diversity"], n_pickable, pool, o["params"],
                                 o["seed"], len(pool))
    return (sub_rows[chosen], sub_ids[chosen], combined[chosen], components, reasons,
            shortfall)


def _score_name(o: dict[str, Any]) -> str:
    return o["score"].name if isinstance(o["score"], _utility.Utility) else o["score"]


def _plan_bytes(plan: part.Plan) -> int:
    """What every worker receives once: the id sets, the score, the sample index (as Dask
    pickles it: cloudpickle, which dask requires)."""
    import cloudpickle

    return len(cloudpickle.dumps(plan))
