"""PoolSketch.build / save / load (alcore.monitor): every exact part of the sketch against
a plain numpy computation over the whole pool, the same sketch whatever the pool arrives
as, persistence without pickle, and bad inputs with their messages."""

from __future__ import annotations

import itertools
import json
import zipfile

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alcore import InvalidInputError, _faiss
from alcore.monitor import PoolSketch
from alcore.monitor import _sketch as sketch_module
from alcore.monitor._kernels import add_bin_counts, block_moments, float32_edges


def clustered(n: int, d: int, seed: int, clusters: int = 5, offset: float = 0.0):
    rng = np.random.default_rng(seed)
    centres = 6 * rng.standard_normal((clusters, d))
    labels = rng.integers(clusters, size=n)
    x = (centres[labels] + rng.standard_normal((n, d)) + offset).astype(np.float32)
    return x, labels


def direct_bin_counts(x: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """The reference: numpy's searchsorted (side="right") and bincount, feature by
    feature, in float64."""
    d, inner = edges.shape
    out = np.zeros((d, inner + 1), dtype=np.int64)
    for j in range(d):
        b = np.searchsorted(edges[j], x[:, j].astype(np.float64), side="right")
        out[j] = np.bincount(b, minlength=inner + 1)
    return out


def brute_nearest(x: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """Nearest centroid by float64 differences, first minimum (the lower id) on ties."""
    diff = x.astype(np.float64)[:, None, :] - centroids[None, :, :]
    return np.argmin((diff * diff).sum(axis=2), axis=1)


# ------------------------------------------------------------------ exact parts


def test_bin_counts_are_exact_over_the_whole_pool_not_the_sample():
    x, _ = clustered(6000, 5, seed=1)
    sk = PoolSketch.build(x, sample=500, clusters=6, rff_features=32)
    assert len(sk.sample) == 500  # the second pass read the pool, not the sample
    np.testing.assert_array_equal(sk.bin_counts, direct_bin_counts(x, sk.edges))
    assert (sk.bin_counts.sum(axis=1) == 6000).all()


def test_edges_are_the_samples_quantiles_and_the_sample_is_pool_rows():
    x, _ = clustered(3000, 4, seed=2)
    sk = PoolSketch.build(x, bins=8, sample=700, clusters=4, rff_features=16)
    rows = sk.sample_rows
    assert rows.dtype == np.int64 and len(rows) == 700
    assert (np.diff(rows) > 0).all()  # unique, in pool order
    np.testing.assert_array_equal(sk.sample, x[rows])
    want = np.quantile(x[rows].astype(np.float64), np.arange(1, 8) / 8, axis=0).T
    np.testing.assert_allclose(sk.edges, want, rtol=0, atol=1e-12)
    assert sk.edges.shape == (4, 7) and sk.bin_counts.shape == (4, 8)


def test_sample_is_uniform_over_the_pool():
    # Each of 10 position strata of a 50k pool should get about a tenth of 5000 rows
    # (binomial sd 21); a first-rows or last-rows bias would put 0 or 5000 in one.
    x = np.zeros((50_000, 1), dtype=np.float32)
    x[:, 0] = np.arange(50_000)
    sk = PoolSketch.build(x, sample=5000, clusters=2, rff_features=8, seed=3)
    per_stratum = np.bincount(sk.sample_rows // 5000, minlength=10)
    assert (np.abs(per_stratum - 500) < 100).all(), per_stratum
    other = PoolSketch.build(x, sample=5000, clusters=2, rff_features=8, seed=4)
    assert not np.array_equal(sk.sample_rows, other.sample_rows)


def test_whole_pool_in_the_sample_when_it_fits():
    x, _ = clustered(300, 3, seed=5)
    sk = PoolSketch.build(x, sample=1000, clusters=4, rff_features=16)
    np.testing.assert_array_equal(sk.sample_rows, np.arange(300))
    np.testing.assert_array_equal(sk.sample, x)
    np.testing.assert_array_equal(sk.bin_counts, direct_bin_counts(x, sk.edges))


def test_moments_are_exact_on_uncentred_data():
    x, _ = clustered(70_000, 3, seed=6, offset=1e4)  # two blocks
    sk = PoolSketch.build(x, sample=1000, clusters=3, rff_features=8)
    x64 = x.astype(np.float64)
    np.testing.assert_allclose(sk.mean, x64.mean(axis=0), rtol=1e-13)
    np.testing.assert_allclose(sk.std, x64.std(axis=0), rtol=1e-10)


def test_cluster_sizes_are_exact_assignment_counts_and_sum_to_n():
    x, _ = clustered(5000, 6, seed=7, clusters=8)
    sk = PoolSketch.build(x, sample=800, clusters=8, rff_features=16)
    assert sk.centroids.shape == (8, 6) and sk.cluster_sizes.sum() == 5000
    want = np.bincount(brute_nearest(x, sk.centroids), minlength=8)
    np.testing.assert_array_equal(sk.cluster_sizes, want)


def test_centroids_lie_in_the_datas_coordinates_on_uncentred_data():
    rng = np.random.default_rng(8)
    centres = 20 * np.vstack([np.zeros(3), np.eye(3)])  # four groups 20 apart
    labels = rng.integers(4, size=4000)
    x = (centres[labels] + rng.standard_normal((4000, 3)) + 1e4).astype(np.float32)
    sk = PoolSketch.build(x, sample=4000, clusters=4, rff_features=8)
    # Each centroid close to one group's mean.
    means = np.array([x[labels == c].mean(axis=0) for c in range(4)], dtype=np.float64)
    gaps = np.sqrt(((sk.centroids[:, None] - means[None]) ** 2).sum(axis=2)).min(axis=1)
    assert (gaps < 0.5).all(), gaps


def test_class_histogram_from_probabilities_and_from_ids():
    rng = np.random.default_rng(9)
    x, _ = clustered(4000, 3, seed=9)
    probs = rng.dirichlet(np.ones(4), size=4000)
    probs[0] = [0.4, 0.4, 0.1, 0.1]  # a tie: the lower class
    sk = PoolSketch.build(x, probs, sample=500, clusters=3, rff_features=8)
    want = np.bincount(np.argmax(probs, axis=1), minlength=4)
    np.testing.assert_array_equal(sk.class_counts, want)
    np.testing.assert_array_equal(sk.sample_classes, np.argmax(probs, axis=1)[sk.sample_rows])
    ids = rng.integers(0, 3, size=4000)
    by_ids = PoolSketch.build(x, ids, sample=500, clusters=3, rff_features=8)
    np.testing.assert_array_equal(by_ids.class_counts, np.bincount(ids, minlength=3))
    # Probabilities of a class no row predicts still count as a class.
    probs2 = np.zeros((4000, 5))
    probs2[:, 1] = 1
    sk2 = PoolSketch.build(x, probs2, sample=500, clusters=3, rff_features=8)
    np.testing.assert_array_equal(sk2.class_counts, [0, 4000, 0, 0, 0])


def test_numba_bin_kernel_matches_searchsorted_with_values_on_edges():
    rng = np.random.default_rng(10)
    x = rng.integers(-3, 4, size=(500, 3)).astype(np.float32)  # many values equal edges
    edges = np.sort(rng.integers(-3, 4, size=(3, 5)).astype(np.float64), axis=1)
    counts = np.zeros((3, 6), dtype=np.int64)
    add_bin_counts(x, float32_edges(edges), counts)
    np.testing.assert_array_equal(counts, direct_bin_counts(x, edges))
    # float64 edges between float32 values, and float32 values on either side of them.
    edges = np.sort(rng.standard_normal((3, 7)), axis=1)
    near = edges.T.astype(np.float32)
    x = np.concatenate([near, np.nextafter(near, np.float32(np.inf)),
                        np.nextafter(near, -np.float32(np.inf)),
                        rng.standard_normal((50, 3)).astype(np.float32)])
    counts = np.zeros((3, 8), dtype=np.int64)
    add_bin_counts(np.ascontiguousarray(x), float32_edges(edges), counts)
    np.testing.assert_array_equal(counts, direct_bin_counts(x, edges))


def test_block_moments_match_numpy():
    x = (np.random.default_rng(21).standard_normal((999, 4)) * 3 + 1e4).astype(np.float32)
    mean, m2 = block_moments(x)
    x64 = x.astype(np.float64)
    np.testing.assert_allclose(mean, x64.mean(axis=0), rtol=1e-14)
    np.testing.assert_allclose(m2, ((x64 - x64.mean(axis=0)) ** 2).sum(axis=0), rtol=1e-10)


def test_assign_matches_brute_force_ties_to_lower_id_and_any_blocking():
    rng = np.random.default_rng(11)
    x = (rng.standard_normal((3000, 5)) + 1e4).astype(np.float32)
    centroids = x[:7].astype(np.float64)
    centroids = np.vstack([centroids, centroids[2]])  # a duplicate: id 2 wins its rows
    got = _faiss.assign(x, centroids)
    np.testing.assert_array_equal(got, brute_nearest(x, centroids))
    assert not (got == 7).any()
    parts = np.concatenate([_faiss.assign(x[a:b], centroids)
                            for a, b in ((0, 1), (1, 1000), (1000, 3000))])
    np.testing.assert_array_equal(parts, got)
    # Every row equidistant from two centroids: the lower id.
    line = np.zeros((10, 2), dtype=np.float32)
    line[:, 1] = np.arange(10)
    assert (_faiss.assign(line, np.array([[1.0, 0.0], [-1.0, 0.0]])) == 0).all()


# ------------------------------------------------------------------ same sketch, any source


def _write_parquet(path, x, probs=None, columns=False):
    import polars as pl

    if columns:
        data = {f"e{j}": x[:, j] for j in range(x.shape[1])}
    else:
        data = {"embedding": pl.Series(x).cast(pl.Array(pl.Float32, x.shape[1]))}
    if probs is not None:
        data["label"] = probs
    pl.DataFrame(data).write_parquet(path, row_group_size=9000)


def test_array_chunks_callable_and_parquet_give_the_same_sketch(tmp_path):
    n = sketch_module.BLOCK_ROWS + 4464  # two blocks; chunks that straddle them
    x, labels = clustered(n, 4, seed=12)
    opts = {"sample": 2000, "clusters": 5, "rff_features": 16, "seed": 3}
    ref = PoolSketch.build(x, labels, **opts)
    cuts = [0, 1, 30_000, 65_537, n]
    chunks = [x[a:b] for a, b in itertools.pairwise(cuts)]
    label_chunks = [labels[a:b] for a, b in itertools.pairwise(cuts)]
    assert PoolSketch.build(chunks, labels, **opts) == ref
    assert PoolSketch.build(chunks, label_chunks, **opts) == ref
    assert PoolSketch.build(lambda: iter(chunks), labels, **opts) == ref
    path = tmp_path / "pool.parquet"
    _write_parquet(path, x, labels)
    assert PoolSketch.build(path, "label", chunk_rows=7000, **opts) == ref
    wide = tmp_path / "wide.parquet"
    _write_parquet(wide, x, columns=True)
    no_classes = PoolSketch.build(x, **opts)
    assert PoolSketch.build(str(wide), embeddings="e*", chunk_rows=50_000, **opts) == no_classes
    mapped = tmp_path / "pool.npy"
    np.save(mapped, x)
    assert PoolSketch.build(np.load(mapped, mmap_mode="r"), labels, **opts) == ref
    assert PoolSketch.build(x.astype(np.float64), labels, **opts) == ref


def test_parquet_probability_columns(tmp_path):
    import polars as pl

    x, _ = clustered(900, 3, seed=13)
    probs = np.random.default_rng(13).dirichlet(np.ones(3), size=900)
    path = tmp_path / "p.parquet"
    pl.DataFrame({"emb": pl.Series(x).cast(pl.Array(pl.Float32, 3)),
                  **{f"p{c}": probs[:, c] for c in range(3)}}).write_parquet(path)
    sk = PoolSketch.build(path, "p*", sample=300, clusters=3, rff_features=8)
    np.testing.assert_array_equal(sk.class_counts, np.bincount(probs.argmax(axis=1),
                                                               minlength=3))
    assert sk == PoolSketch.build(x, probs, sample=300, clusters=3, rff_features=8)
    # A class no row predicts is still one of the file's classes.
    probs[:, 2] = 0
    probs /= probs.sum(axis=1, keepdims=True)
    pl.DataFrame({"emb": pl.Series(x).cast(pl.Array(pl.Float32, 3)),
                  **{f"p{c}": probs[:, c] for c in range(3)}}).write_parquet(path)
    sk = PoolSketch.build(path, "p*", sample=300, clusters=3, rff_features=8)
    assert len(sk.class_counts) == 3 and sk.class_counts[2] == 0
    assert sk.audit(x[:20], probs[:20]).class_tvd is not None


def test_progress_counts_both_passes():
    x, _ = clustered(3000, 2, seed=14)
    calls = []
    PoolSketch.build(x, sample=100, clusters=2, rff_features=8,
                     progress=lambda done, total: calls.append((done, total)))
    assert calls[-1] == (6000, 6000) and calls[0] == (3000, 6000)


# ------------------------------------------------------------------ persistence


def test_save_load_round_trip_without_pickle(tmp_path):
    x, labels = clustered(2000, 3, seed=15)
    sk = PoolSketch.build(x, labels, sample=400, clusters=4, rff_features=16)
    path = tmp_path / "pool.sketch.npz"
    sk.save(path)
    loaded = PoolSketch.load(path)
    assert loaded == sk and loaded.n_rows == 2000 and loaded.rff_bandwidth == sk.rff_bandwidth
    with np.load(path, allow_pickle=False) as data:  # plain arrays only
        header = json.loads(data["header"].tobytes())
        assert header["format"] == "alcore.PoolSketch" and header["version"] == 1
        np.testing.assert_array_equal(data["bin_counts"], sk.bin_counts)
        assert all(data[name].dtype != object for name in data.files)
    x_sel = x[:50]
    assert loaded.audit(x_sel).to_dict() == sk.audit(x_sel).to_dict()
    # A sketch without predictions round-trips too.
    plain = PoolSketch.build(x, sample=400, clusters=4, rff_features=16)
    plain.save(tmp_path / "plain.npz")
    assert PoolSketch.load(tmp_path / "plain.npz") == plain
    assert PoolSketch.load(tmp_path / "plain.npz").class_counts is None


def _rewrite_header(source, target, **changes):
    with np.load(source, allow_pickle=False) as data:
        arrays = {name: data[name] for name in data.files}
    header = json.loads(arrays["header"].tobytes())
    header.update(changes)
    arrays["header"] = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
    with open(target, "wb") as f:
        np.savez(f, **arrays)


def test_load_refuses_newer_versions_and_foreign_files(tmp_path):
    x, _ = clustered(500, 2, seed=16)
    sk = PoolSketch.build(x, sample=100, clusters=2, rff_features=8)
    sk.save(tmp_path / "s.npz")
    _rewrite_header(tmp_path / "s.npz", tmp_path / "new.npz", version=2, alcore="9.0")
    with pytest.raises(InvalidInputError,
                       match=r"new.npz was written in PoolSketch format version 2 \(by alcore "
                             r"9.0\); this alcore .* reads versions up to 1: upgrade alcore"):
        PoolSketch.load(tmp_path / "new.npz")
    _rewrite_header(tmp_path / "s.npz", tmp_path / "other.npz", format="something.else")
    with pytest.raises(InvalidInputError, match=r"other\.npz is not a PoolSketch file"):
        PoolSketch.load(tmp_path / "other.npz")
    np.savez(tmp_path / "plain.npz", a=np.arange(3))
    with pytest.raises(InvalidInputError, match=r"plain\.npz is not a PoolSketch file"):
        PoolSketch.load(tmp_path / "plain.npz")
    (tmp_path / "text.npz").write_text("hello")
    with pytest.raises(InvalidInputError, match=r"text\.npz is not a PoolSketch file"):
        PoolSketch.load(tmp_path / "text.npz")
    with pytest.raises(InvalidInputError, match=r"missing\.npz: no such file"):
        PoolSketch.load(tmp_path / "missing.npz")
    with pytest.raises(InvalidInputError, match="does not exist; create it first"):
        sk.save(tmp_path / "no" / "s.npz")
    assert zipfile.is_zipfile(tmp_path / "s.npz")


def test_a_pickled_array_in_the_file_is_refused(tmp_path):
    x, _ = clustered(500, 2, seed=17)
    PoolSketch.build(x, sample=100, clusters=2, rff_features=8).save(tmp_path / "s.npz")
    with np.load(tmp_path / "s.npz", allow_pickle=False) as data:
        arrays = {name: data[name] for name in data.files}
    arrays["mean"] = np.array([{"evil": 1}], dtype=object)
    with open(tmp_path / "p.npz", "wb") as f:
        np.savez(f, **arrays)
    with pytest.raises(InvalidInputError, match=r"p\.npz is not a PoolSketch file"):
        PoolSketch.load(tmp_path / "p.npz")
    # Arrays that do not fit together are refused on loading, not in an audit.
    arrays["mean"] = arrays["std"]
    arrays["centroids"] = arrays["centroids"][:, :1]
    with open(tmp_path / "q.npz", "wb") as f:
        np.savez(f, **arrays)
    with pytest.raises(InvalidInputError, match=r"q\.npz is not a PoolSketch file .*its "
                                                r"arrays do not fit together: centroids has "
                                                r"shape \(2, 1\)"):
        PoolSketch.load(tmp_path / "q.npz")


# ------------------------------------------------------------------ bad input


def test_bad_pools_are_refused_with_their_row():
    x, _ = clustered(70_000, 2, seed=18)
    bad = x.copy()
    bad[66_000, 1] = np.nan
    with pytest.raises(InvalidInputError,
                       match=r"pool_embeddings must be finite: row 66000, column 1 is nan"):
        PoolSketch.build(bad, sample=100)
    with pytest.raises(InvalidInputError,
                       match=r"pool_embeddings must be finite: row 66000, column 1 is nan"):
        PoolSketch.build([bad[:60_000], bad[60_000:]], sample=100)
    with pytest.raises(InvalidInputError, match="can be read only once; the sketch reads "
                                                "the pool twice: pass a list of chunks"):
        PoolSketch.build(c for c in [x[:10], x[10:]])
    with pytest.raises(InvalidInputError, match=r"the chunk at row 10 has 3 features but "
                                                r"the first had 2"):
        PoolSketch.build([x[:10], np.ones((5, 3), np.float32)])
    with pytest.raises(InvalidInputError, match=r"pool_embeddings must be 2-D"):
        PoolSketch.build(np.ones(10, np.float32))
    with pytest.raises(InvalidInputError, match=r"pool_embeddings must have a floating dtype"):
        PoolSketch.build(np.ones((10, 2), np.int64))
    with pytest.raises(InvalidInputError, match=r"pool_embeddings has no rows; pass at "
                                                r"least one row"):
        PoolSketch.build(np.ones((0, 2), np.float32))


def test_a_pool_that_changes_between_passes_is_refused():
    x, _ = clustered(3000, 2, seed=19)
    reads = []

    def chunks():
        reads.append(1)
        return iter([x[::-1] if len(reads) > 1 else x])

    with pytest.raises(InvalidInputError, match=r"differs between the two passes over the "
                                                r"pool; the sketch reads the pool twice"):
        PoolSketch.build(chunks, sample=100)
    short = []

    def fewer():
        short.append(1)
        return iter([x if len(short) == 1 else x[:2000]])

    with pytest.raises(InvalidInputError, match=r"gave 3000 rows on the first pass and 2000"):
        PoolSketch.build(fewer, sample=100)


def test_bad_predictions_and_parameters():
    x, _ = clustered(100, 2, seed=20)
    probs = np.full((100, 3), 1 / 3)
    with pytest.raises(InvalidInputError, match=r"pool_predictions has 99 rows .* but "
                                                r"pool_embeddings has 100"):
        PoolSketch.build(x, probs[:99])
    bad = probs.copy()
    bad[42, 2] = np.inf
    with pytest.raises(InvalidInputError, match=r"pool_predictions must be finite: row 42, "
                                                r"column 2 is inf"):
        PoolSketch.build(x, bad)
    with pytest.raises(InvalidInputError, match=r"holds class id -1 in row 7; class ids "
                                                r"must be >= 0"):
        PoolSketch.build(x, np.where(np.arange(100) == 7, -1, 1))
    with pytest.raises(InvalidInputError, match=r"pool_predictions is 1-D with dtype float64: "
                                                r"pass \(N,\) integer class ids"):
        PoolSketch.build(x, np.zeros(100))
    with pytest.raises(InvalidInputError, match=r"has 1 column\(s\)"):
        PoolSketch.build(x, np.zeros((100, 1)))
    with pytest.raises(InvalidInputError, match=r"bins must be >= 2, got 1"):
        PoolSketch.build(x, bins=1)
    with pytest.raises(InvalidInputError, match=r"sample must be a positive integer, got 0"):
        PoolSketch.build(x, sample=0)
    with pytest.raises(InvalidInputError, match=r"clusters must be a positive integer"):
        PoolSketch.build(x, clusters=2.5)
    with pytest.raises(InvalidInputError, match=r"embeddings= names a file's embedding "
                                                r"column"):
        PoolSketch.build(x, embeddings="e*")
    with pytest.raises(InvalidInputError, match=r"pool_predictions='probs' names a column"):
        PoolSketch.build(x, "probs")
    with pytest.raises(InvalidInputError, match=r"seed must be >= 0"):
        PoolSketch.build(x, seed=-1)
    with pytest.raises(InvalidInputError, match=r"progress must be a callable"):
        PoolSketch.build(x, progress=3)
    with pytest.raises(InvalidInputError, match=r"got an unexpected keyword argument "
                                                r"'sample_size'"):
        PoolSketch.build(x, sample_size=3)


def test_bad_files(tmp_path):
    import polars as pl

    path = tmp_path / "pool.parquet"
    pl.DataFrame({"a": [1.0, 2.0]}).write_parquet(path)
    with pytest.raises(InvalidInputError, match=r"pool.parquet: no embedding column "
                                                r"'embedding' or 'emb'; columns are a"):
        PoolSketch.build(path)
    with pytest.raises(InvalidInputError, match=r"no column matches 'e\*' for the embeddings"):
        PoolSketch.build(path, embeddings="e*")
    with pytest.raises(InvalidInputError, match=r"missing.parquet: no such file"):
        PoolSketch.build(tmp_path / "missing.parquet")
    nan = tmp_path / "nan.parquet"
    values = np.ones((20, 2), dtype=np.float32)
    values[13, 0] = np.nan
    pl.DataFrame({"emb": pl.Series(values).cast(pl.Array(pl.Float32, 2))}).write_parquet(nan)
    with pytest.raises(InvalidInputError, match=r"must be finite: row 13, column 0 is nan"):
        PoolSketch.build(nan, chunk_rows=5)


# ------------------------------------------------------------------ random pools


@st.composite
def pools(draw):
    n = draw(st.integers(1, 120))
    d = draw(st.integers(1, 4))
    seed = draw(st.integers(0, 2**16))
    rng = np.random.default_rng(seed)
    kind = draw(st.sampled_from(["normal", "integers", "constant"]))
    if kind == "normal":
        x = rng.standard_normal((n, d))
    elif kind == "integers":  # many ties, values on the edges
        x = rng.integers(-2, 3, size=(n, d)).astype(np.float64)
    else:
        x = np.full((n, d), 3.5)
        x[:, 0] = rng.standard_normal(n)
    x += draw(st.sampled_from([0.0, 1e4]))
    return x.astype(np.float32)


@settings(max_examples=40, deadline=None)
@given(x=pools(), sample=st.integers(1, 150), bins=st.integers(2, 12),
       clusters=st.integers(1, 6))
def test_random_pools(x, sample, bins, clusters):
    sk = PoolSketch.build(x, bins=bins, sample=sample, clusters=clusters, rff_features=8)
    n = len(x)
    assert len(sk.sample) == min(n, sample)
    np.testing.assert_array_equal(sk.sample, x[sk.sample_rows])
    np.testing.assert_array_equal(sk.bin_counts, direct_bin_counts(x, sk.edges))
    assert sk.cluster_sizes.sum() == n
    np.testing.assert_array_equal(
        sk.cluster_sizes, np.bincount(brute_nearest(x, sk.centroids),
                                      minlength=len(sk.centroids)))
    np.testing.assert_allclose(sk.mean, x.astype(np.float64).mean(axis=0), rtol=1e-12)
    assert np.isfinite(sk.rff_mean).all() and sk.rff_bandwidth > 0


@settings(max_examples=30, deadline=None)
@given(x=pools(), block=st.integers(1, 9), data=st.data())
def test_any_chunking_gives_the_same_sketch(x, block, data):
    """Small blocks (many of them) and chunks cut anywhere: the sketch is the array's."""
    cuts = sorted(set(data.draw(st.lists(st.integers(1, max(1, len(x) - 1)), max_size=6))))
    cuts = [0, *[c for c in cuts if 0 < c < len(x)], len(x)]
    labels = np.arange(len(x)) % 3
    opts = {"sample": data.draw(st.integers(1, 50)), "clusters": 3, "rff_features": 8,
            "bins": 4}
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sketch_module, "BLOCK_ROWS", block)
        whole = PoolSketch.build(x, labels, **opts)
        chunks = [x[a:b] for a, b in itertools.pairwise(cuts)]
        parts = [labels[a:b] for a, b in itertools.pairwise(cuts)]
        assert PoolSketch.build(chunks, parts, **opts) == whole
    np.testing.assert_array_equal(whole.bin_counts, direct_bin_counts(x, whole.edges))
    np.testing.assert_array_equal(whole.class_counts, np.bincount(labels))


def test_rff_bandwidth_is_the_median_heuristic_and_rff_mean_the_samples():
    x, _ = clustered(400, 3, seed=22, offset=1e4)
    sk = PoolSketch.build(x, sample=1000, clusters=3, rff_features=64)
    x64 = x.astype(np.float64)
    z = (x64 - x64.mean(axis=0)) / x64.std(axis=0)
    pairs = np.sqrt(((z[:, None] - z[None]) ** 2).sum(axis=2))[np.triu_indices(400, 1)]
    assert sk.rff_bandwidth == pytest.approx(np.median(pairs), rel=1e-9)
    phi = np.sqrt(2 / 64) * np.cos(z @ sk.rff_weights.T + sk.rff_offsets)
    np.testing.assert_allclose(sk.rff_mean, phi.mean(axis=0), atol=1e-9)
    constant = PoolSketch.build(np.ones((50, 2), np.float32), sample=100, rff_features=8)
    assert constant.rff_bandwidth == 1.0


def test_a_reiterable_collection_of_chunks_is_read_twice():
    x, _ = clustered(3000, 2, seed=23)

    class Chunks:
        def __iter__(self):
            return iter([x[:1000], x[1000:]])

    opts = {"sample": 500, "clusters": 3, "rff_features": 8}
    assert PoolSketch.build(Chunks(), **opts) == PoolSketch.build(x, **opts)
    with pytest.raises(InvalidInputError, match=r"pool_embeddings is a list_iterator, which "
                                                r"can be read only once"):
        PoolSketch.build(iter([x]), **opts)


def test_csv_pool_with_numbered_columns(tmp_path):
    import polars as pl

    x, labels = clustered(2500, 3, seed=24)
    path = tmp_path / "pool.csv"
    pl.DataFrame({**{f"e{j}": x[:, j] for j in range(3)}, "label": labels}).write_csv(path)
    opts = {"sample": 400, "clusters": 3, "rff_features": 8}
    from_csv = PoolSketch.build(path, "label", embeddings="e*", chunk_rows=700, **opts)
    assert from_csv == PoolSketch.build(x, labels, **opts)
    bad = tmp_path / "bad.csv"
    bad.write_text("e0,label\n" + "0.5,1\n" * 120 + "0.25,2.5\n")
    with pytest.raises(InvalidInputError, match=r"bad\.csv: class id column 'label' holds "
                                                r"2\.5 in row 120; class ids are whole"):
        PoolSketch.build(bad, "label", embeddings="e*")
    bad.write_text("e0,label\n" + "0.5,1\n" * 120 + "1.0,\n")
    with pytest.raises(InvalidInputError, match=r"class id column 'label' is missing \(empty "
                                                r"or null\) in row 120"):
        PoolSketch.build(bad, "label", embeddings="e*", chunk_rows=50)
