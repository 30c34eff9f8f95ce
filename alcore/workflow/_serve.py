"""``alcore serve``: a ledger behind the Label Studio ML backend protocol.

Label Studio talks to an ML backend over HTTP with JSON bodies (its ``ml/api_connector.py``
and the reference server ``label_studio_ml/api.py``):

``GET /health`` (and ``GET /``)
    Liveness; Label Studio checks it before every setup and prediction run.
    Answer ``{"status": "UP", "model_class": ..., "model_version": ...}``.
``POST /setup``
    ``{"project": "<id>.<created_at>", "schema": <label config XML>, "hostname": ...,
    "access_token": ..., "extra_params": ...}`` when a backend is added and before each
    prediction run. Answer ``{"model_version": ...}``.
``POST /predict``
    ``{"tasks": [task, ...], "project": ..., "label_config": ..., "params": {...}}``; each
    task is ``{"id": int, "data": {...}, ...}``. Answer ``{"results": [...]}`` with one
    entry per task, in order: a prediction ``{"result": [...], "score": ...,
    "model_version": ...}`` or an empty list (no prediction for that task).
``POST /webhook``
    Label Studio creates a webhook to ``<backend url>/webhook`` for every action when a
    backend is added, so every project event arrives here as ``{"action": ..., ...}``:
    ``ANNOTATION_CREATED`` / ``ANNOTATION_UPDATED`` carry ``{"annotation": {...}, "task":
    {...}, "project": {...}}``, ``ANNOTATIONS_CREATED`` lists of both. Annotations become
    label records in the ledger; other actions are acknowledged and ignored.
``GET /versions``
    ``{"versions": [model_version]}`` (Label Studio's model-version menu).

The model version answered everywhere is ``"<model_version>-<generation>"``, the
generation being the ledger's :meth:`Ledger.label_generation`: it changes after every label
stored (through ``/webhook``, an import or the workflow), i.e. after every retraining, so
Label Studio does not keep the older model's predictions as current.

Malformed requests get a 4xx answer whose JSON body is ``{"error": message}``; only a
failure of the server itself (a predict callback raising, a broken ledger) is a 5xx, and no
answer carries a traceback. The server binds to 127.0.0.1 unless told otherwise: ``/webhook``
writes labels into the ledger, so exposing it to a network is a decision to take knowingly
(``basic_auth=`` then asks Label Studio for credentials).
"""

from __future__ import annotations

import base64
import hmac
import json
import math
import os
import re
import threading
from collections.abc import Callable, Sequence
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from alcore._errors import InvalidInputError
from alcore.workflow._labelstudio import (
    _EXPORT_HINT,
    _annotator,
    _choice,
    _unix_seconds,
    answer_time,
)
from alcore.workflow._ledger import Ledger, LedgerError

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 9090
# Label Studio sends every task of a "retrieve predictions" run in one request; 64 MiB is
# tens of thousands of text tasks, and the cap keeps a stray upload from filling memory.
DEFAULT_MAX_BODY = 64 * 2**20
MODEL_CLASS = "alcore.workflow.serve"
# Annotators mark an item as unclear with one of these choices (as in the export reader).
AMBIGUOUS_CHOICES = ("ambiguous", "unsure")
LABEL_ACTIONS = ("ANNOTATION_CREATED", "ANNOTATION_UPDATED", "ANNOTATIONS_CREATED")

_ROUTES = {"/": ("GET",), "/health": ("GET",), "/versions": ("GET",), "/metrics": ("GET",),
           "/setup": ("POST",), "/predict": ("POST",), "/webhook": ("POST",)}
_CHOICES_TAG = re.compile(r"<Choices\b([^>]*)>")
_ATTRIBUTE = re.compile(r"""([A-Za-z_][\w.-]*)\s*=\s*(?:"([^"]*)"|'([^']*)')""")

Predict = Callable[[list[dict]], Sequence[Any]]


