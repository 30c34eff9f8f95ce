"""The work behind ``alcore workflow init|next|import|status`` (argument wiring lives in
:mod:`alcore.cli`).

A ledger made by ``init`` is bound to one pool file: the ledger's state ``cli.pool`` keeps
the file's absolute path, the column options it was read with, its row count and a SHA-256
of its ids (as text, in row order). Every later step re-reads the pool and refuses it when
the rows or ids differ: queued item ids and their labels would otherwise point at other
items. The probabilities (and embeddings) may change between steps; that is how a
retrained model's predictions reach the next selection.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from alcore import io
from alcore._errors import InvalidInputError

_STATE = "cli.pool"


class PoolFile:
    """A pool file read with the options stored in the ledger: ids (text), probabilities,
    embeddings, the labeled mask and the data shown to annotators."""

    def __init__(self, ids: np.ndarray, probs: np.ndarray, embeddings: np.ndarray | None,
                 labeled: np.ndarray | None, data: list[Any] | None,
                 row_numbers: bool = False):
        self.ids = ids
        self.row_numbers = row_numbers  # no id column: the ids are 0-based row numbers
        self.probs = probs
        self.embeddings = embeddings
        self.labeled = labeled
        self.data = data

    @property
    def rows(self) -> int:
        return len(self.ids)

    def id_hash(self) -> str:
        return id_hash(self.ids)


def id_hash(ids: Any) -> str:
    """SHA-256 of the ids as text in row order; JSON keeps the boundaries between ids
    unambiguous (``["a,b"]`` and ``["a", "b"]`` differ)."""
    text = json.dumps([str(i) for i in np.asarray(ids, dtype=object).tolist()],
                      ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def read_pool(spec: dict[str, Any], path: str | os.PathLike | None = None) -> PoolFile:
    """The pool file ``path`` (default: the one in ``spec``) read with the column options of
    ``spec`` (what ``init`` stored)."""
    from alcore.cli import _id_column, _refuse_duplicate_ids

    path = Path(spec["path"] if path is None else path)
    source = path.name
    text = [spec["id"] or "id"] + ([spec["data"]] if spec.get("data") else [])
    table = io.read_table(path, text_columns=text)
    id_column = _id_column(spec["id"], table.columns)
    pool = io.pool_from_table(table, source, id=id_column, probs=spec["probs"],
                              embeddings=spec["embeddings"], labeled=spec["labeled"],
                              logits=spec["logits"])
    if id_column is not None:
        _refuse_duplicate_ids(table[id_column], id_column, source)
    if pool.probs is None:
        raise InvalidInputError(
            f"{source}: no probabilities (a list column 'probs' or columns p0, p1, ...); "
            f"name them with --probs")
    data = None
    if spec.get("data"):
        if spec["data"] not in table.columns:
            raise InvalidInputError(
                f"{source}: no column {spec['data']!r} for --data; columns are "
                f"{', '.join(table.columns[:20])}")
        data = table[spec["data"]].to_list()
    ids = np.array([str(i) for i in pool.ids.tolist()], dtype=object)
    probs = _probabilities(pool.probs, spec, source)
    return PoolFile(ids, probs, pool.embeddings, pool.labeled, data,
                    row_numbers=id_column is None)


def _probabilities(probs: np.ndarray, spec: dict[str, Any], source: str) -> np.ndarray:
    """Probability rows as the workflow stores predictions: logits through a softmax, rows
    divided by their sums with --normalize. The rows are checked by the scores' own
    validation (finite, non-negative, summing to 1 within --atol), so the command refuses
    what ``alcore select`` refuses, with the same messages."""
    from alcore import scores

    try:
        scores.least_confidence(probs, logits=spec["logits"], normalize=spec["normalize"],
                                atol=spec["atol"])
    except InvalidInputError as err:
        raise InvalidInputError(f"{source}: {err}") from None
    x = np.asarray(probs, dtype=np.float64)
    if spec["logits"]:
        z = np.exp(x - x.max(axis=1, keepdims=True))
        return z / z.sum(axis=1, keepdims=True)
    if spec["normalize"]:
        return x / x.sum(axis=1, keepdims=True)
    return x


def check_pool(spec: dict[str, Any], pool: PoolFile, ledger: str | os.PathLike) -> None:
    """Refuse a pool whose rows or ids differ from the ones ``init`` fingerprinted."""
    name = Path(spec["path"]).name
    if pool.rows != spec["rows"]:
        raise InvalidInputError(
            f"{name} has changed: it holds {pool.rows} rows, the ledger {Path(ledger).name} "
            f"was made on {spec['rows']}; the queued ids and labels name the original items. "
            f"Restore the pool (refreshed probabilities are fine, other rows or ids are not) "
            f"or start a new ledger with alcore workflow init")
    if pool.id_hash() != spec["id_sha256"]:
        raise InvalidInputError(
            f"{name} has changed: its ids differ from the ones the ledger "
            f"{Path(ledger).name} was made on (same row count, other ids or order); the "
            f"queued ids and labels name the original items. Restore the pool or start a "
            f"new ledger with alcore workflow init")


def parse_classes(text: str | None, columns: int) -> list[str]:
    """The ``--classes`` list (one name per probability column) or ``0 … C-1``."""
    if text is None:
        return [str(c) for c in range(columns)]
    names = [name.strip() for name in text.split(",")]
    if any(not name for name in names):
        raise InvalidInputError(f"--classes has an empty name in {text!r}; write "
                                f"NAME,NAME,... with one name per probability column")
    if len(set(names)) != len(names):
        raise InvalidInputError(f"--classes lists a name twice: {text!r}")
    if len(names) != columns:
        raise InvalidInputError(
            f"--classes names {len(names)} classes, but the pool's probabilities have "
            f"{columns} columns; give one name per column, in column order")
    return names


def check_tasks_out(out: str | os.PathLike, *, overwrite: bool) -> Path:
    """Before any work: ``--out`` is a .json file in an existing, writable folder, replaced
    only with ``--overwrite`` (the rules of every file alcore writes:
    :func:`alcore.io.check_writable`)."""
    path = Path(out)
    if path.suffix.lower() != ".json":
        raise InvalidInputError(
            f"--out {path.name}: Label Studio tasks are written as JSON; name a .json file")
    return io.check_writable(path, overwrite=overwrite)


def write_json(value: Any, path: Path) -> None:
    """Write ``value`` as JSON atomically: a temporary file beside ``path``, flushed to
    disk, then renamed over it (a crash leaves the old file or the new one, never half)."""
    handle, temp = tempfile.mkstemp(suffix=".json", dir=path.parent, prefix=".alcore-")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as f:
            json.dump(value, f, ensure_ascii=False, indent=1)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temp, path)
    finally:
        if os.path.exists(temp):
            os.remove(temp)


def _pool_source(spec: dict[str, Any], pool: PoolFile) -> Any:
    """A :class:`PoolSource` over the pool file: items labeled before the loop (the
    ``--labeled`` column) count as covered, and a k-center step draws a progress bar as
    ``alcore select`` does."""
    from alcore.workflow._sources import PoolSource

    prelabeled = pool.labeled

    class FilePoolSource(PoolSource):
        def covered_mask(self, covered: set[str]) -> np.ndarray:
            mask = super().covered_mask(covered)
            return mask if prelabeled is None else mask | prelabeled

        def select_options(self, boost: bool) -> dict[str, Any]:
            options = super().select_options(boost)
            if options.get("diversity") is not None:
                options["verbose"] = True  # a bar on a terminal, one line in a log
            return options

    data = None
    if pool.data is not None:
        key = spec["data_key"]
        data = [{key: value} for value in pool.data]
    return FilePoolSource(pool.probs, embeddings=pool.embeddings, ids=pool.ids,
                          classes=spec["classes"], score=spec["score"],
                          diversity=None if spec["diversity"] == "none" else spec["diversity"],
                          data=data)


def _check_ledger_exists(path: Path) -> None:
    if not path.is_file():
        raise InvalidInputError(
            f"no ledger at {path}; create one with alcore workflow init {path} --pool POOL")


def _spec(path: Path) -> dict[str, Any]:
    """What ``init`` stored about the pool (refusing a ledger ``init`` did not make)."""
    from alcore.workflow._ledger import Ledger

    with Ledger.open(path) as db:
        spec = db.state(_STATE)
    if spec is None:
        raise InvalidInputError(
            f"{path} was not made by alcore workflow init (it names no pool file); the "
            f"command line needs a ledger bound to a pool: alcore workflow init LEDGER "
            f"--pool POOL")
    return spec


def _open(path: Path) -> tuple[dict[str, Any], Any]:
    """The stored pool spec and a resumed :class:`Workflow` over the pool file, after the
    file's rows and ids are checked against the fingerprint."""
    from alcore.workflow._workflow import Workflow

    _check_ledger_exists(path)
    spec = _spec(path)
    if not Path(spec["path"]).is_file():
        raise InvalidInputError(
            f"the ledger's pool file {spec['path']} is missing; restore it (the ledger "
            f"{path.name} is bound to it)")
    pool = read_pool(spec)
    check_pool(spec, pool, path)
    sketch = None
    if spec.get("sketch"):
        from alcore.monitor import PoolSketch

        if not Path(spec["sketch"]).is_file():
            raise InvalidInputError(
                f"the ledger's pool sketch {spec['sketch']} is missing; restore it, or start "
                f"a new ledger with alcore workflow init --audit")
        sketch = PoolSketch.load(spec["sketch"])
    return spec, Workflow.resume(path, sources={"pool": _pool_source(spec, pool)},
                                 sketch=sketch)


