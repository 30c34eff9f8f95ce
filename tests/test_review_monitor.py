"""Hostile review of alcore.monitor (issue 11): each test pins a defect found in review
(type and message), fixed in the library."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

from alcore import InvalidInputError
from alcore.monitor import HoldoutCurve, PoolSketch, agreement, holdout_curve


@pytest.fixture(scope="module")
def pool():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((400, 4)).astype(np.float32)
    p = rng.dirichlet(np.ones(3), 400)
    return x, p


@pytest.fixture(scope="module")
def sketch(pool):
    x, p = pool
    return PoolSketch.build(x, p, sample=300, clusters=8)


# ---------------------------------------------------------------- class ids


def test_build_refuses_huge_class_id_instead_of_allocating_terabytes(pool):
    x, _ = pool
    with pytest.raises(InvalidInputError, match=r"pool_predictions holds class id "
                                                r"1000000000000 in row 0; class ids must be "
                                                r"below"):
        PoolSketch.build(x, np.full(len(x), 10**12))


def test_audit_refuses_huge_class_id(pool):
    x, _ = pool
    s = PoolSketch.build(x, np.arange(len(x)) % 3, sample=300, clusters=8)
    with pytest.raises(InvalidInputError, match=r"selected_predictions holds class id "
                                                r"1000000000000 in row 1; class ids must be "
                                                r"below"):
        s.audit(x[:3], np.array([0, 10**12, 1]))


def test_build_refuses_prediction_chunks_of_different_widths(pool):
    x, p = pool
    with pytest.raises(InvalidInputError, match=r"pool_predictions chunk 1 has 2 classes "
                                                r"\(columns\) but chunk 0 has 3"):
        PoolSketch.build([x[:100], x[100:]], [p[:100], p[100:, :2]])
    with pytest.raises(InvalidInputError, match=r"pool_predictions chunk 1 holds "
                                                r"probabilities but chunk 0 class ids"):
        PoolSketch.build([x[:100], x[100:]], [p[:100].argmax(1), p[100:]])


# ---------------------------------------------------------------- save / load


def test_load_of_an_empty_file_is_refused(tmp_path):
    path = tmp_path / "empty.npz"
    path.write_bytes(b"")
    with pytest.raises(InvalidInputError, match=r"empty.npz is not a PoolSketch file"):
        PoolSketch.load(path)


def test_load_of_a_plain_npy_file_is_refused(tmp_path):
    path = tmp_path / "plain.npy"
    np.save(path, np.arange(3))
    with pytest.raises(InvalidInputError, match=r"plain.npy is not a PoolSketch file"):
        PoolSketch.load(path)


@pytest.mark.parametrize("bad", [3, None, ["a.npz"]])
def test_load_and_save_refuse_a_path_that_is_no_path(sketch, bad):
    with pytest.raises(InvalidInputError, match=r"path must be a file path \(str or "
                                                r"pathlib.Path\), got"):
        PoolSketch.load(bad)
    with pytest.raises(InvalidInputError, match=r"path must be a file path \(str or "
                                                r"pathlib.Path\), got"):
        sketch.save(bad)


def test_save_onto_a_folder_is_refused(sketch, tmp_path):
    with pytest.raises(InvalidInputError, match=r"is a folder; name a file"):
        sketch.save(tmp_path)
    assert list(tmp_path.iterdir()) == []  # no temporary file left behind


def _tampered(sketch, tmp_path, mutate):
    path = tmp_path / "s.npz"
    sketch.save(path)
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    header = json.loads(arrays["header"].tobytes())
    mutate(arrays, header)
    arrays["header"] = np.frombuffer(json.dumps(header).encode(), np.uint8)
    out = tmp_path / "tampered.npz"
    np.savez(out, **arrays)
    return out


def _set(name, index, value):
    def mutate(arrays, header):
        arr = arrays[name].copy()
        arr[index] = value
        arrays[name] = arr
    return mutate


@pytest.mark.parametrize("mutate, problem", [
    (_set("edges", (0, 0), np.nan), r"edges holds a non-finite value"),
    (_set("sample", (0, 0), np.inf), r"sample holds a non-finite value"),
    (_set("mean", 0, np.nan), r"mean holds a non-finite value"),
    (_set("rff_weights", (0, 0), np.nan), r"rff_weights holds a non-finite value"),
    (_set("std", 0, -1.0), r"std holds a negative value"),
    (_set("edges", (0, slice(None)), np.arange(9.0)[::-1]), r"edges are not sorted"),
    (_set("bin_counts", (0, 0), -5), r"bin_counts holds a negative count"),
    (_set("bin_counts", (0, 0), 10**6), r"bin_counts of feature 0 sum to"),
    (_set("sample_rows", 0, 10**9), r"sample_rows outside 0 to 399 or not increasing"),
    (_set("sample_classes", 0, 10**12), r"sample_classes outside 0 to 2"),
    (_set("sample_classes", 0, -3), r"sample_classes outside 0 to 2"),
    (_set("class_counts", 0, -1), r"class_counts holds a negative count"),
])
def test_load_refuses_tampered_values(sketch, tmp_path, mutate, problem):
    path = _tampered(sketch, tmp_path, mutate)
    with pytest.raises(InvalidInputError, match=r"tampered.npz is not a PoolSketch file .*"
                                                r"its arrays do not fit together: " + problem):
        PoolSketch.load(path)


def test_load_refuses_negative_cluster_sizes(sketch, tmp_path):
    def mutate(arrays, header):
        sizes = arrays["cluster_sizes"].copy()
        sizes[0] -= 1000
        sizes[1] += 1000
        arrays["cluster_sizes"] = sizes
    with pytest.raises(InvalidInputError, match=r"cluster_sizes holds a negative count"):
        PoolSketch.load(_tampered(sketch, tmp_path, mutate))


@pytest.mark.parametrize("key, value, problem", [
    ("version", True, r"format version True"),
    ("version", 0, r"format version 0"),
    ("rff_bandwidth", float("inf"), r"rff_bandwidth inf"),
    ("class_source", "banana", r"class_source 'banana'"),
    ("class_source", None, r"class_source None"),
])
def test_load_refuses_tampered_header(sketch, tmp_path, key, value, problem):
    def mutate(arrays, header):
        header[key] = value
    with pytest.raises(InvalidInputError, match=r"tampered.npz .*" + problem):
        PoolSketch.load(_tampered(sketch, tmp_path, mutate))


def test_untampered_round_trip_still_loads(sketch, tmp_path):
    path = _tampered(sketch, tmp_path, lambda arrays, header: None)
    assert PoolSketch.load(path) == sketch
    plain = PoolSketch.build(np.random.default_rng(1).standard_normal((50, 2)), sample=20,
                             clusters=3)
    plain.save(tmp_path / "plain.npz")
    assert PoolSketch.load(tmp_path / "plain.npz") == plain


# ---------------------------------------------------------------- plots


@pytest.mark.parametrize("bad", [5, None])
def test_audit_plot_refuses_a_path_that_is_no_path(sketch, pool, bad):
    x, p = pool
    with pytest.raises(InvalidInputError, match=r"path must be a file path \(str or "
                                                r"pathlib.Path\), got"):
        sketch.audit(x[:50], p[:50]).plot(bad)


def _curve():
    curve = HoldoutCurve()
    curve.record(1, holdout_accuracy=0.5, selected_accuracy=0.9)
    return curve


def test_holdout_plot_into_a_missing_folder_is_refused(tmp_path):
    target = tmp_path / "nofolder" / "curve.png"
    with pytest.raises(InvalidInputError, match=r"curve.png: the folder .*nofolder' does "
                                                r"not exist; create it first"):
        _curve().plot(target)


def test_holdout_plot_onto_a_folder_or_under_a_file_is_refused(tmp_path):
    with pytest.raises(InvalidInputError, match=r"is a folder; name a file"):
        _curve().plot(tmp_path)
    (tmp_path / "file").write_text("")
    with pytest.raises(InvalidInputError, match=r"the folder .*file' does not exist"):
        _curve().plot(tmp_path / "file" / "curve.png")


def test_plots_leave_matplotlib_backend_alone(sketch, pool, tmp_path):
    import matplotlib

    x, p = pool
    before = matplotlib.get_backend()
    matplotlib.use("svg")  # a backend other than the Agg canvas the plots use
    try:
        sketch.audit(x[:50], p[:50]).plot(tmp_path / "audit.png")
        _curve().plot(tmp_path / "curve.png")
        assert matplotlib.get_backend() == "svg"
    finally:
        matplotlib.use(before)
    assert (tmp_path / "audit.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# ---------------------------------------------------------------- agreement


def _pairwise_reference(table: np.ndarray) -> np.ndarray:
    """Cohen's kappa of every annotator pair over the items both rated, by plain loops."""
    n_ann = table.shape[1]
    out = np.full((n_ann, n_ann), np.nan)
    for a in range(n_ann):
        for b in range(n_ann):
            both = ~np.isnan(table[:, a]) & ~np.isnan(table[:, b])
            if a == b or not both.any():
                continue
            x, y = table[both, a], table[both, b]
            po = np.mean(x == y)
            labels = np.union1d(x, y)
            pe = sum(np.mean(x == c) * np.mean(y == c) for c in labels)
            if pe < 1:
                out[a, b] = (po - pe) / (1 - pe)
    return out


