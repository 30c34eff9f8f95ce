"""The native boundary: what the private bindings accept, thread-count changes during calls,
the GIL while the gate is busy. .ci/sanitize also runs this file under ASan + UBSan, where a
read past a buffer or of freed memory aborts the run instead of passing by luck."""

from __future__ import annotations

import ctypes
import threading
import time

import numpy as np
import pytest

import alcore
from alcore import _core
from alcore.stream import StreamGate

LEAST_CONFIDENCE = 0  # score codes of _core.score_rows / select_top


@pytest.fixture
def restore_threads():
    before = alcore.get_num_threads()
    yield
    alcore.set_num_threads(before)


def dyadic_probs(n, c, seed):
    """Rows of multiples of 1/64 summing exactly to 1, so 1 - max p is exact in float64 and
    the reference below is bit-identical to any correct kernel; many ties."""
    rng = np.random.default_rng(seed)
    counts = rng.multinomial(64, np.full(c, 1 / c), size=n).astype(np.float64)
    return counts / 64


def top_reference(scores, k, exclude=None):
    """The k highest scores, ties to the lower index, by a stable sort."""
    order = np.lexsort((np.arange(len(scores)), -scores))
    if exclude is not None:
        order = order[~exclude[order].astype(bool)]
    return order[:k]


def hammer_thread_count(stop, pause=0.0):
    i = 0
    while not stop.is_set():
        _core.set_num_threads(i % 7 + 1)  # 1..7: more chunks than cores
        i += 1
        if pause:
            time.sleep(pause)


def test_thread_count_changing_during_calls(restore_threads):
    """select_top/top_k sized their per-chunk buffers with one read of the thread count
    and ran with another: a set_num_threads in between wrote past the buffer."""
    n, c, k = 120_000, 4, 50  # 16384 rows per chunk: up to 7 chunks
    probs = dyadic_probs(n, c, 0)
    lc = 1 - probs.max(axis=1)
    exclude = np.zeros(n, dtype=np.uint8)
    exclude[::3] = 1
    want_select = top_reference(lc, k, exclude)
    raw = np.random.default_rng(1).integers(0, 1000, 7 * 65536).astype(np.float64)
    want_top = top_reference(raw, k)
    stop = threading.Event()
    hammer = threading.Thread(target=hammer_thread_count, args=(stop,))
    hammer.start()
    try:
        for _ in range(60):
            idx, top, _ = _core.select_top(probs, LEAST_CONFIDENCE, False, False, 1e-3, False,
                                           exclude, k, False)
            np.testing.assert_array_equal(idx, want_select)
            np.testing.assert_array_equal(top, lc[want_select])
            np.testing.assert_array_equal(_core.top_k(raw, None, k), want_top)
            np.testing.assert_array_equal(
                _core.score_rows(probs, LEAST_CONFIDENCE, False, False, 1e-3, False), lc)
    finally:
        stop.set()
        hammer.join()


@pytest.mark.parametrize("exclude", [
    [False, True, False, False],  # converted to a one-byte bool array, then freed
    (False, True, False, False),
    b"\x00\x01\x00\x00",
    memoryview(np.array([0, 1, 0, 0], dtype=np.uint8)),
])
def test_exclude_must_be_an_ndarray(exclude):
    """A list (or any non-ndarray) used to be converted to a temporary array whose buffer was
    freed before the kernel read it."""
    probs = dyadic_probs(4, 3, 2)
    with pytest.raises(TypeError, match="exclude must be a numpy array"):
        _core.select_top(probs, LEAST_CONFIDENCE, False, False, 1e-3, False, exclude, 1, False)
    with pytest.raises(TypeError, match="exclude must be a numpy array"):
        _core.top_k(np.arange(4.0), exclude, 1)


def test_exclude_ndarray_is_honoured():
    probs = dyadic_probs(1000, 3, 3)
    lc = 1 - probs.max(axis=1)
    mask = np.zeros(1000, dtype=np.uint8)
    mask[top_reference(lc, 10)] = 1
    idx, _, _ = _core.select_top(probs, LEAST_CONFIDENCE, False, False, 1e-3, False, mask,
                                 10, False)
    np.testing.assert_array_equal(idx, top_reference(lc, 10, mask))
    np.testing.assert_array_equal(_core.top_k(lc, mask.view(bool), 10),
                                  top_reference(lc, 10, mask))


