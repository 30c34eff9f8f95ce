"""alcore.monitor.agreement against scikit-learn's cohen_kappa_score, statsmodels'
fleiss_kappa, the krippendorff package and a slow pure-Python reference, on random tables
with missing ratings, string labels, ties and perfect agreement; every refusal pinned."""

from __future__ import annotations

import itertools
import json
import math
import sys
import warnings
from collections import Counter

import krippendorff
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sklearn.metrics import cohen_kappa_score
from statsmodels.stats.inter_rater import aggregate_raters, fleiss_kappa

import alcore
from alcore.monitor import agreement

# The implementation module, to force its sparse path.
agreement_impl = sys.modules["alcore.monitor._agreement"]

# --- the slow reference: plain Python, one item at a time, no call to the code under test --


def reference(rows: list[list]) -> dict:
    """Everything agreement() reports, from rows of labels with None for missing; raises
    ValueError where agreement must refuse."""
    n_ann = len(rows[0])
    ratings = [[x for x in row if x is not None] for row in rows]
    pairable = [r for r in ratings if len(r) >= 2]
    if not pairable:
        raise ValueError("no item with two ratings")
    labels = sorted({x for r in ratings for x in r})
    used = sorted({x for r in pairable for x in r})
    if len(used) < 2:
        raise ValueError("one category")
    per_item = []
    for r in ratings:
        if len(r) < 2:
            per_item.append(math.nan)
            continue
        same = sum(1 for i in range(len(r)) for j in range(len(r)) if i != j and r[i] == r[j])
        per_item.append(same / (len(r) * (len(r) - 1)))
    # Fleiss, generalised to varying counts.
    total = sum(len(r) for r in pairable)
    p = {c: sum(r.count(c) for r in pairable) / total for c in labels}
    p_bar = sum(x for x in per_item if not math.isnan(x)) / len(pairable)
    p_e = sum(v * v for v in p.values())
    fleiss = (p_bar - p_e) / (1 - p_e)
    # Krippendorff: the coincidence matrix, one ordered pair of ratings at a time.
    o = {(c, k): 0.0 for c in labels for k in labels}
    for r in pairable:
        for i in range(len(r)):
            for j in range(len(r)):
                if i != j:
                    o[r[i], r[j]] += 1.0 / (len(r) - 1)
    n_c = {c: sum(o[c, k] for k in labels) for c in labels}
    n = sum(n_c.values())
    d_o = sum(o[c, k] for c in labels for k in labels if c != k)
    d_e = sum(n_c[c] * n_c[k] for c in labels for k in labels if c != k) / (n - 1)
    alpha = 1 - d_o / d_e
    # Cohen per pair over the items both rated.
    kappa = np.full((n_ann, n_ann), np.nan)
    shared = np.zeros((n_ann, n_ann), dtype=np.int64)
    for a in range(n_ann):
        shared[a, a] = sum(1 for row in rows if row[a] is not None)
    for a, b in itertools.combinations(range(n_ann), 2):
        both = [(row[a], row[b]) for row in rows if row[a] is not None and row[b] is not None]
        shared[a, b] = shared[b, a] = len(both)
        if not both:
            continue
        po = sum(x == y for x, y in both) / len(both)
        ca, cb = Counter(x for x, _ in both), Counter(y for _, y in both)
        pe = sum(ca[c] * cb[c] for c in labels) / len(both) ** 2
        if pe < 1:
            kappa[a, b] = kappa[b, a] = (po - pe) / (1 - pe)
    majority, tie = [], []
    for r in ratings:
        counts = Counter(r)
        if not counts:
            majority.append(None)
            tie.append(False)
            continue
        top = max(counts.values())
        best = [c for c in labels if counts[c] == top]
        majority.append(best[0])
        tie.append(len(best) > 1)
    return {"per_item": per_item, "fleiss": fleiss, "alpha": alpha, "kappa": kappa,
            "shared": shared, "majority": majority, "tie": tie,
            "n_ratings": [len(r) for r in ratings], "labels": labels}


# --- random tables -----------------------------------------------------------------------------