def test_agreement_many_annotators_is_not_a_rating_pair_explosion():
    # 200 items x 1000 annotators who rate (almost) every item: 10^8 rating pairs; the
    # pair list took 28 s and gigabytes. Matrix products of indicator tables take well
    # under a second.
    rng = np.random.default_rng(3)
    table = rng.integers(0, 3, (200, 1000)).astype(float)
    table[rng.random(table.shape) < 0.05] = np.nan
    agreement(table[:, :40])  # warm-up
    start = time.perf_counter()
    report = agreement(table)
    assert time.perf_counter() - start < 3.0
    sub = table[:30, :12]
    small = agreement(sub)
    np.testing.assert_allclose(small.pairwise_kappa, _pairwise_reference(sub), atol=1e-12)
    # The big table's pairs agree with the reference on a few of its pairs.
    ref = _pairwise_reference(table[:, [0, 1, 500, 999]])
    np.testing.assert_allclose(report.pairwise_kappa[np.ix_([0, 1, 500, 999],
                                                              [0, 1, 500, 999])],
                               ref, atol=1e-12)
    assert report.pair_items[0, 1] == int((~np.isnan(table[:, 0])
                                           & ~np.isnan(table[:, 1])).sum())


def test_agreement_products_equal_rating_pairs_on_random_tables(monkeypatch):
    # More than 32 annotators: the product path on dense tables, rating pairs on sparse.
    from alcore.monitor import _agreement as impl

    used = []
    for name in ("_pair_counts_by_products", "_pair_counts_by_ratings"):
        original = getattr(impl, name)
        monkeypatch.setattr(impl, name, lambda *a, _f=original, _n=name: (used.append(_n),
                                                                          _f(*a))[1])
    rng = np.random.default_rng(4)
    for _ in range(30):
        sparse = rng.random() < 0.5
        n, m, k = rng.integers(1, 300 if sparse else 30), rng.integers(33, 60), rng.integers(2, 6)
        table = rng.integers(0, k, (n, m)).astype(float)
        rate = 0.93 + 0.05 * rng.random() if sparse else 0.6 * rng.random()
        table[rng.random(table.shape) < rate] = np.nan
        try:
            report = agreement(table)
        except InvalidInputError:
            continue
        np.testing.assert_allclose(report.pairwise_kappa, _pairwise_reference(table),
                                   atol=1e-12)
        np.testing.assert_array_equal(
            report.pair_items[~np.eye(m, dtype=bool)],
            ((~np.isnan(table)).T.astype(int) @ (~np.isnan(table)).astype(int))[
                ~np.eye(m, dtype=bool)])
    assert set(used) == {"_pair_counts_by_products", "_pair_counts_by_ratings"}


