"""k-center greedy: exact against the plain running-minimum greedy and scikit-activeml."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import alcore
from alcore import _core
from alcore.diversity import kcenter


def naive_greedy(x: np.ndarray, k: int, labeled: np.ndarray, first: int | None = None):
    """The definition, in float64: running minimum of squared distances, argmax with ties to
    the lower index, centers never picked again."""
    x = x.astype(np.float64)
    n = len(x)
    mind = np.full(n, np.inf)
    centers = list(labeled)
    for c in centers:
        mind = np.minimum(mind, ((x - x[c]) ** 2).sum(axis=1))
    picks, radii = [], []
    for step in range(k):
        if step == 0 and not centers:
            pick = first
        else:
            candidates = mind.copy()
            candidates[centers] = -1.0
            pick = int(np.argmax(candidates))
        picks.append(pick)
        centers.append(pick)
        mind = np.minimum(mind, ((x - x[pick]) ** 2).sum(axis=1))
        rest = mind.copy()
        rest[centers] = -1.0
        radii.append(np.sqrt(max(rest.max(), 0.0)))
    return np.array(picks), np.array(radii)


@st.composite
def integer_clouds(draw):
    """Small-integer coordinates: exact float32 distances, many exact ties, duplicates."""
    n = draw(st.integers(2, 120))
    d = draw(st.integers(1, 20))
    x = draw(hnp.arrays(np.int8, (n, d), elements=st.integers(-3, 3))).astype(np.float32)
    n_labeled = draw(st.integers(0, min(5, n - 1)))
    labeled = draw(st.permutations(range(n)))[:n_labeled]
    k = draw(st.integers(1, n - n_labeled))
    return x, np.array(labeled, dtype=np.int64), k


@given(integer_clouds(), st.integers(0, 2**31))
def test_matches_naive_greedy_with_ties(case, seed):
    x, labeled, k = case
    result = kcenter(x, k, labeled=labeled if len(labeled) else None, seed=seed)
    first = int(np.random.default_rng(seed).integers(len(x))) if len(labeled) == 0 else None
    picks, _ = naive_greedy(x, k, labeled, first)
    assert result.dtype == np.int64
    np.testing.assert_array_equal(result, picks)


@pytest.mark.parametrize("d", [3, 16, 33, 128])
def test_pruning_changes_nothing(d):
    """Bit-exact against the same native greedy with every distance computed."""
    rng = np.random.default_rng(d)
    centers = rng.standard_normal((20, d)).astype(np.float32) * 4
    x = (centers[rng.integers(20, size=5000)] + rng.standard_normal((5000, d))).astype(
        np.float32)
    labeled = rng.choice(5000, size=30, replace=False).astype(np.int64)
    for init in (labeled, np.empty(0, dtype=np.int64)):
        pruned = _core.kcenter(x, init, 200, 7, None, True)
        plain = _core.kcenter(x, init, 200, 7, None, False)
        np.testing.assert_array_equal(pruned[0], plain[0])
        np.testing.assert_array_equal(pruned[1], plain[1])


def test_matches_naive_greedy_on_continuous_data():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3000, 24)).astype(np.float32)
    labeled = rng.choice(3000, size=10, replace=False)
    result = kcenter(x, 60, labeled=labeled)
    picks, _ = naive_greedy(x, 60, labeled)
    np.testing.assert_array_equal(result, picks)


def test_equals_scikit_activeml_k_greedy_center():
    core_set = pytest.importorskip("skactiveml.pool._core_set")
    rng = np.random.default_rng(2)
    x = rng.standard_normal((800, 10))
    y = np.full(800, np.nan)
    labeled = rng.choice(800, size=15, replace=False)
    y[labeled] = 0
    want, _ = core_set.k_greedy_center(x, y, batch_size=25, random_state=0)
    np.testing.assert_array_equal(kcenter(x, 25, labeled=labeled), want)
    np.testing.assert_array_equal(kcenter(x, 25, labeled=y), want)  # skactiveml's y


def test_cosine_uses_directions():
    x = np.array([[1.0, 0.0], [10.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    # Item 1 points where item 0 does: at cosine distance 0 it is never the farthest.
    result = kcenter(x, 2, labeled=[0], metric="cosine")
    np.testing.assert_array_equal(result, [2, 3])


def test_threads_and_progress():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((20_000, 32)).astype(np.float32)
    calls = []
    saved = alcore.get_num_threads()
    results = []
    try:
        for threads in (1, 2, 3, 7):
            alcore.set_num_threads(threads)
            calls.clear()
            results.append(kcenter(x, 150, labeled=np.arange(5),
                                   progress=lambda d, t: calls.append((d, t))))
    finally:
        alcore.set_num_threads(saved)
    for other in results[1:]:
        np.testing.assert_array_equal(other, results[0])
    assert calls[-1] == (150, 150) and all(t == 150 for _, t in calls)
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)


def test_duplicates_and_exhausting_the_pool():
    x = np.array([[0.0], [0.0], [1.0], [1.0]])
    np.testing.assert_array_equal(kcenter(x, 3, labeled=[0]), [2, 1, 3])


def test_exclude_leaves_items_out_of_the_pool():
    """Excluded items are neither picked nor covered: the result equals k-center on the
    pool without them."""
    rng = np.random.default_rng(4)
    x = rng.standard_normal((300, 5)).astype(np.float32)
    excluded = rng.choice(300, 40, replace=False)
    keep = np.setdiff1d(np.arange(300), excluded)
    labeled = keep[:3]
    got = kcenter(x, 20, labeled=labeled, exclude=excluded)
    picks, _ = naive_greedy(x[keep], 20, np.arange(3))
    np.testing.assert_array_equal(got, keep[picks])
    assert not set(got.tolist()) & set(excluded.tolist())


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"embeddings": np.zeros((0, 3)), "k": 1}, r"embeddings is empty"),
        ({"embeddings": np.zeros(3), "k": 1}, r"embeddings must be 2-D"),
        ({"embeddings": np.array([[0.0, np.nan]]), "k": 1},
         r"embeddings must be finite: row 0, column 1 is nan"),
        ({"embeddings": np.zeros((3, 2), dtype=int), "k": 1},
         r"embeddings must have a floating dtype"),
        ({"embeddings": np.zeros((3, 2)), "k": 0}, r"k must be a positive integer"),
        ({"embeddings": np.zeros((3, 2)), "k": 3, "labeled": [0]},
         r"k=3 exceeds the 2 items that can be picked \(3 items, 1 labeled, 0 excluded\)"),
        ({"embeddings": np.zeros((3, 2)), "k": 1, "labeled": [5]},
         r"labeled holds index 5, outside \[0, 3\)"),
        ({"embeddings": np.zeros((3, 2)), "k": 1, "labeled": np.ones(2, bool)},
         r"labeled mask has length 2 but embeddings has 3 items"),
        ({"embeddings": np.zeros((3, 2)), "k": 1, "metric": "manhattan"},
         r"metric must be one of 'l2', 'cosine', got 'manhattan'"),
        ({"embeddings": np.zeros((3, 2)), "k": 1, "metric": "cosine"},
         r"embeddings row 0 has zero norm"),
        ({"embeddings": np.zeros((3, 2)), "k": 1, "seed": 1.5},
         r"seed must be an int or a numpy.random.Generator"),
        ({"embeddings": np.zeros((3, 2)), "k": 1, "progress": 3},
         r"progress must be a callable"),
    ],
)
def test_bad_input(kwargs, match):
    with pytest.raises(alcore.InvalidInputError, match=match):
        kcenter(**kwargs)


@st.composite
def any_embeddings(draw):
    """Random dtypes, one row or many, strided and Fortran layouts, offsets far from the
    origin, and sometimes a NaN or inf."""
    n = draw(st.integers(1, 40))
    d = draw(st.integers(1, 6))
    base = draw(hnp.arrays(np.int8, (n, d), elements=st.integers(-3, 3))).astype(np.float64)
    offset = draw(st.sampled_from([0.0, 250.0, -2.0**12, 1e30]))
    dtype = draw(st.sampled_from([np.float16, np.float32, np.float64, np.int32]))
    x = base + offset
    if draw(st.booleans()) and n * d > 1:
        x[draw(st.integers(0, n - 1)), draw(st.integers(0, d - 1))] = draw(
            st.sampled_from([np.nan, np.inf, -np.inf]))
    with np.errstate(over="ignore", invalid="ignore"):
        x = x.astype(dtype)
    layout = draw(st.sampled_from(["c", "f", "strided"]))
    if layout == "f":
        x = np.asfortranarray(x)
    elif layout == "strided":
        wide = np.zeros((n, 2 * d), dtype=x.dtype)
        wide[:, 1::2] = x
        x = wide[:, 1::2]
    return x


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@settings(max_examples=80)
@given(any_embeddings(), st.data())
def test_any_input_is_a_correct_result_or_invalid_input(x, data):
    n = len(x)
    labeled = data.draw(st.lists(st.integers(0, n - 1), unique=True, max_size=min(3, n - 1)))
    k = data.draw(st.integers(1, n - len(labeled)))
    try:
        got = kcenter(x, k, labeled=labeled or None, seed=1)
    except alcore.InvalidInputError as err:
        as_float = np.asarray(x, dtype=np.float64)
        assert (x.dtype.kind not in "f" or not np.isfinite(x.astype(np.float32)).all()
                or np.abs(as_float).max() > 1e18), err
        return
    assert x.dtype.kind == "f" and np.isfinite(x.astype(np.float32)).all()
    first = int(np.random.default_rng(1).integers(n)) if not labeled else None
    picks, _ = naive_greedy(x.astype(np.float32), k, np.array(labeled, dtype=np.int64), first)
    np.testing.assert_array_equal(got, picks)


# --- The flat pass with the int8 lower bound and the per-row cluster test (quantized.cpp) ---
# Every shape the bounds must survive: clustered (the cluster test prunes), overlapping,
# isotropic (only the int8 bound prunes), un-centred (the copy is centred first), huge norms,
# tiny ones (float32 squares underflow: the bounds' absolute slack), duplicate rows (exact
# ties at distance 0) and an integer grid (exact ties everywhere).
SHAPES = ("separated", "overlapping", "isotropic", "uncentred", "huge", "tiny", "duplicates",
          "grid")
DIMS = (1, 3, 17, 128, 300)


def make_shape(shape: str, n: int, d: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if shape in ("separated", "overlapping"):
        spread = 3.0 if shape == "separated" else 1.0
        centers = rng.standard_normal((10, d)) * spread
        x = centers[rng.integers(10, size=n)] + rng.standard_normal((n, d))
    elif shape == "isotropic":
        x = rng.standard_normal((n, d))
    elif shape == "uncentred":
        x = rng.standard_normal((n, d)) + 500.0
    elif shape == "huge":
        x = rng.standard_normal((n, d)) * 1e12 + 3e12
    elif shape == "tiny":
        x = rng.standard_normal((n, d)) * 1e-21
    elif shape == "duplicates":
        x = rng.standard_normal((max(1, n // 4), d))[rng.integers(max(1, n // 4), size=n)]
    else:
        x = rng.integers(-2, 3, size=(n, d)).astype(np.float64)
    return x.astype(np.float32)


def reference_greedy_f32(x: np.ndarray, k: int, labeled, first: int | None):
    """The plain running-minimum greedy in float32 numpy, written out: squared distances by
    direct differences, min with each new center, argmax over non-centers with ties to the
    lower index (np.argmax's first maximum)."""
    x = np.asarray(x, dtype=np.float32)
    mind = np.full(len(x), np.inf, dtype=np.float32)
    is_center = np.zeros(len(x), dtype=bool)
    for c in labeled:
        mind = np.minimum(mind, ((x - x[c]) ** 2).sum(axis=1, dtype=np.float32))
        is_center[c] = True
    picks = []
    for step in range(k):
        if step == 0 and len(labeled) == 0:
            pick = first
        else:
            pick = int(np.argmax(np.where(is_center, -np.inf, mind)))
        picks.append(pick)
        is_center[pick] = True
        mind = np.minimum(mind, ((x - x[pick]) ** 2).sum(axis=1, dtype=np.float32))
    return np.array(picks, dtype=np.int64)


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(SHAPES), st.sampled_from(DIMS), st.integers(2, 300), st.integers(0, 6),
       st.integers(0, 2**31))
