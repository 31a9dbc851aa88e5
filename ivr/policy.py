"""What a finished attempt means: its disposition, and whether the survey is retried or final.

Pure: takes the SIP facts and the counts, returns a decision.

Dispositions: ``answered``, ``busy`` (486, 600), ``no_answer`` (480, 408, our ring timeout),
``declined`` (603), ``invalid_number`` (404, 484, 604: never retried), ``failed`` (5xx, no
response, other codes: a trunk fault, not the citizen's).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from ivr.sip.api import EndedBy

RETRIED = frozenset({"busy", "no_answer", "failed"})


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


def after_unanswered(
    disp: str, attempts: int, max_attempts: int, retry_delay: timedelta, now: datetime
) -> Retry | Final:
    """Decision for an attempt that reached nobody (``disp`` is not ``answered``)."""
    if disp in RETRIED and attempts < max_attempts:
        return Retry(now + retry_delay)
    return Final("no_answer", disp)
