"""`alcore select`: a batch from a pool file, checked against numpy references (not alcore)."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from clitools import run, write

import alcore
from alcore.cli import in_flags

N, C, D = 400, 4, 6






def margin_ref(probs):
    """numpy margin, 1 - (p1 - p2), in the input's dtype."""
    top = np.sort(probs, axis=1)
    return probs.dtype.type(1) - (top[:, -1] - top[:, -2])


def top_ref(scores, k, never=None):
    """The k best scores, equal scores to the lower index (numpy lexsort)."""
    rows = np.arange(len(scores))
    if never is not None:
        rows = rows[~never]
    order = np.lexsort((rows, -scores[rows]))
    return rows[order[:k]]


def kcenter_ref(emb, candidates, covered, k):
    """Greedy k-center over ``candidates``: each pick is the candidate farthest (float64
    squared l2) from everything covered so far."""
    emb = emb.astype(np.float64)
    d = np.full(len(candidates), np.inf)
    for j in covered:
        d = np.minimum(d, ((emb[candidates] - emb[j]) ** 2).sum(axis=1))
    picks = []
    for _ in range(k):
        i = int(np.argmax(d))
        picks.append(int(candidates[i]))
        d = np.minimum(d, ((emb[candidates] - emb[candidates[i]]) ** 2).sum(axis=1))
    return np.array(picks)


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(C), size=N)
    probs[10] = probs[20] = probs[30]  # exact ties: lower row first
    emb = rng.standard_normal((N, D))
    done = np.arange(N) < 5
    return probs, emb, done


def table_of(data, *, lists: bool, ids=True):
    probs, emb, done = data
    columns = {"id": [f"doc{i:04d}" for i in range(N)]} if ids else {}
    if lists:
        columns |= {"probs": probs.tolist(), "embedding": emb.tolist()}
    else:
        columns |= {f"p{j}": probs[:, j] for j in range(C)}
        columns |= {f"e{j}": emb[:, j] for j in range(D)}
    return pl.DataFrame(columns | {"done": done})


@pytest.mark.parametrize("name", ["pool.parquet", "pool.csv", "pool.csv.gz", "pool.ndjson",
                                  "pool.ndjson.gz"])
def test_top_k_matches_numpy(tmp_path, data, name, capsys):
    probs, _, done = data
    lists = "ndjson" in name or "parquet" in name
    path = write(table_of(data, lists=lists), tmp_path / name)
    out = tmp_path / "batch.parquet"
    code, printed, err = run(["select", path, "-k", "12", "--diversity", "none", "--labeled",
                              "done", "--out", out], capsys)
    assert code == 0, err
    batch = pl.read_parquet(out)
    want = top_ref(margin_ref(probs), 12, never=done)
    assert batch["id"].to_list() == [f"doc{i:04d}" for i in want]
    assert batch["pick"].to_list() == list(range(1, 13))
    assert batch["score_rank"].to_list() == list(range(1, 13))  # top-k: picks in score order
    np.testing.assert_array_equal(batch["score"].to_numpy(), margin_ref(probs)[want])
    assert batch.columns == ["id", "pick", "score", "score_rank", "reason"]
    assert f"{N} items (5 labeled); 12 selected (top k by margin)" in printed


def test_kcenter_matches_a_numpy_greedy(tmp_path, data, capsys):
    probs, emb, done = data
    path = write(table_of(data, lists=True), tmp_path / "pool.parquet")
    out = tmp_path / "batch.csv"
    code, printed, err = run(["select", path, "-k", "12", "--diversity", "kcenter",
                              "--candidates", "5", "--labeled", "done", "--out", out,
                              "--explain"], capsys)
    assert code == 0, err
    batch = pl.read_csv(out)
    candidates = top_ref(margin_ref(probs), 60, never=done)
    want = kcenter_ref(emb.astype(np.float32), candidates, np.flatnonzero(done), 12)
    assert batch["id"].to_list() == [f"doc{i:04d}" for i in want]
    assert batch["pick"].to_list() == list(range(1, 13))
    # score_rank: each pick's rank by margin among the unlabeled items (not its pick order).
    rank_of = {int(row): r + 1 for r, row in enumerate(top_ref(margin_ref(probs), N - 5,
                                                               never=done))}
    assert batch["score_rank"].to_list() == [rank_of[i] for i in want]
    assert batch["score_rank"].to_list() != list(range(1, 13))
    # --explain adds what is not already there: no "uncertainty" identical to "score".
    assert "uncertainty" not in batch.columns and "rank" not in batch.columns
    assert {"distance", "nearest_id"} <= set(batch.columns)
    assert batch["nearest_id"].str.starts_with("doc").all()
    # One reason per item, with its own numbers, naming items by id.
    reasons = batch["reason"].to_list()
    assert len(set(reasons)) == 12
    assert f"rank {rank_of[want[0]]} of {N - 5} by margin" in reasons[0]
    assert "nearest covered item doc" in reasons[0]
    assert "timings:" in printed and "kcenter over the 5 x k best by margin" in printed


