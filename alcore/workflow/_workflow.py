"""The hybrid loop: sources, one label budget, a control arm, routing, agreement feedback
and the model-update callback, every step recorded in a :class:`Ledger`.

Rules (each decision is recorded in the ledger with its reason)
---------------------------------------------------------------
* **Round.** :meth:`Workflow.next_batch` runs round r = previous + 1 with the random
  generator ``numpy.random.default_rng([seed, r])``: a round's draws depend on the seed,
  the round number and the ledger's contents only, so a resumed workflow draws exactly
  what an uninterrupted one would.
* **Batch size.** ``k`` if given, else the :class:`alcore.BatchSizer`'s ``next_size()``
  (default: a fixed 1 % of the first pool), after recording the round just finished
  (labels so far, control-arm accuracy); the decision and its reason are a
  ``batch_size`` event. A batch never exceeds the budget left.
* **Control arm.** ``round(control_share * k)`` items of every batch are drawn uniformly at
  random from the unlabeled, unqueued items of the first pool source, before any source
  picks, and queued with ``control=True``.
* **Allocation.** The other ``k - control`` labels are shared between the sources by
  largest remainders of their weights: ``"fixed"`` uses ``shares`` (default equal);
  ``"adaptive"`` multiplies each share by ``0.05 + surprise``, where a source's surprise is
  the share of its items labeled in the last three rounds whose label differed from the
  model's prediction at queue time (a label that corrects the model is the label that
  moves its accuracy: the per-label gain each source has been buying lately; 0.5 before
  a source has labels). A source that cannot fill its share (a dry stream, too few labels
  for synthesis) passes the rest to the next sources.
* **Budget.** Every item queued for a person (annotator or expert tier) spends one label;
  auto-labels spend none. ``spent <= budget`` always.
* **Routing.** Stream items follow their router (auto-label / annotator / expert), pool
  picks below ``PoolSource(expert_below=)`` confidence go to the expert tier; auto-labels
  are stored as labels with origin ``"auto"`` and annotator ``"model"``. With
  ``expert_review=True`` (default) an item whose people gave two or more distinct labels,
  or that one flagged ambiguous, is re-queued in the expert tier (a ``route`` event; no
  budget spent) until an expert's label (origin ``"expert"``) settles it.
* **Agreement feedback.** Before each pool selection, :func:`alcore.monitor.agreement`
  (Krippendorff's alpha) over the items of the last three rounds that have two or more
  annotators; below ``agreement_threshold`` the round raises diversity (the pool's
  k-center runs over twice as many candidates, a top-k pool becomes k-center over 5k),
  recorded as an ``agreement`` event.
* **Model update.** After labels arrive, ``on_update(labels)`` is called with every
  labeled item's current label (``{item_id: label text}``: an expert's label wins, else
  the annotators' majority, ties to the latest). It returns None (the sources were
  updated by the caller) or new pool outputs ``{"probs": (N, C), "embeddings": (N, d)}``
  given to every :class:`PoolSource` (or ``{source name: {...}}`` per source).
* **Accuracy.** Every queued item stores the model's prediction when it was queued, i.e.
  before the model trained on its label. ``control_accuracy`` is the share of labeled
  control items whose label equals that prediction: an unbiased estimate of the model's
  accuracy on the pool. ``selected_accuracy`` is the same on the actively selected items
  (low by design: active learning picks what the model gets wrong).
* **Counterfactual and lift.** With ``counterfactual=`` (a callable like ``on_update``
  that trains a second model and returns its probabilities for the first pool, (N, C)),
  each round's control items also store that second model's prediction, the model a
  random-sampling loop would have: trained on the labels of the control items and of the
  items queued outside any round (round 0, e.g. a seed set), nothing actively selected.
  The selection event records how many labels each model had (``model_labels``,
  ``counterfactual_labels``). ``status()["counterfactual"]`` is its accuracy on the
  labeled control items, per round. ``lift`` compares the two at **equal labels**, since
  the counterfactual has only the control share of them: for every round R whose control
  items have counterfactual predictions, made with m_R labels, the actual model's
  control accuracy at m_R labels is interpolated linearly between the rounds whose label
  counts bracket m_R (rounds with equal counts averaged), and ``lift`` is the mean of
  (actual at m_R) - (counterfactual of round R), weighted by round R's labeled control
  items; rounds whose m_R falls outside the actual model's label counts are left out
  (``lift_rounds`` counts those used). Both accuracies are unbiased (random items the
  model had not seen), so ``lift`` estimates what active selection bought over random
  selection for the same number of labels; it is noisy with few control items per round
  (its spread is that of a difference of two proportions over the items counted). None
  without ``counterfactual=`` or before a round can be paired.
"""

from __future__ import annotations

import copy
import math
import operator
import os
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from alcore import _validation as v
from alcore._errors import InvalidInputError
from alcore.workflow._ledger import Ledger, LedgerError
from alcore.workflow._sources import (
    PoolSource,
    Round,
    StreamSource,
    SynthesisSource,
    checked_outputs,
)

