"""The nightly import: one local day of closed requests from the portal into storage.

Each item is validated on its own; a bad one is stored as rejected with its reason and the
import goes on: nothing raised while handling one item leaves its batch. Re-importing a day is
harmless: a request closing already known is skipped (if it now carries other data, the summary
names the fields). A later closing of a request supersedes its earlier round still waiting for
a call. A portal error stops the import (what was stored stays) and propagates to the caller.
"""

from __future__ import annotations

import json
import logging
import threading
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from ivr.campaign import metrics
from ivr.core.district import district_of
from ivr.core.errors import AlreadyStored, ImportStopped, PortalError, PortalMisconfigured
from ivr.core.intake import (
    ClosedRequest,
    Rejected,
    parse_item,
    parse_rfc3339,
    shown_id,
    with_do_not_call,
)
from ivr.core.untrusted import MAX_JSON_DEPTH, printable, value_depth
from ivr.core.windows import local_date, local_day_bounds, yesterday
from prompts.catalog import category_name
from storage import bulk
from storage.bulk import Added, add_surveys, do_not_call_among
from storage.store import NewSurvey, Store

log = logging.getLogger(__name__)

BATCH_SIZE = 500
"""Items stored per transaction (one existence query, one insert round)."""

_IMPORT_LOCK = threading.Lock()

SHOWN_REJECTED = 50
"""Rejected items listed in a summary; ``report --rejected`` lists them all."""


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
    # Known closings that arrived again with other data: (request id, changed fields).
    changed: list[tuple[str, tuple[str, ...]]] = field(default_factory=list)
    superseded: int = 0  # earlier rounds closed as not_called (superseded) by a new closing


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
        "import of %s done: %d items, %d new, %d already known (%d with other data), "
        "%d rejected, %d not to be called, %d earlier round(s) superseded",
        day,
        summary.seen,
        summary.new,
        summary.known,
        len(summary.changed),
        summary.rejected,
        summary.not_called,
        summary.superseded,
    )
    return summary


@dataclass(frozen=True)
class _DayImport:
    """What every step of storing one day's items needs: the day rejected items fall back to,
    where and when they are stored, and the summary they are counted into."""

    day: date
    store: Store
    tz: ZoneInfo
    now: datetime
    summary: ImportSummary


def days_to_import(store: Store, now: datetime, tz: ZoneInfo, lookback_days: int) -> list[date]:
    """Yesterday and the days before it within the look-back that have no completed import."""
    last = yesterday(now, tz)
    days = [last - timedelta(days=i) for i in range(lookback_days)]
    return sorted(d for d in days if not store.import_completed(d))


