"""The workflow ledger: round trips, refusals that write nothing, two processes."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from alcore.workflow import Ledger, LedgerError
from alcore.workflow._ledger import SCHEMA_VERSION


def record(item_id: str, **extra) -> dict:
    base = {"item_id": item_id, "source": "pool", "round": 1, "tier": "annotator",
            "reason": f"why {item_id}", "score": 0.5, "prediction": "a", "confidence": 0.9,
            "control": False, "data": {"text": f"item {item_id}"}}
    base.update(extra)
    return base


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_round_trip(tmp_path):
    path = tmp_path / "l.db"
    with Ledger.open(path, create=True) as db:
        db.queue([record("1"), record("2", control=True, source="control", score=None)],
                 round=1, selection={"k": 2})
        db.add_labels([{"item_id": "1", "annotator": "ann", "value": "b", "at": 10.0}])
        db.set_state("gate", {"x": [1, 2.5, None]})
        db.event("audit", {"psi": 0.1}, round=1)
    with Ledger.open(path) as db:
        assert [x["item_id"] for x in db.queued()] == ["2"]
        item = db.item("1")
        assert item["reason"] == "why 1" and item["data"] == {"text": "item 1"}
        assert item["prediction"] == "a" and item["confidence"] == 0.9
        assert db.item("2")["control"] is True and db.item("2")["score"] is None
        assert db.item("nope") is None
        assert db.labels() == [{"item_id": "1", "annotator": "ann", "value": "b", "at": 10.0,
                                "origin": "annotator", "ambiguous": False}]
        assert db.state("gate") == {"x": [1, 2.5, None]}
        assert db.state("missing", 7) == 7
        kinds = [e["kind"] for e in db.events()]
        assert kinds == ["selection", "label", "state", "audit"]
        assert db.events("selection")[0]["payload"] == {"k": 2, "items": ["1", "2"]}
        assert db.integrity() == "ok"
    with sqlite3.connect(path) as raw:
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        meta = dict(raw.execute("SELECT key, value FROM meta"))
        assert meta["app"] == "alcore-ledger" and meta["schema_version"] == str(SCHEMA_VERSION)
        # JSON text only: every payload parses as JSON
        for (payload,) in raw.execute("SELECT payload FROM events"):
            json.loads(payload)


def test_same_annotator_twice_keeps_latest_and_logs_both(tmp_path):
    with Ledger.open(tmp_path / "l.db", create=True) as db:
        db.queue([record("1")])
        db.add_labels([{"item_id": "1", "annotator": "a", "value": "x"}])
        db.add_labels([{"item_id": "1", "annotator": "a", "value": "y"},
                       {"item_id": "1", "annotator": "b", "value": "x"}])
        assert [(x["annotator"], x["value"]) for x in db.labels("1")] == [("a", "y"),
                                                                          ("b", "x")]
        assert [e["payload"]["value"] for e in db.events("label")] == ["x", "y", "x"]


def test_two_values_from_one_annotator_in_one_submission_are_refused(tmp_path):
    with Ledger.open(tmp_path / "l.db", create=True) as db:
        db.queue([record("1"), record("2")])
        before = len(db.events())
        with pytest.raises(LedgerError, match=r"item '1' has two labels by annotator 'a' in "
                                              r"one submission \('x' and 'y'\); send one "
                                              r"label per item and annotator\. Nothing was "
                                              r"stored"):
            db.add_labels([{"item_id": "2", "annotator": "a", "value": "x"},
                           {"item_id": "1", "annotator": "a", "value": "x", "at": 5.0},
                           {"item_id": "1", "annotator": "a", "value": "y", "at": 6.0}])
        assert db.labels() == [] and len(db.events()) == before
        assert [x["item_id"] for x in db.queued()] == ["1", "2"]
        # The same value twice is one label, at the later of its times.
        assert db.add_labels([{"item_id": "1", "annotator": "a", "value": "x", "at": 6.0},
                              {"item_id": "1", "annotator": "a", "value": "x", "at": 5.0}]) == 1
        assert [(x["value"], x["at"]) for x in db.labels("1")] == [("x", 6.0)]
        assert len(db.events("label")) == 1


def test_the_same_label_again_changes_nothing(tmp_path):
    with Ledger.open(tmp_path / "l.db", create=True) as db:
        db.queue([record("1")])
        label = {"item_id": "1", "annotator": "a", "value": "x", "at": 10.0}
        assert db.add_labels([label]) == 1
        events = db.events()
        assert db.add_labels([dict(label)]) == 0
        assert db.events() == events
        # The same vote, known better (an import finds it was cast for the expert): replaced.
        assert db.add_labels([{**label, "origin": "expert"}]) == 1
        assert [x["origin"] for x in db.labels("1")] == ["expert"]


def test_same_time_other_value_is_a_conflict(tmp_path):
    with Ledger.open(tmp_path / "l.db", create=True) as db:
        db.queue([record("1"), record("2")])
        db.add_labels([{"item_id": "1", "annotator": "a", "value": "x", "at": 10.0}])
        events = db.events()
        with pytest.raises(LedgerError, match=r"label of item '1' by annotator 'a' at 10\.0 "
                                              r"conflicts with the stored label 'x' at the "
                                              r"same time \(now 'y'\); a changed label needs "
                                              r"a later time\. Nothing was stored"):
            db.add_labels([{"item_id": "2", "annotator": "a", "value": "x", "at": 10.0},
                           {"item_id": "1", "annotator": "a", "value": "y", "at": 10.0}])
        assert db.events() == events
        assert [(x["item_id"], x["value"]) for x in db.labels()] == [("1", "x")]
        assert [x["item_id"] for x in db.queued()] == ["2"]


def test_a_late_older_label_does_not_replace_the_newer(tmp_path):
    with Ledger.open(tmp_path / "l.db", create=True) as db:
        db.queue([record("1"), record("2")])
        db.add_labels([{"item_id": "1", "annotator": "a", "value": "new", "at": 20.0}])
        db.route(["1"], "expert", "disagreement")
        generation = db.label_generation()
        # Delivered late: an earlier label of the same annotator. The newer one stays, the
        # old one is logged as stale, and the item stays in the expert's queue.
        assert db.add_labels([{"item_id": "1", "annotator": "a", "value": "old",
                               "at": 10.0}]) == 0
        assert [(x["value"], x["at"]) for x in db.labels("1")] == [("new", 20.0)]
        assert [e["payload"]["value"] for e in db.events("label")] == ["new"]
        assert [e["payload"]["value"] for e in db.events("stale_label")] == ["old"]
        assert [x["item_id"] for x in db.queued()] == ["1", "2"]
        assert db.label_generation() == generation
        # A later label does replace it.
        assert db.add_labels([{"item_id": "1", "annotator": "a", "value": "newer",
                               "at": 30.0}]) == 1
        assert [x["value"] for x in db.labels("1")] == ["newer"]
        assert db.label_generation() > generation


def test_refusals_write_nothing(tmp_path):
    path = tmp_path / "l.db"
    with Ledger.open(path, create=True) as db:
        db.queue([record("1")])
        before = len(db.events())
        with pytest.raises(LedgerError, match="unknown item '9'"):
            db.add_labels([{"item_id": "1", "value": "a"}, {"item_id": "9", "value": "b"}])
        with pytest.raises(LedgerError, match="'1' is already in the ledger"):
            db.queue([record("2"), record("1")])
        with pytest.raises(LedgerError, match="twice in one batch"):
            db.queue([record("3"), record("3")])
        with pytest.raises(LedgerError, match="JSON-serialisable"):
            db.event("x", {"bad": object()})
        with pytest.raises(LedgerError, match="source must be one of"):
            db.queue([record("4", source="web")])
        with pytest.raises(LedgerError, match="never queued"):
            db.route(["5"], "expert", "disagreement")
        assert len(db.events()) == before
        assert db.labels() == [] and db.item("2") is None


def test_route_requeues_for_expert(tmp_path):
    with Ledger.open(tmp_path / "l.db", create=True) as db:
        db.queue([record("1"), record("2")])
        db.add_labels([{"item_id": "1", "annotator": "a", "value": "x"},
                       {"item_id": "1", "annotator": "b", "value": "y"}])
        assert [x["item_id"] for x in db.queued()] == ["2"]
        db.route(["1"], "expert", "annotators disagree")
        assert [(x["item_id"], x["tier"]) for x in db.queued()] == [("1", "expert"),
                                                                   ("2", "annotator")]
        db.add_labels([{"item_id": "1", "annotator": "boss", "value": "x",
                        "origin": "expert"}])
        assert [x["item_id"] for x in db.queued()] == ["2"]


def test_missing_folder_is_named(tmp_path):
    with pytest.raises(LedgerError, match=r"the folder .*nope does not exist"):
        Ledger.open(tmp_path / "nope" / "l.db", create=True)


def test_missing_file_needs_create(tmp_path):
    with pytest.raises(LedgerError, match=r"no ledger at .*create=True"):
        Ledger.open(tmp_path / "none.db")
    assert not (tmp_path / "none.db").exists()


@pytest.mark.parametrize("kind", ["random", "text", "foreign", "truncated"])
def test_corrupt_or_foreign_file_is_refused_unchanged(tmp_path, kind):
    path = tmp_path / "l.db"
    if kind == "random":
        path.write_bytes(os.urandom(4096))
        match = "not a SQLite file"
    elif kind == "text":
        path.write_text("id,probs\n1,0.5\n")
        match = "not a SQLite file"
    elif kind == "foreign":
        with sqlite3.connect(path) as raw:
            raw.execute("CREATE TABLE customers (id INTEGER, name TEXT)")
            raw.execute("INSERT INTO customers VALUES (1, 'x')")
        match = "another application"
    else:
        with Ledger.open(path, create=True) as db:
            db.queue([record(str(i)) for i in range(200)])
        data = path.read_bytes()
        path.write_bytes(data[:100] + os.urandom(len(data) - 100))
        match = "corrupt|not a usable"
    before = digest(path)
    names = sorted(os.listdir(tmp_path))
    with pytest.raises(LedgerError, match=match):
        Ledger.open(path, create=True)
    assert digest(path) == before
    assert sorted(p for p in os.listdir(tmp_path) if not p.endswith(("-wal", "-shm"))) == \
        [n for n in names if not n.endswith(("-wal", "-shm"))]


def test_newer_schema_is_refused_unchanged(tmp_path):
    path = tmp_path / "l.db"
    with Ledger.open(path, create=True):
        pass
    with sqlite3.connect(path) as raw:
        raw.execute("UPDATE meta SET value='99' WHERE key='schema_version'")
    raw.close()
    before = digest(path)
    with pytest.raises(LedgerError, match=r"schema version 99, newer than .* upgrade alcore"):
        Ledger.open(path)
    assert digest(path) == before


_HOLD = textwrap.dedent("""
    import sys, time
    from alcore.workflow import Ledger
    db = Ledger.open(sys.argv[1])
    with db.transaction():
        db.event("holder", {"pid": 1})
        print("locked", flush=True)
        time.sleep(float(sys.argv[2]))
    print("released", flush=True)
