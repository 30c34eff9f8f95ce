"""Review of the issue-8 session's changes (h-rev): each test fails on d11dc32."""

from __future__ import annotations

import json

import numpy as np
import pytest

import alcore
from alcore import InvalidInputError, io, scores
from alcore.batching import BatchSizer
from alcore.stopping import OverallUncertainty
from alcore.stream import StreamGate


# 1. Renormalised scores of rows whose sum overflows (every value finite) are silently
#    wrong. Entropy is a regression: the old ln(sum) - ... was inf there and the Python
#    layer rescored the row; dividing before the logarithm gives a finite 0.
@pytest.mark.parametrize("dtype, big", [(np.float32, 1e38), (np.float64, 0.5e308)])
@pytest.mark.parametrize("name", ["least_confidence", "margin", "entropy"])
def test_renormalised_scores_of_rows_with_an_overflowing_sum(dtype, big, name):
    x = np.array([[3 * big, big]], dtype=dtype)
    want = getattr(scores, name)(np.array([[0.75, 0.25]], dtype=dtype))
    got = getattr(scores, name)(x, normalize=True)
    np.testing.assert_allclose(got, want, rtol=1e-6)


def test_select_top_order_with_an_overflowing_row_sum():
    x = np.array([[3e38, 1e38], [0.9, 0.1], [0.6, 0.4]], dtype=np.float32)
    # least confidence: 0.25, 0.1, 0.4
    np.testing.assert_array_equal(
        alcore.select_top(x, 3, score="least_confidence", normalize=True), [2, 0, 1])


# 2. TypiClust on a large cluster with many duplicate rows (all-zero ReLU features, padded
#    items) became quadratic: every row with a tied k-th distance is redone against every
#    member and every tied pair recomputed (10k rows, 9k of them zero: 1.3 s -> 60 s).
def test_typicality_of_a_large_cluster_of_duplicates_stays_near_linear(monkeypatch):
    from alcore import _distances, diversity

    m, k = 3000, 20
    x = np.zeros((m, 16), dtype=np.float32)
    x[: m // 10] = np.random.default_rng(0).normal(size=(m // 10, 16))
    pairs = []
    real = _distances.exact_sq

    def counting(x, rows, cols):
        pairs.append(len(rows))
        return real(x, rows, cols)

    monkeypatch.setattr(_distances, "exact_sq", counting)
    diversity._typicality(x, np.arange(m), k)
    # Each duplicate row is settled by the 2k + 9 nearest the FAISS search returns and
    # the 2k + 8 the float64 blocks try first. The distinct rows have their k-th
    # neighbour among the 2700 tied duplicates (all at |x|): proving that none of those
    # is nearer still takes each of them once per distinct row (a known limit: only
    # de-duplicating the cluster first would avoid it).
    duplicates, distinct = m - m // 10, m // 10
    assert sum(pairs) <= 2 * duplicates * (2 * k + 9) + distinct * (m + 2 * (2 * k + 9))


# 3. A misspelt *required* keyword is a TypeError, not InvalidInputError (refuse_unknown
#    never runs: Python refuses the call for the missing argument first). So are extra
#    positional arguments. README: "never a TypeError".
@pytest.mark.parametrize("call", [
    lambda: OverallUncertainty(threshhold=0.1),
    lambda: BatchSizer(1000, "fixed", size=10).record(10, acc=0.5),
    lambda: BatchSizer(1000, "fixed", 10),
    lambda: StreamGate("variable_uncertainty", 0.1, "margin"),
    lambda: alcore.stream.Router(StreamGate("variable_uncertainty", 0.1), 0.9),
    lambda: StreamGate("random", Budget=0.1),
])
def test_misspelt_required_or_extra_positional_arguments_are_invalid_input(call):
    with pytest.raises(InvalidInputError):
        call()


# 4. from_json accepts a state theta up to 1.8e308 while a gate's theta is bounded to 1e6;
#    the randomized strategy then drives it to inf and the gate's own to_json is refused.
def test_from_json_state_theta_is_bounded_so_to_json_round_trips():
    gate = StreamGate("randomized_variable_uncertainty", 0.5, delta=100, s=0.5)
    data = json.loads(gate.to_json())
    data["state"]["theta"] = 1e308
    try:
        restored = StreamGate.from_json(json.dumps(data))
    except InvalidInputError:
        return  # refusing such a state is fine
    restored.decide_many(np.tile([[1.0, 0.0]], (2000, 1)))
    StreamGate.from_json(restored.to_json())  # raises: state.theta must be finite, got inf


# 5. A CSV whose first 100 probability values are written as integers (0/1 from a confident
#    model) cannot be read: polars infers i64 and fails on the first 0.5, and the message
#    advises polars' infer_schema_length, which neither top_k_from_file nor the CLI has.
def test_csv_with_integer_probabilities_first(tmp_path):
    path = tmp_path / "pool.csv"
    rows = ["id,p0,p1"] + [f"{i},1,0" for i in range(200)] + ["200,0.5,0.5"]
    path.write_text("\n".join(rows) + "\n")
    rows_, ids, got = io.top_k_from_file(path, 1, chunk_rows=50)
    assert rows_.tolist() == [200] and ids.tolist() == ["200"] and got.tolist() == [1.0]


# 3b. top_k_from_file (changed in this session) has no unknown-keyword check at all.
def test_top_k_from_file_misspelt_keyword_is_invalid_input(tmp_path):
    path = tmp_path / "pool.csv"
    path.write_text("id,p0,p1\na,0.2,0.8\nb,0.5,0.5\n")
    with pytest.raises(InvalidInputError, match="chunk_rows"):
        io.top_k_from_file(path, 1, chunk_row=1)


# 6. number()'s new OverflowError branch formats len(str(abs(value))): past Python's
#    4300-digit limit that str() itself raises a bare ValueError naming no argument.
@pytest.mark.parametrize("call", [
    lambda: StreamGate("random", 0.1, theta=10**5000),
    lambda: StreamGate("random", 10**5000),
    lambda: OverallUncertainty(10**5000),
    lambda: BatchSizer(10**5000),
    lambda: alcore.select_top(np.full((3, 2), 0.5), 10**5000),
])
def test_integers_beyond_the_str_digit_limit_are_invalid_input(call):
    with pytest.raises(InvalidInputError):
        call()


# 7. BatchSizer.record takes more labeled items than the pool holds (pool_size=100,
#    n_labeled=10**30) and carries on.
def test_record_refuses_more_labels_than_the_pool():
    sizer = BatchSizer(100, "fixed", size=10)
    with pytest.raises(InvalidInputError, match="n_labeled"):
        sizer.record(10**30, 0.5)
