"""``alcore serve`` as the ML backend of a real Label Studio project.

The server comes from the session fixture ``label_studio`` (tests/labelstudio_server.py).
Everything goes through Label Studio's REST API, as a user would click it:

1. the project gets alcore's tasks *without* predictions (to_label_studio_tasks, predictions
   stripped), so every prediction Label Studio shows came from ``alcore serve``;
2. ``POST /api/ml`` adds the backend: Label Studio calls ``/health`` and ``/setup``, reports
   it connected, and registers ``<url>/webhook`` as a project webhook for every action;
3. the data manager's ``retrieve_tasks_predictions`` action makes Label Studio ``POST
   /predict`` the tasks; the stored predictions are the ledger's;
4. annotations created and updated in Label Studio reach ``/webhook`` and are label records
   in the ledger (the same records the JSON export gives), also in bulk
   (``ANNOTATIONS_CREATED`` from the "predictions to annotations" action);
5. the next batch, queued in the ledger afterwards, is imported and predicted the same way;
   the import's ``TASKS_CREATED`` event reaches ``/webhook`` and is acknowledged.

The fixture's server runs with ``ML_BLOCK_LOCAL_IP=false`` and ``SSRF_PROTECTION_ENABLED=
false``: Label Studio refuses loopback ML backends and webhook targets otherwise.
"""

from __future__ import annotations

import time

import pytest

import alcore.workflow as wf

CONFIG = ('<View><Text name="text" value="$text"/>'
          '<Header value="Why alcore picked it: $alcore_reason"/>'
          '<Choices name="animal" toName="text" choice="single"><Choice value="cat"/>'
          '<Choice value="dog"/><Choice value="bird"/></Choices></View>')
FIRST = [
    {"item_id": "p1", "source": "pool", "round": 1, "reason": "margin 0.04, rank 1",
     "score": 0.96, "prediction": "cat", "confidence": 0.52, "data": {"text": "a small cat"}},
    {"item_id": "p2", "source": "stream", "round": 1, "reason": "entropy 0.98",
     "score": 0.98, "prediction": "dog", "confidence": 0.41, "data": {"text": "a blur"}},
    {"item_id": "p3", "source": "control", "round": 1, "reason": "control arm",
     "score": None, "prediction": None, "confidence": None, "control": True,
     "data": {"text": "a sparrow"}},
]
SECOND = [
    {"item_id": "p4", "source": "pool", "round": 2, "reason": "margin 0.08, rank 1",
     "score": 0.92, "prediction": "bird", "confidence": 0.47, "data": {"text": "wings"}},
]


def _import(ls, pid, records):
    """Import queued records as Label Studio tasks without predictions; {item_id: task}."""
    tasks = wf.to_label_studio_tasks(records, from_name="animal")
    for task in tasks:
        task.pop("predictions", None)
    assert ls.post(f"/api/projects/{pid}/import", tasks)["prediction_count"] == 0
    listed = ls.get("/api/tasks", params={"project": pid, "page_size": 100})["tasks"]
    return {t["data"]["alcore_id"]: t for t in listed}


def _retrieve_predictions(ls, pid):
    ls.post("/api/dm/actions", {"selectedItems": {"all": True, "excluded": []}},
            params={"id": "retrieve_tasks_predictions", "project": pid})


def _wait(condition, seconds=15.0):
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


@pytest.fixture(scope="module")
def setup(label_studio, tmp_path_factory):
    ls = label_studio
    path = tmp_path_factory.mktemp("serve") / "alcore.db"
    with wf.Ledger.open(path, create=True) as ledger:
        ledger.queue(FIRST, round=1)
    requests: list[str] = []
    server = wf.serve(path, port=0, log=requests.append).start()
    try:
        pid = ls.post("/api/projects", {"title": "alcore serve",
                                        "label_config": CONFIG})["id"]
        tasks = _import(ls, pid, FIRST)
        backend = ls.post("/api/ml", {"url": server.url, "project": pid, "title": "alcore"})
        yield {"ls": ls, "pid": pid, "server": server, "tasks": tasks, "backend": backend,
               "requests": requests, "admin": ls.get("/api/current-user/whoami")["id"]}
    finally:
        server.shutdown()


def _hits(requests, route):
    return [r for r in requests if f'"{route} HTTP/1.1"' in r]


def test_label_studio_connects(setup):
    ls, backend = setup["ls"], setup["backend"]
    assert backend["url"] == setup["server"].url
    # Label Studio checked /health and /setup before saving the backend.
    assert _hits(setup["requests"], "GET /health") and _hits(setup["requests"], "POST /setup")
    (listed,) = ls.get("/api/ml", params={"project": setup["pid"]})
    assert (listed["state"], listed["readable_state"]) == ("CO", "Connected")
    # No label stored yet: generation 0 of the model.
    assert listed["model_version"] == "alcore-0"
    assert ls.get(f"/api/ml/{backend['id']}/versions") == {"versions": ["alcore-0"]}
    hooks = ls.get("/api/webhooks", params={"project": setup["pid"]})
    assert [h["url"] for h in hooks] == [setup["server"].url + "/webhook"]
    assert all(h["send_payload"] and h["send_for_all_actions"] for h in hooks)


