"""The one validation helper every public function uses.

Shapes, dtypes, layout and parameters are checked here, in Python, once. Element values
(finiteness, probabilities in [0, 1], row sums) are checked by the native kernels in the
same pass that scores the rows, so validation costs no extra read of a large matrix; the
kernel reports the first offending element and :func:`invalid_value_error` phrases it.
"""

from __future__ import annotations

import difflib
import functools
import inspect
import operator
from collections.abc import Callable, Collection
from typing import Any, NamedTuple

import numpy as np

from alcore._errors import InvalidInputError

_FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def _describe_dtype(dtype: np.dtype) -> str:
    return f"{dtype} (kind {dtype.kind!r})" if dtype.kind == "V" else str(dtype)


def as_numpy(value: Any, name: str) -> np.ndarray:
    """Convert what users hold (numpy, ``__array__``, DLPack, polars/pandas/pyarrow) without
    copying where the layout allows. A masked array gives its data when nothing is masked;
    masked entries are an error (their hidden values would be read as data)."""
    if isinstance(value, np.ma.MaskedArray):
        if np.ma.getmask(value) is not np.ma.nomask and value.mask.any():
            raise InvalidInputError(
                f"{name} has masked entries ({int(value.mask.sum())} of {value.size}); fill "
                f"them ({name}.filled(value)) or drop those rows ({name}.compressed() for "
                f"one row)"
            )
        return value.data
    if isinstance(value, np.ndarray):
        return value
    if value is None:
        raise InvalidInputError(f"{name} is None; pass an array")
    if not hasattr(value, "__array__") and hasattr(value, "__dlpack__"):
        try:
            return np.from_dlpack(value)
        except (TypeError, RuntimeError, BufferError) as exc:
            raise InvalidInputError(
                f"{name} could not be read through DLPack ({exc}); move it to CPU memory "
                f"or pass a numpy array"
            ) from None
    try:
        return np.asarray(value)
    # RuntimeError: what torch raises for a tensor that requires grad.
    except (TypeError, ValueError, RuntimeError) as exc:
        raise InvalidInputError(
            f"{name} could not be converted to an array ({exc}); pass a numeric numpy array"
        ) from None


def float_array(value: Any, name: str) -> np.ndarray:
    """A float32/float64 C-contiguous, native-byte-order view of ``value``.

    float32 and float64 are kept as given; float16 (and non-native byte order) is cast
    once. A non-contiguous array (a slice, a transpose) is copied once to C order; a
    memory-mapped array that is already contiguous is used in place.
    """
    arr = as_numpy(value, name)
    dtype = arr.dtype
    if dtype.kind != "f":
        if dtype.kind in "iu":
            hint = f"convert with {name}.astype(numpy.float32)"
        elif dtype.kind == "b":
            hint = f"pass probabilities or scores, not a boolean mask ({name}.astype(float))"
        elif dtype.kind == "c":
            hint = f"pass a real array (e.g. numpy.abs({name}) or {name}.real)"
        elif dtype.kind == "O":
            hint = "mixed or ragged input? pass a rectangular numeric array"
        else:
            hint = "pass a float32 or float64 array"
        raise InvalidInputError(
            f"{name} must have a floating dtype (float32 or float64), got "
            f"{_describe_dtype(dtype)}; {hint}"
        )
    if dtype not in _FLOAT_DTYPES or not dtype.isnative:
        target = np.float64 if dtype.itemsize > 4 else np.float32
        arr = arr.astype(target)
    if not arr.flags.c_contiguous:
        arr = np.ascontiguousarray(arr)
    return arr


def probs_matrix(probs: Any, logits: Any) -> tuple[np.ndarray, bool, str]:
    """Validate the (N, C) ``probs=`` or ``logits=`` argument; return (array, is_logits, name)."""
    arr, is_logits, name = _one_of(probs, logits)
    if arr.ndim != 2:
        hint = f" (a single row: {name}[None, :])" if arr.ndim == 1 else ""
        raise InvalidInputError(
            f"{name} must be 2-D with shape (N items, C classes), got shape {arr.shape}{hint}"
        )
    _check_items_classes(arr.shape[0], arr.shape[1], arr.shape, name)
    return arr, is_logits, name