WORDS = ["cat", "dog", "bird", "fish", "ant", "cow"]


@st.composite
def tables(draw, max_items: int = 40, complete: bool = False):
    """(rows with None for missing, number of categories). Few categories and annotators
    give ties; a high missing rate gives unpairable items and pairs sharing nothing."""
    n = draw(st.integers(1, max_items))
    m = draw(st.integers(2, 6))
    k = draw(st.integers(2, 5))
    seed = draw(st.integers(0, 2**32 - 1))
    strings = draw(st.booleans())
    rng = np.random.default_rng(seed)
    skew = rng.dirichlet(np.ones(k))  # uneven category shares
    codes = rng.choice(k, size=(n, m), p=skew)
    if draw(st.booleans()):  # correlated annotators: mostly agree with a true label
        truth = rng.choice(k, size=n, p=skew)
        keep = rng.random((n, m)) < draw(st.sampled_from([0.5, 0.8, 1.0]))
        codes = np.where(keep, truth[:, None], codes)
    if complete:
        absent = np.zeros((n, m), dtype=bool)
    else:
        absent = rng.random((n, m)) < draw(st.sampled_from([0.0, 0.1, 0.3, 0.6]))
    rows = [[None if absent[i, j] else (WORDS[codes[i, j]] if strings else int(codes[i, j]))
             for j in range(m)] for i in range(n)]
    return rows


def as_float(rows: list[list]) -> np.ndarray:
    return np.array([[np.nan if x is None else x for x in row] for row in rows], dtype=float)


def as_object(rows: list[list]) -> np.ndarray:
    arr = np.empty((len(rows), len(rows[0])), dtype=object)
    for i, row in enumerate(rows):
        arr[i] = row
    return arr


def table_of(rows: list[list]) -> np.ndarray:
    """The table as a user holds it: float with NaN for numbers, object with None for words."""
    numeric = all(isinstance(x, int) for row in rows for x in row if x is not None)
    return as_float(rows) if numeric else as_object(rows)


def coded(rows: list[list], labels: list) -> np.ndarray:
    """Annotators x items, float codes with NaN for missing: the krippendorff package's
    reliability_data."""
    index = {c: i for i, c in enumerate(labels)}
    return np.array([[np.nan if row[j] is None else index[row[j]] for row in rows]
                     for j in range(len(rows[0]))], dtype=float)


def check_against_reference(report, ref) -> None:
    np.testing.assert_allclose(report.per_item, ref["per_item"], rtol=1e-12, atol=1e-12)
    assert report.fleiss_kappa == pytest.approx(ref["fleiss"], rel=1e-10, abs=1e-12)
    assert report.krippendorff_alpha == pytest.approx(ref["alpha"], rel=1e-10, abs=1e-12)
    np.testing.assert_allclose(report.pairwise_kappa, ref["kappa"], rtol=1e-10, atol=1e-12)
    np.testing.assert_array_equal(report.pair_items, ref["shared"])
    assert report.majority.tolist() == ref["majority"]
    assert report.tie.tolist() == ref["tie"]
    assert report.n_ratings.tolist() == ref["n_ratings"]
    assert list(report.categories) == ref["labels"]
    upper = ref["kappa"][np.triu_indices(len(ref["kappa"]), 1)]
    upper = upper[~np.isnan(upper)]
    if upper.size:
        assert report.cohen_kappa == pytest.approx(upper.mean(), rel=1e-10, abs=1e-12)
    else:
        assert math.isnan(report.cohen_kappa)
        assert any("cohen_kappa is NaN" in w for w in report.warnings)


@given(tables())
def test_matches_the_slow_reference_and_refuses_where_it_does(rows):
    try:
        ref = reference(rows)
    except ValueError as why:
        message = ("no item with two ratings" if "two" in str(why) else "one category only")
        with pytest.raises(alcore.InvalidInputError, match=message):
            agreement(table_of(rows))
        return
    report = agreement(table_of(rows))
    check_against_reference(report, ref)
    assert report.items == tuple(range(len(rows)))
    assert report.annotators == tuple(range(len(rows[0])))


