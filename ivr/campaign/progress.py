"""The night's progress line (every 30 s while it dials): done of total, in calls, waiting for
a retry and when, and an estimate of when the day's calls finish. Pure: figures and ``now`` in,
text out."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from storage.figures import DayProgress

PROGRESS_EVERY_S = 30.0


def estimate_finish(
    p: DayProgress, now: datetime, elapsed_s: float, done_since_start: int
) -> datetime | None:
    """At the pace of this run so far; never before the first retry when only retries are
    left. None while nothing has finished yet (no pace to go by)."""
    remaining = p.total - p.done
    if remaining == 0:
        return now
    if done_since_start <= 0 or elapsed_s <= 0:
        return None
    eta = now + timedelta(seconds=remaining * elapsed_s / done_since_start)
    if p.in_calls == 0 and p.due == 0 and p.next_retry_at is not None:
        eta = max(eta, p.next_retry_at)
    return eta


def progress_line(
    day: date,
    p: DayProgress,
    now: datetime,
    tz: ZoneInfo,
    elapsed_s: float,
    done_since_start: int,
) -> str:
    def hhmm(t: datetime) -> str:
        local = t.astimezone(tz)
        same_day = local.date() == now.astimezone(tz).date()
        return local.strftime("%H:%M:%S" if same_day else "%Y-%m-%d %H:%M")

    waiting = f"{p.waiting} waiting for a retry"
    if p.waiting and p.next_retry_at is not None:
        waiting += f" (next at {hhmm(p.next_retry_at)})"
    eta = estimate_finish(p, now, elapsed_s, done_since_start)
    return (
        f"progress {day.isoformat()}: {p.done} of {p.total} done, {p.in_calls} in calls, "
        f"{waiting}, {p.due} due; "
        + ("finish not yet estimated" if eta is None else f"finish estimated at {hhmm(eta)}")
    )
