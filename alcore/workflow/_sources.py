"""The sources a :class:`alcore.workflow.Workflow` draws items from.

A source proposes up to ``n`` item records (the shared record of the workflow contract)
for one round, given a :class:`Round` context: the ids already in the ledger (labeled or
queued: covered, never proposed again), the current labels, the round's random generator
and whether agreement feedback asked for more diversity. Model outputs reach the sources
through :meth:`PoolSource.update` (the workflow calls it with what ``on_update`` returns);
a stream's outputs arrive with its items.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from alcore import _validation as v
from alcore._errors import InvalidInputError


@dataclass
class Round:
    """What the workflow tells a source about the round it proposes for."""

    round: int
    covered: set[str]
    """Item ids in the ledger (queued or labeled): never proposed again."""
    labels: dict[str, str]
    """Current label per labeled item id (the consensus of its annotators), as text."""
    rng: np.random.Generator
    diversity_boost: bool = False
    queue_depth: int = 0
    review_capacity: int | None = None
    notes: list[str] = field(default_factory=list)
    """Sentences a source adds about what it could not do (recorded in the selection
    event)."""


def _classes(classes: Any, c: int, name: str = "classes") -> list[str]:
    if classes is None:
        return [str(i) for i in range(c)]
    out = [str(x) for x in classes]
    if len(out) != c or len(set(out)) != c:
        raise InvalidInputError(f"{name} must name the {c} classes (columns of probs) once "
                                f"each, got {len(out)} names ({len(set(out))} distinct)")
    return out


def _item_data(data: Any, row: int, item_id: str) -> dict:
    if data is None:
        return {}
    value = data(item_id) if callable(data) else data[row]
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidInputError(f"data= must give a dict per item (what annotators see, e.g. "
                                f"{{'text': ...}}), got {type(value).__name__} for item "
                                f"{item_id!r}")
    return dict(value)


def checked_outputs(values: Any, logits: bool, shape: tuple[int, int], who: str) -> np.ndarray:
    """A model's new (N, C) outputs for a pool, refused unless they have the pool's shape
    and pass the engine's value checks (finite; probabilities in [0, 1] summing to 1): a
    NaN row would otherwise become a silent argmax-0 prediction."""
    from alcore.scores import least_confidence

    out = v.float_array(values, "probs")
    if out.shape != shape:
        raise InvalidInputError(f"{who} must return outputs of the pool's shape {shape} (one "
                                f"row per pool item), got {out.shape}")
    try:
        least_confidence(out, logits=logits)  # the native value checks, nothing kept
    except InvalidInputError as err:
        raise InvalidInputError(f"{who} returned invalid outputs: {err}") from None
    return out


class PoolSource:
    """Items of a pool chosen by :func:`alcore.select`.

    Items queued but not yet labeled are passed to ``select`` as ``labeled=`` with the
    labeled ones: they count as covered, so the next batch does not go back to the region
    a pending batch already covers.

    Parameters
    ----------
    pool : alcore.io.Pool or array-like of shape (N, C)
        A pool read by :func:`alcore.io.read_pool`, or the model's probabilities for every
        item (logits with ``logits=True``).
    embeddings : array-like of shape (N, d), optional, keyword-only
        The items' embeddings (needed by diversity, synthesis and the audit); a Pool's own
        when omitted.
    ids : array-like of shape (N,), optional
        Item ids (made text: ``str(id)``, unique); a Pool's ids, else ``0 .. N-1``.
    classes : sequence of C labels, optional
        Label text of each probability column (default ``"0" .. "C-1"``).
    score, diversity, candidates, logits
        Passed to :func:`alcore.select`.
    data : callable or sequence, optional
        What annotators see per item: ``data(item_id) -> dict`` or a sequence of dicts.
    expert_below : float, optional
        Picks whose model confidence (max probability) is below it go to the expert tier
        instead of the annotators (None: never).
    """

    kind = "pool"

    def __init__(self, pool: Any, *, embeddings: Any = None, ids: Any = None,
                 classes: Sequence[Any] | None = None, score: Any = "margin",
                 diversity: str | None = "auto", candidates: int | None = None,
                 logits: bool = False, data: Any = None, expert_below: float | None = None):
        from alcore.io import Pool

        if isinstance(pool, Pool):
            if pool.probs is None:
                raise InvalidInputError("pool has no probabilities (Pool.probs is None); "
                                        "read the pool with probs= naming its columns")
            probs = pool.probs
            embeddings = pool.embeddings if embeddings is None else embeddings
            ids = pool.ids if ids is None else ids
        else:
            probs = pool
        probs, _, _ = v.outputs_matrix(probs, logits)
        if probs.shape[0] == 0:
            raise InvalidInputError(f"pool must be probabilities of shape (N, C) with N >= 1, "
                                    f"got shape {probs.shape}")
        n, c = probs.shape
        self.logits = v.flag(logits, "logits")
        self.probs = probs
        self.embeddings = None if embeddings is None else self._embeddings(embeddings, n)
        raw = np.arange(n) if ids is None else v.as_numpy(ids, "ids")
        if raw.shape != (n,):
            raise InvalidInputError(f"ids must have shape ({n},) to match the pool, got "
                                    f"{raw.shape}")
        self.ids = [str(x) for x in raw.tolist()]
        self.row = {item_id: i for i, item_id in enumerate(self.ids)}
        if len(self.row) != n:
            raise InvalidInputError("ids must be unique (as text); found a repeated id")
        self.classes = _classes(classes, c)
        self.score, self.diversity, self.candidates = score, diversity, candidates
        self.data = data
        self.expert_below = (None if expert_below is None else v.number(
            expert_below, "expert_below", low=0.0, high=1.0))

    @staticmethod
    def _embeddings(embeddings: Any, n: int) -> np.ndarray:
        emb = v.embeddings_matrix(embeddings)
        if emb.shape[0] != n:
            raise InvalidInputError(f"embeddings must have {n} rows to match the pool, got "
                                    f"{emb.shape[0]}")
        return emb

    def __len__(self) -> int:
        return len(self.ids)

    def update(self, *, probs: Any = None, embeddings: Any = None) -> None:
        """New model outputs for the same N items (either or both)."""
        new_probs = None if probs is None else checked_outputs(
            probs, self.logits, self.probs.shape, "on_update")
        new_embeddings = None if embeddings is None else self._embeddings(embeddings,
                                                                           len(self.ids))
        # Both checked before either is kept: a rejected update changes nothing.
        if new_probs is not None:
            self.probs = new_probs
        if new_embeddings is not None:
            self.embeddings = new_embeddings

    def covered_mask(self, covered: set[str]) -> np.ndarray:
        mask = np.zeros(len(self.ids), dtype=bool)
        rows = [self.row[i] for i in covered if i in self.row]
        mask[rows] = True
        return mask

    def _prediction(self, row: int) -> tuple[str, float]:
        p = self.probs[row].astype(np.float64)
        if self.logits:
            p = np.exp(p - p.max())
            p /= p.sum()
        j = int(np.argmax(p))
        return self.classes[j], float(p[j])

    def record(self, row: int, *, source: str, reason: str, score: float | None,
               ctx: Round) -> dict:
        prediction, confidence = self._prediction(row)
        item_id = self.ids[row]
        expert = (source != "control" and self.expert_below is not None
                  and confidence < self.expert_below)
        if expert:
            reason += (f"; to an expert: model confidence {confidence:.3f} below "
                       f"expert_below={self.expert_below:g}")
        return {"item_id": item_id, "source": source, "round": ctx.round,
                "tier": "expert" if expert else "annotator", "reason": reason,
                "score": None if score is None or not np.isfinite(score) else float(score),
                "prediction": prediction, "confidence": confidence,
                "control": source == "control", "data": _item_data(self.data, row, item_id)}

    def select_options(self, boost: bool) -> dict[str, Any]:
        """The options of :func:`alcore.select` for this round. Agreement feedback's rule:
        with ``boost`` and embeddings, k-center runs over twice as many candidates (the
        best ``2 * candidates * k`` items, default 10k instead of 5k), and a top-k source
        becomes k-center over 5k: the batch spreads over a wider region."""
        options: dict[str, Any] = {"score": self.score, "diversity": self.diversity,
                                   "candidates": self.candidates}
        if boost and self.embeddings is not None:
            if self.diversity in ("auto", "kcenter"):
                options.update(diversity="kcenter", candidates=2 * (self.candidates or 5))
            elif self.diversity is None:
                options.update(diversity="kcenter", candidates=5)
        if options["diversity"] is not None and self.embeddings is None:
            options["diversity"] = None if options["diversity"] == "auto" else options[
                "diversity"]
        if options["diversity"] is None:
            options.pop("candidates")
        return options

    def propose(self, n: int, ctx: Round) -> list[dict]:
        """Up to n item records chosen by :func:`alcore.select` among the uncovered items."""
        from alcore._pipeline import select

        covered = self.covered_mask(ctx.covered)
        n = min(n, int((~covered).sum()))
        if n <= 0:
            ctx.notes.append("pool: every item is labeled or queued")
            return []
        options = {k: val for k, val in self.select_options(ctx.diversity_boost).items()
                   if val is not None or k == "diversity"}
        sel = select(self.probs, n, logits=self.logits, embeddings=self.embeddings,
                     labeled=covered, seed=ctx.rng, **options)
        return [self.record(int(i), source="pool", reason=reason, score=float(s), ctx=ctx)
                for i, reason, s in zip(sel.indices, sel.reasons, sel.scores, strict=True)]

    def random(self, n: int, ctx: Round) -> list[dict]:
        """n uncovered items drawn uniformly at random without replacement: the control
        arm."""
        free = np.flatnonzero(~self.covered_mask(ctx.covered))
        n = min(n, len(free))
        rows = ctx.rng.choice(free, size=n, replace=False) if n else free[:0]
        return [self.record(int(i), source="control", score=None, ctx=ctx,
                            reason=f"control arm: drawn uniformly at random from the "
                                   f"{len(free)} unlabeled, unqueued pool items")
                for i in rows]


class StreamSource:
    """Items of a live stream routed by an :class:`alcore.stream.Router`.

    Before routing, the workflow sets the router's queue depth to its review queue (items
    queued and not labeled) and, when the router has no ``queue_capacity``, gives it the
    workflow's ``review_capacity``: the router's queue-aware threshold rises as the queue
    fills, so fewer stream items reach annotators. ``auto_label`` items are recorded with
    the model's label (tier ``"auto"``, no budget spent), ``annotate`` items go to the
    annotators, ``expert`` items to the expert tier, ``skip`` items are dropped.

    Parameters
    ----------
    router : alcore.stream.Router
    stream : callable
        ``stream(m)`` returns the next at most m arrivals as ``(ids, probs)`` or
        ``(ids, probs, data)`` (ids of shape (m',), probs (m', C), data a list of dicts);
        m' = 0 when nothing is waiting.
    classes : sequence of C labels, optional
    max_items : int
        Arrivals read per round at most.
    utility : callable, optional
        The gate's custom utility function, if it has one: a saved gate state stores its
        name only, and :meth:`Workflow.resume` restores the gate with it.
    """

    kind = "stream"

    def __init__(self, router: Any, stream: Callable[[int], Any], *,
                 classes: Sequence[Any] | None = None, max_items: int = 10_000,
                 utility: Callable[..., Any] | None = None):
        from alcore.stream import Router

        if not isinstance(router, Router):
            raise InvalidInputError(f"router must be an alcore.stream.Router, got "
                                    f"{type(router).__name__}")
        if not callable(stream):
            raise InvalidInputError("stream must be a callable stream(m) -> (ids, probs); "
                                    f"got {type(stream).__name__}")
        self.router, self.stream = router, stream
        self.classes = None if classes is None else [str(c) for c in classes]
        self.max_items = v.count(max_items, "max_items")
        self.counts: dict[str, int] = {}
        self.utility = utility
        self._pending: tuple[list[str], np.ndarray, list] | None = None
        self._snapshot: tuple[dict, dict, dict] | None = None
        self._given: list[tuple[list[str], np.ndarray, list]] | None = None
        self._width: int | None = None

    def state(self) -> dict:
        """The gate's state and the arrivals held back for the next round (JSON) for the
        ledger."""
        pending = None
        if self._pending is not None:
            ids, probs, data = self._pending
            pending = {"ids": ids, "probs": probs.tolist(), "data": data}
        return {"gate": self.router.gate.to_json(), "counts": self.router.counts,
                "pending": pending}

    def restore(self, state: dict) -> None:
        """Put the gate and the held-back arrivals back as the ledger stored them (on
        resume)."""
        from alcore.stream import StreamGate

        self.router.gate = StreamGate.from_json(state["gate"], utility=self.utility)
        pending = state.get("pending")
        self._pending = None if pending is None else (
            list(pending["ids"]), np.asarray(pending["probs"], dtype=np.float64),
            list(pending["data"]) if pending["data"] is not None
            else [None] * len(pending["ids"]))
        if self._pending is not None:
            self._width = int(self._pending[1].shape[1])

    def _arrivals(self, m: int) -> tuple[list[str], np.ndarray, list]:
        """At most m arrivals ``(ids, probs, data)``, those held back from an earlier call
        first. A stream that answers stream(m) with more than m (a consumer that polls
        whole batches) has the rest held back for the next call, or the next round, never
        routed beyond the round's allotment and never dropped by a committed round (they go
        into the ledger with the source's state). A round that fails puts its arrivals
        back in memory for the retry; a process that dies after polling loses what it had
        polled and not committed, as any consumer of a stream that was not acknowledged."""
        if self._pending is not None:
            ids, probs, data = self._pending
        else:
            ids, probs, data = self._checked_poll(self.stream(m))
            width = self._width
            if len(ids) and width is not None and probs.shape[1] != width:
                raise InvalidInputError(f"stream(m) returned probs of {probs.shape[1]} "
                                        f"classes after {width}; every poll must give the "
                                        f"same C")
        if len(ids):
            self._width = probs.shape[1]
        self._pending = None
        if len(ids) > m:
            self._pending = (ids[m:], probs[m:], data[m:])
            ids, probs, data = ids[:m], probs[:m], data[:m]
        if self._given is not None:
            self._given.append((ids, probs, data))
        return ids, probs, data

    @staticmethod
    def _checked_poll(got: Any) -> tuple[list[str], np.ndarray, list]:
        """What stream(m) returned, checked whole before any of it is routed."""
        if not isinstance(got, tuple | list) or len(got) not in (2, 3):
            raise InvalidInputError(f"stream(m) must return (ids, probs) or (ids, probs, "
                                    f"data), got {type(got).__name__}"
                                    + (f" of length {len(got)}"
                                       if isinstance(got, tuple | list) else ""))
        raw_ids = got[0]
        if isinstance(raw_ids, str | bytes) or np.ndim(raw_ids) != 1:
            raise InvalidInputError(f"stream(m) ids must be a 1-D sequence of str or int ids, "
                                    f"got {type(raw_ids).__name__}"
                                    + ("" if isinstance(raw_ids, str | bytes)
                                       else f" with {np.ndim(raw_ids)} dimensions"))
        ids = []
        for j, x in enumerate(np.asarray(raw_ids, dtype=object).tolist()):
            if isinstance(x, bool) or not isinstance(x, str | int) or x == "":
                raise InvalidInputError(f"stream(m) ids[{j}] is {x!r}; ids must be non-empty "
                                        f"str or int")
            ids.append(str(x))
        if len(set(ids)) != len(ids):
            seen: set[str] = set()
            twice = next(i for i in ids if i in seen or seen.add(i))
            raise InvalidInputError(f"stream(m) returned id {twice!r} twice in one poll; "
                                    f"each arrival needs its own id")
        probs = v.float_array(got[1], "stream probs")
        if probs.ndim != 2 or probs.shape[0] != len(ids):
            if len(ids) == 0 and probs.size == 0:
                probs = probs.reshape(0, 0)
            else:
                raise InvalidInputError(f"stream(m) must return ids of shape (m',) and probs "
                                        f"of shape (m', C), got {len(ids)} ids and probs of "
                                        f"shape {probs.shape}")
        bad = np.argwhere(~np.isfinite(probs))
        if len(bad):
            row, col = (int(x) for x in bad[0])
            raise InvalidInputError(f"stream(m) returned probs row {row}, column {col} = "
                                    f"{probs[row, col]}; the stream's outputs must be finite")
        raw_data = got[2] if len(got) == 3 else None
        if raw_data is None:
            return ids, probs, [None] * len(ids)
        if not isinstance(raw_data, list | tuple) or len(raw_data) != len(ids):
            shown = (f"{len(raw_data)} entries" if isinstance(raw_data, list | tuple)
                     else type(raw_data).__name__)
            raise InvalidInputError(f"stream(m) data must be a list with one dict (or None) "
                                    f"per arrival, got {shown} for {len(ids)} ids")
        for j, entry in enumerate(raw_data):
            if entry is not None and not isinstance(entry, Mapping):
                raise InvalidInputError(f"stream(m) data[{j}] must be a dict or None, got "
                                        f"{type(entry).__name__}")
            try:
                json.dumps(entry, allow_nan=False)
            except (TypeError, ValueError) as err:
                raise InvalidInputError(
                    f"stream(m) data[{j}] must hold JSON values only (str, int, finite "
                    f"float, bool, None, lists and dicts; convert numpy scalars with "
                    f".item()): {err}") from None
        return ids, probs, list(raw_data)

    def begin_round(self) -> None:
        """Remember the gate and the arrivals handed out from here on, so that a round
        the workflow does not commit can be undone (:meth:`rollback`)."""
        self._snapshot = (self.router.gate.to_json(), self.router.counts, dict(self.counts))
        self._given = []

    def rollback(self) -> None:
        """Undo the round since :meth:`begin_round`: every arrival handed out held back
        again, in order and once each, ahead of those still held; the counts and the gate
        as they were (restored into the same gate object, so a caller holding it sees the
        state the ledger has)."""
        from alcore.stream import StreamGate

        if self._snapshot is None:
            return
        gate, router_counts, counts = self._snapshot
        chunks = (self._given or []) + ([self._pending] if self._pending is not None else [])
        ids, rows, data, seen = [], [], [], set()
        for chunk_ids, chunk_probs, chunk_data in chunks:
            for j, item in enumerate(chunk_ids):
                if item not in seen:  # a repeat was skipped as covered in the failed round
                    seen.add(item)
                    ids.append(item)
                    rows.append(chunk_probs[j])
                    data.append(chunk_data[j])
        self._pending = (ids, np.array(rows), data) if ids else None
        self.counts = counts
        with self.router._lock:  # Router has no setter: its counts are its own bookkeeping
            self.router._counts = dict(router_counts)
        self._snapshot = self._given = None
        live = self.router.gate
        utility = self.utility if self.utility is not None else live._custom
        live.__dict__.update(StreamGate.from_json(gate, utility=utility).__dict__)

    def propose(self, n: int, ctx: Round) -> tuple[list[dict], list[dict]]:
        """(human records, auto-labelled records) from the stream's next arrivals."""
        router = self.router
        if router.queue_capacity is None and ctx.review_capacity is not None:
            router.queue_capacity = ctx.review_capacity
        router.set_queue_depth(ctx.queue_depth)
        human: list[dict] = []
        auto: list[dict] = []
        seen = 0
        while len(human) < n and seen < self.max_items:
            ids, probs, data = self._arrivals(min(n - len(human), self.max_items - seen))
            if len(ids) == 0:
                break
            seen += len(ids)
            known = np.array([i in ctx.covered for i in ids], dtype=bool)
            routes = router.route_many(probs, exclude=known)
            classes = _classes(self.classes, probs.shape[1])
            for j, route in enumerate(routes.tolist()):
                self.counts[route] = self.counts.get(route, 0) + 1
                if route == "skip":
                    continue
                p = probs[j].astype(np.float64)
                if router.gate.logits:
                    p = np.exp(p - p.max())
                    p /= p.sum()
                c = int(np.argmax(p))
                tier = {"auto_label": "auto", "annotate": "annotator", "expert": "expert"}[
                    route]
                rec = {"item_id": ids[j], "source": "stream", "round": ctx.round,
                       "tier": tier, "score": float(1.0 - p[c]), "prediction": classes[c],
                       "confidence": float(p[c]), "control": False,
                       "data": dict(data[j] or {}),
                       "reason": (f"stream: routed {route} by the gate (max probability "
                                  f"{p[c]:.3f}, queue threshold "
                                  f"{router.queue_threshold:.3f} at depth "
                                  f"{ctx.queue_depth})")}
                ctx.covered.add(ids[j])
                (auto if tier == "auto" else human).append(rec)
        return human, auto