def sketch_path(ledger: Path) -> Path:
    """Where ``init --audit`` keeps the pool's sketch: beside the ledger."""
    return ledger.with_name(ledger.name + ".sketch.npz")


def init(args: argparse.Namespace) -> None:
    """``alcore workflow init``: read and fingerprint the pool, then create the ledger
    atomically (built under a temporary name, renamed into place once complete)."""
    from alcore.workflow._ledger import Ledger
    from alcore.workflow._workflow import Workflow

    path = Path(args.ledger)
    if not path.parent.is_dir():
        raise InvalidInputError(
            f"{path}: the folder {str(path.parent)!r} does not exist; create it first")
    if path.is_dir():
        raise InvalidInputError(f"{path} is a folder; name a ledger file")
    if path.exists() and not args.overwrite:
        raise InvalidInputError(
            f"{path} exists; pass --overwrite to replace it (its labels are lost), or "
            f"continue it with alcore workflow next {path}")
    if not 0 <= args.control_share < 1:
        raise InvalidInputError(
            f"--control-share must be in [0, 1), got {args.control_share:g}; e.g. "
            f"--control-share 0.1")
    pool_path = Path(args.pool).resolve()
    spec = {"path": str(pool_path), "id": args.id, "probs": args.probs,
            "embeddings": args.embeddings, "labeled": args.labeled, "logits": args.logits,
            "normalize": args.normalize, "atol": args.atol, "data": args.data,
            "data_key": args.data_key, "score": args.score, "diversity": args.diversity}
    pool = read_pool(spec, Path(args.pool))
    spec["classes"] = parse_classes(args.classes, pool.probs.shape[1])
    spec["rows"] = pool.rows
    spec["id_sha256"] = pool.id_hash()
    pickable = pool.rows - (0 if pool.labeled is None else int(pool.labeled.sum()))
    if pickable == 0:
        raise InvalidInputError(f"{pool_path.name}: every item is labeled (--labeled "
                                f"{args.labeled}); nothing is left to select")
    budget = pickable if args.budget is None else args.budget
    if args.audit and pool.embeddings is None:
        raise InvalidInputError(
            f"--audit sketches the pool's embeddings: {pool_path.name} has no column "
            f"'embedding' or 'emb'; name a list column or a pattern such as 'e*' with "
            f"--embeddings")
    spec["sketch"] = str(sketch_path(path).resolve()) if args.audit else None
    source = _pool_source(spec, pool)
    sketch = None
    if args.audit:
        from alcore._progress import reporter
        from alcore.monitor import PoolSketch

        sketch = PoolSketch.build(pool.embeddings, pool.probs, seed=args.seed,
                                  progress=reporter(None, True, "pool sketch"))
    handle, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".init",
                                    dir=path.parent)
    os.close(handle)
    os.remove(temp)  # the ledger is created where no file exists
    try:
        workflow = Workflow(temp, budget=budget, sources={"pool": source},
                            control_share=args.control_share, seed=args.seed, sketch=sketch)
        try:
            workflow.ledger.set_state(_STATE, spec)
        finally:
            workflow.ledger.close()
        with Ledger.open(temp):
            pass  # closing the last connection folds the WAL into the file
        for suffix in ("-wal", "-shm"):
            if os.path.exists(temp + suffix):
                os.remove(temp + suffix)
        for suffix in ("-wal", "-shm"):  # a replaced ledger's own journal files
            if os.path.exists(str(path) + suffix):
                os.remove(str(path) + suffix)
        if sketch is not None:
            sketch.save(spec["sketch"])  # before the ledger: a ledger never lacks its sketch
        os.replace(temp, path)
    finally:
        for name in (temp, temp + "-wal", temp + "-shm"):
            if os.path.exists(name):
                os.remove(name)
    n_labeled = pool.rows - pickable
    print(f"{path}: workflow over {pool_path.name} ({pool.rows} items, {n_labeled} labeled, "
          f"{len(spec['classes'])} classes); budget {budget} labels, control share "
          f"{args.control_share:g}")
    if spec["data"] is None:
        _note("no --data: the tasks carry only alcore's fields (alcore_id, alcore_reason, "
              "...); name the column annotators see (text, image URL) with --data")
    if pool.row_numbers:
        _note(f"{pool_path.name} has no 'id' column; item ids are row numbers (0-based). "
              f"Name an id column with --id")


