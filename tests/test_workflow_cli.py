"""`alcore workflow init|next|import|status`: the loop over a ledger file, end to end on a
small Parquet pool, and its refusals (exit 2, one line on stderr, nothing written)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import polars as pl
import pytest
from clitools import run

N, C, D = 60, 3, 4
CLASSES = ["cat", "dog", "eel"]


def pool_table(n: int = N, seed: int = 0, ids: list[str] | None = None) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    return pl.DataFrame({
        "id": ids or [f"i{j:03d}" for j in range(n)],
        "probs": rng.dirichlet(np.ones(C), size=n).tolist(),
        "embedding": rng.normal(size=(n, D)).tolist(),
        "text": [f"item number {j}" for j in range(n)],
    })


@pytest.fixture
def pool(tmp_path):
    path = tmp_path / "pool.parquet"
    pool_table().write_parquet(path)
    return path


def init(tmp_path, pool, capsys, *extra):
    ledger = tmp_path / "alcore.db"
    code, out, err = run(["workflow", "init", ledger, "--pool", pool, "--data", "text",
                          "--classes", ",".join(CLASSES), "--budget", "30", *extra], capsys)
    assert code == 0, err
    return ledger, out


def status(ledger, capsys) -> dict:
    code, out, err = run(["workflow", "status", ledger, "--json"], capsys)
    assert code == 0, err
    return json.loads(out)


def export_of(tasks: list[dict], votes) -> list[dict]:
    """A Label Studio JSON export of ``tasks``: ``votes(position, task)`` gives one
    (annotator id, choice or None for a skip) pair per annotation."""
    out = []
    for pos, task in enumerate(tasks):
        annotations = []
        for k, (who, choice) in enumerate(votes(pos, task)):
            result = [] if choice is None else [{
                "from_name": "label", "to_name": "text", "type": "choices",
                "value": {"choices": [choice]}}]
            annotations.append({"id": 100 * pos + k, "completed_by": who, "result": result,
                                "was_cancelled": choice is None,
                                "created_at": f"2020-01-01T10:{k:02d}:00.000000Z"})
        out.append({"id": pos + 1, "data": task["data"], "annotations": annotations,
                    "predictions": task.get("predictions", [])})
    return out


def predicted(task: dict) -> str:
    return task["predictions"][0]["result"][0]["value"]["choices"][0]


def test_init_next_import_status_end_to_end(tmp_path, pool, capsys):
    ledger, out = init(tmp_path, pool, capsys)
    assert f"workflow over pool.parquet ({N} items, 0 labeled, 3 classes); budget 30" in out
    fresh = status(ledger, capsys)
    assert fresh["budget"] == {"total": 30, "spent": 0, "left": 30}
    assert fresh["queue"]["size"] == 0 and fresh["round"] == 0
    assert fresh["pool"]["rows"] == N and fresh["pool"]["classes"] == CLASSES

    tasks_path = tmp_path / "tasks.json"
    code, out, err = run(["workflow", "next", ledger, "-k", "10", "--out", tasks_path], capsys)
    assert code == 0, err
    assert out.startswith("round 1: 10 items queued (control 1, pool 9) -> ")
    tasks = json.loads(tasks_path.read_text())
    assert len(tasks) == 10
    ids = [t["data"]["alcore_id"] for t in tasks]
    assert len(set(ids)) == 10 and set(ids) <= {f"i{j:03d}" for j in range(N)}
    probs = np.array(pool_table()["probs"].to_list())
    for task in tasks:
        row = int(task["data"]["alcore_id"][1:])
        # Annotators see the pool's text and why the item was chosen; the prediction is the
        # model's class name with its probability.
        assert task["data"]["text"] == f"item number {row}"
        assert task["data"]["alcore_reason"]
        assert predicted(task) == CLASSES[int(np.argmax(probs[row]))]
        assert task["predictions"][0]["score"] == pytest.approx(probs[row].max())
    sources = [t["data"]["alcore_source"] for t in tasks]
    assert sources.count("control") == 1 and sources.count("pool") == 9

    queued = status(ledger, capsys)
    assert queued["budget"] == {"total": 30, "spent": 10, "left": 20}
    assert queued["queue"]["size"] == 10 and queued["round"] == 1

    # Two annotators: they agree on every item but the 2nd (a disagreement) and the 3rd
    # (skipped by one: ambiguous); the control item is labeled with the prediction.
    def votes(pos, task):
        first = predicted(task) if task["data"]["alcore_source"] == "control" else CLASSES[
            pos % C]
        if pos == 1:
            return [(1, first), (2, CLASSES[(pos + 1) % C])]
        if pos == 2:
            return [(1, first), (2, None)]
        return [(1, first), (2, first)]

    export = tmp_path / "export.json"
    export.write_text(json.dumps(export_of(tasks, votes)))
    code, out, err = run(["workflow", "import", ledger, export], capsys)
    assert code == 0, err
    assert ("export.json: 10 tasks, 19 labels on 10 items from 2 annotators (19 new or "
            "changed)") in out
    assert "agreement over 9 items labeled twice or more" in out
    assert f"2 items routed to the expert (1 marked ambiguous or skipped): {ids[1]}, " \
           f"{ids[2]}" in out

    after = status(ledger, capsys)
    assert after["labels"] == 10
    assert after["queue"] == {"size": 2, "by_tier": {"expert": 2}}
    assert sum(after["labels_per_source"].values()) == 10
    assert after["labels_per_source"] == {"control": 1, "pool": 9}
    # The control item's label equals its prediction: accuracy 1 on the control arm.
    assert after["control_accuracy"] == 1.0 and after["control"]["labeled"] == 1
    assert after["last_import"]["to_expert"] == [ids[1], ids[2]]
    # The same export again: nothing new, nothing routed twice, the same state.
    code, out, err = run(["workflow", "import", ledger, export], capsys)
    assert code == 0, err
    assert "(0 new or changed)" in out and "0 items routed to the expert" in out
    again = status(ledger, capsys)
    assert {k: again[k] for k in ("labels", "queue", "budget", "control_accuracy")} == {
        k: after[k] for k in ("labels", "queue", "budget", "control_accuracy")}

    # The expert's tasks, then a second batch that avoids every queued or labeled item.
    expert = tmp_path / "expert.json"
    code, out, err = run(["workflow", "next", ledger, "--queued", "--out", expert], capsys)
    assert code == 0, err
    routed = json.loads(expert.read_text())
    assert [t["data"]["alcore_id"] for t in routed] == [ids[1], ids[2]]
    assert {t["data"]["alcore_tier"] for t in routed} == {"expert"}
    second = tmp_path / "tasks2.json"
    code, out, err = run(["workflow", "next", ledger, "-k", "10", "--out", second], capsys)
    assert code == 0, err
    again = [t["data"]["alcore_id"] for t in json.loads(second.read_text())]
    assert len(again) == 10 and not set(again) & set(ids)

    code, out, err = run(["workflow", "status", ledger], capsys)
    assert code == 0, err
    assert "budget: 20 of 30 labels spent, 10 left" in out
    assert "control arm: model accuracy 1.000 on 1 random items" in out


def test_expert_label_after_routing_wins(tmp_path, pool, capsys):
    ledger, _ = init(tmp_path, pool, capsys, "--control-share", "0")
    tasks_path = tmp_path / "tasks.json"
    assert run(["workflow", "next", ledger, "-k", "2", "--out", tasks_path], capsys)[0] == 0
    tasks = json.loads(tasks_path.read_text())
    export = tmp_path / "export.json"
    export.write_text(json.dumps(export_of(tasks, lambda pos, t: [(1, "cat"), (2, "dog")])))
    assert run(["workflow", "import", ledger, export], capsys)[0] == 0
    assert status(ledger, capsys)["queue"]["by_tier"] == {"expert": 2}
    # The expert (user 3) labels both in the same project later: the next export holds
    # every annotation; the expert's, made after the routing, decide the items.
    later = export_of(tasks, lambda pos, t: [(1, "cat"), (2, "dog"), (3, "eel")])
    for task in later:
        task["annotations"][2]["created_at"] = "2099-01-01T00:00:00Z"
    export.write_text(json.dumps(later))
    code, out, err = run(["workflow", "import", ledger, export], capsys)
    assert code == 0, err
    assert "0 items routed to the expert" in out
    after = status(ledger, capsys)
    assert after["queue"]["size"] == 0 and after["labels"] == 2
    from alcore.workflow import Ledger

    with Ledger.open(ledger) as db:
        experts = [x for x in db.labels() if x["origin"] == "expert"]
    assert sorted(x["item_id"] for x in experts) == sorted(t["data"]["alcore_id"]
                                                           for t in tasks)
    assert {x["value"] for x in experts} == {"eel"}


def one_line_error(code, err, message):
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("alcore: error: ") and message in lines[0]


def test_missing_ledger_is_one_line(tmp_path, capsys):
    missing = tmp_path / "none.db"
    for args in (["next", missing, "-k", "3", "--out", tmp_path / "t.json"],
                 ["status", missing], ["import", missing, tmp_path / "e.json"]):
        code, _, err = run(["workflow", *args], capsys)
        one_line_error(code, err, f"no ledger at {missing}; create one with alcore workflow "
                                  f"init {missing} --pool POOL")
    assert not missing.exists() and not (tmp_path / "t.json").exists()


def test_foreign_file_is_refused(tmp_path, capsys):
    other = tmp_path / "notes.db"
    other.write_text("not a ledger")
    code, _, err = run(["workflow", "status", other], capsys)
    one_line_error(code, err, "is not an alcore ledger (not a SQLite file)")
    assert other.read_text() == "not a ledger"


@pytest.mark.parametrize("change, message", [
    (lambda: pool_table(N + 1), f"pool.parquet has changed: it holds {N + 1} rows, the "
                                f"ledger alcore.db was made on {N}"),
    (lambda: pool_table(ids=[f"i{j:03d}" for j in range(N - 1)] + ["x"]),
     "pool.parquet has changed: its ids differ from the ones the ledger alcore.db was made "
     "on"),
    (lambda: pool_table(ids=[f"i{j:03d}" for j in range(N)][::-1]),
     "its ids differ"),
])
def test_changed_pool_is_refused(tmp_path, pool, capsys, change, message):
    ledger, _ = init(tmp_path, pool, capsys)
    change().write_parquet(pool)
    out = tmp_path / "t.json"
    code, _, err = run(["workflow", "next", ledger, "-k", "3", "--out", out], capsys)
    one_line_error(code, err, message)
    assert not out.exists()
    # status reads the ledger only: it still answers.
    assert status(ledger, capsys)["queue"]["size"] == 0


def test_refreshed_probabilities_are_accepted(tmp_path, pool, capsys):
    ledger, _ = init(tmp_path, pool, capsys)
    pool_table(seed=5).write_parquet(pool)  # same ids and rows, a retrained model's outputs
    out = tmp_path / "t.json"
    code, _, err = run(["workflow", "next", ledger, "-k", "3", "--out", out], capsys)
    assert code == 0, err
    probs = np.array(pool_table(seed=5)["probs"].to_list())
    for task in json.loads(out.read_text()):
        row = int(task["data"]["alcore_id"][1:])
        assert predicted(task) == CLASSES[int(np.argmax(probs[row]))]


@pytest.mark.parametrize("k, message", [
    ("0", "argument -k: expected a positive integer, got 0"),
    ("5k", "argument -k: expected a whole number of items, e.g. 1000, got '5k'"),
    ("-3", "argument -k: expected"),
    ("2.5", "argument -k: expected a whole number of items"),
])
def test_bad_k_exits_2(tmp_path, pool, capsys, k, message):
    ledger, _ = init(tmp_path, pool, capsys)
    code, _, err = run(["workflow", "next", ledger, "-k", k, "--out", tmp_path / "t.json"],
                       capsys)
    assert code == 2 and message in err.strip().splitlines()[-1]
    assert "Traceback" not in err and not (tmp_path / "t.json").exists()
    assert status(ledger, capsys)["queue"]["size"] == 0


def test_missing_or_double_k_is_one_line(tmp_path, pool, capsys):
    ledger, _ = init(tmp_path, pool, capsys)
    code, _, err = run(["workflow", "next", ledger, "--out", tmp_path / "t.json"], capsys)
    one_line_error(code, err, "-k is required: how many items to queue")
    code, _, err = run(["workflow", "next", ledger, "--queued", "-k", "2", "--out",
                        tmp_path / "t.json"], capsys)
    one_line_error(code, err, "--queued writes the items already queued; leave out -k")


def test_existing_out_is_not_overwritten(tmp_path, pool, capsys):
    ledger, _ = init(tmp_path, pool, capsys)
    out = tmp_path / "tasks.json"
    out.write_text("keep")
    code, _, err = run(["workflow", "next", ledger, "-k", "3", "--out", out], capsys)
    one_line_error(code, err, f"{out} exists; pass --overwrite to replace it")
    assert out.read_text() == "keep"
    assert status(ledger, capsys)["queue"]["size"] == 0  # nothing was queued either
    code, _, err = run(["workflow", "next", ledger, "-k", "3", "--out", out, "--overwrite"],
                       capsys)
    assert code == 0, err
    assert len(json.loads(out.read_text())) == 3
    code, _, err = run(["workflow", "next", ledger, "-k", "3", "--out", tmp_path / "t.csv"],
                       capsys)
    one_line_error(code, err, "Label Studio tasks are written as JSON; name a .json file")


def test_existing_ledger_is_not_replaced(tmp_path, pool, capsys):
    ledger, _ = init(tmp_path, pool, capsys)
    code, _, err = run(["workflow", "init", ledger, "--pool", pool], capsys)
    one_line_error(code, err, "alcore.db exists; pass --overwrite to replace it")
    code, _, err = run(["workflow", "init", ledger, "--pool", pool, "--budget", "7",
                        "--overwrite"], capsys)
    assert code == 0, err
    assert status(ledger, capsys)["budget"]["total"] == 7


def test_from_name_picks_the_choices_tag(tmp_path, pool, capsys):
    ledger, _ = init(tmp_path, pool, capsys, "--control-share", "0")
    tasks_path = tmp_path / "t.json"
    assert run(["workflow", "next", ledger, "-k", "2", "--out", tasks_path], capsys)[0] == 0
    tasks = json.loads(tasks_path.read_text())
    export = export_of(tasks, lambda pos, t: [(1, "cat")])
    for task in export:  # a second <Choices> tag (e.g. quality) in the same annotation
        task["annotations"][0]["result"].append({
            "from_name": "quality", "to_name": "text", "type": "choices",
            "value": {"choices": ["good"]}})
    path = tmp_path / "export.json"
    path.write_text(json.dumps(export))
    code, _, err = run(["workflow", "import", ledger, path], capsys)
    one_line_error(code, err, "has choices from several tags ('label', 'quality'); pass "
                              "--from-name naming the <Choices> tag")
    code, _, err = run(["workflow", "import", ledger, path, "--from-name", "label"], capsys)
    assert code == 0, err
    assert status(ledger, capsys)["labels"] == 2


@pytest.mark.parametrize("export, message", [
    ("not json at all", "export.json"),
    (json.dumps({"data": {}}), "export.json"),
    (json.dumps([{"id": 1, "data": {"text": "x"}, "annotations": []}]),
     "task 0 (Label Studio id 1) data.alcore_id is missing"),
    (json.dumps([{"id": 1, "data": {"alcore_id": "i000"}, "annotations": [
        {"id": 5, "result": [], "was_cancelled": False, "completed_by": 1,
         "created_at": "2030-01-01T00:00:00Z"}]}]), "chose no class"),
])
def test_malformed_export_is_one_line_and_writes_nothing(tmp_path, pool, capsys, export,
                                                         message):
    ledger, _ = init(tmp_path, pool, capsys)
    assert run(["workflow", "next", ledger, "-k", "3", "--out", tmp_path / "t.json"],
               capsys)[0] == 0
    before = status(ledger, capsys)
    path = tmp_path / "export.json"
    path.write_text(export)
    code, _, err = run(["workflow", "import", ledger, path], capsys)
    one_line_error(code, err, message)
    assert status(ledger, capsys) == before


def test_export_of_other_items_or_classes_writes_nothing(tmp_path, pool, capsys):
    ledger, _ = init(tmp_path, pool, capsys)
    tasks_path = tmp_path / "t.json"
    assert run(["workflow", "next", ledger, "-k", "3", "--out", tasks_path], capsys)[0] == 0
    tasks = json.loads(tasks_path.read_text())
    before = status(ledger, capsys)
    stranger = [dict(tasks[0], data={**tasks[0]["data"], "alcore_id": "i059x"}), *tasks[1:]]
    path = tmp_path / "export.json"
    path.write_text(json.dumps(export_of(stranger, lambda pos, t: [(1, "cat")])))
    code, _, err = run(["workflow", "import", ledger, path], capsys)
    one_line_error(code, err, "task with alcore_id 'i059x' is not in the ledger alcore.db")
    path.write_text(json.dumps(export_of(tasks, lambda pos, t: [(1, "cow")])))
    code, _, err = run(["workflow", "import", ledger, path], capsys)
    one_line_error(code, err, "is labeled 'cow', which is not one of the ledger's classes "
                              "(cat, dog, eel)")
    assert status(ledger, capsys) == before


def test_bad_init_options(tmp_path, pool, capsys):
    ledger = tmp_path / "l.db"
    cases = [
        (["--classes", "a,b"], "--classes names 2 classes, but the pool's probabilities have "
                               "3 columns"),
        (["--classes", "a,a,b"], "--classes lists a name twice"),
        (["--control-share", "1"], "--control-share must be in [0, 1), got 1"),
        (["--data", "nope"], "no column 'nope' for --data"),
        (["--id", "nope"], "no id column 'nope'"),
    ]
    for extra, message in cases:
        code, _, err = run(["workflow", "init", ledger, "--pool", pool, *extra], capsys)
        one_line_error(code, err, message)
        assert not ledger.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["pool.parquet"]


def test_budget_runs_out(tmp_path, pool, capsys):
    ledger = tmp_path / "l.db"
    assert run(["workflow", "init", ledger, "--pool", pool, "--budget", "4"], capsys)[0] == 0
    out = tmp_path / "t.json"
    code, _, err = run(["workflow", "next", ledger, "-k", "10", "--out", out], capsys)
    assert code == 0 and "fewer than -k 10 items: the budget is spent" in err
    assert len(json.loads(out.read_text())) == 4
    code, _, err = run(["workflow", "next", ledger, "-k", "1", "--out", tmp_path / "u.json"],
                       capsys)
    one_line_error(code, err, "the budget of 4 labels is spent; nothing was queued")


def test_missing_pool_file_is_one_line(tmp_path, pool, capsys):
    ledger, _ = init(tmp_path, pool, capsys)
    pool.unlink()
    code, _, err = run(["workflow", "next", ledger, "-k", "3", "--out", tmp_path / "t.json"],
                       capsys)
    one_line_error(code, err, f"the ledger's pool file {pool} is missing; restore it")


def test_csv_pool_with_logit_columns_labeled_rows_and_row_numbers(tmp_path, capsys):
    rng = np.random.default_rng(3)
    z = rng.normal(size=(N, C)) * 3
    done = np.zeros(N, dtype=bool)
    done[::3] = True
    table = pl.DataFrame({f"z{j}": z[:, j] for j in range(C)}).with_columns(
        done=pl.Series(done.astype(int)))
    path = tmp_path / "pool.csv"
    table.write_csv(path)
    ledger = tmp_path / "l.db"
    code, out, err = run(["workflow", "init", ledger, "--pool", path, "--probs", "z*",
                          "--logits", "--labeled", "done", "--control-share", "0.5"], capsys)
    assert code == 0, err
    assert f"({N} items, {done.sum()} labeled, 3 classes); budget {N - done.sum()}" in out
    assert "item ids are row numbers (0-based)" in err
    tasks_path = tmp_path / "t.json"
    code, _, err = run(["workflow", "next", ledger, "-k", str(N), "--out", tasks_path],
                       capsys)
    assert code == 0, err
    tasks = json.loads(tasks_path.read_text())
    rows = sorted(int(t["data"]["alcore_id"]) for t in tasks)
    # Every unlabeled row once (budget = the unlabeled items), no labeled row.
    assert rows == np.flatnonzero(~done).tolist()
    softmax = np.exp(z - z.max(axis=1, keepdims=True))
    softmax /= softmax.sum(axis=1, keepdims=True)
    for task in tasks:
        row = int(task["data"]["alcore_id"])
        assert predicted(task) == str(int(np.argmax(z[row])))
        assert task["predictions"][0]["score"] == pytest.approx(softmax[row].max())


@pytest.mark.parametrize("probs, extra, message", [
    ([[0.5, 0.3, 0.1]], [], "--normalize"),
    ([[0.5, 0.3, 0.1]], ["--normalize"], None),
    ([[float("nan"), 0.5, 0.5]], [], "fill in or drop that row in the file"),
    ([[-0.5, 1.0, 0.5]], [], "pool.parquet"),
])
def test_probability_rows_are_checked_as_select_checks_them(tmp_path, capsys, probs, extra,
                                                            message):
    table = pool_table()
    rows = table["probs"].to_list()
    rows[7] = probs[0]
    path = tmp_path / "pool.parquet"
    table.with_columns(probs=pl.Series(rows)).write_parquet(path)
    code, _, err = run(["workflow", "init", tmp_path / "l.db", "--pool", path, *extra],
                       capsys)
    if message is None:
        assert code == 0, err
    else:
        one_line_error(code, err, message)
        assert "row 7" in err and not (tmp_path / "l.db").exists()


def test_next_after_unanimous_single_class_labels(tmp_path, pool, capsys):
    ledger, _ = init(tmp_path, pool, capsys)
    tasks_path = tmp_path / "t.json"
    assert run(["workflow", "next", ledger, "-k", "4", "--out", tasks_path], capsys)[0] == 0
    export = tmp_path / "e.json"
    export.write_text(json.dumps(export_of(json.loads(tasks_path.read_text()),
                                           lambda pos, t: [(1, "cat"), (2, "cat")])))
    assert run(["workflow", "import", ledger, export], capsys)[0] == 0
    code, _, err = run(["workflow", "next", ledger, "-k", "4", "--out", tmp_path / "u.json"],
                       capsys)
    assert code == 0, err


def test_audit_sketches_the_pool_and_audits_each_batch(tmp_path, pool, capsys):
    ledger, _ = init(tmp_path, pool, capsys, "--audit")
    sketch = tmp_path / "alcore.db.sketch.npz"
    assert sketch.is_file()
    assert status(ledger, capsys)["last_audit"] is None
    assert run(["workflow", "next", ledger, "-k", "12", "--out", tmp_path / "t.json"],
               capsys)[0] == 0
    audit = status(ledger, capsys)["last_audit"]
    assert audit["items"] == 12 and audit["n_selected"] == 12 and audit["n_pool"] == N
    code, out, _ = run(["workflow", "status", ledger], capsys)
    assert code == 0 and "last audit: 12 items" in out
    sketch.unlink()
    code, _, err = run(["workflow", "next", ledger, "-k", "3", "--out",
                        tmp_path / "after.json"], capsys)
    one_line_error(code, err, f"the ledger's pool sketch {sketch} is missing")
    table = pool_table().drop("embedding")
    bare = tmp_path / "bare.parquet"
    table.write_parquet(bare)
    code, _, err = run(["workflow", "init", tmp_path / "b.db", "--pool", bare, "--audit"],
                       capsys)
    one_line_error(code, err, "--audit sketches the pool's embeddings: bare.parquet has no "
                              "column 'embedding' or 'emb'")
    assert not (tmp_path / "b.db").exists()


def test_ledger_not_made_by_init_and_missing_export(tmp_path, pool, capsys):
    from alcore.workflow import PoolSource, Workflow

    python_made = tmp_path / "py.db"
    workflow = Workflow(python_made, budget=5, sources=[PoolSource(np.full((4, 2), 0.5))])
    workflow.ledger.close()
    code, _, err = run(["workflow", "status", python_made], capsys)
    one_line_error(code, err, "py.db was not made by alcore workflow init (it names no pool "
                              "file)")
    ledger, _ = init(tmp_path, pool, capsys)
    code, _, err = run(["workflow", "import", ledger, tmp_path / "nope.json"], capsys)
    one_line_error(code, err, "nope.json: no such file (Label Studio: Export -> JSON)")


def test_status_reads_the_ledger_only(tmp_path, pool, capsys):
    """status never opens the pool file: it answers after the file was moved, while the
    steps that select (next) refuse and say what is missing."""
    ledger, _ = init(tmp_path, pool, capsys)
    assert run(["workflow", "next", ledger, "-k", "5", "--out", tmp_path / "t.json"],
               capsys)[0] == 0
    before = status(ledger, capsys)
    pool.rename(tmp_path / "moved.parquet")
    assert status(ledger, capsys) == before
    code, out, err = run(["workflow", "status", ledger], capsys)
    assert code == 0, err
    assert out.startswith(f"{ledger}: round 1, pool pool.parquet ({N} items)\n")


def test_python_dash_m_alcore_is_the_command_line(tmp_path):
    env = {k: x for k, x in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run([sys.executable, "-m", "alcore", "workflow", "status",
                           str(tmp_path / "none.db")], capture_output=True, text=True,
                          cwd=tmp_path, env=env, timeout=120)
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == (f"alcore: error: no ledger at {tmp_path / 'none.db'}; create one "
                           f"with alcore workflow init {tmp_path / 'none.db'} --pool POOL\n")


def test_import_of_an_edited_annotation_replaces_the_label(tmp_path, pool, capsys):
    """An edit in Label Studio keeps the annotation's created_at and moves updated_at: the
    next export's label replaces the first; importing it again changes nothing."""
    ledger, _ = init(tmp_path, pool, capsys)
    tasks_path = tmp_path / "tasks.json"
    assert run(["workflow", "next", ledger, "-k", "3", "--out", tasks_path], capsys)[0] == 0
    tasks = json.loads(tasks_path.read_text())
    first = export_of(tasks[:1], lambda pos, task: [(1, "cat")])
    path = tmp_path / "export.json"
    path.write_text(json.dumps(first))
    assert run(["workflow", "import", ledger, path], capsys)[0] == 0
    edited = json.loads(json.dumps(first))
    edited[0]["annotations"][0]["result"][0]["value"]["choices"] = ["dog"]
    edited[0]["annotations"][0]["updated_at"] = "2020-01-01T11:00:00.000000Z"
    path.write_text(json.dumps(edited))
    for expect in ("(1 new or changed)", "(0 new or changed)"):
        code, out, err = run(["workflow", "import", ledger, path], capsys)
        assert code == 0, err
        assert expect in out
    item = tasks[0]["data"]["alcore_id"]
    from alcore.workflow import Ledger

    with Ledger.open(ledger) as db:
        assert [(x["annotator"], x["value"]) for x in db.labels(item)] == [("1", "dog")]
