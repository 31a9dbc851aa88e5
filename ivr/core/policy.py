"""Retries: what a finished attempt means (its disposition, whether the survey is retried or
final), and how long a failed request to the portal waits before it is tried again.

Pure: takes the SIP facts, the attempt history and ``now``; returns a decision.

Dispositions: ``answered``, ``busy`` (486, 600), ``no_answer`` (480, 408, our ring timeout),
``declined`` (603), ``invalid_number`` (404, 484, 604: never retried), ``failed`` (5xx, no
response, other codes: a trunk fault, not the citizen's), ``interrupted`` (the runner died
during the attempt).

Retries follow a ladder per disposition (``dialing.retry``): the n-th busy waits the n-th busy
step, the last step repeating. Failed attempts wait ``retry.failed`` first, then the no-answer
ladder, and do not use up the citizen's ``max_attempts``. Nothing is retried past the survey's
deadline: it ends as ``no_answer`` with reason ``survey_expired``.

The one retry wait of a request to the portal (:func:`backoff_s`): capped exponential backoff
with jitter, or the server's Retry-After. Used by the portal client (a closed-requests page
asked again inside its time budget) and by the delivery outbox (a rating or a comment posted
again later). The random generator is passed in, so tests fix it.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from ivr.core.vocabulary import Disposition, Outcome, Reason
from ivr.sip.api import EndedBy

NEVER_RETRIED = frozenset({Disposition.DECLINED, Disposition.INVALID_NUMBER})


def disposition(answered: bool, final_status: int | None, ended_by: EndedBy | None) -> Disposition:
    if answered:
        return Disposition.ANSWERED
    if ended_by is EndedBy.LOCAL_CANCEL:
        return Disposition.NO_ANSWER
    if final_status in (486, 600):
        return Disposition.BUSY
    if final_status in (480, 408, 487):
        return Disposition.NO_ANSWER
    if final_status == 603:
        return Disposition.DECLINED
    if final_status in (404, 484, 604):
        return Disposition.INVALID_NUMBER
    return Disposition.FAILED


@dataclass(frozen=True)
class Retry:
    at: datetime


@dataclass(frozen=True)
class Final:
    outcome: str
    reason: str | None


Ladder = Callable[[str], Sequence[timedelta]]


def counted_attempts(history: Sequence[str]) -> int:
    """Attempts that use up the citizen's allowance: trunk faults do not."""
    return sum(1 for d in history if d != Disposition.FAILED)


def retry_delay(history: Sequence[str], ladder: Ladder) -> timedelta:
    """The wait after the last attempt of ``history`` (a list of dispositions, oldest first)."""
    last = history[-1]
    if last == Disposition.FAILED:
        failed_steps = ladder(Disposition.FAILED)
        run = 0  # consecutive trunk faults at the end
        for d in reversed(history):
            if d != Disposition.FAILED:
                break
            run += 1
        if run <= len(failed_steps):
            return failed_steps[run - 1]
        steps = ladder(Disposition.NO_ANSWER)
        return steps[min(run - len(failed_steps) - 1, len(steps) - 1)]
    kind = last if last in (Disposition.BUSY, Disposition.NO_ANSWER) else Disposition.NO_ANSWER
    steps = ladder(kind)
    same = sum(1 for d in history if d == last)
    return steps[min(same - 1, len(steps) - 1)]


def decide_unanswered(
    history: Sequence[str],
    max_attempts: int,
    ladder: Ladder,
    now: datetime,
    deadline: datetime | None = None,
) -> Retry | Final:
    """Decision after an attempt that reached nobody; ``history[-1]`` is its disposition."""
    last = history[-1]
    if last in NEVER_RETRIED:
        return Final(Outcome.NO_ANSWER, last)
    if counted_attempts(history) >= max_attempts:
        return Final(Outcome.NO_ANSWER, last)
    at = now + retry_delay(history, ladder)
    if deadline is not None and at >= deadline:
        return Final(Outcome.NO_ANSWER, Reason.SURVEY_EXPIRED)
    return Retry(at)


def after_no_input(
    no_input_calls: int,
    allowed_retries: int,
    counted: int,
    max_attempts: int,
    next_window: datetime | None,
    deadline: datetime | None = None,
) -> Retry | Final:
    """An answered call without a valid key: one more call in a later window, if allowed."""
    if no_input_calls > allowed_retries or counted >= max_attempts or next_window is None:
        return Final(Outcome.NO_INPUT, None)
    if deadline is not None and next_window >= deadline:
        return Final(Outcome.NO_INPUT, None)
    return Retry(next_window)


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
