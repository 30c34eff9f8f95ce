"""Hostile review of custom utilities (issue 10): cache staleness, corrupted caches, writes
into the row, and other inputs a user will really pass."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import alcore

PROBS = np.array([[0.2, 0.3, 0.5], [0.6, 0.3, 0.1], [0.1, 0.8, 0.1]])

# A class-weighted score whose weights come from the process's configuration, not the
# source: the code is the same in both processes, the weights are not.
WEIGHTED_MODULE = textwrap.dedent("""
    import json, os
    import numpy as np

    WEIGHTS = np.array(json.loads(os.environ["WEIGHTS"]))

    def weighted(p):
        s = 0.0
        for i in range(p.shape[0]):
            s += WEIGHTS[i] * p[i]
        return s
""")

PICK = textwrap.dedent("""
    import sys
    sys.path.insert(0, {here!r})
    import numpy as np
    import alcore, weighted_utility
    probs = np.array({probs!r})
    print(int(alcore.select_top(probs, 1, score=weighted_utility.weighted)[0]))
""")


def _run(code, env):
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, cwd="/", check=True).stdout.strip()


def test_cached_code_is_not_reused_when_a_global_it_reads_differs(tmp_path):
    (tmp_path / "weighted_utility.py").write_text(WEIGHTED_MODULE)
    code = PICK.format(here=str(tmp_path), probs=PROBS.tolist())
    env = {**os.environ, "ALCORE_CACHE_DIR": str(tmp_path / "cache")}
    # Weight on class 0 picks row 1 (p0 = 0.6); weight on class 1 picks row 2 (p1 = 0.8).
    assert _run(code, {**env, "WEIGHTS": "[1.0, 0.0, 0.0]"}) == "1"
    assert _run(code, {**env, "WEIGHTS": "[0.0, 1.0, 0.0]"}) == "2"
    assert _run(code, {**env, "WEIGHTS": "[1.0, 0.0, 0.0]"}) == "1"


def test_a_corrupted_cache_costs_a_compile_never_an_error(tmp_path):
    (tmp_path / "weighted_utility.py").write_text(WEIGHTED_MODULE)
    code = PICK.format(here=str(tmp_path), probs=PROBS.tolist())
    cache = tmp_path / "cache"
    env = {**os.environ, "ALCORE_CACHE_DIR": str(cache), "WEIGHTS": "[0.0, 1.0, 0.0]"}
    assert _run(code, env) == "2"
    numba_files = sorted((cache / "__pycache__").iterdir())
    assert numba_files
    for index in (f for f in numba_files if f.suffix == ".nbi"):
        index.write_text("garbage\n")
    for data in (f for f in numba_files if f.suffix == ".nbc"):
        data.write_bytes(data.read_bytes()[:50])
    assert _run(code, env) == "2"
    assert _run(code, env) == "2"


def writes_into_the_row(p):
    p[0] = 7.0
    return 1.0


def test_a_utility_writing_into_the_row_does_not_change_the_input():
    probs = PROBS.copy()
    with pytest.raises(alcore.InvalidInputError,
                       match=r"^score function 'writes_into_the_row' writes into its row p"):
        alcore.select_top(probs, 1, score=writes_into_the_row)
    assert np.array_equal(probs, PROBS)
    copy_first = alcore.utility(lambda p: float(p.copy().sum()))
    assert alcore.select_top(probs, 1, score=copy_first).tolist() == [0]


def test_cli_refuses_one_parameter_mapped_to_two_columns(tmp_path, capsys):
    pl = pytest.importorskip("polars")
    from clitools import run, write

    rng = np.random.default_rng(3)
    pool = write(pl.DataFrame({"probs": rng.dirichlet(np.ones(3), size=20).tolist(),
                               "usd": rng.random(20), "eur": rng.random(20)}),
                 tmp_path / "pool.parquet")
    (tmp_path / "mine.py").write_text("def per_cost(p, cost):\n"
                                      "    return float(p[0]) * cost\n")
    code, _, err = run(["select", pool, "-k", 3, "--score", f"{tmp_path / 'mine.py'}:per_cost",
                        "--extra", "cost=usd", "--extra", "cost=eur", "--diversity", "none",
                        "--out", tmp_path / "b.csv"], capsys)
    assert code != 0 and "--extra cost= is given twice ('usd' and 'eur')" in err


def other_utility(p):
    return float(p[0])


def test_a_custom_gate_resumes_only_with_its_own_function():
    from alcore.stream import StreamGate

    gate = StreamGate("variable_uncertainty", 0.1, utility=writes_nothing, seed=0)
    gate.decide_one(np.array([0.5, 0.5]))
    saved = gate.to_json()
    for wrong, message in ((other_utility, "utility= is 'other_utility' but this gate was "
                                           "saved with the custom utility 'writes_nothing'"),
                           ("margin", "utility= must be the function of the saved custom "
                                      "utility 'writes_nothing', got 'margin'"),
                           (3, "got 3")):
        with pytest.raises(alcore.InvalidInputError, match=message):
            StreamGate.from_json(saved, utility=wrong)
    assert StreamGate.from_json(saved, utility=writes_nothing).to_json() == saved
    renamed = alcore.utility(other_utility, name="writes_nothing")
    assert StreamGate.from_json(saved, utility=renamed).to_json() == saved


def writes_nothing(p):
    return 1.0 - float(p.max())


SHORT_WEIGHTS = np.array([1.0, 2.0])


def past_the_row(p):
    return float(p[5])


def weights_shorter_than_the_row(p):
    s = 0.0
    for j in range(p.shape[0]):
        s += SHORT_WEIGHTS[j] * p[j]
    return s


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("fn, row", [(past_the_row, 0), (weights_shorter_than_the_row, 0)])
def test_an_index_past_an_array_is_an_error_not_a_silent_read(fn, row, dtype):
    probs = np.array([[0.2, 0.3, 0.5], [0.6, 0.3, 0.1]], dtype=dtype)
    with pytest.raises(alcore.InvalidInputError,
                       match=rf"raised IndexError: .* for row {row} \(probs\[{row}\]\)"):
        alcore.select_top(probs, 1, score=fn)


CONCURRENT = textwrap.dedent("""
    import sys, threading
    sys.path.insert(0, {here!r})
    import numba  # numba's own first import is not what is raced here
    import alcore, gap_utility
    utilities = [alcore.utility(gap_utility.gap) for _ in range(4)]
    barrier, errors = threading.Barrier(4), []
    def work(u):
        barrier.wait()
        try:
            u.compile(["float64"])
        except Exception as err:
            errors.append(repr(err))
    threads = [threading.Thread(target=work, args=(u,)) for u in utilities]
    [t.start() for t in threads]
    [t.join() for t in threads]
    print(errors)
