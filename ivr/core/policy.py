"""What a finished attempt means: its disposition, and whether the survey is retried or final.

Pure: takes the SIP facts, the attempt history and ``now``; returns a decision.

Dispositions: ``answered``, ``busy`` (486, 600), ``no_answer`` (480, 408, our ring timeout),
``declined`` (603), ``invalid_number`` (404, 484, 604: never retried), ``failed`` (5xx, no
response, other codes: a trunk fault, not the citizen's), ``interrupted`` (the runner died
during the attempt).

Retries follow a ladder per disposition (``dialing.retry``): the n-th busy waits the n-th busy
step, the last step repeating. Failed attempts wait ``retry.failed`` first, then the no-answer
ladder, and do not use up the citizen's ``max_attempts``. Nothing is retried past the survey's
deadline: it ends as ``no_answer`` with reason ``survey_expired``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from ivr.sip.api import EndedBy

NEVER_RETRIED = frozenset({"declined", "invalid_number"})


def disposition(answered: bool, final_status: int | None, ended_by: EndedBy | None) -> str:
    if answered:
        return "answered"
    if ended_by is EndedBy.LOCAL_CANCEL:
        return "no_answer"
    if final_status in (486, 600):
        return "busy"
    if final_status in (480, 408, 487):
        return "no_answer"
    if final_status == 603:
        return "declined"
    if final_status in (404, 484, 604):
        return "invalid_number"
    return "failed"


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
    return sum(1 for d in history if d != "failed")


def retry_delay(history: Sequence[str], ladder: Ladder) -> timedelta:
    """The wait after the last attempt of ``history`` (a list of dispositions, oldest first)."""
    last = history[-1]
    if last == "failed":
        failed_steps = ladder("failed")
        run = 0  # consecutive trunk faults at the end
        for d in reversed(history):
            if d != "failed":
                break
            run += 1
        if run <= len(failed_steps):
            return failed_steps[run - 1]
        steps = ladder("no_answer")
        return steps[min(run - len(failed_steps) - 1, len(steps) - 1)]
    kind = last if last in ("busy", "no_answer") else "no_answer"
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
        return Final("no_answer", last)
    if counted_attempts(history) >= max_attempts:
        return Final("no_answer", last)
    at = now + retry_delay(history, ladder)
    if deadline is not None and at >= deadline:
        return Final("no_answer", "survey_expired")
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
        return Final("no_input", None)
    if deadline is not None and next_window >= deadline:
        return Final("no_input", None)
    return Retry(next_window)


def after_unanswered(
    disp: str, attempts: int, max_attempts: int, delay: timedelta, now: datetime
) -> Retry | Final:
    """One fixed delay for every retry (used until the dialer passes its attempt history)."""
    return decide_unanswered([disp] * attempts, max_attempts, lambda _kind: (delay,), now)
