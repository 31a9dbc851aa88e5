"""What the Now page shows, read in one short connection: calls in progress, today's progress,
the call window, the pause, the outbox and alarms. Every query is one index range (surveys by
status and next attempt, or by completion time; deliveries by state) counted with FILTER
clauses, so the page stays fast with a million surveys (``bench/console_bench.py``).

The figures are computed at most once per ``NOW_CACHE_S`` for everyone (:class:`Recent`),
in the background while a page is open: however many supervisors keep Now open, refreshing
every 3 s, the database is asked no more often and no refresh waits for it; a change made in
the console clears them at once."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Generic, TypeVar
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, Engine, and_, func, select

from ivr.campaign.operator import ago
from ivr.core.config import Config
from ivr.core.intake import mask_phone
from ivr.core.windows import CallCalendar, local_day_bounds, next_opening, window_end
from storage.admin import PauseState
from storage.heartbeat import NodeStatus, list_nodes
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
log = logging.getLogger(__name__)
T = TypeVar("T")
NOW_CACHE_S = 2.0  # fresh for 2 s (the page refreshes every 3 s)...
NOW_STALE_S = 15.0  # ...then served while the next is computed, up to this age


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
    remaining: int  # due, waiting for a retry, or in a call
    calls: list[LiveCall]
    done: dict[str, int]
    pending_due: int
    waiting_retry: int
    next_retry: datetime | None
    eta: datetime | None  # None: not known (no pace yet, or no call window in 8 days)
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


def now_figures(
    engine: Engine, pause: PauseState, config: Config, calendar: CallCalendar, now: datetime
) -> tuple[NowData, list[NodeStatus]]:
    """The Now figures and the nodes, with the nodes' alarms."""
    nodes = list_nodes(engine, now)
    with engine.connect() as conn:
        data = read_now(conn, pause, config, calendar, now)
    data.alarms.extend(node_alarms(nodes, now))
    return data, nodes


class Recent(Generic[T]):
    """The last value computed, shared by every request (``mono``: a monotonic time).

    Younger than ``ttl_s``: served as it is. Younger than ``stale_s``: served as it is while
    one background thread computes the next (so a page refreshing every few seconds never
    waits for the database). Older, or cleared by a change: computed in the request."""

    def __init__(self, ttl_s: float, stale_s: float) -> None:
        self.ttl_s, self.stale_s = ttl_s, stale_s
        self._lock = threading.Lock()
        self._value: tuple[float, T] | None = None
        self._refreshing = False
        self._epoch = 0  # bumped by clear(): a computation begun before it is not kept

    def get(self, mono: float, compute: Callable[[], T]) -> T:
        with self._lock:
            if self._value is not None:
                age = mono - self._value[0]
                if 0 <= age < self.ttl_s:
                    return self._value[1]
                if 0 <= age < self.stale_s:
                    if not self._refreshing:
                        self._refreshing = True
                        threading.Thread(target=self._refresh, args=(mono, compute, self._epoch),
                                         name="now-figures", daemon=True).start()  # fmt: skip
                    return self._value[1]
            epoch = self._epoch
        value = compute()
        self._keep(mono, value, epoch)
        return value

    def _refresh(self, mono: float, compute: Callable[[], T], epoch: int) -> None:
        try:
            self._keep(mono, compute(), epoch)
        except Exception:  # noqa: BLE001 - the next request computes it in its own time
            log.exception("the Now figures could not be refreshed")
        finally:
            with self._lock:
                self._refreshing = False

    def _keep(self, mono: float, value: T, epoch: int) -> None:
        with self._lock:
            if epoch == self._epoch:
                self._value = (mono, value)

    def clear(self) -> None:
        with self._lock:
            self._value = None
            self._epoch += 1


def read_now(
    conn: Connection, pause: PauseState, config: Config, calendar: CallCalendar, now: datetime
) -> NowData:
    """Everything on Now, read on ``conn``; the pause state is read before (on SQLite a second
    transaction of this process would wait for the lock ``conn`` holds)."""
    tz = config.tz
    day_start = local_day_bounds(now.astimezone(tz).date(), tz)[0]
    done, recent = _finished(conn, day_start, now)
    pending_due, waiting, next_retry = _pending(conn, now)
    calls = _calls(conn, now)
    remaining = pending_due + waiting + len(calls)
    max_call = timedelta(seconds=config.dialing.max_call_s)
    eta = None
    if remaining and recent:
        first = next_retry if next_retry is not None and not pending_due else now
        calling = RATE_WINDOW * (remaining / recent)
        eta = finish_in_windows(max(now, first), calling, calendar, tz, max_call)
    open_until = window_end(now, calendar, tz)
    nxt = None if open_until else next_opening(now, calendar, tz, max_call)
    backlog, dead, alarms = _outbox(conn)
    return NowData(
        now=now,
        remaining=remaining,
        calls=calls,
        done=done,
        pending_due=pending_due,
        waiting_retry=waiting,
        next_retry=next_retry,
        eta=eta,
        window_open_until=open_until,
        next_window=nxt,
        pause=pause,
        backlog=backlog,
        dead=dead,
        alarms=alarms + _stuck_imports(conn, now),
    )


