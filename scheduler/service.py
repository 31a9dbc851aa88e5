"""Builds the APScheduler 3 scheduler for ``ivr-rating run`` and runs it until SIGTERM.

Jobs: the nightly import (cron at ``schedule.import_at`` in ``timezone``, coalesced, one
instance, with a misfire grace time), the dial loop and the delivery loop (intervals).
SIGTERM/SIGINT: stop starting calls, let the calls in progress finish, deliver, exit 0.
"""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from ivr.call_runner import PromptRenderer
from ivr.clock import Clock
from ivr.config import Config
from ivr.delivery import RatingSink, deliver_due
from ivr.dialer import Dialer
from ivr.importer import ClosedRequestSource
from ivr.sip.api import SipPhone
from scheduler.jobs import delivery_job, dial_job, import_job
from storage.store import Store

log = logging.getLogger(__name__)

IMPORT_MISFIRE_GRACE_S = 6 * 3600


def build_scheduler(
    config: Config,
    store: Store,
    source: ClosedRequestSource,
    sink: RatingSink,
    dialer: Dialer,
    clock: Clock,
) -> BackgroundScheduler:
    tz = config.tz
    sched = BackgroundScheduler(timezone=tz)
    at = config.schedule.import_at
    sched.add_job(
        lambda: import_job(store, source, tz, clock.now()),
        CronTrigger(hour=at.hour, minute=at.minute, timezone=tz),
        id="import",
        name="nightly import of closed requests",
        coalesce=True,
        max_instances=1,
        misfire_grace_time=IMPORT_MISFIRE_GRACE_S,
    )
    sched.add_job(
        lambda: dial_job(dialer, clock.now()),
        IntervalTrigger(seconds=1, timezone=tz),
        id="dial",
        name="dial loop",
        coalesce=True,
        max_instances=1,
        misfire_grace_time=5,
    )
    sched.add_job(
        lambda: delivery_job(store, sink, clock.now()),
        IntervalTrigger(seconds=5, timezone=tz),
        id="deliver",
        name="delivery loop",
        coalesce=True,
        max_instances=1,
        misfire_grace_time=30,
    )
    return sched


def run_service(
    config: Config,
    store: Store,
    source: ClosedRequestSource,
    sink: RatingSink,
    phone: SipPhone,
    prompts: PromptRenderer,
    clock: Clock,
) -> int:
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        log.info("signal %s: stopping", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    now = clock.now()
    recovered = store.recover_interrupted(now, now + config.dialing.retry_delay)
    if recovered:
        log.warning(
            "%d attempt(s) interrupted by an earlier crash closed as interrupted", recovered
        )
    # Catch up on start: any day in the look-back without a completed import.
    import_job(store, source, config.tz, now)
    dialer = Dialer(store, phone, prompts, config, clock)
    sched = build_scheduler(config, store, source, sink, dialer, clock)
    sched.start()
    log.info("service running; nightly import at %s %s", config.schedule.import_at, config.timezone)
    try:
        stop.wait()
    finally:
        sched.shutdown(wait=True)
        log.info("waiting for %d call(s) in progress", dialer.active_calls())
        dialer.drain()
        deliver_due(store, sink, clock.now())
    return 0
