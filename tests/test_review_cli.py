"""Review of the command line and alcore.io with real files: each test is a defect found by
trying the CLI as a newcomer would, and fails on the code before its fix."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest
from clitools import run

import alcore


def margin_ref(probs):
    top = np.sort(np.asarray(probs, dtype=np.float64), axis=1)
    return 1 - (top[:, -1] - top[:, -2])


def write_ndjson(path, rows):
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


# --- NDJSON pools without an id column -------------------------------------------------


def test_select_ndjson_without_id_column_uses_row_numbers(tmp_path, capsys):
    """Before: 'noid.ndjson: could not be read as ndjson (id)' (the text override for the
    default id column made polars' NDJSON reader fail)."""
    probs = [[0.5, 0.5], [0.9, 0.1], [0.6, 0.4], [0.2, 0.8]]
    pool = write_ndjson(tmp_path / "noid.ndjson", [{"probs": p} for p in probs])
    out = tmp_path / "b.csv"
    code, _, err = run(["select", pool, "-k", 2, "--out", out], capsys)
    assert code == 0, err
    assert "row numbers" in err
    batch = pl.read_csv(out)
    order = np.lexsort((np.arange(4), -margin_ref(probs)))[:2]
    assert batch["id"].to_list() == order.tolist() == [0, 2]


def test_gate_ndjson_without_id_column(tmp_path, capsys):
    pool = write_ndjson(tmp_path / "noid.ndjson", [{"probs": [0.5, 0.5]}] * 20)
    out = tmp_path / "d.csv"
    code, _, err = run(["gate", pool, "--out", out], capsys)
    assert code == 0, err
    assert pl.read_csv(out)["row"].to_list() == list(range(20))


def test_ndjson_missing_named_id_is_the_id_message(tmp_path, capsys):
    """Before: 'could not be read as ndjson (nope)'."""
    pool = write_ndjson(tmp_path / "p.ndjson", [{"id": "a", "probs": [0.5, 0.5]}])
    out = tmp_path / "b.csv"
    code, _, err = run(["select", pool, "-k", 1, "--id", "nope", "--out", out], capsys)
    assert code == 2
    assert "no id column 'nope'" in err and "--id" in err and "id=" not in err
    assert not out.exists()


def test_read_pool_and_top_k_ndjson_without_id(tmp_path):
    pool = write_ndjson(tmp_path / "noid.ndjson",
                        [{"probs": [0.5, 0.5]}, {"probs": [0.7, 0.3]}])
    with pytest.raises(alcore.InvalidInputError, match=r"no id column 'id'.*id=None"):
        alcore.io.read_pool(pool)
    with pytest.raises(alcore.InvalidInputError, match=r"no id column 'id'.*id=None"):
        alcore.io.top_k_from_file(pool, 1)
    assert alcore.io.read_pool(pool, id=None).ids.tolist() == [0, 1]
    rows, ids, _ = alcore.io.top_k_from_file(pool, 1, id=None)
    assert rows.tolist() == ids.tolist() == [0]


def test_ndjson_numeric_ids_still_text(tmp_path):
    pool = write_ndjson(tmp_path / "p.ndjson", [{"id": 7, "probs": [0.5, 0.5]}])
    assert alcore.io.read_pool(pool).ids.tolist() == ["7"]


# --- Duplicate ids ---------------------------------------------------------------------


def test_select_refuses_duplicate_ids(tmp_path, capsys):
    """Before: a batch 'b, b, b' that cannot be traced back to its rows."""
    pool = tmp_path / "dup.csv"
    pl.DataFrame({"id": ["a", "a", "a", "b", "b", "b"],
                  "p0": [0.1, 0.2, 0.3, 0.4, 0.5, 0.6],
                  "p1": [0.9, 0.8, 0.7, 0.6, 0.5, 0.4]}).write_csv(pool)
    out = tmp_path / "b.csv"
    code, _, err = run(["select", pool, "-k", 3, "--out", out], capsys)
    assert code == 2
    assert "holds 'a' more than once (rows 0, 1, 2" in err and "--id" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


# --- One numbered column where a pattern was meant --------------------------------------


def pool_csv(tmp_path):
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(4), size=30)
    emb = rng.normal(size=(30, 3))
    path = tmp_path / "pool.csv"
    pl.DataFrame({"id": [f"{i:04d}" for i in range(30)],
                  **{f"p{j}": probs[:, j] for j in range(4)},
                  **{f"e{j}": emb[:, j] for j in range(3)}}).write_csv(path)
    return path, probs, emb