@given(tables())
def test_krippendorff_package_on_tables_with_missing(rows):
    try:
        ref = reference(rows)
    except ValueError:
        return
    report = agreement(table_of(rows))
    expected = krippendorff.alpha(reliability_data=coded(rows, ref["labels"]),
                                  level_of_measurement="nominal")
    assert report.krippendorff_alpha == pytest.approx(expected, rel=1e-9, abs=1e-12)


@given(tables())
def test_sklearn_cohen_kappa_per_pair_on_the_items_both_rated(rows):
    try:
        reference(rows)
    except ValueError:
        return
    report = agreement(table_of(rows))
    m = len(rows[0])
    for a, b in itertools.combinations(range(m), 2):
        both = [(row[a], row[b]) for row in rows if row[a] is not None and row[b] is not None]
        if not both:
            assert math.isnan(report.pairwise_kappa[a, b])
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # sklearn warns where kappa is undefined (NaN)
            expected = cohen_kappa_score([x for x, _ in both], [y for _, y in both])
        if math.isnan(expected):
            assert math.isnan(report.pairwise_kappa[a, b])
        else:
            assert report.pairwise_kappa[a, b] == pytest.approx(expected, rel=1e-9, abs=1e-12)
            assert report.pairwise_kappa[b, a] == report.pairwise_kappa[a, b]
    if m == 2:
        assert report.cohen_kappa == pytest.approx(report.pairwise_kappa[0, 1], nan_ok=True)


@given(tables(complete=True))
def test_statsmodels_fleiss_kappa_on_complete_tables(rows):
    try:
        ref = reference(rows)
    except ValueError:
        return
    report = agreement(table_of(rows))
    counts, _ = aggregate_raters(coded(rows, ref["labels"]).T.astype(int))
    assert report.fleiss_kappa == pytest.approx(fleiss_kappa(counts, method="fleiss"),
                                                rel=1e-9, abs=1e-12)


@given(tables(complete=True, max_items=30))
def test_two_annotators_match_the_stopping_module_cohen_kappa(rows):
    """The peer: alcore.stopping.cohen_kappa on two complete label vectors."""
    rows = [row[:2] for row in rows]
    try:
        reference(rows)
    except ValueError:
        return
    a, b = [row[0] for row in rows], [row[1] for row in rows]
    report = agreement(table_of(rows))
    assert report.cohen_kappa == pytest.approx(alcore.stopping.cohen_kappa(a, b), abs=1e-12)


@given(tables(), st.integers(0, 2**32 - 1))
def test_long_format_triples_equal_the_table(rows, seed):
    try:
        reference(rows)
    except ValueError:
        return
    wide = agreement(table_of(rows))
    triples = [(f"task{i}", f"ann{j}", x) for i, row in enumerate(rows)
               for j, x in enumerate(row)]
    order = np.random.default_rng(seed).permutation(len(triples))
    shuffled = [triples[i] for i in order]
    long = agreement(shuffled)
    # Items and annotators come in order of first appearance: map them back to positions.
    item_pos = [int(t[4:]) for t in long.items]
    ann_pos = [int(a[3:]) for a in long.annotators]
    np.testing.assert_allclose(long.per_item, wide.per_item[item_pos])
    assert long.majority.tolist() == wide.majority[item_pos].tolist()
    assert long.tie.tolist() == wide.tie[item_pos].tolist()
    np.testing.assert_allclose(long.pairwise_kappa,
                               wide.pairwise_kappa[np.ix_(ann_pos, ann_pos)])
    np.testing.assert_array_equal(long.pair_items, wide.pair_items[np.ix_(ann_pos, ann_pos)])
    for name in ("fleiss_kappa", "krippendorff_alpha", "cohen_kappa"):
        assert getattr(long, name) == pytest.approx(getattr(wide, name), nan_ok=True)


