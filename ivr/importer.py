"""The nightly import: one local day of closed requests from the portal into storage.

Each item is validated on its own; a bad one is stored as rejected with its reason and the
import goes on. Re-importing a day is harmless: a request closing already known is skipped.
A portal error stops the import (what was stored stays) and propagates to the caller.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from ivr.intake import ClosedRequest, Rejected, parse_item
from ivr.windows import local_date, local_day_bounds
from storage.store import NewSurvey, Store

log = logging.getLogger(__name__)


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


def import_day(
    day: date, source: ClosedRequestSource, store: Store, tz: ZoneInfo, now: datetime
) -> ImportSummary:
    start, end = local_day_bounds(day, tz)
    summary = ImportSummary(day)
    store.begin_import(day, now)
    for raw in source.iter_closed(start, end):
        summary.seen += 1
        item = parse_item(raw)
        if isinstance(item, Rejected):
            summary.rejected += 1
            log.warning("portal item rejected (request %s): %s", item.portal_id or "?", item.reason)
            store.add_rejected(day, item.portal_id, item.reason, item.raw, now)
            continue
        if store.add_survey(_new_survey(item, tz), now):
            summary.new += 1
            if item.not_called_reason is not None:
                summary.not_called += 1
                log.info("request %s not called: %s", item.portal_id, item.not_called_reason)
        else:
            summary.known += 1
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