def outputs_matrix(values: Any, logits: Any = False) -> tuple[np.ndarray, bool, str]:
    """The public convention's (N, C) model outputs: one positional array, probabilities
    unless ``logits=True``. Returns (array, is_logits, the argument's name for messages)."""
    is_logits = flag(logits, "logits")
    if values is None:
        raise InvalidInputError("probs is None; pass an (N, C) array of probabilities "
                                "(or logits with logits=True)")
    return probs_matrix(None, values) if is_logits else probs_matrix(values, None)


def outputs_tensor(values: Any, logits: Any = False) -> tuple[np.ndarray, bool, str]:
    """As :func:`outputs_matrix` for (T, N, C) samples (or a sequence of T (N, C) arrays)."""
    is_logits = flag(logits, "logits")
    if values is None:
        raise InvalidInputError("probs is None; pass (T, N, C) samples of probabilities "
                                "(or logits with logits=True)")
    return samples_tensor(None, values) if is_logits else samples_tensor(values, None)


def samples_tensor(probs: Any, logits: Any) -> tuple[np.ndarray, bool, str]:
    """Validate a (T, N, C) sample tensor, or a sequence of T arrays of shape (N, C)."""
    if (probs is None) == (logits is None):
        raise InvalidInputError(_ONE_OF_MESSAGE)
    name = "probs" if logits is None else "logits"
    value = probs if logits is None else logits
    if isinstance(value, list | tuple):
        if not value:
            raise InvalidInputError(f"{name} has no samples (T = 0); pass at least one member")
        members = [float_array(m, f"{name}[{i}]") for i, m in enumerate(value)]
        for i, m in enumerate(members):
            if m.shape != members[0].shape or m.dtype != members[0].dtype:
                raise InvalidInputError(
                    f"{name}[{i}] has shape {m.shape} and dtype {m.dtype} but {name}[0] has "
                    f"shape {members[0].shape} and dtype {members[0].dtype}; every sample must "
                    f"have the same (N items, C classes) and dtype"
                )
        if members[0].ndim != 2:
            raise InvalidInputError(
                f"each sample in {name} must be 2-D (N items, C classes), got shape "
                f"{members[0].shape}"
            )
        arr = np.stack(members)
    else:
        arr = float_array(value, name)
    if arr.ndim != 3:
        raise InvalidInputError(
            f"{name} must be 3-D with shape (T samples, N items, C classes), got shape "
            f"{arr.shape}; stack ensemble members or MC-dropout passes along axis 0"
        )
    if arr.shape[0] == 0:
        raise InvalidInputError(f"{name} has no samples (T = 0, shape {arr.shape})")
    _check_items_classes(arr.shape[1], arr.shape[2], arr.shape, name)
    return arr, logits is not None, name


_ONE_OF_MESSAGE = "pass exactly one of probs= or logits="


def _one_of(probs: Any, logits: Any) -> tuple[np.ndarray, bool, str]:
    if (probs is None) == (logits is None):
        raise InvalidInputError(_ONE_OF_MESSAGE)
    if logits is None:
        return float_array(probs, "probs"), False, "probs"
    return float_array(logits, "logits"), True, "logits"


def _check_items_classes(n: int, c: int, shape: tuple, name: str) -> None:
    if n == 0:
        raise InvalidInputError(f"{name} has no items (shape {shape}); pass at least one row")
    if c < 2:
        raise InvalidInputError(
            f"{name} must have at least 2 classes (columns), got shape {shape}; for a binary "
            f"model with one output column p pass numpy.column_stack([1 - p, p])"
        )


def embeddings_matrix(embeddings: Any, name: str = "embeddings") -> np.ndarray:
    """A finite (N, d) float32 C-contiguous matrix; float64 (or float16) is converted once."""
    arr = float_array(embeddings, name)
    if arr.ndim != 2:
        raise InvalidInputError(
            f"{name} must be 2-D with shape (N items, d dimensions), got shape {arr.shape}"
        )
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise InvalidInputError(f"{name} is empty (shape {arr.shape}); pass at least one item")
    # Finiteness on the values as given: a float64 value beyond float32's range would
    # otherwise become inf in the cast and be reported as an inf the user never passed.
    finite = np.isfinite(arr)
    if not finite.all():
        row, col = np.argwhere(~finite)[0]
        raise InvalidInputError(
            f"{name} must be finite: row {row}, column {col} is {arr[row, col]}; replace "
            f"NaN/inf or drop those items"
        )
    if arr.dtype != np.float32:
        limit = float(np.finfo(np.float32).max)
        if max(float(arr.max()), -float(arr.min())) > limit:
            row, col = np.argwhere(np.abs(arr) > limit)[0]
            raise InvalidInputError(
                f"{name} must fit float32 (|value| <= {limit:.4g}): row {row}, column {col} "
                f"is {arr[row, col]:.6g}; rescale {name} (e.g. divide by its largest "
                f"absolute value)"
            )
        arr = arr.astype(np.float32)
    return arr


