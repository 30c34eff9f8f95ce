"""`alcore gate`: replay a recorded stream from Parquet, CSV, NDJSON (gzipped too)."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from clitools import run, write

from alcore.stream import StreamGate


@pytest.fixture
def probs():
    return np.random.default_rng(0).dirichlet(np.ones(4), size=500)


@pytest.mark.parametrize("layout", ["list.parquet", "columns.csv", "list.ndjson",
                                    "pattern.parquet", "columns.csv.gz", "list.ndjson.gz"])
def test_replay_matches_the_gate(tmp_path, probs, layout, capsys):
    kind, suffix = layout.split(".", 1)
    if kind == "list":
        table = pl.DataFrame({"id": np.arange(500) + 100, "probs": probs.tolist()})
    elif kind == "columns":
        table = pl.DataFrame({f"p{j}": probs[:, j] for j in range(4)})
    else:
        table = pl.DataFrame({f"prob_{j}": probs[:, j] for j in range(4)})
    path = write(table, tmp_path / f"stream.{suffix}")
    out = tmp_path / "decisions.parquet"
    args = ["gate", path, "--strategy", "split", "--budget", "0.2", "--seed", "3",
            "--out", out]
    if kind == "pattern":
        args += ["--probs", "prob_*"]
    code, printed, _ = run(args, capsys)
    assert code == 0
    decisions = pl.read_parquet(out)
    want = StreamGate("split", 0.2, seed=3).decide_many(probs)
    np.testing.assert_array_equal(decisions["query"].to_numpy(), want)
    np.testing.assert_array_equal(decisions["row"].to_numpy(), np.arange(500))
    if kind == "list":
        # Parquet keeps integer ids; NDJSON ids are read as written (text).
        expect = [100, 101] if suffix == "parquet" else ["100", "101"]
        assert decisions["id"].to_list()[:2] == expect
    assert f"{int(want.sum())} queried" in printed and "threshold after each tenth" in printed


def test_ids_are_kept_as_written(tmp_path, probs, capsys):
    ids = [f"{i:06d}" for i in range(500)]
    path = write(pl.DataFrame({"id": ids} | {f"p{j}": probs[:, j] for j in range(4)}),
                 tmp_path / "s.csv")
    assert path.read_text().splitlines()[1].startswith("000000,")
    out = tmp_path / "d.csv"
    assert run(["gate", path, "--out", out], capsys)[0] == 0
    assert pl.read_csv(out, schema_overrides={"id": pl.String})["id"].to_list() == ids
    code, _, err = run(["gate", path, "--id", "doc", "--out", tmp_path / "e.csv"], capsys)
    assert code == 2 and "no id column 'doc'" in err


def test_refuses_to_overwrite_and_reports_bad_input(tmp_path, probs, capsys):
    path = tmp_path / "s.parquet"
    pl.DataFrame({"probs": probs.tolist()}).write_parquet(path)
    out = tmp_path / "d.csv"
    assert run(["gate", path, "--out", out], capsys)[0] == 0
    code, _, err = run(["gate", path, "--out", out], capsys)
    assert code == 2 and f"{out} exists; pass --overwrite to replace it" in err
    assert run(["gate", path, "--out", out, "--overwrite"], capsys)[0] == 0
    code, _, err = run(["gate", path, "--probs", "nothing*", "--out", tmp_path / "x.csv"],
                       capsys)
    assert code == 2 and "no column matches 'nothing*'" in err
    code, _, err = run(["gate", path, "--strategy", "greedy", "--out", tmp_path / "y.csv"],
                       capsys)
    assert code == 2 and "invalid choice: 'greedy'" in err and "variable_uncertainty" in err
    code, _, err = run(["gate", tmp_path / "missing.parquet", "--out", tmp_path / "z.csv"],
                       capsys)
    assert code == 2 and "no such file" in err
    assert "Traceback" not in err


def test_output_is_checked_before_any_work(tmp_path, probs, capsys, monkeypatch):
    path = tmp_path / "s.parquet"
    pl.DataFrame({"probs": probs.tolist()}).write_parquet(path)
    calls = []
    monkeypatch.setattr(StreamGate, "decide_many", lambda self, rows: calls.append(rows))
    code, _, err = run(["gate", path, "--out", tmp_path / "no" / "such" / "d.csv"], capsys)
    assert code == 2 and "does not exist; create it first" in err
    code, _, err = run(["gate", path, "--out", tmp_path / "d.xlsx"], capsys)
    assert code == 2 and "cannot write '.xlsx'" in err
    (tmp_path / "old.csv").write_text("x\n")
    code, _, err = run(["gate", path, "--out", tmp_path / "old.csv"], capsys)
    assert code == 2 and "pass --overwrite" in err
    assert calls == []


def test_header_only_file_says_it_has_no_rows(tmp_path, capsys):
    path = tmp_path / "empty.csv"
    path.write_text("p0,p1\n")
    code, _, err = run(["gate", path, "--out", tmp_path / "d.csv"], capsys)
    assert code == 2 and "empty.csv has no rows" in err


def test_null_probs_in_ndjson_is_a_message(tmp_path, capsys):
    path = tmp_path / "s.ndjson"
    path.write_text('{"id": 1, "probs": [0.5, 0.5]}\n{"id": 2, "probs": null}\n{"id": 3}\n')
    code, _, err = run(["gate", path, "--out", tmp_path / "d.csv"], capsys)
    assert code == 2
    assert "probabilities column 'probs' is missing (null) in row 1 (0-based)" in err


def test_rounded_probabilities_need_atol_or_normalize(tmp_path, probs, capsys):
    rounded = np.round(probs, 3)
    sums = rounded.sum(axis=1)
    assert np.abs(sums - 1).max() > 1e-3  # the default tolerance refuses some rows
    path = write(pl.DataFrame({f"p{j}": rounded[:, j] for j in range(4)}), tmp_path / "r.csv")
    code, _, err = run(["gate", path, "--out", tmp_path / "a.csv"], capsys)
    assert code == 2
    assert "--normalize to renormalise, or a larger --atol" in err
    assert "atol=" not in err and "normalize=True" not in err and "logits=" not in err
    assert run(["gate", path, "--normalize", "--out", tmp_path / "b.parquet"], capsys)[0] == 0
    want = StreamGate("variable_uncertainty", 0.1).decide_many(rounded / sums[:, None])
    np.testing.assert_array_equal(pl.read_parquet(tmp_path / "b.parquet")["query"], want)
    assert run(["gate", path, "--atol", "0.01", "--out", tmp_path / "c.parquet"], capsys)[0] == 0
    want = StreamGate("variable_uncertainty", 0.1, atol=0.01).decide_many(rounded)
    np.testing.assert_array_equal(pl.read_parquet(tmp_path / "c.parquet")["query"], want)


def test_logits_and_a_single_binary_column(tmp_path, capsys):
    rng = np.random.default_rng(4)
    z = rng.standard_normal((300, 3)) * 3
    path = write(pl.DataFrame({"probs": z.tolist()}), tmp_path / "z.parquet")
    code, _, err = run(["gate", path, "--out", tmp_path / "a.parquet"], capsys)
    assert code == 2 and "pass --logits if these are raw model outputs" in err
    assert run(["gate", path, "--logits", "--out", tmp_path / "b.parquet"], capsys)[0] == 0
    e = np.exp(z - z.max(axis=1, keepdims=True))
    want = StreamGate("variable_uncertainty", 0.1).decide_many(e / e.sum(axis=1, keepdims=True))
    np.testing.assert_array_equal(pl.read_parquet(tmp_path / "b.parquet")["query"], want)
    p = rng.uniform(size=300)
    path = write(pl.DataFrame({"p": p}), tmp_path / "binary.csv")
    assert run(["gate", path, "--probs", "p", "--out", tmp_path / "c.parquet"], capsys)[0] == 0
    want = StreamGate("variable_uncertainty", 0.1).decide_many(np.column_stack([1 - p, p]))
    np.testing.assert_array_equal(pl.read_parquet(tmp_path / "c.parquet")["query"], want)


def test_fixed_strategy_that_queries_nothing_says_why(tmp_path, capsys):
    confident = np.full((200, 4), 0.01)
    confident[:, 0] = 0.97
    path = write(pl.DataFrame({"probs": confident.tolist()}), tmp_path / "c.parquet")
    code, out, err = run(["gate", path, "--strategy", "fixed", "--budget", "0.1", "--out",
                          tmp_path / "d.csv"], capsys)
    assert code == 0 and "0 queried" in out
    assert "1/C + budget x (1 - 1/C) = 0.325 (C = 4, budget 0.1)" in err
    assert "--strategy variable_uncertainty or --strategy quantile" in err


def test_hard_cap(tmp_path, probs, capsys):
    import inspect

    if "hard_cap" not in inspect.signature(StreamGate).parameters:
        pytest.skip("this StreamGate has no hard_cap (the native gate's branch adds it)")
    path = write(pl.DataFrame({"probs": probs.tolist()}), tmp_path / "s.parquet")
    assert run(["gate", path, "--budget", "0.05", "--hard-cap", "--out", tmp_path / "a.parquet"],
               capsys)[0] == 0
    queried = pl.read_parquet(tmp_path / "a.parquet")["query"].to_numpy()
    want = StreamGate("variable_uncertainty", 0.05, hard_cap=True).decide_many(probs)
    np.testing.assert_array_equal(queried, want)
    assert (np.cumsum(queried) <= 0.05 * np.arange(1, 501) + 1).all()


def test_threads_after_the_subcommand(tmp_path, probs, capsys):
    import alcore

    path = write(pl.DataFrame({"probs": probs.tolist()}), tmp_path / "s.parquet")
    before = alcore.get_num_threads()
    try:
        assert run(["gate", path, "--threads", "1", "--out", tmp_path / "a.csv"], capsys)[0] == 0
        assert alcore.get_num_threads() == 1
        alcore.set_num_threads(before)
        assert run(["--threads", "1", "gate", path, "--out", tmp_path / "b.csv"], capsys)[0] == 0
        assert alcore.get_num_threads() == 1
    finally:
        alcore.set_num_threads(before)


def test_utilities_column_is_gated_as_given(tmp_path, capsys):
    u = np.random.default_rng(4).gamma(0.7, 0.4, size=800)
    path = write(pl.DataFrame({"id": np.arange(800), "bald": u}), tmp_path / "u.parquet")
    out = tmp_path / "d.parquet"
    code, printed, _ = run(["gate", path, "--utilities", "bald", "--strategy", "quantile",
                            "--budget", "0.1", "--window", "50", "--out", out], capsys)
    assert code == 0, printed
    want = StreamGate("quantile", 0.1, window=50).decide_utility_many(u)
    np.testing.assert_array_equal(pl.read_parquet(out)["query"].to_numpy(), want)
    # The fixed strategy needs the class count, which a utility column does not carry.
    code, _, err = run(["gate", path, "--utilities", "bald", "--strategy", "fixed",
                        "--out", tmp_path / "f.parquet"], capsys)
    assert code == 2 and "--classes" in err
    code, printed, _ = run(["gate", path, "--utilities", "bald", "--strategy", "fixed",
                            "--classes", "4", "--out", tmp_path / "f.parquet"], capsys)
    want = StreamGate("fixed", 0.1, classes=4).decide_utility_many(u)
    assert code == 0
    np.testing.assert_array_equal(pl.read_parquet(tmp_path / "f.parquet")["query"], want)


@pytest.mark.parametrize("extra, match", [
    (["--utilities", "nope"], r"no column 'nope' for --utilities; columns are id, bald, name"),
    (["--utilities", "name"], r"--utilities name: the column holds String, not numbers"),
    (["--utilities", "bald", "--logits"], r"--utilities bald gates the column's values as "
                                          r"they are; leave out --logits"),
    (["--utilities", "bald", "--utility", "margin"], r"leave out --utility"),
])
def test_utilities_column_mistakes_are_messages(tmp_path, capsys, extra, match):
    table = pl.DataFrame({"id": [1, 2], "bald": [0.1, None], "name": ["a", "b"]})
    path = write(table, tmp_path / "u.parquet")
    code, _, err = run(["gate", path, *extra, "--out", tmp_path / "d.parquet"], capsys)
    assert code == 2
    assert __import__("re").search(match, err), err
    code, _, err = run(["gate", path, "--utilities", "bald", "--out", tmp_path / "d.parquet"],
                       capsys)
    assert code == 2 and "--utilities bald: row 1 is empty; fill in or drop that row" in err


def test_custom_utility_file(tmp_path, probs, capsys):
    (tmp_path / "mine.py").write_text(
        "def second(p):\n"
        "    a = b = 0.0\n"
        "    for x in p:\n"
        "        if x > a:\n"
        "            a, b = x, a\n"
        "        elif x > b:\n"
        "            b = x\n"
        "    return 1.0 - (a - b)\n")
    path = write(pl.DataFrame({"probs": probs.tolist()}), tmp_path / "s.parquet")
    out = tmp_path / "d.parquet"
    code, printed, _ = run(["gate", path, "--utility", f"{tmp_path / 'mine.py'}:second",
                            "--strategy", "quantile", "--out", out], capsys)
    assert code == 0, printed
    builtin = StreamGate("quantile", 0.1, utility="margin").decide_many(probs)
    assert (pl.read_parquet(out)["query"].to_numpy() == builtin).mean() > 0.99
    code, _, err = run(["gate", path, "--utility", f"{tmp_path / 'none.py'}:f", "--out",
                        tmp_path / "e.parquet"], capsys)
    assert code == 2 and "--utility " in err and "no file" in err