def test_probs_one_of_numbered_columns_is_refused(tmp_path, capsys):
    """Before: --probs p0 in a 4-class file was read as a binary [1 - p0, p0] and a batch
    was written, ranked by a score of the wrong model."""
    pool, _, _ = pool_csv(tmp_path)
    out = tmp_path / "b.csv"
    for command in (["select", pool, "-k", 3], ["gate", pool]):
        code, _, err = run([*command, "--probs", "p0", "--out", out], capsys)
        assert code == 2
        assert "--probs p0 names one column" in err and "p1, p2, p3" in err
        assert "--probs 'p*'" in err and "probs=" not in err
        assert not out.exists()
    with pytest.raises(alcore.InvalidInputError, match=r"probs='p\*'"):
        alcore.io.read_pool(pool, probs="p2")


def test_embeddings_one_of_numbered_columns_is_refused(tmp_path, capsys):
    pool, _, _ = pool_csv(tmp_path)
    out = tmp_path / "b.csv"
    code, _, err = run(["select", pool, "-k", 3, "--embeddings", "e1", "--diversity",
                        "kcenter", "--out", out], capsys)
    assert code == 2
    assert "--embeddings e1 names one column" in err and "--embeddings 'e*'" in err
    assert not out.exists()


def test_single_binary_column_and_pattern_still_work(tmp_path, capsys):
    pool, probs, _ = pool_csv(tmp_path)
    out = tmp_path / "b.csv"
    code, _, err = run(["select", pool, "-k", 3, "--probs", "p*", "--embeddings", "e*",
                        "--diversity", "none", "--out", out], capsys)
    assert code == 0, err
    expected = np.lexsort((np.arange(30), -margin_ref(probs)))[:3]
    assert pl.read_csv(out, schema_overrides={"id": pl.String})["id"].to_list() == [
        f"{i:04d}" for i in expected]
    binary = tmp_path / "binary.csv"
    p = np.array([0.1, 0.45, 0.9, 0.6])
    pl.DataFrame({"id": ["w", "x", "y", "z"], "p": p}).write_csv(binary)
    code, _, err = run(["select", binary, "-k", 2, "--probs", "p", "--out",
                        tmp_path / "c.csv"], capsys)
    assert code == 0, err
    assert pl.read_csv(tmp_path / "c.csv")["id"].to_list() == ["x", "z"]


# --- simulate: more labels than the pool holds ------------------------------------------


def test_simulate_refuses_more_labels_than_the_pool(tmp_path, capsys):
    """Before: after fitting, 'alcore: error: -k must be a positive integer, got 0' (a flag
    simulate does not have)."""
    rng = np.random.default_rng(0)
    data = tmp_path / "d.csv"
    pl.DataFrame({"f0": rng.normal(size=60), "f1": rng.normal(size=60),
                  "y": np.repeat([0, 1], 30)}).write_csv(data)
    out = tmp_path / "sim"
    code, _, err = run(["simulate", "--dataset", data, "--label-column", "y", "--rounds", 10,
                        "--batch", 10, "--seeds", 1, "--out", out], capsys)
    assert code == 2
    assert "need 100 labels, but the pool holds 42 items (60 rows" in err
    assert "--rounds" in err and "--batch" in err and "-k" not in err
    assert not out.exists()


def test_simulate_table_explains_labels_to_98():
    from alcore import simulate

    results = {"labels": [10, 20], "full_accuracy": 0.9, "seeds": 1, "best": "random",
               "strategies": {"random": {"aulc": 0.5, "aulc_ci": None, "final": 0.6,
                                         "labels_to_98pct": None, "select_seconds": 0.0,
                                         "vs_best": {"difference": 0.0, "ci": None,
                                                     "distinguishable": False}}}}
    text = simulate.table(results)
    assert "98% of it (-: not within 20 labels)" in text