class _ClientError(Exception):
    """A request the server refuses: the HTTP status and the message of its JSON body."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def _choices_names(label_config: Any) -> tuple[str, str] | None:
    """``(from_name, to_name)`` of the first ``<Choices>`` tag of a label config, or None.

    A regular expression, not an XML parser: only two attributes of one tag are needed, and
    the config is text from the network."""
    if not isinstance(label_config, str):
        return None
    match = _CHOICES_TAG.search(label_config)
    if match is None:
        return None
    attrs = {m[1]: m[2] if m[2] is not None else m[3] for m in _ATTRIBUTE.finditer(match[1])}
    if attrs.get("name") and attrs.get("toName"):
        return attrs["name"], attrs["toName"].split(",")[0]
    return None


def _finite(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def _task_label(index: int, task: Any) -> str:
    if isinstance(task, dict) and isinstance(task.get("id"), int):
        return f"task {task['id']}"
    return f"tasks[{index}]"


def _alcore_id(data: dict) -> str | None:
    value = data.get("alcore_id")
    if isinstance(value, bool) or not isinstance(value, (str, int)) or value == "":
        return None
    return str(value)


def _same_as_export(read: Callable[..., Any], *args: Any) -> Any:
    """Run one of the export reader's field readers, so a label arriving by webhook is the
    record the JSON export gives for the same annotation (annotator identity, time, choice);
    its refusal becomes a 422 without the export's advice."""
    try:
        return read(*args)
    except InvalidInputError as err:
        raise _ClientError(422, str(err).replace(f"; {_EXPORT_HINT}", "")) from None


