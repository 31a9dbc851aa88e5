"""The nightly import: one local day of closed requests from the portal into storage.

Each item is validated on its own; a bad one is stored as rejected with its reason and the
import goes on. Re-importing a day is harmless: a request closing already known is skipped.
A portal error stops the import (what was stored stays) and propagates to the caller.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from ivr import metrics
from ivr.intake import ClosedRequest, Rejected, parse_item
from ivr.windows import local_date, local_day_bounds
from storage.bulk import add_surveys, do_not_call_among
from storage.store import NewSurvey, Store

log = logging.getLogger(__name__)

BATCH_SIZE = 500
"""Items stored per transaction (one existence query, one insert round)."""

_IMPORT_LOCK = threading.Lock()


class ClosedRequestSource(Protocol):
    def iter_closed(
        self, closed_from: datetime, closed_to: datetime
    ) -> Iterator[dict[str, Any]]: ...


@dataclass
class ImportSummary:
    day: date
    seen: int = 0
    new: int = 0
    known: int = 0
    rejected: int = 0
    not_called: int = 0
    not_called_reasons: Counter[str] = field(default_factory=Counter)
    rejected_reasons: list[tuple[str | None, str]] = field(default_factory=list)


def import_day(
    day: date,
    source: ClosedRequestSource,
    store: Store,
    tz: ZoneInfo,
    now: datetime,
    batch_size: int = BATCH_SIZE,
) -> ImportSummary:
    """Import one local day; the day is marked complete only if the portal gave every page.

    A portal error propagates after what was fetched so far is stored: the next try skips it."""
    start, end = local_day_bounds(day, tz)
    summary = ImportSummary(day)
    # The scheduled import and the periodic retry of incomplete days never overlap here.
    with _IMPORT_LOCK:
        store.begin_import(day, now)
        try:
            store_items(source.iter_closed(start, end), day, store, tz, now, summary, batch_size)
        finally:  # what was stored before a portal failure counts too
            metrics.count_import(summary.new, summary.known, summary.rejected, summary.not_called)
        store.complete_import(day, now, summary.seen - summary.rejected, summary.rejected)
    log.info(
        "import of %s done: %d items, %d new, %d already known, %d rejected, %d not to be called",
        day,
        summary.seen,
        summary.new,
        summary.known,
        summary.rejected,
        summary.not_called,
    )
    return summary


def store_items(
    raws: Iterable[object],
    day: date,
    store: Store,
    tz: ZoneInfo,
    now: datetime,
    summary: ImportSummary,
    batch_size: int = BATCH_SIZE,
) -> None:
    """Validate and store raw items in batches, counting into ``summary``.

    Each item is judged on its own: a bad one is stored as rejected (for its own local day if
    its date can be read, else ``day``) and the rest go on. If the source fails half-way, the
    items already received are stored before the error propagates."""
    batch: list[object] = []
    try:
        for raw in raws:
            batch.append(raw)
            if len(batch) >= batch_size:
                _store_batch(batch, day, store, tz, now, summary)
                batch = []
    finally:
        if batch:
            _store_batch(batch, day, store, tz, now, summary)


def _store_batch(
    raws: list[object],
    day: date,
    store: Store,
    tz: ZoneInfo,
    now: datetime,
    summary: ImportSummary,
) -> None:
    parsed = [parse_item(raw) for raw in raws]
    listed = do_not_call_among(
        store, (item.phone for item in parsed if isinstance(item, ClosedRequest))
    )
    if listed:  # judged again, now knowing which numbers are on the do-not-call list
        parsed = [
            parse_item(raw, listed)
            if isinstance(item, ClosedRequest) and item.phone in listed
            else item
            for raw, item in zip(raws, parsed, strict=True)
        ]
    good: list[ClosedRequest] = []
    for item in parsed:
        summary.seen += 1
        if isinstance(item, Rejected):
            _reject(item.portal_id, item.reason, item.raw, day, store, tz, now, summary)
        else:
            good.append(item)
    if not good:
        return
    news = [_new_survey(item, tz) for item in good]
    added: list[bool | None]  # None: rejected by the database
    try:
        added = list(add_surveys(store, news, now))
    except SQLAlchemyError as exc:
        # Someone else stored part of this batch meanwhile, or one row breaks the database:
        # one at a time, so one bad row costs only itself.
        log.warning("batch of %d items failed (%s); storing them one by one", len(news), exc)
        added = []
        for item, new in zip(good, news, strict=True):
            try:
                added.append(store.add_survey(new, now))
            except IntegrityError:
                added.append(False)  # stored by a concurrent import (another node) meanwhile
            except SQLAlchemyError as item_exc:
                reason = f"storage: {type(item_exc).__name__}"
                _reject(item.portal_id, reason, item.raw, day, store, tz, now, summary)
                added.append(None)
    for item, is_new in zip(good, added, strict=True):
        if is_new is None:
            continue
        if is_new:
            summary.new += 1
            if item.not_called_reason is not None:
                summary.not_called += 1
                summary.not_called_reasons[item.not_called_reason] += 1
                log.info("request %s not called: %s", item.portal_id, item.not_called_reason)
        else:
            summary.known += 1


def _reject(
    portal_id: str | None,
    reason: str,
    raw: object,
    day: date,
    store: Store,
    tz: ZoneInfo,
    now: datetime,
    summary: ImportSummary,
) -> None:
    summary.rejected += 1
    summary.rejected_reasons.append((portal_id, reason))
    log.warning("portal item rejected (request %s): %s", portal_id or "?", reason)
    store.add_rejected(_day_of(raw, tz, day), portal_id, reason, raw, now)


def _day_of(raw: object, tz: ZoneInfo, fallback: date) -> date:
    """The local day a raw item closed on, if its closed_at can be read; else ``fallback``."""
    if isinstance(raw, dict) and isinstance(raw.get("closed_at"), str):
        try:
            moment = datetime.fromisoformat(raw["closed_at"].upper().replace(" ", "T"))
        except ValueError:
            return fallback
        if moment.utcoffset() is not None:
            return local_date(moment, tz)
    return fallback


def _new_survey(item: ClosedRequest, tz: ZoneInfo) -> NewSurvey:
    return NewSurvey(
        portal_request_id=item.portal_id,
        request_number=item.number,
        closed_at=item.closed_at,
        local_date=local_date(item.closed_at, tz),
        phone_raw=item.phone_raw,
        phone=item.phone,
        language=item.language,
        category=item.category,
        not_called_reason=item.not_called_reason,
    )
