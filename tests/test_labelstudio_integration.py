"""alcore against a real Label Studio server: tasks with predictions in, annotations from two
annotators, the JSON export out and read back (labels, agreement, expert routing).

The server comes from the session fixture ``label_studio`` (tests/labelstudio_server.py).

Two annotators: Label Studio's open-source REST API creates a second user in the admin's
organisation (``POST /api/users/``), but that user has no password or token the API would
hand out (``/api/current-user/token`` is the caller's own), so the admin posts that user's
annotations with ``completed_by`` set to the second user's id, which the annotation API
accepts. The export then carries the two real user ids, as it would had each logged in.

``ALCORE_LABEL_STUDIO_SAVE_EXPORT=path`` writes the export this test received to ``path``
(how tests/data/labelstudio_export.json, the unit tests' recorded export, was made).
"""

from __future__ import annotations

import json
import os
import time

import numpy as np
import pytest

import alcore.monitor
import alcore.workflow as wf

CHOICES = ("cat", "dog", "bird", "ambiguous")
LABEL_CONFIG = (
    '<View><Text name="text" value="$text"/>'
    '<Header value="Why alcore picked it: $alcore_reason"/>'
    '<Choices name="label" toName="text" choice="single">'
    + "".join(f'<Choice value="{c}"/>' for c in CHOICES)
    + "</Choices></View>")

RECORDS = [
    {"item_id": "10", "source": "pool", "round": 1, "tier": "annotator",
     "reason": "margin 0.04, rank 1 of 500", "score": 0.96, "prediction": "cat",
     "confidence": 0.52, "control": False, "data": {"text": "a small cat on a mat"}},
    {"item_id": "11", "source": "pool", "round": 1, "tier": "annotator",
     "reason": "margin 0.10, rank 2 of 500", "score": 0.90, "prediction": "dog",
     "confidence": 0.55, "control": False, "data": {"text": "a fox-like dog"}},
    {"item_id": "12", "source": "stream", "round": 1, "tier": "annotator",
     "reason": "stream: entropy 0.98 above threshold 0.9", "score": 0.98,
     "prediction": "dog", "confidence": 0.41, "control": False,
     "data": {"text": "blurry animal"}},
    {"item_id": "13", "source": "control", "round": 1, "tier": "annotator",
     "reason": "control arm: uniform random", "score": None, "prediction": None,
     "confidence": None, "control": True, "data": {"text": "a sparrow"}},
    {"item_id": "14", "source": "synthesis", "round": 1, "tier": "annotator",
     "reason": "nearest real item to a validated synthetic query", "score": 0.7,
     "prediction": "dog", "confidence": 0.61, "control": False,
     "data": {"text": "a big dog"}},
]
# What each annotator does per item: a choice, or None for Skip (was_cancelled).
FIRST = {"10": "cat", "11": "cat", "12": "dog", "13": "bird", "14": "dog"}
SECOND = {"10": "cat", "11": "dog", "12": "ambiguous", "13": None, "14": "dog"}


def _result(choice):
    return [] if choice is None else [{"from_name": "label", "to_name": "text",
                                       "type": "choices", "value": {"choices": [choice]}}]


def _user(ls, email):
    """The id of the organisation's user with this e-mail, created when missing."""
    for user in ls.get("/api/users/"):
        if user["email"] == email:
            return user["id"]
    return ls.post("/api/users/", {"email": email, "username": email.split("@")[0],
                                   "first_name": "Second"})["id"]


