"""Progress reporting for long runs: a user callback and/or a bar on stderr."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any

from alcore._errors import InvalidInputError

ProgressCallback = Callable[[int, int], Any]


def reporter(progress: ProgressCallback | None, verbose: bool,
             label: str) -> ProgressCallback | None:
    """Combine a ``progress(done, total)`` callback and a ``verbose`` stderr bar into one
    callback (None when neither is asked for)."""
    if progress is not None and not callable(progress):
        raise InvalidInputError(
            f"progress must be a callable progress(done, total), got {type(progress).__name__}"
        )
    if not verbose:
        return progress
    start = time.perf_counter()

    def report(done: int, total: int) -> None:
        if progress is not None:
            progress(done, total)
        width = 30
        filled = width * done // max(total, 1)
        elapsed = time.perf_counter() - start
        sys.stderr.write(f"\r{label} [{'#' * filled}{'.' * (width - filled)}] "
                         f"{done}/{total} {elapsed:.1f}s")
        if done >= total:
            sys.stderr.write("\n")
        sys.stderr.flush()

    return report
