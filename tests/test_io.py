"""read_pool: pools from Parquet, Arrow IPC, CSV and NDJSON (gzipped too)."""

from __future__ import annotations

import gzip

import numpy as np
import polars as pl
import pytest

import alcore
from alcore import io
from alcore.io import read_pool


@pytest.fixture
def pool():
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(3), size=50)
    emb = rng.standard_normal((50, 4))
    return probs, emb


def gzipped(path):
    target = path.with_name(path.name + ".gz")
    target.write_bytes(gzip.compress(path.read_bytes()))
    return target


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("suffix", ["parquet", "arrow", "ndjson"])
def test_list_and_array_columns_keep_the_file_precision(tmp_path, pool, suffix, dtype):
    probs, emb = (a.astype(dtype) for a in pool)
    inner = pl.Float32 if dtype == np.float32 else pl.Float64
    table = pl.DataFrame({"id": [f"item-{i}" for i in range(50)], "probs": probs.tolist(),
                          "embedding": emb.tolist()},
                         schema={"id": pl.String, "probs": pl.List(inner),
                                 "embedding": pl.List(inner)})
    if suffix == "parquet":
        table = table.with_columns(pl.col("embedding").list.to_array(4))  # fixed-size Array
    path = tmp_path / f"pool.{suffix}"
    {"parquet": table.write_parquet, "arrow": table.write_ipc,
     "ndjson": table.write_ndjson}[suffix](path)
    got = read_pool(path)
    assert got.ids.tolist() == [f"item-{i}" for i in range(50)]
    # NDJSON numbers are text: polars reads them as float64 whatever they were written from.
    want = np.float64 if suffix == "ndjson" else dtype
    assert got.probs.dtype == want and got.embeddings.dtype == want
    tol = 1e-7 if suffix == "ndjson" and dtype == np.float32 else 0
    np.testing.assert_allclose(got.probs, probs, rtol=tol, atol=0)
    np.testing.assert_allclose(got.embeddings, emb, rtol=tol, atol=0)
    assert got.labeled is None


def test_float32_columns_stay_float32(tmp_path, pool):
    probs, emb = pool
    path = tmp_path / "pool.parquet"
    pl.DataFrame({f"p{j}": probs[:, j].astype(np.float32) for j in range(3)}
                 | {f"e{j}": emb[:, j].astype(np.float32) for j in range(4)}).write_parquet(path)
    got = read_pool(path, id=None, embeddings="e*")
    assert got.probs.dtype == np.float32 and got.embeddings.dtype == np.float32
    np.testing.assert_array_equal(got.probs, probs.astype(np.float32))
    mixed = tmp_path / "mixed.parquet"
    pl.DataFrame({"p0": probs[:, 0].astype(np.float32), "p1": 1 - probs[:, 0]}).write_parquet(
        mixed)
    assert read_pool(mixed, id=None).probs.dtype == np.float64  # the wider of the two


def test_numbered_columns_patterns_and_gzip(tmp_path, pool):
    probs, emb = pool
    path = tmp_path / "pool.csv"
    # Columns in any order; e10 comes after e2 (numbers, not text order).
    columns = {f"p{j}": probs[:, j] for j in (2, 0, 1)}
    columns |= {f"e{j}": emb[:, j % 4] for j in (10, 2, 1, 0)}
    pl.DataFrame(columns).write_csv(path)
    for source in (path, gzipped(path)):
        got = read_pool(source, id=None, embeddings="e*")
        np.testing.assert_allclose(got.probs, probs, rtol=1e-15)
        np.testing.assert_array_equal(got.ids, np.arange(50))
        np.testing.assert_allclose(got.embeddings, emb[:, [0, 1, 2, 2]], rtol=1e-15)
    assert read_pool(path, id=None).embeddings is None
    path2 = tmp_path / "pool2.csv"
    pl.DataFrame({f"prob_{j}": probs[:, j] for j in range(3)}).write_csv(path2)
    np.testing.assert_allclose(read_pool(path2, id=None, probs="prob_*").probs, probs,
                               rtol=1e-15)


def test_ndjson_gz(tmp_path, pool):
    probs, _ = pool
    path = tmp_path / "pool.ndjson"
    pl.DataFrame({"id": list(range(50)), "probs": probs.tolist()}).write_ndjson(path)
    got = read_pool(gzipped(path))
    assert got.ids.tolist() == [str(i) for i in range(50)]  # ids as written, as text
    np.testing.assert_array_equal(got.probs, probs)


def test_ids_are_taken_as_written(tmp_path, pool):
    probs, _ = pool
    ids = [f"{2241 + i:06d}" for i in range(50)]
    path = tmp_path / "pool.csv"
    pl.DataFrame({"id": ids} | {f"p{j}": probs[:, j] for j in range(3)}).write_csv(path)
    assert path.read_text().splitlines()[1].startswith("002241,")
    assert read_pool(path).ids.tolist() == ids
    assert read_pool(gzipped(path)).ids.tolist() == ids
    ndjson = tmp_path / "pool.ndjson"
    ndjson.write_text("".join(f'{{"id": "{i}", "probs": [0.5, 0.5]}}\n' for i in ids[:3]))
    assert read_pool(ndjson).ids.tolist() == ids[:3]
    with pytest.raises(alcore.InvalidInputError,
                       match=r"pool.csv: no id column 'doc'; columns are id, p0, p1, p2; "
                             r"name the id column with id=, or pass id=None"):
        read_pool(path, id="doc")
    no_ids = tmp_path / "noids.csv"
    pl.DataFrame({"p0": [0.5], "p1": [0.5]}).write_csv(no_ids)
    with pytest.raises(alcore.InvalidInputError, match=r"no id column 'id'"):
        read_pool(no_ids)  # the default id column must exist too: never silent row numbers
    np.testing.assert_array_equal(read_pool(no_ids, id=None).ids, [0])