def test_embedding_columns_by_pattern_give_the_same_batch(tmp_path, data, capsys):
    listed = write(table_of(data, lists=True), tmp_path / "pool.parquet")
    numbered = write(table_of(data, lists=False), tmp_path / "pool.csv")
    for path, extra in ((listed, []), (numbered, ["--embeddings", "e*"])):
        code, _, err = run(["select", path, "-k", "8", "--labeled", "done", "--out",
                            tmp_path / f"{path.suffix[1:]}.parquet", *extra], capsys)
        assert code == 0, err
    assert (pl.read_parquet(tmp_path / "parquet.parquet")["id"].to_list()
            == pl.read_parquet(tmp_path / "csv.parquet")["id"].to_list())


def test_density_columns_under_explain(tmp_path, data, capsys):
    path = write(table_of(data, lists=True), tmp_path / "pool.parquet")
    out = tmp_path / "b.parquet"
    code, _, err = run(["select", path, "-k", "5", "--density", "knn", "--diversity", "none",
                        "--explain", "--out", out], capsys)
    assert code == 0, err
    batch = pl.read_parquet(out)
    assert {"uncertainty", "density"} <= set(batch.columns)
    np.testing.assert_allclose(batch["score"], batch["uncertainty"] * batch["density"])


def test_ids_as_written_and_a_missing_id_column(tmp_path, data, capsys):
    probs, _, _ = data
    ids = [f"{2241 + i:06d}" for i in range(N)]
    path = write(pl.DataFrame({"id": ids} | {f"p{j}": probs[:, j] for j in range(C)}),
                 tmp_path / "pool.csv")
    out = tmp_path / "b.csv"
    assert run(["select", path, "-k", "3", "--out", out], capsys)[0] == 0
    want = top_ref(margin_ref(probs), 3)
    assert pl.read_csv(out, schema_overrides={"id": pl.String})["id"].to_list() == [
        ids[i] for i in want]
    assert out.read_text().splitlines()[1].startswith(ids[want[0]] + ",")
    code, _, err = run(["select", path, "-k", "3", "--id", "wrong_name", "--out",
                        tmp_path / "c.csv"], capsys)
    assert code == 2
    assert "no id column 'wrong_name'; columns are id, p0, p1, p2, p3" in err
    assert not (tmp_path / "c.csv").exists()
    no_ids = write(pl.DataFrame({f"p{j}": probs[:, j] for j in range(C)}),
                   tmp_path / "noids.parquet")
    code, _, err = run(["select", no_ids, "-k", "3", "--out", tmp_path / "d.parquet"], capsys)
    assert code == 0
    assert "noids.parquet has no 'id' column; the output's ids are row numbers" in err
    assert pl.read_parquet(tmp_path / "d.parquet")["id"].to_list() == want.tolist()


def test_output_is_checked_before_any_work(tmp_path, data, capsys, monkeypatch):
    path = write(table_of(data, lists=True), tmp_path / "pool.parquet")
    calls = []
    monkeypatch.setattr(alcore, "select", lambda *a, **k: calls.append(a))
    code, _, err = run(["select", path, "-k", "3", "--out", tmp_path / "no" / "b.csv"], capsys)
    assert code == 2 and "the folder" in err and "does not exist; create it first" in err
    (tmp_path / "b.csv").write_text("old\n")
    code, _, err = run(["select", path, "-k", "3", "--out", tmp_path / "b.csv"], capsys)
    assert code == 2 and "b.csv exists; pass --overwrite to replace it" in err
    code, _, err = run(["select", path, "-k", "3", "--out", tmp_path / "b.txt"], capsys)
    assert code == 2 and "cannot write '.txt'; use .parquet, .csv, .ndjson or .json" in err
    assert calls == [] and (tmp_path / "b.csv").read_text() == "old\n"