def _note(text: str) -> None:
    import sys

    print(f"alcore: note: {text}", file=sys.stderr)


def next_batch(args: argparse.Namespace) -> None:
    """``alcore workflow next``: select and queue a batch and write it as Label Studio
    tasks; with ``--queued``, write the items already queued (nothing selected)."""
    from alcore.workflow._labelstudio import to_label_studio_tasks

    path = Path(args.ledger)
    if args.queued and args.k is not None:
        raise InvalidInputError("--queued writes the items already queued; leave out -k")
    if not args.queued and args.k is None:
        raise InvalidInputError("-k is required: how many items to queue (an integer, e.g. "
                                "-k 100), or --queued to write the items already queued")
    out = check_tasks_out(args.out, overwrite=args.overwrite)
    spec, workflow = _open(path)
    try:
        if args.queued:
            records = [{k: x[k] for k in x if k != "status"} for x in workflow.ledger.queued()]
        else:
            left = workflow.status()["budget"]
            if left["left"] <= 0:
                raise InvalidInputError(
                    f"{path}: the budget of {left['total']} labels is spent; nothing was "
                    f"queued")
            records = workflow.next_batch(args.k)
        round_ = workflow.round
        after = workflow.status()
    finally:
        workflow.ledger.close()
    tasks = to_label_studio_tasks(records, from_name=args.from_name,
                                  to_name=args.to_name or spec["data_key"],
                                  data_key=spec["data_key"] if spec.get("data") else None)
    try:
        write_json(tasks, out)
    except OSError as err:
        raise OSError(f"{out}: {err.strerror or err}; the items stay queued in {path}: write "
                      f"them with alcore workflow next {path} --queued --out FILE.json"
                      ) from None
    per_source: dict[str, int] = {}
    for record in records:
        per_source[record["source"]] = per_source.get(record["source"], 0) + 1
    parts = ", ".join(f"{name} {count}" for name, count in per_source.items())
    what = (f"{len(records)} items waiting in the queue" if args.queued
            else f"round {round_}: {len(records)} items queued")
    print(f"{what} ({parts or 'none'}) -> {out}; budget "
          f"{after['budget']['spent']} of {after['budget']['total']} spent, queue "
          f"{after['queue']['size']}")
    if not args.queued and len(records) < args.k:
        why = ("the budget is spent" if after["budget"]["left"] <= 0
               else "the pool has no more unlabeled, unqueued items")
        _note(f"fewer than -k {args.k} items: {why}")