def import_missing_days(
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
    items already received are stored before the error propagates. A batch is stored once:
    if storing it fails (the database is gone), that error propagates as it is."""
    ctx = _DayImport(day, store, tz, now, summary)
    batch: list[object] = []
    try:
        for raw in raws:
            batch.append(raw)
            if len(batch) >= batch_size:
                full, batch = batch, []
                _store_batch(full, ctx)
    except BaseException:
        # The source failed (or we were interrupted) with items received but not stored.
        received, batch = batch, []
        if received:
            _store_batch(received, ctx)
        raise
    if batch:
        _store_batch(batch, ctx)


def _parse_batch(raws: list[object], ctx: _DayImport) -> list[ClosedRequest | Rejected]:
    """Each raw item parsed once; then, knowing which of their numbers are on the do-not-call
    list (one query), those are marked not to be called."""
    # A raw item may already be a Rejected (a file row the reader could not make into one).
    parsed = [raw if isinstance(raw, Rejected) else parse_item(raw, now=ctx.now) for raw in raws]
    listed = do_not_call_among(
        ctx.store, (item.phone for item in parsed if isinstance(item, ClosedRequest))
    )
    if not listed:
        return parsed
    return [with_do_not_call(i, listed) if isinstance(i, ClosedRequest) else i for i in parsed]


def _store_batch(raws: list[object], ctx: _DayImport) -> None:
    summary = ctx.summary
    good: list[tuple[ClosedRequest, NewSurvey]] = []
    for item in _parse_batch(raws, ctx):
        summary.seen += 1
        if isinstance(item, Rejected):
            _reject(item.portal_id, item.reason, item.raw, ctx)
            continue
        try:
            good.append((item, _new_survey(item, ctx.tz)))
        except Exception as exc:  # one item, whatever went wrong, is rejected
            _reject(item.portal_id, f"item: unreadable ({type(exc).__name__})", item.raw, ctx)
    if not good:
        return
    added: list[Added | None]  # None: rejected by the database
    try:
        added = list(add_surveys(ctx.store, [new for _, new in good], ctx.now))
    except Exception as exc:
        # Someone else stored part of this batch meanwhile, or one row breaks the database:
        # one at a time, so one bad row costs only itself.
        log.warning("batch of %d items failed (%s); storing them one by one", len(good), exc)
        added = [_add_one(item, new, ctx) for item, new in good]
    for (item, _), result in zip(good, added, strict=True):
        if result is not None:
            _count(item, result, summary)


def _count(item: ClosedRequest, result: Added, summary: ImportSummary) -> None:
    summary.superseded += result.superseded
    if result.new:
        summary.new += 1
        if item.not_called_reason is not None:
            summary.not_called += 1
            summary.not_called_reasons[item.not_called_reason] += 1
            log.info("request %s not called: %s", item.portal_id, item.not_called_reason)
    else:
        summary.known += 1
        if result.changed:
            summary.changed.append((item.portal_id, result.changed))
            log.warning(
                "request %s closed at %s arrived again with other %s; the stored data is kept",
                item.portal_id,
                item.closed_at.isoformat(),
                ", ".join(result.changed),
            )


def _add_one(item: ClosedRequest, new: NewSurvey, ctx: _DayImport) -> Added | None:
    try:
        return bulk.add_surveys(ctx.store, [new], ctx.now)[0]  # the same write, for this row alone
    except AlreadyStored:
        return Added(new=False)  # stored by a concurrent import (another node) meanwhile
    except Exception as exc:  # one item, whatever the database said
        _reject(item.portal_id, f"storage: {type(exc).__name__}", item.raw, ctx)
        return None


def _reject(portal_id: str | None, reason: str, raw: object, ctx: _DayImport) -> None:
    portal_id = shown_id(portal_id)
    reason = printable(reason)
    ctx.summary.rejected += 1
    ctx.summary.rejected_reasons.append((portal_id, reason))
    log.warning("portal item rejected (request %s): %s", portal_id or "?", reason)
    when = _day_of(raw, ctx.tz, ctx.day)
    store, now = ctx.store, ctx.now
    try:
        store.add_rejected(when, portal_id, reason, _keepable(raw), now)
    except Exception:  # the rejection is counted and logged; the import goes on
        log.exception("request %s: the rejected item could not be kept", portal_id or "?")
        try:  # without its raw content, which is what a database may refuse
            store.add_rejected(when, portal_id, reason, {"unstorable": True}, now)
        except Exception:
            log.exception("request %s: not even its reason could be kept", portal_id or "?")


def _keepable(raw: object) -> object:
    """The raw item as it may be kept in the database (JSON, and not nested too deep)."""
    if value_depth(raw, MAX_JSON_DEPTH) > MAX_JSON_DEPTH:
        return {"unstorable": "nested too deep"}
    blob = json.dumps(raw, sort_keys=True, default=str, ensure_ascii=False)
    try:
        blob.encode()
    except UnicodeEncodeError:  # lone surrogates (JSON "\\ud800"): no database takes them
        return json.loads(blob.encode(errors="replace").decode())
    return raw


def _day_of(raw: object, tz: ZoneInfo, fallback: date) -> date:
    """The local day a raw item closed on, if its closed_at can be read (and is a real date);
    else ``fallback``."""
    if isinstance(raw, dict) and isinstance(raw.get("closed_at"), str):
        try:
            moment = parse_rfc3339(raw["closed_at"])
            if moment.year >= 2000:
                return local_date(moment, tz)
        except (ValueError, OverflowError):
            return fallback
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
        executor_id=item.executor_id,
        executor_name=item.executor_name,
        address=item.address,
        category_name=category_name(item.category),
        district=district_of(item.address),
    )


def summary_detail_lines(summary: ImportSummary, day: date | None) -> list[str]:
    """The summary's changed, superseded and rejected items, for a terminal (escaped).

    ``day``: the local day the rejected items are kept for (None: each for its own day)."""
    lines: list[str] = []
    if summary.changed:
        lines.append("  Known requests that arrived again with other data (stored data kept):")
        for pid, fields in summary.changed[:SHOWN_REJECTED]:
            lines.append(f"    {printable(pid)}: {', '.join(fields)} changed")
        if len(summary.changed) > SHOWN_REJECTED:
            lines.append(f"    ... and {len(summary.changed) - SHOWN_REJECTED} more (see the log)")
    if summary.superseded:
        lines.append(
            f"  {summary.superseded} earlier round(s) not yet called were superseded by a new "
            "closing (not_called, superseded)"
        )
    lines.extend(rejected_lines(summary.rejected_reasons, day))
    return lines


def rejected_lines(
    rejected: Sequence[tuple[str | None, str]], day: date | None, title: str = "Rejected:"
) -> list[str]:
    """At most :data:`SHOWN_REJECTED` rejected items, then how many more and how to list them."""
    if not rejected:
        return []
    lines = [f"  {title}"]
    for pid, reason in rejected[:SHOWN_REJECTED]:
        lines.append(f"    {printable(pid) if pid else '(no id)'}: {printable(reason)}")
    hidden = len(rejected) - SHOWN_REJECTED
    if hidden > 0:
        date_arg = day.isoformat() if day is not None else "D"
        lines.append(
            f"    ... and {hidden} more: `ivr-rating report --rejected --date {date_arg}` "
            "lists every one with its reason"
        )
    return lines