def test_pass_equals_float32_reference(shape, d, n, n_labeled, seed):
    x = make_shape(shape, n, d, seed)
    rng = np.random.default_rng(seed + 1)
    n_labeled = min(n_labeled, n - 1)
    labeled = rng.choice(n, size=n_labeled, replace=False).astype(np.int64)
    k = int(rng.integers(1, min(n - n_labeled, 40) + 1))
    first = int(rng.integers(n))
    got, radii = _core.kcenter(x, labeled, k, first, None, True)
    plain = _core.kcenter(x, labeled, k, first, None, False)
    # Bit-identical to the unpruned greedy on the same kernel, radii too ...
    np.testing.assert_array_equal(got, plain[0])
    np.testing.assert_array_equal(radii, plain[1])
    # ... and the same picks as the numpy float32 greedy, where its different summation order
    # cannot decide: the integer shapes are exact in both, the others have no near-ties at
    # these sizes. Not on the tiny shape: subnormal sums keep a few bits, so near-ties there
    # are common and either order's pick is right.
    if shape != "tiny":
        np.testing.assert_array_equal(got, reference_greedy_f32(x, k, labeled, first))


@pytest.mark.parametrize("shape", ["separated", "overlapping", "isotropic", "uncentred"])
@pytest.mark.parametrize("d", [17, 128])
def test_pass_equals_plain_greedy_at_scale(shape, d):
    """Many picks on thousands of rows, where both tests skip most of the work."""
    x = make_shape(shape, 8000, d, seed=d)
    labeled = np.random.default_rng(d).choice(8000, size=25, replace=False).astype(np.int64)
    for init in (labeled, np.empty(0, dtype=np.int64)):
        pruned = _core.kcenter(x, init, 300, 11, None, True)
        plain = _core.kcenter(x, init, 300, 11, None, False)
        np.testing.assert_array_equal(pruned[0], plain[0])
        np.testing.assert_array_equal(pruned[1], plain[1])


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("d", [3, 17, 128])
def test_many_labeled_equal_the_plain_assignment(shape, d):
    """Over 256 labeled items are assigned through 128 pilots and per-pilot sorted bounds
    (or, where the data has no structure, the plain blocked pass): the same minima, so the
    same picks and radii."""
    x = make_shape(shape, 6000, d, seed=d + 1)
    labeled = np.random.default_rng(d).choice(6000, size=700, replace=False).astype(np.int64)
    pruned = _core.kcenter(x, labeled, 50, 0, None, True)
    plain = _core.kcenter(x, labeled, 50, 0, None, False)
    np.testing.assert_array_equal(pruned[0], plain[0])
    np.testing.assert_array_equal(pruned[1], plain[1])
    if shape not in ("tiny", "huge"):
        np.testing.assert_array_equal(pruned[0], reference_greedy_f32(x, 50, labeled, None))


