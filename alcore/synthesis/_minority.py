"""Query synthesis for under-represented classes: SMOTE and Borderline-SMOTE-1
interpolation toward same-class nearest neighbours."""

from __future__ import annotations

from typing import Any

import numpy as np

from alcore import _faiss
from alcore import _validation as v
from alcore._errors import InvalidInputError
from alcore.synthesis._labels import class_codes
from alcore.synthesis._points import SyntheticPoints
from alcore.synthesis._rows import search_rows

VARIANTS = ("smote", "borderline")


def _shares(n: int, weights: np.ndarray) -> np.ndarray:
    """n split in proportion to ``weights`` (largest remainders; equal remainders to the
    earlier entry); equal weights when they are all 0."""
    w = weights.astype(np.float64)
    if w.sum() <= 0:
        w = np.ones(len(w))
    exact = n * w / w.sum()
    base = np.floor(exact).astype(np.int64)
    rest = n - int(base.sum())
    order = np.lexsort((np.arange(len(w)), -(exact - base)))
    base[order[:rest]] += 1
    return base


def _chosen_classes(classes: Any, values: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Codes of the classes to oversample."""
    if classes is None:
        chosen = np.flatnonzero(counts < counts.max())
        if len(values) == 1:
            raise InvalidInputError(
                f"labels holds one class ({v.shown(values[0])}), so none is "
                f"under-represented; minority oversamples the classes smaller than the "
                f"largest (or those in classes=)")
        if not len(chosen):
            raise InvalidInputError(
                f"every class has {int(counts.max())} items, so none is under-represented; "
                f"pass classes= to oversample chosen classes")
        return chosen
    arr = v.as_numpy(classes, "classes").reshape(-1)
    if not len(arr):
        raise InvalidInputError("classes is empty; pass the classes to oversample, or None")
    codes = []
    for value in arr.tolist():
        hit = np.flatnonzero(values == value) if values.dtype.kind != "O" else np.flatnonzero(
            [value == x for x in values.tolist()])
        if not len(hit):
            listed = ", ".join(v.shown(x) for x in values.tolist()[:10])
            raise InvalidInputError(
                f"classes holds {v.shown(value)}, which is not a class of labels (its "
                f"classes: {listed}{', ...' if len(values) > 10 else ''})")
        codes.append(int(hit[0]))
    if len(set(codes)) != len(codes):
        raise InvalidInputError(f"classes holds a class twice ({arr.tolist()}); pass each once")
    return np.sort(np.array(codes, dtype=np.int64))


def danger(embeddings32: np.ndarray, codes: np.ndarray, members: np.ndarray, cls: int | None,
           m: int) -> np.ndarray:
    """Borderline-SMOTE's "danger" mask over ``members`` (rows of class ``cls``, or of any
    classes with ``cls=None``: each judged against its own class): among a member's m
    nearest other items of the whole set, half or more but not all are of other classes."""
    _, ids = _faiss.nearest_rows(embeddings32, np.ascontiguousarray(embeddings32[members]), m,
                                 self_rows=members)
    own = codes[members][:, None] if cls is None else cls
    others = (codes[ids] != own).sum(axis=1)
    return (others >= m / 2) & (others < m)


def minority(embeddings: Any, labels: Any, n: int, *, k: int = 5, variant: str = "smote",
             classes: Any = None, m: int = 10,
             seed: int | np.random.Generator | None = 0) -> SyntheticPoints:
    """Synthetic points for under-represented classes, by SMOTE interpolation.

    Each point is ``seed + lam (neighbour - seed)`` with ``lam`` uniform in [0, 1), the
    seed drawn uniformly (with replacement) from the class's seeds and the neighbour
    uniformly from the seed's k nearest other members of its class (exact search, equal
    distances to the lower row), as imbalanced-learn's ``SMOTE`` draws them.

    * ``variant="smote"`` (Chawla et al. 2002): every member of the class is a seed.
    * ``variant="borderline"`` (Borderline-SMOTE-1, Han et al. 2005): only the "danger"
      members are seeds: those whose m nearest other items of the whole set are half or
      more, but not all, of other classes (the item itself is not among its m; an exact
      duplicate of it at another row is; equal distances to the lower row). The
      neighbours are still its k nearest same-class members. imbalanced-learn's
      ``BorderlineSMOTE`` finds the same set except where a tie decides: it drops the
      first of the m + 1 neighbours its search returns, taken to be the item itself
      (with an exact duplicate of another class it may be the duplicate), and breaks
      ties at the m-th distance in its search's own order. A class without danger
      members gets no points (its share is reported in ``shortfall``), as
      imbalanced-learn's ``BorderlineSMOTE`` skips it.

    Which classes, how many each: by default every class smaller than the largest, each
    toward the largest class's count; ``classes=`` picks them. The n points are shared in
    proportion to each class's deficit (largest count minus its count; largest
    remainders, ties to the earlier class); equally when every deficit is 0.

    Parameters
    ----------
    embeddings : array-like of shape (N, d)
        float32 or float64 (kept: the points have this dtype), finite. Neighbours are
        searched on float32 rows; float64 embeddings that float32 cannot hold exactly are
        centred on their float64 mean first, so an offset costs no precision.
    labels : array-like of shape (N,)
        The class of every item: integers, strings or finite floats.
    n : int
        Points to generate in all, >= 1.
    k : int
        Same-class neighbours to interpolate toward. Capped at the class's size - 1 for a
        class with k members or fewer (SMOTE's usual case: a rare class of 3 items
        interpolates toward its 2 others), where imbalanced-learn refuses.
    variant : {"smote", "borderline"}
    classes : class or sequence of classes, optional
        The classes to oversample (values of ``labels``).
    m : int
        Borderline only: the neighbours of the whole set that decide danger; m < N.
    seed : None, int or numpy.random.Generator

    Returns
    -------
    SyntheticPoints
        ``points`` (n', d) in the embeddings' dtype, ``source`` int64 (n', 2) the rows
        (seed, neighbour), ``lam`` float64 (n',), ``labels`` (n',) each point's class,
        ``method`` "smote" or "borderline", ``shortfall`` (n' < n only for borderline).
        Points are grouped by class, in the classes' sorted order.

    Raises
    ------
    InvalidInputError
        A class to oversample with fewer than 2 members (nothing to interpolate toward).
    """
    x = v.float_array(embeddings, "embeddings")
    # float64 centred before rounding: the neighbours (and the danger set) are float64's,
    # imbalanced-learn's, on un-centred data too.
    x32 = search_rows(x, "embeddings")
    n_items = x.shape[0]
    n = v.count(n, "n")
    k = v.count(k, "k")
    variant = v.choice(variant, "variant", VARIANTS)
    m = v.count(m, "m")
    gen = v.rng(seed)
    values, codes = class_codes(labels, n_items)
    counts = np.bincount(codes, minlength=len(values))
    chosen = _chosen_classes(classes, values, counts)
    small = chosen[counts[chosen] < 2]
    if len(small):
        c = int(small[0])
        raise InvalidInputError(
            f"class {v.shown(values[c])} has {int(counts[c])} member"
            f"{'' if counts[c] == 1 else 's'}; SMOTE interpolates "
            f"between two members of a class, so each class to oversample needs at least 2 "
            f"(pass classes= without it)")
    if variant == "borderline" and m >= n_items:
        raise InvalidInputError(
            f"m={m} needs at least {m + 1} items (each item's m nearest others decide "
            f"danger), got {n_items}; lower m")
    shares = _shares(n, counts.max() - counts[chosen])
    seeds_out, neighbours_out, lam_out = [], [], []
    skipped = []
    if variant == "borderline":
        # One search for every class's members: per class, each search would also build
        # an index of the whole set (minutes with hundreds of classes).
        judged = np.flatnonzero(np.isin(codes, chosen[shares > 0]))
        in_danger = np.zeros(n_items, dtype=bool)
        in_danger[judged] = danger(x32, codes, judged, None, m)
    for c, share in zip(chosen.tolist(), shares.tolist(), strict=True):
        if share == 0:
            continue
        members = np.flatnonzero(codes == c)
        local = np.arange(len(members))
        if variant == "borderline":
            local = local[in_danger[members]]
            if not len(local):
                skipped.append((c, share))
                continue
        kc = min(k, len(members) - 1)
        base = np.ascontiguousarray(x32[members])
        pick = gen.integers(len(local), size=share)
        column = gen.integers(kc, size=share)
        # Neighbours of the seeds drawn only: a few points from a large class must not
        # cost a search of every member.
        drawn, which = np.unique(local[pick], return_inverse=True)
        _, nbrs = _faiss.nearest_rows(base, np.ascontiguousarray(base[drawn]), kc,
                                      self_rows=drawn)
        seeds_out.append(members[local[pick]])
        neighbours_out.append(members[nbrs[which.reshape(-1), column]])
        lam_out.append(gen.random(share))
    d = x.shape[1]
    seed_rows = np.concatenate(seeds_out) if seeds_out else np.empty(0, dtype=np.int64)
    nb_rows = np.concatenate(neighbours_out) if neighbours_out else np.empty(0, dtype=np.int64)
    lam = np.concatenate(lam_out) if lam_out else np.empty(0)
    start = x[seed_rows].astype(np.float64)
    points = (start + lam[:, None] * (x[nb_rows] - start)).astype(x.dtype).reshape(-1, d)
    shortfall = None
    if skipped:
        missing = ", ".join(f"class {v.shown(values[c])} ({s} points)" for c, s in skipped)
        shortfall = (f"{len(lam)} of {n} points: no danger member (half or more, but not "
                     f"all, of its m={m} nearest items of other classes) in {missing}")
    return SyntheticPoints(
        points=points, source=np.stack([seed_rows, nb_rows], axis=1).astype(np.int64),
        lam=lam, method=variant, labels=values[codes[seed_rows]], shortfall=shortfall)


__all__ = ["minority"]

v.guard_signatures(globals())
