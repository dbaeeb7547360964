"""Circuit breaker for the cluster-quota store: stop hammering a Redis that does not answer.

Invariant: while open, `allow()` is False until the back-off has elapsed, so no connection attempt
is made; then exactly one probe is let through (half-open). The probe's success closes the breaker
(back-off reset); its failure re-opens it with the back-off doubled, up to `max_backoff`. In the
closed state `failures_to_open` consecutive failures open it. Single event loop: no locking.
"""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["CircuitBreaker"]

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"


class CircuitBreaker:
    """closed --K failures--> open --back-off elapsed--> half_open (one probe) --ok--> closed."""

    def __init__(
        self,
        failures_to_open: int = 3,
        base_backoff: float = 0.5,
        max_backoff: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if failures_to_open < 1 or base_backoff <= 0 or max_backoff < base_backoff:
            raise ValueError("need failures_to_open >= 1 and 0 < base_backoff <= max_backoff")
        self.failures_to_open = failures_to_open
        self.base_backoff = base_backoff
        self.max_backoff = max_backoff
        self.clock = clock
        self.state = CLOSED
        self.failures = 0  # consecutive, in the closed state
        self.backoff = base_backoff  # the next (or current) open period
        self.open_until = 0.0
        self.opened = 0  # times the breaker went closed/half_open -> open (a counter for metrics)
        self.rejected = 0  # calls refused while open

    def allow(self) -> bool:
        """May a call go to Redis now? In the open state, the first call after the back-off
        becomes the half-open probe; every other call is refused until it reports."""
        if self.state == CLOSED:
            return True
        if self.state == OPEN and self.clock() >= self.open_until:
            self.state = HALF_OPEN
            return True
        self.rejected += 1
        return False

    def success(self) -> None:
        self.state = CLOSED
        self.failures = 0
        self.backoff = self.base_backoff

    def failure(self) -> None:
        if self.state == HALF_OPEN:
            self.backoff = min(self.backoff * 2, self.max_backoff)
            self._open()
        elif self.state == CLOSED:
            self.failures += 1
            if self.failures >= self.failures_to_open:
                self._open()
        # OPEN: a call that started before the breaker opened failed late; nothing new learned.

    def abandon(self) -> None:
        """The probe was cancelled without an outcome: let the next call probe again."""
        if self.state == HALF_OPEN:
            self.state = OPEN
            self.open_until = self.clock()

    def _open(self) -> None:
        self.state = OPEN
        self.open_until = self.clock() + self.backoff
        self.opened += 1
        self.failures = 0

    @property
    def is_open(self) -> bool:
        return self.state != CLOSED
