"""The hybrid workflow: budget, control arm, coverage of queued items, allocation,
routing, agreement feedback, status and exact resume."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import alcore
from alcore import InvalidInputError
from alcore.workflow import (
    Ledger,
    LedgerError,
    PoolSource,
    StreamSource,
    SynthesisSource,
    Workflow,
)
from alcore.workflow._sources import Round

N, C, D = 300, 3, 6


def make_pool(seed: int = 0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, C, N)
    centres = rng.normal(size=(C, D)) * 2.5
    emb = (centres[y] + rng.normal(size=(N, D))).astype(np.float32)
    return emb, y


def centroid_probs(emb: np.ndarray, labels: dict[str, str]) -> np.ndarray:
    """A tiny deterministic model: softmax of minus the distance to each class's centroid
    of the labeled items (uniform before a class has a label)."""
    out = np.zeros((len(emb), C))
    for c in range(C):
        rows = [int(i) for i, x in labels.items() if x == str(c)]
        if rows:
            out[:, c] = -np.linalg.norm(emb - emb[rows].mean(axis=0), axis=1)
        else:
            out[:, c] = -10.0
    out = np.exp(out - out.max(axis=1, keepdims=True))
    return out / out.sum(axis=1, keepdims=True)


class Loop:
    def __init__(self, tmp_path, name="w.db", **options):
        self.emb, self.y = make_pool()
        self.path = tmp_path / name
        self.updates = 0
        self.options = options

    def on_update(self, labels):
        self.updates += 1
        return {"probs": centroid_probs(self.emb, labels)}

    def sources(self, **pool_options):
        return [PoolSource(centroid_probs(self.emb, {}), embeddings=self.emb, **pool_options)]

    def workflow(self, **extra):
        options = {"budget": 60, **self.options, **extra}
        return Workflow(self.path, sources=self.sources(), on_update=self.on_update,
                        **options)

    def label_all(self, wf, records):
        wf.submit_labels({x["item_id"]: str(self.y[int(x["item_id"])]) for x in records})


def test_batch_is_queued_with_reasons_and_control_share_exact(tmp_path):
    loop = Loop(tmp_path)
    with loop.workflow(budget=100) as wf:
        batch = wf.next_batch(20)
        assert len(batch) == 20
        control = [x for x in batch if x["control"]]
        assert len(control) == 2 and all(x["source"] == "control" for x in control)
        assert all(x["reason"] and x["prediction"] in {"0", "1", "2"} for x in batch)
        assert [x["item_id"] for x in wf.ledger.queued()] == [x["item_id"] for x in batch]
        sel = wf.ledger.events("selection")
        assert len(sel) == 1 and set(sel[0]["payload"]["reasons"]) == {
            x["item_id"] for x in batch}
        for k, expected in ((7, 1), (15, 2), (4, 0), (5, 1)):  # round(0.1 k), half up
            assert sum(x["control"] for x in wf.next_batch(k)) == expected


def test_control_arm_is_uniform_over_the_unqueued_pool(tmp_path):
    """The control draw equals a uniform draw without replacement (the reference below)
    from the items neither labeled nor queued, with the round's generator."""
    loop = Loop(tmp_path, control_share=0.5)
    with loop.workflow(budget=200, seed=3) as wf:
        seen: set[str] = set()
        for r in range(1, 6):
            batch = wf.next_batch(10)
            free = np.array([i for i in range(N) if str(i) not in seen])
            expected = np.random.default_rng([3, r]).choice(free, size=5, replace=False)
            assert [x["item_id"] for x in batch if x["control"]] == [str(i) for i in expected]
            seen |= {x["item_id"] for x in batch}
    # uniform: over many draws every item is about equally likely (not the uncertain ones)
    counts = np.zeros(N)
    for r in range(400):
        counts[np.random.default_rng([3, r]).choice(np.arange(N), 5, replace=False)] += 1
    chi2 = ((counts - counts.mean()) ** 2 / counts.mean()).sum()  # ~ N - 1 if uniform
    assert abs(chi2 - (N - 1)) < 4 * np.sqrt(2 * (N - 1))


def test_queued_items_are_covered_never_reselected(tmp_path):
    loop = Loop(tmp_path)
    with loop.workflow(budget=N) as wf:
        ids = [x["item_id"] for _ in range(8) for x in wf.next_batch(30)]
        assert len(ids) == len(set(ids)) == 240