def test_a_single_column_is_a_binary_model(tmp_path):
    p = np.array([0.1, 0.75, 0.5, 1.0])
    path = tmp_path / "binary.csv"
    pl.DataFrame({"id": ["a", "b", "c", "d"], "p": p}).write_csv(path)
    np.testing.assert_array_equal(read_pool(path, probs="p").probs,
                                  np.column_stack([1 - p, p]))
    np.testing.assert_array_equal(read_pool(path, probs="p", logits=True).probs,
                                  np.column_stack([np.zeros(4), p]))


def test_labeled_column(tmp_path):
    path = tmp_path / "pool.csv"
    base = {"id": ["a", "b", "c"], "p0": [0.5, 0.2, 0.9], "p1": [0.5, 0.8, 0.1]}
    pl.DataFrame(base | {"done": [True, False, True], "flag": [0, 1, 0],
                         "yn": ["yes", "no", "yes"], "n": [0, 2, 1]}).write_csv(path)
    np.testing.assert_array_equal(read_pool(path, labeled="done").labeled, [True, False, True])
    np.testing.assert_array_equal(read_pool(path, labeled="flag").labeled, [False, True, False])
    with pytest.raises(alcore.InvalidInputError,
                       match=r"labeled column 'yn' must hold true/false \(or 0/1\), got String "
                             r"values such as 'yes', 'no'; write the column as true/false"):
        read_pool(path, labeled="yn")
    with pytest.raises(alcore.InvalidInputError, match=r"labeled column 'n' must hold"):
        read_pool(path, labeled="n")
    with pytest.raises(alcore.InvalidInputError,
                       match=r"no column 'gone' for labeled=; columns are id"):
        read_pool(path, labeled="gone")
    holes = tmp_path / "holes.csv"
    holes.write_text("id,p0,p1,done\na,0.5,0.5,true\nb,0.5,0.5,\n")
    with pytest.raises(alcore.InvalidInputError,
                       match=r"labeled column 'done' is missing \(empty or null\) in row 1"):
        read_pool(holes, labeled="done")


def test_bad_files(tmp_path):
    ragged = tmp_path / "ragged.parquet"
    pl.DataFrame({"probs": [[0.5, 0.5], [1.0]]}).write_parquet(ragged)
    with pytest.raises(alcore.InvalidInputError,
                       match=r"lists of different lengths \(row 0 has 2, row 1 has 1\)"):
        read_pool(ragged, id=None)
    text = tmp_path / "text.parquet"
    pl.DataFrame({"probs": ["a", "b"]}).write_parquet(text)
    with pytest.raises(alcore.InvalidInputError,
                       match=r"probabilities column 'probs' is String, not numbers"):
        read_pool(text, id=None)
    fine = tmp_path / "fine.parquet"
    pl.DataFrame({"probs": [[0.5, 0.5]], "x": [1.0]}).write_parquet(fine)
    with pytest.raises(alcore.InvalidInputError,
                       match=r"no embedding column 'vec'; columns are probs, x; name a list "
                             r"column or a pattern such as 'e\*'"):
        read_pool(fine, id=None, embeddings="vec")
    with pytest.raises(alcore.InvalidInputError, match=r"no column matches 'e\*' for the "
                                                       r"embeddings; columns are probs, x"):
        read_pool(fine, id=None, embeddings="e*")
    with pytest.raises(alcore.InvalidInputError, match=r"unknown file type '.xlsx'"):
        read_pool(tmp_path / "pool.xlsx")
    with pytest.raises(alcore.InvalidInputError, match=r"unknown file type '.parquet.gz'"):
        read_pool(tmp_path / "pool.parquet.gz")
    with pytest.raises(alcore.InvalidInputError, match=r"no such file"):
        read_pool(tmp_path / "missing.parquet")
    header = tmp_path / "header.csv"
    header.write_text("id,p0,p1\n")
    with pytest.raises(alcore.InvalidInputError, match=r"header.csv has no rows"):
        read_pool(header)
    nulls = tmp_path / "nulls.ndjson"
    nulls.write_text('{"probs": [0.5, 0.5]}\n{"probs": null}\n{"other": 1}\n')
    with pytest.raises(alcore.InvalidInputError,
                       match=r"probabilities column 'probs' is missing \(null\) in row 1"):
        read_pool(nulls, id=None)
    empty_cell = tmp_path / "cell.csv"
    empty_cell.write_text("p0,p1\n0.5,0.5\n0.3,\n")
    with pytest.raises(alcore.InvalidInputError,
                       match=r"probabilities column 'p1' is missing \(empty or null\) in row 1"):
        read_pool(empty_cell, id=None)


def test_check_writable(tmp_path):
    assert io.check_writable(tmp_path / "a.csv") == tmp_path / "a.csv"
    with pytest.raises(alcore.InvalidInputError, match=r"does not exist; create it first"):
        io.check_writable(tmp_path / "no" / "a.csv")
    with pytest.raises(alcore.InvalidInputError, match=r"cannot write '.xlsx'"):
        io.check_writable(tmp_path / "a.xlsx")
    (tmp_path / "b.csv").write_text("x")
    with pytest.raises(alcore.InvalidInputError, match=r"exists; pass overwrite=True"):
        io.check_writable(tmp_path / "b.csv")
    assert io.check_writable(tmp_path / "b.csv", overwrite=True)
    with pytest.raises(alcore.InvalidInputError, match=r"is a folder"):
        io.check_writable(tmp_path / "c.csv" if (tmp_path / "c.csv").mkdir() is None else "")
