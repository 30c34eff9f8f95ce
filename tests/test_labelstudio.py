"""Label Studio tasks and exports without a server: the task format, a recorded real export
(tests/data/labelstudio_export.json, from label-studio 1.23 through
tests/test_labelstudio_integration.py), malformed exports and the ledger import."""

from __future__ import annotations

import copy
import datetime as dt
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import alcore
import alcore.monitor
import alcore.workflow as wf
from alcore.workflow import LedgerError

RECORDED = Path(__file__).parent / "data" / "labelstudio_export.json"


def record(item_id="7", **kw):
    base = {"item_id": item_id, "source": "pool", "round": 2, "tier": "annotator",
            "reason": "margin 0.1, rank 1 of 9", "score": 0.9, "prediction": "cat",
            "confidence": 0.55, "control": False, "data": {"text": "hello"}}
    base.update(kw)
    return base


def recorded():
    return json.loads(RECORDED.read_text())


def make_export(plan, *, expand=False):
    """A Label Studio JSON export for plan = [(item, [(annotator id, choice or None)])],
    None meaning the annotator skipped the task."""
    tasks, aid = [], 0
    for t, (item, votes) in enumerate(plan):
        anns = []
        for k, (who, choice) in enumerate(votes):
            aid += 1
            anns.append({
                "id": aid, "was_cancelled": choice is None,
                "completed_by": {"id": who, "email": f"u{who}@x.org"} if expand else who,
                "result": [] if choice is None else [
                    {"from_name": "label", "to_name": "text", "type": "choices",
                     "value": {"choices": [choice]}}],
                "created_at": f"2024-05-01T12:{t % 60:02d}:{k % 60:02d}.000000Z"})
        tasks.append({"id": t + 1, "data": {"text": "x", "alcore_id": item},
                      "annotations": anns, "predictions": []})
    return tasks


# --------------------------------------------------------------------------- tasks out

def test_task_format():
    (task,) = wf.to_label_studio_tasks([record(score=np.float32(0.5))])
    assert task == {
        "data": {"text": "hello", "alcore_id": "7", "alcore_reason": "margin 0.1, rank 1 of 9",
                 "alcore_source": "pool", "alcore_score": 0.5, "alcore_tier": "annotator"},
        "predictions": [{"model_version": "alcore", "score": 0.55, "result": [
            {"from_name": "label", "to_name": "text", "type": "choices",
             "value": {"choices": ["cat"]}}]}]}
    assert type(task["data"]["alcore_score"]) is float
    json.dumps(task, allow_nan=False)


def test_task_options_and_missing_prediction():
    a, b, c = wf.to_label_studio_tasks(
        [record("1", prediction=None), record("2", confidence=None),
         record("3", data={})], from_name="cls", to_name="img", data_key="alcore_reason",
        model_version="m-3")
    assert "predictions" not in a
    assert b["predictions"] == [{"model_version": "m-3", "result": [
        {"from_name": "cls", "to_name": "img", "type": "choices",
         "value": {"choices": ["cat"]}}]}]
    assert c["data"]["alcore_id"] == "3" and "text" not in c["data"]
    assert wf.to_label_studio_tasks([]) == []
    assert wf.to_label_studio_tasks([record(data={})], data_key=None)[0]["data"]["alcore_id"]