ALLOCATIONS = ("fixed", "adaptive")
RECENT_ROUNDS = 3
MIN_WEIGHT = 0.05
_SOURCE_TYPES = (PoolSource, StreamSource, SynthesisSource)


def _check_callbacks(on_update: Any, counterfactual: Any) -> None:
    for name, f in (("on_update", on_update), ("counterfactual", counterfactual)):
        if f is not None and not callable(f):
            raise InvalidInputError(f"{name} must be a callable labels -> outputs (or "
                                    f"None), got {type(f).__name__}")


def _random_arm_labels(items: list[dict], labels: dict[str, str]) -> dict[str, str]:
    """The labels a random-sampling loop would also have: those of the control items and
    of the items queued outside any round (round 0, a seed set); auto-labels excluded."""
    return {x["item_id"]: labels[x["item_id"]] for x in items
            if x["item_id"] in labels and x["tier"] != "auto"
            and (x["control"] or x["round"] < 1)}


def _named_sources(sources: Any) -> dict[str, Any]:
    if isinstance(sources, Mapping):
        named = {str(k): s for k, s in sources.items()}
    elif isinstance(sources, Sequence) and not isinstance(sources, str):
        named = {}
        for s in sources:
            kind = getattr(s, "kind", type(s).__name__)
            name, i = kind, 2
            while name in named:
                name, i = f"{kind}{i}", i + 1
            named[name] = s
    else:
        raise InvalidInputError(f"sources must be a list (or a dict name -> source) of "
                                f"PoolSource, StreamSource, SynthesisSource; got "
                                f"{type(sources).__name__}")
    if not named:
        raise InvalidInputError("sources is empty; pass at least one source, e.g. "
                                "sources=[PoolSource(probs, embeddings=emb)]")
    for name, s in named.items():
        if not isinstance(s, _SOURCE_TYPES):
            raise InvalidInputError(f"source {name!r} must be a PoolSource, StreamSource or "
                                    f"SynthesisSource, got {type(s).__name__}")
    return named


def _seed(seed: Any) -> int:
    """An int seed to store: a Generator or None is turned into one drawn from it."""
    if seed is None or isinstance(seed, np.random.Generator):
        return int(v.rng(seed).integers(2**62))
    v.rng(seed)  # validates
    return int(operator.index(seed))


def _consensus(labels: list[dict]) -> dict[str, str]:
    """The current label per item: an expert's (latest) wins, else the majority of the
    annotators' current labels, ties to the latest; ambiguous or skipped labels are not
    votes."""
    by_item: dict[str, list[dict]] = {}
    for x in labels:
        by_item.setdefault(x["item_id"], []).append(x)
    out = {}
    for item_id, xs in by_item.items():
        # An annotator who skipped the item or flagged it ambiguous gave no class: not a
        # vote, and an item with no other label has none to train on.
        xs = [x for x in xs if not x.get("ambiguous")]
        if not xs:
            continue
        experts = [x for x in xs if x["origin"] == "expert"]
        if experts:
            out[item_id] = experts[-1]["value"]
            continue
        counts = Counter(x["value"] for x in xs)
        top = max(counts.values())
        out[item_id] = next(x["value"] for x in reversed(xs) if counts[x["value"]] == top)
    return out


