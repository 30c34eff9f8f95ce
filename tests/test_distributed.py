"""alcore.distributed.select on a real LocalCluster of 2 worker processes (and in this
process with client="sync"), against slow references that do not call the code under test
and against the single-machine calls it promises to equal."""

from __future__ import annotations

import itertools
import os
import signal
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st
from oracles import margin as margin_ref
from oracles import top_k as top_ref

import alcore
import alcore.distributed as ad
from alcore import InvalidInputError

distributed = pytest.importorskip("distributed")
da = pytest.importorskip("dask.array")


@pytest.fixture(scope="module")
def client():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as made:
        yield made


def _write(folder: Path, probs, emb=None, ids=None, splits=(), extra=None) -> list[str]:
    """The rows cut at ``splits`` into Parquet files (empty files where splits repeat)."""
    bounds = [0, *splits, len(probs)]
    ids = np.arange(len(probs)) if ids is None else ids
    paths = []
    for i, (lo, hi) in enumerate(itertools.pairwise(bounds)):
        columns = {"id": ids[lo:hi], "probs": probs[lo:hi]}
        if emb is not None:
            columns["embedding"] = emb[lo:hi]
        for name, values in (extra or {}).items():
            columns[name] = values[lo:hi]
        path = folder / f"part{i:03d}.parquet"
        pl.DataFrame(columns).write_parquet(path)
        paths.append(str(path))
    return paths


def _pool(n=6000, c=4, d=8, seed=0, dtype=np.float32):
    rng = np.random.default_rng(seed)
    probs = rng.dirichlet(np.ones(c), n).astype(dtype)
    probs[100:160] = probs[100]  # exact ties across a partition boundary (split at 130)
    emb = rng.normal(size=(n, d)).astype(np.float32)
    emb[200:230] = emb[200]
    return probs, emb


@pytest.fixture(scope="module")
def pool(tmp_path_factory):
    probs, emb = _pool()
    folder = tmp_path_factory.mktemp("pool")
    paths = _write(folder, probs, emb, splits=(130, 130, 2500, 4100))
    return probs, emb, paths


# --- exact top-k ------------------------------------------------------------------------

def test_top_k_equals_select_top_and_the_reference(client, pool):
    probs, _, paths = pool
    got = ad.select(paths, 50, client=client, chunk_rows=700)
    expected = top_ref(margin_ref(probs), 50)
    np.testing.assert_array_equal(got.indices, expected)
    np.testing.assert_array_equal(got.indices, alcore.select_top(probs, 50))
    np.testing.assert_array_equal(got.ids, expected)  # ids are the row numbers here
    assert got.exact and got.config["partitions"] == 5
    assert got.components["rank"].tolist() == list(range(1, 51))
    assert got.reasons[0].startswith("rank 1 of 6000 by margin")


def test_ties_across_partitions_go_to_the_lower_global_row(client, pool):
    probs = pool[0]
    tied = probs.copy()
    tied[:] = tied[100]  # every row the same score: the answer is rows 0 .. k-1
    folder = Path(tempfile.mkdtemp())
    files = _write(folder, tied, splits=(7, 7, 3000))
    got = ad.select(files, 40, client=client, chunk_rows=5)
    np.testing.assert_array_equal(got.indices, np.arange(40))