@pytest.fixture(scope="module")
def project(label_studio):
    """A project holding alcore's tasks and both annotators' annotations; its exports."""
    ls = label_studio
    admin = ls.get("/api/current-user/whoami")["id"]
    second = _user(ls, "second-annotator@example.com")
    created = ls.post("/api/projects", {"title": "alcore integration",
                                        "label_config": LABEL_CONFIG})
    pid = created["id"]
    tasks = wf.to_label_studio_tasks(RECORDS)
    imported = ls.post(f"/api/projects/{pid}/import", tasks)
    listed = ls.get("/api/tasks", params={"project": pid, "page_size": 100})["tasks"]
    by_item = {t["data"]["alcore_id"]: t for t in listed}
    predictions = {item: ls.get("/api/predictions", params={"task": t["id"]})
                   for item, t in by_item.items()}
    started = time.time()
    for who, plan in ((admin, FIRST), (second, SECOND)):
        for item, choice in plan.items():
            ls.post(f"/api/tasks/{by_item[item]['id']}/annotations",
                    {"result": _result(choice), "was_cancelled": choice is None,
                     "completed_by": who})
    export = ls.get(f"/api/projects/{pid}/export", params={"exportType": "JSON"})
    # The asynchronous export API, with annotators expanded to {id, email, ...}.
    snap = ls.post(f"/api/projects/{pid}/exports", {
        "serialization_options": {"annotations__completed_by": {"only_id": False}}})
    for _ in range(120):
        if ls.get(f"/api/projects/{pid}/exports/{snap['id']}")["status"] == "completed":
            break
        time.sleep(0.25)
    expanded = ls.get(f"/api/projects/{pid}/exports/{snap['id']}/download",
                      params={"exportType": "JSON"})
    save = os.environ.get("ALCORE_LABEL_STUDIO_SAVE_EXPORT")
    if save:
        with open(save, "w") as fh:
            json.dump(export, fh, indent=1)
            fh.write("\n")
    return {"admin": str(admin), "second": str(second), "imported": imported,
            "listed": by_item, "predictions": predictions, "export": export,
            "expanded": expanded, "started": started, "startup": ls.startup_seconds}


def test_tasks_and_predictions_arrive(project):
    assert project["imported"]["task_count"] == len(RECORDS)
    assert project["imported"]["prediction_count"] == 4  # item 13 has no prediction
    for record in RECORDS:
        task = project["listed"][record["item_id"]]
        assert task["data"]["text"] == record["data"]["text"]
        assert task["data"]["alcore_reason"] == record["reason"]
        assert task["data"]["alcore_source"] == record["source"]
        assert task["data"]["alcore_score"] == record["score"]
        preds = project["predictions"][record["item_id"]]
        if record["prediction"] is None:
            assert preds == []
            continue
        (pred,) = preds
        assert pred["model_version"] == "alcore"
        assert pred["score"] == pytest.approx(record["confidence"])
        assert pred["result"][0]["value"]["choices"] == [record["prediction"]]
        assert pred["result"][0]["from_name"] == "label"


def test_export_labels(project):
    read = wf.read_label_studio_export(project["export"])
    admin, second = project["admin"], project["second"]
    assert read.n_tasks == len(RECORDS)
    assert sorted(read.items) == sorted(r["item_id"] for r in RECORDS)
    got = {(r["item_id"], r["annotator"]): (r["value"], r["ambiguous"]) for r in read.labels}
    want = {}
    for who, plan in ((admin, FIRST), (second, SECOND)):
        for item, choice in plan.items():
            want[(item, who)] = ("" if choice is None else choice,
                                 choice is None or choice == "ambiguous")
    assert got == want
    assert len(read.labels) == len(want)
    for r in read.labels:
        assert r["origin"] == "label_studio"
        # created_at is the server's clock, the same machine's
        assert project["started"] - 60 < r["at"] < time.time() + 60
    assert set(read.annotators) == {admin, second}


def test_agreement_equals_monitor_on_the_same_triples(project):
    read = wf.read_label_studio_export(project["export"])
    admin, second = project["admin"], project["second"]
    triples = [(item, admin, FIRST[item]) for item in FIRST]
    triples += [(item, second, None if SECOND[item] in (None, "ambiguous") else SECOND[item])
                for item in SECOND]
    direct = alcore.monitor.agreement(triples)
    report = read.agreement()
    for name in ("cohen_kappa", "fleiss_kappa", "krippendorff_alpha"):
        assert getattr(report, name) == pytest.approx(getattr(direct, name), nan_ok=True)
    order = [report.items.index(i) for i in direct.items]
    np.testing.assert_allclose(report.per_item[order], direct.per_item)
    # items 10, 14 agree; 11 disagrees: kappa on 3 paired items with cat/dog
    assert report.cohen_kappa < 1


def test_expert_routing(project):
    read = wf.read_label_studio_export(project["export"])
    # 11: the annotators disagree; 12: one marked it ambiguous; 13: one skipped it
    assert sorted(read.to_expert()) == ["11", "12", "13"]
    assert sorted(read.ambiguous_items) == ["12", "13"]


