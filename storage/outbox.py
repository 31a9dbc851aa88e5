"""The outbox: ratings waiting to be posted to the portal, claimed so no two nodes post one.

The functions at the top are what the two outboxes share, written once: ratings (``Delivery``,
here) and spoken comments (``Comment``, :mod:`storage.comments`) are rows that a node claims for
a lease, hands back, and marks after each try (delivered, dead, or pending again from the next
try's time)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import Select, func, select, update
from sqlalchemy.orm import Session

from storage.db import StoreBase
from storage.models import Comment, Delivery, DeliveryState
from storage.records import PendingDelivery

Row = TypeVar("Row", Delivery, Comment)
Model = type[Delivery] | type[Comment]


def claim(
    s: Session,
    q: Select[Row],
    now: datetime,
    lease: timedelta,
    node: str | None,
    of: Any = None,
) -> list[Row]:
    """The rows ``q`` selects, hidden from other nodes for ``lease`` (``FOR UPDATE SKIP
    LOCKED`` on PostgreSQL, of the table ``of`` when ``q`` joins another)."""
    if s.get_bind().dialect.name == "postgresql":
        q = q.with_for_update(skip_locked=True, of=of)
    rows = list(s.scalars(q))
    for row in rows:
        row.next_try_at = now + lease
        row.claimed_by = node
    return rows


def release(s: Session, model: Model, survey_ids: Sequence[str], at: datetime) -> None:
    """Hand back claimed rows not tried after all: due again at ``at``."""
    if survey_ids:
        s.execute(
            update(model)
            .where(model.survey_id.in_(survey_ids), model.state == DeliveryState.PENDING)
            .values(next_try_at=at, claimed_by=None)
        )


def release_node(s: Session, model: Model, node: str, now: datetime) -> int:
    """The pending rows ``node`` held when it stopped are due again ``now``. Returns how many."""
    result = s.execute(
        update(model)
        .where(model.claimed_by == node, model.state == DeliveryState.PENDING)
        .values(next_try_at=now, claimed_by=None)
    )
    return int(getattr(result, "rowcount", 0) or 0)


def record_try(
    row: Delivery | Comment,
    state: str,
    http_status: int | None,
    error: str | None,
    when: datetime,
) -> None:
    """After one try: delivered (``when`` is the time), dead, or pending again from ``when``."""
    row.state = state
    row.claimed_by = None
    row.tries += 1
    row.http_status = http_status
    row.last_error = error
    if state == DeliveryState.DELIVERED:
        row.delivered_at = when
    else:
        row.next_try_at = when


def requeue(rows: Iterable[Delivery | Comment], now: datetime) -> None:
    """Dead letters to send again: pending, due ``now``, unclaimed."""
    for row in rows:
        row.state = DeliveryState.PENDING
        row.next_try_at = now
        row.claimed_by = None


class OutboxMixin(StoreBase):
    def claim_deliveries(
        self,
        now: datetime,
        limit: int,
        lease: timedelta = timedelta(minutes=2),
        node: str | None = None,
    ) -> list[PendingDelivery]:
        """Take due pending ratings to post for ``node``: they are hidden from other nodes for
        ``lease`` (``FOR UPDATE SKIP LOCKED`` on PostgreSQL), so two nodes do not post the
        same one. A node that dies mid-post leaves them to be retried once the lease runs out,
        or at once when it restarts (``release_node_deliveries``); the Idempotency-Key makes
        that retry harmless."""
        with self._tx() as s:
            q = (
                select(Delivery)
                .where(Delivery.state == DeliveryState.PENDING, Delivery.next_try_at <= now)
                .order_by(Delivery.priority, Delivery.created_at)
                .limit(limit)
            )
            rows = claim(s, q, now, lease, node)
            return [
                PendingDelivery(d.survey_id, d.portal_request_id, dict(d.payload), d.tries)
                for d in rows
            ]

    def release_deliveries(self, survey_ids: list[str], at: datetime) -> None:
        """Hand back claimed ratings not attempted after all (due again at ``at``)."""
        if not survey_ids:
            return
        with self._tx() as s:
            release(s, Delivery, survey_ids, at)

    def release_node_deliveries(self, node: str, now: datetime) -> int:
        """On start: the ratings this node had claimed when it stopped (a crash mid-post) are
        due again now, not when their lease runs out. Returns how many."""
        with self._tx() as s:
            return release_node(s, Delivery, node, now)

    def pending_deliveries(self, now: datetime, limit: int) -> list[PendingDelivery]:
        with self._tx() as s:
            q = (
                select(Delivery)
                .where(Delivery.state == DeliveryState.PENDING, Delivery.next_try_at <= now)
                .order_by(Delivery.priority, Delivery.created_at)
                .limit(limit)
            )
            return [
                PendingDelivery(d.survey_id, d.portal_request_id, dict(d.payload), d.tries)
                for d in s.scalars(q)
            ]

    def delivery_counts(self) -> dict[str, int]:
        with self._tx() as s:
            rows = s.execute(select(Delivery.state, func.count()).group_by(Delivery.state))
            return {state: int(n) for state, n in rows}

    def mark_delivered(self, survey_id: str, http_status: int, now: datetime) -> None:
        self._set_delivery(survey_id, DeliveryState.DELIVERED, http_status, None, now)

    def mark_dead(self, survey_id: str, http_status: int | None, error: str, now: datetime) -> None:
        self._set_delivery(survey_id, DeliveryState.DEAD, http_status, error, now)

    def mark_retry(
        self, survey_id: str, http_status: int | None, error: str, next_try_at: datetime
    ) -> None:
        self._set_delivery(survey_id, DeliveryState.PENDING, http_status, error, next_try_at)

    def _set_delivery(
        self,
        survey_id: str,
        state: str,
        http_status: int | None,
        error: str | None,
        when: datetime,
    ) -> None:
        with self._tx() as s:
            d = s.get(Delivery, survey_id)
            assert d is not None
            record_try(d, state, http_status, error, when)
