"""One call that composes a selection: uncertainty, density weighting, diversity, and why
each item was chosen. Public as :func:`alcore.select` and :class:`alcore.Selection`."""

from __future__ import annotations

import inspect
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from alcore import _core, _utility
from alcore import _validation as v
from alcore import density as density_module
from alcore import diversity as diversity_module
from alcore import scores as scores_module
from alcore._errors import InvalidInputError

DENSITIES = (None, "knn", "information")
DIVERSITIES = (None, "auto", "kcenter", "badge", "typiclust", "cluster_margin", "probcover",
               "spread")
# The default, from `alcore simulate`: margin + k-center over the 5k best-margin candidates.
# With 10 seeds on digits (LogisticRegression, 40 rounds of 10) its AULC is 0.9151 (95 % CI
# 0.9114..0.9189) against 0.9136 for margin alone: not distinguishable (paired difference
# -0.0015, CI -0.0070..+0.0040), and well above random (0.8839). It is kept because it is
# never worse there and spreads a batch over the embedding space where margin alone can
# spend it on one corner.
_AUTO_DIVERSITY, _AUTO_CANDIDATES = "kcenter", 5
_DEFAULT_ATOL = 1e-3
# Arguments select() itself passes to a diversity method: never diversity_params.
_SET_BY_SELECT = frozenset({"probs", "scores", "embeddings", "k", "labeled", "exclude",
                            "seed", "logits"})
# Methods whose picks are explained by the distance to the nearest covered item.
_DISTANCE_METHODS = ("kcenter", "spread", "probcover", "typiclust")
# Rows of covered items compared with the picks at a time (bounds the float64 block).
_DISTANCE_BLOCK = 4096


@dataclass(frozen=True)
class Selection:
    """What :func:`select` returns: the picks and why each was chosen.

    Attributes
    ----------
    indices : numpy.ndarray of shape (m,), int64
        The chosen items, in pick order (m = k unless ``shortfall`` says otherwise).
    scores : numpy.ndarray of shape (m,), float64
        Each pick's combined score: uncertainty, times density ** beta with a density.
    components : dict of str to numpy.ndarray of shape (m,)
        Per pick: ``"uncertainty"`` (the score named by ``config["score"]``), ``"density"``
        (with a density), ``"rank"`` (int64, 1 = best combined score among the items that
        could be picked, ties to the lower index), and where the method has them
        ``"distance"`` (float64, to the nearest item covered when it was picked: labeled or
        picked before it; inf for a first pick with nothing covered), ``"nearest"`` (int64,
        that item, -1 for none); for ``"typiclust"`` and ``"cluster_margin"``
        ``"cluster"`` (int64, the pick's cluster label: k-means' or the ``clusters=`` one)
        and ``"cluster_size"`` (int64: the cluster's members among the items TypiClust
        clustered, or its share of Cluster-Margin's candidates); for ``"badge"``
        ``"gradient_sq_distance"`` (float64, the pick's k-means++ weight D^2: its squared
        gradient-embedding distance to the nearest earlier pick when it was drawn; inf
        for the first pick) and ``"gradient_sq_norm"`` (float64, |g|^2).
    reasons : list of str
        One sentence per pick, with its own numbers.
    utilities : numpy.ndarray of shape (N,), float64, or None
        With ``return_utilities=True``: every item's combined score (what
        scikit-activeml's ``return_utilities`` gives); NaN for labeled and excluded items.
    shortfall : str or None
        Why fewer than k items were returned (``"spread"`` can run out of items far enough
        apart); None when all k were.
    timings : dict of str to float
        Seconds per stage.
    config : dict
        The arguments that produced it, ``"auto"`` resolved.
    """

    indices: np.ndarray
    scores: np.ndarray
    components: dict[str, np.ndarray]
    reasons: list[str]
    utilities: np.ndarray | None = None
    shortfall: str | None = None
    timings: dict[str, float] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.indices)