# ---------------------------------------------------------------- files


def test_float_class_id_column_is_not_read_as_a_binary_probability(pool, tmp_path):
    # A float column of class ids 0, 1, 2 (as pandas writes ints that once held NaN) was
    # read as a binary model's positive-class probability p -> [1 - p, p]: class 2 became
    # class 1 without a word.
    import polars as pl

    x, p = pool
    path = tmp_path / "pool.parquet"
    pl.DataFrame({"embedding": x.tolist(), "label": p.argmax(1).astype(float)}
                 ).write_parquet(path)
    row = int(np.argmax(p.argmax(1) == 2))
    with pytest.raises(InvalidInputError, match=rf"pool.parquet: column 'label' holds 2.0 "
                                                rf"in row {row}; one column is read as a "
                                                rf"binary model's positive-class probability"
                                                rf", in \[0, 1\]; store class ids as "
                                                rf"integers"):
        PoolSketch.build(path, "label", chunk_rows=50)
    # A true probability column still works, as [1 - p, p].
    pl.DataFrame({"embedding": x.tolist(), "p": p[:, 0]}).write_parquet(path)
    assert PoolSketch.build(path, "p") == PoolSketch.build(
        x, np.column_stack([1 - p[:, 0], p[:, 0]]))


# ---------------------------------------------------------------- held-out curve


def test_holdout_curve_takes_whole_number_accuracies_as_record_does():
    # record(1, holdout_accuracy=1) is fine; holdout_curve([1, 0]) refused int64.
    curve = holdout_curve([1, 0, 1], selected_accuracy=[1, 1, 0])
    assert curve.holdout_accuracy.tolist() == [1.0, 0.0, 1.0]
    assert curve.diverged.tolist() == [False, True, True]
    with pytest.raises(InvalidInputError, match=r"holdout_accuracy must have a floating "
                                                r"dtype .*got bool"):
        holdout_curve([True, False])