def rng(seed: Any) -> np.random.Generator:
    """``seed`` as a Generator: None (fresh entropy), a non-negative integer (Python, numpy
    or a 0-d integer array) or a Generator itself."""
    if isinstance(seed, np.random.Generator):
        return seed
    if seed is None:
        return np.random.default_rng()
    if isinstance(seed, bool | np.bool_):
        raise InvalidInputError(
            f"seed must be an int or a numpy.random.Generator (or None), got {seed!r}")
    try:
        value = operator.index(seed)
    except TypeError:
        raise InvalidInputError(
            f"seed must be an int or a numpy.random.Generator (or None), got "
            f"{type(seed).__name__} {shown(seed)}"
        ) from None
    if value < 0:
        raise InvalidInputError(f"seed must be >= 0, got {value}; pass e.g. seed=0")
    return np.random.default_rng(value)


def tolerance(atol: Any) -> float:
    """The row-sum tolerance ``atol``: a number in [0, 1) (numpy scalars and 0-d arrays
    too)."""
    value = number(atol, "atol", hint="pass a number in [0, 1); the default is 1e-3")
    if not (0.0 <= value < 1.0):
        raise InvalidInputError(f"atol must be in [0, 1), got {atol!r}; the default is 1e-3")
    return value


def flag(value: Any, name: str) -> bool:
    if isinstance(value, np.ndarray) and value.ndim == 0 and value.dtype.kind == "b":
        value = bool(value)
    if not isinstance(value, bool | np.bool_):
        raise InvalidInputError(f"{name} must be True or False, got {shown(value)}")
    return bool(value)


def count(k: Any, name: str = "k") -> int:
    """A positive integer parameter."""
    if isinstance(k, bool | np.bool_):
        raise InvalidInputError(f"{name} must be a positive integer, got {k!r}")
    try:
        k = operator.index(k)
    except TypeError:
        raise InvalidInputError(
            f"{name} must be a positive integer, got {type(k).__name__} {shown(k)}"
        ) from None
    if k < 1:
        raise InvalidInputError(f"{name} must be a positive integer, got {k}")
    return k


def exclude_mask(exclude: Any, n: int, items: str,
                 name: str = "exclude") -> tuple[np.ndarray | None, int]:
    """Turn ``exclude`` (boolean mask of length n, or unique indices in [0, n)) into a
    one-byte mask; return (mask or None, number of items in it). ``name`` is the argument
    named in error messages."""
    if exclude is None:
        return None, 0
    arr = as_numpy(exclude, name)
    if arr.ndim != 1:
        raise InvalidInputError(
            f"{name} must be 1-D (a boolean mask of length {n} or an index array), got "
            f"shape {arr.shape}"
        )
    if arr.dtype.kind == "b":
        if arr.shape[0] != n:
            raise InvalidInputError(
                f"{name} mask has length {arr.shape[0]} but {items} has {n} items; pass a "
                f"boolean mask of length {n} or an index array"
            )
        mask = np.ascontiguousarray(arr).view(np.uint8)
        return mask, int(np.count_nonzero(mask))
    if arr.dtype.kind not in "iu":
        if arr.size == 0 and arr.dtype.kind == "f":  # np.array([]) defaults to float64
            return None, 0
        raise InvalidInputError(
            f"{name} must be a boolean mask or an integer index array, got dtype "
            f"{_describe_dtype(arr.dtype)}"
        )
    if arr.size == 0:
        return None, 0
    low, high = int(arr.min()), int(arr.max())
    if low < 0 or high >= n:
        bad = low if low < 0 else high
        raise InvalidInputError(
            f"{name} holds index {bad}, outside [0, {n}) for {items} with {n} items; "
            f"pass indices in range (negative indices are not wrapped)"
        )
    mask = np.zeros(n, dtype=np.uint8)
    mask[arr] = 1
    excluded = int(np.count_nonzero(mask))
    if excluded != arr.shape[0]:
        counts = np.bincount(arr.astype(np.int64, copy=False), minlength=n)
        dup = int(np.flatnonzero(counts > 1)[0])
        if arr.shape[0] == n and low >= 0 and high <= 1:
            raise InvalidInputError(
                f"{name} looks like a 0/1 mask of integers (it holds index {dup} "
                f"{int(counts[dup])} times); pass {name}.astype(bool) for a mask, or the "
                f"unique indices of the items"
            )
        raise InvalidInputError(
            f"{name} holds index {dup} {int(counts[dup])} times; pass unique indices "
            f"(e.g. numpy.unique({name}))"
        )
    return mask, excluded