@pytest.mark.parametrize("dense_cells, column_pairs", [(0, 32), (1 << 22, 0), (0, 0)])
@given(rows=tables())
def test_every_counting_path_gives_the_same(rows, dense_cells, column_pairs):
    """The numpy.unique path (thousands of categories or annotators) and the rating-pair
    path (many annotators) equal the default dense, per-column one."""
    try:
        reference(rows)
    except ValueError:
        return
    default = agreement(table_of(rows))
    saved = agreement_impl._DENSE_CELLS, agreement_impl._COLUMN_PAIRS_MAX
    agreement_impl._DENSE_CELLS, agreement_impl._COLUMN_PAIRS_MAX = dense_cells, column_pairs
    try:
        other = agreement(table_of(rows))
    finally:
        agreement_impl._DENSE_CELLS, agreement_impl._COLUMN_PAIRS_MAX = saved
    np.testing.assert_array_equal(other.per_item, default.per_item)
    np.testing.assert_allclose(other.pairwise_kappa, default.pairwise_kappa, rtol=1e-12)
    np.testing.assert_array_equal(other.pair_items, default.pair_items)
    assert other.majority.tolist() == default.majority.tolist()
    assert other.tie.tolist() == default.tie.tolist()
    assert (other.fleiss_kappa, other.krippendorff_alpha) == (
        default.fleiss_kappa, default.krippendorff_alpha)


def test_many_annotators_take_the_rating_pair_path():
    """40 crowd workers, three per item: beyond the per-column loop; equal to sklearn."""
    rng = np.random.default_rng(3)
    triples = []
    for item in range(300):
        for worker in rng.choice(40, size=3, replace=False):
            triples.append((item, int(worker), int(rng.integers(0, 3))))
    report = agreement(triples)
    assert report.n_annotators == 40 > agreement_impl._COLUMN_PAIRS_MAX
    table = np.full((300, 40), np.nan)
    for item, worker, label in triples:
        table[item, worker] = label
    a, b = (report.annotators.index(w) for w in (0, 1))
    both = ~np.isnan(table[:, 0]) & ~np.isnan(table[:, 1])
    if both.sum() and len(set(table[both, 0]) | set(table[both, 1])) > 1:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            expected = cohen_kappa_score(table[both, 0], table[both, 1])
        assert report.pairwise_kappa[a, b] == pytest.approx(expected, nan_ok=True)
    ref = reference([[None if np.isnan(x) else int(x) for x in row] for row in table])
    order = list(report.annotators)
    np.testing.assert_allclose(report.pairwise_kappa, ref["kappa"][np.ix_(order, order)])
    assert report.krippendorff_alpha == pytest.approx(ref["alpha"])


# --- fixed cases -------------------------------------------------------------------------------


def test_perfect_agreement_is_one_and_nothing_to_review():
    table = np.array([["a", "a", "a"], ["b", "b", None], ["a", None, "a"], ["c", "c", "c"]],
                     dtype=object)
    report = agreement(table)
    assert report.cohen_kappa == pytest.approx(1.0)
    assert report.fleiss_kappa == pytest.approx(1.0)
    assert report.krippendorff_alpha == pytest.approx(1.0)
    np.testing.assert_array_equal(report.per_item, 1.0)
    assert report.disagreements().size == 0
    assert report.majority.tolist() == ["a", "b", "a", "c"]
    assert not report.tie.any()


def test_majority_ties_take_the_first_label_in_categories_order():
    table = np.array([[1, 2], [2, 1], [1, 1], [3, 2]], dtype=float)
    report = agreement(table)
    assert report.majority.tolist() == [1, 1, 1, 2]
    assert report.tie.tolist() == [True, True, False, True]
    flipped = agreement(table, categories=[3, 2, 1])
    assert flipped.majority.tolist() == [2, 2, 1, 3]
    assert flipped.categories == (3, 2, 1)
    assert flipped.fleiss_kappa == pytest.approx(report.fleiss_kappa)


