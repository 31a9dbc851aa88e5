"""Small figures for ``/metrics`` and the console, each one cheap query."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import Engine, func, select, text

from storage.models import Delivery, DeliveryState, ImportRun, Survey, SurveyStatus


def outbox_state_counts(engine: Engine) -> dict[str, int]:
    """pending / delivered / dead, always all three."""
    counts = {DeliveryState.PENDING: 0, DeliveryState.DELIVERED: 0, DeliveryState.DEAD: 0}
    with engine.connect() as conn:
        for state, n in conn.execute(select(Delivery.state, func.count()).group_by(Delivery.state)):
            counts[state] = int(n)
    return counts


def newest_completed_import(engine: Engine) -> tuple[date, datetime] | None:
    """The newest local day whose import went to the end, and when it completed."""
    with engine.connect() as conn:
        day = conn.scalar(
            select(func.max(ImportRun.local_date)).where(ImportRun.completed_at.is_not(None))
        )
        if day is None:
            return None
        completed = conn.scalar(select(ImportRun.completed_at).where(ImportRun.local_date == day))
    assert completed is not None
    return day, completed


def database_reachable(engine: Engine) -> str | None:
    """None when a trivial query goes through, else why not (for ``/readyz``)."""
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:
        return f"database unreachable: {type(exc).__name__}"
    return None


@dataclass(frozen=True)
class DayProgress:
    """Where one local day's surveys stand (for the night's progress line)."""

    total: int
    done: int
    in_calls: int
    waiting: int  # pending, their next attempt later than now (a retry)
    due: int  # pending, may be dialled now
    next_retry_at: datetime | None


def day_progress(engine: Engine, day: date, now: datetime) -> DayProgress:
    later = Survey.next_attempt_at > now
    with engine.connect() as conn:
        rows = conn.execute(
            select(Survey.status, later, func.count(), func.min(Survey.next_attempt_at))
            .where(Survey.local_date == day)
            .group_by(Survey.status, later)
        ).all()
    counts = {"done": 0, "dialing": 0, "waiting": 0, "due": 0}
    next_retry: datetime | None = None
    for status, is_later, n, first in rows:
        if status == SurveyStatus.PENDING:
            key = "waiting" if is_later else "due"
            if is_later and first is not None:
                next_retry = first if next_retry is None else min(next_retry, first)
        else:
            key = "done" if status == SurveyStatus.DONE else "dialing"
        counts[key] += int(n)
    return DayProgress(
        total=sum(counts.values()),
        done=counts["done"],
        in_calls=counts["dialing"],
        waiting=counts["waiting"],
        due=counts["due"],
        next_retry_at=next_retry,
    )
