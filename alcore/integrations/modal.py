"""modAL query strategies backed by alcore.

Each has modAL's signature ``strategy(classifier, X_pool, n_instances=1, **kwargs) ->
(indices, X_pool[indices])``, so a modAL user switches with one line::

    from alcore.integrations.modal import margin_sampling
    learner = ActiveLearner(estimator=..., query_strategy=margin_sampling, ...)

Ties go to the lower index (modAL's ``multi_argmax`` leaves their order to numpy's
argpartition).
"""

from __future__ import annotations

from typing import Any

import numpy as np

import alcore


def _pick(classifier: Any, x_pool: Any, n_instances: int, score: str,
          **kwargs: Any) -> tuple[np.ndarray, Any]:
    probs = np.asarray(classifier.predict_proba(x_pool), dtype=np.float64)
    indices = alcore.select_top(probs, n_instances, score=score, **kwargs)
    return indices, x_pool[indices]


def uncertainty_sampling(classifier: Any, X_pool: Any, n_instances: int = 1,
                         **kwargs: Any) -> tuple[np.ndarray, Any]:
    """Least confidence (modAL's ``uncertainty_sampling``)."""
    return _pick(classifier, X_pool, n_instances, "least_confidence", **kwargs)


def margin_sampling(classifier: Any, X_pool: Any, n_instances: int = 1,
                    **kwargs: Any) -> tuple[np.ndarray, Any]:
    """Smallest margin between the two most probable classes."""
    return _pick(classifier, X_pool, n_instances, "margin", **kwargs)


def entropy_sampling(classifier: Any, X_pool: Any, n_instances: int = 1,
                     **kwargs: Any) -> tuple[np.ndarray, Any]:
    """Largest predictive entropy."""
    return _pick(classifier, X_pool, n_instances, "entropy", **kwargs)


def kcenter_margin_sampling(classifier: Any, X_pool: Any, n_instances: int = 1,
                            candidates: int = 10, **kwargs: Any) -> tuple[np.ndarray, Any]:
    """k-center (core-set) over the ``candidates x n_instances`` smallest-margin items,
    with the pool's features as embeddings."""
    probs = np.asarray(classifier.predict_proba(X_pool), dtype=np.float64)
    features = np.asarray(X_pool, dtype=np.float32).reshape(len(probs), -1)
    chosen = alcore.select(probs, n_instances, embeddings=features, diversity="kcenter",
                           candidates=candidates, **kwargs)
    return chosen.indices, X_pool[chosen.indices]


__all__ = ["entropy_sampling", "kcenter_margin_sampling", "margin_sampling",
           "uncertainty_sampling"]