def test_per_item_agreement_and_disagreements():
    table = np.array([[0, 0, 0, 0], [0, 0, 0, 1], [0, 0, 1, 1], [0, np.nan, np.nan, np.nan],
                      [1, 1, np.nan, np.nan]])
    report = agreement(table)
    # Agreeing pairs: 6/6, 3/6, 2/6, unpairable, 1/1.
    np.testing.assert_allclose(report.per_item, [1.0, 0.5, 1 / 3, np.nan, 1.0])
    assert report.disagreements().tolist() == [1, 2]
    assert report.disagreements(0.5).tolist() == [2]
    assert report.disagreements(0.4).dtype == np.int64
    assert report.n_ratings.tolist() == [4, 4, 4, 1, 2]
    assert any("1 of 5 items have fewer than two ratings" in w for w in report.warnings)
    assert report.categories == (0, 1)  # whole-number floats are reported as ints
    assert all(type(c) is int for c in report.categories)


def test_integer_table_with_a_missing_sentinel_and_string_sentinel():
    ints = np.array([[0, 1, -1], [1, 1, 1], [0, -1, 0]])
    floats = np.array([[0, 1, np.nan], [1, 1, 1], [0, np.nan, 0]])
    a, b = agreement(ints, missing=-1), agreement(floats)
    assert a.fleiss_kappa == pytest.approx(b.fleiss_kappa)
    np.testing.assert_allclose(a.per_item, b.per_item)
    words = np.array([["x", "y", ""], ["y", "y", "y"], ["x", "", "x"]])
    c = agreement(words, missing="")
    assert c.krippendorff_alpha == pytest.approx(b.krippendorff_alpha)


def test_dataframes_name_their_annotators():
    pl = pytest.importorskip("polars")
    pd = pytest.importorskip("pandas")
    rows = [["cat", "cat", None], ["dog", "cat", "dog"], [None, "dog", "dog"]]
    expected = agreement(as_object(rows))
    frame = pl.DataFrame({"ann": [r[0] for r in rows], "bob": [r[1] for r in rows],
                          "cy": [r[2] for r in rows]})
    pandas_frame = pd.DataFrame({name: frame[name].to_list() for name in frame.columns})
    for df in (frame, pandas_frame):
        got = agreement(df)
        assert got.annotators == ("ann", "bob", "cy")
        assert got.krippendorff_alpha == pytest.approx(expected.krippendorff_alpha)
        np.testing.assert_allclose(got.per_item, expected.per_item)
    nullable = pd.DataFrame({"a": pd.array([1, None, 2, 1], dtype="Int64"),
                             "b": pd.array([1, 2, 2, None], dtype="Int64")})
    numeric = agreement(nullable)
    assert numeric.n_ratings.tolist() == [2, 1, 2, 1]
    assert numeric.categories == (1, 2)
    ints = pl.DataFrame({"a": [1, None, 2, 1], "b": [1, 2, 2, None]})
    assert agreement(ints).fleiss_kappa == pytest.approx(numeric.fleiss_kappa)


def test_to_dict_is_json_with_nan_as_null():
    report = agreement([("t1", "ann", "cat"), ("t1", "bob", "dog"), ("t2", "ann", "cat"),
                        ("t2", "bob", "cat"), ("t3", "ann", "dog"), ("t3", "cy", "dog"),
                        ("t4", "cy", None)])
    data = json.loads(json.dumps(report.to_dict(), allow_nan=False))
    assert data["items"] == ["t1", "t2", "t3", "t4"]
    assert data["annotators"] == ["ann", "bob", "cy"]
    assert data["per_item"][3] is None and data["majority"][3] is None
    assert data["n_ratings"] == [2, 2, 2, 0]
    assert data["pairwise_kappa"][1][2] is None  # bob and cy share no item
    assert data["pair_items"][0] == [3, 2, 1]
    assert data["fleiss_kappa"] == pytest.approx(report.fleiss_kappa)


def test_report_is_frozen_and_read_only():
    report = agreement(np.array([[0, 1], [1, 1], [0, 0]]))
    with pytest.raises(AttributeError):
        report.fleiss_kappa = 1.0
    with pytest.raises(ValueError):
        report.per_item[0] = 1.0


