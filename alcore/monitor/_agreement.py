"""Annotator agreement on nominal labels: Cohen's, Fleiss' kappa, Krippendorff's alpha and
per-item agreement, with missing ratings allowed.

The input (an items x annotators table, or long-format (item, annotator, label) triples)
becomes one list of ratings sorted by item, with each label encoded as a category code.
Per-item counts come from one ``numpy.bincount`` of (item, code); Fleiss' kappa,
Krippendorff's alpha, per-item agreement and the majority follow from them, and Cohen's
kappa from one confusion-matrix bincount per annotator pair. No Python loop runs over items:
10^5 items x 5 annotators take about 30-50 ms on a shared 2-core machine, every statistic
included. The per-item agreement and the majority label say which items to route to an
expert (:meth:`AgreementReport.disagreements`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from alcore import _faiss
from alcore import _validation as v
from alcore._errors import InvalidInputError

# A dense count table (items x categories, annotator pairs x categories) is used up to this
# many cells; beyond it (thousands of free-text categories, thousands of annotators) the
# keys are compressed with numpy.unique, slower but bounded by the number of ratings.
_DENSE_CELLS = 1 << 22
# Up to this many annotators Cohen's kappa loops over annotator pairs of a dense table;
# beyond, it counts the list of rating pairs, linear in the pairs however many annotate.
_COLUMN_PAIRS_MAX = 32
# Beyond, matrix products of indicator tables (K n A^2 multiply-adds) replace the list of
# rating pairs (P of them) when K n A^2 <= this times P: a BLAS multiply-add costs well
# under a thousandth of what numpy spends per rating pair (about 280 ns, measured).
_PRODUCT_ADVANTAGE = 1000

_TABLE_HINT = ("pass an items x annotators table (numpy array or polars/pandas DataFrame, "
               "NaN/None for missing) or a list of (item, annotator, label) triples")


def _is_missing(value: Any, sentinel: Any) -> bool:
    if value is None or (isinstance(value, float | np.floating) and value != value):
        return True
    # pandas.NA and pandas.NaT, recognised by type name so pandas is never imported.
    if type(value).__name__ in ("NAType", "NaTType"):
        return True
    if sentinel is None:
        return False
    try:
        return bool(value == sentinel)
    except (TypeError, ValueError):
        return False


_missing_ufunc = np.frompyfunc(_is_missing, 2, 1)
_SIMPLE_LABELS = {str, int, float, bool, type(None)}


def _absent(labels: np.ndarray, missing: Any) -> np.ndarray:
    """Boolean mask of the missing entries of an object array (None, NaN, pandas.NA, or
    ``missing``): numpy's element-wise comparisons when every label is a plain Python
    value, else one Python check per entry."""
    if set(map(type, labels.reshape(-1).tolist())) <= _SIMPLE_LABELS:
        absent = labels == None  # noqa: E711  (element-wise, numpy)
        absent |= labels != labels  # NaN
        if missing is not None:
            absent |= labels == missing
        return np.asarray(absent, dtype=bool)
    # The element-wise call raises numpy's floating-point flags a NaN label set.
    with np.errstate(invalid="ignore"):
        return _missing_ufunc(labels, missing).astype(bool)


def _present_mask(arr: np.ndarray, missing: Any) -> np.ndarray:
    """Boolean mask of the entries of a wide table that hold a rating."""
    kind = arr.dtype.kind
    if missing is not None and kind in "biuf" and (
            isinstance(missing, str | bytes | bool | np.bool_)
            or not isinstance(missing, int | float | np.integer | np.floating)):
        raise InvalidInputError(
            f"missing= must be a number for a table of numbers (dtype {arr.dtype}), got "
            f"{v.shown(missing)}; pass the number that marks a missing rating (e.g. "
            f"missing=-1), or None when NaN marks it")
    if missing is not None and kind in "US" and not isinstance(missing, str | bytes):
        raise InvalidInputError(
            f"missing= must be a string for a table of strings (dtype {arr.dtype}), got "
            f"{v.shown(missing)}; pass the string that marks a missing rating (e.g. "
            f"missing=''), or use None in an object array")
    if kind == "f":
        present = ~np.isnan(arr)
        infinite = np.isinf(arr)
        if infinite.any():
            row, col = np.argwhere(infinite)[0]
            raise InvalidInputError(
                f"annotations must hold labels or NaN for missing: row {row}, column {col} "
                f"is {arr[row, col]}; replace inf with NaN or with a label")
        if missing is not None:
            present &= arr != missing
        return present
    if kind in "biuUS":
        if missing is None:
            return np.ones(arr.shape, dtype=bool)
        return arr != missing
    if kind == "O":
        return ~_absent(arr, missing)
    raise InvalidInputError(
        f"annotations must hold labels (integers, strings, or floats with NaN for missing), "
        f"got dtype {arr.dtype}; {_TABLE_HINT}")


def _encode(values: np.ndarray) -> tuple[list, np.ndarray]:
    """(the distinct labels in sorted order as Python objects, int64 codes of ``values``).

    Whole numbers take a look-up table (one pass, no sort), strings and other objects a
    dict (hashing; only the distinct labels are sorted), other numbers numpy.unique. Float
    labels that are whole numbers (what an integer column with nulls becomes) are reported
    as ints."""
    kind = values.dtype.kind
    if kind == "f" and values.size and np.abs(values).max() < 2.0 ** 53 and np.array_equal(
            values, np.floor(values)):
        values = values.astype(np.int64)
        kind = "i"
    if kind in "iu" and values.size:
        low, high = int(values.min()), int(values.max())
        span = high - low + 1
        if span <= max(1 << 16, 2 * values.size):
            shifted = values.astype(np.int64, copy=False)
            if low:
                shifted = shifted - low
            seen = np.bincount(shifted, minlength=span) > 0
            lookup = np.cumsum(seen) - 1
            labels = (np.flatnonzero(seen) + low).tolist()
            return labels, lookup[shifted]
    if kind in "OUS":
        # Hashing, not sorting, the ratings; only the distinct labels are sorted.
        as_list = values.tolist()
        try:
            distinct = sorted(dict.fromkeys(as_list))
        except TypeError:
            kinds = sorted({type(x).__name__ for x in as_list})
            raise InvalidInputError(
                f"annotations mix label types that cannot be ordered ({', '.join(kinds)}); "
                f"use one type for every label (e.g. all strings)") from None
        index = {label: i for i, label in enumerate(distinct)}
        return ([x.item() if isinstance(x, np.generic) else x for x in distinct],
                np.fromiter(map(index.__getitem__, as_list), dtype=np.int64,
                            count=len(as_list)))
    try:
        labels, codes = np.unique(values, return_inverse=True)
    except TypeError:
        kinds = sorted({type(x).__name__ for x in values.tolist()})
        raise InvalidInputError(
            f"annotations mix label types that cannot be ordered ({', '.join(kinds)}); use "
            f"one type for every label (e.g. all strings)") from None
    return labels.tolist(), codes.reshape(-1).astype(np.int64, copy=False)


class _Ratings:
    """The ratings as parallel arrays sorted by item, then annotator."""

    def __init__(self, items: tuple, annotators: tuple, item: np.ndarray, annotator: np.ndarray,
                 values: np.ndarray):
        self.items, self.annotators = items, annotators
        self.item, self.annotator, self.values = item, annotator, values


def _wide(arr: np.ndarray, annotators: tuple | None, missing: Any) -> _Ratings:
    if arr.ndim != 2:
        hint = (" (one annotator's labels? agreement needs two or more columns)"
                if arr.ndim == 1 else "")
        raise InvalidInputError(
            f"annotations must be 2-D (items x annotators), got shape {arr.shape}{hint}; "
            f"{_TABLE_HINT}")
    n, m = arr.shape
    if n == 0 or m == 0:
        raise InvalidInputError(
            f"annotations is empty (shape {arr.shape}); pass at least one item rated by two "
            f"annotators")
    if m < 2:
        raise InvalidInputError(
            f"annotations has one annotator (shape {arr.shape}); agreement needs at least two "
            f"annotators (columns)")
    present = _present_mask(arr, missing)
    flat = np.flatnonzero(present)  # row-major: sorted by item, then annotator
    # Items by repeating each row's index, annotators by one multiply: no integer division.
    item = np.repeat(np.arange(n, dtype=np.int64), np.count_nonzero(present, axis=1))
    annotator = flat - item * m
    return _Ratings(tuple(range(n)), annotators if annotators is not None else tuple(range(m)),
                    item, annotator, arr.reshape(-1)[flat])


def _first_index(ids: list, name: str) -> tuple[tuple, np.ndarray]:
    """(the distinct ids in order of first appearance, int64 position of each id)."""
    try:
        order = dict.fromkeys(ids)
    except TypeError:
        bad = next(x for x in ids if not _hashable(x))
        raise InvalidInputError(
            f"annotations has an unhashable {name} id {v.shown(bad)}; use strings or "
            f"integers as ids") from None
    index = {key: i for i, key in enumerate(order)}
    return tuple(order), np.fromiter(map(index.__getitem__, ids), dtype=np.int64,
                                     count=len(ids))


def _hashable(value: Any) -> bool:
    try:
        hash(value)
    except TypeError:
        return False
    return True


def _long(triples: list | tuple, missing: Any) -> _Ratings:
    """Long format: one (item, annotator, label) triple per rating, split column-wise in C
    (zip, dict.fromkeys, numpy comparisons) rather than triple by triple."""
    if len(triples) == 0:
        raise InvalidInputError(
            "annotations is empty (no (item, annotator, label) triples); pass at least one "
            "item rated by two annotators")
    try:  # one C-level pass each; the loop below only finds the culprit
        well_formed = (set(map(type, triples)) <= {tuple, list}
                       and set(map(len, triples)) == {3})
    except TypeError:
        well_formed = False
    for i, triple in enumerate(() if well_formed else triples):
        if not isinstance(triple, tuple | list) or len(triple) != 3:
            raise InvalidInputError(
                f"annotations is a list, read as (item, annotator, label) triples, but "
                f"annotations[{i}] is {v.shown(triple)}; pass triples, or an items x "
                f"annotators table as numpy.array(...)")
    tasks, whos, labels = (list(column) for column in zip(*triples, strict=True))
    items, item = _first_index(tasks, "item")
    label_array = np.empty(len(labels), dtype=object)
    label_array[:] = labels
    present = np.flatnonzero(~_absent(label_array, missing))
    if present.size < len(labels):
        whos = [whos[i] for i in present.tolist()]
        item = item[present]
        label_array = label_array[present]
    annotators, annotator = _first_index(whos, "annotator")
    if len(annotators) < 2:
        raise InvalidInputError(
            f"annotations has {len(annotators)} annotator(s) with labels; agreement needs "
            f"at least two annotators")
    values = label_array
    if set(map(type, label_array.tolist())) <= {int}:  # the look-up-table encoding
        try:
            values = label_array.astype(np.int64)
        except OverflowError:
            pass
    key = item * len(annotators) + annotator
    order = np.argsort(key, kind="stable")
    key = key[order]
    dup = np.flatnonzero(key[1:] == key[:-1])
    if dup.size:
        # Positions among the labelled triples, back to positions in the input.
        first, second = sorted(present[order[dup[0]:dup[0] + 2]].tolist())
        raise InvalidInputError(
            f"annotations rates item {v.shown(triples[first][0])} twice by annotator "
            f"{v.shown(triples[first][1])} (triples {first} and {second}); keep one label per "
            f"item and annotator (e.g. the latest)")
    return _Ratings(items, annotators, item[order], annotator[order], values[order])


def _read(annotations: Any, missing: Any) -> _Ratings:
    if isinstance(annotations, list | tuple):
        return _long(annotations, missing)
    if (not isinstance(annotations, np.ndarray) and hasattr(annotations, "columns")
            and hasattr(annotations, "to_numpy")):
        annotators = tuple(str(c) for c in annotations.columns)
        return _wide(np.asarray(annotations.to_numpy()), annotators, missing)
    if isinstance(annotations, dict):
        raise InvalidInputError(f"annotations is a dict; {_TABLE_HINT}")
    return _wide(v.as_numpy(annotations, "annotations"), None, missing)


def _categories(observed: list, codes: np.ndarray, categories: Any) -> tuple[list, np.ndarray]:
    """Re-code ``codes`` (into ``observed``) into the caller's ``categories`` order."""
    if categories is None:
        return observed, codes
    if isinstance(categories, str | bytes) or not hasattr(categories, "__iter__"):
        raise InvalidInputError(
            f"categories must be a sequence of labels, got {v.shown(categories)}; e.g. "
            f"categories=['cat', 'dog']")
    given = np.asarray(categories, dtype=object).ravel().tolist() if isinstance(
        categories, np.ndarray) else list(categories)
    position: dict = {}
    for j, label in enumerate(given):
        try:
            if label in position:
                raise InvalidInputError(
                    f"categories lists {v.shown(label)} twice; list each label once")
        except TypeError:
            raise InvalidInputError(
                f"categories holds an unhashable label {v.shown(label)}") from None
        if _is_missing(label, None):
            raise InvalidInputError(
                f"categories holds a missing value ({v.shown(label)}) at position {j}; list "
                f"labels only")
        position[label] = j
    unknown = [label for label in observed if label not in position]
    if unknown:
        shown = ", ".join(v.shown(x) for x in unknown[:5])
        more = f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""
        raise InvalidInputError(
            f"annotations uses labels not in categories: {shown}{more}; add them to "
            f"categories= (or leave categories=None to take the labels found)")
    recode = np.asarray([position[label] for label in observed], dtype=np.int64)
    return given, recode[codes]


