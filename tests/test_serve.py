"""``alcore serve``: the Label Studio ML backend protocol over a ledger.

Every route with well-formed requests (Label Studio's own payload shapes, from its
``ml/api_connector.py`` and ``webhooks/utils.py``) and malformed ones (status code, message,
no traceback), concurrency, the localhost default, the command line.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from datetime import datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alcore import InvalidInputError
from alcore.cli import main
from alcore.workflow import (
    Ledger,
    LedgerError,
    LedgerServer,
    read_label_studio_export,
    serve,
)

CONFIG = ('<View><Text name="review" value="$text"/><Choices name="sentiment" '
          'toName="review" choice="single"><Choice value="cat"/><Choice value="dog"/>'
          '<Choice value="unsure"/></Choices></View>')
ITEMS = [
    {"item_id": "a", "source": "pool", "reason": "margin 0.05", "score": 0.95,
     "prediction": "cat", "confidence": 0.8, "data": {"text": "first"}},
    {"item_id": "b", "source": "control", "reason": "control arm", "score": None,
     "prediction": None, "confidence": None, "data": {"text": "second"}},
    {"item_id": "c", "source": "stream", "reason": "stream 0.4", "score": 0.4,
     "prediction": "dog", "confidence": None, "data": {"text": "third"}},
]


@pytest.fixture
def ledger_path(tmp_path):
    path = tmp_path / "alcore.db"
    with Ledger.open(path, create=True) as ledger:
        ledger.queue(ITEMS, round=1)
    return path


@pytest.fixture
def server(ledger_path):
    with serve(ledger_path, port=0) as running:
        yield running


def call(server, method, path, body=None, *, raw=None, headers=None):
    """(status, response headers, parsed JSON body) of one request on a new connection.
    Every answer must be JSON; an error's is {"error": message} without a traceback."""
    host, port = server.server_address[:2]
    conn = http.client.HTTPConnection(host, port, timeout=10)
    try:
        if raw is None and body is not None:
            raw = json.dumps(body).encode()
        sent = {"Content-Type": "application/json"} if raw is not None else {}
        sent.update(headers or {})
        conn.request(method, path, body=raw, headers=sent)
        response = conn.getresponse()
        text = response.read().decode()
        return response.status, dict(response.headers), _checked(response.status, text)
    finally:
        conn.close()


def _checked(status, text):
    assert "Traceback" not in text and 'File "' not in text, text
    payload = json.loads(text)
    if status >= 400:
        assert set(payload) == {"error"} and isinstance(payload["error"], str), payload
        assert payload["error"]
    return payload


