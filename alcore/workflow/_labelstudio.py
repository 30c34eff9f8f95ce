"""Label Studio round trip: queued items out as tasks with predictions, the JSON export in
as label records.

Tasks carry the model's label and confidence as a Label Studio *prediction* (annotators see
them pre-selected, and the project's "prediction score" sampling orders by them) and why the
item was selected in ``data`` (``alcore_reason``, ``alcore_score``...), which a label config
can show with ``<Text name="why" value="$alcore_reason"/>``.

The export read is Label Studio's "JSON" export (``GET /api/projects/<id>/export?
exportType=JSON``, or the Export button's JSON format): a list of tasks, each with
``data`` and ``annotations``; an annotation has ``completed_by`` (a user id, or with the
``annotations__completed_by`` serialization option an object with ``id`` and ``email``),
``result`` (a list of regions, ``{"from_name", "to_name", "type", "value"}``),
``was_cancelled`` (the annotator pressed *Skip*), ``created_at`` and, once edited,
``updated_at`` (ISO 8601, UTC; the label's time is the later answer's). The
export is checked whole before anything is returned, so a malformed one leaves nothing
half-imported.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from alcore._errors import InvalidInputError
from alcore._validation import number, shown

__all__ = ["LabelStudioExport", "read_label_studio_export", "to_label_studio_tasks"]

# Result types Label Studio's control tags produce (the SDK's tag table, lower-cased; a
# Relations tag writes "relation"). Anything else is not a Label Studio export, or one from
# a version alcore does not know: refused rather than silently ignored.
_RESULT_TYPES = frozenset({
    "choices", "labels", "brush", "brushlabels", "bitmask", "bitmasklabels", "magicwand",
    "ellipse", "ellipselabels", "keypoint", "keypointlabels", "vector", "vectorlabels",
    "ocrlabels", "polygon", "polygonlabels", "rectangle", "rectanglelabels",
    "videorectangle", "videovector", "videovectorlabels", "number", "datetime",
    "hypertextlabels", "pairwise", "paragraphlabels", "ranker", "rating", "relation",
    "relations", "taxonomy", "textarea", "timeserieslabels", "timelinelabels",
    "chatmessage", "reactcode",
})
# The data keys every task gets; a label config may show one (value="$alcore_reason").
_FILLED = ("alcore_id", "alcore_reason", "alcore_source", "alcore_score", "alcore_tier")
_EXPORT_HINT = ("export the project as JSON (Export > JSON, or GET /api/projects/<id>/export"
                "?exportType=JSON)")
_ISO = re.compile(r"^(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2}(?::\d{2})?)(\.\d+)?(Z|[+-]\d{2}:?\d{2})?$")


# --------------------------------------------------------------------------------------
# Export: queued item records -> Label Studio tasks
# --------------------------------------------------------------------------------------

def _name(value: Any, name: str,
          what: str = "the name= of a tag in your Label Studio label config") -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidInputError(f"{name} must be a non-empty string ({what}), got "
                                f"{shown(value)}")
    return value


def _optional_number(value: Any, where: str, field_name: str) -> float | None:
    if value is None:
        return None
    return number(value, f"{where} {field_name}",
                  hint=f"pass a finite number or None as {field_name!r}")


def to_label_studio_tasks(records: Sequence[Mapping[str, Any]], *, from_name: str = "label",
                          to_name: str = "text", data_key: str | None = "text",
                          model_version: str = "alcore") -> list[dict]:
    """Label Studio tasks for queued item records, with the model's label as a prediction.

    Parameters
    ----------
    records : sequence of dict
        Queued item records (``ledger.queued()``): ``item_id`` (str), ``source``, ``round``,
        ``tier``, ``reason``, ``score``, ``prediction`` (the model's label as text, or
        None), ``confidence`` (its probability, or None) and ``data`` (what annotators
        see, e.g. ``{"text": ...}``).
    from_name, to_name : str, keyword-only
        The ``name`` of the label config's ``<Choices>`` tag and of the object tag it labels
        (``toName``), as the prediction's ``from_name``/``to_name``.
    data_key : str or None, keyword-only, default "text"
        The key the label config's object tag reads (``value="$text"``): every record's
        ``data`` must hold it, since Label Studio refuses tasks without it. One of the keys
        every task gets (``"alcore_reason"``, ``"alcore_id"``...) always passes; None skips
        the check.
    model_version : str, keyword-only
        The predictions' ``model_version``, shown in Label Studio's prediction list.

    Returns
    -------
    list of dict
        One task per record, in record order, JSON-ready (``json.dumps`` it for Label
        Studio's import): ``{"data": {**record["data"], "alcore_id", "alcore_reason",
        "alcore_source", "alcore_score", "alcore_tier"}, "predictions": [{"model_version",
        "score": confidence, "result": [{"from_name", "to_name", "type": "choices",
        "value": {"choices": [prediction]}}]}]}``; ``predictions`` is absent for a record
        without a prediction, ``score`` for one without a confidence.

    Raises
    ------
    InvalidInputError
        A record that is not a dict, lacks ``item_id`` or ``data[data_key]``, repeats an
        ``item_id``, or has a non-finite score/confidence; the message names the record.
    """
    from_name = _name(from_name, "from_name")
    to_name = _name(to_name, "to_name")
    model_version = _name(model_version, "model_version",
                          "the label Label Studio lists the predictions under")
    if data_key is not None:
        data_key = _name(data_key, "data_key", "the $key your label config's object tag "
                                               "reads, or None")
    if isinstance(records, Mapping) or isinstance(records, str | bytes) or not isinstance(
            records, Iterable):
        raise InvalidInputError(
            f"records must be a list of queued item records (dicts, e.g. ledger.queued()), "
            f"got {type(records).__name__}; wrap a single record in a list")
    tasks: list[dict] = []
    seen: dict[str, int] = {}
    for i, record in enumerate(records):
        where = f"records[{i}]"
        if not isinstance(record, Mapping):
            raise InvalidInputError(
                f"{where} must be a dict (a queued item record), got "
                f"{type(record).__name__}")
        item_id = record.get("item_id")
        if not isinstance(item_id, str) or not item_id:
            raise InvalidInputError(
                f"{where} item_id must be a non-empty string, got {shown(item_id)}; item ids "
                f"are the pool's ids as text (str(id))")
        where = f"records[{i}] (item {item_id!r})"
        if item_id in seen:
            raise InvalidInputError(
                f"{where} repeats the item_id of records[{seen[item_id]}]; an item is queued "
                f"once, so each task must name a different item")
        seen[item_id] = i
        data = record.get("data")
        data = {} if data is None else data
        if not isinstance(data, Mapping):
            raise InvalidInputError(
                f"{where} data must be a dict (what annotators see, e.g. {{'text': ...}}), "
                f"got {type(data).__name__}")
        if data_key is not None and data_key not in data and data_key not in _FILLED:
            raise InvalidInputError(
                f"{where} data has no {data_key!r} key, which the label config's "
                f"value=\"${data_key}\" shows and Label Studio requires; put the item's "
                f"content in record['data'][{data_key!r}], or pass data_key= naming the key "
                f"your config reads (None to skip the check)")
        reserved = sorted(k for k in data if isinstance(k, str) and k.startswith("alcore_"))
        if reserved:
            raise InvalidInputError(
                f"{where} data uses the reserved key {reserved[0]!r}; keys starting with "
                f"'alcore_' carry the item's id and reason, rename it")
        score = _optional_number(record.get("score"), where, "score")
        confidence = _optional_number(record.get("confidence"), where, "confidence")
        prediction = record.get("prediction")
        if prediction is not None and not isinstance(prediction, str):
            raise InvalidInputError(
                f"{where} prediction must be the model's label as text or None, got "
                f"{type(prediction).__name__} {shown(prediction)}; pass str(label)")
        reason = record.get("reason", "")
        for key in ("source", "tier"):
            if record.get(key) is not None and not isinstance(record[key], str):
                raise InvalidInputError(
                    f"{where} {key} must be a string or None, got {shown(record[key])}")
        task_data = {
            **data,
            "alcore_id": item_id,
            "alcore_reason": "" if reason is None else str(reason),
            "alcore_source": record.get("source"),
            "alcore_score": score,
            "alcore_tier": record.get("tier"),
        }
        task: dict[str, Any] = {"data": task_data}
        if prediction is not None:
            pred: dict[str, Any] = {
                "model_version": model_version,
                "result": [{"from_name": from_name, "to_name": to_name, "type": "choices",
                            "value": {"choices": [prediction]}}],
            }
            if confidence is not None:
                pred["score"] = confidence
            task["predictions"] = [pred]
        try:
            # What Label Studio's importer would refuse (NaN, sets, objects in data) fails
            # here, naming the record, rather than as an HTTP 400 later.
            json.dumps(task, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise InvalidInputError(
                f"{where} data is not JSON-serialisable ({exc}); Label Studio tasks are "
                f"JSON: use str, int, float (finite), bool, None, lists and dicts") from None
        tasks.append(task)
    return tasks


# --------------------------------------------------------------------------------------
# Import: Label Studio JSON export -> label records
# --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class LabelStudioExport:
    """What :func:`read_label_studio_export` read.

    Attributes
    ----------
    labels : tuple of dict
        One label record per annotation, in export order: ``{"item_id", "annotator",
        "value", "at", "origin": "label_studio", "ambiguous"}``. ``annotator`` is the
        Label Studio user id as text (an e-mail where the export gives only that),
        ``value`` the chosen choice ("" when a skipped annotation chose none), ``at`` the
        annotation's ``updated_at`` (else ``created_at``) in unix seconds, ``ambiguous``
        True for a skipped annotation or one choosing an ``ambiguous_choices`` entry.
    items : tuple of str
        The ``alcore_id`` of every task, in export order (tasks without annotations too).
    annotators : dict of str to str or None
        Each annotator id seen and its e-mail when the export carries it.
    n_tasks : int
        Tasks in the export.
    """

    labels: tuple[dict, ...]
    items: tuple[str, ...]
    annotators: dict[str, str | None] = field(repr=False)
    n_tasks: int = 0

    @property
    def ambiguous_items(self) -> tuple[str, ...]:
        """Items some annotator skipped or marked ambiguous, in export order."""
        return tuple(dict.fromkeys(r["item_id"] for r in self.labels if r["ambiguous"]))

    def latest(self) -> list[dict]:
        """One label record per (item, annotator): the latest by ``at`` (the later in the
        export on a tie), as the ledger keeps it; in export order of the kept records."""
        keep: dict[tuple[str, str], int] = {}
        for pos, r in enumerate(self.labels):
            key = (r["item_id"], r["annotator"])
            if key not in keep or r["at"] >= self.labels[keep[key]]["at"]:
                keep[key] = pos
        return [self.labels[pos] for pos in sorted(keep.values())]

    def triples(self) -> list[tuple[str, str, str | None]]:
        """``(item_id, annotator, label)`` of :meth:`latest`, the label None (missing) for
        an ambiguous record: a skip or an "unsure" is no vote for a class."""
        return [(r["item_id"], r["annotator"], None if r["ambiguous"] else r["value"])
                for r in self.latest()]

    def agreement(self, *, categories: Sequence[Any] | None = None):
        """:func:`alcore.monitor.agreement` over :meth:`triples`.

        Returns
        -------
        alcore.monitor.AgreementReport

        Raises
        ------
        InvalidInputError
            As :func:`alcore.monitor.agreement`: one annotator, no item labeled twice, or
            one class only among the items labeled twice.
        """
        from alcore.monitor import agreement

        return agreement(self.triples(), categories=categories)

    def _disagreements(self, threshold: float) -> set[str]:
        """Items whose per-item agreement is below ``threshold`` (ambiguous votes left out).

        :func:`alcore.monitor.agreement` refuses the two cases where nobody can disagree (no
        item labeled twice; one class only among those items): nothing to route then."""
        triples = [x for x in self.triples() if x[2] is not None]
        votes: dict[str, list[str]] = {}
        for item, _, label in triples:
            votes.setdefault(item, []).append(label)
        paired = [labels for labels in votes.values() if len(labels) >= 2]
        if not paired or len({c for labels in paired for c in labels}) < 2:
            return set()
        from alcore.monitor import agreement

        report = agreement(triples)
        return {str(report.items[j]) for j in report.disagreements(threshold)}

    def to_expert(self, threshold: float = 1.0) -> list[str]:
        """Item ids to route to the expert tier, in export order: those whose per-item
        agreement (the share of agreeing annotator pairs, as
        :meth:`alcore.monitor.AgreementReport.disagreements`) is below ``threshold``, and
        those some annotator skipped or marked ambiguous.

        Parameters
        ----------
        threshold : float in (0, 1], default 1.0
            1.0 routes every item on which two annotators disagree.

        Returns
        -------
        list of str
        """
        t = _threshold(threshold)
        routed = self._disagreements(t) | set(self.ambiguous_items)
        return [item for item in dict.fromkeys(r["item_id"] for r in self.labels)
                if item in routed]

    def to_ledger(self, ledger: Any, *, threshold: float = 1.0) -> dict:
        """Store the labels in a workflow ledger and route the items :meth:`to_expert`
        names to its expert tier, in one transaction (all or nothing).

        Parameters
        ----------
        ledger : alcore.workflow.Ledger, or the path of an existing ledger file
            A :class:`~alcore.workflow.Workflow` takes them with
            ``loop.submit_labels(list(export.labels))`` instead, which also retrains and
            (``expert_review=True``) routes the disputed items itself.
        threshold : float in (0, 1], keyword-only, default 1.0
            As :meth:`to_expert`.

        Returns
        -------
        dict
            ``{"labels": stored, "disagreements": [item ids], "ambiguous": [item ids]}``,
            also recorded as a ``label_studio_import`` event.

        Raises
        ------
        LedgerError
            A label for an item the ledger never queued (e.g. an export of another
            project), a busy ledger: nothing is written.
        """
        t = _threshold(threshold)
        order = list(dict.fromkeys(r["item_id"] for r in self.labels))
        disagree = self._disagreements(t)
        ambiguous = set(self.ambiguous_items)
        summary = {"labels": len(self.labels),
                   "disagreements": [i for i in order if i in disagree],
                   "ambiguous": [i for i in order if i in ambiguous]}
        if isinstance(ledger, str | os.PathLike):
            from alcore.workflow._ledger import Ledger

            with Ledger.open(ledger) as opened:
                return self.to_ledger(opened, threshold=t)
        with ledger.transaction():
            ledger.add_labels([dict(r) for r in self.labels])
            if summary["disagreements"]:
                ledger.route(summary["disagreements"], "expert",
                             "label studio: the annotators disagree")
            only_ambiguous = [i for i in summary["ambiguous"] if i not in disagree]
            if only_ambiguous:
                ledger.route(only_ambiguous, "expert",
                             "label studio: an annotator skipped it or marked it ambiguous")
            ledger.event("label_studio_import", {
                **summary, "threshold": t, "tasks": self.n_tasks,
                "annotators": sorted(self.annotators)})
        return summary


def _threshold(threshold: Any) -> float:
    return number(threshold, "threshold", low=0.0, high=1.0, low_open=True,
                  hint="pass the per-item agreement below which an item goes to the expert, "
                       "e.g. 1.0 (any disagreement) or 0.5")


def _load(source: Any) -> list:
    if isinstance(source, bytes | bytearray):
        try:
            text = bytes(source).decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise InvalidInputError(
                f"the export bytes are not UTF-8 text ({exc}); {_EXPORT_HINT}") from None
        return _parse(text, "the export text")
    # A string is the export's text when it looks like JSON or spans lines (no path does).
    if isinstance(source, str) and (source.lstrip()[:1] in ("[", "{") or "\n" in source):
        return _parse(source, "the export text")
    if isinstance(source, str | os.PathLike):
        path = os.fspath(source)
        try:
            with open(path, "rb") as fh:
                raw = fh.read()
        except FileNotFoundError:
            raise InvalidInputError(
                f"source {path!r} does not exist; pass the path of a Label Studio JSON "
                f"export, its text (a string starting with '['), or the parsed list"
                ) from None
        except OSError as exc:
            raise InvalidInputError(f"source {path!r} could not be read ({exc})") from None
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise InvalidInputError(
                f"source {path!r} is not UTF-8 text ({exc}); {_EXPORT_HINT}") from None
        return _parse(text, f"source {path!r}")
    if isinstance(source, list | tuple):
        return list(source)
    if isinstance(source, Mapping):
        raise _not_a_list(source, "source")
    raise InvalidInputError(
        f"source must be a path, the export's JSON text or the parsed list of tasks, got "
        f"{type(source).__name__}")


def _parse(text: str, what: str) -> list:
    try:
        parsed = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidInputError(
            f"{what} is not JSON ({exc.msg} at line {exc.lineno}, column {exc.colno}); "
            f"{_EXPORT_HINT}, not CSV/TSV/COCO") from None
    if not isinstance(parsed, list):
        raise _not_a_list(parsed, what)
    return parsed


def _not_a_list(parsed: Any, what: str) -> InvalidInputError:
    if isinstance(parsed, Mapping):
        keys = ", ".join(repr(k) for k in list(parsed)[:5])
        return InvalidInputError(
            f"{what} must be a JSON list of tasks, got an object (keys {keys}); "
            f"{_EXPORT_HINT}, whose top level is a list (a single task: wrap it in [...])")
    return InvalidInputError(
        f"{what} must be a JSON list of tasks, got {type(parsed).__name__}; {_EXPORT_HINT}")


def answer_time(annotation: Mapping) -> tuple[str, Any]:
    """(field, value) of the time an annotation's current answer was given: ``updated_at``
    (an edit keeps ``created_at``), else ``created_at``. The export reader and serve's
    webhook both use it, so one annotation is one label record whichever way it came."""
    field = "updated_at" if annotation.get("updated_at") is not None else "created_at"
    return field, annotation.get(field)


def _unix_seconds(value: Any, where: str, field: str = "created_at") -> float:
    if isinstance(value, str):
        m = _ISO.match(value.strip())
        if m:
            day, clock, frac, zone = m.groups()
            if clock.count(":") == 1:
                clock += ":00"
            zone = "+00:00" if zone in (None, "Z") else zone
            if len(zone) == 5:  # +0100
                zone = zone[:3] + ":" + zone[3:]
            frac = (frac or ".0")[:7].ljust(7, "0")  # microseconds: what 3.10 parses
            try:
                stamp = _dt.datetime.fromisoformat(f"{day}T{clock}{frac}{zone}")
            except ValueError:
                pass
            else:
                return stamp.timestamp()
    raise InvalidInputError(
        f"{where} {field} must be an ISO 8601 time such as '2024-05-01T12:00:00.000000Z' "
        f"(what Label Studio writes), got {shown(value)}; {_EXPORT_HINT}")


def _annotator(value: Any, where: str) -> tuple[str, str | None]:
    """(annotator id as text, e-mail or None) from ``completed_by``: a user id, an expanded
    user object, or an e-mail string."""
    if isinstance(value, Mapping):
        uid, email = value.get("id"), value.get("email")
        email = email if isinstance(email, str) and email else None
        if isinstance(uid, int) and not isinstance(uid, bool):
            return str(uid), email
        if email is not None:
            return email, email
    elif isinstance(value, int) and not isinstance(value, bool):
        return str(value), None
    elif isinstance(value, str) and value.strip():
        return value.strip(), (value.strip() if "@" in value else None)
    raise InvalidInputError(
        f"{where} completed_by must name the annotator (a user id, or an object with 'id' "
        f"or 'email'), got {shown(value)}; {_EXPORT_HINT}, which fills it for every "
        f"annotation")


def _choice(result: Any, where: str, from_name: str | None) -> tuple[str | None, list[str]]:
    """(the chosen class or None, the result types seen)."""
    if not isinstance(result, list):
        raise InvalidInputError(
            f"{where} result must be a list of regions, got {type(result).__name__}; "
            f"{_EXPORT_HINT}")
    chosen: list[tuple[str, str]] = []
    types: list[str] = []
    for j, region in enumerate(result):
        at = f"{where} result[{j}]"
        if not isinstance(region, Mapping):
            raise InvalidInputError(
                f"{at} must be an object with 'type' and 'value', got "
                f"{type(region).__name__}; {_EXPORT_HINT}")
        if from_name is not None and region.get("from_name") != from_name:
            continue
        kind = region.get("type")
        if not isinstance(kind, str) or kind.lower() not in _RESULT_TYPES:
            raise InvalidInputError(
                f"{at} has the unknown result type {shown(kind)}; alcore reads the 'choices' "
                f"of a <Choices> tag and knows Label Studio's result types "
                f"({', '.join(sorted(_RESULT_TYPES)[:6])}, ...); pass from_name= naming "
                f"your <Choices> tag to ignore the other tags' results")
        types.append(kind.lower())
        if kind.lower() != "choices":
            continue
        value = region.get("value")
        picked = value.get("choices") if isinstance(value, Mapping) else None
        if (not isinstance(picked, list) or not picked
                or not all(isinstance(c, str) for c in picked)):
            raise InvalidInputError(
                f"{at} value.choices must be a non-empty list of strings, got "
                f"{shown(picked)}; {_EXPORT_HINT}")
        if len(picked) > 1:
            raise InvalidInputError(
                f"{at} chose {len(picked)} classes {picked!r}; alcore's labels are single-"
                f"class: set choice=\"single\" on the <Choices> tag (or mark such items "
                f"with an 'ambiguous' choice)")
        chosen.append((str(region.get("from_name")), picked[0]))
    names = sorted({n for n, _ in chosen})
    if len(names) > 1:
        raise InvalidInputError(
            f"{where} has choices from several tags ({', '.join(map(repr, names))}); pass "
            f"from_name= naming the <Choices> tag that holds the class")
    return (chosen[0][1] if chosen else None), types


def read_label_studio_export(source: Any, *, from_name: str | None = None,
                             ambiguous_choices: Sequence[str] = ("ambiguous", "unsure")
                             ) -> LabelStudioExport:
    """Read Label Studio's JSON export into label records.

    Parameters
    ----------
    source : str, os.PathLike, bytes or list
        The export's path, its JSON text (a string starting with ``[``), or the parsed list
        of tasks. Every task's ``data`` must hold ``alcore_id`` (as tasks made by
        :func:`to_label_studio_tasks` do).
    from_name : str or None, keyword-only
        The ``name`` of the ``<Choices>`` tag holding the class. None reads the one
        ``<Choices>`` tag the results use (several are an error) and checks every
        result's type; a name ignores the other tags' results.
    ambiguous_choices : sequence of str, keyword-only, default ("ambiguous", "unsure")
        Choices meaning "the annotator cannot tell" (compared case-insensitively): such
        annotations, and skipped (cancelled) ones, are flagged ``ambiguous`` and route
        their item to the expert.

    Returns
    -------
    LabelStudioExport

    Raises
    ------
    InvalidInputError
        Not JSON, not a list, a task without ``data.alcore_id``, an annotation without
        ``result``, ``completed_by`` or ``created_at``, an unknown result type, a
        multi-class choice, a not-skipped annotation choosing no class: the message names
        the task (position and Label Studio id), the field and the fix. The whole export is
        checked before anything is returned.
    """
    if from_name is not None:
        from_name = _name(from_name, "from_name")
    if isinstance(ambiguous_choices, str) or not isinstance(ambiguous_choices, Iterable):
        raise InvalidInputError(
            f"ambiguous_choices must be a sequence of strings, got {shown(ambiguous_choices)}"
            f"; e.g. ambiguous_choices=('ambiguous', 'unsure'), or () for none")
    unsure = set()
    for c in ambiguous_choices:
        if not isinstance(c, str):
            raise InvalidInputError(
                f"ambiguous_choices must hold strings, got {type(c).__name__} {shown(c)}")
        unsure.add(c.casefold())
    tasks = _load(source)
    labels: list[dict] = []
    items: list[str] = []
    annotators: dict[str, str | None] = {}
    for i, task in enumerate(tasks):
        if not isinstance(task, Mapping):
            raise InvalidInputError(
                f"task {i} must be an object with 'data' and 'annotations', got "
                f"{type(task).__name__}; {_EXPORT_HINT}")
        tid = task.get("id")
        name = f"task {i}" + (f" (Label Studio id {tid})" if tid is not None else "")
        data = task.get("data")
        if not isinstance(data, Mapping):
            if "annotation_id" in task or "annotator" in task:
                raise InvalidInputError(
                    f"{name} has no 'data' but an 'annotator' field: this is a JSON_MIN "
                    f"export, which drops skipped annotations; {_EXPORT_HINT}")
            raise InvalidInputError(
                f"{name} has no 'data' object (got {shown(data)}); {_EXPORT_HINT}")
        item = data.get("alcore_id")
        if isinstance(item, int) and not isinstance(item, bool):
            item = str(item)
        if not isinstance(item, str) or not item:
            raise InvalidInputError(
                f"{name} data.alcore_id is {'missing' if 'alcore_id' not in data else shown(item)}"
                f"; only tasks made by alcore (to_label_studio_tasks, `alcore workflow next`)"
                f" can be imported: import those into the project, or delete the other tasks "
                f"from the export")
        items.append(item)
        annotations = task.get("annotations", [])
        if not isinstance(annotations, list):
            raise InvalidInputError(
                f"{name} annotations must be a list, got {type(annotations).__name__}; "
                f"{_EXPORT_HINT}")
        for k, ann in enumerate(annotations):
            aid = ann.get("id") if isinstance(ann, Mapping) else None
            where = f"{name} annotation {k}" + (f" (id {aid})" if aid is not None else "")
            if not isinstance(ann, Mapping):
                raise InvalidInputError(
                    f"{where} must be an object, got {type(ann).__name__}; {_EXPORT_HINT}")
            if "result" not in ann:
                raise InvalidInputError(
                    f"{where} has no 'result' field (the annotator's regions); "
                    f"{_EXPORT_HINT}")
            cancelled = ann.get("was_cancelled", False)
            if not isinstance(cancelled, bool):
                raise InvalidInputError(
                    f"{where} was_cancelled must be true or false, got {shown(cancelled)}; "
                    f"{_EXPORT_HINT}")
            value, types = _choice(ann["result"], where, from_name)
            if value is None and not cancelled:
                seen = f" (result types {sorted(set(types))})" if types else " (empty result)"
                raise InvalidInputError(
                    f"{where} chose no class{seen} and was not skipped; alcore reads the "
                    f"class from a <Choices> tag"
                    + (f" named {from_name!r}" if from_name else "")
                    + ": label the task in Label Studio, skip it, or remove the annotation")
            annotator, email = _annotator(ann.get("completed_by"), where)
            field, stamp = answer_time(ann)
            at = _unix_seconds(stamp, where, field)
            if annotators.get(annotator) is None:
                annotators[annotator] = email
            labels.append({
                "item_id": item, "annotator": annotator,
                "value": "" if value is None else value, "at": at,
                "origin": "label_studio",
                "ambiguous": bool(cancelled or (value is not None
                                                and value.casefold() in unsure)),
            })
    return LabelStudioExport(labels=tuple(labels), items=tuple(items),
                             annotators=annotators, n_tasks=len(tasks))