class _Backend:
    """The protocol without the HTTP plumbing: one method per route, taking the parsed body
    and returning ``(status, JSON-ready dict)`` or raising :class:`_ClientError`. One lock
    serializes serve's ledger connection (SQLite's own lock orders the writers of other
    connections and processes)."""

    def __init__(self, ledger: Ledger, *, predict: Predict | None, model_version: str,
                 from_name: str | None, to_name: str | None):
        self.ledger = ledger
        self.predict = predict
        self.model_version = model_version
        self.from_name = from_name
        self.to_name = to_name
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ routes
    def version(self) -> str:
        """The model version now: the base name and the ledger's label generation, so it
        changes after every stored label (each retrains the model) and Label Studio asks
        for predictions again instead of keeping those of the older model."""
        with self._lock:
            return f"{self.model_version}-{self.ledger.label_generation()}"

    def health(self, body: Any) -> tuple[int, dict]:
        return 200, {"status": "UP", "model_class": MODEL_CLASS,
                     "model_version": self.version()}

    def versions(self, body: Any) -> tuple[int, dict]:
        return 200, {"versions": [self.version()]}

    def metrics(self, body: Any) -> tuple[int, dict]:
        return 200, {}

    def setup(self, body: Any) -> tuple[int, dict]:
        body = self._object(body, "/setup")
        for key in ("project", "schema"):
            if body.get(key) is not None and not isinstance(body[key], str):
                raise _ClientError(422, f"/setup: {key} must be a string, got "
                                        f"{type(body[key]).__name__}")
        schema = body.get("schema")
        if schema and self.from_name is None and _choices_names(schema) is None:
            raise _ClientError(422, "/setup: the project's label config has no <Choices "
                                    "name=... toName=...> tag; alcore serves classification "
                                    "predictions, so add a Choices control to the labeling "
                                    "interface")
        return 200, {"model_version": self.version()}

    def predict_tasks(self, body: Any) -> tuple[int, dict]:
        body = self._object(body, "/predict")
        if "tasks" not in body:
            raise _ClientError(422, "/predict: the body has no 'tasks'; send {\"tasks\": "
                                    "[{\"id\": ..., \"data\": {...}}, ...]}")
        tasks = body["tasks"]
        if not isinstance(tasks, list):
            raise _ClientError(422, f"/predict: tasks must be a list, got "
                                    f"{type(tasks).__name__}")
        names = self._names(body.get("label_config"))
        datas = []
        for i, task in enumerate(tasks):
            data = task.get("data") if isinstance(task, dict) else None
            if not isinstance(data, dict):
                raise _ClientError(422, f"/predict: {_task_label(i, task)} has no data "
                                        f"object; each task is {{\"id\": ..., \"data\": "
                                        f"{{...}}}}")
            datas.append(data)
        ids = [_alcore_id(d) for d in datas]
        version = self.version()
        with self._lock:
            records = [None if i is None else self.ledger.item(i) for i in ids]
        # Tasks the ledger cannot answer go to the callback, or are refused without one.
        ask = [j for j, r in enumerate(records) if r is None or r.get("prediction") is None]
        if self.predict is None:
            for j in ask:
                label = _task_label(j, tasks[j])
                if ids[j] is None:
                    raise _ClientError(422, f"/predict: {label} has no data.alcore_id (a "
                                            f"string); serve predicts the tasks alcore "
                                            f"exported (to_label_studio_tasks), or start it "
                                            f"from Python with predict=")
                if records[j] is None:
                    raise _ClientError(404, f"/predict: {label}: alcore_id {ids[j]!r} is not "
                                            f"in the ledger {self.ledger.path}; export tasks "
                                            f"from this ledger, or start serve with predict=")
            ask = []
        answers = dict(zip(ask, self._call_predict([datas[j] for j in ask]), strict=True))
        results: list[Any] = []
        for j, record in enumerate(records):
            if j in answers:
                pair = answers[j]
            elif record is not None and record.get("prediction") is not None:
                pair = (record["prediction"], record.get("confidence"))
            else:
                pair = None
            results.append([] if pair is None else self._prediction(*pair, names, version))
        return 200, {"results": results}

    def webhook(self, body: Any) -> tuple[int, dict]:
        body = self._object(body, "/webhook")
        action = body.get("action")
        if not isinstance(action, str) or not action:
            raise _ClientError(422, "/webhook: the body has no 'action' (e.g. "
                                    "\"ANNOTATION_CREATED\"), as Label Studio's webhooks send")
        if action not in LABEL_ACTIONS:
            return 200, {"status": "ignored", "action": action}
        pairs = self._annotations(body, action)
        labels = [self._label(annotation, task, action) for annotation, task in pairs]
        with self._lock:
            unknown = [x["item_id"] for x in labels if self.ledger.item(x["item_id"]) is None]
            if unknown:
                raise _ClientError(404, f"/webhook: alcore_id {unknown[0]!r} is not in the "
                                        f"ledger {self.ledger.path}; nothing recorded "
                                        f"(annotate tasks exported from this ledger)")
            try:
                stored = self.ledger.add_labels(labels)
            except LedgerError as err:
                busy = "busy" in str(err)
                raise _ClientError(503 if busy else 422, f"/webhook: {err}") from None
        return 201, {"status": "ok", "action": action, "labels": stored,
                     "item_ids": [x["item_id"] for x in labels]}

    # ------------------------------------------------------------------ helpers
    @staticmethod
    def _object(body: Any, route: str) -> dict:
        if not isinstance(body, dict):
            raise _ClientError(422, f"{route}: the body must be a JSON object, got "
                                    f"{type(body).__name__ if body is not None else 'null'}")
        return body

    def _names(self, label_config: Any) -> tuple[str, str]:
        found = _choices_names(label_config) or ("label", "text")
        return (self.from_name or found[0], self.to_name or found[1])

    @staticmethod
    def _prediction(label: Any, score: Any, names: tuple[str, str], version: str) -> dict:
        return {"model_version": version, "score": _finite(score),
                "result": [{"from_name": names[0], "to_name": names[1], "type": "choices",
                            "value": {"choices": [str(label)]}}]}

    def _call_predict(self, datas: list[dict]) -> list[tuple[Any, Any] | None]:
        if not datas:
            return []
        try:
            answers = list(self.predict(datas))
        except Exception as err:  # the user's model: report it, keep serving
            raise _ServerError(f"the predict callback raised {type(err).__name__}: {err}") \
                from None
        if len(answers) != len(datas):
            raise _ServerError(f"the predict callback returned {len(answers)} predictions "
                               f"for {len(datas)} tasks; return one (label, confidence) pair "
                               f"or None per task")
        pairs: list[tuple[Any, Any] | None] = []
        for answer in answers:
            if answer is None:
                pairs.append(None)
            elif isinstance(answer, (tuple, list)) and len(answer) == 2 and answer[0] is not None:
                pairs.append((answer[0], answer[1]))
            else:
                raise _ServerError(f"the predict callback returned {answer!r} for a task; "
                                   f"return a (label, confidence) pair or None")
        return pairs

    @staticmethod
    def _annotations(body: dict, action: str) -> list[tuple[dict, dict]]:
        annotation, task = body.get("annotation"), body.get("task")
        if action != "ANNOTATIONS_CREATED":
            if not isinstance(annotation, dict) or not isinstance(task, dict):
                raise _ClientError(422, f"/webhook {action}: the body must carry "
                                        f"'annotation' and 'task' objects (send the payload "
                                        f"with the webhook: send_payload=true)")
            return [(annotation, task)]
        if not isinstance(annotation, list) or not isinstance(task, list):
            raise _ClientError(422, f"/webhook {action}: the body must carry 'annotation' "
                                    f"and 'task' lists")
        tasks = {t.get("id"): t for t in task if isinstance(t, dict)}
        pairs = []
        for a in annotation:
            if not isinstance(a, dict) or a.get("task") not in tasks:
                raise _ClientError(422, f"/webhook {action}: annotation "
                                        f"{a.get('id') if isinstance(a, dict) else a!r} names "
                                        f"no task of the payload's 'task' list")
            pairs.append((a, tasks[a["task"]]))
        return pairs

    def _label(self, annotation: dict, task: dict, action: str) -> dict:
        where = f"/webhook {action}: annotation {annotation.get('id', '?')} of task " \
                f"{task.get('id', '?')}"
        data = task.get("data")
        item_id = _alcore_id(data) if isinstance(data, dict) else None
        if item_id is None:
            raise _ClientError(422, f"{where}: the task has no data.alcore_id, so it is not "
                                    f"an alcore task; nothing recorded")
        skipped = annotation.get("was_cancelled", False)
        if not isinstance(skipped, bool):
            raise _ClientError(422, f"{where}: was_cancelled must be true or false, got "
                                    f"{skipped!r}")
        value, _ = _same_as_export(_choice, annotation.get("result", []), where,
                                   self.from_name)
        if value is None and not skipped:
            raise _ClientError(422, f"{where} has no choices result and was not skipped; "
                                    f"alcore records classification labels (a Choices "
                                    f"control)")
        annotator, _ = _same_as_export(_annotator, annotation.get("completed_by"), where)
        field, stamp = answer_time(annotation)
        record = {"item_id": item_id, "annotator": annotator,
                  "value": "" if value is None else value, "origin": "label_studio",
                  "ambiguous": skipped or (value or "").casefold() in AMBIGUOUS_CHOICES}
        if stamp is not None:
            record["at"] = _same_as_export(_unix_seconds, stamp, where, field)
        return record