def raw_exchange(server, data: bytes, *, half_close=False) -> tuple[int, dict]:
    """Send bytes as they are on a socket; the status and JSON body of the answer."""
    with socket.create_connection(server.server_address[:2], timeout=10) as sock:
        sock.sendall(data)
        if half_close:
            sock.shutdown(socket.SHUT_WR)
        chunks = []
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
            head, _, rest = b"".join(chunks).partition(b"\r\n\r\n")
            length = [int(line.split(b":")[1]) for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length:")]
            if length and len(rest) >= length[0]:
                break
    head, _, rest = b"".join(chunks).partition(b"\r\n\r\n")
    status = int(head.split(b" ")[1])
    return status, _checked(status, rest.decode())


def ls_task(task_id, **data):
    """A task as Label Studio's TaskSimpleSerializer sends it to /predict."""
    return {"id": task_id, "data": data, "meta": {}, "created_at": "2026-12-02T10:00:00Z",
            "updated_at": "2026-12-02T10:00:00Z", "is_labeled": False, "overlap": 1,
            "inner_id": task_id, "total_annotations": 0, "cancelled_annotations": 0,
            "total_predictions": 0, "comment_count": 0, "unresolved_comment_count": 0,
            "last_comment_updated_at": None, "project": 1, "updated_by": None,
            "file_upload": None, "comment_authors": [], "annotations": [],
            "predictions": []}


def predict_body(tasks, label_config=CONFIG):
    """The body of Label Studio's MLApi.make_predictions."""
    return {"tasks": tasks, "project": "1.1796220000", "label_config": label_config,
            "params": {"login": None, "password": None, "context": None}}


def annotation_event(action, *, alcore_id="a", annotation_id=11, task_id=5, user=1,
                     choice="dog", cancelled=False, created="2026-12-02T16:50:01.5Z",
                     updated=...):
    """The body of Label Studio's webhook for one annotation (AnnotationWebhookSerializer
    with all fields, the task nested, the project serialized). A new annotation's
    updated_at is its created_at; an updated one's is later, by default."""
    if updated is ...:
        updated = created if action == "ANNOTATION_CREATED" else "2026-12-02T16:55:00Z"
    result = [] if choice is None else [
        {"id": "r1", "type": "choices", "value": {"choices": [choice]}, "origin": "manual",
         "to_name": "review", "from_name": "sentiment"}]
    data = {"text": "first"} if alcore_id is None else {"text": "first", "alcore_id": alcore_id}
    return {
        "action": action,
        "annotation": {"id": annotation_id, "result": result, "was_cancelled": cancelled,
                       "ground_truth": False, "created_at": created, "updated_at": updated,
                       "draft_created_at": None, "lead_time": 3.2, "prediction": {},
                       "result_count": len(result), "unique_id": "4c1e", "import_id": None,
                       "last_action": None, "bulk_created": False, "task": task_id,
                       "project": 1, "completed_by": user, "updated_by": user,
                       "parent_prediction": None, "parent_annotation": None,
                       "last_created_by": None},
        "task": {"id": task_id, "data": data, "meta": {}, "created_at": created,
                 "updated_at": updated, "is_labeled": True, "overlap": 1, "project": 1},
        "project": {"id": 1, "title": "alcore", "label_config": CONFIG},
    }


def unix(text):
    return datetime.fromisoformat(text).timestamp()


# --------------------------------------------------------------------------- health & co
@pytest.mark.parametrize("path", ["/", "/health", "/health/", "/health?x=1"])
def test_health(server, path):
    status, headers, payload = call(server, "GET", path)
    assert status == 200
    assert headers["Content-Type"] == "application/json"
    assert payload == {"status": "UP", "model_class": "alcore.workflow.serve",
                       "model_version": "alcore-0"}


def test_versions_and_metrics(server):
    assert call(server, "GET", "/versions")[::2] == (200, {"versions": ["alcore-0"]})
    assert call(server, "GET", "/metrics")[::2] == (200, {})


def test_setup_answers_the_model_version(ledger_path):
    body = {"project": "1.1796220000", "schema": CONFIG, "hostname": "http://localhost:8080",
            "access_token": "abc", "extra_params": None}
    with serve(ledger_path, port=0, model_version="alcore-r3") as server:
        assert call(server, "POST", "/setup", body)[::2] == (200,
                                                             {"model_version": "alcore-r3-0"})
        assert call(server, "GET", "/versions")[2] == {"versions": ["alcore-r3-0"]}
        # No schema: nothing to check against.
        assert call(server, "POST", "/setup", {"project": "2.5"})[0] == 200


@pytest.mark.parametrize(("body", "message"), [
    ([1, 2], "the body must be a JSON object, got list"),
    ({"project": 1, "schema": CONFIG}, "project must be a string, got int"),
    ({"project": "1.2", "schema": ["x"]}, "schema must be a string, got list"),
    ({"project": "1.2", "schema": '<View><Text name="t" value="$t"/></View>'},
     "has no <Choices name=... toName=...> tag"),
])
def test_setup_refusals(server, body, message):
    status, _, payload = call(server, "POST", "/setup", body)
    assert status == 422
    assert message in payload["error"]


# --------------------------------------------------------------------------- predict
def test_predict_answers_from_the_ledger(server):
    tasks = [ls_task(7, text="third", alcore_id="c"), ls_task(8, text="first", alcore_id="a"),
             ls_task(9, text="second", alcore_id="b")]
    status, _, payload = call(server, "POST", "/predict", predict_body(tasks))
    assert status == 200
    choice = [{"from_name": "sentiment", "to_name": "review", "type": "choices",
               "value": {"choices": ["dog"]}}]
    assert payload["results"][0] == {"model_version": "alcore-0", "score": None,
                                     "result": choice}
    assert payload["results"][1]["score"] == 0.8
    assert payload["results"][1]["result"][0]["value"] == {"choices": ["cat"]}
    # Queued without a prediction (a control-arm item): no prediction for that task.
    assert payload["results"][2] == []


def test_predict_names_default_and_override(ledger_path):
    task = [ls_task(1, alcore_id="a")]
    with serve(ledger_path, port=0) as server:
        result = call(server, "POST", "/predict", {"tasks": task})[2]["results"][0]["result"]
        assert (result[0]["from_name"], result[0]["to_name"]) == ("label", "text")
        config = "<View><Choices toName='doc,img' name='topic'></Choices></View>"
        result = call(server, "POST", "/predict",
                      predict_body(task, config))[2]["results"][0]["result"]
        assert (result[0]["from_name"], result[0]["to_name"]) == ("topic", "doc")
    with serve(ledger_path, port=0, from_name="mine", to_name="obj") as server:
        result = call(server, "POST", "/predict", predict_body(task))[2]["results"][0]
        assert (result["result"][0]["from_name"], result["result"][0]["to_name"]) == \
            ("mine", "obj")
        # Named explicitly, a config without Choices is no reason to refuse setup.
        assert call(server, "POST", "/setup", {"schema": "<View/>"})[0] == 200


def test_predict_integer_alcore_id_and_empty_batch(tmp_path, server):
    path = tmp_path / "ints.db"
    with Ledger.open(path, create=True) as ledger:
        ledger.queue([{"item_id": "17", "source": "pool", "reason": "r", "prediction": "3",
                       "confidence": 0.5}])
    with serve(path, port=0) as ints:
        results = call(ints, "POST", "/predict", {"tasks": [ls_task(1, alcore_id=17)]})[2]
        assert results["results"][0]["result"][0]["value"] == {"choices": ["3"]}
    assert call(server, "POST", "/predict", {"tasks": []})[::2] == (200, {"results": []})


@pytest.mark.parametrize(("body", "status", "message"), [
    ({"task": []}, 422, "the body has no 'tasks'"),
    ({"tasks": {"id": 1}}, 422, "tasks must be a list, got dict"),
    ({"tasks": [5]}, 422, "tasks[0] has no data object"),
    ({"tasks": [{"id": 3, "data": "x"}]}, 422, "task 3 has no data object"),
    ({"tasks": [ls_task(4, text="no id")]}, 422, "task 4 has no data.alcore_id"),
    ({"tasks": [ls_task(4, alcore_id=True)]}, 422, "task 4 has no data.alcore_id"),
    ({"tasks": [ls_task(1, alcore_id="a"), ls_task(2, alcore_id="zz")]}, 404,
     "task 2: alcore_id 'zz' is not in the ledger"),
    ("tasks", 422, "the body must be a JSON object, got str"),
    (None, 422, "the body must be a JSON object, got null"),
])
def test_predict_refusals(server, body, status, message):
    got, _, payload = call(server, "POST", "/predict", raw=json.dumps(body).encode())
    assert got == status
    assert message in payload["error"]


def test_predict_callback_for_tasks_the_ledger_cannot_answer(ledger_path):
    calls = []

    def model(datas):
        calls.append(datas)
        return [(f"guess-{d['text']}", 0.25) if d["text"] != "skip" else None for d in datas]

    tasks = [ls_task(1, text="first", alcore_id="a"), ls_task(2, text="new"),
             ls_task(3, text="second", alcore_id="b"), ls_task(4, text="x", alcore_id="zz"),
             ls_task(5, text="skip")]
    with serve(ledger_path, port=0, predict=model, model_version="m2") as server:
        status, _, payload = call(server, "POST", "/predict", predict_body(tasks))
    assert status == 200
    # One call, with the data of every task but the one the ledger predicted.
    assert calls == [[{"text": "new"}, {"text": "second", "alcore_id": "b"},
                      {"text": "x", "alcore_id": "zz"}, {"text": "skip"}]]
    results = payload["results"]
    assert results[0]["result"][0]["value"] == {"choices": ["cat"]}
    assert results[0]["model_version"] == "m2-0"
    assert [r["result"][0]["value"]["choices"][0] for r in results[1:4]] == \
        ["guess-new", "guess-second", "guess-x"]
    assert results[1]["score"] == 0.25
    assert results[4] == []


@pytest.mark.parametrize(("model", "message"), [
    (lambda datas: 1 / 0, "the predict callback raised ZeroDivisionError: division by zero"),
    (lambda datas: [], "the predict callback returned 0 predictions for 1 tasks"),
    (lambda datas: ["cat"], "the predict callback returned 'cat' for a task"),
])
def test_predict_callback_failures_are_server_errors(ledger_path, model, message):
    with serve(ledger_path, port=0, predict=model) as server:
        status, _, payload = call(server, "POST", "/predict", {"tasks": [ls_task(1, t="u")]})
        assert status == 500
        assert message in payload["error"]
        # ... and the server keeps serving.
        assert call(server, "GET", "/health")[0] == 200


# --------------------------------------------------------------------------- webhook
def test_webhook_annotation_created_is_a_label(server):
    status, _, payload = call(server, "POST", "/webhook",
                              annotation_event("ANNOTATION_CREATED"))
    assert status == 201
    assert payload == {"status": "ok", "action": "ANNOTATION_CREATED", "labels": 1,
                       "item_ids": ["a"]}
    assert server.ledger.labels() == [
        {"item_id": "a", "annotator": "1", "value": "dog", "origin": "label_studio",
         "at": unix("2026-12-02T16:50:01.5Z"), "ambiguous": False}]
    assert [r["item_id"] for r in server.ledger.queued()] == ["b", "c"]


def test_webhook_update_keeps_the_latest(server):
    call(server, "POST", "/webhook", annotation_event("ANNOTATION_CREATED", choice="dog"))
    status, _, _ = call(server, "POST", "/webhook",
                        annotation_event("ANNOTATION_UPDATED", choice="cat"))
    assert status == 201
    (label,) = server.ledger.labels("a")
    assert (label["value"], label["at"]) == ("cat", unix("2026-12-02T16:55:00Z"))
    assert len(server.ledger.events("label")) == 2


def test_model_version_changes_with_every_stored_label(server):
    def version():
        return call(server, "GET", "/health")[2]["model_version"]

    def predicted_version():
        body = predict_body([ls_task(8, text="first", alcore_id="a")])
        return call(server, "POST", "/predict", body)[2]["results"][0]["model_version"]

    seen = [version()]
    assert seen == ["alcore-0"] and predicted_version() == "alcore-0"
    call(server, "POST", "/webhook", annotation_event("ANNOTATION_CREATED", choice="dog"))
    seen.append(version())
    # The same annotation delivered again stores nothing: the model did not change.
    again = call(server, "POST", "/webhook", annotation_event("ANNOTATION_CREATED",
                                                              choice="dog"))
    assert again[::2] == (201, {"status": "ok", "action": "ANNOTATION_CREATED", "labels": 0,
                                "item_ids": ["a"]})
    assert version() == seen[-1]
    call(server, "POST", "/webhook", annotation_event("ANNOTATION_UPDATED", choice="cat"))
    seen.append(version())
    server.ledger.add_labels([{"item_id": "b", "annotator": "2", "value": "dog"}])
    seen.append(version())
    assert len(set(seen)) == 4 and all(v.startswith("alcore-") for v in seen)
    assert call(server, "POST", "/setup", {"project": "1.2"})[2] == {"model_version": seen[-1]}
    assert call(server, "GET", "/versions")[2] == {"versions": [seen[-1]]}
    assert predicted_version() == seen[-1]


def test_webhook_conflicting_or_late_annotation(server):
    call(server, "POST", "/webhook", annotation_event("ANNOTATION_UPDATED", choice="cat"))
    events = server.ledger.events()
    # Another value at the very same time: refused, nothing stored.
    status, _, payload = call(server, "POST", "/webhook",
                              annotation_event("ANNOTATION_UPDATED", choice="dog"))
    assert status == 422
    assert payload["error"].startswith("/webhook: label of item 'a' by annotator '1' at ")
    assert "conflicts with the stored label 'cat' at the same time (now 'dog')" in \
        payload["error"]
    assert server.ledger.events() == events
    # The creation event delivered after the update (older time): logged, not applied.
    status, _, payload = call(server, "POST", "/webhook",
                              annotation_event("ANNOTATION_CREATED", choice="dog"))
    assert (status, payload["labels"]) == (201, 0)
    assert [x["value"] for x in server.ledger.labels("a")] == ["cat"]
    assert [e["payload"]["value"] for e in server.ledger.events("stale_label")] == ["dog"]


@pytest.mark.parametrize(("kwargs", "value"), [
    ({"cancelled": True, "choice": None}, ""),
    ({"choice": "unsure"}, "unsure"),
    ({"choice": "Ambiguous"}, "Ambiguous"),
])
def test_webhook_skipped_or_unsure_is_ambiguous(server, kwargs, value):
    assert call(server, "POST", "/webhook",
                annotation_event("ANNOTATION_CREATED", **kwargs))[0] == 201
    (label,) = server.ledger.labels("a")
    assert (label["value"], label["ambiguous"]) == (value, True)


def test_webhook_completed_by_object(server):
    event = annotation_event("ANNOTATION_CREATED", alcore_id="c")
    event["annotation"]["completed_by"] = {"id": 4, "email": "ann@example.com"}
    assert call(server, "POST", "/webhook", event)[0] == 201
    # The user id, as the export reader takes it: one annotator whichever way labels come.
    assert server.ledger.labels("c")[0]["annotator"] == "4"


@pytest.mark.parametrize("kwargs", [{}, {"cancelled": True, "choice": None},
                                    {"choice": "unsure", "user": 9}])
def test_webhook_label_is_the_export_record(server, kwargs):
    event = annotation_event("ANNOTATION_CREATED", **kwargs)
    assert call(server, "POST", "/webhook", event)[0] == 201
    export = [{**event["task"], "annotations": [event["annotation"]]}]
    assert server.ledger.labels() == list(read_label_studio_export(export).labels)


def test_webhook_bulk_annotations(server):
    one = annotation_event("X", alcore_id="a", task_id=5, user=1)
    two = annotation_event("X", alcore_id="b", task_id=6, user=2, choice="cat")
    body = {"action": "ANNOTATIONS_CREATED",
            "annotation": [one["annotation"], two["annotation"]],
            "task": [two["task"], one["task"]], "project": one["project"]}
    status, _, payload = call(server, "POST", "/webhook", body)
    assert (status, payload["labels"], payload["item_ids"]) == (201, 2, ["a", "b"])
    assert {(x["item_id"], x["annotator"], x["value"]) for x in server.ledger.labels()} == \
        {("a", "1", "dog"), ("b", "2", "cat")}


@pytest.mark.parametrize("action", ["PROJECT_UPDATED", "TASKS_CREATED", "ANNOTATIONS_DELETED",
                                    "START_TRAINING", "SOMETHING_NEW"])
def test_webhook_other_actions_are_acknowledged(server, action):
    status, _, payload = call(server, "POST", "/webhook",
                              {"action": action, "project": {"id": 1}})
    assert (status, payload) == (200, {"status": "ignored", "action": action})
    assert server.ledger.labels() == []


def _without(event, *path):
    target = event
    for key in path[:-1]:
        target = target[key]
    del target[path[-1]]
    return event


@pytest.mark.parametrize(("body", "status", "message"), [
    ({"project": {"id": 1}}, 422, "the body has no 'action'"),
    ({"action": 7}, 422, "the body has no 'action'"),
    (_without(annotation_event("ANNOTATION_CREATED"), "annotation"), 422,
     "must carry 'annotation' and 'task' objects"),
    (_without(annotation_event("ANNOTATION_UPDATED"), "task"), 422,
     "must carry 'annotation' and 'task' objects"),
    (annotation_event("ANNOTATION_CREATED", alcore_id=None), 422,
     "annotation 11 of task 5: the task has no data.alcore_id"),
    (annotation_event("ANNOTATION_CREATED", alcore_id="nope"), 404,
     "alcore_id 'nope' is not in the ledger"),
    (annotation_event("ANNOTATION_CREATED", choice=None), 422,
     "has no choices result and was not skipped"),
    (annotation_event("ANNOTATION_CREATED", cancelled="yes"), 422,
     "was_cancelled must be true or false, got 'yes'"),
    (annotation_event("ANNOTATION_CREATED", created="yesterday", updated=None), 422,
     "created_at must be an ISO 8601 time such as"),
    (annotation_event("ANNOTATION_UPDATED", updated="yesterday"), 422,
     "updated_at must be an ISO 8601 time such as"),
    (annotation_event("ANNOTATION_CREATED", user=None), 422,
     "completed_by must name the annotator"),
    ({"action": "ANNOTATIONS_CREATED", "annotation": {}, "task": []}, 422,
     "must carry 'annotation' and 'task' lists"),
    ({"action": "ANNOTATIONS_CREATED", "annotation": [{"id": 3, "task": 9}], "task": []}, 422,
     "annotation 3 names no task"),
])
def test_webhook_refusals_write_nothing(server, body, status, message):
    got, _, payload = call(server, "POST", "/webhook", body)
    assert got == status
    assert message in payload["error"]
    assert server.ledger.labels() == [] and server.ledger.events("label") == []


def test_webhook_bulk_with_one_unknown_item_writes_nothing(server):
    one = annotation_event("X", alcore_id="a", task_id=5)
    two = annotation_event("X", alcore_id="ghost", task_id=6)
    body = {"action": "ANNOTATIONS_CREATED", "annotation": [one["annotation"],
                                                            two["annotation"]],
            "task": [one["task"], two["task"]]}
    assert call(server, "POST", "/webhook", body)[0] == 404
    assert server.ledger.labels() == []


def test_webhook_result_not_a_list(server):
    event = annotation_event("ANNOTATION_CREATED")
    event["annotation"]["result"] = {"choices": ["dog"]}
    status, _, payload = call(server, "POST", "/webhook", event)
    assert status == 422 and "result must be a list of regions, got dict" in payload["error"]
    assert "Export > JSON" not in payload["error"]  # the export reader's advice, not ours


# --------------------------------------------------------------------------- HTTP level
@pytest.mark.parametrize(("method", "path", "status", "message"), [
    ("GET", "/nope", 404, "no route '/nope'"),
    ("POST", "/predict/extra", 404, "no route '/predict/extra'"),
    ("GET", "/predict", 405, "GET /predict is not allowed; use POST"),
    ("POST", "/health", 405, "POST /health is not allowed; use GET"),
    ("PUT", "/webhook", 405, "PUT /webhook is not allowed"),
    ("DELETE", "/setup", 405, "DELETE /setup is not allowed"),
    ("PATCH", "/predict", 405, "PATCH /predict is not allowed"),
    ("OPTIONS", "/health", 405, "OPTIONS /health is not allowed"),
])
def test_routes_and_methods(server, method, path, status, message):
    got, headers, payload = call(server, method, path, {"tasks": []})
    assert got == status
    assert message in payload["error"]
    if status == 405:
        assert headers["Allow"] in ("GET", "POST")


def test_head_is_refused_without_a_body(server):
    host, port = server.server_address[:2]
    conn = http.client.HTTPConnection(host, port, timeout=10)
    conn.request("HEAD", "/health")
    response = conn.getresponse()
    assert (response.status, response.read()) == (405, b"")
    conn.close()


@pytest.mark.parametrize(("raw", "headers", "status", "message"), [
    (b"{not json", None, 400, "the body is not valid JSON"),
    (b'{"tasks": [NaN]}', None, 400, "NaN is not JSON"),
    (b"\xff\xfe{}", None, 400, "the body is not valid JSON"),
    (b"[" * 200_000 + b"]" * 200_000, None, 400, "the body is not valid JSON"),
    (b"", None, 400, "the body is not valid JSON"),
    (b'{"tasks": []}', {"Content-Type": "text/plain"}, 415,
     "Content-Type must be application/json, got text/plain"),
    (b'{"tasks": []}', {"Content-Type": "application/x-www-form-urlencoded"}, 415,
     "got application/x-www-form-urlencoded"),
])
def test_bodies_that_are_not_json(server, raw, headers, status, message):
    got, _, payload = call(server, "POST", "/predict", raw=raw, headers=headers)
    assert got == status
    assert message in payload["error"]


def test_charset_in_content_type_is_fine(server):
    status, _, payload = call(server, "POST", "/predict", raw=b'{"tasks": []}',
                              headers={"Content-Type": "application/json; charset=utf-8"})
    assert (status, payload) == (200, {"results": []})


def test_body_size_is_capped(ledger_path):
    with serve(ledger_path, port=0, max_body=1000) as server:
        big = json.dumps({"tasks": [ls_task(i, alcore_id="a") for i in range(50)]}).encode()
        status, headers, payload = call(server, "POST", "/predict", raw=big)
        assert status == 413
        assert f"the body is {len(big)} bytes; serve accepts at most 1000" in payload["error"]
        assert headers["Connection"] == "close"
        # A huge announced length is refused before anything is read.
        status, payload = raw_exchange(
            server, b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                    b"Content-Length: 99999999999\r\n\r\n")
        assert status == 413
        assert call(server, "POST", "/predict", {"tasks": []})[0] == 200


@pytest.mark.parametrize(("request_bytes", "status", "message"), [
    (b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\r\n", 411,
     "a POST needs a Content-Length header"),
    (b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
     b"Transfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n", 411, "chunked"),
    (b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
     b"Content-Length: -5\r\n\r\n", 400, "Content-Length must be a whole number, got '-5'"),
    (b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
     b"Content-Length: 100\r\n\r\n{\"tasks\"", 400, "the body ended after 8 of 100 bytes"),
    (b"FROB /health HTTP/1.1\r\nHost: x\r\n\r\n", 501, "Unsupported method ('FROB')"),
    (b"GET /health extra HTTP/1.1\r\n\r\n", 400, "Bad request syntax"),
    (b"GET /" + b"a" * 70000 + b" HTTP/1.1\r\n\r\n", 414, "Request-URI Too Long"),
])
def test_malformed_http(server, request_bytes, status, message):
    got, payload = raw_exchange(server, request_bytes, half_close=True)
    assert got == status
    assert message in payload["error"]


def test_a_stalled_client_is_dropped(ledger_path):
    with serve(ledger_path, port=0, timeout=0.3) as server:
        start = time.monotonic()
        got, payload = raw_exchange(
            server, b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                    b"Content-Length: 50\r\n\r\n{")
        assert time.monotonic() - start < 5
        assert got == 408 and "did not arrive within 0.3 s" in payload["error"]
        assert call(server, "GET", "/health")[0] == 200


def test_keep_alive_and_an_error_on_one_connection(server):
    host, port = server.server_address[:2]
    conn = http.client.HTTPConnection(host, port, timeout=10)
    try:
        for _ in range(3):
            conn.request("GET", "/health")
            assert conn.getresponse().read() and True
        # An unread body (an unknown route) closes the connection; http.client reconnects.
        conn.request("POST", "/nope", body=b'{"a": 1}',
                     headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        assert response.status == 404 and response.getheader("Connection") == "close"
        response.read()
        conn.request("POST", "/predict", body=json.dumps({"tasks": [ls_task(1, alcore_id="a")]}),
                     headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        assert response.status == 200
        assert json.loads(response.read())["results"][0]["score"] == 0.8
    finally:
        conn.close()


def test_basic_auth(ledger_path):
    import base64

    with serve(ledger_path, port=0, basic_auth=("ls", "s3cret")) as server:
        status, headers, payload = call(server, "GET", "/health")
        assert status == 401 and "authentication required" in payload["error"]
        assert headers["WWW-Authenticate"].startswith("Basic")
        wrong = base64.b64encode(b"ls:nope").decode()
        assert call(server, "GET", "/health", headers={"Authorization": f"Basic {wrong}"}
                    )[0] == 401
        assert call(server, "GET", "/health", headers={"Authorization": "Basic %%%"})[0] == 401
        good = base64.b64encode(b"ls:s3cret").decode()
        assert call(server, "GET", "/health", headers={"Authorization": f"Basic {good}"}
                    )[0] == 200


# --------------------------------------------------------------------------- concurrency
def test_concurrent_clients(tmp_path):
    path = tmp_path / "many.db"
    ids = [f"i{j}" for j in range(40)]
    with Ledger.open(path, create=True) as ledger:
        ledger.queue([{"item_id": i, "source": "pool", "reason": "r", "prediction": i.upper(),
                       "confidence": 0.5} for i in ids])
    errors, statuses = [], []

    def client(worker):
        try:
            for j in range(worker, len(ids), 8):
                task = [ls_task(j, alcore_id=ids[j])]
                status, _, payload = call(server, "POST", "/predict", predict_body(task))
                statuses.append(status)
                assert payload["results"][0]["result"][0]["value"]["choices"] == \
                    [ids[j].upper()]
                for user in (1, 2):
                    status, _, _ = call(server, "POST", "/webhook", annotation_event(
                        "ANNOTATION_CREATED", alcore_id=ids[j], task_id=j, user=user))
                    statuses.append(status)
                statuses.append(call(server, "GET", "/health")[0])
        except BaseException as err:  # reported by the main thread
            errors.append(err)

    with serve(path, port=0) as server:
        threads = [threading.Thread(target=client, args=(w,)) for w in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert not errors, errors
        assert sorted(set(statuses)) == [200, 201] and len(statuses) == 40 * 4
        labels = server.ledger.labels()
        assert len(labels) == 80
        assert {(x["item_id"], x["annotator"]) for x in labels} == \
            {(i, u) for i in ids for u in ("1", "2")}
        assert server.ledger.queued() == []
        assert server.ledger.integrity() == "ok"


def test_items_queued_while_serving_are_predicted(server, ledger_path):
    # The next batch, queued by another process (here another connection), is visible.
    with Ledger.open(ledger_path) as other:
        other.queue([{"item_id": "d", "source": "pool", "reason": "round 2",
                      "prediction": "cat", "confidence": 0.6}], round=2)
    results = call(server, "POST", "/predict", {"tasks": [ls_task(1, alcore_id="d")]})[2]
    assert results["results"][0]["score"] == 0.6


# --------------------------------------------------------------------------- the Python API
def test_localhost_by_default(ledger_path):
    import inspect

    assert inspect.signature(serve).parameters["host"].default == "127.0.0.1"
    assert inspect.signature(serve).parameters["port"].default == 9090
    with serve(ledger_path, port=0) as server:
        assert server.server_address[0] == "127.0.0.1"
        assert server.url == f"http://127.0.0.1:{server.server_address[1]}"


def test_server_object_lifecycle(ledger_path):
    server = serve(ledger_path, port=0)
    assert isinstance(server, LedgerServer)
    assert server.start() is server.start()  # starting twice is one thread
    assert call(server, "GET", "/health")[0] == 200
    server.shutdown()
    with pytest.raises(OSError):
        socket.create_connection(server.server_address[:2], timeout=2).close()
    # serve's own connection is closed by shutdown ...
    with pytest.raises(Exception, match="closed"):
        server.ledger.queued()
    server.shutdown()  # twice is harmless


def test_a_ledger_in_use_by_the_program(ledger_path):
    # serve(Ledger) answers from a connection of its own: the program keeps writing through
    # its Ledger (here a transaction held open across a webhook) and both stay consistent.
    with Ledger.open(ledger_path) as ledger:
        with serve(ledger, port=0) as server:
            assert server.ledger is not ledger and server.ledger.path == ledger.path
            done = []
            with ledger.transaction():
                ledger.queue([{"item_id": "e", "source": "pool", "reason": "r"}])
                thread = threading.Thread(target=lambda: done.append(call(
                    server, "POST", "/webhook", annotation_event("ANNOTATION_CREATED"))[0]))
                thread.start()
                time.sleep(0.3)
                assert done == []  # waits for the program's write lock
            thread.join(15)
            assert done == [201]
        assert ledger.labels("a")[0]["value"] == "dog"
        assert ledger.item("e") is not None


def test_port_in_use(ledger_path):
    with serve(ledger_path, port=0) as server:
        port = server.server_address[1]
        with pytest.raises(InvalidInputError, match=rf"cannot listen on 127.0.0.1:{port}: "
                                                    r".*choose another port="):
            serve(ledger_path, port=port)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"port": -1}, r"port must be an integer in \[0, 65535\] \(0: any free port\), got -1"),
    ({"port": 70000}, r"port must be an integer in \[0, 65535\].*got 70000"),
    ({"port": "9090"}, r"port must be an integer .*got '9090'"),
    ({"port": True}, r"port must be an integer .*got True"),
    ({"host": ""}, r"host must be an address such as '127.0.0.1', got ''"),
    ({"host": None}, r"host must be an address such as '127.0.0.1', got None"),
    ({"predict": "model"}, r"predict must be a callable .* got str"),
    ({"model_version": ""}, r"model_version must be a non-empty string, got ''"),
    ({"from_name": 3}, r"from_name must be a non-empty string, got 3"),
    ({"max_body": 0}, r"max_body must be a positive number of bytes, got 0"),
    ({"timeout": float("nan")}, r"timeout must be a positive number of seconds, got nan"),
    ({"basic_auth": ("user", "")}, r"basic_auth must be a \(user, password\) pair"),
    ({"basic_auth": "user:pw"}, r"basic_auth must be a \(user, password\) pair"),
])
def test_serve_argument_refusals(ledger_path, kwargs, message):
    with pytest.raises(InvalidInputError, match=message):
        serve(ledger_path, **{"port": 0, **kwargs})


