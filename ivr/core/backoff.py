"""The one retry wait: capped exponential backoff with jitter, or the server's Retry-After.

Used by the portal client (a closed-requests page asked again inside its time budget) and by
the delivery outbox (a rating or a comment posted again later). Pure: the random generator
is passed in, so tests fix it.
"""

from __future__ import annotations

import random

_MAX_DOUBLINGS = 30  # 2**30 times any base is past any cap; keeps the float finite


def backoff_s(
    failures: int,
    base_s: float,
    cap_s: float,
    rng: random.Random,
    retry_after_s: float | None = None,
) -> float:
    """Seconds to wait after ``failures`` earlier failures (0 for the first retry).

    The server's ``Retry-After`` wins when given. Otherwise the ceiling doubles from
    ``base_s`` per failure up to ``cap_s``, and the wait is drawn between half the ceiling and
    the ceiling, so clients that failed together do not come back together.
    """
    if retry_after_s is not None:
        return max(0.0, retry_after_s)
    ceiling = min(cap_s, base_s * 2 ** min(failures, _MAX_DOUBLINGS))
    return rng.uniform(ceiling / 2, ceiling)
