"""One campaign on one node: the steps of a night, with their dependencies held once.

Both drivers run these steps: ``ivr-rating night`` (:mod:`ivr.campaign.night`, one date until
every survey is final) and ``ivr-rating run`` (:mod:`scheduler.service`, APScheduler jobs that
call the steps). Built by the composition root, :func:`ivr.entry.app.campaign_node`.

    recover()      take back the claims of this node and of dead nodes (at start)
    import_day()   one local day from the portal; import_missing(): every day not yet complete
    dial_due()     start calls for due surveys on free channels
    deliver()      post the final ratings (and comments) that are due
    expire()       end overdue surveys, recover claims whose lease ran out (every 30 s)
    erase_old()    erase the phone numbers past ``node.retention_days``

Forgetting personal data (``erase_old``: nightly in ``run``, at its end in ``night``; and
``ivr-rating purge --before DATE``, :func:`purge`, for surveys finished before that local day):
outcomes stay for statistics; phone numbers of finished surveys, the recordings of their spoken
comments (the rows keep length and checksum) and the raw rows of rejected items are erased. On
SQLite the erased pages are overwritten (``secure_delete``) and the write-ahead log is
truncated, so no copy stays behind.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from ivr.campaign import metrics
from ivr.campaign.call_runner import PromptRenderer
from ivr.campaign.delivery import DeliveryStats, RatingSink, deliver_due
from ivr.campaign.dialer import Dialer, next_day_opening, node_name, recover_after_restart
from ivr.campaign.heartbeat import NodeProbe
from ivr.campaign.importer import (
    ClosedRequestSource,
    ImportSummary,
    import_day,
    import_missing_days,
)
from ivr.core.clock import Clock
from ivr.core.config import Config
from ivr.core.vocabulary import Disposition, Outcome
from ivr.core.windows import local_day_bounds
from ivr.sip.api import SipPhone
from storage.db import compact_erased
from storage.locks import run_once
from storage.store import Store

log = logging.getLogger(__name__)

EXPIRE_EVERY_S = 30.0
"""How often the drivers run :meth:`Campaign.expire`."""


def erase_before(store: Store, cutoff: datetime, now: datetime) -> int:
    """Erase the phone numbers of surveys finished before ``cutoff`` and delete the recordings
    of their spoken comments; returns how many numbers were erased."""
    erased = store.erase_phones(cutoff)
    recordings = store.purge_recordings(cutoff, now)
    if recordings:
        log.info("retention: %d recording(s) of spoken comments deleted", recordings)
    compact_erased(store.engine)
    return erased


def retention_job(store: Store, now: datetime, retention_days: int) -> int:
    erased = erase_before(store, now - timedelta(days=retention_days), now)
    if erased:
        log.info("retention: phone numbers of %d finished survey(s) erased", erased)
    return erased


def purge(store: Store, before: date, tz: ZoneInfo, now: datetime) -> int:
    """``purge --before DATE``: surveys finished before local midnight of ``before``."""
    return erase_before(store, local_day_bounds(before, tz)[0], now)


@dataclass(frozen=True)
class Expired:
    overdue: int  # surveys past their deadline, ended as no_answer (survey_expired)
    recovered: int  # attempts of a node whose lease ran out, closed as interrupted


class Campaign:
    def __init__(
        self,
        config: Config,
        store: Store,
        source: ClosedRequestSource,
        sink: RatingSink,
        phone: SipPhone,
        prompts: PromptRenderer,
        clock: Clock,
        probe: NodeProbe | None = None,
        stop: threading.Event | None = None,
    ) -> None:
        self.config = config
        self.store = store
        self.source = source
        self.sink = sink
        self.phone = phone
        self.prompts = prompts
        self.clock = clock
        self.node = node_name(config)
        # Set on SIGTERM: no new calls; the portal client shares it, to end an import.
        self.stop = stop if stop is not None else threading.Event()
        self.dialer = Dialer(store, phone, prompts, config, clock)
        if probe is not None:
            probe.dialer = self.dialer

    def recover(self, now: datetime) -> None:
        """At start: this node's and dead nodes' claims are taken back at once."""
        recover_after_restart(self.store, self.config, now)

    def import_day(self, day: date, now: datetime) -> ImportSummary:
        return import_day(day, self.source, self.store, self.config.tz, now)

    def import_missing(self, now: datetime) -> int:
        """Every day of the look-back without a completed import, by one node at a time (the
        others skip it: it is idempotent anyway). Returns the days imported."""
        with run_once(self.store.engine, "ivr-rating import") as mine:
            if not mine:
                log.info("import: another node is importing; skipped here")
                return 0
            return import_missing_days(
                self.store, self.source, self.config.tz, now, self.config.portal.lookback_days
            )

    def dial_due(self, now: datetime, day: date | None = None) -> int:
        """Start calls for due surveys (of ``day`` if given); returns how many started."""
        return self.dialer.start_due(now, day)

    def deliver(self, now: datetime) -> DeliveryStats:
        return deliver_due(self.store, self.sink, now, node=self.node)

    def expire(self, now: datetime) -> Expired:
        """End the surveys past their deadline and recover the claims of nodes whose lease ran
        out (ours are still running here). Uses the running (reloaded, live) configuration."""
        config = self.dialer.config
        expired = self.store.expire_overdue(now, config.dialing.survey_deadline)
        if expired:
            log.info("%d survey(s) passed their deadline: no_answer (survey_expired)", len(expired))
            metrics.OUTCOMES_STORED.labels(outcome=Outcome.NO_ANSWER).inc(len(expired))
        recovered = self.store.recover_interrupted(
            now,
            now + config.dialing.ladder(Disposition.NO_ANSWER)[0],
            expired_only=True,
            max_attempts=self.dialer.settings.max_attempts,
            answered_retry_at=next_day_opening(config, now),
        )
        if recovered:
            log.warning(
                "%d attempt(s) of a node that stopped answering closed as interrupted", recovered
            )
        return Expired(len(expired), recovered)

    def erase_old(self, now: datetime) -> int:
        return retention_job(self.store, now, self.config.node.retention_days)

    def request_stop(self) -> None:
        """SIGTERM: no new calls; wakes the dial loop at once, even while it waits."""
        self.stop.set()
        self.dialer.wake()

    def drain(self) -> None:
        """Let the calls in progress finish (no new one can start after this)."""
        self.dialer.drain()
