"""What the Now page shows, read in one short connection: calls in progress, today's progress,
the call window, the pause, the outbox and alarms. Every query is an index range (surveys by
status and next attempt or by completion time, deliveries by state), so the page stays fast
with a million surveys (``bench/console_bench.py``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import Connection, and_, func, select

from ivr.core.config import Config
from ivr.core.intake import mask_phone
from ivr.core.windows import CallCalendar, local_day_bounds, next_opening, window_end
from storage.admin import PauseState
from storage.heartbeat import NodeStatus
from storage.models import (
    CallAttempt,
    Delivery,
    DeliveryState,
    ImportRun,
    Survey,
    SurveyStatus,
)

RATE_WINDOW = timedelta(minutes=15)
SILENT_SHOWN_S = 24 * 3600  # a node silent for longer is taken as retired: no alarm
IMPORT_STUCK = timedelta(minutes=10)


@dataclass(frozen=True)
class LiveCall:
    survey_id: str
    phone: str  # masked
    node: str | None
    state: str  # ringing or answered
    seconds: int


@dataclass(frozen=True)
class Alarm:
    kind: str  # portal_token, portal_down, import_incomplete, sip_lost, node_silent
    detail: str


@dataclass
class NowData:
    now: datetime
    calls: list[LiveCall]
    done: dict[str, int]
    pending_due: int
    waiting_retry: int
    next_retry: datetime | None
    eta: datetime | None
    window_open_until: datetime | None
    next_window: datetime | None
    pause: PauseState
    backlog: int
    dead: int
    alarms: list[Alarm] = field(default_factory=list)

    @property
    def done_total(self) -> int:
        return sum(self.done.values())


def _calls(conn: Connection, now: datetime) -> list[LiveCall]:
    q = (
        select(
            Survey.id,
            Survey.phone,
            CallAttempt.node,
            CallAttempt.started_at,
            CallAttempt.answered_at,
        )
        .join(CallAttempt, CallAttempt.survey_id == Survey.id)
        .where(Survey.status == SurveyStatus.DIALING, CallAttempt.disposition == "dialing")
        .order_by(CallAttempt.started_at)
        .limit(500)
    )
    out = []
    for sid, phone, node, started, answered in conn.execute(q):
        started = _aware(started)
        out.append(
            LiveCall(
                sid,
                mask_phone(phone) if phone else "-",
                node,
                "answered" if answered is not None else "ringing",
                max(0, int((now - started).total_seconds())),
            )
        )
    return out


def _aware(value: datetime) -> datetime:
    from datetime import UTC

    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def read_now(
    conn: Connection, pause: PauseState, config: Config, calendar: CallCalendar, now: datetime
) -> NowData:
    """Everything on Now, read on ``conn``; the pause state is read before (on SQLite a second
    transaction of this process would wait for the lock ``conn`` holds)."""
    tz = config.tz
    day_start = local_day_bounds(now.astimezone(tz).date(), tz)[0]
    pending = Survey.status == SurveyStatus.PENDING
    done = dict(
        conn.execute(
            select(Survey.outcome, func.count())
            .where(Survey.completed_at >= day_start, Survey.outcome.is_not(None))
            .group_by(Survey.outcome)
        ).all()
    )
    pending_due = conn.scalar(
        select(func.count()).where(pending, Survey.next_attempt_at <= now).select_from(Survey)
    )
    waiting, next_retry = conn.execute(
        select(func.count(), func.min(Survey.next_attempt_at)).where(
            pending, Survey.next_attempt_at > now
        )
    ).one()
    calls = _calls(conn, now)
    recent = conn.scalar(
        select(func.count()).where(Survey.completed_at >= now - RATE_WINDOW).select_from(Survey)
    )
    remaining = int(pending_due or 0) + int(waiting or 0) + len(calls)
    eta = None
    if remaining and recent:
        eta = now + RATE_WINDOW * (remaining / int(recent))
    max_call = timedelta(seconds=config.dialing.max_call_s)
    open_until = window_end(now, calendar, tz)
    nxt = None if open_until else next_opening(now, calendar, tz, max_call)
    counts = dict(
        conn.execute(
            select(Delivery.state, func.count())
            .where(Delivery.state.in_((DeliveryState.PENDING, DeliveryState.DEAD)))
            .group_by(Delivery.state)
        ).all()
    )
    data = NowData(
        now=now,
        calls=calls,
        done={str(k): int(v) for k, v in done.items()},
        pending_due=int(pending_due or 0),
        waiting_retry=int(waiting or 0),
        next_retry=_aware(next_retry) if next_retry is not None else None,
        eta=eta,
        window_open_until=open_until,
        next_window=nxt,
        pause=pause,
        backlog=int(counts.get(DeliveryState.PENDING, 0)),
        dead=int(counts.get(DeliveryState.DEAD, 0)),
    )
    data.alarms = _alarms(conn, now)
    return data


def _alarms(conn: Connection, now: datetime) -> list[Alarm]:
    alarms = []
    failing = and_(Delivery.state == DeliveryState.PENDING, Delivery.tries > 0)
    refused = conn.scalar(
        select(func.count())
        .select_from(Delivery)
        .where(failing, Delivery.http_status.in_((401, 403)))
    )
    if refused:
        alarms.append(Alarm("portal_token", str(refused)))
    down = conn.scalar(
        select(func.count())
        .select_from(Delivery)
        .where(failing, (Delivery.http_status.is_(None)) | (Delivery.http_status >= 500))
    )
    if down:
        alarms.append(Alarm("portal_down", str(down)))
    stuck = conn.execute(
        select(ImportRun.local_date)
        .where(ImportRun.completed_at.is_(None), ImportRun.started_at < now - IMPORT_STUCK)
        .order_by(ImportRun.local_date.desc())
        .limit(3)
    ).all()
    for (day,) in stuck:
        alarms.append(Alarm("import_incomplete", day.isoformat()))
    return alarms


def node_alarms(nodes: list[NodeStatus], now: datetime) -> list[Alarm]:
    """A node silent (for less than a day) or whose SIP registration failed."""
    alarms = []
    for n in nodes:
        if n.silent and n.silent_for_s(now) < SILENT_SHOWN_S:
            alarms.append(Alarm("node_silent", n.name))
        elif not n.silent and n.registration == "failed":
            alarms.append(Alarm("sip_lost", n.name))
    return alarms
