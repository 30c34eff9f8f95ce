"""Adaptive batch sizing: how many items to label next round."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from alcore import _validation as v
from alcore._errors import InvalidInputError

POLICIES = ("fixed", "schedule", "plateau")


# Pools beyond int64 cannot be indexed; the bound also keeps fraction * pool_size finite.
_MAX_POOL = 2**63 - 1


class BatchSizer:
    """The next round's batch size, bounded by ``min_fraction`` and ``max_fraction`` of the
    pool.

    Policies
    --------
    ``"fixed"``
        ``size`` every round.
    ``"schedule"``
        ``fraction`` of the pool per round: one number, or one per round (the last repeats).
    ``"plateau"``
        Start at ``size``; after each :meth:`record`, when the accuracy gained per label
        over the last ``rounds`` rounds is below ``min_gain``, multiply the size by
        ``growth``. Early rounds buy a lot per label and stay small; once learning
        flattens, larger batches cost fewer retraining rounds.

    Parameters
    ----------
    pool_size : int
        Items in the pool (labeled and unlabeled).
    policy : {"fixed", "schedule", "plateau"}
    size : int, optional
        Batch size of "fixed", first batch of "plateau" (default 1 % of the pool).
    fraction : float or sequence of float, optional
        The "schedule".
    growth : float
        Factor of "plateau" (> 1).
    min_gain : float
        Accuracy per label below which "plateau" grows the batch.
    rounds : int
        Rounds over which "plateau" measures the gain.
    min_fraction, max_fraction : float
        Bounds on every batch, as fractions of the pool (at least 1 item).
    """

    def __init__(self, pool_size: int, policy: str = "fixed", *, size: int | None = None,
                 fraction: float | Sequence[float] | None = None, growth: float = 2.0,
                 min_gain: float = 1e-4, rounds: int = 2, min_fraction: float = 0.0,
                 max_fraction: float = 0.1, **unknown: Any):
        v.refuse_unknown("BatchSizer", unknown, BatchSizer.__init__)
        # Every argument is parsed before any attribute is set.
        pool_size = v.integer(pool_size, "pool_size", low=1, high=_MAX_POOL,
                              hint="pass the number of items in the pool")
        policy = v.choice(policy, "policy", POLICIES)
        min_fraction = v.number(min_fraction, "min_fraction", low=0.0, high=1.0)
        max_fraction = v.number(max_fraction, "max_fraction", low=0.0, high=1.0)
        if min_fraction > max_fraction:
            raise InvalidInputError(
                f"need 0 <= min_fraction <= max_fraction <= 1, got {min_fraction:g} and "
                f"{max_fraction:g}; raise max_fraction= or lower min_fraction=")
        size = v.count(size if size is not None else max(1, pool_size // 100), "size")
        fractions: list[float] = []
        if policy == "schedule":
            if fraction is None:
                raise InvalidInputError(
                    "policy 'schedule' needs fraction= (one fraction of the pool, or one per "
                    "round, e.g. fraction=[0.01, 0.02, 0.05])")
            several = isinstance(fraction, list | tuple) or (
                isinstance(fraction, np.ndarray) and fraction.ndim == 1)
            values = list(fraction) if several else [fraction]
            if not values:
                raise InvalidInputError("fraction is empty; pass at least one fraction in (0, 1]")
            fractions = [v.number(f, "fraction", low=0.0, high=1.0, low_open=True,
                                  hint="each fraction of the pool must be in (0, 1]")
                         for f in values]
        elif fraction is not None:
            raise InvalidInputError(
                f"fraction= is used by policy 'schedule' only, got policy {policy!r}; drop "
                f"fraction= or pass policy='schedule'")
        growth = v.number(growth, "growth", low=1.0, low_open=True,
                          hint="'plateau' multiplies the batch by it, e.g. growth=2.0")
        min_gain = v.number(min_gain, "min_gain", low=0.0)
        rounds = v.count(rounds, "rounds")
        self.pool_size, self.policy = pool_size, policy
        self.low = max(1, int(min_fraction * pool_size))
        self.high = max(self.low, int(max_fraction * pool_size))
        self.size = size
        self.fractions = fractions
        self.growth, self.min_gain, self.rounds = growth, min_gain, rounds
        self.history: list[tuple[int, float]] = []  # (labels, accuracy) per recorded round

    def next_size(self) -> int:
        """The batch size for the coming round."""
        if self.policy == "schedule":
            f = self.fractions[min(len(self.history), len(self.fractions) - 1)]
            size = round(f * self.pool_size)
        else:
            size = self.size
        return int(min(self.high, max(self.low, size)))

    def record(self, n_labeled: int, accuracy: float, **unknown: Any) -> None:
        """Report the round just finished: labels so far and the model's accuracy.

        Parameters
        ----------
        n_labeled : int
            Items labeled so far (a Python or numpy integer, e.g. ``labeled.sum()``).
        accuracy : float
            The model's accuracy in [0, 1] (a Python or numpy number).
        """
        v.refuse_unknown("BatchSizer.record", unknown, BatchSizer.record)
        n_labeled = v.integer(n_labeled, "n_labeled", low=0, high=self.pool_size,
                              hint="pass the number of labeled items of this pool, e.g. "
                                   "labeled.sum()")
        acc = v.number(accuracy, "accuracy", low=0.0, high=1.0,
                       hint="pass the model's accuracy as a fraction in [0, 1]")
        if self.history and n_labeled < self.history[-1][0]:
            raise InvalidInputError(
                f"n_labeled went down ({self.history[-1][0]} -> {n_labeled}); report rounds "
                f"in order")
        self.history.append((n_labeled, acc))
        if self.policy == "plateau" and len(self.history) > self.rounds:
            (labels_then, acc_then), (labels_now, acc_now) = (self.history[-1 - self.rounds],
                                                              self.history[-1])
            gained = labels_now - labels_then
            if gained > 0 and (acc_now - acc_then) / gained < self.min_gain:
                # The product in float, capped before int(): a large growth (or size) gives
                # inf, which int() refuses after the round was already recorded.
                self.size = int(min(self.high, min(self.size, self.high) * float(self.growth)))


__all__ = ["BatchSizer"]

v.guard_signatures(globals())
