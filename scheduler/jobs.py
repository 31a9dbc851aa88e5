"""Job functions. They know nothing of APScheduler: plain functions taking their dependencies
(the campaign) and ``now``, each calling one of the campaign's steps."""

from __future__ import annotations

import logging
import threading
from datetime import datetime

from ivr.campaign.campaign import Campaign, Expired
from ivr.campaign.delivery import DeliveryStats
from ivr.core.clock import Clock

log = logging.getLogger(__name__)


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