def number(value: Any, name: str, *, low: float | None = None, high: float | None = None,
           low_open: bool = False, high_open: bool = False, hint: str = "") -> float:
    """A finite real number from a Python number, a numpy scalar or a 0-d array.

    ``low``/``high`` bound it (inclusive unless ``low_open``/``high_open``). Booleans,
    strings, NaN and inf are refused with an :class:`InvalidInputError` naming ``name``.
    The one parser of numeric parameters: every public function uses it.
    """
    if isinstance(value, bool | np.bool_) or isinstance(value, str | bytes):
        raise InvalidInputError(f"{name} must be a number, got {value!r}{_hint(hint)}")
    if isinstance(value, np.ndarray):
        if value.ndim != 0 or value.dtype.kind not in "iuf":
            raise InvalidInputError(
                f"{name} must be a number (or a 0-d numeric array), got an array of shape "
                f"{value.shape} and dtype {value.dtype}{_hint(hint)}")
        value = value[()]
    try:
        result = float(value)
    except OverflowError:  # a Python integer beyond float64, e.g. 10**400
        raise InvalidInputError(
            f"{name} must be a finite number, got {shown(value)}{_hint(hint)}") from None
    except (TypeError, ValueError):
        raise InvalidInputError(
            f"{name} must be a number, got {type(value).__name__} {shown(value)}{_hint(hint)}"
        ) from None
    if not np.isfinite(result):
        raise InvalidInputError(f"{name} must be finite, got {shown(value)}{_hint(hint)}")
    if low is not None and (result < low or (low_open and result == low)):
        raise InvalidInputError(
            f"{name} must be {'>' if low_open else '>='} {low:g}, got {shown(value)}"
            f"{_hint(hint)}")
    if high is not None and (result > high or (high_open and result == high)):
        raise InvalidInputError(
            f"{name} must be {'<' if high_open else '<='} {high:g}, got {shown(value)}"
            f"{_hint(hint)}")
    return result


def integer(value: Any, name: str, *, low: int | None = 0, high: int | None = None,
            hint: str = "") -> int:
    """An integer from a Python int, a numpy integer or a 0-d integer array (not a bool,
    not a float), bounded by ``low``/``high`` (inclusive)."""
    if isinstance(value, bool | np.bool_):
        raise InvalidInputError(f"{name} must be an integer, got {value!r}{_hint(hint)}")
    try:
        result = operator.index(value)
    except TypeError:
        raise InvalidInputError(
            f"{name} must be an integer, got {type(value).__name__} {shown(value)}{_hint(hint)}"
        ) from None
    if low is not None and result < low:
        raise InvalidInputError(f"{name} must be >= {low}, got {shown(result)}{_hint(hint)}")
    if high is not None and result > high:
        raise InvalidInputError(f"{name} must be <= {high}, got {shown(result)}{_hint(hint)}")
    return result


def choice(value: Any, name: str, allowed: tuple[Any, ...] | list[Any] | dict) -> Any:
    """``value`` if it is one of ``allowed`` (strings, or None where allowed), else an
    :class:`InvalidInputError` listing them."""
    options = tuple(allowed)
    if (value is None or isinstance(value, str)) and value in options:
        return value
    listed = ", ".join(repr(o) for o in options)
    close = ""
    if isinstance(value, str):
        import difflib

        near = difflib.get_close_matches(value, [o for o in options if isinstance(o, str)], 1)
        close = f" (did you mean {near[0]!r}?)" if near else ""
    raise InvalidInputError(f"{name} must be one of {listed}, got {value!r}{close}")


def shown(value: Any) -> str:
    """repr of a value for a message; numpy scalars as their Python value (numpy 2 spells
    them ``np.float64(2.0)``)."""
    if isinstance(value, np.generic):
        return repr(value.item())
    if isinstance(value, int) and value.bit_length() > 128:
        # str() of a huge int is slow and refused past 4300 digits; its size says enough.
        return f"an integer of {int(value.bit_length() * 0.30103) + 1} digits"
    return repr(value)