@pytest.mark.parametrize("args, message", [
    (["--score", "np"], "argument --score: invalid choice: 'np'"),
    (["--diversity", "kmeans"], "argument --diversity: invalid choice: 'kmeans'"),
    (["-k", "5k"], "argument -k: expected a whole number of items, e.g. 1000, got '5k' "
                   "(write the number out: 5k is 5000)"),
    (["-k", "0"], "argument -k: expected a positive integer, got 0"),
    (["--diversity", "probcover"], "--diversity probcover needs --radius"),
    (["--radius", "0.5"], "--radius applies to --diversity probcover only"),
    (["--diversity", "spread"], "--diversity spread needs --min-distance"),
    (["--labeled", "nope"], "no column 'nope' for --labeled"),
    (["--labeled", "answer"], "labeled column 'answer' must hold true/false (or 0/1), got "
                              "String values such as 'yes', 'no'"),
    (["--probs", "q*"], "no column matches 'q*' for the probabilities"),
    (["--atol", "2"], "--atol must be in [0, 1), got 2.0"),
    (["--beta", "2"], "--beta 2 weights the density, but no --density"),
])
def test_bad_arguments_are_messages_in_flags(tmp_path, data, capsys, args, message):
    done = data[2]
    path = write(table_of(data, lists=False).with_columns(
        answer=pl.Series(np.where(done, "yes", "no"))), tmp_path / "pool.csv")
    code, _, err = run(["select", path, "-k", "3", "--out", tmp_path / "b.csv", *args], capsys)
    assert code == 2
    assert message in err
    assert "Traceback" not in err and not (tmp_path / "b.csv").exists()


def test_bad_files_are_messages(tmp_path, capsys):
    nulls = tmp_path / "nulls.ndjson"
    nulls.write_text('{"id": "a", "probs": [0.5, 0.5]}\n{"id": "b", "probs": null}\n'
                     '{"id": "c"}\n')
    code, _, err = run(["select", nulls, "-k", "1", "--out", tmp_path / "a.csv"], capsys)
    assert code == 2 and "probabilities column 'probs' is missing (null) in row 1" in err
    inner = tmp_path / "inner.ndjson"
    inner.write_text('{"id": "a", "probs": [0.5, 0.5]}\n{"id": "b", "probs": [0.5, null]}\n')
    code, _, err = run(["select", inner, "-k", "1", "--out", tmp_path / "b.csv"], capsys)
    assert code == 2 and "row 1, column 1 is nan; fill in or drop that row in the file" in err
    header = tmp_path / "header.csv"
    header.write_text("id,p0,p1\n")
    code, _, err = run(["select", header, "-k", "1", "--out", tmp_path / "c.csv"], capsys)
    assert code == 2 and "header.csv has no rows" in err
    noprobs = write(pl.DataFrame({"id": ["a"], "x": [1.0]}), tmp_path / "noprobs.parquet")
    code, _, err = run(["select", noprobs, "-k", "1", "--out", tmp_path / "d.csv"], capsys)
    assert code == 2 and "no probabilities" in err and "--probs" in err
    path = write(pl.DataFrame({"id": ["a", "b"], "p0": [0.5, 0.4], "p1": [0.5, 0.6]}),
                 tmp_path / "small.parquet")
    code, _, err = run(["select", path, "-k", "1", "--diversity", "kcenter", "--out",
                        tmp_path / "e.csv"], capsys)
    assert code == 2
    assert "--diversity kcenter needs embeddings" in err and "--embeddings" in err