def import_export(args: argparse.Namespace) -> None:
    """``alcore workflow import``: Label Studio's export into the ledger; disagreements
    and ambiguous items go to the expert tier."""
    import time

    from alcore.workflow._labelstudio import read_label_studio_export
    from alcore.workflow._ledger import Ledger

    path = Path(args.ledger)
    _check_ledger_exists(path)
    spec = _spec(path)
    if not 0 < args.expert_below <= 1:
        raise InvalidInputError(
            f"--expert-below must be in (0, 1], got {args.expert_below:g}; 1 routes any "
            f"disagreement to the expert")
    source = Path(args.export)
    if not source.is_file():
        raise InvalidInputError(f"{source}: no such file (Label Studio: Export -> JSON)")
    export = read_label_studio_export(source, from_name=args.from_name)
    classes = set(spec["classes"])
    with Ledger.open(path) as db:
        items = {x["item_id"]: x for x in db.items()}
        unknown = [i for i in export.items if i not in items]
        if unknown:
            raise InvalidInputError(
                f"{source.name}: task with alcore_id {unknown[0]!r} is not in the ledger "
                f"{path.name} ({len(unknown)} such tasks); import the export of the tasks "
                f"alcore workflow next wrote for this ledger. Nothing was imported")
        votes = [x for x in export.latest() if not x["ambiguous"]]
        foreign = [x for x in votes if x["value"] not in classes]
        if foreign:
            x = foreign[0]
            raise InvalidInputError(
                f"{source.name}: item {x['item_id']!r} is labeled {x['value']!r}, which is "
                f"not one of the ledger's classes ({', '.join(spec['classes'][:20])}); "
                f"make the Label Studio choices the --classes of alcore workflow init. "
                f"Nothing was imported")
        routed_at = _routed_at(db)
        records = []
        for x in votes:
            record = dict(x)
            since = routed_at.get(x["item_id"])
            if items[x["item_id"]]["tier"] == "expert" and since is not None and x["at"] > since:
                record["origin"] = "expert"  # annotated after the item went to the expert
            records.append(record)
        existing = {(x["item_id"], x["annotator"], x["value"], x["origin"])
                    for x in db.labels()}
        # Labels already stored as they are are not stored again: importing the same
        # export twice changes nothing.
        new = [x for x in records if (x["item_id"], x["annotator"], x["value"],
                                      x["origin"]) not in existing]
        waiting = {x["item_id"] for x in db.queued() if x["tier"] == "expert"}
        stored = db.add_labels(new) if new else 0
        expert_labeled = {x["item_id"] for x in db.labels() if x["origin"] == "expert"}
        # A label stored marks its item labeled; an item waiting for the expert stays in
        # the expert's queue until the expert's own label arrives.
        still = sorted(waiting - expert_labeled)
        if still and stored:
            db.route(still, "expert", "Label Studio import: still waiting for the expert")
        to_expert = [i for i in export.to_expert(args.expert_below)
                     if items[i]["tier"] != "expert" and i not in expert_labeled]
        if to_expert:
            db.route(to_expert, "expert", f"Label Studio import: annotators disagree "
                                          f"(per-item agreement below {args.expert_below:g}) "
                                          f"or marked the item ambiguous")
        summary = _agreement_summary(export)
        db.event("import", {"file": str(source.resolve()), "tasks": export.n_tasks,
                            "labels": len(votes), "new_labels": stored,
                            "ambiguous": len(export.ambiguous_items),
                            "to_expert": to_expert, "agreement": summary,
                            "at": time.time()})
    annotated = len({x["item_id"] for x in votes})
    print(f"{source.name}: {export.n_tasks} tasks, {len(votes)} labels on {annotated} items "
          f"from {len(export.annotators)} annotators ({stored} new or changed) -> {path}")
    if summary["items"]:
        print(f"agreement over {summary['items']} items labeled twice or more: "
              f"Krippendorff's alpha {_fmt(summary['krippendorff_alpha'])}, Fleiss' kappa "
              f"{_fmt(summary['fleiss_kappa'])}, mean per-item agreement "
              f"{_fmt(summary['mean_per_item'])}")
    else:
        print("agreement: no item was labeled by two annotators")
    print(f"{len(to_expert)} items routed to the expert ({len(export.ambiguous_items)} "
          f"marked ambiguous or skipped)" + (": " + ", ".join(to_expert[:10]) +
                                              (" ..." if len(to_expert) > 10 else "")
                                              if to_expert else ""))


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _routed_at(db: Any) -> dict[str, float]:
    """When each item was first routed to the expert tier (unix seconds)."""
    out: dict[str, float] = {}
    for event in db.events("route"):
        if event["payload"].get("tier") == "expert":
            for item_id in event["payload"]["items"]:
                out.setdefault(item_id, event["at"])  # the first routing
    return out


