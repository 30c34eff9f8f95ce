"""Progress bars: drawn on a terminal only; a redirected log gets one line."""

from __future__ import annotations

import io
import sys

import pytest

import alcore
from alcore import _progress


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_log_gets_one_line_not_a_bar(monkeypatch):
    log = io.StringIO()  # what a shell redirection looks like: not a terminal
    monkeypatch.setattr(sys, "stderr", log)
    calls = []
    report = _progress.reporter(lambda d, t: calls.append((d, t)), True, "k-center")
    for done in range(1, 1001):
        report(done, 1000)
    text = log.getvalue()
    assert "\r" not in text and text.count("\n") == 1
    assert text.startswith("k-center: 1000/1000 in ") and len(text) < 60
    assert len(calls) == 1000  # the user's callback still sees every step


def test_a_terminal_gets_a_throttled_bar(monkeypatch):
    screen = Terminal()
    monkeypatch.setattr(sys, "stderr", screen)
    clock = iter(range(10_000))
    # 1000 steps 1 ms apart: at most one redraw per 0.1 s, plus the final one.
    monkeypatch.setattr(_progress.time, "perf_counter", lambda: next(clock) / 1000)
    report = _progress.reporter(None, True, "BADGE")
    for done in range(1, 1001):
        report(done, 1000)
    text = screen.getvalue()
    draws = text.count("\r")
    assert 2 <= draws <= 12, draws
    assert text.endswith("1000/1000 1.0s\n") and "[" + "#" * 30 + "]" in text


def test_quiet_and_bad_callbacks():
    assert _progress.reporter(None, False, "x") is None
    callback = print
    assert _progress.reporter(callback, False, "x") is callback
    with pytest.raises(alcore.InvalidInputError, match=r"progress must be a callable"):
        _progress.reporter(3, True, "x")
