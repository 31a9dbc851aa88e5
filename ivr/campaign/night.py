"""One whole night for one local date: import, dial until every survey is final, deliver,
then erase the phone numbers past ``node.retention_days`` (as the service does nightly).

Used by ``ivr-rating night --date D``. The long-running service (``scheduler.service``) runs
the same campaign steps (:mod:`ivr.campaign.campaign`) on APScheduler jobs instead.

While it dials, the night prints a progress line every 30 s: done of total, in calls, waiting
for a retry and when, and an estimate of when the day's calls finish (figures and ``now`` in,
text out).
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from ivr.campaign.campaign import EXPIRE_EVERY_S, Campaign
from ivr.campaign.dialer import describe_next_opening
from ivr.campaign.importer import ImportSummary, rejected_lines, summary_detail_lines
from ivr.core.errors import RegistrationFailed
from ivr.core.untrusted import printable
from ivr.core.vocabulary import Outcome
from storage.figures import DayProgress, day_progress
from storage.store import ReportRow, Store

log = logging.getLogger(__name__)

OUTCOMES = tuple(str(o) for o in Outcome)


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


@dataclass
class NightSummary:
    day: date
    imported: ImportSummary | None
    counts: Counter[str] = field(default_factory=Counter)
    unsatisfied: list[ReportRow] = field(default_factory=list)
    rejected: list[tuple[str | None, str]] = field(default_factory=list)
    deliveries: dict[str, int] = field(default_factory=dict)
    unfinished: int = 0
    comments: dict[str, int] = field(default_factory=dict)

    @property
    def undelivered(self) -> int:
        return self.deliveries.get("pending", 0)


def summarize(store: Store, day: date, imported: ImportSummary | None = None) -> NightSummary:
    rows = store.report_rows(day)
    summary = NightSummary(day=day, imported=imported)
    for row in rows:
        if row.outcome is None:
            summary.unfinished += 1
        else:
            summary.counts[row.outcome] += 1
    summary.unsatisfied = [r for r in rows if r.outcome == Outcome.UNSATISFIED]
    summary.rejected = store.rejected(day)
    summary.deliveries = dict(Counter(r.delivery for r in rows if r.delivery))
    summary.comments = {k: v for k, v in store.comment_counts().items() if v}
    return summary


class Night:
    """Drives a :class:`Campaign` through one date: recover, import, dial until every survey
    of the date is final (expiring and delivering as it goes), deliver, erase old numbers."""

    def __init__(self, campaign: Campaign) -> None:
        self.campaign = campaign
        self.config = campaign.config
        self.store = campaign.store
        self.clock = campaign.clock
        self._expired_at = float("-inf")

    def request_stop(self) -> None:
        """SIGTERM: no new calls; wakes the dial loop at once, even while it waits for the next
        call window (up to 30 s)."""
        self.campaign.request_stop()

    def prepare(self, day: date) -> ImportSummary:
        """Recover from an earlier crash, import the day, deliver what is already final.

        Needs no SIP: a portal failure surfaces here, before any call."""
        now = self.clock.now()
        self.campaign.recover(now)
        imported = self.campaign.import_day(day, now)
        self.campaign.deliver(now)
        return imported

    def finish(
        self, day: date, imported: ImportSummary, delivery_deadline_s: float
    ) -> NightSummary:
        """Dial until every survey of the day is final, then deliver what is left."""
        self._dial(day)
        self._flush(delivery_deadline_s)
        self.campaign.erase_old(self.clock.now())
        return summarize(self.store, day, imported)

    def _dial(self, day: date) -> None:
        campaign = self.campaign
        try:
            announced_wait = False
            progress = _Progress(self, day)
            while not campaign.stop.is_set():
                now = self.clock.now()
                progress.maybe_log(now)
                self._check_registration()
                self._expire(now)
                started = campaign.dial_due(now, day)
                active = campaign.dialer.active_calls()
                if active == 0 and started == 0:
                    if self.store.unfinished(day) == 0:
                        break
                    if not announced_wait:
                        log.info(
                            "waiting: next attempt due or next call window at %s",
                            describe_next_opening(self.config, max(now, self._next_due(day, now))),
                        )
                        announced_wait = True
                else:
                    announced_wait = False
                campaign.deliver(now)
                idle = min(campaign.dialer.seconds_until_work(now, day), progress.seconds_left())
                campaign.dialer.wait(idle if active == 0 else 0.2)
            if campaign.stop.is_set():
                log.info(
                    "stopping: no new calls; %d call(s) in progress finish first",
                    campaign.dialer.active_calls(),
                )
        finally:
            campaign.drain()

    def _expire(self, now: datetime) -> None:
        """The campaign's expiry, every ``EXPIRE_EVERY_S`` (the first at once)."""
        mono = self.clock.monotonic()
        if mono - self._expired_at >= EXPIRE_EVERY_S:
            self._expired_at = mono
            self.campaign.expire(now)

    def _check_registration(self) -> None:
        """A registration lost longer than ``register_give_up_s`` ends the night (exit 4);
        until then no call starts and the registration is retried with backoff."""
        reg = self.campaign.phone.registration
        limit = self.config.sip.register_give_up_s
        if reg.lost_for_s is not None and reg.lost_for_s > limit:
            raise RegistrationFailed(
                f"SIP registration lost for {reg.lost_for_s:.0f} s (sip.register_give_up_s "
                f"{limit:g}): {reg.detail}"
            )

    def _next_due(self, day: date, now: datetime) -> datetime:
        due = self.store.next_attempt_time(day)
        return due if due is not None else now

    def _flush(self, deadline_s: float) -> None:
        """Deliver what is left; stop trying after ``deadline_s`` (results stay in the outbox)."""
        start = self.clock.monotonic()
        while self.clock.monotonic() - start < deadline_s:
            now = self.clock.now()
            stats = self.campaign.deliver(now)
            pending = self.store.delivery_counts().get("pending", 0)
            if not stats.comments_blocked:  # comments that wait for the operator do not count
                pending += self.store.comment_counts().get("pending", 0)
            if pending == 0 or stats.alarm:
                return
            nxt = self.store.pending_deliveries(now + timedelta(seconds=1), 1)
            self.clock.sleep(0.5 if nxt else 1.0)


