"""Exponential backoff: the one way the bridge waits longer after each failure in a row.

``Backoff(base, cap)`` waits ``base`` after the first failure, ``factor`` times longer after
each further one, never longer than ``cap``; a ``jitter`` range multiplies the wait by a factor
drawn uniformly from it (``(0.8, 1.2)``: ±20 %), so that many waiters do not retry in step.
The unit is the caller's (seconds, milliseconds...).

Pure but for :meth:`Backoff.sleep`, so every layer may use it, like :mod:`bridge.ids`.
"""

from __future__ import annotations

import asyncio
import math
import random
from dataclasses import dataclass

__all__ = ["NO_JITTER", "Backoff"]

#: The jitter range of a backoff without jitter.
NO_JITTER = (1.0, 1.0)


@dataclass(frozen=True)
class Backoff:
    """Waits that grow by ``factor`` per failure in a row, capped; see the module docstring."""

    base: float
    cap: float = math.inf
    factor: float = 2.0
    jitter: tuple[float, float] = NO_JITTER

    def __post_init__(self) -> None:
        low, high = self.jitter
        if self.base < 0 or self.cap < 0 or self.factor < 1 or not 0 <= low <= high:
            raise ValueError(f"not a valid backoff: {self!r}")

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        """The wait after failure number ``attempt`` in a row: ``base`` for the first (and for
        ``attempt`` 0), ``base * factor ** (attempt - 1)`` after that, at most ``cap``, then
        jittered (with ``rng``, else the :mod:`random` module's generator)."""
        try:
            grown = self.base * self.factor ** max(attempt - 1, 0)
        except OverflowError:
            grown = math.inf if self.base > 0 else 0.0
        wait = min(grown, self.cap)
        low, high = self.jitter
        if (low, high) == NO_JITTER:
            return wait
        return wait * (rng.uniform(low, high) if rng is not None else random.uniform(low, high))

    async def sleep(self, attempt: int, rng: random.Random | None = None) -> None:
        """Sleep for :meth:`delay` (in seconds)."""
        await asyncio.sleep(self.delay(attempt, rng))