@pytest.mark.parametrize(("records", "kw", "match"), [
    ({"item_id": "1"}, {}, r"records must be a list of queued item records .* got dict; "
                           r"wrap a single record in a list"),
    (["x"], {}, r"records\[0\] must be a dict \(a queued item record\), got str"),
    ([record(item_id=7)], {}, r"records\[0\] item_id must be a non-empty string, got 7"),
    ([record("1"), record("1")], {}, r"records\[1\] \(item '1'\) repeats the item_id of "
                                     r"records\[0\]"),
    ([record(data={"body": "x"})], {}, r"records\[0\] \(item '7'\) data has no 'text' key.*"
                                       r"pass data_key= naming the key your config reads"),
    ([record(data={"alcore_id": "9", "text": "x"})], {},
     r"data uses the reserved key 'alcore_id'"),
    ([record(score=float("nan"))], {}, r"records\[0\] \(item '7'\) score must be finite"),
    ([record(confidence="high")], {}, r"confidence must be a number, got 'high'"),
    ([record(prediction=3)], {}, r"prediction must be the model's label as text or None, "
                                 r"got int 3; pass str\(label\)"),
    ([record(data={"text": {1, 2}})], {}, r"records\[0\] \(item '7'\) data is not "
                                          r"JSON-serialisable"),
    ([record()], {"from_name": ""}, r"from_name must be a non-empty string"),
    ([record(source=1)], {}, r"source must be a string or None, got 1"),
])
def test_task_refusals(records, kw, match):
    with pytest.raises(alcore.InvalidInputError, match=match):
        wf.to_label_studio_tasks(records, **kw)


# ------------------------------------------------------------------- the recorded export