def _agreement_summary(export: Any) -> dict[str, Any]:
    """Agreement of the export's annotators on the items labeled twice or more (None
    values when no pair of annotators shares an item)."""
    import math

    triples = [t for t in export.triples() if t[2] is not None]
    counts: dict[str, int] = {}
    for item, _, _ in triples:
        counts[item] = counts.get(item, 0) + 1
    shared = [t for t in triples if counts[t[0]] >= 2]
    empty = {"items": 0, "krippendorff_alpha": None, "fleiss_kappa": None,
             "mean_per_item": None}
    if not shared:
        return empty
    if len({t[2] for t in shared}) < 2:
        # One class among the shared items: the annotators agree on all of them, and the
        # chance-corrected statistics are undefined.
        return {**empty, "items": len({t[0] for t in shared}), "mean_per_item": 1.0}
    from alcore.monitor import agreement

    report = agreement(shared)
    per_item = report.per_item[np.isfinite(report.per_item)]

    def finite(x: float) -> float | None:
        return float(x) if math.isfinite(x) else None

    return {"items": len(per_item),
            "krippendorff_alpha": finite(report.krippendorff_alpha),
            "fleiss_kappa": finite(report.fleiss_kappa),
            "mean_per_item": float(per_item.mean()) if len(per_item) else None}


