"""Thread count shared by every parallel kernel (native core, and later Numba and FAISS)."""

from __future__ import annotations

from collections.abc import Callable

from alcore import _core
from alcore import _validation as v
from alcore._errors import InvalidInputError

# Modules that own another thread pool (Numba, FAISS) register here when they are first
# imported, so one call bounds every pool and nothing oversubscribes the cores.
_listeners: list[Callable[[int], None]] = []


def set_num_threads(n: int) -> None:
    """Bound the number of threads alcore's parallel kernels use.

    Parameters
    ----------
    n : int
        Threads, >= 1 (a Python or numpy integer). The default is the number of cores this
        process may run on. Safe to call while other threads run alcore kernels: each call
        reads the limit once, when it starts.
    """
    n = v.count(n, "n")
    if n > 2**31 - 1:
        raise InvalidInputError(f"n must be at most 2**31 - 1, got {n}; pass e.g. n=2")
    _core.set_num_threads(n)
    for listener in _listeners:
        listener(n)


def get_num_threads() -> int:
    """Return the number of threads alcore's parallel kernels use."""
    return _core.get_num_threads()


def on_num_threads_change(listener: Callable[[int], None]) -> None:
    """Register ``listener(n)``, called now and on every ``set_num_threads(n)``."""
    _listeners.append(listener)
    listener(get_num_threads())