class _ServerError(Exception):
    """The server's own failure (the predict callback, the ledger): a 500 with a message."""


class _Handler(BaseHTTPRequestHandler):
    server: LedgerServer
    protocol_version = "HTTP/1.1"
    _consumed = False

    def setup(self) -> None:
        # A client that stops sending mid-request frees its thread after this many seconds.
        self.timeout = self.server.request_timeout
        super().setup()

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    def do_HEAD(self) -> None:
        self._dispatch("HEAD")

    def do_OPTIONS(self) -> None:
        self._dispatch("OPTIONS")

    def _dispatch(self, method: str) -> None:
        allow = None
        self._consumed = False
        try:
            path = self.path.split("?", 1)[0].split("#", 1)[0]
            if len(path) > 1:
                path = path.rstrip("/")
            if path not in _ROUTES:
                raise _ClientError(404, f"no route {path!r}; alcore serve answers GET /health, "
                                        f"POST /setup, POST /predict, POST /webhook, GET "
                                        f"/versions")
            if method not in _ROUTES[path]:
                allow = ", ".join(_ROUTES[path])
                raise _ClientError(405, f"{method} {path} is not allowed; use {allow}")
            self._authorize()
            body = self._body() if method == "POST" else None
            route = {"/": "health", "/health": "health", "/versions": "versions",
                     "/metrics": "metrics", "/setup": "setup", "/predict": "predict_tasks",
                     "/webhook": "webhook"}[path]
            status, payload = getattr(self.server.backend, route)(body)
        except _ClientError as err:
            status, payload = err.status, {"error": err.message}
        except _ServerError as err:
            self.log_message("error: %s", err)
            status, payload = 500, {"error": str(err)}
        except Exception as err:  # never a traceback on the wire
            self.log_message("internal error: %s: %s", type(err).__name__, err)
            status, payload = 500, {"error": f"internal error ({type(err).__name__}); see "
                                             f"the server's log"}
        if not self._consumed and (self.headers.get("Content-Length", "0").strip() != "0"
                                   or "Transfer-Encoding" in self.headers):
            # An unread body would be taken for the next request on this connection.
            self.close_connection = True
        self._send(status, payload, allow=allow, head=method == "HEAD")

    def _authorize(self) -> None:
        expected = self.server.basic_auth
        if expected is None:
            return
        header = self.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        try:
            given = base64.b64decode(token.strip(), validate=True)
        except ValueError:
            given = b""
        if scheme.lower() != "basic" or not hmac.compare_digest(given, expected):
            raise _ClientError(401, "authentication required: Basic auth with the user and "
                                    "password serve was started with")

    def _body(self) -> Any:
        if self.headers.get("Transfer-Encoding", "").lower() not in ("", "identity"):
            raise _ClientError(411, "send the body with a Content-Length (chunked transfer "
                                    "encoding is not accepted)")
        length_text = self.headers.get("Content-Length")
        if length_text is None:
            raise _ClientError(411, "a POST needs a Content-Length header and a JSON body")
        if not length_text.strip().isdigit():
            raise _ClientError(400, f"Content-Length must be a whole number, got "
                                    f"{length_text!r}")
        length = int(length_text)
        if length > self.server.max_body:
            # The body is not read; closing stops a client that keeps sending.
            self.close_connection = True
            raise _ClientError(413, f"the body is {length} bytes; serve accepts at most "
                                    f"{self.server.max_body} (max_body=) per request")
        kind = self.headers.get("Content-Type", "").split(";", 1)[0].strip().lower()
        try:
            raw = self.rfile.read(length)
        except OSError:  # the client stalled past the timeout, or hung up
            self.close_connection = True
            raise _ClientError(408, f"the body did not arrive within {self.timeout} s") \
                from None
        self._consumed = True
        if len(raw) < length:
            self.close_connection = True
            raise _ClientError(400, f"the body ended after {len(raw)} of {length} bytes")
        if kind != "application/json":
            raise _ClientError(415, f"Content-Type must be application/json, got "
                                    f"{kind or 'none'}")
        try:
            return json.loads(raw.decode("utf-8"), parse_constant=_no_constant)
        except (UnicodeDecodeError, ValueError, RecursionError) as err:
            message = err.msg if isinstance(err, json.JSONDecodeError) else str(err)
            raise _ClientError(400, f"the body is not valid JSON ({message[:200]})") from None

    def _send(self, status: int, payload: dict, *, allow: str | None, head: bool) -> None:
        data = json.dumps(payload, allow_nan=False).encode("utf-8")
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            if allow is not None:
                self.send_header("Allow", allow)
            if status == 401:
                self.send_header("WWW-Authenticate", 'Basic realm="alcore serve"')
            if self.close_connection:
                self.send_header("Connection", "close")
            self.end_headers()
            if not head:
                self.wfile.write(data)
        except OSError:  # the client went away: nothing to answer
            self.close_connection = True

    def send_error(self, code: int, message: str | None = None,
                   explain: str | None = None) -> None:
        """http.server's own refusals (a malformed request line, an unknown method, a
        header too long) as JSON like every other error."""
        self.close_connection = True
        try:
            phrase = HTTPStatus(code).phrase
        except ValueError:
            phrase = "error"
        self._send(code, {"error": message or phrase}, allow=None,
                   head=getattr(self, "command", None) == "HEAD")

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.log is not None:
            self.server.log(f"alcore serve: {self.address_string()} {format % args}")


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