# --- io: the same rows in the same order, float32 and float64, ties ---------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("ext", ["parquet", "arrow", "ndjson", "csv"])
def test_read_pool_and_top_k_from_file_agree(tmp_path, dtype, ext):
    rng = np.random.default_rng(1)
    n = 500
    probs = rng.dirichlet(np.ones(3), size=n).astype(dtype)
    probs[::7] = probs[3]  # ties
    ids = [f"{i:05d}" for i in range(n)]
    done = np.zeros(n, dtype=bool)
    done[::13] = True
    if ext == "csv":
        table = pl.DataFrame({"id": ids, **{f"p{j}": probs[:, j] for j in range(3)},
                              "done": done})
    else:
        table = pl.DataFrame({"id": ids, "probs": probs, "done": done})
    path = tmp_path / f"pool.{ext}"
    {"parquet": table.write_parquet, "arrow": table.write_ipc, "ndjson": table.write_ndjson,
     "csv": table.write_csv}[ext](path)
    pool = alcore.io.read_pool(path, labeled="done")
    for chunk in (97, n):
        rows, got_ids, scores = alcore.io.top_k_from_file(path, 60, labeled="done",
                                                          chunk_rows=chunk)
        reference = margin_ref(pool.probs)
        reference[pool.labeled] = -np.inf
        expected = np.lexsort((np.arange(n), -reference))[:60]
        assert rows.tolist() == expected.tolist()
        assert rows.tolist() == alcore.select_top(pool.probs, 60,
                                                  labeled=pool.labeled).tolist()
        assert got_ids.tolist() == [ids[i] for i in expected]
        assert scores.dtype == pool.probs.dtype


# --- Messages in flags, labeled columns as pandas writes them ---------------------------


def test_spread_shortfall_note_names_flags(tmp_path, capsys):
    """Before: 'lower min_distance= or raise candidates=' (Python arguments) in the note."""
    pool = tmp_path / "p.parquet"
    emb = np.array([[0.0, 0.0], [0.1, 0.0], [0.2, 0.0], [9.0, 0.0]], dtype=np.float32)
    probs = np.array([[0.5, 0.5], [0.6, 0.4], [0.7, 0.3], [0.9, 0.1]], dtype=np.float32)
    pl.DataFrame({"id": ["a", "b", "c", "d"], "probs": probs, "embedding": emb}).write_parquet(
        pool)
    out = tmp_path / "b.csv"
    code, _, err = run(["select", pool, "-k", 3, "--diversity", "spread", "--min-distance",
                        1, "--out", out], capsys)
    assert code == 0, err
    assert pl.read_csv(out)["id"].to_list() == ["a", "d"]
    assert "--min-distance" in err and "min_distance=" not in err
    assert "candidates=" not in err and "k=" not in err


def test_labeled_column_of_float_zeros_and_ones(tmp_path, capsys):
    """Before: a 1.0/0.0 column (pandas writes floats) was refused as not '0/1'."""
    pool = tmp_path / "p.csv"
    pool.write_text("id,p0,p1,done\n001,0.5,0.5,1.0\n002,0.4,0.6,0.0\n003,0.2,0.8,0.0\n")
    out = tmp_path / "b.csv"
    code, _, err = run(["select", pool, "-k", 1, "--labeled", "done", "--out", out], capsys)
    assert code == 0, err
    assert pl.read_csv(out, schema_overrides={"id": pl.String})["id"].to_list() == ["002"]
    assert alcore.io.read_pool(pool, labeled="done").labeled.tolist() == [True, False, False]
    pool.write_text("id,p0,p1,done\n001,0.5,0.5,1.0\n002,0.4,0.6,0.5\n")
    code, _, err = run(["select", pool, "-k", 1, "--labeled", "done", "--out", out,
                        "--overwrite"], capsys)
    assert code == 2 and "must hold true/false (or 0/1)" in err and "0.5" in err