def test_predictions_come_from_the_ledger(setup):
    ls, pid, tasks = setup["ls"], setup["pid"], setup["tasks"]
    _retrieve_predictions(ls, pid)
    assert _hits(setup["requests"], "POST /predict")
    for record in FIRST:
        predictions = ls.get("/api/predictions", params={"task": tasks[record["item_id"]]["id"]})
        if record["prediction"] is None:
            assert predictions == []  # the ledger holds none for a control-arm item
            continue
        (prediction,) = predictions
        assert prediction["model_version"] == "alcore-0"
        assert prediction["score"] == pytest.approx(record["confidence"])
        # from_name/to_name read from the project's label config (<Choices name="animal">)
        assert prediction["result"] == [{"from_name": "animal", "to_name": "text",
                                         "type": "choices",
                                         "value": {"choices": [record["prediction"]]}}]
    # Label Studio's own test prediction goes through /predict too.
    test = ls.post(f"/api/ml/{setup['backend']['id']}/predict/test",
                   params={"random": "true"})
    assert test["status"] == 200 and len(test["response"]) == 1


def test_annotations_reach_the_ledger(setup):
    ls, pid, tasks, server = setup["ls"], setup["pid"], setup["tasks"], setup["server"]
    admin = str(setup["admin"])
    task = tasks["p2"]["id"]
    annotation = ls.post(f"/api/tasks/{task}/annotations", {
        "result": [{"from_name": "animal", "to_name": "text", "type": "choices",
                    "value": {"choices": ["cat"]}}]})
    assert _wait(lambda: server.ledger.labels("p2") != []), setup["requests"][-5:]
    (label,) = server.ledger.labels("p2")
    assert (label["annotator"], label["value"], label["origin"], label["ambiguous"]) == \
        (admin, "cat", "label_studio", False)
    # The record the JSON export gives for the same annotation.
    export = ls.get(f"/api/projects/{pid}/export", params={"exportType": "JSON"})
    assert wf.read_label_studio_export(export).labels == (label,)
    # An edit in Label Studio replaces the label (the event log keeps both).
    ls.request("PATCH", f"/api/annotations/{annotation['id']}", {
        "result": [{"from_name": "animal", "to_name": "text", "type": "choices",
                    "value": {"choices": ["dog"]}}]})
    assert _wait(lambda: server.ledger.labels("p2")[0]["value"] == "dog")
    assert len(server.ledger.labels("p2")) == 1
    assert [e["payload"]["value"] for e in server.ledger.events("label")] == ["cat", "dog"]
    # A skip is an ambiguous label.
    ls.post(f"/api/tasks/{tasks['p3']['id']}/annotations",
            {"result": [], "was_cancelled": True})
    assert _wait(lambda: server.ledger.labels("p3") != [])
    assert server.ledger.labels("p3")[0]["ambiguous"] is True
    assert [r["item_id"] for r in server.ledger.queued()] == ["p1"]


def test_the_next_batch_arrives(setup):
    ls, pid, server = setup["ls"], setup["pid"], setup["server"]
    # The workflow queues the next round in the same ledger (another connection).
    with wf.Ledger.open(server.ledger.path) as ledger:
        ledger.queue(SECOND, round=2)
        queued = [r["item_id"] for r in ledger.queued()]
    assert "p4" in queued and "p2" not in queued
    acknowledged = len([r for r in _hits(setup["requests"], "POST /webhook")
                        if r.endswith(" 200 -")])
    tasks = _import(ls, pid, SECOND)
    # The import's TASKS_CREATED event reaches /webhook too, and is acknowledged (200).
    assert _wait(lambda: len([r for r in _hits(setup["requests"], "POST /webhook")
                              if r.endswith(" 200 -")]) == acknowledged + 1)
    before = len(_hits(setup["requests"], "POST /predict"))
    _retrieve_predictions(ls, pid)
    assert len(_hits(setup["requests"], "POST /predict")) == before + 1
    (prediction,) = ls.get("/api/predictions", params={"task": tasks["p4"]["id"]})
    assert prediction["result"][0]["value"]["choices"] == ["bird"]
    assert prediction["score"] == pytest.approx(0.47)
    # Labels were stored since the first run, so the model version moved on and Label
    # Studio asked again for the task predicted then: it holds the old and the new one.
    current = ls.get(f"/api/ml/{setup['backend']['id']}/versions")["versions"]
    assert current == [f"alcore-{server.ledger.label_generation()}"] != ["alcore-0"]
    old = ls.get("/api/predictions", params={"task": setup["tasks"]["p1"]["id"]})
    assert sorted(x["model_version"] for x in old) == ["alcore-0", current[0]]
    # With no label since, the same version: a task is not predicted twice.
    _retrieve_predictions(ls, pid)
    assert len(ls.get("/api/predictions", params={"task": tasks["p1"]["id"]})) == 2


def test_predictions_accepted_as_annotations_arrive_in_bulk(setup):
    # The data manager's "predictions to annotations" sends ANNOTATIONS_CREATED, a list.
    ls, pid, server, tasks = setup["ls"], setup["pid"], setup["server"], setup["tasks"]
    assert server.ledger.labels("p1") == []
    ls.post("/api/dm/actions", {"selectedItems": {"all": False,
                                                  "included": [tasks["p1"]["id"]]}},
            params={"id": "predictions_to_annotations", "project": pid})
    assert _wait(lambda: server.ledger.labels("p1") != []), setup["requests"][-5:]
    (label,) = server.ledger.labels("p1")
    assert (label["annotator"], label["value"]) == (str(setup["admin"]), "cat")