@pytest.mark.parametrize("call, match", [
    (lambda: _core.top_k(np.arange(4.0), np.zeros(3, np.uint8), 1), "one-byte mask of length"),
    (lambda: _core.top_k(np.arange(4.0), np.zeros(4, np.int32), 1), "one-byte mask of length"),
    (lambda: _core.top_k(np.arange(8.0)[::2], None, 1), "C-contiguous"),
    (lambda: _core.top_k(np.arange(4, dtype=np.int64), None, 1), "float32 or float64"),
    (lambda: _core.top_k(np.ones((2, 2)), None, 1), "1-D"),
    (lambda: _core.score_rows(np.ones(3), 0, False, False, 1e-3, False), "2-D"),
    (lambda: _core.score_rows(np.ones((2, 3)), 9, False, False, 1e-3, False), "score code"),
    (lambda: _core.sample_scores(np.ones((2, 3)), 0, False, 1e-3), "3-D"),
    (lambda: _core.kcenter(np.ones((4, 2)), np.zeros(0, np.int64), 1, 0, None, True),
     "float32"),
    (lambda: _core.smallest_k_per_row(np.ones((2, 2)), 1), "float32"),
])
def test_private_bindings_refuse_misuse(call, match):
    with pytest.raises((TypeError, ValueError), match=match):
        call()


@pytest.mark.parametrize("k", [0, 5])
def test_k_out_of_range_is_an_error_not_a_write(k):
    with pytest.raises(ValueError, match=r"k must be in \[1, n\]"):
        _core.top_k(np.arange(4.0), None, k)


def test_gate_set_state_refuses_out_of_range_state():
    gate = StreamGate("quantile", 0.1, window=3)
    native = gate._gate
    with pytest.raises(ValueError, match="history is longer than the window"):
        native.set_state(0.0, 1.0, 4, 0, 0, 3, [0.1, 0.2, 0.3, 0.4])
    with pytest.raises(ValueError, match="non-finite"):
        native.set_state(0.0, 1.0, 4, 0, 0, 3, [0.1, float("nan")])
    with pytest.raises(ValueError, match="counters out of range"):
        native.set_state(0.0, 1.0, 1, 2, 0, 3, [])
    assert native.state() == (0.0, 1.0, 0, 0, 0, -1, [])


def test_quantile_window_rebuilt_from_state_continues_identically():
    """The sorted window is rebuilt from the saved history (oldest first)."""
    rng = np.random.default_rng(4)
    probs = rng.dirichlet(np.ones(3), 5000)
    a = StreamGate("quantile", 0.05, window=300)
    a.decide_many(probs[:2345])
    b = StreamGate.from_json(a.to_json())
    assert b._gate.state()[6] == a._gate.state()[6]
    np.testing.assert_array_equal(a.decide_many(probs[2345:]), b.decide_many(probs[2345:]))


def quantile_reference(utilities, budget, window, w_tol):
    """The balanced incremental quantile filter item by item with numpy.quantile, as
    scikit-activeml's BalancedIncrementalQuantileFilter (an independent oracle of the
    native sorted window)."""
    out, history, queried = [], [], 0
    for seen, u in enumerate(utilities, start=1):
        history = [*history[-(window - 1):], u] if window > 1 else [u]
        theta = np.quantile(history, 1 - budget)
        owed = budget * seen - queried
        spread = max(history) - min(history)
        # Tied utilities leave no balancing term: query only while labels are owed.
        q = (u >= theta - spread * owed / w_tol) if spread > 0 else owed > 0
        queried += q
        out.append(q)
    return np.array(out)


@pytest.mark.parametrize("window", [1, 2, 7, 64])
def test_quantile_window_equals_numpy_quantile(window):
    probs = dyadic_probs(1500, 3, window)  # many ties among utilities
    gate = StreamGate("quantile", 0.2, window=window, w_tol=20)
    want = quantile_reference(1 - probs.max(axis=1), 0.2, window, 20)
    np.testing.assert_array_equal(gate.decide_many(probs), want)


def test_gil_is_released_while_the_gate_is_busy():
    """stats (and decide_one) used to wait for the gate's lock holding the GIL: every Python
    thread froze until a long decide_many ended."""
    rng = np.random.default_rng(5)
    probs = rng.dirichlet(np.ones(4), 1_000_000)
    gate = StreamGate("quantile", 0.001)  # a 50,000-item window: about 1 s per call here
    gaps, progress = [], threading.Event()
    done = threading.Event()

    def counter():
        last = time.perf_counter()
        while not done.is_set():
            now = time.perf_counter()
            gaps.append(now - last)
            last = now
            progress.set()

    def reader():
        for _ in range(20):
            gate.stats  # noqa: B018 - the read is the point
            gate.decide_one(probs[0])

    worker = threading.Thread(target=gate.decide_many, args=(probs,))
    count = threading.Thread(target=counter)
    read = threading.Thread(target=reader)
    count.start()
    progress.wait(5)
    start = time.perf_counter()
    worker.start()
    time.sleep(0.05)  # let decide_many take the gate's lock
    read.start()
    worker.join()
    busy = time.perf_counter() - start
    read.join()
    done.set()
    count.join()
    assert gate.stats.seen == len(probs) + 20
    assert busy > 0.3, "decide_many too short to show a stall"
    assert max(gaps) < busy / 3, (max(gaps), busy)


