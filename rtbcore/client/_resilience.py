"""Reconnection policy: exponential backoff with full jitter, a circuit breaker over connection
attempts, and the clock both read (injectable, so that tests control time)."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from typing import Protocol

from rtbcore.errors import InvalidInputError


class Clock(Protocol):
    """What the client reads time from and sleeps on."""

    def monotonic(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...


class SystemClock:
    """The real clock."""

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class Backoff:
    """Exponential backoff with full jitter: attempt ``k`` (0-based) waits a uniform draw in
    ``[0, min(max_s, base_s * 2**k)]``. With the defaults the ceilings are 1, 2, 4, 8, 16, 32,
    60, 60... seconds."""

    def __init__(self, base_s: float = 1.0, max_s: float = 60.0,
                 random: Callable[[], float] = random.random) -> None:
        if not (base_s > 0 and max_s >= base_s):
            raise InvalidInputError(
                f"Backoff: need 0 < base_s <= max_s, got base_s={base_s!r} max_s={max_s!r}")
        self.base_s = float(base_s)
        self.max_s = float(max_s)
        self.random = random

    def ceiling(self, attempt: int) -> float:
        return min(self.max_s, self.base_s * 2.0 ** min(attempt, 60))

    def delay(self, attempt: int) -> float:
        return self.random() * self.ceiling(attempt)


class CircuitBreaker:
    """Over connection attempts: ``failure_threshold`` consecutive failures open it; while open
    no attempt is made and new requests are refused; after ``cooldown_s`` one probe goes
    through (half-open); its success closes the circuit, its failure opens it again.

    ``state`` is ``"closed"``, ``"open"`` or ``"half_open"``; ``on_change(state)`` is called on
    every change."""

    def __init__(self, failure_threshold: int = 5, cooldown_s: float = 30.0, *,
                 clock: Clock | None = None,
                 on_change: Callable[[str], None] | None = None) -> None:
        if isinstance(failure_threshold, bool) or not isinstance(failure_threshold, int) \
                or failure_threshold < 1:
            raise InvalidInputError(
                f"CircuitBreaker: failure_threshold must be an int >= 1, got {failure_threshold!r}")
        if not cooldown_s >= 0:
            raise InvalidInputError(f"CircuitBreaker: cooldown_s must be >= 0, got {cooldown_s!r}")
        self.failure_threshold = failure_threshold
        self.cooldown_s = float(cooldown_s)
        self.clock: Clock = clock or SystemClock()
        self.on_change = on_change
        self.state = "closed"
        self.failures = 0
        self.opened_at = 0.0

    def _set(self, state: str) -> None:
        if state != self.state:
            self.state = state
            if self.on_change is not None:
                self.on_change(state)

    def wait_s(self) -> float:
        """Seconds until an attempt is allowed (0: now); moves open -> half_open once the
        cool-down is over."""
        if self.state != "open":
            return 0.0
        left = self.opened_at + self.cooldown_s - self.clock.monotonic()
        if left > 0:
            return left
        self._set("half_open")
        return 0.0

    def success(self) -> None:
        self.failures = 0
        self._set("closed")

    def failure(self) -> None:
        self.failures += 1
        if self.state == "half_open" or self.failures >= self.failure_threshold:
            self.opened_at = self.clock.monotonic()
            self._set("open")