class LedgerServer(ThreadingHTTPServer):
    """A running ``alcore serve`` endpoint (made by :func:`serve`).

    Attributes
    ----------
    url : str
        ``http://HOST:PORT`` it listens on (the port the system chose when ``port=0``).
    ledger : Ledger
        The ledger it reads predictions from and writes labels to.
    """

    daemon_threads = True
    allow_reuse_address = True
    _closed = False

    def __init__(self, backend: _Backend, host: str, port: int, *, max_body: int,
                 timeout: float, basic_auth: bytes | None,
                 log: Callable[[str], None] | None):
        self.backend = backend
        self.max_body = max_body
        self.request_timeout = timeout
        self.basic_auth = basic_auth
        self.log = log
        self._thread: threading.Thread | None = None
        super().__init__((host, port), _Handler)

    @property
    def ledger(self) -> Ledger:
        return self.backend.ledger

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{port}"

    def start(self) -> LedgerServer:
        """Serve in a background (daemon) thread; returns the server."""
        if self._thread is None:
            # A short poll makes shutdown() prompt (serve_forever checks it between polls).
            self._thread = threading.Thread(target=self.serve_forever, args=(0.05,),
                                            name="alcore-serve", daemon=True)
            self._thread.start()
        return self

    def shutdown(self) -> None:
        """Stop serving, release the port and close the ledger if serve opened it."""
        if self._thread is not None:
            super().shutdown()
            self._thread.join()
            self._thread = None
        self.server_close()
        if not self._closed:
            self._closed = True
            self.backend.ledger.close()

    def __enter__(self) -> LedgerServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.shutdown()