def _method_parameters(method: str) -> tuple[dict[str, Any], list[str]]:
    """The options a diversity method takes beyond what select() passes: (name ->
    default, the names without a default)."""
    parameters = inspect.signature(getattr(diversity_module, method)).parameters
    options = {p.name: p.default for p in parameters.values()
               if p.name not in _SET_BY_SELECT
               and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    return options, [name for name, default in options.items()
                     if default is inspect.Parameter.empty]


def _positive_number(name: str):
    return lambda value: v.number(value, name, low=0.0)


def _positive_count(name: str, optional: bool = False):
    return lambda value: None if optional and value is None else v.count(value, name)


# Cheap checks of the diversity options, so that a bad one is refused before any work; the
# method itself checks them again (and the arrays, e.g. clusters=).
_OPTION_CHECKS = {
    "radius": lambda value: v.number(value, "radius", low=0.0, low_open=True),
    "min_distance": _positive_number("min_distance"),
    "metric": lambda value: v.choice(value, "metric", ("l2", "cosine")),
    "n_neighbors": _positive_count("n_neighbors"),
    "candidates_per_pick": _positive_count("candidates_per_pick"),
    "n_clusters": _positive_count("n_clusters", optional=True),
    "max_clusters": _positive_count("max_clusters"),
    "verbose": lambda value: v.flag(value, "verbose"),
}


def _check_diversity_params(method: str | None, params: dict[str, Any]) -> dict[str, Any]:
    import difflib

    own = [name for name in inspect.signature(select).parameters if name != "diversity_params"]
    by_method = {m: _method_parameters(m)[0] for m in DIVERSITIES[2:]}
    if method is None:
        stray = sorted(name for name in params
                       if not any(name in options for options in by_method.values()))
        if stray:  # no method has it: most likely a misspelt argument of select() itself
            every = sorted({name for options in by_method.values() for name in options})
            near = [m for name in stray
                    for m in difflib.get_close_matches(name, [*own, *every], 1)]
            hint = f" (did you mean {near[0]}=?)" if near else ""
            raise InvalidInputError(
                f"select() takes no argument {', '.join(f'{u}=' for u in stray)}{hint}")
        if params:
            names = ", ".join(f"{name}=" for name in sorted(params))
            raise InvalidInputError(
                f"{names} configure{'s' if len(params) == 1 else ''} a diversity method, but "
                f"no diversity stage runs (diversity=None, or 'auto' without embeddings); "
                f"pass diversity= and embeddings=, or drop them")
        return {}
    options, required = _method_parameters(method)
    unknown = sorted(set(params) - set(options))
    if unknown:
        near = [m for name in unknown
                for m in difflib.get_close_matches(name, [*options, *own], 1)]
        elsewhere = [m for name in unknown for m, o in by_method.items() if name in o]
        if near:
            hint = f" (did you mean {near[0]}=?)"
        elif elsewhere:
            hint = f" (an option of diversity={elsewhere[0]!r})"
        else:
            hint = ""
        allowed = ", ".join(f"{name}=" for name in options) or "none"
        raise InvalidInputError(
            f"diversity={method!r} takes no option {', '.join(f'{u}=' for u in unknown)}"
            f"{hint}; its options are {allowed}")
    missing = [name for name in required if name not in params]
    if missing:
        raise InvalidInputError(
            f"diversity={method!r} needs {', '.join(f'{m}=' for m in missing)}; pass it to "
            f"select() (e.g. select(probs, k, embeddings=emb, diversity={method!r}, "
            f"{missing[0]}=...))")
    for name, value in params.items():
        if name in _OPTION_CHECKS:
            _OPTION_CHECKS[name](value)
        elif name == "progress" and value is not None and not callable(value):
            raise InvalidInputError(
                f"progress must be a callable progress(done, total) or None, got "
                f"{type(value).__name__}")
    return params


def _check_cluster_margin(score: str, density: str | None, beta: float,
                          candidates: int | None) -> None:
    """Cluster-Margin ranks the pool by margin and takes its own candidates by definition
    (Citovsky et al. 2021): other settings would play no part, so they are refused."""
    why = ("diversity='cluster_margin' takes the smallest-margin candidates and spreads "
           "them over clusters by definition, so {} would play no part; {}")
    if score != "margin":
        raise InvalidInputError(why.format(
            f"score={score!r}", "drop score= (margin is used), or choose another diversity"))
    if density is not None:
        raise InvalidInputError(why.format(
            f"density={density!r}", "drop density=, or choose another diversity"))
    if beta != 1.0:
        raise InvalidInputError(why.format(f"beta={beta:g}", "drop beta="))
    if candidates is not None:
        raise InvalidInputError(why.format(
            f"candidates={candidates}", "pass candidates_per_pick= (its own candidate count) "
            "instead"))


def select(probs: Any, k: int, *, logits: bool = False, embeddings: Any = None,
           labeled: Any = None, exclude: Any = None, score: Any = "margin",
           normalize: bool = False, atol: float = 1e-3, density: str | None = None,
           beta: float = 1.0, diversity: str | None = "auto", candidates: int | None = None,
           seed: int | np.random.Generator | None = 0, return_utilities: bool = False,
           extra: Any = None, **diversity_params: Any) -> Selection:
    """Choose k items to label, composing the stages of this library, and say why.

    1. **score**: an uncertainty score of :mod:`alcore.scores` on ``probs`` (for
       ``"bald"`` etc., (T, N, C) samples).
    2. **density** (optional): ``"knn"`` weights by kNN density (normalised to [0, 1]),
       ``"information"`` by the mean cosine similarity to the pool (Settles & Craven),
       both raised to ``beta``: the combined score is ``uncertainty * density ** beta``.
    3. **candidates** (optional): keep the ``candidates * k`` best items by the combined
       score before the diversity stage (as Cluster-Margin and SEALS do).
    4. **diversity**: ``"kcenter"``, ``"badge"``, ``"typiclust"``, ``"probcover"`` (needs
       ``radius=``), ``"spread"`` (needs ``min_distance=``) over the candidates, or
       ``"cluster_margin"`` over the pool; None takes the top k. The default ``"auto"`` is
       k-center over the 5k best candidates when embeddings are given (the best strategy
       in this library's simulations, see ``alcore simulate``), else the top k.

    Every argument is checked before any work; nothing is silently ignored: an option
    that would play no part (``beta`` without a density, ``candidates`` or diversity
    options without a diversity stage, ``score``/``density``/``beta``/``candidates`` with
    ``"cluster_margin"``, which uses margin on the pool by definition) is refused with an
    :class:`alcore.InvalidInputError` saying why.

    Parameters
    ----------
    probs : array-like of shape (N, C), or (T, N, C) for the sample scores
        Model outputs for every item: probabilities, or logits with ``logits=True``.
    k : int
        Items to pick, 1 <= k <= N minus the labeled and excluded items.
    logits : bool
        ``probs`` holds logits.
    embeddings : array-like of shape (N, d), optional
        Needed by density and diversity (float32; float64 is converted once).
    labeled : array-like, optional
        Items already labeled (boolean mask, unique indices, or scikit-activeml's ``y``
        with NaN for unlabeled): never picked, and diversity counts them as covered. Pass
        items queued for annotation but not yet labeled here too.
    exclude : array-like, optional
        Items never to pick that do not count as covered (unlabelable, corrupt), as a
        boolean mask or unique indices.
    score : str or callable
        A score of :mod:`alcore.scores`, or a custom utility of one (N, C) row (an
        :func:`alcore.utility` or a plain function), as in :func:`alcore.select_top`; the
        reasons name it by its ``name``.
    normalize, atol
        As in :mod:`alcore.scores`: renormalise non-negative rows / the row-sum tolerance.
    density : {None, "knn", "information"}
    beta : float
        Exponent of the density, >= 0 (only with a density).
    diversity : {"auto", None, "kcenter", "badge", "typiclust", "cluster_margin", \
"probcover", "spread"}
    candidates : int, optional
        Candidate pool of ``candidates * k`` items for the diversity stage.
    seed : None, int or numpy.random.Generator
        Seeds the randomised stages (k-means, the first k-center pick, BADGE).
    return_utilities : bool
        Also return every item's combined score as ``Selection.utilities``.
    extra : array-like or dict, optional
        A custom utility's extra per-row inputs, as in :func:`alcore.select_top`.
    **diversity_params
        Options of the diversity method (e.g. ``radius=`` for probcover, ``metric=`` for
        kcenter); misspelt or unknown ones are refused, naming the allowed ones.

    Returns
    -------
    Selection
        ``indices`` (int64, pick order) with per-pick scores, components and reasons.
    """
    # A rejected call changes no state: a Generator passed as seed= may already have been
    # drawn from (density's k-means, say) when a later stage refuses the input.
    state = seed.bit_generator.state if isinstance(seed, np.random.Generator) else None
    try:
        return _select(probs, k, logits=logits, embeddings=embeddings, labeled=labeled,
                       exclude=exclude, score=score, normalize=normalize, atol=atol,
                       density=density, beta=beta, diversity=diversity,
                       candidates=candidates, seed=seed, return_utilities=return_utilities,
                       extra=extra, **diversity_params)
    except InvalidInputError:
        if state is not None:
            seed.bit_generator.state = state
        raise


def _select(probs: Any, k: int, *, logits: Any, embeddings: Any, labeled: Any,
            exclude: Any, score: Any, normalize: Any, atol: Any, density: Any, beta: Any,
            diversity: Any, candidates: Any, seed: Any, return_utilities: Any,
            extra: Any = None, **diversity_params: Any) -> Selection:
    """:func:`select`'s work (its arguments unchecked so far)."""
    timings: dict[str, float] = {}
    start = time.perf_counter()
    # Cheap checks of every option first, so that nothing runs on a call that will fail.
    k = v.count(k)
    utility = None
    if _utility.is_custom(score):
        utility = _utility.as_utility(score)
        score = utility.name  # what the reasons and the config call it
    else:
        score = v.choice(score, "score", scores_module.ALL_SCORES)
        if extra is not None:
            raise InvalidInputError(
                "extra= is for a custom score function (score=f with def f(p, cost, ...)); "
                "the built-in scores take no extra inputs")
    is_logits = v.flag(logits, "logits")
    normalize = v.flag(normalize, "normalize")
    atol = v.tolerance(atol)
    density = v.choice(density, "density", DENSITIES)
    beta = v.number(beta, "beta", low=0.0, hint="beta is the exponent of the density")
    diversity = v.choice(diversity, "diversity", DIVERSITIES)
    if candidates is not None:
        candidates = v.count(candidates, "candidates")
    v.rng(seed)  # checks the type; the stages draw from the seed itself
    return_utilities = v.flag(return_utilities, "return_utilities")
    if diversity == "auto":
        diversity = _AUTO_DIVERSITY if embeddings is not None else None
        if diversity is not None and candidates is None:
            candidates = _AUTO_CANDIDATES
    if density is None and beta != 1.0:
        raise InvalidInputError(
            f"beta={beta:g} weights the density, but density=None; pass density='knn' or "
            f"'information', or drop beta=")
    if diversity is None and candidates is not None:
        raise InvalidInputError(
            f"candidates={candidates} narrows the pool for a diversity stage, but none runs "
            f"(diversity=None, or 'auto' without embeddings); pass diversity= and "
            f"embeddings=, or drop candidates=")
    if diversity == "cluster_margin":
        _check_cluster_margin(score, density, beta, candidates)
    if diversity == "badge" and score in scores_module.SAMPLE_SCORE_CODES:
        raise InvalidInputError(
            f"diversity='badge' builds gradient embeddings from (N, C) class probabilities, "
            f"but score={score!r} takes (T, N, C) samples; pass probs.mean(axis=0) with a "
            f"row score (e.g. score='margin'), or choose another diversity")
    params = _check_diversity_params(diversity, diversity_params)
    config = {"k": k, "score": score, "logits": is_logits, "normalize": normalize,
              "atol": atol, "density": density, "beta": beta, "diversity": diversity,
              "candidates": candidates,
              "seed": seed if not isinstance(seed, np.random.Generator) else "Generator",
              **params}

    # Then the arrays: shapes and dtypes, the item masks, the embeddings.
    if utility is None and score in scores_module.SAMPLE_SCORE_CODES:
        x, is_logits, name = v.outputs_tensor(probs, is_logits)
        n = x.shape[1]
    else:
        x, is_logits, name = v.outputs_matrix(probs, is_logits)
        n = x.shape[0]
    masks = v.item_masks(n, name, labeled=labeled, exclude=exclude, k=k)
    extra_values = None if utility is None else _utility.extra_matrix(utility, extra, n)
    if params.get("clusters") is not None:
        params["clusters"] = _cluster_labels(params["clusters"], n,
                                             non_negative=diversity == "typiclust")
    emb = None
    if embeddings is not None:
        emb = v.embeddings_matrix(embeddings)
        if emb.shape[0] != n:
            raise InvalidInputError(
                f"embeddings has {emb.shape[0]} rows but {name} has {n} items; pass one "
                f"embedding row per item")
    else:
        needs = ([f"density={density!r}"] if density is not None else []) + (
            [f"diversity={diversity!r}"] if diversity is not None and not (
                diversity == "cluster_margin" and params.get("clusters") is not None)
            else [])
        if needs:
            raise InvalidInputError(
                f"{' and '.join(needs)} need{'s' if len(needs) == 1 else ''} embeddings=: "
                f"pass an (N, d) array of item embeddings, or diversity=None for the plain "
                f"top k")
    timings["validate"] = time.perf_counter() - start

    # The score pass also checks the values (finite, in [0, 1], rows summing to 1).
    start = time.perf_counter()
    if utility is not None:
        uncertainty = _utility.scores_custom(utility, x, is_logits, name, normalize, atol,
                                             extra_values)
        if density is not None and uncertainty.size and uncertainty.min() < 0:
            # uncertainty * density ** beta assumes utilities >= 0 (as the built-in scores
            # are): a negative one would be raised by a *low* density, preferring outliers.
            row = int(np.argmin(uncertainty))
            raise InvalidInputError(
                f"density={density!r} multiplies each utility by a density in [0, 1], which "
                f"needs utilities >= 0, but score function {utility.name!r} gives "
                f"{uncertainty[row]!r} for row {row}; shift or rescale it to be "
                f"non-negative (higher = more informative), or drop density=")
    else:
        uncertainty = scores_module._score_validated(
            score, x, is_logits, name, normalize=normalize, atol=atol).astype(np.float64)
    timings["score"] = time.perf_counter() - start

    start = time.perf_counter()
    dens = None
    if density == "knn":
        if n < 2:
            dens = np.ones(n)
        else:
            raw = density_module.knn_density(emb, min(10, n - 1), seed=seed)
            raw = np.asarray(raw, dtype=np.float64)
            dens = raw / raw.max()
    elif density == "information":
        dens = np.maximum(np.asarray(density_module.similarity_density(emb, seed=seed),
                                     dtype=np.float64), 0.0)
    combined = uncertainty if dens is None else uncertainty * dens ** beta
    timings["density"] = time.perf_counter() - start

    never = None if masks.never is None else masks.never.view(bool)
    n_pickable = n - masks.n_never
    start = time.perf_counter()
    pool = None  # the candidate rows, best combined score first (None: every pickable item)
    if diversity is not None and diversity != "cluster_margin" and candidates is not None:
        m = min(candidates * k, n_pickable)
        pool = _core.top_k(combined, masks.never, m)
    timings["candidates"] = time.perf_counter() - start

    start = time.perf_counter()
    explained: dict[str, np.ndarray] = {}  # the method's own per-pick numbers
    if diversity is None:
        chosen = _core.top_k(combined, masks.never, k)
    elif diversity == "cluster_margin":
        outputs = _renormalised(x, is_logits, normalize, atol)
        lab = None if masks.labeled is None else masks.labeled.view(bool)
        exc = _excluded_only(masks)
        found = diversity_module._cluster_margin_with_clusters(
            outputs, emb, k, logits=is_logits, labeled=lab, exclude=exc, seed=seed, **params)
        chosen = found.indices
        explained = {"cluster": found.cluster, "cluster_size": found.cluster_size}
    else:
        chosen, explained = _diverse(diversity, k, pool, emb, masks, x, is_logits, normalize,
                                     atol, combined, seed, params)
    chosen = np.asarray(chosen, dtype=np.int64)
    timings["diversity"] = time.perf_counter() - start

    start = time.perf_counter()
    components, reasons, shortfall = _explain(
        chosen, k, uncertainty, dens, combined, masks, n_pickable, pool, emb, score, density,
        beta, diversity, params, seed, explained)
    utilities = None
    if return_utilities:
        utilities = combined.copy()
        if never is not None:
            utilities[never] = np.nan
    timings["explain"] = time.perf_counter() - start
    return Selection(chosen, combined[chosen], components, reasons, utilities, shortfall,
                     timings, config)


def _explain(chosen: np.ndarray, k: int, uncertainty: np.ndarray, dens: np.ndarray | None,
             combined: np.ndarray, masks: v.ItemMasks, n_pickable: int,
             pool: np.ndarray | None, emb: np.ndarray | None, score: str,
             density: str | None, beta: float, diversity: str | None, params: dict,
             seed: Any, explained: dict[str, np.ndarray]
             ) -> tuple[dict[str, np.ndarray], list[str], str | None]:
    """Each pick's components (its numbers, ``explained`` holding the method's own), its
    reason in words, and the shortfall."""
    components: dict[str, np.ndarray] = {"uncertainty": uncertainty[chosen]}
    if dens is not None:
        components["density"] = dens[chosen]
    ranked = None
    if diversity is None:  # the top k, best first
        components["rank"] = np.arange(1, len(chosen) + 1, dtype=np.int64)
    else:
        ranked = pool
        if ranked is None and diversity == "cluster_margin":
            # Its picks lie among its candidates_per_pick * k best margins.
            per_pick = params.get("candidates_per_pick") or _method_parameters(
                "cluster_margin")[0]["candidates_per_pick"]
            ranked = _core.top_k(combined, masks.never, min(per_pick * k, n_pickable))
        components["rank"] = _ranks(combined, masks.never, n_pickable, chosen, ranked)
    if diversity in _DISTANCE_METHODS:
        lab_rows = (np.flatnonzero(masks.labeled) if masks.labeled is not None
                    else np.empty(0, dtype=np.int64))
        components["distance"], components["nearest"] = _covered_distances(
            emb, lab_rows, chosen, params.get("metric", "l2"))
    components.update(explained)
    shortfall = (_shortfall(diversity, len(chosen), k, pool, n_pickable, params)
                 if len(chosen) < k else None)
    n_ranked = None if ranked is None else len(ranked)
    reasons = _reasons(chosen, combined, components, score, density, beta, diversity,
                       n_pickable, pool, params, seed, n_ranked)
    return components, reasons, shortfall


def _cluster_labels(clusters: Any, n: int, non_negative: bool) -> np.ndarray:
    """``clusters=`` checked before any work (the method checks it again): integer labels,
    one per item (TypiClust counts cluster sizes, so its labels are non-negative)."""
    labels = v.as_numpy(clusters, "clusters")
    kind = "non-negative integer" if non_negative else "integer"
    if labels.shape != (n,) or labels.dtype.kind not in "iu" or (
            non_negative and labels.size and labels.min() < 0):
        raise InvalidInputError(
            f"clusters must be {kind} labels of shape ({n},), one per item, got dtype "
            f"{labels.dtype} and shape {labels.shape}")
    return labels.astype(np.int64, copy=False)


def _renormalised(x: np.ndarray, is_logits: bool, normalize: bool,
                  atol: float) -> np.ndarray:
    """Probabilities a method checks with its default tolerance: divided by their row sums
    when the user asked for renormalising or a looser tolerance (already checked here)."""
    if is_logits or (not normalize and atol <= _DEFAULT_ATOL):
        return x
    return x / x.sum(axis=-1, keepdims=True)


def _excluded_only(masks: v.ItemMasks) -> np.ndarray | None:
    """Items excluded but not labeled (labeled ones are covered)."""
    if masks.never is None:
        return None
    if masks.labeled is None:
        return masks.never.view(bool)
    return masks.never.view(bool) & ~masks.labeled.view(bool)


def _diverse(method: str, k: int, pool: np.ndarray | None, emb: np.ndarray,
             masks: v.ItemMasks, x: np.ndarray, is_logits: bool, normalize: bool,
             atol: float, combined: np.ndarray, seed: Any, params: dict
             ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Run a diversity method over the candidates, labeled items counting as covered: the
    picks (rows of the pool) and the method's own numbers per pick (cluster, D^2)."""
    if pool is None:  # the whole pool: the method takes the masks itself
        rows = None
        sub_emb = emb
        lab = None if masks.labeled is None else masks.labeled.view(bool)
        exc = _excluded_only(masks)
    else:
        # Labeled rows first (covered), then the candidates in index order, so that equal
        # distances go to the lower item index as over the whole pool.
        lab_rows = (np.flatnonzero(masks.labeled) if masks.labeled is not None
                    else np.empty(0, dtype=np.int64))
        rows = np.concatenate([lab_rows, np.sort(pool)])
        sub_emb = emb[rows]
        lab = np.arange(len(lab_rows)) if len(lab_rows) else None
        exc = None
    take = (lambda a: a) if rows is None else (lambda a: a[rows])
    if params.get("clusters") is not None:
        params = {**params, "clusters": take(params["clusters"])}
    common = {"labeled": lab, "exclude": exc, **params}
    explained: dict[str, np.ndarray] = {}
    if method == "kcenter":
        picks = diversity_module.kcenter(sub_emb, k, seed=seed, **common)
    elif method == "typiclust":
        found = diversity_module._typiclust_with_clusters(sub_emb, k, seed=seed, **common)
        picks = found.indices
        explained = {"cluster": found.cluster, "cluster_size": found.cluster_size}
    elif method == "probcover":
        picks = diversity_module.probcover(sub_emb, k, seed=seed, **common)
    elif method == "badge":
        outputs = take(_renormalised(x, is_logits, normalize, atol))
        drawn = diversity_module._badge_with_distances(outputs, sub_emb, k, logits=is_logits,
                                                       seed=seed, **common)
        picks = drawn.indices
        explained = {"gradient_sq_distance": drawn.sq_distance,
                     "gradient_sq_norm": drawn.sq_norm}
    else:  # spread walks the candidates by descending combined score
        picks = diversity_module.spread(take(combined), sub_emb, k, **common)
    picks = np.asarray(picks, dtype=np.int64)
    return (picks if rows is None else rows[picks]), explained


def _ranks(combined: np.ndarray, never: np.ndarray | None, n_pickable: int,
           chosen: np.ndarray, pool: np.ndarray | None) -> np.ndarray:
    """Each pick's rank (1 = best) by the combined score among the pickable items, ties
    to the lower index (the order of top_k)."""
    if len(chosen) == 0:
        return np.empty(0, dtype=np.int64)
    if pool is None or not np.isin(chosen, pool).all():
        pool = _core.top_k(combined, never, n_pickable)
    position = np.full(len(combined), -1, dtype=np.int64)
    position[pool] = np.arange(1, len(pool) + 1)
    return position[chosen]


def _covered_distances(emb: np.ndarray, lab_rows: np.ndarray, chosen: np.ndarray,
                       metric: str) -> tuple[np.ndarray, np.ndarray]:
    """For each pick in order, the float64 distance to the nearest item covered when it
    was picked (the labeled items and the earlier picks) and that item (-1: none)."""
    m = len(chosen)
    picks = emb[chosen].astype(np.float64)
    if metric == "cosine":
        picks /= np.maximum(np.linalg.norm(picks, axis=1, keepdims=True), np.finfo(float).tiny)
    best = np.full(m, np.inf)
    nearest = np.full(m, -1, dtype=np.int64)
    pick_sq = np.einsum("ij,ij->i", picks, picks)

    def fold(block: np.ndarray, ids: np.ndarray, allowed: np.ndarray | None) -> None:
        # The expanded form in float64 finds the nearest item (its error, about 1e-16
        # times the squared norms, can only swap near-equal candidates).
        sq = pick_sq[:, None] + np.einsum("ij,ij->i", block, block)[None, :] \
            - 2.0 * (picks @ block.T)
        np.maximum(sq, 0.0, out=sq)
        if allowed is not None:
            sq[~allowed] = np.inf
        col = np.argmin(sq, axis=1)
        value = sq[np.arange(m), col]
        better = value < best
        best[better] = value[better]
        nearest[better] = ids[col[better]]

    for lo in range(0, len(lab_rows), _DISTANCE_BLOCK):
        ids = lab_rows[lo:lo + _DISTANCE_BLOCK]
        block = emb[ids].astype(np.float64)
        if metric == "cosine":
            block /= np.maximum(np.linalg.norm(block, axis=1, keepdims=True),
                                np.finfo(float).tiny)
        fold(block, ids, None)
    if m > 1:
        # Pick i is compared with the picks before it only.
        fold(picks, chosen, np.tri(m, m, -1, dtype=bool))
    # The expanded form chose the nearest item; its distance is recomputed from the
    # differences, exact even for near-duplicates far from the origin.
    found = np.flatnonzero(nearest >= 0)
    other = emb[nearest[found]].astype(np.float64)
    if metric == "cosine":
        other /= np.maximum(np.linalg.norm(other, axis=1, keepdims=True), np.finfo(float).tiny)
    distance = np.full(m, np.inf)
    distance[found] = np.sqrt(np.einsum("ij,ij->i", picks[found] - other, picks[found] - other))
    return distance, nearest


def _shortfall(method: str | None, got: int, k: int, pool: np.ndarray | None,
               n_pickable: int, params: dict) -> str:
    among = (f"the top {len(pool)} candidates" if pool is not None
             else f"the {n_pickable} items that could be picked")
    if method == "spread":
        return (f"spread found {got} of k={k} items among {among}: every other one lies "
                f"within min_distance={params['min_distance']:g} of a taken or labeled item; "
                f"lower min_distance= or raise candidates=")
    return f"{method} returned {got} of k={k} items among {among}"


def _reasons(chosen: np.ndarray, combined: np.ndarray, components: dict[str, np.ndarray],
             score: str, density: str | None, beta: float, diversity: str | None,
             n_pickable: int, pool: np.ndarray | None, params: dict, seed: Any,
             n_ranked: int | None) -> list[str]:
    """One sentence per pick, with its own numbers (``n_ranked``: the candidates
    Cluster-Margin spread over its clusters)."""
    reasons = []
    for i in range(len(chosen)):
        value = f"{score} {components['uncertainty'][i]:.6g}"
        if density is not None:
            value += (f" x {density} density {components['density'][i]:.4g}^{beta:g} = "
                      f"{combined[chosen[i]]:.6g}")
        text = f"rank {components['rank'][i]} of {n_pickable} by {value}"
        if diversity is None:
            reasons.append(text)
            continue
        if pool is not None:
            text += f" (among the top {len(pool)} candidates)"
        if "distance" in components:
            distance, nearest = components["distance"][i], components["nearest"][i]
            if nearest < 0:
                text += f"; {diversity} pick {i + 1}: nothing covered yet"
                if diversity == "kcenter":
                    text += f" (first center drawn at random, seed={seed!r})"
            else:
                text += (f"; {diversity} pick {i + 1}: {distance:.4g} from the nearest "
                         f"covered item {nearest}")
                if diversity == "spread":
                    text += f" (min_distance={params['min_distance']:g})"
                elif diversity == "probcover":
                    text += f" (radius={params['radius']:g})"
        elif diversity == "badge":
            text += f"; badge pick {i + 1}: "
            norm_sq = components["gradient_sq_norm"][i]
            if i == 0:
                text += f"the largest gradient embedding, |g|^2 {norm_sq:.6g}"
            else:
                text += (f"drawn by k-means++ with weight D^2 "
                         f"{components['gradient_sq_distance'][i]:.6g} (squared gradient "
                         f"distance to the nearest earlier pick; |g|^2 {norm_sq:.6g})")
        elif diversity == "cluster_margin":
            text += (f"; cluster_margin pick {i + 1}: round-robin over clusters, cluster "
                     f"{components['cluster'][i]} ({components['cluster_size'][i]} of the "
                     f"{n_ranked} smallest-margin candidates)")
        if diversity == "typiclust":
            text += (f"; the most typical unlabeled member of cluster "
                     f"{components['cluster'][i]} (size {components['cluster_size'][i]})")
        reasons.append(text)
    return reasons


__all__ = ["Selection", "select"]

v.guard_signatures(globals())