def test_serve_ledger_refusals(tmp_path):
    with pytest.raises(LedgerError, match="no ledger at"):
        serve(tmp_path / "missing.db", port=0)
    foreign = tmp_path / "foreign.db"
    foreign.write_bytes(b"not a database at all" * 10)
    with pytest.raises(LedgerError):
        serve(foreign, port=0)
    with pytest.raises(InvalidInputError, match=r"ledger must be a path or an "
                                                r"alcore\.workflow\.Ledger, got int"):
        serve(3, port=0)


# --------------------------------------------------------------------------- command line
def test_cli_missing_ledger(tmp_path, capsys):
    code = main(["serve", str(tmp_path / "missing.db"), "--port", "0"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("alcore: error: no ledger at ") and err.count("\n") == 1


@pytest.mark.parametrize("port", ["70000", "http", "-1"])
def test_cli_bad_port(ledger_path, capsys, port):
    with pytest.raises(SystemExit) as exit_:
        main(["serve", str(ledger_path), "--port", port])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "expected a port number in [0, 65535]" in err and "Traceback" not in err


def test_cli_help_names_the_localhost_default(capsys):
    with pytest.raises(SystemExit):
        main(["serve", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "default 127.0.0.1: this machine only" in text
    assert "/webhook writes labels into the ledger" in text


def test_cli_serves_until_interrupted(ledger_path):
    # The installed alcore, from outside the checkout (in CI's non-editable install the
    # source folder, without the compiled core, would shadow it).
    proc = subprocess.Popen([sys.executable, "-m", "alcore.cli", "serve", str(ledger_path),
                             "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, cwd=os.sep)
    try:
        line = proc.stdout.readline()
        assert line.startswith(f"alcore serve: {ledger_path} at http://127.0.0.1:"), line
        url = line.split(" at ", 1)[1].split()[0]
        host, port = url.removeprefix("http://").split(":")
        conn = http.client.HTTPConnection(host, int(port), timeout=10)
        conn.request("POST", "/webhook", body=json.dumps(annotation_event("ANNOTATION_CREATED")),
                     headers={"Content-Type": "application/json"})
        assert conn.getresponse().status == 201
        conn.close()
        proc.send_signal(signal.SIGINT)
        _out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0
    assert "Traceback" not in err
    assert '"POST /webhook HTTP/1.1" 201' in err  # one log line per request
    with Ledger.open(ledger_path) as ledger:
        assert ledger.labels("a")[0]["value"] == "dog"


def test_cli_port_in_use_and_bad_auth(ledger_path, capsys, monkeypatch):
    with serve(ledger_path, port=0) as server:
        port = server.server_address[1]
        assert main(["serve", str(ledger_path), "--port", str(port)]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"alcore: error: cannot listen on 127.0.0.1:{port}: ")
        assert err.endswith("choose another --port (0: any free port) or --host\n")
        assert err.count("\n") == 1
    monkeypatch.setenv("ALCORE_SERVE_AUTH", "no-colon")
    assert main(["serve", str(ledger_path), "--port", "0"]) == 2
    assert capsys.readouterr().err == "alcore: error: ALCORE_SERVE_AUTH must be user:password\n"


# --------------------------------------------------------------------------- fuzzing
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8) | st.sampled_from(["a", "b", "zz", "ANNOTATION_CREATED", CONFIG]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.sampled_from(["tasks", "data", "alcore_id", "id", "action", "annotation", "task",
                         "result", "completed_by", "created_at", "was_cancelled", "value",
                         "choices", "type", "schema", "project", "label_config", "x"]),
        inner, max_size=5),
    max_leaves=20)
_PATHS = [("annotation", "result"), ("annotation", "completed_by"),
          ("annotation", "created_at"), ("annotation", "was_cancelled"), ("annotation",),
          ("task",), ("task", "data"), ("task", "data", "alcore_id"), ("action",),
          ("annotation", "task"), ("task", "id")]


def _replace(event, path, value):
    target = event
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return event


def test_fuzzed_bodies_get_an_answer_never_a_server_error(ledger_path):
    with serve(ledger_path, port=0) as server:

        @settings(max_examples=150, deadline=None)
        @given(route=st.sampled_from(["/predict", "/webhook", "/setup"]), body=_JSON)
        def arbitrary(route, body):
            status, _, _ = call(server, "POST", route, raw=json.dumps(body).encode())
            assert status in (200, 201, 404, 422), (route, body, status)

        @settings(max_examples=150, deadline=None)
        @given(action=st.sampled_from(["ANNOTATION_CREATED", "ANNOTATION_UPDATED"]),
               path=st.sampled_from(_PATHS), value=_JSON)
        def mutated_event(action, path, value):
            event = _replace(annotation_event(action, alcore_id="c"), path, value)
            status, _, payload = call(server, "POST", "/webhook", event)
            assert status in (200, 201, 404, 422), (path, value, payload)

        arbitrary()
        mutated_event()
        assert server.ledger.integrity() == "ok"