def test_recorded_export_labels():
    read = wf.read_label_studio_export(RECORDED)
    raw = recorded()
    assert read.n_tasks == 5 and read.items == ("10", "11", "12", "13", "14")
    want = []
    for task in raw:
        for ann in task["annotations"]:
            choice = ann["result"][0]["value"]["choices"][0] if ann["result"] else ""
            # The time of the current answer: updated_at (an edit keeps created_at).
            when = dt.datetime.strptime(ann["updated_at"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(
                tzinfo=dt.timezone.utc).timestamp()
            want.append({"item_id": task["data"]["alcore_id"],
                         "annotator": str(ann["completed_by"]), "value": choice, "at": when,
                         "origin": "label_studio",
                         "ambiguous": ann["was_cancelled"] or choice == "ambiguous"})
    assert list(read.labels) == want
    assert {(r["item_id"], r["value"], r["ambiguous"]) for r in read.labels
            if r["annotator"] == "2"} == {("10", "cat", False), ("11", "dog", False),
                                           ("12", "ambiguous", True), ("13", "", True),
                                           ("14", "dog", False)}
    assert read.ambiguous_items == ("12", "13")
    assert read.to_expert() == ["11", "12", "13"]
    assert read.annotators == {"1": None, "2": None}


def test_recorded_export_agreement_is_monitor_agreement():
    read = wf.read_label_studio_export(RECORDED)
    triples = [("10", "1", "cat"), ("10", "2", "cat"), ("11", "1", "cat"), ("11", "2", "dog"),
               ("12", "1", "dog"), ("12", "2", None), ("13", "1", "bird"), ("13", "2", None),
               ("14", "1", "dog"), ("14", "2", "dog")]
    direct = alcore.monitor.agreement(triples)
    got = read.agreement()
    assert got.items == direct.items and got.annotators == direct.annotators
    for name in ("cohen_kappa", "fleiss_kappa", "krippendorff_alpha"):
        assert getattr(got, name) == getattr(direct, name)
    np.testing.assert_array_equal(got.per_item, direct.per_item)


def test_source_forms_read_the_same(tmp_path):
    want = wf.read_label_studio_export(RECORDED).labels
    text = RECORDED.read_text()
    bom = tmp_path / "bom.json"
    bom.write_bytes(b"\xef\xbb\xbf" + text.encode())
    for source in (str(RECORDED), text, text.encode(), recorded(), tuple(recorded()), bom,
                   "\n  " + text):
        assert wf.read_label_studio_export(source).labels == want


def test_expanded_and_email_annotators():
    raw = recorded()
    emails = {1: "a@x.org", 2: "b@x.org"}
    expanded, by_email = copy.deepcopy(raw), copy.deepcopy(raw)
    for exp_task, mail_task in zip(expanded, by_email, strict=True):
        for ann in exp_task["annotations"]:
            ann["completed_by"] = {"id": ann["completed_by"], "first_name": "",
                                   "email": emails[ann["completed_by"]]}
        for ann in mail_task["annotations"]:
            ann["completed_by"] = emails[ann["completed_by"]]
    plain = wf.read_label_studio_export(raw)
    read = wf.read_label_studio_export(expanded)
    assert read.labels == plain.labels
    assert read.annotators == {"1": "a@x.org", "2": "b@x.org"}
    mailed = wf.read_label_studio_export(by_email)
    assert [r["annotator"] for r in mailed.labels] == [
        emails[int(r["annotator"])] for r in plain.labels]
    assert mailed.to_expert() == plain.to_expert()


def test_tasks_round_trip_without_annotations():
    tasks = wf.to_label_studio_tasks([record("a"), record("b")])
    read = wf.read_label_studio_export(tasks)
    assert read.items == ("a", "b") and read.labels == () and read.to_expert() == []


def test_latest_label_per_annotator_wins():
    plan = [("1", [(5, "cat"), (6, "dog"), (5, "dog")])]
    read = wf.read_label_studio_export(make_export(plan))
    assert len(read.labels) == 3  # every annotation is a record (the ledger logs each)
    assert [(r["annotator"], r["value"]) for r in read.latest()] == [("6", "dog"),
                                                                      ("5", "dog")]
    assert read.to_expert() == []  # 5 changed its mind to agree with 6


def test_ambiguous_choices_option_and_case():
    plan = [("1", [(1, "Unsure"), (2, "cat")]), ("2", [(1, "cat"), (2, "dog")]),
            ("3", [(1, "dog"), (2, "dog")])]
    read = wf.read_label_studio_export(make_export(plan))
    assert read.ambiguous_items == ("1",)
    assert read.to_expert() == ["1", "2"]
    none = wf.read_label_studio_export(make_export(plan), ambiguous_choices=())
    assert none.ambiguous_items == () and none.to_expert() == ["1", "2"]
    # three annotators, two agree: one pair in three agrees (1/3)
    three = wf.read_label_studio_export(make_export([("4", [(1, "a"), (2, "a"), (3, "b")])]))
    assert three.to_expert(0.34) == ["4"] and three.to_expert(0.33) == []


def test_from_name_selects_the_choices_tag():
    raw = make_export([("1", [(1, "cat"), (2, "dog")])])
    for ann in raw[0]["annotations"]:
        ann["result"].append({"from_name": "quality", "to_name": "text", "type": "choices",
                              "value": {"choices": ["good"]}})
        ann["result"].append({"from_name": "box", "to_name": "img", "type": "hologram",
                              "value": {}})
    with pytest.raises(alcore.InvalidInputError, match=r"unknown result type 'hologram'"):
        wf.read_label_studio_export(raw)
    read = wf.read_label_studio_export(raw, from_name="label")
    assert [r["value"] for r in read.labels] == ["cat", "dog"]
    for ann in raw[0]["annotations"]:
        ann["result"].pop()
    with pytest.raises(alcore.InvalidInputError,
                       match=r"task 0 \(Label Studio id 1\) annotation 0 \(id 1\) has choices "
                             r"from several tags \('label', 'quality'\); pass from_name="):
        wf.read_label_studio_export(raw)
    assert [r["value"] for r in wf.read_label_studio_export(raw, from_name="quality").labels
            ] == ["good", "good"]


# ----------------------------------------------------------------- malformed exports

def _broken(change):
    raw = recorded()
    change(raw)
    return raw


def _set(path, value):
    def change(raw):
        *head, last = path
        node = raw
        for key in head:
            node = node[key]
        if value is KeyError:
            del node[last]
        else:
            node[last] = value
    return change


ANN = (1, "annotations", 0)  # task 1 (Label Studio id 2), its first annotation (id 2)
MALFORMED = [
    ("not json", "id,label\n1,cat\n", r"the export text is not JSON \(Expecting value at "
                                       r"line 1, column 1\); export the project as JSON"),
    ("object", '{"tasks": []}', r"the export text must be a JSON list of tasks, got an "
                                r"object \(keys 'tasks'\); export the project as JSON"),
    ("number", "3", r"source '3' does not exist"),
    ("json_min", [{"text": "x", "alcore_id": "1", "annotator": 1, "annotation_id": 1,
                   "label": "cat"}],
     r"task 0 has no 'data' but an 'annotator' field: this is a JSON_MIN export"),
    ("task not object", ["x"], r"task 0 must be an object with 'data' and 'annotations', "
                               r"got str"),
    ("no alcore_id", _set((2, "data", "alcore_id"), KeyError),
     r"task 2 \(Label Studio id 3\) data.alcore_id is missing; only tasks made by alcore"),
    ("bad alcore_id", _set((2, "data", "alcore_id"), ""),
     r"task 2 \(Label Studio id 3\) data.alcore_id is ''"),
    ("annotations not list", _set((0, "annotations"), {}),
     r"task 0 \(Label Studio id 1\) annotations must be a list, got dict"),
    ("annotation not object", _set((*ANN[:2], 0), 5),
     r"task 1 \(Label Studio id 2\) annotation 0 must be an object, got int"),
    ("no result", _set((*ANN, "result"), KeyError),
     r"task 1 \(Label Studio id 2\) annotation 0 \(id 2\) has no 'result' field"),
    ("result not list", _set((*ANN, "result"), {"choices": ["cat"]}),
     r"annotation 0 \(id 2\) result must be a list of regions, got dict"),
    ("region not object", _set((*ANN, "result", 0), "cat"),
     r"annotation 0 \(id 2\) result\[0\] must be an object with 'type' and 'value'"),
    ("unknown type", _set((*ANN, "result", 0, "type"), "clasification"),
     r"task 1 \(Label Studio id 2\) annotation 0 \(id 2\) result\[0\] has the unknown "
     r"result type 'clasification'; .* pass from_name="),
    ("no type", _set((*ANN, "result", 0, "type"), KeyError),
     r"result\[0\] has the unknown result type None"),
    ("empty choices", _set((*ANN, "result", 0, "value", "choices"), []),
     r"result\[0\] value.choices must be a non-empty list of strings, got \[\]"),
    ("two choices", _set((*ANN, "result", 0, "value", "choices"), ["cat", "dog"]),
     r"result\[0\] chose 2 classes \['cat', 'dog'\]; alcore's labels are single-class"),
    ("no class", _set((*ANN, "result"), []),
     r"annotation 0 \(id 2\) chose no class \(empty result\) and was not skipped"),
    ("other tags only", _set((*ANN, "result", 0, "type"), "textarea"),
     r"chose no class \(result types \['textarea'\]\) and was not skipped"),
    ("cancel flag", _set((*ANN, "was_cancelled"), "yes"),
     r"annotation 0 \(id 2\) was_cancelled must be true or false, got 'yes'"),
    ("no annotator", _set((*ANN, "completed_by"), KeyError),
     r"annotation 0 \(id 2\) completed_by must name the annotator .* got None"),
    ("bool annotator", _set((*ANN, "completed_by"), True),
     r"completed_by must name the annotator .* got True"),
    ("bad time", _set((*ANN, "updated_at"), "yesterday"),
     r"annotation 0 \(id 2\) updated_at must be an ISO 8601 time .* got 'yesterday'"),
    ("no time", lambda raw: (_set((*ANN, "updated_at"), KeyError)(raw),
                             _set((*ANN, "created_at"), KeyError)(raw)),
     r"created_at must be an ISO 8601"),
    ("bad date", _set((*ANN, "updated_at"), "2024-13-45T00:00:00Z"),
     r"updated_at must be an ISO 8601"),
    ("bad creation time", lambda raw: (_set((*ANN, "updated_at"), KeyError)(raw),
                                       _set((*ANN, "created_at"), "yesterday")(raw)),
     r"annotation 0 \(id 2\) created_at must be an ISO 8601 time .* got 'yesterday'"),
]


@pytest.mark.parametrize(("name", "broken", "match"), MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_exports(name, broken, match):
    source = _broken(broken) if callable(broken) else broken
    with pytest.raises(alcore.InvalidInputError, match=match):
        wf.read_label_studio_export(source)


def test_malformed_files_are_left_alone(tmp_path):
    path = tmp_path / "export.csv"
    path.write_bytes(b"id,label\n1,cat\n")
    with pytest.raises(alcore.InvalidInputError,
                       match=r"source '.*export.csv' is not JSON \(Expecting value at line "
                             r"1, column 1\); export the project as JSON .*not CSV"):
        wf.read_label_studio_export(path)
    assert path.read_bytes() == b"id,label\n1,cat\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export.csv"]
    (tmp_path / "latin.json").write_bytes(b"[\xff]")
    with pytest.raises(alcore.InvalidInputError, match=r"is not UTF-8 text"):
        wf.read_label_studio_export(tmp_path / "latin.json")
    with pytest.raises(alcore.InvalidInputError, match=r"source '.*nope.json' does not exist"):
        wf.read_label_studio_export(tmp_path / "nope.json")


@pytest.mark.parametrize(("kw", "match"), [
    ({"source": 3.5}, r"source must be a path, the export's JSON text or the parsed list of "
                      r"tasks, got float"),
    ({"source": {"id": 1}}, r"source must be a JSON list of tasks, got an object"),
    ({"ambiguous_choices": "unsure"}, r"ambiguous_choices must be a sequence of strings, got "
                                      r"'unsure'"),
    ({"ambiguous_choices": [1]}, r"ambiguous_choices must hold strings, got int 1"),
    ({"from_name": 2}, r"from_name must be a non-empty string"),
])
def test_argument_refusals(kw, match):
    kw.setdefault("source", recorded())
    with pytest.raises(alcore.InvalidInputError, match=match):
        wf.read_label_studio_export(**kw)


@pytest.mark.parametrize("threshold", [0, 1.5, float("nan"), "1"])
def test_threshold_refused(threshold):
    read = wf.read_label_studio_export(RECORDED)
    with pytest.raises(alcore.InvalidInputError, match=r"threshold must be"):
        read.to_expert(threshold)


# ------------------------------------------------------- routing against a reference

def reference_expert(plan, threshold, unsure=("ambiguous", "unsure")):
    """Items to route, by hand: the last vote of each annotator; a skip or an unsure vote
    flags the item; among class votes, P = sum n_c (n_c - 1) / (n (n - 1)) < threshold."""
    out = []
    for item, votes in plan:
        last = {}
        for who, choice in votes:
            last[who] = choice
        flagged = any(c is None or c.casefold() in unsure for _, c in votes)
        classes = [c for c in last.values() if c is not None and c.casefold() not in unsure]
        n = len(classes)
        agree = (sum(k * (k - 1) for k in Counter(classes).values()) / (n * (n - 1))
                 if n >= 2 else None)
        if flagged or (agree is not None and agree < threshold):
            out.append(item)
    return out


plans = st.lists(
    st.lists(st.tuples(st.integers(1, 4), st.sampled_from(["a", "b", "c", "unsure", None])),
             max_size=5),
    max_size=8).map(lambda votes: [(str(i), v) for i, v in enumerate(votes)])


@given(plan=plans, threshold=st.sampled_from([1.0, 0.5, 0.34, 1e-6]), expand=st.booleans())
def test_expert_routing_matches_reference(plan, threshold, expand):
    read = wf.read_label_studio_export(make_export(plan, expand=expand))
    assert read.to_expert(threshold) == reference_expert(plan, threshold)
    assert len(read.labels) == sum(len(v) for _, v in plan)


# --------------------------------------------------------------------- into a ledger

@pytest.fixture
def ledger(tmp_path):
    with wf.Ledger.open(tmp_path / "l.db", create=True) as db:
        db.queue([record(i, data={"text": i}) for i in ("10", "11", "12", "13", "14")],
                 round=1)
        yield db


def test_to_ledger(ledger):
    read = wf.read_label_studio_export(RECORDED)
    summary = read.to_ledger(ledger)
    assert summary == {"labels": 10, "disagreements": ["11"], "ambiguous": ["12", "13"]}
    stored = ledger.labels()
    assert [(r["item_id"], r["annotator"], r["value"], r["ambiguous"]) for r in stored] == [
        (r["item_id"], r["annotator"], r["value"], r["ambiguous"]) for r in read.labels]
    assert {r["origin"] for r in stored} == {"label_studio"}
    queued = {r["item_id"]: r["tier"] for r in ledger.queued()}
    assert queued == {"11": "expert", "12": "expert", "13": "expert"}
    routes = [e["payload"] for e in ledger.events("route")]
    assert routes == [
        {"items": ["11"], "tier": "expert", "reason": "label studio: the annotators disagree"},
        {"items": ["12", "13"], "tier": "expert",
         "reason": "label studio: an annotator skipped it or marked it ambiguous"}]
    (event,) = ledger.events("label_studio_import")
    assert event["payload"]["tasks"] == 5 and event["payload"]["annotators"] == ["1", "2"]


def test_to_ledger_refused_writes_nothing(ledger, tmp_path):
    before = (ledger.events(), ledger.labels(), ledger.queued())
    raw = recorded()
    raw[4]["data"]["alcore_id"] = "999"  # an item this ledger never queued
    read = wf.read_label_studio_export(raw)
    with pytest.raises(LedgerError, match=r"label for unknown item '999'"):
        read.to_ledger(ledger)
    assert (ledger.events(), ledger.labels(), ledger.queued()) == before
    with pytest.raises(alcore.InvalidInputError, match=r"threshold must be"):
        wf.read_label_studio_export(RECORDED).to_ledger(ledger, threshold=2)
    assert (ledger.events(), ledger.labels(), ledger.queued()) == before


def test_to_ledger_by_path(ledger):
    ledger.close()
    summary = wf.read_label_studio_export(RECORDED).to_ledger(ledger.path)
    assert summary["disagreements"] == ["11"]
    with wf.Ledger.open(ledger.path) as again:
        assert len(again.labels()) == 10


# ------------------------------------------------------------- the server fixture itself

def _run_integration(env_extra):
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env.update(env_extra)
    tests = Path(__file__).parent
    return subprocess.run(
        [sys.executable, "-m", "pytest", str(tests / "test_labelstudio_integration.py"),
         "-q", "-p", "no:cacheprovider", "-k", "tasks_and_predictions"],
        capture_output=True, text=True, env=env, cwd=os.sep, timeout=120)


def test_fixture_skips_without_label_studio_unless_ci():
    missing = {"ALCORE_LABEL_STUDIO": "/nonexistent/label-studio"}
    skipped = _run_integration(missing)
    assert skipped.returncode == 0, skipped.stdout
    assert "1 skipped" in skipped.stdout and "label-studio is not installed" in skipped.stdout
    failed = _run_integration({**missing, "CI": "true"})
    assert failed.returncode == 1, failed.stdout
    assert "1 error" in failed.stdout
    assert "and CI is set: CI must run the Label Studio integration tests" in failed.stdout


def test_server_failures_carry_the_log(tmp_path):
    from labelstudio_server import start_server

    crash = tmp_path / "crash"
    crash.write_text("#!/bin/sh\necho 'django.db.utils.OperationalError: no such table'\n"
                     "exit 3\n")
    crash.chmod(0o755)
    with pytest.raises(RuntimeError, match=r"(?s)exited with status 3 .*no such table"):
        start_server(str(crash), tmp_path / "a", timeout=30)
    hang = tmp_path / "hang"
    hang.write_text("#!/bin/sh\necho 'still migrating'\nexec sleep 60\n")
    hang.chmod(0o755)
    with pytest.raises(RuntimeError,
                       match=r"(?s)did not answer /health within 1 s .*still migrating"):
        start_server(str(hang), tmp_path / "b", timeout=1)
