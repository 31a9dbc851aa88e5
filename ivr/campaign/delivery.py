"""Posting final outcomes to the portal from the outbox.

201/200/409: delivered. 404/422 (PortalRejected): dead letter, kept with the portal's answer,
sent again only when an operator asks (``ivr-rating deliver --retry-dead``).
401/403 or a 3xx (PortalMisconfigured: the token or portal.base_url is wrong): stop
delivering, alarm; the rows stay pending, never dead letters. 429/5xx/timeouts: retried later with
capped exponential backoff and jitter (or the portal's Retry-After): a result is never dropped.

Spoken comments (portal API 1.1) follow their rating: a comment is PUT only once the portal
accepted the rating that announced it (``comment_expected``), with the same retry rules;
404/413/415/422 make it a dead letter. A 404 on the comment path also means the portal may
not speak 1.1 at all: an alarm is logged and every comment waits (none is sent) until an
operator re-queues the dead ones with ``deliver --retry-dead``.
"""

from __future__ import annotations

import enum
import logging
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol, TypeVar

from ivr.campaign import metrics
from ivr.core.errors import PortalAuthError, PortalMisconfigured, PortalRejected, PortalUnavailable
from ivr.core.policy import backoff_s
from ivr.core.untrusted import printable
from ivr.portal.transport import redact_credentials
from storage.bulk import dead_letters, outbox_counts
from storage.comments import COMMENTS_BLOCKED_FLAG, PendingComment
from storage.models import DeliveryState
from storage.records import PendingDelivery
from storage.store import Store

log = logging.getLogger(__name__)

BACKOFF_BASE_S = 5.0
BACKOFF_CAP_S = 600.0

Item = TypeVar("Item", PendingDelivery, PendingComment)


class RatingSink(Protocol):
    def post_rating(self, request_id: str, rating: dict[str, Any]) -> int: ...


class CommentSink(Protocol):
    def put_comment(
        self, request_id: str, survey_id: str, wav: bytes, duration_s: float, sha256: str
    ) -> int: ...


class Outbox(Protocol):
    """What the delivery loop needs of storage (``storage.store.Store`` is one)."""

    def claim_deliveries(
        self, now: datetime, limit: int, lease: timedelta = ..., node: str | None = None
    ) -> list[PendingDelivery]: ...
    def release_deliveries(self, survey_ids: list[str], at: datetime) -> None: ...
    def mark_delivered(self, survey_id: str, http_status: int, now: datetime) -> None: ...
    def mark_dead(
        self, survey_id: str, http_status: int | None, error: str, now: datetime
    ) -> None: ...
    def mark_retry(
        self, survey_id: str, http_status: int | None, error: str, next_try_at: datetime
    ) -> None: ...
    def claim_comments(
        self, now: datetime, limit: int, lease: timedelta = ..., node: str | None = None
    ) -> list[PendingComment]: ...
    def release_comments(self, survey_ids: Sequence[str], at: datetime) -> None: ...
    def mark_comment(
        self,
        survey_id: str,
        state: str,
        http_status: int | None,
        error: str | None,
        when: datetime,
    ) -> None: ...
    def get_flag(self, name: str) -> str | None: ...
    def set_flag(self, name: str, value: str, now: datetime) -> None: ...


@dataclass
class DeliveryStats:
    delivered: int = 0
    dead: int = 0
    deferred: int = 0
    alarm: bool = False
    """The portal refused our token or redirected: delivery paused until that is fixed."""
    comments_delivered: int = 0
    comments_dead: int = 0
    comments_blocked: bool = False


def backoff(tries: int, retry_after: float | None, rng: random.Random) -> timedelta:
    return timedelta(seconds=backoff_s(tries, BACKOFF_BASE_S, BACKOFF_CAP_S, rng, retry_after))


class _Step(enum.Enum):
    """After one try: go on with the next item, or stop this round."""

    NEXT = "next"
    STOP = "stop"  # this item was handled (marked); the rest go back untried
    UNTRIED = "untried"  # this item and the rest go back untried


def _each(
    batch: Sequence[Item], try_one: Callable[[Item], _Step], release: Callable[[list[str]], None]
) -> bool:
    """Try the claimed ``batch`` in order; when a try says stop, ``release`` hands back the
    items not tried, due again at once (a struggling or misconfigured portal ends the round).
    False if the round was ended so."""
    for i, item in enumerate(batch):
        step = try_one(item)
        if step is not _Step.NEXT:
            start = i if step is _Step.UNTRIED else i + 1
            release([x.survey_id for x in batch[start:]])
            return False
    return True