# Custom utilities (csrc/alcore/custom.cpp) through a ctypes callback: a C function pointer
# with the kernels' signature that needs no Numba, so the sanitizer run covers the custom
# pass's buffers (the extra rows, the per-chunk collectors, the all-scores array) alone.
_ROW_UTILITY = ctypes.CFUNCTYPE(ctypes.c_double, ctypes.POINTER(ctypes.c_double),
                                ctypes.c_int64, ctypes.POINTER(ctypes.c_double))


def _lc_times_extra(row, c, extra):
    top = max(row[j] for j in range(c))
    return (1.0 - top) * (extra[0] if extra else 1.0)


LC_TIMES_EXTRA = _ROW_UTILITY(_lc_times_extra)
LC_ADDRESS = ctypes.cast(LC_TIMES_EXTRA, ctypes.c_void_p).value


def test_custom_pass_with_thread_count_changing(restore_threads):
    n, c, k = 70_000, 4, 50  # 16384 rows per chunk: up to 5 chunks
    probs = dyadic_probs(n, c, 4)
    weight = np.random.default_rng(5).integers(0, 3, size=n).astype(np.float64)
    want_scores = (1 - probs.max(axis=1)) * weight
    exclude = np.zeros(n, dtype=np.uint8)
    exclude[::5] = 1
    want = top_reference(want_scores, k, exclude)
    extra = np.ascontiguousarray(weight[:, None])
    stop = threading.Event()
    # The per-row callbacks take the GIL, which a hammer that never sleeps holds for whole
    # switch intervals (a minute for this test); 50 us pauses still change the count
    # thousands of times during each call.
    hammer = threading.Thread(target=hammer_thread_count, args=(stop, 5e-5))
    hammer.start()
    try:
        for _ in range(4):
            idx, top, every = _core.select_top_custom(probs, LC_ADDRESS, False, False, 1e-3,
                                                      extra, exclude, k, True)
            np.testing.assert_array_equal(idx, want)
            np.testing.assert_array_equal(top, want_scores[want])
            np.testing.assert_array_equal(every, want_scores)
            np.testing.assert_array_equal(
                _core.score_rows_custom(probs, LC_ADDRESS, False, False, 1e-3, extra),
                want_scores)
    finally:
        stop.set()
        hammer.join()


def test_custom_pass_reports_the_lowest_bad_row(restore_threads):
    probs = dyadic_probs(40_000, 4, 6)
    weight = np.ones((40_000, 1))
    weight[30_001, 0] = np.nan  # the utility returns NaN there
    probs[35_000, 0] = -1.0  # a later invalid input row
    for threads in (1, 2, 7):
        alcore.set_num_threads(threads)
        with pytest.raises(_core.InvalidValue) as err:
            _core.select_top_custom(probs, LC_ADDRESS, False, False, 1e-3, weight, None, 3,
                                    False)
        assert err.value.args[0] == 6 and err.value.args[2] == 30_001


@pytest.mark.parametrize("call, match", [
    (lambda: _core.select_top_custom(np.full((4, 2), 0.5), 0, False, False, 1e-3, None, None,
                                     1, False), "address is null"),
    (lambda: _core.select_top_custom(np.full((4, 2), 0.5), LC_ADDRESS, False, False, 1e-3,
                                     np.ones((3, 1)), None, 1, False), r"shape \(n, m\)"),
    (lambda: _core.score_rows_custom(np.full((4, 2), 0.5), LC_ADDRESS, False, False, 1e-3,
                                     np.ones((4, 1), np.float32)), "float64"),
    (lambda: _core.score_rows_custom(np.full((4, 2), 0.5), LC_ADDRESS, False, False, 1e-3,
                                     [[1.0]] * 4), "numpy array"),
    (lambda: _core.select_top_custom(np.full((4, 2), 0.5), LC_ADDRESS, False, False, 1e-3,
                                     None, None, 5, False), r"k must be in \[1, n\]"),
])
def test_custom_bindings_refuse_misuse(call, match):
    with pytest.raises((TypeError, ValueError), match=match):
        call()
