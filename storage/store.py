"""Every read and write the service makes, in short transactions.

``Store`` takes an Engine and does not own it. Each method is one transaction: a survey's final
outcome and its outbox row are written together (``storage.outcomes``), an attempt is committed
as ``dialing`` before the INVITE goes out (``storage.claims``). The outbox lives in
``storage.outbox``, the do-not-call list and flags in ``storage.control``, spoken comments in
``storage.comments``, the records in ``storage.records`` (re-exported here). This module holds
the import's writes and the reports.
"""

from __future__ import annotations

import hashlib
import json
from datetime import date, datetime
from typing import Any

from sqlalchemy import func, select, update

from storage.claims import ClaimsMixin
from storage.comments import CommentsMixin
from storage.control import ControlMixin, DoNotCallAdded
from storage.models import (
    Delivery,
    ImportRun,
    RejectedItem,
    Survey,
    SurveyStatus,
)
from storage.outbox import OutboxMixin
from storage.outcomes import OutcomesMixin
from storage.records import (
    AttemptResult,
    ClaimedCall,
    DueSurvey,
    NewSurvey,
    PendingDelivery,
    ReportRow,
    due_of,
    due_query,
    rating_payload,
)

__all__ = [
    "AttemptResult",
    "ClaimedCall",
    "DoNotCallAdded",
    "DueSurvey",
    "NewSurvey",
    "PendingDelivery",
    "ReportRow",
    "Store",
    "rating_payload",
]


class Store(ClaimsMixin, OutcomesMixin, OutboxMixin, CommentsMixin, ControlMixin):
    """Surveys, attempts, outcomes and reports; claims, outcomes, the outbox, comments and
    operator state via mixins."""

    # ---- import ---------------------------------------------------------------------------
    def begin_import(self, local_date: date, now: datetime) -> None:
        with self._tx() as s:
            run = s.get(ImportRun, local_date)
            if run is None:
                s.add(ImportRun(local_date=local_date, started_at=now, items=0, rejected=0))
            else:
                run.started_at = now

    def complete_import(self, local_date: date, now: datetime, items: int, rejected: int) -> None:
        with self._tx() as s:
            run = s.get(ImportRun, local_date)
            assert run is not None, "begin_import first"
            run.completed_at = now
            run.items = items
            run.rejected = rejected

    def import_completed(self, local_date: date) -> bool:
        with self._tx() as s:
            run = s.get(ImportRun, local_date)
            return run is not None and run.completed_at is not None

    def add_survey(self, new: NewSurvey, now: datetime) -> bool:
        """Store a request's survey; False (and nothing written) if this closing is known.

        The rules of the batched import (:func:`storage.bulk.add_surveys`): a later closing
        starts a new round, linked to the last one, and supersedes an earlier round still
        waiting for its call."""
        from storage.bulk import add_surveys  # bulk builds on Store

        return add_surveys(self, [new], now)[0].new

    def add_rejected(
        self, local_date: date, portal_request_id: str | None, reason: str, raw: Any, now: datetime
    ) -> bool:
        """Keep a rejected item once per day (re-importing the day does not repeat it)."""
        blob = json.dumps(raw, sort_keys=True, default=str, ensure_ascii=False)
        fingerprint = hashlib.sha256(blob.encode()).hexdigest()
        with self._tx() as s:
            exists = s.scalar(
                select(RejectedItem.id).where(
                    RejectedItem.local_date == local_date, RejectedItem.fingerprint == fingerprint
                )
            )
            if exists is not None:
                return False
            s.add(
                RejectedItem(
                    local_date=local_date,
                    portal_request_id=portal_request_id,
                    fingerprint=fingerprint,
                    reason=reason,
                    raw=json.loads(blob),
                    created_at=now,
                )
            )
            return True

    # ---- the campaign's state --------------------------------------------------------------------
    def due_surveys(
        self, now: datetime, limit: int, local_date: date | None = None
    ) -> list[DueSurvey]:
        with self._tx() as s:
            return [due_of(r) for r in s.scalars(due_query(now, local_date).limit(limit))]

    def erase_phones(self, finished_before: datetime) -> int:
        """Retention: forget the phone numbers of surveys finished before the cutoff (outcomes
        stay for statistics), and the raw rows of rejected items imported before it."""
        with self._tx() as s:
            result = s.execute(
                update(Survey)
                .where(
                    Survey.status == SurveyStatus.DONE,
                    Survey.completed_at < finished_before,
                    Survey.phone_raw.is_not(None) | Survey.phone.is_not(None),
                )
                .values(phone=None, phone_raw=None)
            )
            s.execute(
                update(RejectedItem)
                .where(RejectedItem.created_at < finished_before)
                .values(raw={"erased": True})
            )
            return int(result.rowcount or 0)  # type: ignore[attr-defined]

    def status_counts(self) -> dict[str, int]:
        """Surveys by status, and done ones by outcome ('done:satisfied', ...)."""
        with self._tx() as s:
            out: dict[str, int] = {}
            rows = s.execute(
                select(Survey.status, Survey.outcome, func.count()).group_by(
                    Survey.status, Survey.outcome
                )
            )
            for status, outcome, n in rows:
                key = f"done:{outcome}" if status == SurveyStatus.DONE else status
                out[key] = out.get(key, 0) + int(n)
            return out

    def next_attempt_time(self, local_date: date | None = None) -> datetime | None:
        with self._tx() as s:
            q = select(func.min(Survey.next_attempt_at)).where(
                Survey.status == SurveyStatus.PENDING
            )
            if local_date is not None:
                q = q.where(Survey.local_date == local_date)
            return s.scalar(q)

    def unfinished(self, local_date: date | None = None) -> int:
        with self._tx() as s:
            q = select(func.count()).select_from(Survey).where(Survey.status != SurveyStatus.DONE)
            if local_date is not None:
                q = q.where(Survey.local_date == local_date)
            return int(s.scalar(q) or 0)

    # ---- reporting ------------------------------------------------------------------------
    def report_rows(self, local_date: date | None = None) -> list[ReportRow]:
        with self._tx() as s:
            q = (
                select(Survey, Delivery.state)
                .outerjoin(Delivery, Delivery.survey_id == Survey.id)
                .order_by(Survey.closed_at, Survey.portal_request_id)
            )
            if local_date is not None:
                q = q.where(Survey.local_date == local_date)
            return [
                ReportRow(
                    portal_request_id=sv.portal_request_id,
                    request_number=sv.request_number,
                    phone=sv.phone,
                    attempts=sv.attempts,
                    status=sv.status,
                    outcome=sv.outcome,
                    reason=sv.reason,
                    digit=sv.digit,
                    delivery=state,
                )
                for sv, state in s.execute(q)
            ]

    def rejected(self, local_date: date | None = None) -> list[tuple[str | None, str]]:
        with self._tx() as s:
            q = select(RejectedItem.portal_request_id, RejectedItem.reason).order_by(
                RejectedItem.id
            )
            if local_date is not None:
                q = q.where(RejectedItem.local_date == local_date)
            return [(pid, reason) for pid, reason in s.execute(q)]