def _hint(hint: str) -> str:
    return f"; {hint}" if hint else ""


class ItemMasks(NamedTuple):
    """What :func:`item_masks` returns: one-byte masks (or None when empty)."""

    labeled: np.ndarray | None
    """Covered and never picked."""
    never: np.ndarray | None
    """Never picked: labeled or excluded."""
    n_labeled: int
    n_never: int


def _labeled_from_y(arr: np.ndarray, n: int) -> np.ndarray | None:
    """scikit-activeml's ``y`` (float, NaN = unlabeled) as a boolean mask, or None when
    ``arr`` is not such a vector."""
    if arr.dtype.kind == "f" and arr.ndim == 1 and arr.shape[0] == n and (
            n != 0 or arr.size == 0):
        return ~np.isnan(arr)
    return None


def item_masks(n: int, items: str, *, labeled: Any = None, exclude: Any = None,
               k: int | None = None) -> ItemMasks:
    """Validate ``labeled=`` and ``exclude=`` for a function that picks among n items.

    Each is a boolean mask of length n, unique int indices in [0, n), or None;
    ``labeled`` may also be scikit-activeml's ``y`` (a float vector of length n with NaN
    for unlabeled items). An item in both is allowed (it is labeled). With ``k``, checks
    that k items remain pickable.
    """
    lab_arr = None if labeled is None else as_numpy(labeled, "labeled")
    y_mask = None if lab_arr is None else _labeled_from_y(lab_arr, n)
    if y_mask is not None:
        lab_mask = np.ascontiguousarray(y_mask).view(np.uint8)
        n_lab = int(np.count_nonzero(lab_mask))
        lab_mask = lab_mask if n_lab else None
    else:
        lab_mask, n_lab = exclude_mask(lab_arr, n, items, name="labeled")
    exc_mask, n_exc = exclude_mask(exclude, n, items, name="exclude")
    if exc_mask is None:
        never, n_never = lab_mask, n_lab
    elif lab_mask is None:
        never, n_never = exc_mask, n_exc
    else:
        never = np.maximum(lab_mask, exc_mask)
        n_never = int(np.count_nonzero(never))
    if k is not None and k > n - n_never:
        raise InvalidInputError(
            f"k={shown(k)} exceeds the {n - n_never} items that can be picked ({n} items, "
            f"{n_lab} labeled, {n_exc} excluded); lower k"
        )
    return ItemMasks(lab_mask, never, n_lab, n_never)


# The native Problem codes (csrc/alcore/api.hpp); 6 and 7 concern a utility, not an input
# value, and are worded where utilities are made (alcore._utility, alcore.stream).
_PROBLEMS = {1: "not_finite", 2: "negative", 3: "above_one", 4: "row_sum", 5: "zero_sum"}
PROBLEM_UTILITY = 6    # a custom utility returned NaN/inf (or raised) for a valid row
PROBLEM_TOO_LARGE = 7  # a utility beyond +-1e150


def invalid_value_error(err: Exception, name: str, *, atol: float) -> InvalidInputError:
    """Word a native ``InvalidValue`` (problem, member, row, col, value) as an
    ``InvalidInputError`` for the public argument ``name``."""
    problem_code, member, row, col, value = err.args
    problem = _PROBLEMS[problem_code]
    where = f"{name}[{member}] row {row}" if member >= 0 else f"{name} row {row}"
    if problem == "not_finite":
        message = (
            f"{name} must be finite: {where}, column {col} is {value}; replace NaN/inf "
            f"(e.g. numpy.nan_to_num) or drop those rows"
        )
    elif problem == "negative":
        message = (
            f"{name} must lie in [0, 1]: {where}, column {col} is {value:.6g}; pass logits=True "
            f"if these are raw model outputs"
        )
    elif problem == "above_one":
        message = (
            f"{name} must lie in [0, 1]: {where}, column {col} is {value:.6g}; pass logits=True "
            f"if these are raw model outputs, or normalize=True for non-negative weights"
        )
    elif problem == "row_sum":
        # Six digits can round a sum just outside atol to one that reads as inside it
        # (0.999 against atol 0.001 is 1.0000000000000009e-03 away): say how far it is.
        shown = f"{value:.6g}"
        if abs(float(shown) - 1.0) <= atol * (1 + 1e-9):
            shown += f" ({abs(value - 1.0):.17g} from 1, just beyond the tolerance)"
        message = (
            f"{name} rows must sum to 1 ({where} sums to {shown}, atol={atol:g}); pass "
            f"logits=True for raw model outputs, normalize=True to renormalise, or a larger atol="
        )
    else:
        message = (
            f"{name} rows must have a positive sum to be renormalised ({where} sums to 0); "
            f"drop that row or give it non-zero weights"
        )
    return InvalidInputError(message)