def _picks_in_subprocess(code: str, **env_vars: str) -> list:
    import json
    import os
    import subprocess
    import sys

    env = dict(os.environ, **env_vars)
    # Outside the checkout, so the installed package (with its compiled core) is imported.
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                            text=True, timeout=300, cwd=os.sep)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.splitlines()[-1]), result.stderr


_SHAPES_SCRIPT = """
import json, sys
import numpy as np
from alcore import _core
rng = np.random.default_rng(3)
out = {"isa": _core.isa()}
for d in (3, 17, 128):
    centers = rng.standard_normal((10, d)) * 3
    shapes = {
        "separated": centers[rng.integers(10, size=3000)] + rng.standard_normal((3000, d)),
        "isotropic": rng.standard_normal((3000, d)),
        "uncentred": rng.standard_normal((3000, d)) + 500,
        "grid": rng.integers(-2, 3, size=(3000, d)),
    }
    for name, x in shapes.items():
        x = np.ascontiguousarray(x, dtype=np.float32)
        labeled = np.arange(0, 3000, 300, dtype=np.int64)
        picks, radii = _core.kcenter(x, labeled, 150, 0, None, True)
        out[f"{name}-{d}"] = picks.tolist()
print(json.dumps(out))
"""


def test_baseline_isa_gives_the_same_picks():
    native, _ = _picks_in_subprocess(_SHAPES_SCRIPT)
    baseline, _ = _picks_in_subprocess(_SHAPES_SCRIPT, ALCORE_ISA="baseline")
    assert baseline.pop("isa") == "baseline"
    native.pop("isa")
    assert native == baseline


