"""Progress reporting for long runs: a user callback and/or a bar on stderr.

The bar is drawn only when stderr is a terminal: redirected to a log file, a carriage-return
bar would write every intermediate state (kilobytes for a step that takes 0.1 s), so a log
gets one summary line when the step ends instead. On a terminal the bar is redrawn at most
every ``_REDRAW_SECONDS``.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any

from alcore._errors import InvalidInputError

ProgressCallback = Callable[[int, int], Any]

_REDRAW_SECONDS = 0.1
_WIDTH = 30


def _is_terminal(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):  # no isatty, or a closed stream
        return False


def reporter(progress: ProgressCallback | None, verbose: bool,
             label: str) -> ProgressCallback | None:
    """Combine a ``progress(done, total)`` callback and a ``verbose`` stderr report into one
    callback (None when neither is asked for).

    With ``verbose``, a terminal gets a bar redrawn at most every 0.1 s; anything else (a
    file, a pipe) gets one line ``label: total/total in X.Xs`` when ``done`` reaches
    ``total``.
    """
    if progress is not None and not callable(progress):
        raise InvalidInputError(
            f"progress must be a callable progress(done, total), got {type(progress).__name__}"
        )
    if not verbose:
        return progress
    start = time.perf_counter()
    last_drawn = [-float("inf")]

    def report(done: int, total: int) -> None:
        if progress is not None:
            progress(done, total)
        stream = sys.stderr  # looked up per call: tests and users may swap it
        finished = done >= total
        now = time.perf_counter()
        elapsed = now - start
        if not _is_terminal(stream):
            if finished:
                stream.write(f"{label}: {done}/{total} in {elapsed:.1f}s\n")
                stream.flush()
            return
        if not finished and now - last_drawn[0] < _REDRAW_SECONDS:
            return
        last_drawn[0] = now
        filled = _WIDTH * done // max(total, 1)
        stream.write(f"\r{label} [{'#' * filled}{'.' * (_WIDTH - filled)}] "
                     f"{done}/{total} {elapsed:.1f}s")
        if finished:
            stream.write("\n")
        stream.flush()

    return report
