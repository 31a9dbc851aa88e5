"""Builds the APScheduler 3 scheduler for ``ivr-rating run`` and runs it until SIGTERM.

Jobs: the nightly import (cron at ``schedule.import_at`` in ``timezone``, coalesced, one
instance, with a misfire grace time), the retry of incomplete days (every 30 minutes, the first
one at start: the catch-up import runs as a job, so a slow or hostile portal never delays or
kills the start), the dial loop, the delivery loop and the expiry (intervals); each job
calls one step of the :class:`~ivr.campaign.campaign.Campaign`.
SIGTERM/SIGINT: stop starting calls, end an import in progress between pages (the portal
client shares the stop event), let the calls in progress finish, deliver, exit 0.

The job functions know nothing of APScheduler: plain functions taking their dependencies (the
campaign) and ``now``, each calling one of the campaign's steps.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from datetime import datetime
from types import FrameType

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from ivr.campaign.campaign import EXPIRE_EVERY_S, Campaign, Expired
from ivr.campaign.delivery import DeliveryStats
from ivr.campaign.dialer import Dialer
from ivr.campaign.operator import RELOAD
from ivr.core.clock import Clock
from ivr.core.config import Config
from ivr.core.errors import IvrError

log = logging.getLogger(__name__)

IMPORT_MISFIRE_GRACE_S = 6 * 3600
IMPORT_RETRY_EVERY_S = 30 * 60


def import_job(campaign: Campaign, now: datetime) -> int:
    """The nightly import and its retries: every day of the look-back not yet complete."""
    return campaign.import_missing(now)


def dial_loop(campaign: Campaign, clock: Clock, stop: threading.Event, poll_s: float = 0.2) -> None:
    """Keeps the channels busy until ``stop``: starts due calls, then sleeps until a channel
    frees (woken at once) or ``poll_s`` passes, so a free channel gets its next call within
    ``poll_s`` while work is pending. A failing round is logged and the loop goes on."""
    while not stop.is_set():
        try:
            campaign.dial_due(clock.now())
        except Exception:
            log.exception("dial loop round failed; retrying")
            stop.wait(5.0)
        campaign.dialer.wait(poll_s)


def delivery_job(campaign: Campaign, now: datetime) -> DeliveryStats:
    return campaign.deliver(now)


def expiry_job(campaign: Campaign, now: datetime) -> Expired:
    return campaign.expire(now)


def retention_job(campaign: Campaign, now: datetime) -> int:
    return campaign.erase_old(now)


def build_scheduler(campaign: Campaign) -> BackgroundScheduler:
    config, clock, stop = campaign.config, campaign.clock, campaign.stop
    tz = config.tz
    # Enough threads for the long-running dial loop plus the periodic jobs.
    sched = BackgroundScheduler(timezone=tz, executors={"default": ThreadPoolExecutor(8)})
    _add_import_jobs(sched, campaign)
    # The dial loop runs for the service's whole life (woken when a channel frees).
    sched.add_job(
        dial_loop,
        args=(campaign, clock, stop),
        id="dial",
        name="dial loop",
        max_instances=1,
        misfire_grace_time=None,
    )
    _add_periodic_jobs(sched, campaign)
    return sched


def _add_import_jobs(sched: BackgroundScheduler, campaign: Campaign) -> None:
    """The nightly import, and the catch-up and retry of incomplete days."""
    clock, tz, at = campaign.clock, campaign.config.tz, campaign.config.schedule.import_at
    sched.add_job(
        lambda: import_job(campaign, clock.now()),
        CronTrigger(hour=at.hour, minute=at.minute, timezone=tz),
        id="import",
        name="nightly import of closed requests",
        coalesce=True,
        max_instances=1,
        misfire_grace_time=IMPORT_MISFIRE_GRACE_S,
    )
    # Days whose import gave up (portal down, token refused) are tried again all night; the
    # first run, at start, is the catch-up of any day in the look-back not yet imported.
    sched.add_job(
        lambda: import_job(campaign, clock.now()),
        IntervalTrigger(seconds=IMPORT_RETRY_EVERY_S, timezone=tz),
        id="import-retry",
        name="catch-up and retry of incomplete imports",
        coalesce=True,
        max_instances=1,
        misfire_grace_time=IMPORT_RETRY_EVERY_S,
        next_run_time=clock.now(),
    )


def _add_periodic_jobs(sched: BackgroundScheduler, campaign: Campaign) -> None:
    """Delivery, expiry (and recovery of dead nodes' claims), retention."""
    clock, tz = campaign.clock, campaign.config.tz
    sched.add_job(
        lambda: delivery_job(campaign, clock.now()),
        IntervalTrigger(seconds=5, timezone=tz),
        id="deliver",
        name="delivery loop",
        coalesce=True,
        max_instances=1,
        misfire_grace_time=30,
    )
    sched.add_job(
        lambda: expiry_job(campaign, clock.now()),
        IntervalTrigger(seconds=EXPIRE_EVERY_S, timezone=tz),
        id="expire",
        name="end overdue surveys, recover dead nodes' claims",
        coalesce=True,
        max_instances=1,
        misfire_grace_time=int(EXPIRE_EVERY_S),
    )
    sched.add_job(
        lambda: retention_job(campaign, clock.now()),
        CronTrigger(hour=3, minute=40, timezone=tz),
        id="retention",
        name="erase phone numbers of old finished surveys",
        coalesce=True,
        max_instances=1,
        misfire_grace_time=IMPORT_MISFIRE_GRACE_S,
    )


def run_service(campaign: Campaign, reload_config: Callable[[], Config] | None = None) -> int:
    """Run until SIGTERM/SIGINT (or the campaign's ``stop``, which is also the portal
    client's, so the signal ends an import in progress too)."""
    stop = campaign.stop
    reload_wanted = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        log.info("signal %s: stopping", signal.Signals(signum).name)
        stop.set()

    def on_hup(signum: int, frame: FrameType | None) -> None:
        reload_wanted.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGHUP, on_hup)
    now = campaign.clock.now()
    campaign.recover(now)
    campaign.expire(now)  # before the first call; then every EXPIRE_EVERY_S
    sched = build_scheduler(campaign)
    sched.start()
    config = campaign.config
    log.info(
        "service running as node %s; catch-up import started; nightly import at %s %s",
        campaign.node,
        config.schedule.import_at,
        config.timezone,
    )
    store = campaign.store
    reload_seen = store.get_flag(RELOAD)
    try:
        while not stop.wait(1.0):
            requested = store.get_flag(RELOAD)  # `ivr-rating reload`, from any machine
            if requested != reload_seen:
                reload_seen = requested
                reload_wanted.set()
            if reload_wanted.is_set():
                reload_wanted.clear()
                _reload(campaign.dialer, reload_config)
    finally:
        sched.shutdown(wait=True)
        log.info("waiting for %d call(s) in progress", campaign.dialer.active_calls())
        campaign.drain()
        campaign.deliver(campaign.clock.now())
    return 0


def _reload(dialer: Dialer, reload_config: Callable[[], Config] | None) -> None:
    if reload_config is None:
        log.warning("reload requested, but this runner has no configuration file to re-read")
        return
    try:
        dialer.reload(reload_config())
    except IvrError as exc:
        log.error("reload failed, keeping the running configuration: %s", exc)