def test_rounded_probabilities_and_logits(tmp_path, data, capsys):
    probs, _, _ = data
    rounded = np.round(probs, 3)
    assert np.abs(rounded.sum(axis=1) - 1).max() > 1e-3
    path = write(pl.DataFrame({f"p{j}": rounded[:, j] for j in range(C)}), tmp_path / "r.csv")
    code, _, err = run(["select", path, "-k", "5", "--out", tmp_path / "a.csv"], capsys)
    assert code == 2
    assert "pass --logits for raw model outputs, --normalize to renormalise, or a larger " \
           "--atol" in err
    for name in ("logits=", "normalize=True", "atol=", "numpy"):
        assert name not in err
    code, _, err = run(["select", path, "-k", "5", "--normalize", "--out",
                        tmp_path / "b.csv"], capsys)
    assert code == 0, err
    renormalised = rounded / rounded.sum(axis=1, keepdims=True)
    want = top_ref(margin_ref(renormalised), 5)
    assert pl.read_csv(tmp_path / "b.csv")["id"].to_list() == want.tolist()
    code, _, err = run(["select", path, "-k", "5", "--atol", "0.01", "--out",
                        tmp_path / "c.csv"], capsys)
    assert code == 0, err
    assert pl.read_csv(tmp_path / "c.csv")["id"].to_list() == top_ref(
        margin_ref(rounded), 5).tolist()
    z = np.log(probs) * 2.0  # logits: a softmax of these is probs squared, renormalised
    path = write(pl.DataFrame({"probs": z.tolist()}), tmp_path / "z.parquet")
    code, _, err = run(["select", path, "-k", "5", "--out", tmp_path / "d.csv"], capsys)
    assert code == 2 and "pass --logits if these are raw model outputs" in err
    code, _, err = run(["select", path, "-k", "5", "--logits", "--out", tmp_path / "e.csv"],
                       capsys)
    assert code == 0, err
    e = np.exp(z - z.max(axis=1, keepdims=True))
    want = top_ref(margin_ref(e / e.sum(axis=1, keepdims=True)), 5)
    assert pl.read_csv(tmp_path / "e.csv")["id"].to_list() == want.tolist()


def test_a_single_binary_column(tmp_path, capsys):
    p = np.random.default_rng(2).uniform(size=200)
    path = write(pl.DataFrame({"id": np.arange(200).astype(str), "p": p}), tmp_path / "b.csv")
    code, _, err = run(["select", path, "-k", "4", "--probs", "p", "--out",
                        tmp_path / "o.csv"], capsys)
    assert code == 0, err
    want = top_ref(margin_ref(np.column_stack([1 - p, p])), 4)  # p closest to 0.5 first
    assert pl.read_csv(tmp_path / "o.csv")["id"].to_list() == want.tolist()


def test_threads_after_the_subcommand(tmp_path, data, capsys):
    path = write(table_of(data, lists=True), tmp_path / "pool.parquet")
    before = alcore.get_num_threads()
    try:
        assert run(["select", path, "-k", "3", "--threads", "1", "--out",
                    tmp_path / "a.csv"], capsys)[0] == 0
        assert alcore.get_num_threads() == 1
    finally:
        alcore.set_num_threads(before)


@pytest.mark.parametrize("message, want", [
    ("probs rows must sum to 1 (probs row 3 sums to 0.97, atol=0.001); pass logits= for raw "
     "model outputs, normalize=True to renormalise, or a larger atol=",
     "probs rows must sum to 1 (probs row 3 sums to 0.97, --atol 0.001); pass --logits for "
     "raw model outputs, --normalize to renormalise, or a larger --atol"),
    ("k=5 exceeds the 3 items that can be picked", "-k 5 exceeds the 3 items that can be "
                                                   "picked"),
    ("diversity='spread' needs min_distance=", "--diversity spread needs --min-distance"),
    ("(diversity=None, or 'auto' without embeddings); pass diversity= and embeddings=",
     "(--diversity none, or 'auto' without embeddings); pass --diversity and --embeddings"),
    ("probs must be finite: probs row 2, column 0 is nan; replace NaN/inf (e.g. "
     "numpy.nan_to_num) or drop those rows",
     "probs must be finite: probs row 2, column 0 is nan; fill in or drop that row in the "
     "file"),
    ("x.csv exists; pass overwrite=True to replace it", "x.csv exists; pass --overwrite to "
                                                        "replace it"),
    ("no id column 'doc'; name the id column with id=, or pass id=None to use row numbers",
     "no id column 'doc'; name the id column with --id, or leave out --id to use row "
     "numbers"),
    ("atol must be in [0, 1), got 2.0", "--atol must be in [0, 1), got 2.0"),
    ("probs must lie in [0, 1]", "probs must lie in [0, 1]"),
    ("rows of probs.sum(axis=1) and kappa=0.5 stay", "rows of probs.sum(axis=1) and "
                                                     "kappa=0.5 stay"),
])
def test_in_flags(message, want):
    assert in_flags(message) == want