""")


def _holder(path: Path, seconds: float) -> subprocess.Popen:
    # The installed alcore, from outside the checkout (in CI's non-editable install the
    # source folder, without the compiled core, would shadow it).
    proc = subprocess.Popen([sys.executable, "-c", _HOLD, str(path), str(seconds)],
                            stdout=subprocess.PIPE, text=True, cwd=os.sep)
    assert proc.stdout.readline().strip() == "locked"
    return proc


def test_second_writer_waits_then_busy(tmp_path):
    """The documented rule: a second writer waits for the lock up to ``timeout`` and then
    raises LedgerError 'busy' having written nothing; readers are never blocked."""
    path = tmp_path / "l.db"
    with Ledger.open(path, create=True) as db:
        db.queue([record("1")])
    proc = _holder(path, 3.0)
    try:
        with Ledger.open(path, timeout=0.2) as db:
            assert [x["item_id"] for x in db.queued()] == ["1"]  # reads proceed
            t0 = time.perf_counter()
            with pytest.raises(LedgerError, match=r"busy.*retry, or raise timeout="):
                db.add_labels([{"item_id": "1", "value": "a"}])
            assert time.perf_counter() - t0 >= 0.15
            assert db.labels() == []
    finally:
        proc.wait(timeout=20)
    # A writer with a longer timeout waits for the holder and then succeeds.
    proc = _holder(path, 0.5)
    try:
        with Ledger.open(path, timeout=15) as db:
            assert db.add_labels([{"item_id": "1", "value": "a"}]) == 1
    finally:
        proc.wait(timeout=20)
    with Ledger.open(path) as db:
        assert db.integrity() == "ok"
        assert [e["kind"] for e in db.events()].count("holder") == 2


_WRITER = textwrap.dedent("""
    import sys
    from alcore.workflow import Ledger
    db = Ledger.open(sys.argv[1], timeout=30)
    me = sys.argv[2]
    for i in range(40):
        db.queue([{"item_id": f"{me}-{i}", "source": "pool", "reason": "w"}])
        db.add_labels([{"item_id": f"{me}-{i}", "annotator": me, "value": str(i)}])
