"""The workflow's durable ledger: one SQLite file in WAL mode, one transaction per event.

Schema (version 1)
------------------
``meta(key TEXT PRIMARY KEY, value TEXT)``
    ``app`` = ``"alcore-ledger"`` (a SQLite file without it is another application's and
    is refused), ``schema_version`` = ``"1"`` (a newer one is refused: upgrade alcore),
    ``created_at`` (unix seconds).
``events(id INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT, round INTEGER, at REAL,
payload TEXT)``
    The append-only log: every selection (with per-item reasons), queued batch, label,
    auto-label, routing, gate state, audit, agreement and batch-size decision; ``payload``
    is JSON text.
``items(seq INTEGER PRIMARY KEY AUTOINCREMENT, item_id TEXT UNIQUE, source, round, tier,
reason, score, prediction, confidence, control, data, status, event)``
    One row per item ever queued (``UNIQUE(item_id)``: an item can never be queued twice);
    ``status`` is ``"queued"`` until a label arrives, then ``"labeled"``; :meth:`Ledger.route`
    re-queues an item for another tier. ``data`` is JSON text; ``event`` the id of the
    event that queued it.
``labels(id INTEGER PRIMARY KEY AUTOINCREMENT, item_id, annotator, value, at, origin,
ambiguous, event, UNIQUE(item_id, annotator))``
    The current label of each (item, annotator): a later label from the same annotator
    replaces the first here, and both stay in ``events``; an earlier one arriving late
    does not (``events`` keeps it as ``stale_label``); see :meth:`Ledger.add_labels`.
``state(key TEXT PRIMARY KEY, value TEXT)``
    JSON values: the workflow's config, round, batch sizer, gate state.

Only JSON text is stored (no pickle), so a ledger can be read by any SQLite client.

Concurrency rule
----------------
Several processes may open one ledger at once (the workflow, ``alcore serve``, the CLI):
WAL lets readers proceed beside a writer, and writers take SQLite's write lock one at a
time, each write being one ``BEGIN IMMEDIATE`` transaction. A writer that finds the lock
held **waits** for it up to ``timeout`` seconds (default 10) and then raises
:class:`LedgerError` ("busy"), having written nothing. Queueing an item another process
queued meanwhile fails the whole transaction (``UNIQUE(item_id)``): never a duplicate,
never a half-written event. Threads may share one open :class:`Ledger` (its transactions
hold a lock from BEGIN to COMMIT). ``synchronous=FULL``: a committed transaction survives a crash
of the process or of the machine.
"""

from __future__ import annotations

import json
import math
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from alcore._errors import AlcoreError

SCHEMA_VERSION = 1
APP = "alcore-ledger"
SOURCES = ("pool", "stream", "synthesis", "control")
TIERS = ("annotator", "expert", "auto")
ORIGINS = ("annotator", "expert", "auto", "label_studio")

_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE events (id INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL,
    round INTEGER, at REAL NOT NULL, payload TEXT NOT NULL);
CREATE TABLE items (seq INTEGER PRIMARY KEY AUTOINCREMENT, item_id TEXT NOT NULL UNIQUE,
    source TEXT NOT NULL, round INTEGER NOT NULL, tier TEXT NOT NULL, reason TEXT NOT NULL,
    score REAL, prediction TEXT, confidence REAL, control INTEGER NOT NULL,
    data TEXT NOT NULL, status TEXT NOT NULL, event INTEGER NOT NULL);
CREATE TABLE labels (id INTEGER PRIMARY KEY AUTOINCREMENT, item_id TEXT NOT NULL,
    annotator TEXT NOT NULL, value TEXT NOT NULL, at REAL NOT NULL, origin TEXT NOT NULL,
    ambiguous INTEGER NOT NULL, event INTEGER NOT NULL, UNIQUE(item_id, annotator));