def status(args: argparse.Namespace) -> None:
    """``alcore workflow status``: budget, queue, labels per source, control-arm accuracy,
    the last audit, agreement and batch-size decisions, and the last import. It reads the
    ledger only (never the pool file), so it answers quickly on a large pool and still
    answers when the pool file was moved or is being rewritten."""
    from alcore.workflow._ledger import Ledger
    from alcore.workflow._workflow import Workflow

    path = Path(args.ledger)
    _check_ledger_exists(path)
    spec = _spec(path)
    with Ledger.open(path) as db:
        report = Workflow.status_of(db)
        last_import = db.last_event("import")
    report["pool"] = {"path": spec["path"], "rows": spec["rows"],
                      "classes": spec["classes"]}
    report["last_import"] = None if last_import is None else last_import["payload"]
    if args.json:
        print(json.dumps(_finite(report), ensure_ascii=False, allow_nan=False))
        return
    budget, queue = report["budget"], report["queue"]
    tiers = ", ".join(f"{t} {n}" for t, n in sorted(queue["by_tier"].items()))
    print(f"{path}: round {report['round']}, pool {Path(spec['path']).name} "
          f"({spec['rows']} items)")
    print(f"budget: {budget['spent']} of {budget['total']} labels spent, {budget['left']} "
          f"left")
    print(f"queue: {queue['size']} items waiting" + (f" ({tiers})" if tiers else ""))
    per_source = ", ".join(f"{s} {n}" for s, n in sorted(report["labels_per_source"].items()))
    print(f"labeled: {report['labels']} items" + (f" ({per_source})" if per_source else "")
          + (f"; {report['auto_labels']} auto-labelled" if report["auto_labels"] else ""))
    control = report["control"]
    if control["accuracy"] is None:
        print("control arm: no labeled control items yet")
    else:
        print(f"control arm: model accuracy {control['accuracy']:.3f} on "
              f"{control['labeled']} random items (unbiased)")
    counterfactual = report["counterfactual"]
    if report["lift"] is not None:
        print(f"lift over random selection at equal labels: {report['lift']:+.3f} "
              f"({report['lift_rounds']} rounds; the random-sampling model's accuracy "
              f"{counterfactual['accuracy']:.3f} on {counterfactual['labeled']} control "
              f"items)")
    elif not counterfactual["labeled"]:
        print("lift: not measured (it needs the random-sampling model, "
              "Workflow(counterfactual=...))")
    agreement = report["last_agreement"]
    if agreement is not None:
        print(f"agreement: Krippendorff's alpha {agreement['krippendorff_alpha']:.3f} over "
              f"{agreement['items']} items (threshold {agreement['threshold']:g}): "
              f"{agreement['rule']}")
    audit = report["last_audit"]
    if audit is None:
        print("last audit: none")
    else:
        warnings = audit.get("warnings") or []
        print(f"last audit: {audit.get('items', '?')} items, "
              + (f"{len(warnings)} warnings: " + "; ".join(map(str, warnings[:3]))
                 if warnings else "no warnings"))
    imported = report["last_import"]
    if imported is not None:
        print(f"last import: {Path(imported['file']).name}, {imported['labels']} labels, "
              f"{len(imported['to_expert'])} routed to the expert")


def _finite(value: Any) -> Any:
    """``value`` with every non-finite float replaced by None: ``--json`` is strict JSON,
    which has no NaN."""
    import math

    if isinstance(value, dict):
        return {k: _finite(x) for k, x in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(x) for x in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def run(args: argparse.Namespace) -> None:
    """Run the step ``args.step`` (init, next, import or status)."""
    from alcore.workflow._ledger import LedgerError

    steps = {"init": init, "next": next_batch, "import": import_export, "status": status}
    try:
        steps[args.step](args)
    except LedgerError as err:
        # A ledger that is missing, foreign, newer or busy is bad input to the command.
        raise InvalidInputError(str(err)) from None
