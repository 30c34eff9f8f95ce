"""Class labels as given by the user, turned into codes 0..C-1 once."""

from __future__ import annotations

from typing import Any

import numpy as np

from alcore import _validation as v
from alcore._errors import InvalidInputError


def class_codes(labels: Any, n: int, items: str = "embeddings") -> tuple[np.ndarray, np.ndarray]:
    """``labels`` (one class per item: integers, strings, or finite floats) as
    (the sorted distinct classes, int64 codes of shape (n,) into them)."""
    arr = v.as_numpy(labels, "labels")
    if arr.ndim != 1:
        raise InvalidInputError(
            f"labels must be 1-D with one class per item (shape ({n},)), got shape {arr.shape}")
    if arr.shape[0] != n:
        raise InvalidInputError(
            f"labels has {arr.shape[0]} entries but {items} has {n} items; pass one label "
            f"per row")
    if arr.dtype.kind == "f":
        bad = np.flatnonzero(~np.isfinite(arr))
        if len(bad):
            raise InvalidInputError(
                f"labels[{bad[0]}] is {arr[bad[0]]}; every item needs a class (drop the "
                f"unlabeled rows, or pass integer or string classes)")
    elif arr.dtype.kind == "O":
        # NaN (unequal to itself) and None: a missing class, as in a pandas column.
        bad = np.flatnonzero((arr != arr) | np.equal(arr, None))
        if len(bad):
            raise InvalidInputError(
                f"labels[{bad[0]}] is {arr[bad[0]]}; every item needs a class (drop the "
                f"unlabeled rows, or pass integer or string classes)")
    elif arr.dtype.kind not in "biuUS":
        raise InvalidInputError(
            f"labels must hold integer, string or finite float classes, got dtype {arr.dtype}")
    try:
        values, codes = np.unique(arr, return_inverse=True)
    except TypeError as exc:  # an object array of mixed, unorderable classes
        raise InvalidInputError(
            f"labels could not be sorted into classes ({exc}); pass classes of one type "
            f"(all integers or all strings)") from None
    return values, codes.reshape(-1).astype(np.int64)
