"""The one retry wait (ivr.core.policy.backoff_s), as the portal client and the outbox use it."""

from __future__ import annotations

import random

import pytest

from ivr.core.policy import backoff_s


@pytest.mark.parametrize(
    ("failures", "base", "cap", "low", "high"),
    [
        (0, 1.0, 60.0, 0.5, 1.0),
        (1, 1.0, 60.0, 1.0, 2.0),
        (5, 1.0, 60.0, 16.0, 32.0),
        (6, 1.0, 60.0, 30.0, 60.0),  # capped
        (10_000, 5.0, 600.0, 300.0, 600.0),  # no overflow however many tries
    ],
    ids=["first", "second", "sixth", "capped", "many-tries"],
)
def test_wait_is_jittered_within_half_and_whole_ceiling(
    failures: int, base: float, cap: float, low: float, high: float
) -> None:
    rng = random.Random(7)
    waits = [backoff_s(failures, base, cap, rng) for _ in range(200)]
    assert all(low <= w <= high for w in waits)
    assert len(set(waits)) > 1  # jitter, not one fixed value


@pytest.mark.parametrize(
    ("retry_after", "expected"), [(0.0, 0.0), (12.5, 12.5), (-3.0, 0.0)], ids=["0", "12.5", "neg"]
)
def test_retry_after_wins_and_draws_nothing(retry_after: float, expected: float) -> None:
    rng = random.Random(1)
    before = rng.getstate()
    assert backoff_s(3, 1.0, 60.0, rng, retry_after) == expected
    assert rng.getstate() == before


def test_same_seed_same_waits() -> None:
    a, b = random.Random(42), random.Random(42)
    assert [backoff_s(n, 5.0, 600.0, a) for n in range(8)] == [
        backoff_s(n, 5.0, 600.0, b) for n in range(8)
    ]
