"""Hostile review of alcore.workflow: each test pins a defect that was fixed."""

import numpy as np
import pytest

import alcore
import alcore.workflow as W


def _loop(tmp_path, name="a.db"):
    rng = np.random.default_rng(0)
    probs = rng.dirichlet([1, 1, 1], 60)
    emb = rng.normal(size=(60, 4))
    pool = W.PoolSource(probs, embeddings=emb, classes=["a", "b", "c"])
    return W.Workflow(tmp_path / name, budget=20, sources=[pool])


@pytest.mark.parametrize("value", ["zebra", float("nan"), 1, True])
def test_label_outside_the_classes_is_refused_and_nothing_stored(tmp_path, value):
    # A label that is none of the sources' classes used to be stored and handed to
    # on_update as a training label ("zebra", "nan", "True").
    with _loop(tmp_path) as loop:
        batch = loop.next_batch(5)
        ids = [x["item_id"] for x in batch]
        with pytest.raises(alcore.InvalidInputError,
                           match=r"label of item .* is not one of the classes"):
            loop.submit_labels({ids[0]: "a", ids[1]: value})
        assert loop.ledger.labels() == []
        assert loop.labels() == {}


def test_ambiguous_label_may_name_no_class(tmp_path):
    with _loop(tmp_path) as loop:
        item = loop.next_batch(5)[0]["item_id"]
        assert loop.submit_labels([{"item_id": item, "value": "unsure",
                                    "ambiguous": True}]) == 1
        assert loop.submit_label(item, "b", annotator="u2") == 1
        assert loop.labels() == {item: "b"}


def test_ambiguous_must_be_a_bool(tmp_path):
    # ambiguous="no" used to be truthy: the label was silently dropped from training.
    with _loop(tmp_path) as loop:
        item = loop.next_batch(5)[0]["item_id"]
        with pytest.raises(alcore.InvalidInputError, match="ambiguous must be"):
            loop.submit_labels([{"item_id": item, "value": "a", "ambiguous": "no"}])
        assert loop.ledger.labels() == []


def test_ledger_refuses_a_non_bool_ambiguous(tmp_path):
    with _loop(tmp_path) as loop:
        item = loop.next_batch(5)[0]["item_id"]
        with pytest.raises(W.LedgerError, match=r"ambiguous must be True or False, got 'no'"):
            loop.ledger.add_labels([{"item_id": item, "value": "a", "ambiguous": "no"}])
        assert loop.ledger.labels() == []


def test_numeric_class_names_accept_their_values(tmp_path):
    rng = np.random.default_rng(1)
    pool = W.PoolSource(rng.dirichlet([1, 1], 30), embeddings=rng.normal(size=(30, 3)),
                        classes=[0.0, 1.0])
    with W.Workflow(tmp_path / "f.db", budget=5, sources=[pool]) as loop:
        ids = [x["item_id"] for x in loop.next_batch(3)]
        assert loop.submit_labels({ids[0]: 1.0, ids[1]: np.float64(0.0)}) == 2
        with pytest.raises(alcore.InvalidInputError, match="is 1, which is not one"):
            loop.submit_labels({ids[2]: 1})