CREATE TABLE state (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE INDEX items_status ON items(status, seq);
CREATE INDEX labels_item ON labels(item_id);
"""
_TABLES = {"meta", "events", "items", "labels", "state"}
_ITEM_COLUMNS = ("item_id", "source", "round", "tier", "reason", "score", "prediction",
                 "confidence", "control", "data")


class LedgerError(AlcoreError):
    """The ledger file cannot be used (corrupt, another application's, a newer schema,
    locked by another process past the timeout) or a write would break its rules (an
    unknown item, an item queued twice). Nothing was written."""


def _dumps(value: Any, what: str) -> str:
    try:
        return json.dumps(value, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError) as err:
        raise LedgerError(f"{what} must be JSON-serialisable (str, int, finite float, bool, "
                          f"None, lists and dicts of them): {err}") from None


def _finite_or_none(value: Any, what: str) -> float | None:
    if value is None:
        return None
    if (isinstance(value, bool | np.bool_ | str | bytes | complex | np.complexfloating)
            or np.ndim(value) != 0):
        # float("5"), float(True), float(1+2j) and float(np.array([3.0])) would store a
        # number nobody gave.
        raise LedgerError(f"{what} must be a number or None, got {value!r}")
    try:
        out = float(value)
    except (TypeError, ValueError, OverflowError):
        raise LedgerError(f"{what} must be a number or None, got {value!r}") from None
    if not math.isfinite(out):
        raise LedgerError(f"{what} must be finite or None, got {value!r}")
    return out


def _demotes(stored_origin: str, new_origin: str) -> bool:
    """Whether storing the same vote with ``new_origin`` would take it from the expert."""
    return stored_origin == "expert" and new_origin != "expert"


class Ledger:
    """An open ledger file (see the module docstring for its schema and the concurrency
    rule). Make one with :meth:`Ledger.open`; use it as a context manager or call
    :meth:`close`."""

    def __init__(self, connection: sqlite3.Connection, path: Path):
        # Not public: Ledger.open checks the file first.
        self._db = connection
        self.path = path
        # One connection shared by threads (alcore serve): a transaction holds the lock
        # from BEGIN to COMMIT, so another thread's write never lands inside it.
        self._lock = threading.RLock()

    # ----------------------------------------------------------------- opening
    @classmethod
    def open(cls, path: str | os.PathLike, *, create: bool = False,
             timeout: float = 10.0) -> Ledger:
        """Open a ledger, or create it (``create=True``, only where no file exists yet or
        the file is empty).

        Parameters
        ----------
        path : str or path-like
        create : bool
            Create the file when it does not exist.
        timeout : float
            Seconds a write waits for another process's write lock before raising
            :class:`LedgerError` ("busy").

        Raises
        ------
        LedgerError
            The file is missing (without ``create``), not SQLite, another application's
            SQLite file, corrupt, or of a newer schema. The file is left unchanged.
        """
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not (
                0 <= timeout < math.inf):
            raise LedgerError(f"timeout must be a finite number of seconds >= 0, got "
                              f"{timeout!r}; e.g. timeout=10")
        path = Path(path)
        exists = path.exists() and path.stat().st_size > 0
        if not exists and not create:
            raise LedgerError(f"no ledger at {path}; create one with Ledger.open(path, "
                              f"create=True) or `alcore workflow init {path}`")
        if exists:
            cls._check_header(path)
        elif not path.parent.is_dir():
            raise LedgerError(f"cannot create the ledger {path}: the folder {path.parent} "
                              f"does not exist; create it first or pass another path")
        try:
            db = sqlite3.connect(str(path), timeout=timeout, isolation_level=None,
                                 check_same_thread=False)
        except sqlite3.Error as err:
            raise LedgerError(f"cannot open the ledger {path}: {err}") from None
        try:
            if exists:
                cls._check_schema(db, path)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            db.execute("PRAGMA foreign_keys=ON")
            ledger = cls(db, path)
            if not exists:
                ledger._create()
        except LedgerError:
            db.close()
            raise
        except sqlite3.Error as err:
            db.close()
            raise LedgerError(cls._sqlite_message(path, err)) from None
        return ledger

    @staticmethod
    def _sqlite_message(path: Path, err: sqlite3.Error) -> str:
        text = str(err)
        if "locked" in text or "busy" in text:
            return (f"the ledger {path} is busy: another process holds its write lock "
                    f"({text}); retry, or raise timeout=")
        return (f"{path} is not a usable alcore ledger ({text}); it may be corrupt or "
                f"another program's file: pass a new path to create a ledger")

    @staticmethod
    def _check_header(path: Path) -> None:
        """Refuse a non-SQLite file before SQLite touches it (SQLite would happily
        'open' it and fail later; here nothing at all is written)."""
        try:
            with open(path, "rb") as f:
                head = f.read(16)
        except OSError as err:
            raise LedgerError(f"cannot read the ledger {path}: {err}") from None
        if head != b"SQLite format 3\x00":
            raise LedgerError(f"{path} is not an alcore ledger (not a SQLite file); pass "
                              f"the path of a ledger, or a new path to create one")

    @staticmethod
    def _check_schema(db: sqlite3.Connection, path: Path) -> None:
        # Read-only checks: nothing is written to a file that fails them (journal_mode
        # is only switched to WAL afterwards).
        try:
            db.execute("PRAGMA query_only=ON")
            tables = {r[0] for r in db.execute(
                "SELECT name FROM sqlite_master WHERE type='table'")}
            if "meta" not in tables:
                raise LedgerError(f"{path} is a SQLite file of another application (no "
                                  f"alcore meta table); pass a new path to create a ledger")
            meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
            if meta.get("app") != APP:
                raise LedgerError(f"{path} is a SQLite file of another application "
                                  f"(meta app={meta.get('app')!r}, expected {APP!r}); pass "
                                  f"a new path to create a ledger")
            try:
                version = int(meta.get("schema_version", ""))
            except ValueError:
                raise LedgerError(f"{path}: corrupt ledger (schema_version "
                                  f"{meta.get('schema_version')!r})") from None
            if version > SCHEMA_VERSION:
                raise LedgerError(f"{path} has ledger schema version {version}, newer than "
                                  f"this alcore's {SCHEMA_VERSION}; upgrade alcore to open it")
            if version < 1 or not _TABLES <= tables:
                raise LedgerError(f"{path}: corrupt ledger (schema version {version}, "
                                  f"tables {sorted(tables)})")
            check = db.execute("PRAGMA quick_check").fetchone()[0]
            if check != "ok":
                raise LedgerError(f"{path}: corrupt ledger (integrity check: {check}); "
                                  f"restore it from a backup")
        except sqlite3.DatabaseError as err:
            raise LedgerError(Ledger._sqlite_message(path, err)) from None
        finally:
            try:
                db.execute("PRAGMA query_only=OFF")
            except sqlite3.Error:
                pass

    def _create(self) -> None:
        with self._write() as db:
            tables = {r[0] for r in db.execute(
                "SELECT name FROM sqlite_master WHERE type='table'")}
            if tables:  # another process created it between our check and now
                return
            for statement in _SCHEMA.strip().split(";"):
                if statement.strip():
                    db.execute(statement)
            db.executemany("INSERT INTO meta VALUES (?, ?)", [
                ("app", APP), ("schema_version", str(SCHEMA_VERSION)),
                ("created_at", repr(time.time()))])

    def close(self) -> None:
        """Close the connection (committed events are already on disk)."""
        with self._lock:
            self._db.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # ----------------------------------------------------------------- transactions
    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction (BEGIN IMMEDIATE: the write lock is taken up front, so a
        busy ledger fails before anything is computed inside)."""
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as err:
                raise LedgerError(self._sqlite_message(self.path, err)) from None
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            try:
                self._db.execute("COMMIT")
            except sqlite3.Error as err:
                self._db.execute("ROLLBACK")
                raise LedgerError(self._sqlite_message(self.path, err)) from None

    @contextmanager
    def transaction(self) -> Iterator[Ledger]:
        """Group several writes into one transaction (used by the workflow for a
        selection and its queued items); writes inside do not open their own."""
        with self._write():
            self._nested = True
            try:
                yield self
            finally:
                self._nested = False

    _nested = False

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:  # before reading _nested: only the owner of a transaction nests
            if self._nested:
                yield self._db
            else:
                with self._write() as db:
                    yield db

    def _rows(self, sql: str, params: tuple = ()) -> list[tuple]:
        with self._lock:
            return self._db.execute(sql, params).fetchall()

    def _event(self, db: sqlite3.Connection, kind: str, payload: Any,
               round: int | None) -> int:
        if not isinstance(kind, str) or not kind:
            raise LedgerError(f"event kind must be a non-empty str, got {kind!r}")
        text = _dumps(payload, f"the payload of event {kind!r}")
        cur = db.execute("INSERT INTO events (kind, round, at, payload) VALUES (?, ?, ?, ?)",
                         (kind, round, time.time(), text))
        return int(cur.lastrowid)

    # ----------------------------------------------------------------- events and state
    def event(self, kind: str, payload: dict, *, round: int | None = None) -> int:
        """Append one event (one transaction); returns its id."""
        with self._tx() as db:
            return self._event(db, kind, payload, round)

    def events(self, kind: str | None = None) -> list[dict]:
        """Events in order, as ``{"id", "kind", "round", "at", "payload"}`` dicts."""
        sql = "SELECT id, kind, round, at, payload FROM events"
        rows = (self._rows(sql + " WHERE kind=? ORDER BY id", (kind,)) if kind
                else self._rows(sql + " ORDER BY id"))
        return [{"id": i, "kind": k, "round": r, "at": a, "payload": json.loads(p)}
                for i, k, r, a, p in rows]

    def last_event(self, kind: str) -> dict | None:
        rows = self._rows("SELECT id, kind, round, at, payload FROM events WHERE kind=?"
                          " ORDER BY id DESC LIMIT 1", (kind,))
        if not rows:
            return None
        i, k, r, a, p = rows[0]
        return {"id": i, "kind": k, "round": r, "at": a, "payload": json.loads(p)}

    def state(self, key: str, default: Any = None) -> Any:
        """The JSON value stored under ``key``, or ``default``."""
        rows = self._rows("SELECT value FROM state WHERE key=?", (key,))
        return default if not rows else json.loads(rows[0][0])

    def set_state(self, key: str, value: Any, *, log: bool = True) -> None:
        """Store a JSON value under ``key`` (one transaction, logged as a ``state``
        event unless ``log=False``)."""
        text = _dumps(value, f"state {key!r}")
        with self._tx() as db:
            db.execute("INSERT INTO state VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET "
                       "value=excluded.value", (key, text))
            if log:
                self._event(db, "state", {"key": key, "value": value}, None)

    # ----------------------------------------------------------------- items
    @staticmethod
    def _item_row(record: dict, round_: int | None) -> tuple:
        if not isinstance(record, dict):
            raise LedgerError(f"an item record must be a dict, got {type(record).__name__}")
        missing = {"item_id", "source", "reason"} - set(record)
        if missing:
            raise LedgerError(f"item record {record!r} lacks {sorted(missing)}")
        item_id = record["item_id"]
        if not isinstance(item_id, str) or not item_id:
            raise LedgerError(f"item_id must be a non-empty str, got {item_id!r}")
        source = record["source"]
        if source not in SOURCES:
            raise LedgerError(f"item {item_id!r}: source must be one of {SOURCES}, got "
                              f"{source!r}")
        tier = record.get("tier", "annotator")
        if tier not in TIERS:
            raise LedgerError(f"item {item_id!r}: tier must be one of {TIERS}, got {tier!r}")
        r = record.get("round", round_)
        prediction = record.get("prediction")
        data = record.get("data") or {}
        if not isinstance(data, dict):
            raise LedgerError(f"item {item_id!r}: data must be a dict, got "
                              f"{type(data).__name__}")
        return (item_id, source, int(r if r is not None else 0), tier, str(record["reason"]),
                _finite_or_none(record.get("score"), f"item {item_id!r} score"),
                None if prediction is None else str(prediction),
                _finite_or_none(record.get("confidence"), f"item {item_id!r} confidence"),
                int(bool(record.get("control", source == "control"))),
                _dumps(data, f"item {item_id!r} data"))

    def queue(self, records: Iterable[dict], *, round: int | None = None,
              selection: dict | None = None, status: str = "queued") -> int:
        """Queue item records (one transaction with a ``queued`` event, or with the
        ``selection`` event payload given); returns the event id. An item already in the
        ledger fails the whole call with :class:`LedgerError`."""
        rows = [self._item_row(r, round) for r in records]
        ids = [r[0] for r in rows]
        if len(set(ids)) != len(ids):
            raise LedgerError("the same item_id appears twice in one batch")
        payload = dict(selection or {})
        payload.setdefault("items", ids)
        with self._tx() as db:
            taken = self._known(db, ids)
            if taken:
                raise LedgerError(f"item {taken[0]!r} is already in the ledger (queued or "
                                  f"labeled); an item is never queued twice")
            event = self._event(db, "selection" if selection is not None else "queued",
                                payload, round)
            db.executemany(
                "INSERT INTO items (item_id, source, round, tier, reason, score, prediction,"
                " confidence, control, data, status, event) VALUES "
                "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", [(*r, status, event) for r in rows])
        return event

    @staticmethod
    def _known(db: sqlite3.Connection, ids: list[str]) -> list[str]:
        found: list[str] = []
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            marks = ",".join("?" * len(chunk))
            found += [r[0] for r in db.execute(
                f"SELECT item_id FROM items WHERE item_id IN ({marks})", chunk)]
        return found

    @staticmethod
    def _record(row: tuple) -> dict:
        (item_id, source, round_, tier, reason, score, prediction, confidence, control,
         data, status) = row
        return {"item_id": item_id, "source": source, "round": round_, "tier": tier,
                "reason": reason, "score": score, "prediction": prediction,
                "confidence": confidence, "control": bool(control), "data": json.loads(data),
                "status": status}

    _SELECT_ITEMS = ("SELECT item_id, source, round, tier, reason, score, prediction, "
                     "confidence, control, data, status FROM items")

    def queued(self) -> list[dict]:
        """Item records queued and not yet labeled, in queue order."""
        return [self._record(r) for r in self._rows(
            self._SELECT_ITEMS + " WHERE status='queued' ORDER BY seq")]

    def items(self) -> list[dict]:
        """Every item record ever queued, in queue order (with its ``status``)."""
        return [self._record(r) for r in self._rows(self._SELECT_ITEMS + " ORDER BY seq")]

    def item(self, item_id: str) -> dict | None:
        """The item's record, or None when it was never queued."""
        rows = self._rows(self._SELECT_ITEMS + " WHERE item_id=?", (str(item_id),))
        return None if not rows else self._record(rows[0])

    def item_ids(self) -> set[str]:
        """Ids of every item in the ledger (queued or labeled)."""
        return {r[0] for r in self._rows("SELECT item_id FROM items")}

    def route(self, item_ids: Iterable[str], tier: str, reason: str) -> int:
        """Move items to ``tier`` and (re)queue them there, e.g. disagreements to the
        expert tier (one transaction with a ``route`` event); returns the event id."""
        if tier not in TIERS:
            raise LedgerError(f"tier must be one of {TIERS}, got {tier!r}")
        ids = [str(i) for i in item_ids]
        with self._tx() as db:
            known = set(self._known(db, ids))
            unknown = [i for i in ids if i not in known]
            if unknown:
                raise LedgerError(f"cannot route item {unknown[0]!r}: it was never queued")
            event = self._event(db, "route", {"items": ids, "tier": tier,
                                              "reason": str(reason)}, None)
            db.executemany("UPDATE items SET tier=?, status='queued' WHERE item_id=?",
                           [(tier, i) for i in ids])
        return event

    # ----------------------------------------------------------------- labels
    @staticmethod
    def _label_row(label: dict) -> tuple:
        if not isinstance(label, dict):
            raise LedgerError(f"a label record must be a dict, got {type(label).__name__}")
        missing = {"item_id", "value"} - set(label)
        if missing:
            raise LedgerError(f"label record {label!r} lacks {sorted(missing)}")
        item_id = str(label["item_id"])
        origin = label.get("origin", "annotator")
        if origin not in ORIGINS:
            raise LedgerError(f"label of item {item_id!r}: origin must be one of {ORIGINS}, "
                              f"got {origin!r}")
        # None (no time given) is resolved against the stored label in add_labels.
        at = _finite_or_none(label.get("at"), f"label of {item_id!r} at")
        value = label["value"]
        if value is None:
            raise LedgerError(f"label of item {item_id!r}: value is None; pass the label "
                              f"as text")
        ambiguous = label.get("ambiguous", False)
        if not isinstance(ambiguous, bool | np.bool_):
            # A truthy "no" or "false" would drop the vote from training unnoticed.
            raise LedgerError(f"label of item {item_id!r}: ambiguous must be True or False, "
                              f"got {ambiguous!r}")
        return (item_id, str(label.get("annotator", "annotator")), str(value), at, origin,
                int(bool(ambiguous)))

    def add_labels(self, labels: Iterable[dict]) -> int:
        """Store label records (one transaction, one ``label`` event per label kept).

        Rules, so that a webhook, an export imported twice and a late retry agree:

        * a label for an item never queued is refused;
        * the same (item, annotator) twice in one submission with different values is
          refused (which one the annotator meant is unknowable); with the same value it is
          one label, at the later time;
        * against the stored label of that (item, annotator): a later ``at`` replaces it;
          the same ``at`` and value is the same label again and changes nothing (no
          event), unless its origin or ambiguity changed, which replaces it; the same
          ``at`` with another value is a conflict and is refused; an earlier ``at`` (a late
          delivery) does not replace the newer label, and is kept in the event log only,
          as a ``stale_label`` event, once;
        * a label without ``at`` is the same label again when its value, origin and
          ambiguity are the stored ones, else the newest answer (after the stored time);
        * an expert's vote is never replaced by the same vote from another origin.

        A refusal stores nothing. Returns the labels stored (new or replacing one).
        """
        if isinstance(labels, str | bytes | Mapping) or not isinstance(labels, Iterable):
            raise LedgerError(f"labels must be a list of label records (dicts), got "
                              f"{type(labels).__name__}")
        rows = self._unique_label_rows([self._label_row(x) for x in labels])
        if not rows:
            return 0
        with self._tx() as db:
            ids = list(dict.fromkeys(r[0] for r in rows))
            known = set(self._known(db, ids))
            unknown = [i for i in ids if i not in known]
            if unknown:
                raise LedgerError(f"label for unknown item {unknown[0]!r}: it was never "
                                  f"queued in {self.path}; queue it first (next_batch) or "
                                  f"check the item id")
            stored_now = self._stored_labels(db, ids)
            kept: list[tuple[tuple, bool]] = []  # (row, stale)
            now = time.time()
            logged_stale: set[tuple] | None = None  # read once, if a late label comes
            for row in rows:
                item_id, annotator, value, at = row[:4]
                before = stored_now.get((item_id, annotator))
                if at is None:
                    # No time given: the same vote as stored is a repeat (an expert's
                    # vote repeated by another path included); another is the newest
                    # answer, after the stored one even if its clock ran ahead.
                    if before is not None and value == before[0] and (
                            row[4:] == before[2:] or _demotes(before[2], row[4])):
                        continue
                    at = now if before is None else max(now, math.nextafter(before[1],
                                                                             math.inf))
                    if not math.isfinite(at):
                        raise LedgerError(f"label of item {item_id!r} by annotator "
                                          f"{annotator!r}: the stored label's time "
                                          f"{before[1]!r} leaves no later time; give at=")
                    row = (*row[:3], at, *row[4:])
                if before is None or at > before[1]:
                    kept.append((row, False))
                elif at < before[1]:
                    if logged_stale is None:
                        logged_stale = self._logged_stale(db, set(ids))
                    if tuple(row[:4]) not in logged_stale:
                        logged_stale.add(tuple(row[:4]))
                        kept.append((row, True))
                elif value != before[0]:
                    raise LedgerError(
                        f"label of item {item_id!r} by annotator {annotator!r} at {at!r} "
                        f"conflicts with the stored label {before[0]!r} at the same time "
                        f"(now {value!r}); a changed label needs a later time. Nothing was "
                        f"stored")
                elif row[4:] != before[2:] and not _demotes(before[2], row[4]):
                    # The same vote, now known better (the CLI import marks a vote cast
                    # after the item went to the expert as the expert's; a webhook could
                    # not): replace it. An expert's vote is never demoted by a replay.
                    kept.append((row, False))
            for row, stale in kept:
                item_id, annotator, value, at, origin, ambiguous = row
                payload = {"item_id": item_id, "annotator": annotator, "value": value,
                           "at": at, "origin": origin, "ambiguous": bool(ambiguous)}
                event = self._event(db, "stale_label" if stale else "label", payload,
                                    None)
                if stale:
                    continue
                db.execute(
                    "INSERT INTO labels (item_id, annotator, value, at, origin, ambiguous, "
                    "event) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(item_id, annotator) DO "
                    "UPDATE SET value=excluded.value, at=excluded.at, origin=excluded.origin,"
                    " ambiguous=excluded.ambiguous, event=excluded.event",
                    (item_id, annotator, value, at, origin, ambiguous, event))
            fresh = list(dict.fromkeys(row[0] for row, stale in kept if not stale))
            db.executemany("UPDATE items SET status='labeled' WHERE item_id=?",
                           [(i,) for i in fresh])
        return sum(not stale for _, stale in kept)

    @staticmethod
    def _unique_label_rows(rows: list[tuple]) -> list[tuple]:
        """One row per (item, annotator) of a submission: the same value twice is one label
        (at its later time); two values are refused before anything is written."""
        def when(row: tuple) -> float:
            return math.inf if row[3] is None else row[3]  # no time given: the newest

        by_key: dict[tuple[str, str], tuple] = {}
        for row in rows:
            key = (row[0], row[1])
            seen = by_key.get(key)
            if seen is None:
                by_key[key] = row
            elif seen[2] != row[2]:
                raise LedgerError(
                    f"item {row[0]!r} has two labels by annotator {row[1]!r} in one "
                    f"submission ({seen[2]!r} and {row[2]!r}); send one label per item and "
                    f"annotator. Nothing was stored")
            elif when(row) >= when(seen):  # a tie: the later record, as the export reader
                by_key[key] = row
        return list(by_key.values())

    @staticmethod
    def _logged_stale(db: sqlite3.Connection, ids: set[str]) -> set[tuple]:
        """(item, annotator, value, at) of the late labels already logged for these items:
        a replayed webhook or an old export imported again is logged once. One scan of
        the log per submission, and only when a late label arrives."""
        out = set()
        for (text,) in db.execute("SELECT payload FROM events WHERE kind='stale_label'"):
            p = json.loads(text)
            if p.get("item_id") in ids:
                out.add((p["item_id"], p["annotator"], p["value"], p["at"]))
        return out

    @staticmethod
    def _stored_labels(db: sqlite3.Connection,
                       ids: list[str]) -> dict[tuple[str, str], tuple]:
        """{(item, annotator): (value, at, origin, ambiguous)} of the stored labels."""
        out: dict[tuple[str, str], tuple] = {}
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            marks = ",".join("?" * len(chunk))
            for item_id, annotator, *stored in db.execute(
                    f"SELECT item_id, annotator, value, at, origin, ambiguous FROM labels "
                    f"WHERE item_id IN ({marks})", chunk):
                out[(item_id, annotator)] = tuple(stored)
        return out

    def labels(self, item_id: str | None = None) -> list[dict]:
        """Current label records (of one item, or all), in the order they were stored."""
        sql = "SELECT item_id, annotator, value, at, origin, ambiguous FROM labels"
        rows = (self._rows(sql + " WHERE item_id=? ORDER BY event", (str(item_id),))
                if item_id is not None else self._rows(sql + " ORDER BY event"))
        return [{"item_id": i, "annotator": a, "value": v, "at": t, "origin": o,
                 "ambiguous": bool(b)} for i, a, v, t, o, b in rows]

    def label_generation(self) -> int:
        """A number that grows whenever a label is stored or replaced, and only then: the
        event id of the newest stored label (0 before any). ``alcore serve`` derives its
        model version from it, since the model is retrained after every stored label."""
        return int(self._rows("SELECT COALESCE(MAX(event), 0) FROM labels")[0][0])

    def integrity(self) -> str:
        """SQLite's ``PRAGMA integrity_check`` ("ok" for a sound file)."""
        return str(self._rows("PRAGMA integrity_check")[0][0])


__all__ = ["SCHEMA_VERSION", "Ledger", "LedgerError"]
