"""The one result type of the generators: synthetic points with their provenance."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, eq=False)  # no generated ==: its arrays would make it raise
class SyntheticPoints:
    """Synthetic query points and where each came from.

    Every point lies on the segment between two real items, ``x(lam) = (1 - lam) a + lam b``
    with ``a, b = embeddings[source[i]]`` (for ``boundary(normalize=True)`` that point
    divided by its norm).
    """

    points: np.ndarray
    """(m, d), the embeddings' dtype: the synthetic points."""
    source: np.ndarray
    """int64 (m, 2): the rows (a, b) of the embeddings each point was made from. boundary:
    the pair of nearby items with different classes; minority: (seed, neighbour)."""
    lam: np.ndarray
    """float64 (m,) in [0, 1]: the position on the segment from a (0) to b (1)."""
    method: str
    """"boundary", "smote" or "borderline"."""
    margin: np.ndarray | None = None
    """boundary: float64 (m,), the model's top-two margin p1 - p2 at each point (< tol).
    None for minority."""
    model_calls: int = 0
    """boundary: how many times ``predict_proba`` was called (each on a whole batch)."""
    labels: np.ndarray | None = None
    """minority: (m,) the class of each point (its seed's label, the labels' dtype).
    None for boundary."""
    shortfall: str | None = None
    """Why fewer points than asked for came back, or None."""

    def __len__(self) -> int:
        return int(self.points.shape[0])
