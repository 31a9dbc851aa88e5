"""Builds the APScheduler 3 scheduler for ``ivr-rating run`` and runs it until SIGTERM.

Jobs: the nightly import (cron at ``schedule.import_at`` in ``timezone``, coalesced, one
instance, with a misfire grace time), the retry of incomplete days (every 30 minutes, the first
one at start: the catch-up import runs as a job, so a slow or hostile portal never delays or
kills the start), the dial loop and the delivery loop (intervals).
SIGTERM/SIGINT: stop starting calls, end an import in progress between pages (the portal
client shares the stop event), let the calls in progress finish, deliver, exit 0.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from datetime import datetime
from types import FrameType
from zoneinfo import ZoneInfo

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from ivr.campaign.call_runner import PromptRenderer
from ivr.campaign.delivery import RatingSink, deliver_due
from ivr.campaign.dialer import Dialer, node_name, recover_after_restart
from ivr.campaign.heartbeat import NodeProbe
from ivr.campaign.importer import ClosedRequestSource
from ivr.campaign.operator import RELOAD
from ivr.campaign.retention import retention_job
from ivr.core.clock import Clock
from ivr.core.config import Config
from ivr.core.errors import IvrError
from ivr.sip.api import SipPhone
from scheduler.jobs import delivery_job, dial_loop, import_job
from storage.locks import run_once
from storage.store import Store

log = logging.getLogger(__name__)

IMPORT_MISFIRE_GRACE_S = 6 * 3600
IMPORT_RETRY_EVERY_S = 30 * 60


def build_scheduler(
    config: Config,
    store: Store,
    source: ClosedRequestSource,
    sink: RatingSink,
    dialer: Dialer,
    clock: Clock,
    stop: threading.Event | None = None,
) -> BackgroundScheduler:
    tz = config.tz
    stop = stop or threading.Event()
    # Enough threads for the long-running dial loop plus the periodic jobs.
    sched = BackgroundScheduler(timezone=tz, executors={"default": ThreadPoolExecutor(8)})
    at = config.schedule.import_at
    lookback = config.portal.lookback_days
    sched.add_job(
        lambda: import_once(store, source, tz, clock.now(), lookback),
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
        lambda: import_once(store, source, tz, clock.now(), lookback),
        IntervalTrigger(seconds=IMPORT_RETRY_EVERY_S, timezone=tz),
        id="import-retry",
        name="catch-up and retry of incomplete imports",
        coalesce=True,
        max_instances=1,
        misfire_grace_time=IMPORT_RETRY_EVERY_S,
        next_run_time=clock.now(),
    )
    # The dial loop runs for the service's whole life (woken when a channel frees).
    sched.add_job(
        dial_loop,
        args=(dialer, clock, stop),
        id="dial",
        name="dial loop",
        max_instances=1,
        misfire_grace_time=None,
    )
    sched.add_job(
        lambda: delivery_job(store, sink, clock.now(), node_name(config)),
        IntervalTrigger(seconds=5, timezone=tz),
        id="deliver",
        name="delivery loop",
        coalesce=True,
        max_instances=1,
        misfire_grace_time=30,
    )
    sched.add_job(
        lambda: retention_job(store, clock.now(), config.node.retention_days),
        CronTrigger(hour=3, minute=40, timezone=tz),
        id="retention",
        name="erase phone numbers of old finished surveys",
        coalesce=True,
        max_instances=1,
        misfire_grace_time=IMPORT_MISFIRE_GRACE_S,
    )
    return sched


def import_once(
    store: Store, source: ClosedRequestSource, tz: ZoneInfo, now: datetime, lookback: int
) -> int:
    """The import, run by one node at a time (the others skip it: it is idempotent anyway)."""
    with run_once(store.engine, "ivr-rating import") as mine:
        if not mine:
            log.info("import: another node is importing; skipped here")
            return 0
        return import_job(store, source, tz, now, lookback)


def run_service(
    config: Config,
    store: Store,
    source: ClosedRequestSource,
    sink: RatingSink,
    phone: SipPhone,
    prompts: PromptRenderer,
    clock: Clock,
    reload_config: Callable[[], Config] | None = None,
    probe: NodeProbe | None = None,
    stop: threading.Event | None = None,
) -> int:
    """Run until SIGTERM/SIGINT (or ``stop``); ``stop`` is also the portal client's, so the
    signal ends an import in progress too."""
    stop = stop if stop is not None else threading.Event()
    reload_wanted = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        log.info("signal %s: stopping", signal.Signals(signum).name)
        stop.set()

    def on_hup(signum: int, frame: FrameType | None) -> None:
        reload_wanted.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGHUP, on_hup)
    now = clock.now()
    node = node_name(config)
    recover_after_restart(store, config, now)
    dialer = Dialer(store, phone, prompts, config, clock)
    if probe is not None:
        probe.dialer = dialer
    sched = build_scheduler(config, store, source, sink, dialer, clock, stop)
    sched.start()
    log.info(
        "service running as node %s; catch-up import started; nightly import at %s %s",
        node,
        config.schedule.import_at,
        config.timezone,
    )
    reload_seen = store.get_flag(RELOAD)
    try:
        while not stop.wait(1.0):
            requested = store.get_flag(RELOAD)  # `ivr-rating reload`, from any machine
            if requested != reload_seen:
                reload_seen = requested
                reload_wanted.set()
            if reload_wanted.is_set():
                reload_wanted.clear()
                _reload(dialer, reload_config)
    finally:
        sched.shutdown(wait=True)
        log.info("waiting for %d call(s) in progress", dialer.active_calls())
        dialer.drain()
        deliver_due(store, sink, clock.now(), node=node)
    return 0


def _reload(dialer: Dialer, reload_config: Callable[[], Config] | None) -> None:
    if reload_config is None:
        log.warning("reload requested, but this runner has no configuration file to re-read")
        return
    try:
        dialer.reload(reload_config())
    except IvrError as exc:
        log.error("reload failed, keeping the running configuration: %s", exc)
