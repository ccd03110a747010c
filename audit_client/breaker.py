"""A circuit breaker: a dead audit-service costs the caller nothing and is probed gently.

closed: connect and send freely; consecutive failures back off exponentially, and
`failure_threshold` of them open the breaker. open: no attempts; batches go straight to
the spool. After the open period the breaker is half_open: one probe (a stream with
one batch in flight) is allowed; its ack closes the breaker, its failure opens it again
for twice as long (up to `max_reset_seconds`).
"""

from __future__ import annotations

import enum
import logging
import random
import time
from collections.abc import Callable

log = logging.getLogger(__name__)


class BreakerState(enum.StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreaker:
    """See the module docstring. Not thread-safe: used from the client's event loop."""

    def __init__(
        self,
        *,
        failure_threshold: int,
        reset_seconds: float,
        backoff_initial_seconds: float,
        max_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._threshold = failure_threshold
        self._reset = reset_seconds
        self._initial = backoff_initial_seconds
        self._max = max_seconds
        self._clock = clock
        self._state = BreakerState.CLOSED
        self._failures = 0
        self._open_for = reset_seconds
        self._not_before = 0.0
        self.entered = {state: 0 for state in BreakerState}

    @property
    def state(self) -> BreakerState:
        return self._state

    @property
    def is_open(self) -> bool:
        """True while no attempt may be made (before the half-open probe)."""
        return self._state is BreakerState.OPEN

    def delay(self) -> float:
        """Seconds to wait before the next attempt: backoff or the rest of the open period."""
        return max(0.0, self._not_before - self._clock())

    def allow(self) -> bool:
        """May the client try the audit-service now? Moves open to half_open when due."""
        if self.delay() > 0:
            return False
        if self._state is BreakerState.OPEN:
            self._enter(BreakerState.HALF_OPEN)
        return True

    def record_success(self) -> None:
        """The audit-service acknowledged a batch."""
        self._failures = 0
        self._open_for = self._reset
        self._not_before = 0.0
        if self._state is not BreakerState.CLOSED:
            self._enter(BreakerState.CLOSED)

    def record_failure(self) -> None:
        """A connect, a send or an ack failed."""
        self._failures += 1
        now = self._clock()
        if self._state is BreakerState.HALF_OPEN:
            self._open_for = min(self._open_for * 2, self._max)
            self._open(now)
        elif self._state is BreakerState.CLOSED and self._failures >= self._threshold:
            self._open(now)
        elif self._state is BreakerState.CLOSED:
            backoff = min(self._initial * 2 ** (self._failures - 1), self._max)
            self._not_before = now + backoff * random.uniform(0.5, 1.0)

    def _open(self, now: float) -> None:
        self._not_before = now + self._open_for * random.uniform(0.8, 1.0)
        self._enter(BreakerState.OPEN)

    def _enter(self, state: BreakerState) -> None:
        log.log(
            logging.WARNING if self._state is BreakerState.CLOSED else logging.INFO,
            "audit-service circuit breaker %s -> %s",
            self._state,
            state,
        )
        self._state = state
        self.entered[state] += 1