__all__ = [
    "PROBLEM_TOO_LARGE",
    "PROBLEM_UTILITY",
    "ItemMasks",
    "as_numpy",
    "choice",
    "count",
    "embeddings_matrix",
    "exclude_mask",
    "flag",
    "float_array",
    "integer",
    "invalid_value_error",
    "item_masks",
    "number",
    "outputs_matrix",
    "outputs_tensor",
    "probs_matrix",
    "rng",
    "samples_tensor",
    "shown",
    "tolerance",
]


def _takes(function: Callable) -> tuple[list[str], str]:
    """The names ``function`` accepts as arguments, and a listing of them for messages
    (``self`` and a ``**`` catch-all left out)."""
    parameters = [p for p in inspect.signature(function).parameters.values()
                  if p.name not in ("self", "cls") and p.kind != p.VAR_KEYWORD]
    valid = [p.name for p in parameters if p.kind != p.VAR_POSITIONAL]
    listed = [f"*{p.name}" if p.kind == p.VAR_POSITIONAL else f"{p.name}=" for p in parameters]
    return valid, ", ".join(listed)


def _did_you_mean(names: list[str], valid: list[str]) -> str:
    for name in names:
        near = difflib.get_close_matches(name, valid, 1)
        if near:
            return f" (did you mean {near[0]}=?)"
    return ""


def refuse_unknown(where: str, unknown: dict[str, Any], function: Callable) -> None:
    """Refuse keyword arguments ``function`` does not take, naming them and listing the ones
    it does (its signature, without self and the ``**`` catch-all that collected them).

    Python's own TypeError for an unknown keyword names neither the fix nor the options; the
    public constructors of the stream, stopping and batching modules catch such keywords in
    ``**unknown`` and call this.
    """
    if not unknown:
        return
    valid, listed = _takes(function)
    names = sorted(unknown)
    raise InvalidInputError(
        f"{where} got an unknown argument {', '.join(f'{n}=' for n in names)}"
        f"{_did_you_mean(names, valid)}; it takes {listed}")


def _signature_guard(function: Callable, where: str) -> Callable:
    """``function``, with Python's TypeError for a call its signature refuses (a missing
    or misspelt argument, one positional too many) turned into an InvalidInputError that
    names the problem and lists the arguments. A TypeError from inside a call that matches
    the signature is not touched. The happy path costs one extra Python call."""
    signature = inspect.signature(function)

    @functools.wraps(function)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except TypeError:
            try:
                signature.bind(*args, **kwargs)
            except TypeError as mismatch:
                valid, listed = _takes(function)
                unknown = [n for n in kwargs if n not in signature.parameters]
                raise InvalidInputError(
                    f"{where}: {mismatch}{_did_you_mean(unknown, valid)}; it takes "
                    f"{listed}") from None
            raise
    return guarded


def guard_signatures(namespace: dict[str, Any], *, hot: Collection[str] = ()) -> None:
    """Wrap every function and class method that module ``namespace`` exports in its
    ``__all__`` with :func:`_signature_guard`, in place, so that no public call fails with
    Python's own TypeError. Called once at the end of each public module. Methods named in
    ``hot`` (per-item calls on a stream, where one more Python frame is measurable) are
    left as they are."""
    for name in namespace["__all__"]:
        obj = namespace[name]
        if getattr(obj, "__module__", None) != namespace["__name__"]:
            continue
        if inspect.isfunction(obj):
            namespace[name] = _signature_guard(obj, f"{name}()")
        elif inspect.isclass(obj):
            for attr, member in list(vars(obj).items()):
                if (attr.startswith("_") and attr != "__init__") or attr in hot:
                    continue
                where = name if attr == "__init__" else f"{name}.{attr}()"
                if inspect.isfunction(member):
                    setattr(obj, attr, _signature_guard(member, where))
                elif isinstance(member, classmethod | staticmethod):
                    setattr(obj, attr, type(member)(_signature_guard(member.__func__, where)))