def deliver_due(
    store: Outbox,
    portal: RatingSink,
    now: datetime,
    limit: int = 200,
    rng: random.Random | None = None,
    node: str | None = None,
) -> DeliveryStats:
    """Post every pending rating that is due, unsatisfied ones first, claimed for ``node``."""
    rng = rng or random.Random()
    stats = DeliveryStats()
    tried_all = _each(
        store.claim_deliveries(now, limit, node=node),
        lambda item: _post_rating(store, portal, item, now, stats, rng),
        lambda ids: store.release_deliveries(ids, now),
    )
    if not tried_all:  # the portal is misconfigured or struggling: comments wait too
        return stats
    put = getattr(portal, "put_comment", None)
    if put is not None:  # a portal client that speaks 1.1 (unit-test fakes may not)
        deliver_comments(store, portal, now, stats, limit=limit, rng=rng, node=node)  # type: ignore[arg-type]
    return stats


def _post_rating(
    store: Outbox,
    portal: RatingSink,
    item: PendingDelivery,
    now: datetime,
    stats: DeliveryStats,
    rng: random.Random,
) -> _Step:
    try:
        status = portal.post_rating(item.portal_request_id, item.payload)
    except PortalMisconfigured as exc:
        what = "refused our token" if isinstance(exc, PortalAuthError) else "redirected"
        log.error("ALARM: the portal %s (%s); delivery paused", what, exc)
        stats.alarm = True
        metrics.DELIVERIES.labels(result="deferred").inc()
        return _Step.UNTRIED
    except PortalRejected as exc:
        log.error("rating for request %s rejected for good: %s %s", item.portal_request_id,
                  exc.status, exc.body)  # fmt: skip
        store.mark_dead(item.survey_id, exc.status, f"{exc}: {exc.body}", now)
        stats.dead += 1
        metrics.DELIVERIES.labels(result="dead").inc()
        return _Step.NEXT
    except PortalUnavailable as exc:
        wait = backoff(item.tries, exc.retry_after, rng)
        log.warning("rating for request %s not delivered (%s); retry in %.0f s",
                    item.portal_request_id, exc, wait.total_seconds())  # fmt: skip
        store.mark_retry(item.survey_id, exc.status, str(exc), now + wait)
        stats.deferred += 1
        metrics.DELIVERIES.labels(result="deferred").inc()
        return _Step.STOP  # the portal is struggling: the rest wait for the next round
    store.mark_delivered(item.survey_id, status, now)
    stats.delivered += 1
    metrics.DELIVERIES.labels(result="delivered").inc()
    log.info("rating delivered: request %s outcome %s (HTTP %s)", item.portal_request_id,
             item.payload.get("outcome"), status)  # fmt: skip
    return _Step.NEXT


def deliver_comments(
    store: Outbox,
    portal: CommentSink,
    now: datetime,
    stats: DeliveryStats,
    limit: int = 200,
    rng: random.Random | None = None,
    node: str | None = None,
) -> None:
    """PUT every due comment whose rating the portal accepted (see the module docstring)."""
    rng = rng or random.Random()
    if store.get_flag(COMMENTS_BLOCKED_FLAG) is not None:
        stats.comments_blocked = True
        return
    _each(
        store.claim_comments(now, limit, node=node),
        lambda item: _put_comment(store, portal, item, now, stats, rng),
        lambda ids: store.release_comments(ids, now),
    )


