"""The calls-per-second token bucket, with time as an input."""

from __future__ import annotations

import pytest

from ivr.core.pacing import TokenBucket


def test_burst_then_rate() -> None:
    b = TokenBucket(rate=2.0)
    assert b.take(0.0, 10) == 2  # the saved-up burst
    assert b.take(0.0, 10) == 0
    assert b.take(0.49, 10) == 0
    assert b.take(0.5, 10) == 1
    assert b.take(10.0, 10) == 2  # never more than the burst


def test_over_a_minute_the_rate_holds() -> None:
    b = TokenBucket(rate=0.5)
    granted = sum(b.take(t / 10, 5) for t in range(600))  # 60 s polled every 100 ms
    assert granted == pytest.approx(0.5 * 60 + 1, abs=1)


def test_give_back_and_wait() -> None:
    b = TokenBucket(rate=1.0)
    assert b.take(0.0, 1) == 1
    assert b.take(0.25, 1) == 0  # a quarter of a token refilled
    b.give_back(1)
    assert b.take(0.25, 1) == 1


def test_time_going_backwards_grants_nothing_extra() -> None:
    b = TokenBucket(rate=1.0)
    b.take(5.0, 1)
    assert b.take(4.0, 1) == 0
