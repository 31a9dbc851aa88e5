"""Calls-per-second limit: a token bucket. Pure: the caller passes monotonic time."""

from __future__ import annotations


class TokenBucket:
    """``rate`` tokens a second, at most ``burst`` saved up."""

    def __init__(self, rate: float, burst: float | None = None) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = rate
        self.burst = max(1.0, burst if burst is not None else rate)
        self.tokens = self.burst
        self.last: float | None = None

    def _refill(self, now: float) -> None:
        if self.last is not None and now > self.last:
            self.tokens = min(self.burst, self.tokens + (now - self.last) * self.rate)
        self.last = now if self.last is None else max(self.last, now)

    def take(self, now: float, wanted: int) -> int:
        """Take up to ``wanted`` whole tokens; returns how many were granted."""
        self._refill(now)
        granted = max(0, min(wanted, int(self.tokens)))
        self.tokens -= granted
        return granted

    def give_back(self, n: int) -> None:
        self.tokens = min(self.burst, self.tokens + n)