class SynthesisSource:
    """Real pool items nearest to validated synthetic queries.

    Each round: synthetic points from :func:`alcore.synthesis.minority` (SMOTE over the
    labeled items' embeddings and labels, toward the rare classes) or
    :func:`alcore.synthesis.boundary` (on the model's decision boundary, which needs
    ``predict_proba``), checked by :func:`alcore.synthesis.validate` against the pool, and
    mapped by :func:`alcore.synthesis.nearest_real` with ``unique=True`` to distinct pool
    items that are neither labeled nor queued; those are proposed.

    Parameters
    ----------
    pool : PoolSource
        The pool whose embeddings, ids and classes it uses (it needs embeddings).
    method : {"minority", "boundary"}
    predict_proba : callable, optional
        ``predict_proba(points (m, d)) -> (m, C)``: needed by ``"boundary"``.
    k : int
        SMOTE's neighbours (``"minority"``).
    variant : {"smote", "borderline"}
    """

    kind = "synthesis"

    def __init__(self, pool: PoolSource, *, method: str = "minority",
                 predict_proba: Callable[[np.ndarray], Any] | None = None, k: int = 5,
                 variant: str = "smote"):
        if not isinstance(pool, PoolSource):
            raise InvalidInputError(f"pool must be a PoolSource, got {type(pool).__name__}")
        if pool.embeddings is None:
            raise InvalidInputError("SynthesisSource needs a PoolSource with embeddings=; "
                                    "pass the pool's embeddings")
        self.pool = pool
        self.method = v.choice(method, "method", ("minority", "boundary"))
        if self.method == "boundary" and not callable(predict_proba):
            raise InvalidInputError("method='boundary' needs predict_proba= (a callable "
                                    "points -> probabilities)")
        self.predict_proba = predict_proba
        self.k = v.count(k, "k")
        self.variant = v.choice(variant, "variant", ("smote", "borderline"))

    def propose(self, n: int, ctx: Round) -> list[dict]:
        from alcore import synthesis

        pool = self.pool
        emb = pool.embeddings
        covered = pool.covered_mask(ctx.covered)
        free = int((~covered).sum())
        n = min(n, free)
        if n <= 0:
            return []
        try:
            if self.method == "minority":
                rows = [pool.row[i] for i in ctx.labels if i in pool.row]
                if len(rows) < 2:
                    ctx.notes.append("synthesis: fewer than 2 labeled pool items, no "
                                     "minority points yet")
                    return []
                labels = np.array([ctx.labels[pool.ids[r]] for r in rows], dtype=object)
                labels = labels.astype(str)
                points = synthesis.minority(emb[rows], labels, n, k=self.k,
                                            variant=self.variant, seed=ctx.rng)
                provenance = np.asarray(rows, dtype=np.int64)[points.source]
            else:
                points = synthesis.boundary(emb, self.predict_proba, n, seed=ctx.rng)
                provenance = points.source
            if len(points) == 0:
                ctx.notes.append(f"synthesis: no points ({points.shortfall})")
                return []
            report = synthesis.validate(points, emb, seed=ctx.rng)
            keep = np.flatnonzero(report.keep)
            if len(keep) == 0:
                ctx.notes.append("synthesis: no synthetic point passed validation")
                return []
            keep = keep[:min(len(keep), free)]
            near = synthesis.nearest_real(points.points[keep], emb, labeled=covered,
                                          unique=True)
        except InvalidInputError as err:
            ctx.notes.append(f"synthesis: {err}")
            return []
        out = []
        for j, row, dist in zip(keep.tolist(), near.indices[:, 0].tolist(),
                                near.distances[:, 0].tolist(), strict=True):
            a, b = (pool.ids[int(x)] for x in provenance[j])
            out.append(pool.record(
                int(row), source="synthesis", score=None, ctx=ctx,
                reason=(f"synthesis: nearest unlabeled real item (distance {dist:.4g}) to "
                        f"a validated {points.method} point between items {a} and {b} "
                        f"(lam {points.lam[j]:.3f})")))
        return out[:n]


__all__ = ["PoolSource", "Round", "StreamSource", "SynthesisSource"]
