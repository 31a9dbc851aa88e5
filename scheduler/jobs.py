"""Job functions. They know nothing of APScheduler: plain functions taking their dependencies
and ``now``."""

from __future__ import annotations

import logging
import threading
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from ivr.campaign.delivery import DeliveryStats, RatingSink, deliver_due
from ivr.campaign.dialer import Dialer
from ivr.campaign.importer import ClosedRequestSource, import_day
from ivr.core.clock import Clock
from ivr.core.errors import ImportStopped, PortalError, PortalMisconfigured
from ivr.core.windows import yesterday
from storage.store import Store

log = logging.getLogger(__name__)


def days_to_import(store: Store, now: datetime, tz: ZoneInfo, lookback_days: int) -> list[date]:
    """Yesterday and the days before it within the look-back that have no completed import."""
    last = yesterday(now, tz)
    days = [last - timedelta(days=i) for i in range(lookback_days)]
    return sorted(d for d in days if not store.import_completed(d))


def import_job(
    store: Store, source: ClosedRequestSource, tz: ZoneInfo, now: datetime, lookback_days: int = 3
) -> int:
    """Import every day in the look-back that has no completed import. Returns days imported.

    A portal failure is logged (an ALARM line for a refused token or a redirect) and a stop
    (SIGTERM) ends it between pages; either way the day stays
    incomplete, so the next run (or the next scheduled import) picks it up again."""
    done = 0
    for day in days_to_import(store, now, tz, lookback_days):
        try:
            import_day(day, source, store, tz, now)
            done += 1
        except PortalMisconfigured as exc:  # the token or portal.base_url
            log.error("ALARM: import of %s refused by the portal: %s", day, exc)
            break
        except ImportStopped as exc:
            log.info("import of %s stopped; the day is imported later: %s", day, exc)
            break
        except PortalError as exc:
            log.error("import of %s failed, will retry later: %s", day, exc)
            break
    return done


def dial_loop(dialer: Dialer, clock: Clock, stop: threading.Event, poll_s: float = 0.2) -> None:
    """Keeps the channels busy until ``stop``: starts due calls, then sleeps until a channel
    frees (woken at once) or ``poll_s`` passes, so a free channel gets its next call within
    ``poll_s`` while work is pending. A failing round is logged and the loop goes on."""
    while not stop.is_set():
        try:
            dialer.start_due(clock.now())
        except Exception:
            log.exception("dial loop round failed; retrying")
            stop.wait(5.0)
        dialer.wait(poll_s)


def delivery_job(
    store: Store, sink: RatingSink, now: datetime, node: str | None = None
) -> DeliveryStats:
    return deliver_due(store, sink, now, node=node)