def test_large_table_is_vectorised():
    """10^5 items x 5 annotators with 10 % missing: equal to the krippendorff package."""
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 4, size=100_000)
    table = np.where(rng.random((100_000, 5)) < 0.8, truth[:, None],
                     rng.integers(0, 4, size=(100_000, 5))).astype(float)
    table[rng.random(table.shape) < 0.1] = np.nan
    report = agreement(table)
    expected = krippendorff.alpha(reliability_data=table.T, level_of_measurement="nominal")
    assert report.krippendorff_alpha == pytest.approx(expected, rel=1e-9)
    both = ~np.isnan(table[:, 0]) & ~np.isnan(table[:, 1])
    assert report.pairwise_kappa[0, 1] == pytest.approx(
        cohen_kappa_score(table[both, 0], table[both, 1]), rel=1e-9)


# --- refusals ----------------------------------------------------------------------------------

E = alcore.InvalidInputError


@pytest.mark.parametrize("bad, match", [
    (np.array([1, 2, 1]), r"annotations must be 2-D \(items x annotators\), got shape \(3,\) "
                          r"\(one annotator's labels"),
    (np.zeros((2, 2, 2)), r"annotations must be 2-D .* got shape \(2, 2, 2\)"),
    (np.zeros((0, 3)), r"annotations is empty \(shape \(0, 3\)\)"),
    ([], r"annotations is empty \(no \(item, annotator, label\) triples\)"),
    (np.array([[1], [2]]), r"annotations has one annotator \(shape \(2, 1\)\); agreement "
                           r"needs at least two"),
    ([("t1", "ann", 1), ("t2", "ann", 2)], r"annotations has 1 annotator\(s\) with labels"),
    (np.array([[1, np.nan], [np.nan, 2]]), r"annotations has no item with two ratings \(2 "
                                           r"items"),
    (np.array([[1, 1], [1, 1], [2, np.nan]]), r"annotations uses one category only \(1\) .* "
                                              r"undefined when chance agreement is 1"),
    (np.array([[1, np.inf], [1, 2]]), r"row 0, column 1 is inf; replace inf with NaN"),
    (np.array([[1, "a"], [2, "b"]], dtype=object), r"annotations mix label types that cannot "
                                                   r"be ordered \(int, str\)"),
    (np.array([[1j, 2j], [1j, 1j]]), r"annotations must hold labels .* got dtype complex128"),
    ([("t1", "a", 1), ("t1", "b")], r"annotations\[1\] is \('t1', 'b'\); pass triples"),
    ([[1, 2], [2, 2]], r"annotations is a list, read as \(item, annotator, label\) triples"),
    ([("t1", "a", 1), ("t1", "b", 2), ("t1", "a", 2)],
     r"rates item 't1' twice by annotator 'a' \(triples 0 and 2\)"),
    ({"a": [1, 2]}, r"annotations is a dict; pass an items x annotators table"),
    (None, r"annotations is None"),
])
def test_refusals(bad, match):
    with pytest.raises(E, match=match):
        agreement(bad)


def test_option_refusals():
    table = np.array([[0, 1], [1, 1]])
    with pytest.raises(E, match=r"labels not in categories: 1; add them"):
        agreement(table, categories=[0, 2])
    with pytest.raises(E, match=r"categories lists 0 twice"):
        agreement(table, categories=[0, 0, 1])
    with pytest.raises(E, match=r"categories must be a sequence of labels, got 'ab'"):
        agreement(table, categories="ab")
    with pytest.raises(E, match=r"missing= must be a number for a table of numbers"):
        agreement(table, missing="x")
    with pytest.raises(E, match=r"missing= must be a string for a table of strings"):
        agreement(np.array([["a", "b"], ["b", "b"]]), missing=0)
    report = agreement(table)
    with pytest.raises(E, match=r"threshold must be > 0"):
        report.disagreements(0)
    with pytest.raises(E, match=r"threshold must be <= 1"):
        report.disagreements(1.5)
    with pytest.raises(E, match=r"agreement\(\): .*unexpected keyword argument 'categores'.*"
                                r"did you mean categories="):
        agreement(table, categores=[0, 1])


