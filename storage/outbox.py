"""The outbox: ratings waiting to be posted to the portal, claimed so no two nodes post one."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import func, select, update

from storage.base import StoreBase
from storage.models import Delivery, DeliveryState
from storage.records import PendingDelivery


class OutboxMixin(StoreBase):
    def claim_deliveries(
        self, now: datetime, limit: int, lease: timedelta = timedelta(minutes=2)
    ) -> list[PendingDelivery]:
        """Take due pending ratings to post: they are hidden from other nodes for ``lease``
        (``FOR UPDATE SKIP LOCKED`` on PostgreSQL), so two nodes do not post the same one.
        A node that dies mid-post leaves them to be retried once the lease runs out (the
        Idempotency-Key makes that retry harmless)."""
        with self._tx() as s:
            q = (
                select(Delivery)
                .where(Delivery.state == DeliveryState.PENDING, Delivery.next_try_at <= now)
                .order_by(Delivery.priority, Delivery.created_at)
                .limit(limit)
            )
            if s.get_bind().dialect.name == "postgresql":
                q = q.with_for_update(skip_locked=True)
            rows = list(s.scalars(q))
            for d in rows:
                d.next_try_at = now + lease
            return [
                PendingDelivery(d.survey_id, d.portal_request_id, dict(d.payload), d.tries)
                for d in rows
            ]

    def release_deliveries(self, survey_ids: list[str], at: datetime) -> None:
        """Hand back claimed ratings not attempted after all (due again at ``at``)."""
        if not survey_ids:
            return
        with self._tx() as s:
            s.execute(
                update(Delivery)
                .where(Delivery.survey_id.in_(survey_ids), Delivery.state == DeliveryState.PENDING)
                .values(next_try_at=at)
            )

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
        self._set_delivery(
            survey_id, DeliveryState.DELIVERED, http_status, None, now, delivered=True
        )

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
        delivered: bool = False,
    ) -> None:
        with self._tx() as s:
            d = s.get(Delivery, survey_id)
            assert d is not None
            d.state = state
            d.tries += 1
            d.http_status = http_status
            d.last_error = error
            if delivered:
                d.delivered_at = when
            else:
                d.next_try_at = when