def _finished(conn: Connection, day_start: datetime, now: datetime) -> tuple[dict[str, int], int]:
    """Today's finished surveys by outcome, and how many finished in the last ``RATE_WINDOW``
    (the pace), in one index range over the completion time."""
    since = now - RATE_WINDOW
    today, lately = Survey.completed_at >= day_start, Survey.completed_at >= since
    rows = conn.execute(
        select(Survey.outcome, func.count().filter(today), func.count().filter(lately))
        .where(Survey.completed_at >= min(day_start, since), Survey.outcome.is_not(None))
        .group_by(Survey.outcome)
    ).all()
    done = {str(outcome): int(n) for outcome, n, _ in rows if n}
    return done, sum(int(r) for _, _, r in rows)


def _pending(conn: Connection, now: datetime) -> tuple[int, int, datetime | None]:
    """Pending surveys due now, those waiting for a retry and the first retry's time (one
    range of the status index)."""
    later = Survey.next_attempt_at > now
    due, waiting, first = conn.execute(
        select(
            func.count().filter(Survey.next_attempt_at <= now),
            func.count().filter(later),
            func.min(Survey.next_attempt_at).filter(later),
        ).where(Survey.status == SurveyStatus.PENDING)
    ).one()
    return int(due or 0), int(waiting or 0), _aware(first) if first is not None else None


def _outbox(conn: Connection) -> tuple[int, int, list[Alarm]]:
    """The delivery backlog, the dead letters, and the portal alarms (failing deliveries the
    portal refused with 401/403, or could not be reached for), in one scan of those rows."""
    failing = and_(Delivery.state == DeliveryState.PENDING, Delivery.tries > 0)
    refused = and_(failing, Delivery.http_status.in_((401, 403)))
    down = and_(failing, Delivery.http_status.is_(None) | (Delivery.http_status >= 500))
    counts = {
        state: (int(n), int(r or 0), int(d or 0))
        for state, n, r, d in conn.execute(
            select(
                Delivery.state,
                func.count(),
                func.count().filter(refused),
                func.count().filter(down),
            )
            .where(Delivery.state.in_((DeliveryState.PENDING, DeliveryState.DEAD)))
            .group_by(Delivery.state)
        ).all()
    }
    backlog, n_refused, n_down = counts.get(DeliveryState.PENDING, (0, 0, 0))
    alarms = []
    if n_refused:
        alarms.append(Alarm("portal_token", str(n_refused)))
    if n_down:
        alarms.append(Alarm("portal_down", str(n_down)))
    return backlog, counts.get(DeliveryState.DEAD, (0, 0, 0))[0], alarms


def finish_in_windows(
    start: datetime, calling: timedelta, calendar: CallCalendar, tz: ZoneInfo, max_call: timedelta
) -> datetime | None:
    """When ``calling`` of dialling time, begun at ``start``, is over: it goes on only inside
    the call windows (holidays and blackouts applied), so what does not fit in this window
    continues in the next ones. None if it does not end within 8 days."""
    at, left = start, calling
    while at < start + timedelta(days=8):
        opening = at if window_end(at, calendar, tz) else next_opening(at, calendar, tz, max_call)
        if opening is None:
            return None
        end = window_end(opening, calendar, tz)
        if end is None or end - opening >= left:
            return opening + left
        left -= end - opening
        at = end
    return None


def _stuck_imports(conn: Connection, now: datetime) -> list[Alarm]:
    stuck = conn.execute(
        select(ImportRun.local_date)
        .where(ImportRun.completed_at.is_(None), ImportRun.started_at < now - IMPORT_STUCK)
        .order_by(ImportRun.local_date.desc())
        .limit(3)
    ).all()
    return [Alarm("import_incomplete", day.isoformat()) for (day,) in stuck]


def node_row(node: NodeStatus, now: datetime) -> dict[str, Any]:
    """A node as the Now page lists it (the template words it in the reader's language)."""
    return {
        "name": node.name,
        "css": "silent" if node.silent else "alive",
        "silent": node.silent,
        "ago": ago(node.silent_for_s(now)),
        "where": f"{node.host} pid {node.pid} v{node.version}",
        "calls": f"{node.calls_up}/{node.channel_cap}",
        "sip": f"SIP {node.registration}",  # a key of the catalog
        "started": node.started_at,
        "last_error": node.last_error,
    }


def node_alarms(nodes: list[NodeStatus], now: datetime) -> list[Alarm]:
    """A node silent (for less than a day) or whose SIP registration failed."""
    alarms = []
    for n in nodes:
        if n.silent and n.silent_for_s(now) < SILENT_SHOWN_S:
            alarms.append(Alarm("node_silent", n.name))
        elif not n.silent and n.registration == "failed":
            alarms.append(Alarm("sip_lost", n.name))
    return alarms