class _Progress:
    """Logs the progress line at the start of dialing and every 30 s (on the night's clock)."""

    def __init__(self, night: Night, day: date) -> None:
        self.night = night
        self.day = day
        self.started = night.clock.monotonic()
        self.logged_at: float | None = None
        self.done_at_start: int | None = None

    def seconds_left(self) -> float:
        """Until the next line is due (the loop sleeps no longer than this when idle)."""
        if self.logged_at is None:
            return 0.0
        return max(0.0, PROGRESS_EVERY_S - (self.night.clock.monotonic() - self.logged_at))

    def maybe_log(self, now: datetime) -> None:
        mono = self.night.clock.monotonic()
        if self.logged_at is not None and mono - self.logged_at < PROGRESS_EVERY_S:
            return
        self.logged_at = mono
        try:
            p = day_progress(self.night.store.engine, self.day, now)
        except Exception as exc:  # a progress line is not worth stopping the night for
            log.warning("progress not read: %s", exc)
            return
        if self.done_at_start is None:
            self.done_at_start = p.done
        log.info(
            "%s",
            progress_line(
                self.day, p, now, self.night.config.tz, mono - self.started,
                p.done - self.done_at_start,
            ),
            extra={"done": p.done, "total": p.total, "in_calls": p.in_calls,
                   "waiting": p.waiting, "due": p.due},
        )  # fmt: skip


def format_summary(summary: NightSummary, mask: bool = True) -> str:
    from ivr.core.intake import mask_phone

    lines = [f"Night of {summary.day.isoformat()}"]
    if summary.imported is not None:
        im = summary.imported
        lines.append(
            f"  imported: {im.seen} item(s) from the portal, {im.new} new, "
            f"{im.known} already known, {im.rejected} rejected"
        )
    for name in OUTCOMES:
        lines.append(f"  {name:<12} {summary.counts.get(name, 0)}")
    if summary.unfinished:
        lines.append(f"  {'unfinished':<12} {summary.unfinished}")
    lines.append(
        "  delivered to the portal: "
        + ", ".join(f"{k} {v}" for k, v in sorted(summary.deliveries.items()))
    )
    if summary.comments:
        lines.append(
            "  spoken comments: "
            + ", ".join(f"{k} {v}" for k, v in sorted(summary.comments.items()))
        )
    if summary.unsatisfied:
        lines.append("  Unsatisfied (sent back for rework and control):")
        for row in summary.unsatisfied:
            phone = mask_phone(row.phone) if (row.phone and mask) else (row.phone or "-")
            lines.append(
                f"    request {printable(row.portal_request_id)} (No {row.request_number}) {phone} "
                f"attempts {row.attempts} delivery {row.delivery}"
            )
    if summary.imported is not None:
        detail = replace(summary.imported, rejected_reasons=[])  # rejected: all of the day's
        lines.extend(summary_detail_lines(detail, summary.day))
    lines.extend(rejected_lines(summary.rejected, summary.day, "Rejected portal items:"))
    return "\n".join(lines)