@pytest.mark.parametrize("shape", ["separated", "isotropic"])
def test_thread_count_changes_nothing(shape):
    x = make_shape(shape, 30_000, 128, seed=5)
    saved = alcore.get_num_threads()
    results = []
    try:
        for threads in (1, 2, 3, 7):
            alcore.set_num_threads(threads)
            results.append(_core.kcenter(x, np.arange(3, dtype=np.int64), 60, 0, None, True))
    finally:
        alcore.set_num_threads(saved)
    for picks, radii in results[1:]:
        np.testing.assert_array_equal(picks, results[0][0])
        np.testing.assert_array_equal(radii, results[0][1])


def test_isotropic_data_needs_few_exact_distances():
    """The int8 bound decides almost every row on isotropic data (where the cluster test
    rules out nothing): the exact float32 distance is computed for well under 5 % of the
    row-picks. ALCORE_KCENTER_STATS=1 reports the counts on stderr."""
    code = (
        "import numpy as np\n"
        "from alcore import _core\n"
        "x = np.random.default_rng(0).standard_normal((20000, 128), dtype=np.float32)\n"
        "_core.kcenter(x, np.arange(50, dtype=np.int64), 100, 0, None, True)\n"
        "print('[]')\n"
    )
    _, stderr = _picks_in_subprocess(code, ALCORE_KCENTER_STATS="1")
    words = stderr.split()
    exact = int(words[words.index("exact") - 1])
    assert exact < 0.05 * 20000 * 100, stderr