class Workflow:
    """The hybrid active-learning loop over a durable ledger (see the module docstring
    for every rule).

    Parameters
    ----------
    ledger : str or path-like
        The ledger file: created when missing; an existing one is resumed after its stored
        config is checked against these arguments (:class:`LedgerError` on a mismatch).
    budget : int, keyword-only
        Labels to spend in all (items queued for people).
    sources : list or dict of sources
        :class:`PoolSource`, :class:`StreamSource`, :class:`SynthesisSource` (named by
        kind, ``pool``, ``pool2``...; or a dict name -> source).
    on_update : callable, optional
        ``on_update(labels: dict[str, str]) -> None | dict``: the one model-update callback.
    allocation : {"fixed", "adaptive"}
    shares : dict of source name -> float > 0, or a list in source order, optional
        The fixed shares (default equal), or the prior of ``"adaptive"``.
    control_share : float in [0, 1)
        Share of each batch drawn uniformly at random (default 0.1).
    review_capacity : int
        The review queue's capacity, given to a stream router without its own.
    batch_sizer : alcore.BatchSizer, optional
        Default: ``BatchSizer(N)`` with N the first pool's size (fixed, 1 % of it).
    agreement_threshold : float or None
        Krippendorff's alpha below which the next pool selection raises diversity.
    expert_review : bool
        Re-queue disagreements and ambiguous items in the expert tier.
    sketch : alcore.monitor.PoolSketch, optional
        When given, every batch from a pool is audited against it (an ``audit`` event).
    counterfactual : callable, optional
        ``counterfactual(labels: dict[str, str]) -> None | array (N, C)``: trains the
        random-sampling model on the labels given (the control arm's and the seed set's)
        and returns its probabilities (logits if the first pool has ``logits=True``) for
        every item of the first pool, or None while it cannot train yet. Called before a
        round's selection whenever those labels changed. Needed for ``lift``.
    seed : None, int or numpy.random.Generator
    """

    def __init__(self, ledger: str | os.PathLike = "alcore.db", *, budget: int,
                 sources: Any, on_update: Callable[[dict[str, str]], Any] | None = None,
                 allocation: str = "fixed", shares: Any = None, control_share: float = 0.1,
                 review_capacity: int = 100, batch_sizer: Any = None,
                 agreement_threshold: float | None = 0.6, expert_review: bool = True,
                 sketch: Any = None, counterfactual: Callable[[dict[str, str]], Any] | None
                 = None, seed: int | np.random.Generator | None = 0):
        from alcore.batching import BatchSizer

        named = _named_sources(sources)
        budget = v.integer(budget, "budget", low=1, hint="pass the labels you can pay for")
        allocation = v.choice(allocation, "allocation", ALLOCATIONS)
        control_share = v.number(control_share, "control_share", low=0.0, high=1.0,
                                 high_open=True, hint="e.g. control_share=0.1 (10 %)")
        review_capacity = v.count(review_capacity, "review_capacity")
        threshold = (None if agreement_threshold is None else v.number(
            agreement_threshold, "agreement_threshold", low=-1.0, high=1.0))
        _check_callbacks(on_update, counterfactual)
        pools = [s for s in named.values() if isinstance(s, PoolSource)] + [
            s.pool for s in named.values() if isinstance(s, SynthesisSource)]
        if control_share > 0 and not pools:
            raise InvalidInputError("control_share > 0 needs a pool to draw from: add a "
                                    "PoolSource (or SynthesisSource), or pass control_share=0")
        weights = self._shares(shares, list(named))
        if batch_sizer is None:
            if not pools:
                raise InvalidInputError("without a pool source pass batch_sizer= (an "
                                        "alcore.BatchSizer) or k= to next_batch")
            batch_sizer = BatchSizer(len(pools[0]))
        if not isinstance(batch_sizer, BatchSizer):
            raise InvalidInputError(f"batch_sizer must be an alcore.BatchSizer, got "
                                    f"{type(batch_sizer).__name__}")
        if sketch is not None and not hasattr(sketch, "audit"):
            raise InvalidInputError(f"sketch must be an alcore.monitor.PoolSketch, got "
                                    f"{type(sketch).__name__}")
        seed_value = _seed(seed)  # validated before the file is touched
        config = {
            "budget": budget, "allocation": allocation, "shares": weights,
            "control_share": control_share, "review_capacity": review_capacity,
            "agreement_threshold": threshold, "seed": None,
            "expert_review": v.flag(expert_review, "expert_review"),
            "sources": {name: {"kind": s.kind, **({"items": len(s)} if isinstance(
                s, PoolSource) else {})} for name, s in named.items()},
            "batch_sizer": self._sizer_config(batch_sizer),
        }
        path = Path(ledger)
        db = Ledger.open(path, create=True)
        try:
            stored = db.state("config")
            if stored is None:
                config["seed"] = seed_value
                db.set_state("config", config)
                db.set_state("sizer", self._sizer_state(batch_sizer), log=False)
            else:
                config["seed"] = stored["seed"] if seed is None else seed_value
                self._check_config(stored, config, path)
                config = stored
        except BaseException:
            db.close()
            raise
        self._setup(db, named, on_update, config, sketch, counterfactual)

    # ----------------------------------------------------------------- construction
    @classmethod
    def resume(cls, path: str | os.PathLike, *, sources: Any,
               on_update: Callable[[dict[str, str]], Any] | None = None,
               sketch: Any = None,
               counterfactual: Callable[[dict[str, str]], Any] | None = None) -> Workflow:
        """Continue the workflow stored in ``path`` exactly where it stopped (a crash
        included), with its stored config; ``sources`` must match the stored ones (names,
        kinds, pool sizes). Calls ``on_update`` once with the stored labels so the model
        reflects every label already submitted."""
        named = _named_sources(sources)
        _check_callbacks(on_update, counterfactual)
        db = Ledger.open(path)
        try:
            config = db.state("config")
            if config is None:
                raise LedgerError(f"{path} holds no workflow (no config); create one with "
                                  f"Workflow({str(path)!r}, budget=..., sources=...)")
            expected = {name: {"kind": s.kind, **({"items": len(s)} if isinstance(
                s, PoolSource) else {})} for name, s in named.items()}
            if expected != config["sources"]:
                raise LedgerError(f"{path}: the sources {expected} do not match the stored "
                                  f"{config['sources']}; pass the same sources")
        except BaseException:
            db.close()
            raise
        self = cls.__new__(cls)
        self._setup(db, named, on_update, config, sketch, counterfactual)
        return self

    def _setup(self, db: Ledger, named: dict[str, Any], on_update: Any, config: dict,
               sketch: Any, counterfactual: Any) -> None:
        from alcore.batching import BatchSizer

        self.ledger = db
        self.sources = named
        self.on_update = on_update
        self.counterfactual = counterfactual
        # (labels it was trained on, its predictions per first-pool item id): retrained
        # only when the control arm's labels change.
        self._counterfactual_cache: tuple[dict[str, str], list[str] | None] | None = None
        self.config = config
        self.sketch = sketch
        sc = config["batch_sizer"]
        sizer = BatchSizer(sc["pool_size"], sc["policy"], size=sc["size"],
                           fraction=sc["fractions"] or None, growth=sc["growth"],
                           min_gain=sc["min_gain"], rounds=sc["rounds"])
        sizer.low, sizer.high = sc["low"], sc["high"]
        state = db.state("sizer") or {}
        if state:
            sizer.size = state["size"]
            sizer.history = [tuple(h) for h in state["history"]]
        self.batch_sizer = sizer
        for name, source in named.items():
            saved = db.state(f"source:{name}")
            if saved is not None and hasattr(source, "restore"):
                source.restore(saved)
        if db.labels():
            self._update()

    @staticmethod
    def _shares(shares: Any, names: list[str]) -> dict[str, float]:
        if shares is None:
            return {n: 1.0 / len(names) for n in names}
        if isinstance(shares, Mapping):
            unknown = set(map(str, shares)) - set(names)
            if unknown or set(map(str, shares)) != set(names):
                raise InvalidInputError(f"shares must give one share per source {names}, got "
                                        f"{sorted(map(str, shares))}")
            values = [shares[n] for n in names]
        else:
            values = list(shares)
            if len(values) != len(names):
                raise InvalidInputError(f"shares must have one share per source ({len(names)}"
                                        f": {names}), got {len(values)}")
        values = [v.number(x, "shares", low=0.0, low_open=True,
                           hint="each share must be > 0") for x in values]
        total = sum(values)
        return {n: x / total for n, x in zip(names, values, strict=True)}

    @staticmethod
    def _sizer_config(s: Any) -> dict:
        return {"pool_size": s.pool_size, "policy": s.policy, "size": s.size,
                "fractions": list(s.fractions), "growth": s.growth, "min_gain": s.min_gain,
                "rounds": s.rounds, "low": s.low, "high": s.high}

    @staticmethod
    def _sizer_state(s: Any) -> dict:
        return {"size": s.size, "history": [list(h) for h in s.history]}

    @staticmethod
    def _check_config(stored: dict, config: dict, path: Path) -> None:
        for key in config:
            if stored.get(key) != config[key]:
                raise LedgerError(
                    f"{path} holds a workflow whose {key} is {stored.get(key)!r}, not "
                    f"{config[key]!r}; pass the stored value, continue it with "
                    f"Workflow.resume({str(path)!r}, sources=...), or use a new ledger path")

    def close(self) -> None:
        self.ledger.close()

    def __enter__(self) -> Workflow:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # ----------------------------------------------------------------- helpers
    @property
    def round(self) -> int:
        """Rounds run so far."""
        return int(self.ledger.state("round", 0))

    @property
    def spent(self) -> int:
        return int(self.ledger.state("spent", 0))

    def labels(self) -> dict[str, str]:
        """The current label of every labeled item (see the module docstring)."""
        return _consensus(self.ledger.labels())

    def _pools(self) -> list[PoolSource]:
        return [s for s in self.sources.values() if isinstance(s, PoolSource)] + [
            s.pool for s in self.sources.values() if isinstance(s, SynthesisSource)]

    def _update(self) -> None:
        if self.on_update is None:
            return
        out = self.on_update(self.labels())
        if out is None:
            return
        if not isinstance(out, Mapping):
            raise InvalidInputError(f"on_update must return None or a dict like "
                                    f"{{'probs': ..., 'embeddings': ...}}, got "
                                    f"{type(out).__name__}")
        if set(out) <= set(self.sources) and out:
            for name, outputs in out.items():
                if isinstance(self.sources[name], PoolSource):
                    self.sources[name].update(**outputs)
            return
        unknown = set(out) - {"probs", "embeddings"}
        if unknown:
            raise InvalidInputError(f"on_update returned unknown keys {sorted(unknown)}; "
                                    f"return {{'probs': ..., 'embeddings': ...}} or "
                                    f"{{source name: {{...}}}} for {list(self.sources)}")
        for pool in {id(p): p for p in self._pools()}.values():
            pool.update(**out)

    def _surprise(self, labels: dict[str, str], round_: int) -> dict[str, float]:
        """Per source: the share of its items labeled from the last RECENT_ROUNDS
        selections whose label differs from the model's prediction at queue time (0.5
        before it has any)."""
        by_source: dict[str, list[str]] = {name: [] for name in self.sources}
        for e in self.ledger.events("selection"):
            if e["round"] is not None and e["round"] > round_ - 1 - RECENT_ROUNDS:
                for name, ids in e["payload"].get("by_source", {}).items():
                    by_source.setdefault(name, []).extend(ids)
        out = {}
        for name in self.sources:
            done = [self.ledger.item(i) for i in by_source[name] if i in labels]
            out[name] = (0.5 if not done else sum(
                labels[x["item_id"]] != x["prediction"] for x in done) / len(done))
        return out

    @staticmethod
    def _split(total: int, weights: dict[str, float]) -> dict[str, int]:
        """Largest remainders, ties to the earlier source."""
        s = sum(weights.values())
        raw = {n: total * w / s for n, w in weights.items()}
        out = {n: math.floor(x) for n, x in raw.items()}
        rest = total - sum(out.values())
        order = sorted(weights, key=lambda n: -(raw[n] - out[n]))
        for n in order[:rest]:
            out[n] += 1
        return out

    def _agreement(self, items: list[dict], round_: int) -> dict | None:
        threshold = self.config["agreement_threshold"]
        if threshold is None:
            return None
        recent = {x["item_id"] for x in items if x["round"] > round_ - 1 - RECENT_ROUNDS}
        triples = [(x["item_id"], x["annotator"], x["value"]) for x in self.ledger.labels()
                   if x["item_id"] in recent and x["origin"] != "auto"
                   and not x.get("ambiguous")]
        per_item = Counter(t[0] for t in triples)
        triples = [t for t in triples if per_item[t[0]] >= 2]
        if len({t[0] for t in triples}) < 2:
            return None
        if len({t[2] for t in triples}) == 1:
            # Every annotator gave the one same class: alpha is undefined (no expected
            # disagreement), but the annotators agree: nothing to raise diversity for.
            alpha = 1.0
        else:
            from alcore.monitor import agreement

            alpha = float(agreement(triples).krippendorff_alpha)
        if not math.isfinite(alpha):
            return None
        return {"krippendorff_alpha": alpha, "threshold": threshold,
                "items": len({t[0] for t in triples}), "boost": alpha < threshold,
                "rule": ("alpha below the threshold: this round's pool selection runs "
                         "k-center over twice as many candidates" if alpha < threshold
                         else "alpha at or above the threshold: diversity unchanged")}

    # ----------------------------------------------------------------- the loop
    def next_batch(self, k: int | None = None) -> list[dict]:
        """Select and queue the next batch (one transaction: the selection event with
        every item's reason, the queued items, the round and budget state).

        Parameters
        ----------
        k : int, optional
            Labels to spend this round; default the batch sizer's size. Capped by the
            budget left.

        Returns
        -------
        list of dict
            The item records queued for people (annotator or expert tier), control items
            first. Empty when the budget is spent or nothing is left to pick.
        """
        db = self.ledger
        round_ = self.round + 1
        spent = self.spent
        left = self.config["budget"] - spent
        if k is not None:
            k = v.count(k, "k")
        if left <= 0:
            return []
        items = db.items()
        labels = self.labels()
        sizer = copy.deepcopy(self.batch_sizer)
        stored = db.state("sizer")
        if stored:  # another process sharing the ledger may have moved it on
            sizer.size = stored["size"]
            sizer.history = [tuple(h) for h in stored["history"]]
        size_event = None
        if k is None:
            size_event = self._size(sizer, items, labels)
            k = size_event["size"]
        k = min(k, left)
        rng = np.random.default_rng([self.config["seed"], round_])
        feedback = self._agreement(items, round_)
        covered = {x["item_id"] for x in items}
        ctx = Round(round_, covered, labels, rng,
                    diversity_boost=bool(feedback and feedback["boost"]),
                    queue_depth=sum(x["status"] == "queued" for x in items),
                    review_capacity=self.config["review_capacity"])
        n_control = math.floor(self.config["control_share"] * k + 0.5)
        pools = self._pools()
        control = pools[0].random(n_control, ctx) if n_control else []
        ctx.covered.update(x["item_id"] for x in control)
        counterfactual = self._counterfactual_payload(items, labels, control)
        weights = dict(self.config["shares"])
        if self.config["allocation"] == "adaptive":
            surprise = self._surprise(labels, round_)
            weights = {n: w * (MIN_WEIGHT + surprise[n]) for n, w in weights.items()}
            weights = {n: w / sum(weights.values()) for n, w in weights.items()}
        allotted = self._split(k - len(control), weights)
        undoable = [x for x in self.sources.values() if hasattr(x, "rollback")]
        for source in undoable:
            source.begin_round()
        try:
            human, auto = list(control), []
            got: dict[str, int] = {}
            by_source: dict[str, list[str]] = {}
            # Two passes: a source that falls short hands its labels to the next ones.
            for pass_ in range(2):
                for name, source in self.sources.items():
                    want = (allotted[name] if pass_ == 0
                            else k - len(human))
                    if want <= 0:
                        continue
                    out = source.propose(want, ctx)
                    records, autos = out if isinstance(out, tuple) else (out, [])
                    records = records[:want]
                    ctx.covered.update(x["item_id"] for x in records)
                    human += records
                    auto += autos
                    got[name] = got.get(name, 0) + len(records)
                    by_source.setdefault(name, []).extend(x["item_id"] for x in records)
                if len(human) >= k:
                    break
            audit = self._audit(human)
            payload = {
                "k": k, "control": len(control), "allocation": self.config["allocation"],
                "weights": weights, "allotted": allotted, "filled": got,
                "by_source": by_source,
                "notes": ctx.notes, "diversity_boost": ctx.diversity_boost,
                "reasons": {x["item_id"]: x["reason"] for x in human},
                "auto_labeled": [x["item_id"] for x in auto],
                "model_labels": len(labels), **counterfactual,
            }
            with db.transaction():
                if db.state("round", 0) != round_ - 1:
                    raise LedgerError(f"another process ran round {db.state('round')} of "
                                      f"{db.path} meanwhile; call next_batch again")
                if size_event is not None:
                    db.event("batch_size", size_event, round=round_)
                    db.set_state("sizer", self._sizer_state(sizer), log=False)
                if feedback is not None:
                    db.event("agreement", feedback, round=round_)
                db.queue(human, round=round_, selection=payload)
                if auto:
                    db.queue(auto, round=round_, status="labeled")
                    db.add_labels([{"item_id": x["item_id"], "annotator": "model",
                                    "value": x["prediction"], "origin": "auto"} for x in auto])
                for name, source in self.sources.items():
                    if hasattr(source, "state"):
                        db.set_state(f"source:{name}", source.state(), log=True)
                if audit is not None:
                    db.event("audit", audit, round=round_)
                db.set_state("round", round_, log=False)
                db.set_state("spent", spent + len(human), log=False)
        except BaseException:
            # A round that is not committed leaves no trace: the stream's gate and the
            # arrivals it polled are put back, so a retry routes the same items.
            for source in undoable:
                try:
                    source.rollback()
                except Exception:
                    pass
            raise
        self.batch_sizer = sizer
        if auto:
            self._update()
        return [{k_: x[k_] for k_ in x if k_ != "status"} for x in human]

    def _counterfactual_payload(self, items: list[dict], labels: dict[str, str],
                                control: list[dict]) -> dict:
        """The selection event's counterfactual fields: the random-sampling model's
        prediction for each control item and the labels it was trained on (nothing
        without ``counterfactual=``, or while it returns None)."""
        if self.counterfactual is None:
            return {}
        train = _random_arm_labels(items, labels)
        if self._counterfactual_cache is None or self._counterfactual_cache[0] != train:
            out = self.counterfactual(dict(train))
            predictions = None
            if out is not None:
                pool = self._pools()[0]
                probs = checked_outputs(out, pool.logits, pool.probs.shape, "counterfactual")
                # argmax of logits is that of their softmax: no normalisation needed.
                predictions = [pool.classes[j] for j in np.argmax(probs, axis=1).tolist()]
            self._counterfactual_cache = (train, predictions)
        predictions = self._counterfactual_cache[1]
        if predictions is None:
            return {}
        row = self._pools()[0].row
        return {"counterfactual_labels": len(train),
                "counterfactual": {x["item_id"]: predictions[row[x["item_id"]]]
                                   for x in control}}

    def _size(self, sizer: Any, items: list[dict], labels: dict[str, str]) -> dict:
        acc = self._accuracy(items, labels, control=True)
        before = sizer.size
        n_labeled = len(labels)
        recorded = False
        if acc["labeled"] and (not sizer.history or sizer.history[-1][0] < n_labeled):
            sizer.record(min(n_labeled, sizer.pool_size), acc["accuracy"])
            recorded = True
        size = sizer.next_size()
        if not recorded:
            reason = "no new control-arm labels since the last round: size unchanged"
        elif sizer.size != before:
            reason = (f"{sizer.policy}: accuracy gained per label over the last "
                      f"{sizer.rounds} rounds fell below min_gain={sizer.min_gain:g}; size "
                      f"{before} -> {sizer.size}")
        else:
            reason = f"{sizer.policy}: size {size}"
        return {"size": size, "policy": sizer.policy, "reason": reason,
                "labeled": n_labeled, "control_accuracy": acc["accuracy"]}

    def _audit(self, records: list[dict]) -> dict | None:
        if self.sketch is None:
            return None
        pools = self._pools()
        pool = pools[0]
        rows = [pool.row[x["item_id"]] for x in records if x["item_id"] in pool.row]
        if not rows or pool.embeddings is None:
            return None
        preds = np.argmax(pool.probs[rows], axis=1).astype(np.int64)
        report = self.sketch.audit(pool.embeddings[rows], preds)
        out = report.to_dict()
        out["items"] = len(rows)
        return _json_ready(out)

    def submit_labels(self, labels: Any) -> int:
        """Store labels (one transaction) and call ``on_update``.

        Parameters
        ----------
        labels : dict of item_id -> label, or list of label records
            Label records as in the workflow contract (``item_id``, ``value``, optional
            ``annotator``, ``at``, ``origin``, ``ambiguous``).

        Returns
        -------
        int
            Labels stored.
        """
        if isinstance(labels, Mapping):
            records = [{"item_id": str(i), "value": x} for i, x in labels.items()]
        elif isinstance(labels, Sequence) and not isinstance(labels, str):
            records = [dict(x) if isinstance(x, Mapping) else x for x in labels]
        else:
            raise InvalidInputError(f"labels must be a dict item_id -> label or a list of "
                                    f"label records, got {type(labels).__name__}")
        self._check_values(records)
        n = self.ledger.add_labels(records)
        if n and self.config.get("expert_review", True):
            self._expert_review({str(x["item_id"]) for x in records})
        if n:
            self._update()
        return n

    def _classes(self) -> set[str] | None:
        """Every class the sources know as text; None when a source names none (a
        StreamSource without classes=), i.e. nothing to check against."""
        out: set[str] = set()
        for source in self.sources.values():
            classes = getattr(source, "classes", None)
            if classes is None and isinstance(source, SynthesisSource):
                classes = source.pool.classes
            if classes is None:
                return None
            out.update(classes)
        return out

    def _check_values(self, records: list[Any]) -> None:
        """Refuse, before anything is stored, a label that is none of the classes (it
        would reach on_update as a training label) and a non-bool ``ambiguous``; an
        ambiguous label (a skip, an "unsure") may name no class."""
        classes = self._classes()
        for x in records:
            if not isinstance(x, dict):
                continue  # the ledger refuses it with its own message
            if "ambiguous" in x:
                x["ambiguous"] = v.flag(x["ambiguous"], "ambiguous")
            if classes is None or x.get("ambiguous") or x.get("value") is None:
                continue
            value = x["value"]
            if str(value) not in classes:
                raise InvalidInputError(
                    f"label of item {str(x.get('item_id'))!r} is {value!r}, which is not "
                    f"one of the classes ({', '.join(sorted(classes)[:20])}); pass one "
                    f"of them (as text), or ambiguous=True for no class. Nothing was "
                    f"stored")

    def _expert_review(self, item_ids: set[str]) -> None:
        """Send to the expert tier the items whose people disagree (two or more distinct
        labels) or that a person flagged ambiguous, unless an expert has labeled them."""
        disputed: dict[str, str] = {}
        for item_id in sorted(item_ids):
            xs = [x for x in self.ledger.labels(item_id) if x["origin"] != "auto"]
            if any(x["origin"] == "expert" for x in xs):
                continue
            values = sorted({x["value"] for x in xs})
            if len(values) > 1:
                disputed[item_id] = f"annotators disagree ({', '.join(values)})"
            elif any(x["ambiguous"] for x in xs):
                disputed[item_id] = "flagged ambiguous by an annotator"
        for reason in sorted(set(disputed.values())):
            self.ledger.route([i for i, r in disputed.items() if r == reason], "expert",
                              reason)

    def submit_label(self, item_id: Any, value: Any, *, annotator: str = "annotator",
                     at: float | None = None, origin: str = "annotator",
                     ambiguous: bool = False) -> int:
        """Store one label (see :meth:`submit_labels`)."""
        return self.submit_labels([{"item_id": str(item_id), "value": value,
                                    "annotator": str(annotator), "at": at, "origin": origin,
                                    "ambiguous": v.flag(ambiguous, "ambiguous")}])

    # ----------------------------------------------------------------- reporting
    @staticmethod
    def _accuracy(items: list[dict], labels: dict[str, str], *, control: bool) -> dict:
        done = [x for x in items if x["control"] == control and x["item_id"] in labels
                and x["tier"] != "auto" and x["prediction"] is not None]
        right = sum(labels[x["item_id"]] == x["prediction"] for x in done)
        by_round: dict[int, list[int]] = {}
        for x in done:
            r = by_round.setdefault(x["round"], [0, 0])
            r[0] += labels[x["item_id"]] == x["prediction"]
            r[1] += 1
        return {"labeled": len(done), "accuracy": right / len(done) if done else None,
                "by_round": {str(r): a / b for r, (a, b) in sorted(by_round.items())}}

    @staticmethod
    def _lift(selections: list[dict], items: list[dict], labels: dict[str, str],
              control: dict) -> tuple[dict, dict]:
        """The counterfactual's accuracy and the equal-labels ``lift`` (the module
        docstring's rule); adds the actual model's label count per round to ``control``."""
        model_labels: dict[str, int] = {}
        cf_labels: dict[str, int] = {}
        cf_prediction: dict[str, str] = {}
        for e in selections:
            r, payload = str(e["round"]), e["payload"]
            if "model_labels" in payload:
                model_labels[r] = int(payload["model_labels"])
            if "counterfactual" in payload:
                cf_labels[r] = int(payload["counterfactual_labels"])
                cf_prediction.update(payload["counterfactual"])
        control["labels_by_round"] = {r: model_labels.get(r) for r in control["by_round"]}
        done = [x for x in items if x["control"] and x["item_id"] in labels
                and x["item_id"] in cf_prediction]
        per_round: dict[str, list[int]] = {}
        for x in done:
            tally = per_round.setdefault(str(x["round"]), [0, 0])
            tally[0] += labels[x["item_id"]] == cf_prediction[x["item_id"]]
            tally[1] += 1
        counterfactual = {
            "labeled": len(done),
            "accuracy": (sum(a for a, _ in per_round.values()) / len(done)) if done else None,
            "by_round": {r: a / b for r, (a, b) in per_round.items()},
            "labels_by_round": {r: cf_labels[r] for r in per_round}}
        # The actual model's curve: control accuracy against its label count, rounds with
        # the same count averaged (np.interp needs increasing abscissae).
        curve: dict[int, list[float]] = {}
        for r, acc in control["by_round"].items():
            if model_labels.get(r) is not None:
                curve.setdefault(model_labels[r], []).append(acc)
        xs = sorted(curve)
        ys = [float(np.mean(curve[n])) for n in xs]
        diffs, weights = [], []
        for r, (_, n_items) in per_round.items():
            m = cf_labels[r]
            if xs and xs[0] <= m <= xs[-1]:
                diffs.append(float(np.interp(m, xs, ys)) - counterfactual["by_round"][r])
                weights.append(n_items)
        lift = float(np.average(diffs, weights=weights)) if diffs else None
        return counterfactual, {"lift": lift, "lift_rounds": len(diffs)}

    def status(self) -> dict:
        """A JSON-ready summary: budget, queue, labels per source, control-arm accuracy
        (with its per-round values and the lift), the last audit, batch-size and
        agreement decisions (the same as :meth:`status_of` on its ledger)."""
        return self.status_of(self.ledger)

    @classmethod
    def status_of(cls, ledger: str | os.PathLike | Ledger) -> dict:
        """:meth:`status` from a ledger alone (a path or an open :class:`Ledger`), without
        the sources: what ``alcore workflow status`` and ``alcore serve`` report."""
        if not isinstance(ledger, Ledger):
            with Ledger.open(ledger) as db:
                return cls.status_of(db)
        db = ledger
        config = db.state("config")
        if config is None:
            raise LedgerError(f"{db.path} holds no workflow (no config); create one with "
                              f"Workflow({str(db.path)!r}, budget=..., sources=...)")
        items = db.items()
        labels = _consensus(db.labels())
        queued = [x for x in items if x["status"] == "queued"]
        control = cls._accuracy(items, labels, control=True)
        selected = cls._accuracy(items, labels, control=False)
        counterfactual, lift = cls._lift(db.events("selection"), items, labels, control)
        per_source: dict[str, int] = {}
        for x in items:
            if x["item_id"] in labels:
                per_source[x["source"]] = per_source.get(x["source"], 0) + 1
        last = {kind: (None if e is None else e["payload"]) for kind, e in (
            (kind, db.last_event(kind)) for kind in ("audit", "batch_size", "agreement"))}
        spent = int(db.state("spent", 0))
        return {
            "ledger": str(db.path), "round": int(db.state("round", 0)),
            "budget": {"total": config["budget"], "spent": spent,
                       "left": config["budget"] - spent},
            "queue": {"size": len(queued), "by_tier": dict(Counter(x["tier"] for x in queued))},
            "labels": len(labels), "labels_per_source": per_source,
            "auto_labels": sum(x["tier"] == "auto" for x in items),
            "control_accuracy": control["accuracy"], "control": control,
            "selected_accuracy": selected["accuracy"],
            "counterfactual": counterfactual, **lift,
            "last_audit": last["audit"], "last_batch_size": last["batch_size"],
            "last_agreement": last["agreement"],
        }


def _json_ready(value: Any) -> Any:
    """Plain JSON values; non-finite floats become None (JSON has no NaN)."""
    if isinstance(value, dict):
        return {str(k): _json_ready(x) for k, x in value.items()}
    if isinstance(value, list | tuple):
        return [_json_ready(x) for x in value]
    if isinstance(value, np.ndarray):
        return _json_ready(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


__all__ = ["Workflow"]