def serve(ledger: str | os.PathLike | Ledger, *, host: str = DEFAULT_HOST,
          port: int = DEFAULT_PORT, predict: Predict | None = None,
          model_version: str = "alcore", from_name: str | None = None,
          to_name: str | None = None, max_body: int = DEFAULT_MAX_BODY,
          timeout: float = 30.0, basic_auth: tuple[str, str] | None = None,
          log: Callable[[str], None] | None = None) -> LedgerServer:
    """Bind a Label Studio ML backend over a ledger (not yet serving: call ``.start()`` for
    a background thread, or ``.serve_forever()``; ``.shutdown()`` stops it).

    Parameters
    ----------
    ledger : path or Ledger
        The ledger file, or an open :class:`Ledger` (its file). Serve opens a connection of
        its own either way (closed by ``shutdown()``): a program may keep using its
        ``Ledger`` (a running :class:`Workflow`) from its own thread while Label Studio's
        requests are answered, SQLite's lock ordering the writers.
    host : str
        Address to bind; default 127.0.0.1 (this machine only). ``/webhook`` writes labels,
        so bind another address only on a trusted network, or with ``basic_auth=``.
    port : int
        TCP port, 0 for any free one (read it back from ``.url``).
    predict : callable, optional
        ``predict(data: list[dict]) -> list[(label, confidence) | None]``: the model for
        tasks the ledger cannot answer (no ``data.alcore_id``, an id it does not know, or an
        item queued without a prediction). It gets the tasks' ``data`` dicts, in one call
        per request, and returns one pair (or None: no prediction) per dict. Without it
        such tasks are refused (422 without an id, 404 for an unknown id) and known items
        without a stored prediction get none.
    model_version : str
        The base of the version reported to Label Studio and stamped on each prediction:
        ``"<model_version>-<n>"``, n growing with every label the ledger stores (see
        :meth:`Ledger.label_generation`).
    from_name, to_name : str, optional
        The Choices control and the object it labels; default: read from the first
        ``<Choices name=... toName=...>`` of the project's label config, else "label" and
        "text".
    max_body : int
        Largest request body in bytes (413 beyond it).
    timeout : float
        Seconds a client may pause while sending a request or between requests on a
        kept-alive connection before its connection is closed (frees the thread).
    basic_auth : (user, password), optional
        Require HTTP Basic auth (Label Studio's backend setting "Basic Auth").
    log : callable, optional
        Gets one line per request and per server error (e.g. ``print``); default silent.

    Returns
    -------
    LedgerServer
        Bound and listening; ``.url`` is its address.

    Raises
    ------
    InvalidInputError
        A bad argument, or the address cannot be bound (in use, not this machine's).
    LedgerError
        The ledger file is missing, foreign, corrupt or of a newer schema.
    """
    if not isinstance(host, str) or not host:
        raise InvalidInputError(f"host must be an address such as '127.0.0.1', got {host!r}")
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise InvalidInputError(f"port must be an integer in [0, 65535] (0: any free port), "
                                f"got {port!r}")
    if predict is not None and not callable(predict):
        raise InvalidInputError(f"predict must be a callable predict(data_list) -> "
                                f"[(label, confidence) | None, ...] or None, got "
                                f"{type(predict).__name__}")
    for name, value in (("model_version", model_version), ("from_name", from_name),
                        ("to_name", to_name)):
        if value is not None and (not isinstance(value, str) or not value):
            raise InvalidInputError(f"{name} must be a non-empty string, got {value!r}")
    if isinstance(max_body, bool) or not isinstance(max_body, int) or max_body < 1:
        raise InvalidInputError(f"max_body must be a positive number of bytes, got "
                                f"{max_body!r}")
    if (isinstance(timeout, bool) or not isinstance(timeout, (int, float))
            or not math.isfinite(timeout) or timeout <= 0):
        raise InvalidInputError(f"timeout must be a positive number of seconds, got "
                                f"{timeout!r}")
    token = None
    if basic_auth is not None:
        if (not isinstance(basic_auth, (tuple, list)) or len(basic_auth) != 2
                or not all(isinstance(x, str) and x for x in basic_auth)
                or ":" in basic_auth[0]):
            raise InvalidInputError("basic_auth must be a (user, password) pair of non-empty "
                                    "strings, the user without ':'")
        token = f"{basic_auth[0]}:{basic_auth[1]}".encode()
    if isinstance(ledger, Ledger):
        # One sqlite connection must not run two threads' transactions interleaved.
        ledger = ledger.path
    elif not isinstance(ledger, (str, os.PathLike)):
        raise InvalidInputError(f"ledger must be a path or an alcore.workflow.Ledger, got "
                                f"{type(ledger).__name__}")
    ledger = Ledger.open(ledger)
    backend = _Backend(ledger, predict=predict, model_version=model_version,
                       from_name=from_name, to_name=to_name)
    try:
        return LedgerServer(backend, host, port, max_body=max_body, timeout=float(timeout),
                            basic_auth=token,
                            log=log)
    except OSError as err:
        ledger.close()
        raise InvalidInputError(f"cannot listen on {host}:{port}: {err.strerror or err}; "
                                f"choose another port= (0: any free port) or host=") from None


__all__ = ["DEFAULT_HOST", "DEFAULT_PORT", "LedgerServer", "serve"]