""")


def test_two_processes_writing_never_corrupt(tmp_path):
    path = tmp_path / "l.db"
    Ledger.open(path, create=True).close()
    procs = [subprocess.Popen([sys.executable, "-c", _WRITER, str(path), name], cwd=os.sep)
             for name in ("a", "b")]
    assert [p.wait(timeout=60) for p in procs] == [0, 0]
    with Ledger.open(path) as db:
        assert db.integrity() == "ok"
        assert len(db.items()) == 80 and len(db.labels()) == 80 and db.queued() == []


def test_bad_records_and_timeout_refused(tmp_path):
    with pytest.raises(LedgerError, match="timeout must be a finite number of seconds"):
        Ledger.open(tmp_path / "l.db", create=True, timeout=-1)
    assert not (tmp_path / "l.db").exists()
    with Ledger.open(tmp_path / "l.db", create=True) as db:
        db.queue([record("1")])
        with pytest.raises(LedgerError, match="value is None; pass the label as text"):
            db.add_labels([{"item_id": "1", "value": None}])
        with pytest.raises(LedgerError, match="origin must be one of"):
            db.add_labels([{"item_id": "1", "value": "a", "origin": "robot"}])
        with pytest.raises(LedgerError, match="score must be finite or None"):
            db.queue([record("2", score=float("nan"))])
        with pytest.raises(LedgerError, match="a label record must be a dict"):
            db.add_labels(["1"])
        assert db.labels() == [] and db.item("2") is None


def test_threads_share_one_ledger(tmp_path):
    """alcore serve answers from several threads over one Ledger: a transaction holds the
    connection, so threads never write inside each other's transactions."""
    import threading

    errors = []
    with Ledger.open(tmp_path / "l.db", create=True) as db:
        def work(name):
            try:
                for i in range(30):
                    with db.transaction():
                        db.queue([record(f"{name}-{i}")])
                        db.event("note", {"who": name})
                    db.add_labels([{"item_id": f"{name}-{i}", "annotator": name,
                                    "value": "x"}])
                    db.queued()
            except Exception as err:  # reported below: a thread's failure fails the test
                errors.append(err)

        threads = [threading.Thread(target=work, args=(f"t{j}",)) for j in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        assert len(db.items()) == 120 and len(db.labels()) == 120 and db.queued() == []
        assert db.integrity() == "ok"


@pytest.mark.parametrize("at", [True, "5", b"5", np.bool_(False), 10**400, 1 + 2j,
                                np.array([3.0])])
def test_label_time_must_be_a_number(tmp_path, at):
    with Ledger.open(tmp_path / "l.db", create=True) as db:
        db.queue([record("1")])
        with pytest.raises(LedgerError, match=r"label of '1' at must be a number or None, "
                                              r"got "):
            db.add_labels([{"item_id": "1", "value": "a", "at": at}])
        assert db.labels() == []


@pytest.mark.parametrize("labels", [5, "1", {"item_id": "1", "value": "a"}])
def test_labels_must_be_a_list_of_records(tmp_path, labels):
    with Ledger.open(tmp_path / "l.db", create=True) as db:
        db.queue([record("1")])
        with pytest.raises(LedgerError, match=r"^labels must be a list of label records "
                                              r"\(dicts\), got "):
            db.add_labels(labels)


def test_untimed_repeat_is_nothing_and_untimed_change_is_newest(tmp_path):
    with Ledger.open(tmp_path / "l.db", create=True) as db:
        db.queue([record("1")])
        assert db.add_labels([{"item_id": "1", "annotator": "a", "value": "x"}]) == 1
        events = db.events()
        assert db.add_labels([{"item_id": "1", "annotator": "a", "value": "x"}]) == 0
        assert db.events() == events
        # A stored time ahead of this clock (another machine's): an untimed change is
        # still the newest answer.
        db.add_labels([{"item_id": "1", "annotator": "b", "value": "x", "at": 4e9}])
        assert db.add_labels([{"item_id": "1", "annotator": "b", "value": "y"}]) == 1
        (b,) = [x for x in db.labels("1") if x["annotator"] == "b"]
        assert b["value"] == "y" and b["at"] > 4e9


def test_a_replay_never_demotes_the_experts_vote(tmp_path):
    with Ledger.open(tmp_path / "l.db", create=True) as db:
        db.queue([record("1")])
        vote = {"item_id": "1", "annotator": "7", "value": "x", "at": 10.0}
        db.add_labels([{**vote, "origin": "expert"}])
        events = db.events()
        assert db.add_labels([{**vote, "origin": "label_studio"}]) == 0
        untimed = {k: x for k, x in vote.items() if k != "at"}
        assert db.add_labels([{**untimed, "origin": "annotator"}]) == 0
        assert [x["origin"] for x in db.labels("1")] == ["expert"] and db.events() == events


def test_a_late_label_is_logged_once(tmp_path):
    with Ledger.open(tmp_path / "l.db", create=True) as db:
        db.queue([record("1")])
        db.add_labels([{"item_id": "1", "annotator": "a", "value": "new", "at": 20.0}])
        late = {"item_id": "1", "annotator": "a", "value": "old", "at": 10.0}
        for _ in range(3):  # a webhook retried, an old export imported again
            assert db.add_labels([dict(late)]) == 0
        assert len(db.events("stale_label")) == 1


def test_same_vote_twice_in_a_submission_keeps_the_later_record(tmp_path):
    with Ledger.open(tmp_path / "l.db", create=True) as db:
        db.queue([record("1")])
        vote = {"item_id": "1", "annotator": "a", "value": "x", "at": 10.0}
        assert db.add_labels([vote, {**vote, "ambiguous": True}]) == 1
        assert [x["ambiguous"] for x in db.labels("1")] == [True]