@given(tables(complete=False, max_items=25))
def test_label_values_do_not_matter_only_their_identity(rows):
    """Huge integers (beyond the look-up table), fractional floats (numpy.unique) and the
    small codes give the same statistics: labels are nominal."""
    try:
        reference(rows)
    except ValueError:
        return
    base = agreement(table_of(rows))
    values = sorted({x for row in rows for x in row if x is not None})
    for mapping in ({x: 10**12 + 7 * i for i, x in enumerate(values)},
                    {x: i + 0.5 for i, x in enumerate(values)},
                    {x: -3 * i for i, x in enumerate(values)}):
        mapped = [[None if x is None else mapping[x] for x in row] for row in rows]
        if isinstance(mapping[values[0]], float):
            other = agreement(as_float(mapped))
        else:  # an int64 table with a sentinel for missing
            ints = np.array([[-1 if x is None else x for x in row] for row in mapped])
            assert ints.dtype == np.int64
            other = agreement(ints, missing=-1)
        np.testing.assert_array_equal(other.per_item, base.per_item)
        np.testing.assert_allclose(other.pairwise_kappa, base.pairwise_kappa, rtol=1e-12)
        assert other.fleiss_kappa == pytest.approx(base.fleiss_kappa, abs=1e-12)
        assert other.krippendorff_alpha == pytest.approx(base.krippendorff_alpha, abs=1e-12)
        # The majority maps through too (ties: the sorted order is the order of the codes
        # for the increasing maps; the decreasing one breaks ties the other way).
        if mapping[values[-1]] > mapping[values[0]]:
            assert other.majority.tolist() == [None if x is None else mapping[x]
                                               for x in base.majority]


def test_one_item_and_an_unrated_item():
    report = agreement(np.array([["yes", "no"], [None, None]], dtype=object))
    assert report.per_item[0] == 0.0 and np.isnan(report.per_item[1])
    assert report.fleiss_kappa == pytest.approx(-1.0)
    assert report.krippendorff_alpha == pytest.approx(0.0)
    assert report.majority.tolist() == ["no", None] and report.tie.tolist() == [True, False]
    assert report.n_ratings.tolist() == [2, 0]


def test_long_format_missing_labels_in_every_spelling():
    base = [("t1", "a", "x"), ("t1", "b", "y"), ("t2", "a", "x"), ("t2", "b", "x"),
            ("t3", "a", "y"), ("t3", "b", "y")]
    expected = agreement(base)
    for hole in (None, float("nan"), np.float64("nan"), "skip"):
        report = agreement([*base, ("t4", "a", hole), ("t4", "c", hole)],
                           missing="skip" if hole == "skip" else None)
        assert report.items == ("t1", "t2", "t3", "t4")
        assert report.annotators == ("a", "b")  # c gave no label
        assert report.n_ratings.tolist() == [2, 2, 2, 0]
        assert report.fleiss_kappa == pytest.approx(expected.fleiss_kappa)
    mixed = agreement([("t1", "a", np.int64(1)), ("t1", "b", 2), ("t2", "a", 1),
                       ("t2", "b", np.int32(1))])  # numpy scalars: the per-label path
    assert mixed.categories == (1, 2) and mixed.per_item.tolist() == [0.0, 1.0]
    with pytest.raises(E, match=r"annotations\[1\] is 'abc'; pass triples"):
        agreement([("t1", "a", 1), "abc"])
    with pytest.raises(E, match=r"annotations has an unhashable item id \[1\]"):
        agreement([([1], "a", 1), ("t1", "b", 1)])


@given(tables())
def test_perfect_agreement_on_random_tables_is_one(rows):
    """Every annotator gives each item the label of its first rating: kappa = alpha = 1."""
    agreed = []
    for row in rows:
        first = next((x for x in row if x is not None), None)
        agreed.append([None if x is None else first for x in row])
    try:
        reference(agreed)
    except ValueError:
        return
    report = agreement(table_of(agreed))
    assert report.fleiss_kappa == pytest.approx(1.0)
    assert report.krippendorff_alpha == pytest.approx(1.0)
    defined = report.pairwise_kappa[~np.isnan(report.pairwise_kappa)]
    np.testing.assert_allclose(defined, 1.0)
    assert report.disagreements().size == 0 and not report.tie.any()