@given(data=st.data())
def test_any_partitioning_gives_the_single_machine_top_k(data):
    n = data.draw(st.integers(1, 300), label="n")
    c = data.draw(st.integers(2, 5), label="c")
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1), label="seed"))
    # Few distinct rows, so that ties are the rule.
    distinct = rng.dirichlet(np.ones(c), data.draw(st.integers(1, 6), label="distinct"))
    probs = distinct[rng.integers(len(distinct), size=n)]
    if data.draw(st.booleans(), label="float32"):
        probs = probs.astype(np.float32)
    splits = sorted(data.draw(st.lists(st.integers(0, n), max_size=5), label="splits"))
    never = np.zeros(n, dtype=bool)
    labeled = data.draw(st.lists(st.integers(0, n - 1), max_size=n // 3, unique=True))
    exclude = data.draw(st.lists(st.integers(0, n - 1), max_size=n // 3, unique=True))
    never[labeled + exclude] = True
    if never.all():
        return
    k = data.draw(st.integers(1, int((~never).sum())), label="k")
    chunk_rows = data.draw(st.integers(1, 64), label="chunk_rows")
    with tempfile.TemporaryDirectory() as folder:
        paths = _write(Path(folder), probs, splits=splits)
        got = ad.select(paths, k, client="sync", labeled=labeled, exclude=exclude,
                        chunk_rows=chunk_rows)
    np.testing.assert_array_equal(got.indices, top_ref(margin_ref(probs), k, never))
    assert got.exact


def test_dask_array_and_dataframe_sources(client, pool):
    probs = pool[0]
    source = da.from_array(probs, chunks=(1100, probs.shape[1]))
    got = ad.select(source, 30, client=client, exclude=[5, 6])
    expected = alcore.select_top(probs, 30, exclude=[5, 6])
    np.testing.assert_array_equal(got.indices, expected)
    dd = pytest.importorskip("dask.dataframe")
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame({"id": [f"item-{i}" for i in range(len(probs))],
                          **{f"p{j}": probs[:, j] for j in range(probs.shape[1])}})
    got = ad.select(dd.from_pandas(frame, npartitions=4), 30, client=client,
                    exclude=["item-5", "item-6"])
    np.testing.assert_array_equal(got.indices, expected)
    assert got.ids[0] == f"item-{expected[0]}"
    got = ad.select(dd.from_pandas(frame, npartitions=3), 30, client=client, id=None,
                    exclude=[5, 6])
    np.testing.assert_array_equal(got.indices, expected)


def test_custom_utility_with_an_extra_column(client, tmp_path):
    probs, _ = _pool(n=3000)
    cost = np.random.default_rng(1).uniform(1, 2, len(probs))

    def per_cost(p, cost):  # a closure-free function defined here: pickled by value
        return (1.0 - p.max()) / cost

    paths = _write(tmp_path, probs, splits=(1000, 2000), extra={"price": cost})
    got = ad.select(paths, 25, score=per_cost, extra={"cost": "price"}, client=client)
    reference = np.array([(1.0 - float(max(r))) / c for r, c in zip(probs, cost, strict=True)])
    np.testing.assert_array_equal(got.indices, top_ref(reference, 25))
    assert got.config["score"] == "test_custom_utility_with_an_extra_column.<locals>.per_cost"


# --- the diversity stage ------------------------------------------------------------------

@pytest.mark.parametrize("method, options", [
    ("kcenter", {}), ("kcenter", {"metric": "cosine"}), ("badge", {}), ("typiclust", {}),
    ("probcover", {"radius": 2.5}), ("spread", {"min_distance": 3.0})])
def test_diversity_equals_the_single_machine_select(client, pool, method, options):
    probs, emb, paths = pool
    labeled = [3, 140, 4500]
    got = ad.select(paths, 12, client=client, diversity=method, candidates=4,
                    labeled=labeled, exclude=[7], seed=3, **options)
    mask = np.zeros(len(probs), dtype=bool)
    mask[labeled] = True
    single = alcore.select(probs, 12, embeddings=emb, diversity=method, candidates=4,
                           labeled=mask, exclude=[7], seed=3, **options)
    np.testing.assert_array_equal(got.indices, single.indices)
    np.testing.assert_array_equal(got.scores, single.scores)
    assert got.reasons == single.reasons
    for name, values in single.components.items():
        np.testing.assert_array_equal(got.components[name], values, err_msg=name)
    assert got.shortfall == single.shortfall


def test_fewer_candidates_per_partition_says_when_the_merge_is_exact(client, tmp_path):
    probs, emb = _pool(n=4000)
    # The 200 most uncertain rows all lie in the first partition.
    order = np.argsort(-margin_ref(probs), kind="stable")
    probs, emb = probs[order], emb[order]
    paths = _write(tmp_path, probs, emb, splits=(1000, 2000, 3000))
    full = ad.select(paths, 10, client=client, diversity="kcenter", candidates=20)
    short = ad.select(paths, 10, client=client, diversity="kcenter", candidates=20,
                      candidates_per_partition=50)
    assert full.exact and not short.exact
    (tmp_path / "shuffled").mkdir()
    spread_out = _write(tmp_path / "shuffled", probs[np.argsort(order)],
                        emb[np.argsort(order)], splits=(1000, 2000, 3000))
    # Spread over the partitions: one candidate more than any partition holds of the true
    # 200 best proves the merge; one fewer cannot be proven.
    shuffled = probs[np.argsort(order)]
    truth = top_ref(margin_ref(shuffled), 200)
    most = int(np.bincount(np.searchsorted([1000, 2000, 3000], truth, side="right")).max())
    options = {"client": client, "diversity": "kcenter", "candidates": 20}
    whole = ad.select(spread_out, 10, **options)
    enough = ad.select(spread_out, 10, candidates_per_partition=most + 1, **options)
    short = ad.select(spread_out, 10, candidates_per_partition=most - 1, **options)
    assert whole.exact and enough.exact and not short.exact
    np.testing.assert_array_equal(enough.indices, whole.indices)
    assert enough.config["bytes_returned"] < whole.config["bytes_returned"]


# --- density ------------------------------------------------------------------------------

def _density_ref(emb, k):
    """1 / mean distance to the k nearest other rows, float64 brute force, / its max."""
    x = emb.astype(np.float64)
    sq = ((x[:, None, :] - x[None, :, :]) ** 2).sum(axis=2)
    np.fill_diagonal(sq, np.inf)
    mean = np.sqrt(np.sort(sq, axis=1)[:, :k]).mean(axis=1)
    dens = 1.0 / mean
    return dens / dens.max()


def test_knn_density_against_a_brute_force_reference(client, tmp_path):
    probs, emb = _pool(n=1500, d=5)
    emb[200:230] += np.arange(30, dtype=np.float32)[:, None] * 1e-3  # near, not equal
    paths = _write(tmp_path, probs, emb, splits=(400, 900))
    # A sample of the whole pool: the exact index, the exact k-NN density.
    got = ad.select(paths, 40, client=client, density="knn", density_k=7,
                    density_sample=5000, beta=0.5)
    dens = _density_ref(emb, 7)
    combined = margin_ref(probs) * dens ** 0.5
    np.testing.assert_array_equal(got.indices, top_ref(combined, 40))
    np.testing.assert_allclose(got.components["density"], dens[got.indices], rtol=1e-6)
    assert got.config["density_index"] == "flat"
    same = ad.select(paths, 40, client="sync", density="knn", density_k=7,
                     density_sample=5000, beta=0.5)
    np.testing.assert_array_equal(got.indices, same.indices)


def test_knn_density_on_a_sample_index(client, tmp_path):
    probs, emb = _pool()
    emb = np.random.default_rng(2).normal(size=emb.shape).astype(np.float32)  # no copies
    paths = _write(tmp_path, probs, emb, splits=(130, 130, 2500, 4100))
    got = ad.select(paths, 1000, client=client, density="knn", density_sample=5000, seed=1)
    again = ad.select(paths, 1000, client="sync", density="knn", density_sample=5000, seed=1)
    np.testing.assert_array_equal(got.indices, again.indices)
    assert got.config["density_index"] == "ivf" and got.config["density_sample"] == 5000
    # The sample index finds most true neighbours: the densities agree with the exact
    # whole-pool ones in rank (Spearman) on this structureless data.
    exact = _density_ref(emb, 10)
    assert np.all(got.components["density"] > 0)
    ranks = np.argsort(np.argsort(got.components["density"]))
    truth = np.argsort(np.argsort(exact[got.indices]))
    assert np.corrcoef(ranks, truth)[0, 1] > 0.9


# --- failures: a worker killed mid-run, bad input ---------------------------------------

def test_a_killed_worker_changes_nothing(client, tmp_path):
    probs, emb = _pool(n=240_000, c=6, d=4)
    paths = _write(tmp_path, probs, emb, splits=tuple(range(10_000, 240_000, 10_000)))
    expected = ad.select(paths, 100, client="sync", diversity="kcenter", chunk_rows=2000)
    result: dict = {}

    def run():
        result["found"] = ad.select(paths, 100, client=client, diversity="kcenter",
                                    chunk_rows=2000)

    thread = threading.Thread(target=run)
    pids = client.run(os.getpid)
    thread.start()
    victim = None
    deadline = time.monotonic() + 60
    while victim is None and time.monotonic() < deadline:
        busy = [w for w, tasks in client.processing().items() if tasks]
        if busy:
            victim = busy[0]
        time.sleep(0.01)
    assert victim is not None, "no task ever ran"
    os.kill(pids[victim], signal.SIGKILL)
    killed_while_running = thread.is_alive()
    thread.join(120)
    assert killed_while_running and not thread.is_alive()
    np.testing.assert_array_equal(result["found"].indices, expected.indices)
    assert client.run(os.getpid).get(victim) != pids[victim]  # that worker is gone
    client.wait_for_workers(2, timeout=60)


def test_bad_values_name_the_partition_and_row(client, tmp_path):
    probs, _ = _pool(n=300)
    probs = probs.astype(np.float64)
    probs[250, 1] = np.nan
    paths = _write(tmp_path, probs, splits=(200,))
    with pytest.raises(InvalidInputError, match=r"part001\.parquet: .*row 50\b"):
        ad.select(paths, 5, client=client)


def test_rejected_calls(pool, tmp_path):
    paths = pool[2]
    cases = [
        (dict(source=42), "source must be a Dask array or dataframe, a list of pool files"),
        (dict(source=[]), "empty list"),
        (dict(source=[paths[0], paths[0]]), "lists a file twice"),
        (dict(source=str(tmp_path / "none*.parquet")), "no file matches"),
        (dict(source=[str(tmp_path / "gone.parquet")]), "no such file"),
        (dict(id="key"), "no id column 'key'"),
        (dict(labeled=["a"]), "labeled holds 'a' but the file's ids are"),
        (dict(exclude="abc"), "exclude must be a collection of ids"),
        (dict(diversity="cluster_margin"), "clusters the whole pool"),
        (dict(diversity="typiclust", clusters=np.zeros(6000, int)), "clusters= gives a label"),
        (dict(density="information"), "density must be one of"),
        (dict(beta=2.0), "beta=2 weights the density"),
        (dict(candidates=3), "candidates=3 sizes the pool of a diversity stage"),
        (dict(candidates_per_partition=0), "candidates_per_partition must be a positive"),
        (dict(k=6001), "k=6001 exceeds the 6000 items"),
        (dict(client=3.5), "client must be a dask.distributed.Client"),
        (dict(score="bald"), "score must be one of"),
        (dict(kcenter_metric="l2"), "takes no argument"),
        (dict(extra={"cost": "c"}), "extra= maps a custom score function"),
    ]
    for change, message in cases:
        arguments = {"source": paths, "k": 5, "client": "sync", **change}
        with pytest.raises(InvalidInputError, match=message):
            ad.select(arguments.pop("source"), arguments.pop("k"), **arguments)
    generator = np.random.default_rng(5)
    state = generator.bit_generator.state
    with pytest.raises(InvalidInputError):
        ad.select(paths, 99_999, client="sync", density="knn", density_sample=100,
                  seed=generator)
    assert generator.bit_generator.state == state


def test_rejected_array_sources(client):
    probs, emb = _pool(n=300)
    unknown = da.from_array(probs, chunks=(30, 4))
    unknown = unknown[unknown[:, 0] > 0]  # row chunks of unknown size
    with pytest.raises(InvalidInputError, match=r"compute_chunk_sizes"):
        ad.select(unknown, 5, client=client)
    source = da.from_array(probs, chunks=(30, 4))
    with pytest.raises(InvalidInputError, match="diversity= needs embeddings="):
        ad.select(source, 5, client=client, diversity="kcenter")
    with pytest.raises(InvalidInputError, match="embeddings has shape"):
        ad.select(source, 5, client=client, embeddings=emb[:50], diversity="kcenter")
    with pytest.raises(InvalidInputError, match="embeddings= names the embedding column"):
        ad.select(["a.parquet"], 5, client=client, embeddings=emb)

    def with_cost(p, cost):
        return cost

    with pytest.raises(InvalidInputError, match="cannot hold"):
        ad.select(source, 5, client=client, score=with_cost)


def test_concurrent_calls_on_one_client(client, pool):
    probs, _, paths = pool
    expected = alcore.select_top(probs, 20)
    found: list = []

    def call():
        found.append(ad.select(paths, 20, client=client).indices)

    threads = [threading.Thread(target=call) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(found) == 4
    for indices in found:
        np.testing.assert_array_equal(indices, expected)


def test_what_crosses_the_network_is_reported(client, pool):
    paths = pool[2]
    plain = ad.select(paths, 10, client=client)
    diverse = ad.select(paths, 10, client=client, diversity="kcenter")
    # A full partition sends k rows: row, id, score, uncertainty (8 bytes each).
    assert max(plain.config["bytes_returned"]) == 10 * 4 * 8
    # With diversity, 50 candidates and their 8 float32 embedding values too.
    assert max(diverse.config["bytes_returned"]) == 50 * (4 * 8 + 8 * 4)
    assert plain.config["bytes_shipped"] < 10_000


def test_a_utility_is_picklable():
    import pickle

    u = alcore.utility(_module_level_utility)
    again = pickle.loads(pickle.dumps(u))
    assert again.name == u.name and again.extra == u.extra
    row = np.array([[0.7, 0.2, 0.1]])
    assert alcore.select_top(row, 1, score=again).tolist() == [0]


def _module_level_utility(p):
    return 1.0 - p.max()


# --- from the hostile review -------------------------------------------------------------

def test_a_single_numbered_column_is_refused_as_before(tmp_path):
    probs, _ = _pool(n=300)
    path = tmp_path / "numbered.parquet"
    pl.DataFrame({"id": np.arange(300), **{f"p{j}": probs[:, j] for j in range(4)}}
                 ).write_parquet(path)
    for call in (lambda: alcore.io.top_k_from_file(path, 3, probs="p0"),
                 lambda: ad.select([str(path)], 3, probs="p0", client="sync")):
        with pytest.raises(InvalidInputError, match=r"probs='p0' names one column.*'p\*'"):
            call()
    got = ad.select([str(path)], 3, probs="p*", client="sync")
    np.testing.assert_array_equal(got.indices, alcore.select_top(probs, 3))


def test_partitions_must_agree_on_columns_and_types(tmp_path):
    probs, emb = _pool(n=400)
    cases = {
        "precision": ([probs[:200], probs[200:].astype(np.float64)], None, None,
                      r"probability dtype float32 then float64"),
        "classes": ([probs[:200, :3] / probs[:200, :3].sum(1, keepdims=True), probs[200:]],
                    None, None, r"classes 3 then 4"),
        "width": ([probs[:200], probs[200:]], [emb[:200, :4], emb[200:, :5]], None,
                  r"embedding width 4 then 5"),
        "ids": ([probs[:200], probs[200:]], None, [np.arange(200), np.array(
            [f"x{i}" for i in range(200)])], r"id type integer then text"),
    }
    for name, (parts, embs, ids, message) in cases.items():
        folder = tmp_path / name
        folder.mkdir()
        paths = []
        for i, block in enumerate(parts):
            columns = {"id": np.arange(i * 200, i * 200 + len(block)) if ids is None
                       else ids[i], "probs": block}
            if embs is not None:
                columns["embedding"] = embs[i]
            paths.append(str(folder / f"p{i}.parquet"))
            pl.DataFrame(columns).write_parquet(paths[-1])
        kwargs = {"diversity": "kcenter"} if embs is not None else {}
        with pytest.raises(InvalidInputError, match=message):
            ad.select(paths, 5, client="sync", **kwargs)
    # ids of two types with an id set: a clear error from the partition that differs
    folder = tmp_path / "ids"
    with pytest.raises(InvalidInputError, match=r"p1\.parquet: its id column 'id' is String"):
        ad.select([str(folder / "p0.parquet"), str(folder / "p1.parquet")], 5,
                  client="sync", exclude=[3])


def test_more_rejections_from_the_review(pool, tmp_path):
    probs, emb, paths = pool
    generator = np.random.default_rng(9)
    state = generator.bit_generator.state
    cases = [
        (dict(candidates_per_partition=4), "candidates_per_partition=4 is below k=5"),
        (dict(probs=3), "probs= names a table's probability columns"),
        (dict(labeled=np.zeros(6000, bool)), "labeled= takes the items' ids here"),
        (dict(density="knn", density_sample=3), "raise density_sample"),
        (dict(source=[paths[0], paths[0].replace("/part000", "/./part000")]),
         "lists a file twice"),
        (dict(client="not a url"), "no Dask scheduler answered"),
    ]
    for change, message in cases:
        arguments = {"source": paths, "k": 5, "client": "sync", "seed": generator, **change}
        with pytest.raises(InvalidInputError, match=message):
            ad.select(arguments.pop("source"), arguments.pop("k"), **arguments)
        assert generator.bit_generator.state == state
    bad = emb.copy()
    bad[4000, 2] = np.nan
    (tmp_path / "nan").mkdir()
    files = _write(tmp_path / "nan", probs, bad, splits=(2500,))
    for kwargs in ({"diversity": "kcenter"}, {"density": "knn"}):
        with pytest.raises(InvalidInputError, match=r"part001\.parquet: .*row 1500\b"):
            ad.select(files, 5, client="sync", **kwargs)
    with pytest.raises(InvalidInputError, match="drop probs="):
        ad.select(da.from_array(probs, chunks=(1000, 4)), 5, client="sync", probs="p*")


def test_a_refused_scheduler_address_fails_fast(pool):
    start = time.monotonic()
    with pytest.raises(InvalidInputError, match="no Dask scheduler answered"):
        ad.select(pool[2], 5, client="tcp://127.0.0.1:1")
    assert time.monotonic() - start < 20


def test_client_none_closes_the_cluster_it_made(pool, tmp_path):
    # In a fresh process: this module's own client would be the default one here.
    import subprocess
    import sys
    import textwrap

    script = tmp_path / "none.py"
    script.write_text(textwrap.dedent(f"""
        import multiprocessing, time
        import numpy as np
        import alcore, alcore.distributed as ad
        if __name__ == "__main__":
            for _ in range(2):
                got = ad.select({pool[2]!r}, 5, client=None)
            deadline = time.monotonic() + 30
            while multiprocessing.active_children() and time.monotonic() < deadline:
                time.sleep(0.1)
            print(got.indices.tolist(), len(multiprocessing.active_children()))
    """))
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=180, env={**os.environ, "PYTHONPATH": ""})
    assert done.returncode == 0, done.stderr[-2000:]
    indices, children = done.stdout.split("]")
    assert indices + "]" == str(alcore.select_top(pool[0], 5).tolist())
    assert children.strip() == "0"


def test_a_scheduler_address_and_a_port_that_is_not_one(client, pool, monkeypatch):
    import socket

    from alcore.distributed import _select

    got = ad.select(pool[2], 5, client=client.scheduler.address)
    np.testing.assert_array_equal(got.indices, alcore.select_top(pool[0], 5))
    monkeypatch.setattr(_select, "CONNECT_TIMEOUT", "1s")
    with socket.socket() as silent:  # listens, never speaks: as an HTTP server would
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        address = f"tcp://127.0.0.1:{silent.getsockname()[1]}"
        with pytest.raises(InvalidInputError, match="sent no Dask handshake within 1s"):
            ad.select(pool[2], 5, client=address)
