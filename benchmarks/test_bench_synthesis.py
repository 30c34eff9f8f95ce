"""Query synthesis (alcore.synthesis).

* boundary: 1000 points on the decision boundary of a fixed linear softmax model (10
  classes) over 20k x 64 embeddings, on the clustered ("separated"), overlapping and
  isotropic shapes (benchmarks/conftest.py).
  The user's model is the cost that matters in practice, so the calls are counted and
  recorded (``model_calls``, ``rows_per_call``: every call but the first, the items'
  classification, is one bisection step on the whole batch of open pairs), beside what a
  per-point bisection would have cost (``per_point_calls``: one call per point per step).
* minority: 1000 SMOTE and Borderline-SMOTE-1 points for a 2 % class of 20k x 64
  embeddings against imbalanced-learn's ``SMOTE`` / ``BorderlineSMOTE`` ``fit_resample``
  asked for the same 1000 points (``sampling_strategy={class: count + 1000}``), on the
  same data and shapes. imbalanced-learn also copies the input into its output (the
  resampled set); alcore returns the new points only.
"""

from __future__ import annotations

import numpy as np
import pytest
from benchutil import record

from alcore.synthesis import boundary, minority

D = 64
CLASSES = 10
SHAPES = ("separated", "overlapping", "isotropic")


class LinearSoftmax:
    """A fixed linear softmax model, centred on the data so that its boundaries cross it,
    counting the calls and the rows it is called on."""

    def __init__(self, x: np.ndarray, seed: int = 0):
        rng = np.random.default_rng(seed)
        self.w = rng.standard_normal((x.shape[1], CLASSES)).astype(np.float32)
        self.w /= np.float32(np.sqrt(x.shape[1]))
        self.b = -(x.mean(axis=0) @ self.w)
        self.calls = 0
        self.rows = 0

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        self.calls += 1
        self.rows += len(batch)
        z = batch @ self.w + self.b
        z -= z.max(axis=1, keepdims=True)
        e = np.exp(z, dtype=np.float64)
        return e / e.sum(axis=1, keepdims=True)


def points_wanted(sizes) -> int:
    return sizes.k_large  # 1000, 50 in a smoke run


@pytest.mark.parametrize("shape", SHAPES)
def test_boundary_1000_points_20k_x_64(benchmark, embeddings, sizes, shape):
    x = embeddings(shape, "20k", D)
    n = points_wanted(sizes)
    benchmark.group = f"boundary {n} points, {sizes.name('20k')} x {D} {shape}, linear softmax"
    record(benchmark, "alcore", "alcore", shape)
    models = []

    def run():
        models.append(LinearSoftmax(x))
        return boundary(x, models[-1], n, tol=1e-3)

    result = benchmark.pedantic(run, rounds=3, iterations=1, warmup_rounds=0)
    model = models[-1]
    assert len(result) == n and result.shortfall is None
    assert result.model_calls == model.calls
    assert np.all(result.margin < 1e-3)
    steps = model.calls - 1  # the first call classifies the items
    benchmark.extra_info["model_calls"] = model.calls
    benchmark.extra_info["bisection_steps"] = steps
    benchmark.extra_info["rows_per_call"] = (model.rows - len(x)) / max(steps, 1)
    benchmark.extra_info["per_point_calls"] = model.rows - len(x)
    assert model.calls <= 2 + 60


def minority_data(x: np.ndarray, seed: int = 1) -> np.ndarray:
    """Labels with a 2 % class: the items highest along a random direction, with noise,
    so that the class has a border with the rest (Borderline-SMOTE has danger seeds)."""
    rng = np.random.default_rng(seed)
    score = x @ rng.standard_normal(x.shape[1]).astype(np.float32)
    score += rng.standard_normal(len(x)).astype(np.float32) * score.std() * 0.3
    y = np.zeros(len(x), dtype=np.int64)
    y[np.argsort(score)[-max(10, len(x) // 50):]] = 1
    return y


@pytest.mark.parametrize("contender", ["alcore", "imbalanced-learn"])
@pytest.mark.parametrize("variant", ["smote", "borderline"])
@pytest.mark.parametrize("shape", SHAPES)
def test_minority_1000_points_20k_x_64(benchmark, embeddings, sizes, shape, variant,
                                        contender):
    x = embeddings(shape, "20k", D)
    y = minority_data(x)
    n = points_wanted(sizes)
    benchmark.group = (f"minority {variant} {n} points, {sizes.name('20k')} x {D} {shape}, "
                       f"2% class")
    if contender == "alcore":
        record(benchmark, "alcore", "alcore", shape)
        result = benchmark.pedantic(minority, args=(x, y, n),
                                    kwargs={"k": 5, "variant": variant, "m": 10},
                                    rounds=3, iterations=1, warmup_rounds=1)
        assert len(result) == n and set(result.labels.tolist()) == {1}
        return
    from imblearn.over_sampling import SMOTE, BorderlineSMOTE

    strategy = {1: int((y == 1).sum()) + n}
    if variant == "smote":
        record(benchmark, "imbalanced-learn SMOTE.fit_resample", "peer", shape)
        sampler = SMOTE(sampling_strategy=strategy, k_neighbors=5, random_state=0)
    else:
        record(benchmark, "imbalanced-learn BorderlineSMOTE(kind='borderline-1')"
                          ".fit_resample", "peer", shape)
        sampler = BorderlineSMOTE(sampling_strategy=strategy, k_neighbors=5, m_neighbors=10,
                                  kind="borderline-1", random_state=0)
    x_res, _ = benchmark.pedantic(sampler.fit_resample, args=(x, y), rounds=3, iterations=1,
                                  warmup_rounds=1)
    assert len(x_res) == len(x) + n
