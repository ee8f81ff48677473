"""The circuit breaker between a node and Redis: after a failed call it stops calling for a
while (open), then lets one attempt through (half-open); a success closes it again."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

__all__ = ["CircuitBreaker"]


class CircuitBreaker:
    """``state`` is ``"closed"`` (calls flow), ``"open"`` (no calls until ``retry_at``) or
    ``"half_open"`` (one probe is in flight). The wait after the k-th failure in a row is
    ``retry_after * 2**(k - 1)``, at most ``max_retry_after`` seconds. Thread-safe."""

    def __init__(
        self,
        retry_after: float = 0.5,
        max_retry_after: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.retry_after = float(retry_after)
        self.max_retry_after = float(max_retry_after)
        self._clock = clock
        self._lock = threading.Lock()
        self.state = "closed"
        self.failures = 0            # failures since construction
        self.consecutive = 0         # failures since the last success
        self.opened = 0              # times the breaker opened
        self.retry_at = 0.0
        self.last_error: str | None = None

    def allow(self) -> bool:
        """May a call go out now? An open breaker lets one probe through once ``retry_at`` has
        passed (and turns half-open)."""
        with self._lock:
            if self.state == "open" and self._clock() >= self.retry_at:
                self.state = "half_open"
            return self.state != "open"

    def success(self) -> None:
        with self._lock:
            self.state = "closed"
            self.consecutive = 0

    def failure(self, error: BaseException) -> None:
        with self._lock:
            self.failures += 1
            self.consecutive += 1
            if self.state != "open":
                self.opened += 1
            self.state = "open"
            wait = min(self.retry_after * 2 ** (self.consecutive - 1), self.max_retry_after)
            self.retry_at = self._clock() + wait
            self.last_error = f"{type(error).__name__}: {error}"

    def seconds_to_retry(self) -> float:
        with self._lock:
            return max(0.0, self.retry_at - self._clock()) if self.state == "open" else 0.0

    def __repr__(self) -> str:
        return f"CircuitBreaker(state={self.state!r}, failures={self.failures})"