def test_expanded_annotators_read_the_same(project):
    plain = wf.read_label_studio_export(project["export"])
    expanded = wf.read_label_studio_export(json.dumps(project["expanded"]))
    key = sorted((r["item_id"], r["annotator"], r["value"], r["ambiguous"], r["at"])
                 for r in plain.labels)
    assert sorted((r["item_id"], r["annotator"], r["value"], r["ambiguous"], r["at"])
                  for r in expanded.labels) == key
    assert expanded.annotators[project["second"]] == "second-annotator@example.com"
    print(f"Label Studio started in {project['startup']:.1f} s")


def test_export_into_ledger(project, tmp_path):
    """The export read back lands in a ledger: labels stored, the disagreement and the
    flagged items re-queued for the expert, the import recorded."""
    with wf.Ledger.open(tmp_path / "ledger.db", create=True) as ledger:
        ledger.queue(RECORDS, round=1)
        read = wf.read_label_studio_export(project["export"])
        summary = read.to_ledger(ledger)
        assert summary == {"labels": 10, "disagreements": ["11"], "ambiguous": ["12", "13"]}
        stored = {(r["item_id"], r["annotator"]): r["value"] for r in ledger.labels()}
        assert stored[("11", project["admin"])] == "cat"
        assert stored[("11", project["second"])] == "dog"
        assert len(stored) == 10
        assert {r["item_id"]: r["tier"] for r in ledger.queued()} == {
            "11": "expert", "12": "expert", "13": "expert"}
        assert [e["payload"]["items"] for e in ledger.events("route")] == [["11"],
                                                                           ["12", "13"]]


def test_workflow_batch_round_trip(label_studio, tmp_path):
    """A Workflow's batch goes to Label Studio as tasks (the config shows the selection
    reason), two annotators label it, and the export comes back into the workflow."""
    ls = label_studio
    classes = ["cat", "dog", "bird"]
    probs = np.random.default_rng(3).dirichlet(np.ones(3), size=40)
    config = ('<View><Text name="text" value="$alcore_reason"/>'
              '<Choices name="label" toName="text" choice="single">'
              + "".join(f'<Choice value="{c}"/>' for c in [*classes, "unsure"])
              + "</Choices></View>")
    admin = ls.get("/api/current-user/whoami")["id"]
    second = _user(ls, "second-annotator@example.com")
    pid = ls.post("/api/projects", {"title": "alcore workflow", "label_config": config})["id"]
    pool = wf.PoolSource(probs, classes=classes)
    with wf.Workflow(tmp_path / "loop.db", budget=20, sources=[pool]) as loop:
        batch = loop.next_batch(6)
        tasks = wf.to_label_studio_tasks(batch, data_key="alcore_reason")
        assert ls.post(f"/api/projects/{pid}/import", tasks)["task_count"] == len(batch)
        listed = ls.get("/api/tasks", params={"project": pid, "page_size": 100})["tasks"]
        ids = {t["data"]["alcore_id"]: t["id"] for t in listed}
        items = [x["item_id"] for x in batch]
        other = {c: classes[(classes.index(c) + 1) % 3] for c in classes}
        for pos, x in enumerate(batch):
            first = x["prediction"]
            votes = {admin: first,
                     second: other[first] if pos == 1 else "unsure" if pos == 2 else first}
            for who, choice in votes.items():
                ls.post(f"/api/tasks/{ids[x['item_id']]}/annotations",
                        {"result": _result(choice), "completed_by": who})
        export = ls.get(f"/api/projects/{pid}/export", params={"exportType": "JSON"})
        read = wf.read_label_studio_export(export)
        assert read.to_expert() == [items[1], items[2]]
        assert loop.submit_labels(list(read.labels)) == 12
        # the workflow routes disputed items itself (expert_review=True), as to_expert says
        routed = {i for e in loop.ledger.events("route") for i in e["payload"]["items"]}
        assert routed == set(read.to_expert())
        assert {r["item_id"]: r["tier"] for r in loop.ledger.queued()} == {
            items[1]: "expert", items[2]: "expert"}
        assert len(loop.ledger.labels()) == 12
        assert loop.labels()[items[0]] == batch[0]["prediction"]
        loop.status()
