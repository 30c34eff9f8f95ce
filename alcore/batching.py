"""Adaptive batch sizing: how many items to label next round."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from alcore import _validation as v
from alcore._errors import InvalidInputError

POLICIES = ("fixed", "schedule", "plateau")


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
                 max_fraction: float = 0.1):
        self.pool_size = v.count(pool_size, "pool_size")
        if not isinstance(policy, str) or policy not in POLICIES:
            raise InvalidInputError(
                f"policy must be one of {', '.join(map(repr, POLICIES))}, got {policy!r}")
        self.policy = policy
        if not 0 <= min_fraction <= max_fraction <= 1:
            raise InvalidInputError(
                f"need 0 <= min_fraction <= max_fraction <= 1, got {min_fraction!r} and "
                f"{max_fraction!r}")
        self.low = max(1, int(min_fraction * self.pool_size))
        self.high = max(self.low, int(max_fraction * self.pool_size))
        default = max(1, self.pool_size // 100)
        self.size = v.count(size if size is not None else default, "size")
        if policy == "schedule":
            if fraction is None:
                raise InvalidInputError("policy 'schedule' needs fraction= (one or per round)")
            fractions = [fraction] if isinstance(fraction, int | float) else list(fraction)
            if not fractions or not all(isinstance(f, int | float) and 0 < f <= 1
                                        for f in fractions):
                raise InvalidInputError(f"fraction must be in (0, 1], got {fraction!r}")
            self.fractions = [float(f) for f in fractions]
        if not growth > 1:
            raise InvalidInputError(f"growth must be > 1, got {growth!r}")
        self.growth, self.min_gain = float(growth), float(min_gain)
        self.rounds = v.count(rounds, "rounds")
        self.history: list[tuple[int, float]] = []  # (labels, accuracy) per recorded round

    def next_size(self) -> int:
        """The batch size for the coming round."""
        if self.policy == "schedule":
            f = self.fractions[min(len(self.history), len(self.fractions) - 1)]
            size = round(f * self.pool_size)
        else:
            size = self.size
        return int(min(self.high, max(self.low, size)))

    def record(self, n_labeled: int, accuracy: float) -> None:
        """Report the round just finished: labels so far and the model's accuracy."""
        if isinstance(n_labeled, bool) or not isinstance(n_labeled, int) or n_labeled < 0:
            raise InvalidInputError(f"n_labeled must be a non-negative int, got {n_labeled!r}")
        if self.history and n_labeled < self.history[-1][0]:
            raise InvalidInputError(
                f"n_labeled went down ({self.history[-1][0]} -> {n_labeled}); report rounds "
                f"in order")
        acc: Any = accuracy
        if isinstance(acc, bool) or not isinstance(acc, int | float) or not 0 <= acc <= 1:
            raise InvalidInputError(f"accuracy must be a number in [0, 1], got {accuracy!r}")
        self.history.append((n_labeled, float(acc)))
        if self.policy == "plateau" and len(self.history) > self.rounds:
            (labels_then, acc_then), (labels_now, acc_now) = (self.history[-1 - self.rounds],
                                                              self.history[-1])
            gained = labels_now - labels_then
            if gained > 0 and (acc_now - acc_then) / gained < self.min_gain:
                self.size = min(self.high, int(self.size * self.growth))


__all__ = ["BatchSizer"]