def test_queued_items_are_passed_to_select_as_labeled(tmp_path):
    """Reference: alcore.select called directly with the queued (unlabeled) items as
    labeled= and the round's generator gives the workflow's second batch."""
    loop = Loop(tmp_path, control_share=0.0)
    with loop.workflow(budget=100, seed=4) as wf:
        first = wf.next_batch(15)
        second = wf.next_batch(15)
    queued = np.zeros(N, dtype=bool)
    queued[[int(x["item_id"]) for x in first]] = True
    expected = alcore.select(centroid_probs(loop.emb, {}), 15, embeddings=loop.emb,
                             labeled=queued, seed=np.random.default_rng([4, 2]))
    assert [int(x["item_id"]) for x in second] == expected.indices.tolist()
    assert [x["reason"] for x in second] == expected.reasons
    # without the queued items as covered, k-center would start elsewhere
    uncovered = alcore.select(centroid_probs(loop.emb, {}), 15, embeddings=loop.emb,
                              labeled=None, seed=np.random.default_rng([4, 2]))
    assert uncovered.indices.tolist() != expected.indices.tolist()


@settings(max_examples=20, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(budget=st.integers(1, 80), ks=st.lists(st.integers(1, 40), min_size=1, max_size=6),
       share=st.sampled_from([0.0, 0.1, 0.25, 0.5]))
def test_budget_and_control_share_property(tmp_path, budget, ks, share):
    path = tmp_path / f"p{budget}-{len(ks)}-{share}-{sum(ks)}.db"
    path.unlink(missing_ok=True)
    emb, y = make_pool()
    pool = PoolSource(centroid_probs(emb, {}), embeddings=emb, diversity=None)
    with Workflow(path, budget=budget, sources=[pool], control_share=share) as wf:
        spent = 0
        for k in ks:
            batch = wf.next_batch(k)
            want = min(k, budget - spent)
            assert len(batch) == want
            assert sum(x["control"] for x in batch) == int(np.floor(share * want + 0.5))
            spent += want
            wf.submit_labels({x["item_id"]: str(y[int(x["item_id"])]) for x in batch[::2]})
            assert wf.spent == spent <= budget
    path.unlink()


def test_budget_is_never_exceeded(tmp_path):
    loop = Loop(tmp_path)
    with loop.workflow(budget=37) as wf:
        total = 0
        while True:
            batch = wf.next_batch(10)
            if not batch:
                break
            total += len(batch)
            loop.label_all(wf, batch)
            assert wf.spent <= 37
        assert total == 37 and wf.status()["budget"] == {"total": 37, "spent": 37, "left": 0}
        assert wf.next_batch(5) == []


def test_default_batch_size_from_batch_sizer_recorded_with_reason(tmp_path):
    loop = Loop(tmp_path)
    sizer = alcore.BatchSizer(N, "plateau", size=10, min_gain=1.0, rounds=1,
                              max_fraction=0.5)
    with loop.workflow(budget=200, batch_sizer=sizer) as wf:
        sizes = []
        for _ in range(4):
            batch = wf.next_batch()
            sizes.append(len(batch))
            loop.label_all(wf, batch)
        events = wf.ledger.events("batch_size")
        assert len(events) == 4 and all(e["payload"]["reason"] for e in events)
        # min_gain=1 per label cannot be met: plateau doubles the size once two rounds
        # of control-arm accuracy are recorded
        assert sizes[0] == 10 and sizes[-1] > sizes[0]
        assert any("->" in e["payload"]["reason"] for e in events)


def test_status_is_json_ready_and_control_accuracy_unbiased(tmp_path):
    loop = Loop(tmp_path, control_share=0.3)
    with loop.workflow(budget=90) as wf:
        for _ in range(3):
            batch = wf.next_batch(30)
            loop.label_all(wf, batch)
        status = wf.status()
        json.dumps(status)
        items = wf.ledger.items()
        control = [x for x in items if x["control"]]
        right = [x["prediction"] == str(loop.y[int(x["item_id"])]) for x in control]
        assert status["control_accuracy"] == pytest.approx(np.mean(right))
        assert status["control"]["labeled"] == len(control) == 27
        assert status["labels_per_source"] == {"control": 27, "pool": 63}
        assert status["queue"]["size"] == 0 and status["labels"] == 90
        assert set(status["control"]["by_round"]) == {"1", "2", "3"}
        assert status["control"]["labels_by_round"] == {"1": 0, "2": 30, "3": 60}
        # No counterfactual= model: nothing to compare with (tests/test_workflow_lift.py).
        assert status["lift"] is None and status["counterfactual"]["labeled"] == 0
        assert loop.updates == 3
    assert Workflow.status_of(loop.path) == status
    with pytest.raises(LedgerError, match="holds no workflow"):
        Ledger.open(tmp_path / "empty.db", create=True).close()
        Workflow.status_of(tmp_path / "empty.db")


def test_unknown_label_refused_nothing_written(tmp_path):
    loop = Loop(tmp_path)
    with loop.workflow() as wf:
        batch = wf.next_batch(5)
        with pytest.raises(LedgerError, match="unknown item '299'"):
            wf.submit_labels({batch[0]["item_id"]: "1", "299": "0"})
        assert wf.ledger.labels() == [] and loop.updates == 0
        wf.submit_label(batch[0]["item_id"], 1, annotator="ann")
        assert wf.ledger.labels()[0]["annotator"] == "ann" and loop.updates == 1


@pytest.mark.parametrize(("options", "match"), [
    ({"budget": 0}, "budget must be >= 1"),
    ({"control_share": 1.0}, "control_share must be < 1"),
    ({"allocation": "greedy"}, "allocation must be one of 'fixed', 'adaptive'"),
    ({"shares": [1, 2]}, r"shares must have one share per source \(1: \['pool'\]\), got 2"),
    ({"shares": [0]}, "shares must be > 0"),
    ({"review_capacity": 0}, "review_capacity must be a positive integer"),
    ({"agreement_threshold": 2}, "agreement_threshold must be <= 1"),
    ({"seed": -1}, "seed must be >= 0"),
    ({"batch_sizer": 5}, "batch_sizer must be an alcore.BatchSizer"),
])
def test_bad_options_are_refused_before_any_file(tmp_path, options, match):
    loop = Loop(tmp_path)
    with pytest.raises(alcore.InvalidInputError, match=match):
        loop.workflow(**options)
    assert not loop.path.exists()


def test_bad_sources_refused(tmp_path):
    with pytest.raises(alcore.InvalidInputError, match="sources is empty"):
        Workflow(tmp_path / "w.db", budget=5, sources=[])
    with pytest.raises(alcore.InvalidInputError, match="source 'list' must be a PoolSource"):
        Workflow(tmp_path / "w.db", budget=5, sources=[[1]])
    with pytest.raises(alcore.InvalidInputError, match="embeddings must have 300 rows"):
        PoolSource(np.full((N, C), 1 / C), embeddings=np.zeros((5, 2)))
    with pytest.raises(alcore.InvalidInputError, match="ids must be unique"):
        PoolSource(np.full((2, C), 1 / C), ids=["a", "a"])


def test_config_mismatch_refused(tmp_path):
    loop = Loop(tmp_path)
    loop.workflow(budget=50).close()
    with pytest.raises(LedgerError, match=r"budget is 50, not 51.*Workflow.resume"):
        loop.workflow(budget=51)
    with pytest.raises(LedgerError, match=r"sources .* do not match"):
        Workflow.resume(loop.path, sources=[PoolSource(np.full((5, C), 1 / C))])


def _run(tmp_path, name, rounds, *, crash_after=None):
    loop = Loop(tmp_path, name=name)
    wf = loop.workflow(budget=200, seed=11)
    batches = []
    for r in range(rounds):
        if crash_after is not None and r == crash_after:
            wf.close()  # "crash": the process is gone; only the ledger remains
            wf = Workflow.resume(loop.path, sources=loop.sources(),
                                 on_update=loop.on_update)
        batch = wf.next_batch(12)
        batches.append([(x["item_id"], x["reason"], x["control"]) for x in batch])
        loop.label_all(wf, batch[: len(batch) - r % 3])  # some stay queued
    wf.close()
    return batches


def test_resume_continues_exactly(tmp_path):
    straight = _run(tmp_path, "a.db", 6)
    resumed = _run(tmp_path, "b.db", 6, crash_after=3)
    assert straight == resumed
    # constructing Workflow on an existing ledger with the same config resumes it too
    loop = Loop(tmp_path, name="b.db")
    with loop.workflow(budget=200, seed=11) as wf:
        assert wf.round == 6


def test_agreement_feedback_raises_diversity(tmp_path):
    loop = Loop(tmp_path, control_share=0.0)
    with loop.workflow(budget=100, agreement_threshold=0.5) as wf:
        batch = wf.next_batch(10)
        # two annotators who never agree
        wf.submit_labels([{"item_id": x["item_id"], "annotator": a, "value": str(v)}
                          for j, x in enumerate(batch)
                          for a, v in (("a", j % 3), ("b", (j + 1) % 3))])
        wf.next_batch(10)
        event = wf.ledger.last_event("agreement")
        assert event["payload"]["boost"] is True
        assert event["payload"]["krippendorff_alpha"] < 0.5
        assert wf.ledger.last_event("selection")["payload"]["diversity_boost"] is True
    source = loop.sources()[0]
    assert source.select_options(True) == {"score": "margin", "diversity": "kcenter",
                                           "candidates": 10}
    assert source.select_options(False) == {"score": "margin", "diversity": "auto",
                                            "candidates": None}


def test_agreeing_annotators_keep_diversity(tmp_path):
    loop = Loop(tmp_path, control_share=0.0)
    with loop.workflow(budget=100, agreement_threshold=0.5) as wf:
        batch = wf.next_batch(10)
        wf.submit_labels([{"item_id": x["item_id"], "annotator": a,
                           "value": str(loop.y[int(x["item_id"])])}
                          for x in batch for a in ("a", "b")])
        wf.next_batch(10)
        assert wf.ledger.last_event("agreement")["payload"]["boost"] is False


def test_adaptive_allocation_favours_the_surprising_source(tmp_path):
    emb, _y = make_pool()
    probs = centroid_probs(emb, {})
    sources = {"margin": PoolSource(probs, embeddings=emb, diversity=None),
               "entropy": PoolSource(probs, embeddings=emb, diversity=None, score="entropy")}
    with Workflow(tmp_path / "w.db", budget=200, sources=sources, allocation="adaptive",
                  control_share=0.0) as wf:
        first = wf.next_batch(20)
        by = wf.ledger.last_event("selection")["payload"]["by_source"]
        assert {k: len(x) for k, x in by.items()} == {"margin": 10, "entropy": 10}
        # labels that contradict every "margin" prediction and confirm every "entropy" one
        labels = {}
        for x in first:
            pred = int(x["prediction"])
            labels[x["item_id"]] = str(pred if x["item_id"] in by["entropy"] else (pred + 1) % C)
        wf.submit_labels(labels)
        wf.next_batch(20)
        payload = wf.ledger.last_event("selection")["payload"]
        w = payload["weights"]
        # weights: 0.5 * (0.05 + 1) against 0.5 * (0.05 + 0), normalised
        assert w["margin"] == pytest.approx(1.05 / 1.10)
        assert payload["allotted"] == {"margin": 19, "entropy": 1}


def test_stream_source_routes_and_queue_depth_reacts(tmp_path):
    rng = np.random.default_rng(0)
    counter = iter(range(10**6))

    def stream(m):
        ids = [f"s{next(counter)}" for _ in range(m)]
        p = rng.dirichlet(np.ones(C) * 0.7, size=m)
        p[:m // 4] = [0.995, 0.004, 0.001]  # confident: auto-labelled
        return ids, p

    gate = alcore.stream.StreamGate("fixed", 1.0)
    router = alcore.stream.Router(gate, auto_label_at=0.99, expert_at=0.55)
    emb, _ = make_pool()
    pool = PoolSource(centroid_probs(emb, {}), embeddings=emb)
    src = StreamSource(router, stream, max_items=200)
    with Workflow(tmp_path / "w.db", budget=500, sources={"stream": src, "pool": pool},
                  shares=[0.9, 0.1], review_capacity=20, control_share=0.0) as wf:
        batch = wf.next_batch(20)
        assert router.queue_capacity == 20
        tiers = {x["tier"] for x in batch if x["source"] == "stream"}
        assert tiers <= {"annotator", "expert"} and "annotator" in tiers
        autos = [x for x in wf.ledger.labels() if x["origin"] == "auto"]
        assert autos and all(x["annotator"] == "model" for x in autos)
        assert all(wf.ledger.item(x["item_id"])["tier"] == "auto" for x in autos)
        assert wf.status()["auto_labels"] == len(autos)
        assert wf.spent == 20  # auto-labels spend no budget
        assert wf.ledger.state("source:stream")["gate"]
        # the queue (20 unlabeled items) is at capacity: the router's threshold is 1
        assert router.queue_threshold == 0.0
        wf.next_batch(20)
        assert router.queue_threshold == 1.0


def test_stream_source_never_routes_more_than_it_asked_for():
    """A stream that answers stream(m) with whole polled batches (7 arrivals whatever m):
    the source routes at most the m it asked for and holds the rest back, in order, for
    the next call and the next round, through the ledger's saved state too."""
    counter = iter(range(10**6))
    asked = []

    def stream(m):
        asked.append(m)
        ids = [f"s{next(counter)}" for _ in range(7)]
        return ids, np.full((7, C), 1.0 / C), [{"n": i} for i in ids]

    def source():  # every arrival goes to the annotators
        gate = alcore.stream.StreamGate("fixed", 1.0)
        return StreamSource(alcore.stream.Router(gate, auto_label_at=None), stream)

    def ctx(round_):
        return Round(round=round_, covered=set(), labels={}, rng=np.random.default_rng(0))

    src = source()
    human, auto = src.propose(3, ctx(1))
    assert [x["item_id"] for x in human] == ["s0", "s1", "s2"] and auto == []
    assert asked == [3]
    state = json.loads(json.dumps(src.state()))  # as the ledger stores it
    assert state["pending"]["ids"] == ["s3", "s4", "s5", "s6"]
    resumed = source()
    resumed.restore(state)
    human, _ = resumed.propose(5, ctx(2))
    # The four held back first, then one of a new poll: nothing lost, nothing twice.
    assert [x["item_id"] for x in human] == ["s3", "s4", "s5", "s6", "s7"]
    assert [x["data"] for x in human] == [{"n": f"s{i}"} for i in range(3, 8)]
    assert asked == [3, 1]
    assert resumed.state()["pending"]["ids"] == [f"s{i}" for i in range(8, 14)]


def test_stream_source_refuses_non_finite_arrivals():
    def stream(m):
        p = np.full((4, C), 1.0 / C)
        p[2, 1] = np.nan
        return ["a", "b", "c", "d"], p

    gate = alcore.stream.StreamGate("fixed", 1.0)
    src = StreamSource(alcore.stream.Router(gate, auto_label_at=None), stream)
    with pytest.raises(InvalidInputError, match=r"^stream\(m\) returned probs row 2, "
                                                r"column 1 = nan; the stream's outputs must "
                                                r"be finite$"):
        src.propose(2, Round(round=1, covered=set(), labels={},
                             rng=np.random.default_rng(0)))
    assert src.state()["pending"] is None


def _refused_round(wf, monkeypatch, k):
    """next_batch(k) with the ledger refusing the round's write (as when another process
    queued one of its items meanwhile), after every source has proposed."""
    def refused(*args, **kwargs):
        raise LedgerError("item 's1' is already in the ledger")

    with monkeypatch.context() as patch:
        patch.setattr(wf.ledger, "queue", refused)
        with pytest.raises(LedgerError, match="already in the ledger"):
            wf.next_batch(k)


def test_a_round_not_committed_gives_its_stream_arrivals_back(tmp_path, monkeypatch):
    """next_batch refused after the stream was polled (here: the ledger refuses the
    round's write, as when another process queued one of its items meanwhile): the gate
    and every polled arrival are put back, so the retry routes the same items and none is
    lost."""
    counter = iter(range(10**6))

    def stream(m):
        ids = [f"s{next(counter)}" for _ in range(7)]
        return ids, np.full((7, C), 1.0 / C)

    gate = alcore.stream.StreamGate("fixed", 1.0)
    src = StreamSource(alcore.stream.Router(gate, auto_label_at=None), stream)
    emb, _ = make_pool()
    pool = PoolSource(centroid_probs(emb, {}), embeddings=emb)
    path = tmp_path / "w.db"
    with Workflow(path, budget=100, sources={"stream": src, "pool": pool},
                  shares=[0.5, 0.5], control_share=0.0) as wf:
        gate_before, counts_before = src.router.gate.to_json(), src.router.counts
        events = wf.ledger.events()
        _refused_round(wf, monkeypatch, 6)
        assert wf.ledger.events() == events
        assert src.router.gate.to_json() == gate_before and src.router.counts == counts_before
        batch = wf.next_batch(6)
        assert [x["item_id"] for x in batch if x["source"] == "stream"] == ["s0", "s1", "s2"]
        assert wf.ledger.state("source:stream")["pending"]["ids"] == ["s3", "s4", "s5", "s6"]


def test_rollback_keeps_a_repeated_arrival_once_and_the_gate_object(tmp_path, monkeypatch):
    """One arrival polled twice in a failed round (skipped as covered the second time) is
    held back once, so the retry can queue; a gate with a custom utility, given without
    utility=, is restored into the caller's own gate object."""
    polls = iter([["a"], ["a"], ["b"], ["c"], ["d"], ["e"]])

    def stream(m):
        ids = next(polls, [])
        return ids, np.full((len(ids), C), 1.0 / C)

    def flat(p):
        return 1.0 - p.max()

    gate = alcore.stream.StreamGate("fixed", 1.0, utility=flat)
    src = StreamSource(alcore.stream.Router(gate, auto_label_at=None), stream)
    emb, _ = make_pool()
    pool = PoolSource(centroid_probs(emb, {}), embeddings=emb)
    with Workflow(tmp_path / "w.db", budget=100, sources={"stream": src, "pool": pool},
                  shares=[0.5, 0.5], control_share=0.0) as wf:
        before = gate.to_json()
        _refused_round(wf, monkeypatch, 6)
        assert src.router.gate is gate and gate.to_json() == before
        assert src.state()["pending"]["ids"] == ["a", "b", "c"]
        batch = wf.next_batch(6)
        assert [x["item_id"] for x in batch if x["source"] == "stream"] == ["a", "b", "c"]


def test_resumed_stream_refuses_another_class_count(tmp_path):
    counter = iter(range(10**6))
    width = {"C": C}

    def stream(m):
        ids = [f"s{next(counter)}" for _ in range(7)]
        return ids, np.full((7, width["C"]), 1.0 / width["C"])

    def sources():
        gate = alcore.stream.StreamGate("fixed", 1.0)
        emb, _ = make_pool()
        return {"stream": StreamSource(alcore.stream.Router(gate, auto_label_at=None),
                                       stream),
                "pool": PoolSource(centroid_probs(emb, {}), embeddings=emb)}

    path = tmp_path / "w.db"
    with Workflow(path, budget=100, sources=sources(), shares=[0.5, 0.5],
                  control_share=0.0) as wf:
        wf.next_batch(6)
    width["C"] = C + 1
    with Workflow.resume(path, sources=sources()) as wf:
        held = wf.sources["stream"].state()["pending"]
        with pytest.raises(InvalidInputError, match=r"stream\(m\) returned probs of 4 "
                                                    r"classes after 3; every poll must give "
                                                    r"the same C"):
            wf.next_batch(16)
        assert wf.sources["stream"].state()["pending"] == held


def _poll_of(got):
    gate = alcore.stream.StreamGate("fixed", 1.0)
    src = StreamSource(alcore.stream.Router(gate, auto_label_at=None), lambda m: got)
    return src.propose(2, Round(round=1, covered=set(), labels={},
                                rng=np.random.default_rng(0)))


P2 = np.full((2, C), 1.0 / C)


@pytest.mark.parametrize(("got", "message"), [
    (["a", "b"], r"stream\(m\) ids must be a 1-D sequence of str or int ids, got str"),
    ((["a", "b"],), r"got tuple of length 1"),
    (5, r"must return \(ids, probs\) or \(ids, probs, data\), got int$"),
    (("ab", P2), r"stream\(m\) ids must be a 1-D sequence of str or int ids, got str"),
    ((np.array([["a", "b"], ["c", "d"]]), np.full((4, C), 0.3)), r"got ndarray with 2 "
                                                                 r"dimensions"),
    (([None, "b"], P2), r"stream\(m\) ids\[0\] is None; ids must be non-empty str or int"),
    (([1.0, 2.0], P2), r"ids\[0\] is 1\.0"),
    ((["a", ""], P2), r"ids\[1\] is ''"),
    ((["a", "a"], P2), r"stream\(m\) returned id 'a' twice in one poll"),
    (([], np.full((3, C), 0.3)), r"got 0 ids and probs of shape \(3, 3\)"),
    ((["a", "b"], P2, {"x": 1}), r"stream\(m\) data must be a list with one dict \(or None\) "
                                 r"per arrival, got dict for 2 ids"),
    ((["a", "b"], P2, [{}]), r"got 1 entries for 2 ids"),
    ((["a", "b"], P2, ["hello", {}]), r"stream\(m\) data\[0\] must be a dict or None, got str"),
    ((["a", "b"], P2, [{}, {"x": np.int64(1)}]), r"stream\(m\) data\[1\] must hold JSON "
                                                 r"values only .*\.item\(\)"),
    ((["a", "b"], P2, [{"x": float("nan")}, {}]), r"data\[0\] must hold JSON values only"),
])
def test_stream_poll_is_checked_whole(got, message):
    with pytest.raises(InvalidInputError, match=message):
        _poll_of(got)


def test_stream_poll_of_int_ids_and_no_data():
    human, _ = _poll_of(([3, 4], P2, None))
    assert [(x["item_id"], x["data"]) for x in human] == [("3", {}), ("4", {})]


def test_synthesis_source_maps_to_unlabeled_unqueued_items(tmp_path):
    emb, _y = make_pool()
    pool = PoolSource(centroid_probs(emb, {}), embeddings=emb)
    synth = SynthesisSource(pool, method="minority", k=3)
    with Workflow(tmp_path / "w.db", budget=200, sources={"pool": pool, "synthesis": synth},
                  control_share=0.0) as wf:
        first = wf.next_batch(20)
        notes = wf.ledger.last_event("selection")["payload"]["notes"]
        assert any("synthesis" in n for n in notes)  # no labels yet: pool fills in
        assert len(first) == 20
        # label with a rare class: most items "0", a few "1", "2"
        wf.submit_labels({x["item_id"]: ("0" if j >= 6 else str(1 + j % 2))
                          for j, x in enumerate(first)})
        second = wf.next_batch(20)
        synthetic = [x for x in second if x["source"] == "synthesis"]
        assert synthetic and all("synthesis: nearest unlabeled real item" in x["reason"]
                                 for x in synthetic)
        ids = [x["item_id"] for x in first + second]
        assert len(ids) == len(set(ids))


def test_audit_against_a_sketch(tmp_path):
    emb, _ = make_pool()
    probs = centroid_probs(emb, {})
    sketch = alcore.monitor.PoolSketch.build(emb, np.argmax(probs, axis=1), clusters=4,
                                             rff_features=32)
    with Workflow(tmp_path / "w.db", budget=50, sources=[PoolSource(probs, embeddings=emb)],
                  sketch=sketch) as wf:
        wf.next_batch(20)
        audit = wf.status()["last_audit"]
        assert audit is not None and audit["items"] == 20
        json.dumps(audit)


def test_pool_from_alcore_io_pool(tmp_path):
    emb, _ = make_pool()
    ids = np.array([f"id{i}" for i in range(N)])
    pool = alcore.io.Pool(ids, centroid_probs(emb, {}), emb, None)
    with Workflow(tmp_path / "w.db", budget=10, sources=[PoolSource(pool)]) as wf:
        batch = wf.next_batch(10)
        assert all(x["item_id"].startswith("id") for x in batch)


def test_ledger_is_plain_json(tmp_path):
    loop = Loop(tmp_path)
    with loop.workflow() as wf:
        loop.label_all(wf, wf.next_batch(10))
    with Ledger.open(loop.path) as db:
        assert db.state("config")["budget"] == 60
        assert db.integrity() == "ok"


def test_pool_expert_tier_for_low_confidence(tmp_path):
    emb, _ = make_pool()
    probs = centroid_probs(emb, {})
    probs[:, :] = [0.9, 0.05, 0.05]
    probs[:40] = [0.4, 0.35, 0.25]  # unsure: expert tier
    source = PoolSource(probs, embeddings=emb, diversity=None, expert_below=0.5)
    with Workflow(tmp_path / "w.db", budget=50, sources=[source], control_share=0) as wf:
        batch = wf.next_batch(50)
        tiers = {x["item_id"]: x["tier"] for x in batch}
        assert sum(t == "expert" for t in tiers.values()) == 40
        assert all(tiers[str(i)] == "expert" for i in range(40))
        assert wf.status()["queue"]["by_tier"] == {"expert": 40, "annotator": 10}
        assert "expert_below=0.5" in wf.ledger.item("0")["reason"]
    with pytest.raises(alcore.InvalidInputError, match="expert_below must be <= 1"):
        PoolSource(probs, expert_below=2)


def test_two_workflows_share_one_ledger_without_duplicates(tmp_path):
    """Two drivers on one ledger (e.g. two processes): every decision is read from the
    ledger, so the second continues the first's rounds and never re-queues its items."""
    loop = Loop(tmp_path)
    a = loop.workflow(budget=100)
    b = loop.workflow(budget=100)
    ids = []
    for wf in (a, b, a, b):
        batch = wf.next_batch(10)
        ids += [x["item_id"] for x in batch]
        loop.label_all(wf, batch[:5])
    assert len(ids) == len(set(ids)) == 40
    assert a.round == b.round == 4 and a.spent == 40
    a.close()
    b.close()


def test_resume_restores_the_stream_gate(tmp_path):
    def stream_from(seed):
        rng = np.random.default_rng(seed)
        counter = iter(range(10**6))

        def stream(m):
            return [f"s{next(counter)}" for _ in range(m)], rng.dirichlet(np.ones(C), m)
        return stream

    emb, _ = make_pool()

    def sources(gate):
        return {"stream": StreamSource(alcore.stream.Router(gate, auto_label_at=None),
                                       stream_from(1)),
                "pool": PoolSource(centroid_probs(emb, {}), embeddings=emb)}

    first = sources(alcore.stream.StreamGate("variable_uncertainty", 0.3))
    with Workflow(tmp_path / "w.db", budget=100, sources=first, control_share=0) as wf:
        wf.next_batch(10)
        saved = first["stream"].router.gate.stats
    again = sources(alcore.stream.StreamGate("variable_uncertainty", 0.3))
    assert again["stream"].router.gate.stats != saved
    with Workflow.resume(tmp_path / "w.db", sources=again) as wf:
        assert again["stream"].router.gate.stats == saved


def test_on_update_protocol(tmp_path):
    emb, _ = make_pool()
    pool = PoolSource(centroid_probs(emb, {}), embeddings=emb)
    replies = iter([{"pool": {"probs": np.full((N, C), 1 / C)}}, None, [1, 2],
                    {"probs": np.ones((3, C)) / C}, {"logits": 1}])
    with Workflow(tmp_path / "w.db", budget=100, sources=[pool],
                  on_update=lambda labels: next(replies)) as wf:
        batch = wf.next_batch(10)
        wf.submit_label(batch[0]["item_id"], "0")   # per-source dict
        assert np.allclose(pool.probs, 1 / C)
        wf.submit_label(batch[1]["item_id"], "0")   # None: nothing changes
        with pytest.raises(alcore.InvalidInputError, match="on_update must return None or a"):
            wf.submit_label(batch[2]["item_id"], "0")
        with pytest.raises(alcore.InvalidInputError,
                           match=r"on_update must return outputs of the pool's shape"):
            wf.submit_label(batch[3]["item_id"], "0")
        with pytest.raises(alcore.InvalidInputError, match=r"unknown keys \['logits'\]"):
            wf.submit_label(batch[4]["item_id"], "0")
        assert np.allclose(pool.probs, 1 / C)


def test_disagreements_and_ambiguous_items_go_to_experts(tmp_path):
    loop = Loop(tmp_path, control_share=0.0)
    with loop.workflow(budget=100) as wf:
        batch = [x["item_id"] for x in wf.next_batch(4)]
        wf.submit_labels([{"item_id": batch[0], "annotator": "a", "value": "1"},
                          {"item_id": batch[0], "annotator": "b", "value": "2"},
                          {"item_id": batch[1], "annotator": "a", "value": "1"},
                          {"item_id": batch[1], "annotator": "b", "value": "1"},
                          {"item_id": batch[2], "annotator": "a", "value": "0",
                           "ambiguous": True}])
        queued = {x["item_id"]: x["tier"] for x in wf.ledger.queued()}
        assert queued == {batch[0]: "expert", batch[2]: "expert", batch[3]: "annotator"}
        reasons = {e["payload"]["reason"] for e in wf.ledger.events("route")}
        assert reasons == {"annotators disagree (1, 2)", "flagged ambiguous by an annotator"}
        spent = wf.spent
        wf.submit_label(batch[0], "2", annotator="boss", origin="expert")
        assert batch[0] not in {x["item_id"] for x in wf.ledger.queued()}
        assert wf.labels()[batch[0]] == "2" and wf.spent == spent
    loop2 = Loop(tmp_path, name="off.db", control_share=0.0)
    with loop2.workflow(budget=100, expert_review=False) as wf:
        ids = [x["item_id"] for x in wf.next_batch(2)]
        wf.submit_labels([{"item_id": ids[0], "annotator": a, "value": v}
                          for a, v in (("a", "1"), ("b", "2"))])
        assert [x["item_id"] for x in wf.ledger.queued()] == [ids[1]]


def test_skipped_or_ambiguous_labels_are_not_votes():
    from alcore.workflow._workflow import _consensus

    def label(item, annotator, value, *, origin="annotator", ambiguous=False):
        return {"item_id": item, "annotator": annotator, "value": value, "at": 0.0,
                "origin": origin, "ambiguous": ambiguous}

    labels = [label("a", "1", "", ambiguous=True), label("a", "2", "unsure", ambiguous=True),
              label("b", "1", "cat"), label("b", "2", "unsure", ambiguous=True),
              label("b", "3", "unsure", ambiguous=True),
              label("c", "1", "dog"), label("c", "9", "", origin="expert", ambiguous=True)]
    # a: nothing to train on; b: the one real vote, not the two "unsure"; c: a skipping
    # expert does not override the annotator.
    assert _consensus(labels) == {"b": "cat", "c": "dog"}