def _group(keys: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """(distinct keys in increasing order, their counts, the dense counts of every key or
    None): dense while ``size`` is small, numpy.unique beyond."""
    if size <= max(_DENSE_CELLS, 4 * keys.size):
        dense = np.bincount(keys, minlength=size)
        distinct = np.flatnonzero(dense)
        return distinct, dense[distinct], dense
    return (*np.unique(keys, return_counts=True), None)


def _pairs(r: _Ratings, n_ratings: np.ndarray, codes: np.ndarray):
    """Every pair of ratings of one item: (annotator a, annotator b, code of a, code of b),
    a < b. One vectorised step per offset d between the two ratings of an item (at most the
    largest number of ratings of an item), each over only the ratings with d later ones."""
    starts = np.cumsum(n_ratings) - n_ratings
    position = np.arange(r.item.size, dtype=np.int64) - starts[r.item]
    later = n_ratings[r.item] - position - 1
    active = np.flatnonzero(later >= 1)
    first, second = [], []
    d = 1
    while active.size:
        first.append(active)
        second.append(active + d)
        d += 1
        active = active[later[active] >= d]
    i = np.concatenate(first) if first else np.empty(0, np.int64)
    j = np.concatenate(second) if second else np.empty(0, np.int64)
    return r.annotator[i], r.annotator[j], codes[i], codes[j]


def _majority(t_item: np.ndarray, t_code: np.ndarray, t_count: np.ndarray,
              dense: np.ndarray | None, n_items: int, n_categories: int):
    """(code of the most frequent label per item, the first of the tied ones; whether
    labels tie). From the dense items x categories counts when there are, else from the
    (item, code, count) rows, sorted by item then code. Unrated items: code 0, no tie."""
    if dense is not None:
        counts = dense.reshape(n_items, n_categories)
        code = counts.argmax(axis=1)  # the first maximum: the lowest code
        top = counts[np.arange(n_items), code]
        tie = np.count_nonzero(counts == top[:, None], axis=1) > 1
        return code, tie & (top > 0)
    starts = np.flatnonzero(np.r_[True, t_item[1:] != t_item[:-1]])
    top = np.zeros(n_items, dtype=t_count.dtype)
    top[t_item[starts]] = np.maximum.reduceat(t_count, starts)
    is_top = t_count == top[t_item]
    top_items, top_codes = t_item[is_top], t_code[is_top]
    first = np.ones(top_items.size, dtype=bool)
    first[1:] = top_items[1:] != top_items[:-1]
    code = np.zeros(n_items, dtype=np.int64)
    code[top_items[first]] = top_codes[first]
    return code, np.bincount(top_items, minlength=n_items) > 1


def _pair_counts_by_ratings(r: _Ratings, n_ratings: np.ndarray, codes: np.ndarray,
                            n_categories: int):
    """Per annotator pair a < b that shares an item: (a, b, items shared, items they agree
    on, sum over categories of a's count times b's count on the shared items), from the
    list of rating pairs (any number of annotators)."""
    n_ann = len(r.annotators)
    a, b, ca, cb = _pairs(r, n_ratings, codes)
    pair = a * n_ann + b
    if n_ann * n_ann <= _DENSE_CELLS:
        pair_ids = np.arange(n_ann * n_ann)
    else:
        pair_ids, pair = np.unique(pair, return_inverse=True)
    n_pairs = pair_ids.size
    shared = np.bincount(pair, minlength=n_pairs)
    agree = np.bincount(pair[ca == cb], minlength=n_pairs)
    size = n_pairs * n_categories
    key_a, key_b = pair * n_categories + ca, pair * n_categories + cb
    if size <= max(_DENSE_CELLS, 4 * key_a.size):
        chance = (np.bincount(key_a, minlength=size) * np.bincount(key_b, minlength=size)
                  ).reshape(n_pairs, n_categories).sum(axis=1)
    else:
        keys, inverse = np.unique(np.concatenate([key_a, key_b]), return_inverse=True)
        count_a = np.bincount(inverse[:key_a.size], minlength=keys.size)
        count_b = np.bincount(inverse[key_a.size:], minlength=keys.size)
        chance = np.bincount(keys // n_categories, weights=count_a * count_b,
                             minlength=n_pairs)
    row, col = np.divmod(pair_ids, n_ann)
    keep = (row < col) & (shared > 0)  # the dense ids also hold pairs that never occur
    return row[keep], col[keep], shared[keep], agree[keep], chance[keep]


def _pair_counts_by_columns(r: _Ratings, codes: np.ndarray, n_categories: int):
    """As :func:`_pair_counts_by_ratings`, from a dense annotators x items code table (code
    K for missing): one bincount of the (K + 1)^2 confusion matrix per annotator pair, no
    mask or gather; about 3x faster for a few annotators (measured at 10^5 items x 5),
    quadratic in their number."""
    n_ann, side = len(r.annotators), n_categories + 1
    # Filled in the ratings' (item-major) order, then one transpose to a row per annotator.
    table = np.full(len(r.items) * n_ann, n_categories, dtype=np.int64)
    table[r.item * n_ann + r.annotator] = codes
    table = np.ascontiguousarray(table.reshape(len(r.items), n_ann).T)
    scaled = table * side
    out = []
    for a in range(n_ann):
        for b in range(a + 1, n_ann):
            confusion = np.bincount(scaled[a] + table[b], minlength=side * side).reshape(
                side, side)[:n_categories, :n_categories]
            shared = int(confusion.sum())
            if shared:
                chance = int(confusion.sum(axis=1) @ confusion.sum(axis=0))
                out.append((a, b, shared, int(np.trace(confusion)), chance))
    columns = np.array(out, dtype=np.int64).reshape(-1, 5).T
    return tuple(columns)


def _products(table: np.ndarray, n_categories: int, step: int, shared: np.ndarray,
              agree: np.ndarray, chance: np.ndarray) -> None:
    """The sums of :func:`_pair_counts_by_products`, added into its (A, A) arrays."""
    n_ann = table.shape[1]
    n_items = table.shape[0]
    for c in range(n_categories):
        # cross[a, b]: items on which a says c and b rated; chance needs the whole sum
        # before the product of cross with its transpose, so it is kept per category.
        cross = np.zeros((n_ann, n_ann))
        for start in range(0, n_items, step):
            part = table[start:start + step]
            says = (part == c).astype(np.float64)
            cross += says.T @ (part < n_categories).astype(np.float64)
            agree += says.T @ says
        chance += cross * cross.T
        shared += cross


def _pair_counts_by_products(r: _Ratings, codes: np.ndarray, n_categories: int):
    """As :func:`_pair_counts_by_ratings`, from matrix products of per-category indicator
    tables (items x annotators, float64, exact for counts below 2^53), a block of items at
    a time: for many annotators who each rate many items, where the list of rating pairs
    would hold n A^2 / 2 entries (10^8 for 200 items x 1000 annotators: 28 s and
    gigabytes), 2K BLAS products of (A x block) by (block x A) instead (0.1-0.3 s)."""
    n_ann, n_items = len(r.annotators), len(r.items)
    # The dense table (code K: not rated) is at most 16 times the ratings (see the caller).
    table = np.full(n_items * n_ann, n_categories, dtype=np.min_scalar_type(n_categories))
    table[r.item * n_ann + r.annotator] = codes
    table = table.reshape(n_items, n_ann)
    step = max(1, _DENSE_CELLS // n_ann)
    shared = np.zeros((n_ann, n_ann))
    agree = np.zeros((n_ann, n_ann))
    chance = np.zeros((n_ann, n_ann))
    # One BLAS thread: on a busy 2-core machine two made these products 20x slower (7 s
    # against 0.35 s for 10^5 items x 40 annotators), as alcore._faiss measured for its own.
    with _faiss.one_blas_thread():
        _products(table, n_categories, step, shared, agree, chance)
    row, col = np.triu_indices(n_ann, 1)
    keep = shared[row, col] > 0
    row, col = row[keep], col[keep]
    return (row, col, *(np.rint(m[row, col]).astype(np.int64)
                        for m in (shared, agree, chance)))


def _pairwise_kappa(r: _Ratings, n_ratings: np.ndarray, codes: np.ndarray, n_categories: int):
    """(A, A) Cohen's kappa of every annotator pair over the items both rated (NaN where
    they share no item or chance agreement is 1; NaN diagonal), and the (A, A) number of
    items both rated (diagonal: the items each annotator rated)."""
    n_ann = len(r.annotators)
    if (n_ann <= _COLUMN_PAIRS_MAX and (n_categories + 1) ** 2 <= max(len(r.items), 1024)
            and n_ann * len(r.items) <= max(_DENSE_CELLS, 4 * codes.size)):
        row, col, shared, agree, chance = _pair_counts_by_columns(r, codes, n_categories)
    elif (n_categories * len(r.items) * n_ann * n_ann
          <= _PRODUCT_ADVANTAGE * int((n_ratings * (n_ratings - 1) // 2).sum())
          and n_ann * len(r.items) <= max(_DENSE_CELLS, 16 * codes.size)):
        row, col, shared, agree, chance = _pair_counts_by_products(r, codes, n_categories)
    else:
        row, col, shared, agree, chance = _pair_counts_by_ratings(r, n_ratings, codes,
                                                                  n_categories)
    # (p_o - p_e) / (1 - p_e) with p_o = agree / n and p_e = chance / n^2, times n^2.
    shared_f = shared.astype(np.float64)
    denominator = shared_f * shared_f - chance
    defined = denominator > 0
    kappa_pairs = np.full(shared.size, np.nan)
    kappa_pairs[defined] = (shared_f[defined] * agree[defined] - chance[defined]
                            ) / denominator[defined]
    kappa = np.full((n_ann, n_ann), np.nan)
    items = np.zeros((n_ann, n_ann), dtype=np.int64)
    kappa[row, col] = kappa[col, row] = kappa_pairs
    items[row, col] = items[col, row] = shared
    np.fill_diagonal(kappa, np.nan)
    np.fill_diagonal(items, np.bincount(r.annotator, minlength=n_ann))
    return kappa, items


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and value != value:
        return None
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def _frozen(arr: np.ndarray) -> np.ndarray:
    arr.setflags(write=False)
    return arr


@dataclass(frozen=True)
class AgreementReport:
    """What :func:`agreement` measured. Arrays are read-only.

    Attributes
    ----------
    cohen_kappa : float
        Two annotators: Cohen's kappa over the items both rated. More: the mean of the
        defined pairwise kappas (Light's kappa, each pair over the items it shares); NaN
        (with a sentence in ``warnings``) when no pair is defined.
    fleiss_kappa : float
        Fleiss' kappa over the items with at least two ratings, generalised to varying
        numbers of ratings per item (see :func:`agreement`).
    krippendorff_alpha : float
        Krippendorff's alpha, nominal, coincidence-matrix formulation.
    per_item : numpy.ndarray of float64, shape (n_items,)
        Share of agreeing annotator pairs per item, in [0, 1]; NaN where fewer than two
        ratings.
    majority : numpy.ndarray of object, shape (n_items,)
        Most frequent label per item (on a tie, the first of the tied labels in
        ``categories`` order); None for an item nobody rated.
    tie : numpy.ndarray of bool, shape (n_items,)
        Whether two or more labels share the item's highest count.
    n_ratings : numpy.ndarray of int64, shape (n_items,)
        Ratings per item.
    pairwise_kappa : numpy.ndarray of float64, shape (n_annotators, n_annotators)
        Cohen's kappa of each annotator pair over the items both rated, symmetric; NaN on
        the diagonal and for pairs that share no item or whose shared items carry one
        label only.
    pair_items : numpy.ndarray of int64, shape (n_annotators, n_annotators)
        Items both annotators rated; the diagonal holds the items each annotator rated.
    items, annotators, categories : tuple
        Row order of the per-item arrays (positions 0..n-1 for a table, the ids in order of
        first appearance for triples), column order of the pairwise matrices (column
        indices, DataFrame column names, or the ids of the triples), and the labels
        (``categories=`` as given, else the labels found, sorted).
    warnings : tuple of str
        Sentences on what was left out (unpairable items, undefined pairs).
    """

    cohen_kappa: float
    fleiss_kappa: float
    krippendorff_alpha: float
    per_item: np.ndarray = field(repr=False)
    majority: np.ndarray = field(repr=False)
    tie: np.ndarray = field(repr=False)
    n_ratings: np.ndarray = field(repr=False)
    pairwise_kappa: np.ndarray = field(repr=False)
    pair_items: np.ndarray = field(repr=False)
    items: tuple = field(repr=False)
    annotators: tuple = field(repr=False)
    categories: tuple = field(repr=False)
    warnings: tuple[str, ...] = ()

    @property
    def n_items(self) -> int:
        return len(self.items)

    @property
    def n_annotators(self) -> int:
        return len(self.annotators)

    def disagreements(self, threshold: float = 1.0) -> np.ndarray:
        """Items whose per-item agreement is below ``threshold``, for expert review.

        Parameters
        ----------
        threshold : float in (0, 1], default 1.0
            1.0 returns every item on which any two annotators disagree; 0.5 those where
            fewer than half of the annotator pairs agree. Items with fewer than two ratings
            (per-item NaN) are never returned.

        Returns
        -------
        numpy.ndarray of int64
            Positions into ``items`` (and the per-item arrays), increasing.
        """
        t = v.number(threshold, "threshold", low=0.0, high=1.0, low_open=True,
                     hint="pass the per-item agreement below which an item goes to review, "
                          "e.g. 1.0 (any disagreement) or 0.5")
        with np.errstate(invalid="ignore"):
            return np.flatnonzero(self.per_item < t).astype(np.int64)

    def to_dict(self) -> dict:
        """Everything as JSON-ready Python values (NaN becomes None)."""
        def floats(arr: np.ndarray) -> list:
            return [None if x != x else x for x in arr.tolist()]

        return {
            "cohen_kappa": _jsonable(self.cohen_kappa),
            "fleiss_kappa": _jsonable(self.fleiss_kappa),
            "krippendorff_alpha": _jsonable(self.krippendorff_alpha),
            "items": [_jsonable(x) for x in self.items],
            "annotators": [_jsonable(x) for x in self.annotators],
            "categories": [_jsonable(x) for x in self.categories],
            "per_item": floats(self.per_item),
            "majority": [_jsonable(x) for x in self.majority.tolist()],
            "tie": self.tie.tolist(),
            "n_ratings": self.n_ratings.tolist(),
            "pairwise_kappa": [floats(row) for row in self.pairwise_kappa],
            "pair_items": self.pair_items.tolist(),
            "warnings": list(self.warnings),
        }


def agreement(annotations: Any, *, categories: Any = None,
              missing: Any = None) -> AgreementReport:
    """Agreement between annotators on nominal labels, missing ratings allowed.

    Parameters
    ----------
    annotations : table or list of triples
        Either an items x annotators table: a 2-D numpy array (float with NaN for missing,
        integers, strings, or object with None/NaN for missing) or a polars/pandas
        DataFrame (one column per annotator, null for missing); or a *list* (or tuple) of
        ``(item, annotator, label)`` triples in any order, ids any hashable values, a label
        of None meaning missing (the shape of a Label Studio export with several
        annotators per task). A list is always read as triples: pass a table as
        ``numpy.array(rows)``. A long-format DataFrame converts with
        ``list(zip(df["task"], df["annotator"], df["label"]))``.
    categories : sequence, optional
        The possible labels, in the order ``categories`` and ``majority`` ties use. A label
        not listed is an error. Default: the labels found, sorted.
    missing : scalar, optional
        A value marking a missing rating besides NaN/None (e.g. ``-1`` in an integer table,
        ``""`` in a string one).

    Returns
    -------
    AgreementReport

    Notes
    -----
    Labels are nominal (ints, strings; float labels that are whole numbers are reported
    as ints). With ``n_ij`` the ratings of item i in category j and ``n_i`` its ratings:

    * per-item agreement ``P_i = sum_j n_ij (n_ij - 1) / (n_i (n_i - 1))``, the share of
      agreeing annotator pairs, for items with ``n_i >= 2`` (NaN otherwise);
    * Fleiss' kappa ``(mean P_i - P_e) / (1 - P_e)``, ``P_e = sum_j p_j^2``, ``p_j`` the
      share of category j among the ratings of the items with ``n_i >= 2``. With the same
      ``n_i`` for every item this is Fleiss (1971) exactly;
    * Krippendorff's alpha ``1 - (n - 1) D / (n^2 - sum_c n_c^2)`` with ``D = n - sum_i
      sum_j n_ij (n_ij - 1) / (n_i - 1)`` the disagreeing mass of the coincidence matrix,
      ``n_c`` its marginals and ``n`` the ratings of items with ``n_i >= 2`` (the others
      are unpairable and dropped);
    * Cohen's kappa per annotator pair over the items both rated; with more than two
      annotators ``cohen_kappa`` is their mean.

    Raises
    ------
    InvalidInputError
        Wrong dimensions, an empty table, one annotator, no item rated twice, a single
        category among the items rated twice (chance agreement is 1: kappa and alpha are
        undefined), mixed label types, duplicate (item, annotator) triples, labels outside
        ``categories``.
    """
    if isinstance(missing, float) and missing != missing:
        missing = None  # NaN is missing already
    ratings = _read(annotations, missing)
    observed, codes = _encode(ratings.values)
    labels, codes = _categories(observed, codes, categories)
    n_items, n_categories = len(ratings.items), len(labels)
    n_ratings = np.bincount(ratings.item, minlength=n_items)
    pairable = n_ratings >= 2
    if not pairable.any():
        raise InvalidInputError(
            f"annotations has no item with two ratings ({n_items} items, at most one "
            f"rating each); agreement needs items that two or more annotators rated")

    t_key, t_count, dense = _group(ratings.item * n_categories + codes,
                                   n_items * n_categories)
    t_item, t_code = np.divmod(t_key, n_categories)
    agreeing = np.bincount(t_item, weights=t_count * (t_count - 1), minlength=n_items)
    with np.errstate(invalid="ignore", divide="ignore"):
        per_item = np.where(pairable, agreeing / (n_ratings * (n_ratings - 1.0)), np.nan)
    in_pairable = pairable[t_item]
    marginals = np.bincount(t_code[in_pairable], weights=t_count[in_pairable],
                            minlength=n_categories)
    used = np.flatnonzero(marginals)
    if used.size < 2:
        raise InvalidInputError(
            f"annotations uses one category only ({v.shown(labels[int(used[0])])}) on the "
            f"items rated twice or more; Cohen's and Fleiss' kappa and Krippendorff's alpha "
            f"are undefined when chance agreement is 1 (every annotator gives the same "
            f"label); there is nothing to measure until a second label appears")

    total = marginals.sum()
    shares = marginals / total
    chance = float(shares @ shares)
    fleiss = (float(per_item[pairable].mean()) - chance) / (1.0 - chance)
    units = n_ratings[pairable] - 1.0
    disagreeing = total - float((agreeing[pairable] / units).sum())
    alpha = 1.0 - (total - 1.0) * disagreeing / (total * total - float(marginals @ marginals))

    majority_code, tie = _majority(t_item, t_code, t_count, dense, n_items, n_categories)
    majority_code[n_ratings == 0] = -1
    label_array = np.empty(n_categories + 1, dtype=object)
    label_array[:n_categories] = labels
    majority = label_array[majority_code]  # -1 takes the trailing None

    kappa, pair_items = _pairwise_kappa(ratings, n_ratings, codes, n_categories)
    upper = kappa[np.triu_indices(len(ratings.annotators), 1)]
    defined = upper[~np.isnan(upper)]
    notes = []
    unpaired = int(n_items - np.count_nonzero(pairable))
    if unpaired:
        notes.append(
            f"{unpaired} of {n_items} items have fewer than two ratings: their per-item "
            f"agreement is NaN and Fleiss' kappa and Krippendorff's alpha leave them out")
    if defined.size < upper.size:
        notes.append(
            f"{upper.size - defined.size} of {upper.size} annotator pairs share no item or "
            f"only one label on their shared items: their Cohen's kappa is NaN"
            + (" and left out of the mean" if defined.size else
               ", so cohen_kappa is NaN"))
    cohen = float(defined.mean()) if defined.size else float("nan")

    return AgreementReport(
        cohen_kappa=cohen, fleiss_kappa=float(fleiss), krippendorff_alpha=float(alpha),
        per_item=_frozen(per_item), majority=_frozen(majority), tie=_frozen(tie),
        n_ratings=_frozen(n_ratings), pairwise_kappa=_frozen(kappa),
        pair_items=_frozen(pair_items), items=ratings.items, annotators=ratings.annotators,
        categories=tuple(labels), warnings=tuple(notes))


__all__ = ["AgreementReport", "agreement"]

v.guard_signatures(globals())