def _put_comment(
    store: Outbox,
    portal: CommentSink,
    item: PendingComment,
    now: datetime,
    stats: DeliveryStats,
    rng: random.Random,
) -> _Step:
    try:
        wav = Path(item.path).read_bytes()
    except OSError as exc:
        log.error("comment of request %s: recording unreadable: %s", item.portal_request_id,
                  exc)  # fmt: skip
        store.mark_comment(item.survey_id, DeliveryState.DEAD, None,
                           f"recording unreadable: {exc}", now)  # fmt: skip
        stats.comments_dead += 1
        return _Step.NEXT
    try:
        status = portal.put_comment(
            item.portal_request_id, item.survey_id, wav, item.duration_s, item.sha256
        )
    except PortalMisconfigured as exc:
        log.error("ALARM: %s; delivery paused", exc)
        stats.alarm = True
        return _Step.UNTRIED
    except PortalRejected as exc:
        return _comment_rejected(store, item, exc, now, stats)
    except PortalUnavailable as exc:
        wait = backoff(item.tries, exc.retry_after, rng)
        log.warning("comment of request %s not delivered (%s); retry in %.0f s",
                    item.portal_request_id, exc, wait.total_seconds())  # fmt: skip
        store.mark_comment(item.survey_id, DeliveryState.PENDING, exc.status, str(exc),
                           now + wait)  # fmt: skip
        return _Step.STOP
    store.mark_comment(item.survey_id, DeliveryState.DELIVERED, status, None, now)
    stats.comments_delivered += 1
    log.info("comment delivered: request %s, %.2f s, sha256 %s (HTTP %s)",
             item.portal_request_id, item.duration_s, item.sha256, status)  # fmt: skip
    return _Step.NEXT


def _comment_rejected(
    store: Outbox, item: PendingComment, exc: PortalRejected, now: datetime, stats: DeliveryStats
) -> _Step:
    """A dead letter; a 404 also blocks every comment (a portal that may not speak 1.1)."""
    store.mark_comment(item.survey_id, DeliveryState.DEAD, exc.status, f"{exc}: {exc.body}",
                       now)  # fmt: skip
    stats.comments_dead += 1
    if exc.status != 404:
        log.error("comment of request %s rejected for good: %s %s",
                  item.portal_request_id, exc.status, exc.body)  # fmt: skip
        return _Step.NEXT
    log.error(
        "ALARM: the portal answered 404 on the comment path for request %s: it may "
        "not speak portal API 1.1 (check portal.base_url and the portal's version); "
        "comments wait until `ivr-rating deliver --retry-dead`",
        item.portal_request_id,
    )
    store.set_flag(COMMENTS_BLOCKED_FLAG, "404", now)
    stats.comments_blocked = True
    return _Step.STOP


def format_outbox(store: Store, local_date: date | None = None) -> str:
    """The outbox for ``report``: pending / delivered / dead, then every dead letter with the
    portal's answer (a dead letter is never retried blindly: fix the cause, then re-queue
    it with ``deliver --retry-dead``)."""
    counts = outbox_counts(store, local_date)
    lines = [
        f"delivery: pending {counts[DeliveryState.PENDING]}, "
        f"delivered {counts[DeliveryState.DELIVERED]}, dead {counts[DeliveryState.DEAD]}"
    ]
    dead = dead_letters(store, local_date)
    if dead:
        lines.append(
            "Dead letters (refused by the portal; once fixed, send again with "
            "`ivr-rating deliver --retry-dead ID`):"
        )
        for letter in dead:
            # Redacted again when shown: answers kept before redaction existed.
            answer = printable(redact_credentials(letter.answer)) if letter.answer else ""
            lines.append(
                f"  request {letter.portal_request_id} survey {letter.survey_id}: "
                f"HTTP {letter.http_status if letter.http_status is not None else '-'}: "
                f"{answer or '(no answer)'}"
            )
    lines.extend(format_comments(store))
    return "\n".join(lines)


def format_comments(store: Store) -> list[str]:
    """The spoken comments' outbox for ``report``: counts, the dead ones with the portal's
    answer, and the 1.0-portal alarm when comments wait."""
    counts = store.comment_counts()
    if not any(counts.values()):
        return []
    lines = [
        f"comments: pending {counts[DeliveryState.PENDING]}, "
        f"delivered {counts[DeliveryState.DELIVERED]}, dead {counts[DeliveryState.DEAD]}"
    ]
    if store.get_flag(COMMENTS_BLOCKED_FLAG) is not None:
        lines.append(
            "  ALARM: the portal answered 404 on the comment path (a portal API 1.0?); comments "
            "wait. Once it speaks 1.1: `ivr-rating deliver --retry-dead`"
        )
    for c in store.comments(DeliveryState.DEAD):
        lines.append(
            f"  dead comment: request {c.portal_request_id} survey {c.survey_id}: "
            f"HTTP {c.http_status if c.http_status is not None else '-'}: "
            f"{c.last_error or '(no answer)'}"
        )
    return lines
