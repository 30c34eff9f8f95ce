"""The public API convention (README, "API convention"), checked mechanically.

1. Signatures: every public function and class of the public modules, through their
   ``__all__`` and ``inspect.signature``: the data, then ``k``, positional; everything
   else keyword-only; picking functions take ``labeled=`` and ``exclude=``; randomised ones
   ``seed=0``; model outputs take ``logits=False``.
2. Names: no public name shadows a module; ``alcore.io`` is there after ``import alcore``.
3. Properties: every picking function, fed random dtypes, shapes (empty, one row),
   strides, NaN/inf, masks and wrong types for ``k`` and ``seed``, either returns a valid
   pick (int64, unique, in range, never a labeled or excluded item, length k) or raises
   ``alcore.InvalidInputError`` — never TypeError, IndexError, a crash or a silent NaN.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import alcore

MODULES = ("alcore", "alcore.scores", "alcore.diversity", "alcore.density", "alcore.stream",
           "alcore.stream_density", "alcore.model_change", "alcore.io", "alcore.stopping",
           "alcore.synthesis", "alcore.monitor", "alcore.workflow")
P = inspect.Parameter
POSITIONAL = (P.POSITIONAL_ONLY, P.POSITIONAL_OR_KEYWORD)

# The positional parameters of every public callable (classes: their constructor). The
# data (model outputs, embeddings, scores, a path), then k; nothing else. A public callable
# missing here fails test_every_public_callable_is_listed: add it, following the rule.
POSITIONAL_PARAMETERS: dict[str, tuple[str, ...]] = {
    "alcore.top_k": ("scores", "k"),
    "alcore.select_top": ("probs", "k"),
    "alcore.select": ("probs", "k"),
    "alcore.set_num_threads": ("n",),
    "alcore.get_num_threads": (),
    "alcore.warmup": (),
    "alcore.utility": ("fn",),
    "alcore.Utility": ("fn",),
    "alcore.BatchSizer": ("pool_size", "policy"),
    **{f"alcore.scores.{name}": ("probs",) for name in (
        "least_confidence", "margin", "ratio", "entropy", "bald", "variation_ratio",
        "vote_entropy", "kl_consensus")},
    "alcore.diversity.kcenter": ("embeddings", "k"),
    "alcore.diversity.badge": ("probs", "embeddings", "k"),
    "alcore.diversity.typiclust": ("embeddings", "k"),
    "alcore.diversity.probcover": ("embeddings", "k"),
    "alcore.diversity.cluster_margin": ("probs", "embeddings", "k"),
    "alcore.diversity.spread": ("scores", "embeddings", "k"),
    "alcore.density.knn_density": ("embeddings", "k"),
    "alcore.density.similarity_density": ("embeddings",),
    "alcore.density.information_density": ("scores", "embeddings"),
    "alcore.stream.StreamGate": ("strategy", "budget"),
    "alcore.stream.StreamGate.decide_one": ("p",),
    "alcore.stream.StreamGate.decide_many": ("probs",),
    "alcore.stream.StreamGate.decide_utility_one": ("u",),
    "alcore.stream.StreamGate.decide_utility_many": ("utilities",),
    "alcore.stream.StreamGate.utility": ("probs",),
    "alcore.stream.StreamGate.from_json": ("text",),
    "alcore.stream.StreamGate.to_json": (),
    "alcore.stream.StreamGate.max_utility": ("classes",),
    "alcore.stream.StreamGate.fixed_threshold": ("classes",),
    "alcore.stream.default_window": ("budget",),
    "alcore.stream.Router": ("gate",),
    "alcore.stream.Router.route_many": ("probs",),
    "alcore.stream.Router.route": ("p",),
    "alcore.stream.Router.set_queue_depth": ("depth",),
    "alcore.stream_density.DensityGate": ("gate",),
    "alcore.stream_density.DensityGate.decide_one": ("p_or_utility", "embedding"),
    "alcore.stream_density.DensityGate.decide_many": ("P", "E"),
    "alcore.stream_density.DensityGate.densities": ("E",),
    "alcore.stream_density.DensityGate.to_json": (),
    "alcore.stream_density.DensityGate.from_json": ("text",),
    "alcore.model_change.expected_gradient_length": ("probs", "features"),
    "alcore.io.read_pool": ("path",),
    "alcore.io.top_k_from_file": ("path", "k"),
    "alcore.io.read_table": ("path",),
    "alcore.io.write_table": ("table", "path"),
    "alcore.io.check_writable": ("path",),
    "alcore.io.Pool": ("ids", "probs", "embeddings", "labeled"),
    "alcore.io.probability_matrix": ("table", "spec"),
    "alcore.io.embedding_matrix": ("table", "spec"),
    "alcore.stopping.cohen_kappa": ("a", "b"),
    "alcore.stopping.StoppingCriterion": (),
    "alcore.stopping.StabilizingPredictions": (),
    "alcore.stopping.OverallUncertainty": ("threshold",),
    "alcore.stopping.MaxLabels": ("max_labels",),
    "alcore.stopping.AnyOf": (),  # *criteria
    "alcore.stopping.AllOf": (),
    # The model is data here: boundary calls it on whole batches.
    "alcore.synthesis.boundary": ("embeddings", "predict_proba", "n"),
    "alcore.synthesis.minority": ("embeddings", "labels", "n"),
    "alcore.synthesis.nearest_real": ("synthetic", "pool_embeddings"),
    "alcore.synthesis.validate": ("synthetic", "pool_embeddings"),
    "alcore.monitor.PoolSketch": ("arrays", "meta"),  # what load() and build() make
    "alcore.monitor.PoolSketch.build": ("pool_embeddings", "pool_predictions"),
    "alcore.monitor.PoolSketch.audit": ("selected_embeddings", "selected_predictions"),
    "alcore.monitor.PoolSketch.save": ("path",),
    "alcore.monitor.PoolSketch.load": ("path",),
    "alcore.monitor.agreement": ("annotations",),
    "alcore.monitor.HoldoutCurve": (),
    "alcore.monitor.HoldoutCurve.record": ("round",),
    "alcore.monitor.HoldoutCurve.to_dict": (),
    "alcore.monitor.HoldoutCurve.from_dict": ("data",),
    "alcore.monitor.HoldoutCurve.plot": ("path",),
    "alcore.monitor.holdout_curve": ("holdout_accuracy",),
    "alcore.workflow.Workflow": ("ledger",),
    "alcore.workflow.Ledger": ("connection", "path"),  # what Ledger.open makes
    "alcore.workflow.PoolSource": ("pool",),
    "alcore.workflow.StreamSource": ("router", "stream"),
    "alcore.workflow.SynthesisSource": ("pool",),
    "alcore.workflow.to_label_studio_tasks": ("records",),
    "alcore.workflow.read_label_studio_export": ("source",),
    "alcore.workflow.serve": ("ledger",),
}
# Functions that pick items: labeled= and exclude= (keyword-only, default None).
PICKING = ("alcore.top_k", "alcore.select_top", "alcore.select", "alcore.diversity.kcenter",
           "alcore.diversity.badge", "alcore.diversity.typiclust",
           "alcore.diversity.probcover", "alcore.diversity.cluster_margin",
           "alcore.diversity.spread", "alcore.io.top_k_from_file")
# Functions with randomness: seed= (keyword-only, default 0).
RANDOMISED = ("alcore.select", "alcore.diversity.kcenter", "alcore.diversity.badge",
              "alcore.diversity.typiclust", "alcore.diversity.probcover",
              "alcore.diversity.cluster_margin", "alcore.density.knn_density",
              "alcore.density.similarity_density", "alcore.density.information_density",
              "alcore.stream.StreamGate", "alcore.synthesis.boundary",
              "alcore.synthesis.minority", "alcore.synthesis.validate",
              "alcore.monitor.PoolSketch.build", "alcore.monitor.PoolSketch.audit",
              "alcore.workflow.Workflow")
# Functions taking model outputs: logits= (keyword-only, default False).
OUTPUTS = ("alcore.select_top", "alcore.select", "alcore.diversity.badge",
           "alcore.diversity.cluster_margin",
           *(f"alcore.scores.{n}" for n in ("least_confidence", "margin", "ratio", "entropy",
                                             "bald", "variation_ratio", "vote_entropy",
                                             "kl_consensus")))


def _is_record(obj: Any) -> bool:
    """Exceptions, NamedTuples, records and constant holders: no calling convention."""
    return inspect.isclass(obj) and (
        issubclass(obj, tuple | BaseException)
        or obj.__name__ in ("Route", "GateStats", "GateUtility", "Pool", "KnnDensity",
                            "Selection", "ItemMasks", "SyntheticPoints", "NearestReal",
                            "ValidationReport", "AuditReport", "AgreementReport",
                            "HoldoutPoint", "LabelStudioExport", "LedgerServer"))


def public_callables() -> dict[str, Any]:
    """Every public function and class (and the stream classes' public methods)."""
    found: dict[str, Any] = {}
    for module_name in MODULES:
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue  # test_public_names_exist reports it
        for name in getattr(module, "__all__", ()):
            obj = getattr(module, name)
            if inspect.ismodule(obj) or not callable(obj) or _is_record(obj):
                continue
            if module_name == "alcore" and getattr(obj, "__module__", "").startswith(
                    ("alcore.scores", "alcore.diversity", "alcore.density", "alcore.stream",
                     "alcore.model_change", "alcore.io", "alcore.stopping")) \
                    and not name[0].isupper():
                continue  # re-exported; checked in its own module
            found[f"{module_name}.{name}"] = obj
            if inspect.isclass(obj) and module_name in ("alcore.stream",
                                                        "alcore.stream_density",
                                                        "alcore.monitor"):
                for attr, member in vars(obj).items():
                    if attr.startswith("_"):
                        continue
                    func = member.__func__ if isinstance(member, classmethod | staticmethod) \
                        else member
                    if inspect.isfunction(func):
                        found[f"{module_name}.{name}.{attr}"] = getattr(obj, attr)
    return found


CALLABLES = public_callables()


def resolve(dotted: str) -> Any:
    """The object named ``alcore.x.y``, by attribute from ``alcore`` (which imports its
    public modules)."""
    parts = dotted.split(".")
    obj = importlib.import_module(parts[0])
    for attr in parts[1:]:
        obj = getattr(obj, attr)
    return obj


def parameters(obj: Any) -> list[inspect.Parameter]:
    if isinstance(obj, str):
        obj = resolve(obj)
    params = list(inspect.signature(obj).parameters.values())
    if params and params[0].name in ("self", "cls"):
        params = params[1:]
    return params


def test_every_public_callable_is_listed():
    unlisted = sorted(set(CALLABLES) - set(POSITIONAL_PARAMETERS))
    assert not unlisted, f"add these to POSITIONAL_PARAMETERS (following the rule): {unlisted}"


@pytest.mark.parametrize("name", sorted(CALLABLES))
def test_data_then_k_positional_everything_else_keyword_only(name):
    params = parameters(CALLABLES[name])
    positional = tuple(p.name for p in params if p.kind in POSITIONAL)
    assert positional == POSITIONAL_PARAMETERS.get(name, positional), (
        f"{name}{inspect.signature(CALLABLES[name])}: positional parameters {positional}, "
        f"the convention wants {POSITIONAL_PARAMETERS.get(name)} and the rest keyword-only")


@pytest.mark.parametrize("name", PICKING)
def test_picking_functions_take_labeled_and_exclude(name):
    params = {p.name: p for p in parameters(name)}
    for arg in ("labeled", "exclude"):
        assert arg in params, f"{name} has no {arg}="
        assert params[arg].kind == P.KEYWORD_ONLY and params[arg].default is None, (
            f"{name}: {params[arg]}")


@pytest.mark.parametrize("name", RANDOMISED)
def test_randomised_functions_take_seed_zero(name):
    params = {p.name: p for p in parameters(name)}
    assert "seed" in params, f"{name} has no seed="
    assert params["seed"].kind == P.KEYWORD_ONLY and params["seed"].default == 0, (
        f"{name}: {params['seed']}")


@pytest.mark.parametrize("name", OUTPUTS)
def test_model_outputs_take_logits_flag(name):
    params = {p.name: p for p in parameters(name)}
    assert "logits" in params, f"{name} has no logits="
    assert params["logits"].kind == P.KEYWORD_ONLY and params["logits"].default is False, (
        f"{name}: {params['logits']}")


def test_entropy_scaling_has_its_own_keyword():
    params = {p.name: p for p in parameters(alcore.scores.entropy)}
    assert params["scaled"].kind == P.KEYWORD_ONLY and params["scaled"].default is False
    p = np.array([[0.5, 0.5, 0.0], [0.2, 0.3, 0.5]])
    plain = alcore.scores.entropy(p)
    # normalize= divides rows by their sum, as for every score; scaled= divides by ln C.
    np.testing.assert_allclose(alcore.scores.entropy(p * 4, normalize=True), plain)
    np.testing.assert_allclose(alcore.scores.entropy(p, scaled=True), plain / np.log(3))


def test_no_public_name_shadows_a_module():
    assert inspect.isfunction(alcore.select)
    # Look at the files: an editable install may still map a deleted module's name.
    package = Path(alcore.__file__).parent
    modules = {p.stem for p in package.glob("*.py")} | {
        p.name for p in package.iterdir() if (p / "__init__.py").exists()}
    assert "select" not in modules and "selection" not in modules
    for module_name in MODULES:
        module = importlib.import_module(module_name)
        if not module.__file__.endswith("__init__.py"):
            continue  # a plain module has no submodules to shadow
        here = Path(module.__file__).parent
        submodules = {p.stem for p in here.glob("*.py")} | {
            p.name for p in here.iterdir() if (p / "__init__.py").exists()}
        for name in getattr(module, "__all__", ()):
            if inspect.ismodule(getattr(module, name)):
                continue
            assert name not in submodules, f"{module_name}.{name} is a public name and a module"


def test_public_names_exist():
    for module_name in MODULES:
        module = importlib.import_module(module_name)
        assert hasattr(module, "__all__"), f"{module_name} has no __all__"
        missing = [n for n in module.__all__ if not hasattr(module, n)]
        assert not missing, (module_name, missing)
    assert "TopSelection" not in alcore.__all__
    assert "io" in alcore.__all__


def test_io_is_there_after_import_alcore_and_polars_stays_lazy():
    code = ("import sys, alcore; f = alcore.io.read_pool; g = alcore.io.top_k_from_file; "
            "print('polars' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=os.sep, check=True).stdout
    assert out.strip() == "False"


# --- property tests -------------------------------------------------------------------------

GOOD_K = (3, np.int64(3), np.int32(3), np.uint8(3), np.array(3), np.array(3, dtype=np.uint16))
BAD_K = (0, -1, 3.0, np.float64(3), np.array(3.0), np.array([3]), "3", None, True,
         np.bool_(True), 10**30, [3], 1j)
GOOD_SEEDS = (0, 7, np.int64(7), None, np.random.default_rng(1), np.array(7))
BAD_SEEDS = (1.5, "7", [7], np.array([7]), True, -1, object())


class Case(NamedTuple):
    """One call of a picking function and what a valid answer must satisfy."""

    fn: Any
    args: tuple
    kwargs: dict
    n: int            # items
    k: Any            # as passed
    forbidden: np.ndarray  # bool (n,): labeled or excluded, never picked
    may_be_short: bool


def _picking_setup(name, n, c, d, rng):
    """Valid arguments of picking function ``name`` for n items (before corruption)."""
    probs = rng.dirichlet(np.ones(c), size=n) if n else np.empty((0, c))
    emb = 3 * rng.standard_normal((n, d))
    if name == "top_k":
        return alcore.top_k, [rng.random(n)], {}
    if name.startswith("select_top"):
        score = name.split(":")[1] if ":" in name else "margin"
        if score == "bald":
            return alcore.select_top, [rng.dirichlet(np.ones(c), size=(3, n)) if n
                                       else np.empty((3, 0, c))], {"score": score}
        return alcore.select_top, [probs], {"score": score}
    if name.startswith("select:"):
        diversity = name.split(":")[1]
        diversity = None if diversity == "none" else diversity
        extra = {"min_distance": 1.0} if diversity == "spread" else (
            {"radius": 2.0} if diversity == "probcover" else {})
        return alcore.select, [probs], {"embeddings": emb, "diversity": diversity, **extra}
    fn = getattr(alcore.diversity, name)
    if name in ("badge", "cluster_margin"):
        return fn, [probs, emb], {}
    if name == "spread":
        return fn, [rng.random(n), emb], {"min_distance": 1.0}
    if name == "probcover":
        return fn, [emb], {"radius": 2.0}
    return fn, [emb], {}


PICKERS = ("top_k", "select_top", "select_top:entropy", "select_top:bald", "select:none",
           "select:kcenter", "select:spread", "select:badge", "kcenter", "badge", "typiclust",
           "probcover", "cluster_margin", "spread")
RANDOM_PICKERS = {"select:none", "select:kcenter", "select:spread", "select:badge", "kcenter",
                  "badge", "typiclust", "probcover", "cluster_margin"}

DTYPES = (np.float16, np.float32, np.float64, np.int64, np.int32, np.bool_, object)


def _corrupt(arr: np.ndarray, draw, how: str) -> Any:
    if how == "dtype":
        dtype = draw(st.sampled_from(DTYPES))
        return arr.astype(dtype)
    if how == "nan" and arr.size:
        out = arr.astype(np.float64).copy()
        flat = draw(st.integers(0, out.size - 1))
        out.reshape(-1)[flat] = draw(st.sampled_from([np.nan, np.inf, -np.inf]))
        return out
    if how == "strided":
        # The same values through a non-contiguous view.
        wide = np.repeat(arr, 2, axis=-1) if arr.ndim else arr
        return wide[..., ::2]
    if how == "fortran":
        return np.asfortranarray(arr)
    if how == "reshape":
        return arr.reshape(-1) if arr.ndim > 1 else arr[:, None]
    if how == "list":
        return arr.tolist()
    return arr


def _mask_argument(draw, n: int, rng, invalid: bool,
                   y_ok: bool) -> tuple[Any, np.ndarray | None]:
    """A labeled=/exclude= value and the items it marks (None if it is invalid).
    scikit-activeml's y (NaN = unlabeled) is valid for labeled= only."""
    valid = ["none", "mask", "indices", "list", *(["y"] if y_ok else [])]
    wrong = ["bad_len", "dupes", "out_of_range", "float", "int01", *([] if y_ok else ["y"])]
    kind = draw(st.sampled_from(wrong if invalid else valid))
    marked = np.zeros(n, dtype=bool)
    if n:
        marked[rng.random(n) < 0.2] = True
    if kind == "none":
        return None, np.zeros(n, dtype=bool)
    if kind == "mask":
        return marked, marked
    if kind == "indices":
        return np.flatnonzero(marked).astype(draw(st.sampled_from([np.int64, np.int32,
                                                                    np.uint16]))), marked
    if kind == "list":
        return np.flatnonzero(marked).tolist(), marked
    if kind == "y":
        y = np.where(marked, rng.integers(0, 3, size=n).astype(float), np.nan)
        return y, (marked if y_ok else None)
    if kind == "bad_len":
        return np.zeros(n + 1, dtype=bool), None
    if kind == "dupes":
        return np.array([0, 0]), None
    if kind == "out_of_range":
        return np.array([n]), None
    if kind == "int01":  # a 0/1 "mask" of ints: repeated indices once n >= 3
        ints = marked.astype(np.int64)
        if len(np.unique(ints)) == len(ints) and (ints < n).all():  # valid indices after all
            as_mask = np.zeros(n, dtype=bool)
            as_mask[ints] = True
            return ints, as_mask
        return ints, None
    return np.full(n + 2, 0.5), None  # floats, but not a y of length n


ASPECTS = ("n", "c", "d", "data", "embeddings", "k", "labeled", "exclude", "seed")


@st.composite
def picking_cases(draw, name):
    """Valid arguments half of the time; else one or two aspects made invalid or odd."""
    seed = draw(st.integers(0, 2**16))
    rng = np.random.default_rng(seed)
    bad = draw(st.sets(st.sampled_from(ASPECTS), max_size=2)) if draw(st.booleans()) else set()

    def pick(aspect, valid, invalid):
        return draw(st.sampled_from(invalid if aspect in bad else valid))

    n = pick("n", [1, 2, 7, 7, 12, 12, 40], [0])
    c = pick("c", [2, 3, 5], [1])
    d = pick("d", [1, 3, 8], [0])
    fn, args, kwargs = _picking_setup(name, n, c, d, rng)
    same = ("none", "strided", "fortran", "list")  # the same values, other layouts
    other = ("dtype", "nan", "reshape")
    for i in range(len(args)):
        args[i] = _corrupt(np.asarray(args[i]), draw, pick("data", same, other))
    if "embeddings" in kwargs:
        kwargs["embeddings"] = _corrupt(kwargs["embeddings"], draw,
                                        pick("embeddings", same, other))
    k = pick("k", [*GOOD_K, 1, 2, 4], [*BAD_K, n + 1])
    labeled, lab_marked = _mask_argument(draw, n, rng, "labeled" in bad, y_ok=True)
    exclude, exc_marked = _mask_argument(draw, n, rng, "exclude" in bad, y_ok=False)
    if labeled is not None or draw(st.booleans()):
        kwargs["labeled"] = labeled
    if exclude is not None or draw(st.booleans()):
        kwargs["exclude"] = exclude
    if name in RANDOM_PICKERS and ("seed" in bad or draw(st.booleans())):
        kwargs["seed"] = pick("seed", GOOD_SEEDS, BAD_SEEDS)
    if lab_marked is None or exc_marked is None:
        forbidden = None
    else:
        forbidden = lab_marked | exc_marked
    short = name in ("spread", "select:spread")
    return Case(fn, tuple(args), kwargs, n, k, forbidden, short)


def _k_value(k: Any) -> int | None:
    """k as the convention accepts it, or None if it must be refused."""
    if isinstance(k, bool | np.bool_):
        return None
    if isinstance(k, np.ndarray) and (k.ndim != 0 or k.dtype.kind not in "iu"):
        return None
    if not isinstance(k, int | np.integer | np.ndarray):
        return None
    value = int(k)
    return value if value >= 1 else None


def check_outcome(case: Case) -> None:
    """Call; the only outcomes: InvalidInputError, or a valid pick."""
    try:
        result = case.fn(*case.args, case.k, **case.kwargs)
    except alcore.InvalidInputError as err:
        assert str(err), "an InvalidInputError without a message"
        return
    except Exception as err:  # the point: nothing else may escape
        raise AssertionError(
            f"{case.fn.__name__} raised {type(err).__name__}: {err}\n  args: "
            f"{[_describe(a) for a in case.args]}\n  kwargs: "
            f"{ {key: _describe(v) for key, v in case.kwargs.items()} }\n  k: {case.k!r}"
        ) from err
    indices = result.indices if isinstance(result, alcore.Selection) else result
    where = (f"{case.fn.__name__}(args={[_describe(a) for a in case.args]}, k={case.k!r}, "
             f"kwargs={ {key: _describe(v) for key, v in case.kwargs.items()} })")
    k = _k_value(case.k)
    assert k is not None, f"{where} accepted k={case.k!r}"
    assert case.forbidden is not None, f"{where} accepted an invalid labeled=/exclude="
    for a in (*case.args, case.kwargs.get("embeddings")):
        if a is None:
            continue
        values = np.asarray(a)
        assert values.dtype.kind == "f", f"{where} accepted dtype {values.dtype}"
        assert np.isfinite(values).all(), f"{where} accepted non-finite input"
    assert isinstance(indices, np.ndarray) and indices.dtype == np.int64, (
        f"{where} returned {type(indices).__name__} {getattr(indices, 'dtype', '')}")
    assert indices.ndim == 1
    pickable = case.n - int(case.forbidden.sum())
    if case.fn is not alcore.diversity.spread:  # spread's k is an upper bound ("up to k")
        assert k <= pickable, f"{where}: accepted k={k} with {pickable} items that can be picked"
    if case.may_be_short:
        # spread: every remaining item may lie within min_distance of a labeled one.
        assert len(indices) <= k, f"{where}: {len(indices)} picks for k={k}"
        if isinstance(result, alcore.Selection) and len(indices) < k:
            assert result.shortfall, f"{where}: {len(indices)} picks, no shortfall reason"
    else:
        assert len(indices) == k, f"{where}: {len(indices)} picks for k={k}"
    assert len(np.unique(indices)) == len(indices), f"{where}: repeated picks {indices}"
    assert ((indices >= 0) & (indices < case.n)).all(), f"{where}: out of range {indices}"
    assert not case.forbidden[indices].any(), f"{where}: picked a labeled/excluded item"
    if isinstance(result, alcore.Selection):
        assert np.isfinite(result.scores).all(), f"{where}: NaN in Selection.scores"
        assert len(result.reasons) == len(indices)


def _describe(value: Any) -> str:
    if isinstance(value, np.ndarray):
        flags = ("C" if value.flags.c_contiguous
                 else "F" if value.flags.f_contiguous else "strided")
        return f"array{value.shape} {value.dtype} {flags}"
    if isinstance(value, list):
        return f"list(len {len(value)})"
    return repr(value)


@pytest.mark.parametrize("name", PICKERS)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_picking_functions_return_a_valid_pick_or_invalid_input(name, data):
    check_outcome(data.draw(picking_cases(name)))


@pytest.mark.parametrize("name", PICKERS)
def test_numpy_integers_and_0d_arrays_are_accepted_for_k(name):
    rng = np.random.default_rng(0)
    fn, args, kwargs = _picking_setup(name, 30, 4, 5, rng)
    want = fn(*args, 3, **kwargs)
    want = want.indices if isinstance(want, alcore.Selection) else want
    for k in GOOD_K:
        got = fn(*args, k, **kwargs)
        got = got.indices if isinstance(got, alcore.Selection) else got
        np.testing.assert_array_equal(got, want, err_msg=f"{name} k={k!r}")
    for k in BAD_K:
        if fn is alcore.diversity.spread and (_k_value(k) or 0) > 0:
            continue  # spread takes "up to k": a k beyond the pool is not an error there
        with pytest.raises(alcore.InvalidInputError, match=r"\bk\b"):
            fn(*args, k, **kwargs)


@pytest.mark.parametrize("name", sorted(RANDOM_PICKERS))
def test_seed_accepts_int_none_generator_and_refuses_the_rest(name):
    rng = np.random.default_rng(0)
    fn, args, kwargs = _picking_setup(name, 30, 4, 5, rng)
    first = fn(*args, 3, **kwargs)
    first = first.indices if isinstance(first, alcore.Selection) else first
    again = fn(*args, 3, seed=0, **kwargs)
    again = again.indices if isinstance(again, alcore.Selection) else again
    np.testing.assert_array_equal(first, again, err_msg="seed=0 is the default")
    for seed in GOOD_SEEDS:
        fn(*args, 3, seed=seed, **kwargs)
    for seed in BAD_SEEDS:
        with pytest.raises(alcore.InvalidInputError, match="seed"):
            fn(*args, 3, seed=seed, **kwargs)


@pytest.mark.parametrize("name", PICKERS)
def test_labeled_accepts_scikit_activeml_y(name):
    rng = np.random.default_rng(0)
    fn, args, kwargs = _picking_setup(name, 30, 4, 5, rng)
    y = np.full(30, np.nan)
    y[[1, 4, 9]] = [0.0, 2.0, 1.0]
    by_y = fn(*args, 5, labeled=y, **kwargs)
    by_mask = fn(*args, 5, labeled=~np.isnan(y), **kwargs)
    by_index = fn(*args, 5, labeled=np.array([1, 4, 9]), **kwargs)
    as_idx = [r.indices if isinstance(r, alcore.Selection) else r
              for r in (by_y, by_mask, by_index)]
    np.testing.assert_array_equal(as_idx[0], as_idx[1])
    np.testing.assert_array_equal(as_idx[0], as_idx[2])
    assert not np.isin(as_idx[0], [1, 4, 9]).any()


@pytest.mark.parametrize("name", PICKERS)
def test_exclude_is_never_picked(name):
    rng = np.random.default_rng(0)
    fn, args, kwargs = _picking_setup(name, 30, 4, 5, rng)
    exclude = np.arange(0, 30, 2)
    got = fn(*args, 10, exclude=exclude, **kwargs)
    got = got.indices if isinstance(got, alcore.Selection) else got
    assert not np.isin(got, exclude).any()
    if fn is alcore.diversity.spread:  # "up to k": it takes at most the 15 left
        assert len(fn(*args, 16, exclude=exclude, **kwargs)) <= 15
        return
    with pytest.raises(alcore.InvalidInputError, match="exclude"):
        fn(*args, 16, exclude=exclude, **kwargs)  # 15 items left


def test_property_check_can_fail():
    # check_outcome must flag a function that returns a wrong answer or a wrong exception.
    def bad_dtype(x, k):
        return np.arange(k, dtype=np.int32)

    def type_error(x, k):
        raise TypeError("boom")

    def repeats(x, k):
        return np.zeros(k, dtype=np.int64)

    none = np.zeros(5, dtype=bool)
    for fn in (bad_dtype, type_error, repeats):
        with pytest.raises(AssertionError):
            check_outcome(Case(fn, (np.ones(5),), {}, 5, 3, none, False))


def _numeric_calls():
    """(label, call(value), a Python value) for numeric options across the public API."""
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(4), size=60)
    emb = rng.standard_normal((60, 3)).astype(np.float32)
    s = rng.random(60)
    d, u = alcore.diversity, alcore.density
    return [
        ("select_top atol", lambda x: alcore.select_top(probs, 5, atol=x), 1e-3),
        ("scores.margin atol", lambda x: alcore.scores.margin(probs, atol=x), 1e-3),
        ("select beta", lambda x: alcore.select(probs, 5, embeddings=emb, density="knn",
                                                beta=x).indices, 0.5),
        ("select candidates", lambda x: alcore.select(probs, 5, embeddings=emb,
                                                      candidates=x).indices, 3),
        ("spread min_distance", lambda x: d.spread(s, emb, 5, min_distance=x), 1.0),
        ("probcover radius", lambda x: d.probcover(emb, 5, radius=x), 1.5),
        ("typiclust n_neighbors", lambda x: d.typiclust(emb, 5, n_neighbors=x), 5),
        ("typiclust max_clusters", lambda x: d.typiclust(emb, 5, max_clusters=x), 8),
        ("cluster_margin candidates_per_pick",
         lambda x: d.cluster_margin(probs, emb, 5, candidates_per_pick=x), 4),
        ("knn_density k", lambda x: u.knn_density(emb, x), 4),
        ("information_density beta", lambda x: u.information_density(s, emb, beta=x), 2.0),
        ("StreamGate budget", lambda x: alcore.stream.StreamGate("fixed", x).decide_many(probs),
         0.2),
        ("Router auto_label_at", lambda x: alcore.stream.Router(
            alcore.stream.StreamGate("fixed", 0.5), auto_label_at=x).route_many(probs), 0.6),
        ("BatchSizer pool_size", lambda x: alcore.BatchSizer(x, "fixed", size=7).next_size(),
         100),
        ("MaxLabels", lambda x: alcore.stopping.MaxLabels(x).update(n_labeled=5), 5),
        ("MaxLabels n_labeled", lambda x: alcore.stopping.MaxLabels(5).update(n_labeled=x), 5),
        ("OverallUncertainty threshold",
         lambda x: alcore.stopping.OverallUncertainty(x).update(scores=s), 0.5),
    ]


NUMERIC_CALLS = _numeric_calls()


@pytest.mark.parametrize("label, call, value", NUMERIC_CALLS,
                         ids=[c[0] for c in NUMERIC_CALLS])
def test_numbers_accept_numpy_scalars_and_0d_arrays(label, call, value):
    want = call(value)
    kinds = ([np.int64(value), np.int32(value), np.array(value)] if isinstance(value, int)
             else [np.float64(value), np.float32(value), np.array(value)])
    for x in kinds:
        got = call(x)
        np.testing.assert_array_equal(np.asarray(got, dtype=object), np.asarray(want, dtype=object),
                                      err_msg=f"{label} with {x!r}")
    accepted = []
    for bad in ("1", [value], True, np.array([value]), float("nan")):
        try:
            call(bad)
        except alcore.InvalidInputError:
            continue
        except Exception as err:  # anything else is a defect too: say which
            accepted.append(f"{bad!r} -> {type(err).__name__}: {err}")
            continue
        accepted.append(f"{bad!r} accepted")
    assert not accepted, f"{label}: {accepted}"


def test_batch_sizer_records_numpy_numbers():
    # BatchSizer.record(labeled.sum(), acc) with numpy values (issue 8, item 7).
    sizer = alcore.BatchSizer(1000, "plateau", size=10)
    labeled = np.zeros(1000, dtype=bool)
    labeled[:10] = True
    sizer.record(labeled.sum(), np.float64(0.5))
    sizer.record(np.array(20), np.float32(0.6))
    assert sizer.next_size() >= 10


def test_labeled_covers_and_exclude_does_not():
    # Points on a line at 0, 5, 9, 10. Item 3 labeled covers item 2 (distance 1), so k-center
    # takes item 1 first; item 3 excluded covers nothing, so item 2 (9 from item 0) comes first.
    x = np.array([[0.0], [5.0], [9.0], [10.0]], dtype=np.float32)
    kc = alcore.diversity.kcenter
    np.testing.assert_array_equal(kc(x, 1, labeled=[0, 3]), [1])
    np.testing.assert_array_equal(kc(x, 1, labeled=[0], exclude=[3]), [2])
    # spread: a labeled item keeps its neighbours out, an excluded one does not.
    scores = np.array([0.9, 0.8, 0.1])
    emb = np.array([[0.0], [0.5], [5.0]], dtype=np.float32)
    sp = alcore.diversity.spread
    np.testing.assert_array_equal(sp(scores, emb, 2, min_distance=1.0, labeled=[0]), [2])
    np.testing.assert_array_equal(sp(scores, emb, 2, min_distance=1.0, exclude=[0]), [1, 2])
    # Queued-but-unlabeled items passed in labeled= are neither picked nor near-duplicated.
    sel = alcore.select(np.array([[0.5, 0.5], [0.55, 0.45], [0.9, 0.1]]), 1, embeddings=emb,
                        labeled=[0], diversity="spread", min_distance=1.0)
    np.testing.assert_array_equal(sel.indices, [2])