def test_record_refuses_predictions_of_another_kind_than_the_labels():
    # Class indices against string labels compare unequal everywhere: accuracy 0, and a
    # "held-out accuracy fell" warning, without a word about the cause.
    curve = HoldoutCurve()
    x, y = np.zeros((3, 2)), np.array(["cat", "dog", "cat"])
    with pytest.raises(InvalidInputError, match=r"model.predict\(holdout X\) returned "
                                                r"numbers \(dtype int64\) but holdout y holds "
                                                r"strings \(dtype <U3\); .*same labels"):
        curve.record(1, model=lambda X: np.array([0, 1, 0]), holdout=(x, y))
    assert len(curve) == 0
    point = curve.record(1, model=lambda X: np.array(["cat", "cat", "cat"]), holdout=(x, y))
    assert point.holdout_accuracy == pytest.approx(2 / 3)


def test_an_empty_chunk_among_chunks_is_skipped(pool):
    # Readers yield empty batches (an empty row group, a filtered-out shard): the pool
    # was refused as "empty (shape (0, 4)); pass at least one item" although it has rows.
    x, p = pool
    ref = PoolSketch.build(x, p, sample=300, clusters=8)
    chunks = [x[:0], x[:150], x[150:150], x[150:]]
    preds = [p[:0], p[:150], p[150:150], p[150:]]
    assert PoolSketch.build(chunks, preds, sample=300, clusters=8) == ref
    with pytest.raises(InvalidInputError, match=r"the chunk at row 150 has 3 features but "
                                                r"the first had 4"):
        PoolSketch.build([x[:150], x[150:150, :3], x[150:]])
    with pytest.raises(InvalidInputError, match=r"pool_embeddings has no rows"):
        PoolSketch.build([x[:0], x[:0]])


# ---------------------------------------------------------------- _faiss.assign


def test_assign_far_rows_by_float64_not_by_overflowed_float32():
    # |x|^2 of a row at 2e19 overflows float32: both nearest distances were inf, their
    # gap inf - inf NaN, with numpy's RuntimeWarning leaking out of an audit of such a
    # selection (an error under -W error); the row now takes the float64 decision.
    import warnings

    from alcore import _faiss

    centroids = np.array([[0.0, 0.0], [1e18, 1e18], [-1e18, 5e17]])
    far = np.array([[2e19, 2e19], [-2e19, 1e19]], dtype=np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = _faiss.assign(far, centroids)
    diff = far.astype(np.float64)[:, None, :] - centroids[None]
    np.testing.assert_array_equal(got, (diff * diff).sum(axis=2).argmin(axis=1))
    assert got.tolist() == [1, 2]


def test_too_spread_pool_names_the_argument_and_a_pool_row():
    # The error came from the k-means on the sample: "embeddings ... row 188", a position
    # in the sample, not a row of the pool the user passed.
    import re

    rng = np.random.default_rng(5)
    x = (rng.standard_normal((3000, 4)) * 1e19).astype(np.float32)
    with pytest.raises(InvalidInputError, match=r"pool_embeddings are too spread out for "
                                                r"float32 distances: row \d+ lies") as err:
        PoolSketch.build(x, sample=500, clusters=4)
    row, distance = re.search(r"row (\d+) lies (\S+) from", str(err.value)).groups()
    assert float(np.linalg.norm(x[int(row)].astype(np.float64))) == pytest.approx(
        float(distance), rel=1e-2)


def test_from_dict_refuses_a_bool_version():
    data = HoldoutCurve().to_dict()
    data["version"] = True  # True == 1 in Python
    with pytest.raises(InvalidInputError, match=r"data is not a HoldoutCurve of version 1 "
                                                r"\(kind 'alcore.monitor.HoldoutCurve', "
                                                r"version True\)"):
        HoldoutCurve.from_dict(data)


def test_sample_larger_than_the_pool_allocates_for_the_pool_only(pool):
    # sample=10**12 ("keep every row") allocated its buffers up front: MemoryError for
    # 7 TiB on a 400-row pool (and 10**8 would take gigabytes).
    x, p = pool
    assert PoolSketch.build(x, p, sample=10**12, clusters=8) == PoolSketch.build(
        x, p, sample=len(x), clusters=8)
    chunks = [x[:50], x[50:51], x[51:]]
    assert PoolSketch.build(chunks, sample=10**12, clusters=8) == PoolSketch.build(
        x, sample=len(x), clusters=8)


def test_assign_keeps_an_exact_tie_exact_and_takes_the_lower_centroid():
    # 0 lies exactly between the centroids -1 (id 1) and 1 (id 2). Shifted by the
    # centroids' float32 mean (2/3) the two distances no longer tie, and the row went to
    # id 2; the float64 re-decision works on the inputs themselves.
    from alcore import _faiss

    x = np.array([[0.0], [0.5], [-0.5]], dtype=np.float32)
    centroids = np.array([[2.0], [-1.0], [1.0]])
    np.testing.assert_array_equal(_faiss.assign(x, centroids), [1, 2, 1])