def test_summary_does_not_claim_a_narrowing_that_did_not_happen(tmp_path, capsys):
    """Before: '-k 150' of 200 items printed 'kcenter over the 5 x k best by margin' while
    every item was a candidate (the reasons said 'among the top 200 candidates')."""
    rng = np.random.default_rng(0)
    pool = tmp_path / "p.parquet"
    pl.DataFrame({"id": np.arange(200), "probs": rng.dirichlet(np.ones(3), size=200),
                  "embedding": rng.normal(size=(200, 2))}).write_parquet(pool)
    code, out, err = run(["select", pool, "-k", 150, "--out", tmp_path / "a.csv"], capsys)
    assert code == 0, err
    assert "kcenter over the pool (margin)" in out and "5 x k" not in out
    code, out, err = run(["select", pool, "-k", 10, "--out", tmp_path / "b.csv"], capsys)
    assert code == 0, err
    assert "kcenter over the 5 x k best by margin" in out


def test_select_refuses_empty_ids(tmp_path, capsys):
    """Before: a batch row with an empty id, which no annotator can find."""
    pool = tmp_path / "p.csv"
    pool.write_text("id,p0,p1\n001,0.5,0.5\n,0.4,0.6\n003,0.3,0.7\n")
    out = tmp_path / "b.csv"
    code, _, err = run(["select", pool, "-k", 3, "--out", out], capsys)
    assert code == 2 and "the id column 'id' is empty in row 1" in err
    assert len(err.strip().splitlines()) == 1 and not out.exists()


def test_rejected_pool_without_ids_gets_one_error_line(tmp_path, capsys):
    """Before: the 'no id column; row numbers' note, then the error: two lines."""
    pool = tmp_path / "p.csv"
    pool.write_text("a,b\n0.5,0.5\n")
    code, _, err = run(["select", pool, "-k", 1, "--out", tmp_path / "b.csv"], capsys)
    assert code == 2 and "no probabilities" in err
    assert len(err.strip().splitlines()) == 1


def test_semicolon_csv_is_named_as_such(tmp_path, capsys):
    """Before: 'no probabilities ... columns are id;p0;p1' (one column)."""
    pool = tmp_path / "p.csv"
    pool.write_text("id;p0;p1\n001;0.5;0.5\n")
    code, _, err = run(["select", pool, "-k", 1, "--out", tmp_path / "b.csv"], capsys)
    assert code == 2
    assert "separated by ';'" in err and "comma-separated" in err


def test_pattern_over_numbered_columns_and_another_is_refused(tmp_path, capsys):
    """Before: --embeddings 'e*' over e0, e1 and 'entropy' took entropy as a third
    embedding dimension, silently."""
    pool = tmp_path / "p.csv"
    pool.write_text("id,p0,p1,e0,e1,entropy\n001,0.5,0.5,1,2,0.3\n002,0.4,0.6,1,3,0.2\n")
    out = tmp_path / "b.csv"
    code, _, err = run(["select", pool, "-k", 1, "--embeddings", "e*", "--diversity",
                        "kcenter", "--out", out], capsys)
    assert code == 2 and "also entropy" in err and "--embeddings 'e[0-9]*'" in err
    assert not out.exists()
    assert alcore.io.read_pool(pool, embeddings="e[0-9]*").embeddings.shape == (2, 2)
    classes = tmp_path / "q.csv"
    classes.write_text("p0,p1,pred\n0.5,0.5,1\n")
    with pytest.raises(alcore.InvalidInputError, match=r"also pred.*probs='p\[0-9\]\*'"):
        alcore.io.read_pool(classes, probs="p*", id=None)


def test_demo_stream_line_never_says_zero_ms():
    """Before: 'stream: 5,000 items gated in 0 ms (21 M items/s)'."""
    from alcore import demo

    lines: list[str] = []
    demo.stream_tour(5_000, out=lines.append)
    assert " in 0 ms" not in lines[0] and "5,000 items gated in " in lines[0]
    assert "of a 5.00% budget" in lines[0]
