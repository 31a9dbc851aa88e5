"""What the two outboxes share, written once: ratings (``Delivery``) and spoken comments
(``Comment``) are rows that a node claims for a lease, hands back, and marks after each try
(delivered, dead, or pending again from the next try's time)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import Select, update
from sqlalchemy.orm import Session

from storage.models import Comment, Delivery, DeliveryState

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
