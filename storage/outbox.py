"""The outbox: ratings waiting to be posted to the portal, claimed so no two nodes post one."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import func, select

from storage import queue
from storage.base import StoreBase
from storage.models import Delivery, DeliveryState
from storage.records import PendingDelivery


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
            rows = queue.claim(s, q, now, lease, node)
            return [
                PendingDelivery(d.survey_id, d.portal_request_id, dict(d.payload), d.tries)
                for d in rows
            ]

    def release_deliveries(self, survey_ids: list[str], at: datetime) -> None:
        """Hand back claimed ratings not attempted after all (due again at ``at``)."""
        if not survey_ids:
            return
        with self._tx() as s:
            queue.release(s, Delivery, survey_ids, at)

    def release_node_deliveries(self, node: str, now: datetime) -> int:
        """On start: the ratings this node had claimed when it stopped (a crash mid-post) are
        due again now, not when their lease runs out. Returns how many."""
        with self._tx() as s:
            return queue.release_node(s, Delivery, node, now)

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
            queue.record_try(d, state, http_status, error, when)
