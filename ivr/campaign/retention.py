"""Forgetting personal data: the retention job (``run``: nightly; ``night``: at its end) and
``ivr-rating purge --before DATE`` (now, for surveys finished before that local day).

Outcomes stay for statistics; phone numbers of finished surveys, the recordings of their
spoken comments (the rows keep length and checksum) and the raw rows of rejected items are
erased. On SQLite the erased pages are overwritten (``secure_delete``) and the write-ahead log
is truncated, so no copy stays behind.
"""

from __future__ import annotations

import logging
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from ivr.core.windows import local_day_bounds
from storage.db import compact_erased
from storage.store import Store

log = logging.getLogger(__name__)


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
