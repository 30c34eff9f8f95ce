"""Hostile review of the river adapter (issue 10): dict values that are not one real
number, and a custom-utility gate with a fixed class count while the class set grows."""

from __future__ import annotations

import numpy as np
import pytest

import alcore
from alcore.integrations.river import GatedClassifier
from alcore.stream import StreamGate


class Stub:
    """A classifier returning the given dicts in turn."""

    def __init__(self, *dicts):
        self.dicts = list(dicts)

    def predict_proba_one(self, x, **kwargs):
        return self.dicts.pop(0) if len(self.dicts) > 1 else self.dicts[0]

    def learn_one(self, x, y, **kwargs):
        pass


def gap(p):
    return 1.0 - p.max()


@pytest.mark.parametrize("utility", ["margin", "least_confidence", "entropy", gap])
@pytest.mark.parametrize("bad", [
    {"a": True, "b": False},
    {"a": np.array(0.5), "b": np.array([0.5])},
    {"a": np.array([0.5]), "b": 0.5},
    {"a": 0.5 + 0j, "b": 0.5},
])
def test_values_that_are_not_one_real_number_are_refused(utility, bad):
    learner = GatedClassifier(Stub({"a": 0.9, "b": 0.1}, bad),
                              StreamGate("quantile", 0.3, utility=utility, seed=1))
    learner.predict_one({})
    before = learner.gate.to_json(), learner.classes
    with pytest.raises(alcore.InvalidInputError,
                       match="must return a dict of hashable class -> float probability"):
        learner.predict_one({})
    assert (learner.gate.to_json(), learner.classes) == before


def test_a_custom_utility_gate_with_the_final_class_count_takes_fewer_known_classes():
    gate = StreamGate("fixed", 0.2, utility=gap, classes=3, window=10)
    learner = GatedClassifier(Stub({}, {"a": 0.9, "b": 0.1}, {"a": 0.4, "b": 0.35, "c": 0.25}),
                              gate)
    # Threshold 1/3 + 0.2 (2/3) = 0.4667 on confidence = max p: the same asks as the
    # built-in least confidence (tests/test_river.py::test_fixed_strategy_...).
    assert [learner.predict_one({})[1] for _ in range(3)] == [True, False, True]