""")


def test_utilities_of_one_function_compile_from_several_threads_at_once(tmp_path):
    (tmp_path / "gap_utility.py").write_text("def gap(p):\n    return 1.0 - p.max()\n")
    env = {**os.environ, "ALCORE_CACHE_DIR": str(tmp_path / "cache")}
    assert _run(CONCURRENT.format(here=str(tmp_path)), env) == "[]"


def test_a_function_already_decorated_with_numba_njit_is_a_utility():
    numba = pytest.importorskip("numba")

    @numba.njit
    def jitted_gap(p):
        return 1.0 - p.max()

    assert alcore.select_top(PROBS, 2, score=jitted_gap).tolist() == [0, 1]
    assert alcore.utility(jitted_gap).name.endswith("jitted_gap")


def test_a_python_int_past_int64_is_a_utility_like_its_float():
    from alcore.stream import StreamGate

    gates = [StreamGate("quantile", 0.3, seed=1) for _ in range(2)]
    for u in (0.1, 0.5, 2**70, -(2**70), 3):
        assert gates[0].decide_utility_one(u) == gates[1].decide_utility_one(float(u))
    assert gates[0].to_json() == gates[1].to_json()
    before = gates[0].to_json()
    with pytest.raises(alcore.InvalidInputError, match=r"^u must lie in \[-1e150, 1e150\]"):
        gates[0].decide_utility_one(10**400)
    assert gates[0].to_json() == before


def below_zero(p):
    return -10.0 - float(p[0])


@pytest.mark.parametrize("density", ["knn", "information"])
def test_density_weighting_refuses_negative_custom_utilities(density):
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(3), size=60)
    emb = rng.normal(size=(60, 4)).astype(np.float32)
    with pytest.raises(alcore.InvalidInputError,
                       match=rf"^density='{density}' multiplies each utility by a density"):
        alcore.select(probs, 5, score=below_zero, embeddings=emb, density=density,
                      diversity=None)
    # Without density the ranking is all that matters: negative utilities are fine.
    picks = alcore.select(probs, 5, score=below_zero, embeddings=emb, diversity=None).indices
    assert picks.tolist() == np.argsort(probs[:, 0], kind="stable")[:5].tolist()


@pytest.mark.parametrize("options, message", [
    ({"cache": "no"}, r"^cache must be True or False, got 'no'"),
    ({"cache": 0}, r"^cache must be True or False, got 0"),
    ({"name": 3}, r"^name must be a string or None, got 3$"),
])
def test_utility_options_are_checked(options, message):
    with pytest.raises(alcore.InvalidInputError, match=message):
        alcore.utility(below_zero, **options)


def test_a_plain_function_is_wrapped_once_not_on_every_call():
    from alcore import _utility

    def fresh(p):
        return 1.0 - float(p.max())

    assert _utility.as_utility(fresh) is _utility.as_utility(fresh)
    assert alcore.select_top(PROBS, 1, score=fresh).tolist() == [0]
    assert _utility.as_utility(fresh)._addresses  # compiled once, by that call
