"""Query synthesis: where real examples are scarce (rare classes, the decision boundary),
generate query points in embedding space instead of searching the pool for them.

* :func:`boundary`: points on the model's decision boundary, by bisection between nearby
  items of different classes (the user's ``predict_proba`` called once per step, on the
  whole batch).
* :func:`minority`: SMOTE and Borderline-SMOTE-1 interpolation for under-represented
  classes.
* :func:`nearest_real`: the nearest unlabeled real items of synthetic points, for
  annotators who cannot label a vector.
* :func:`validate`: which synthetic points to keep, by checks against the pool's own
  statistics, with per-point reasons and a share flagged for expert review.

Both generators return a :class:`SyntheticPoints` holding every point's provenance (the
two real items it lies between and its position ``lam`` on their segment).
"""

from alcore.synthesis._boundary import boundary
from alcore.synthesis._minority import minority
from alcore.synthesis._nearest import NearestReal, nearest_real
from alcore.synthesis._points import SyntheticPoints
from alcore.synthesis._validate import ValidationReport, validate

__all__ = ["NearestReal", "SyntheticPoints", "ValidationReport", "boundary", "minority",
           "nearest_real", "validate"]
