"""Every read and write the service makes, in short transactions.

``Store`` takes an Engine and does not own it. Each method is one transaction: a survey's final
outcome and its outbox row are written together, an attempt is committed as ``dialing`` before
the INVITE goes out.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import Engine, func, select, update
from sqlalchemy.orm import Session, sessionmaker

from storage.models import (
    CallAttempt,
    Delivery,
    DeliveryState,
    DoNotCall,
    ImportRun,
    RejectedItem,
    ServiceFlag,
    Survey,
    SurveyStatus,
)


@dataclass(frozen=True)
class NewSurvey:
    portal_request_id: str
    request_number: str
    closed_at: datetime
    local_date: date
    phone_raw: str | None
    phone: str | None
    language: str | None
    category: str | None
    # Set when the request is never to be dialled: invalid_phone, disallowed_number, no_consent...
    not_called_reason: str | None = None
    # After this the survey is given up (no_answer, survey_expired); None: no deadline.
    deadline_at: datetime | None = None


@dataclass(frozen=True)
class DueSurvey:
    id: str
    portal_request_id: str
    request_number: str
    phone: str
    language: str | None
    attempts: int


@dataclass(frozen=True)
class AttemptResult:
    sip_call_id: str | None
    sip_status: int | None
    sip_reason: str | None
    answered_at: datetime | None
    ended_at: datetime
    keys: str
    disposition: str
    prompt_version: str | None


@dataclass(frozen=True)
class PendingDelivery:
    survey_id: str
    portal_request_id: str
    payload: dict[str, Any]
    tries: int


@dataclass(frozen=True)
class ReportRow:
    portal_request_id: str
    request_number: str
    phone: str | None
    attempts: int
    status: str
    outcome: str | None
    reason: str | None
    digit: str | None
    delivery: str | None


def rating_payload(survey: Survey) -> dict[str, Any]:
    """The Rating body of the portal contract for a survey that has its final outcome."""

    def iso(value: datetime | None) -> str | None:
        return None if value is None else value.isoformat()

    return {
        "survey_id": survey.id,
        "outcome": survey.outcome,
        "reason": survey.reason,
        "digit": survey.digit,
        "answered_at": iso(survey.answered_at),
        "completed_at": iso(survey.completed_at),
        "attempts": survey.attempts,
        "return_for_rework": survey.outcome == "unsatisfied",
    }


class Store:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)

    @contextmanager
    def _tx(self) -> Iterator[Session]:
        with self._sessions.begin() as session:
            yield session

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
        """Store a request's survey; False (and nothing written) if this closing is known."""
        with self._tx() as s:
            known = s.scalar(
                select(Survey.id).where(
                    Survey.portal_request_id == new.portal_request_id,
                    Survey.closed_at == new.closed_at,
                )
            )
            if known is not None:
                return False
            # A request closed again after rework starts a new round, linked to the last one.
            previous = s.scalars(
                select(Survey)
                .where(
                    Survey.portal_request_id == new.portal_request_id,
                    Survey.closed_at < new.closed_at,
                )
                .order_by(Survey.closed_at.desc())
                .limit(1)
            ).first()
            survey = Survey(
                id=str(uuid.uuid4()),
                portal_request_id=new.portal_request_id,
                request_number=new.request_number,
                closed_at=new.closed_at,
                local_date=new.local_date,
                phone_raw=new.phone_raw,
                phone=new.phone,
                language=new.language,
                category=new.category,
                status=SurveyStatus.PENDING,
                attempts=0,
                next_attempt_at=now,
                created_at=now,
                previous_survey_id=previous.id if previous else None,
                round_no=previous.round_no + 1 if previous else 1,
                deadline_at=new.deadline_at,
            )
            s.add(survey)
            if new.not_called_reason is not None:
                s.flush()
                self._finish(s, survey, "not_called", None, new.not_called_reason, None, now)
            return True

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

    # ---- dialing --------------------------------------------------------------------------
    def due_surveys(
        self, now: datetime, limit: int, local_date: date | None = None
    ) -> list[DueSurvey]:
        with self._tx() as s:
            q = (
                select(Survey)
                .where(
                    Survey.status == SurveyStatus.PENDING,
                    Survey.next_attempt_at <= now,
                    Survey.phone.is_not(None),
                )
                .order_by(Survey.next_attempt_at, Survey.closed_at)
                .limit(limit)
            )
            if local_date is not None:
                q = q.where(Survey.local_date == local_date)
            return [
                DueSurvey(
                    id=r.id,
                    portal_request_id=r.portal_request_id,
                    request_number=r.request_number,
                    phone=r.phone or "",
                    language=r.language,
                    attempts=r.attempts,
                )
                for r in s.scalars(q)
            ]

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

    def start_attempt(self, survey_id: str, now: datetime) -> int:
        """Mark the survey as being dialled and write the attempt, committed before the INVITE."""
        with self._tx() as s:
            survey = s.get(Survey, survey_id, with_for_update=True)
            assert survey is not None
            survey.status = SurveyStatus.DIALING
            survey.attempts += 1
            attempt = CallAttempt(
                survey_id=survey_id,
                attempt_no=survey.attempts,
                started_at=now,
                keys="",
                disposition="dialing",
            )
            s.add(attempt)
            s.flush()
            return attempt.id

    def finish_attempt(self, attempt_id: int, result: AttemptResult) -> None:
        with self._tx() as s:
            attempt = s.get(CallAttempt, attempt_id)
            assert attempt is not None
            attempt.sip_call_id = result.sip_call_id
            attempt.sip_status = result.sip_status
            attempt.sip_reason = result.sip_reason
            attempt.answered_at = result.answered_at
            attempt.ended_at = result.ended_at
            attempt.keys = result.keys
            attempt.disposition = result.disposition
            attempt.prompt_version = result.prompt_version
            attempt.duration_s = (
                (result.ended_at - result.answered_at).total_seconds()
                if result.answered_at is not None
                else None
            )

    def record_outcome(
        self,
        survey_id: str,
        outcome: str,
        digit: str | None,
        reason: str | None,
        answered_at: datetime | None,
        now: datetime,
    ) -> bool:
        """Final outcome and its outbox row, in one transaction. False if it already had one."""
        with self._tx() as s:
            survey = s.get(Survey, survey_id, with_for_update=True)
            assert survey is not None
            if survey.status == SurveyStatus.DONE:
                return False
            self._finish(s, survey, outcome, digit, reason, answered_at, now)
            return True

    def _finish(
        self,
        s: Session,
        survey: Survey,
        outcome: str,
        digit: str | None,
        reason: str | None,
        answered_at: datetime | None,
        now: datetime,
    ) -> None:
        if outcome == "unsatisfied" and reason is None and survey.previous_survey_id:
            previous = s.get(Survey, survey.previous_survey_id)
            if previous is not None and previous.outcome == "unsatisfied":
                reason = "unsatisfied_again"
        survey.status = SurveyStatus.DONE
        survey.outcome = outcome
        survey.digit = digit
        survey.reason = reason
        survey.answered_at = answered_at
        survey.completed_at = now
        survey.next_attempt_at = None
        s.add(
            Delivery(
                survey_id=survey.id,
                portal_request_id=survey.portal_request_id,
                payload=rating_payload(survey),
                state=DeliveryState.PENDING,
                priority=0 if outcome == "unsatisfied" else 1,
                tries=0,
                next_try_at=now,
                created_at=now,
            )
        )

    def schedule_retry(self, survey_id: str, at: datetime) -> None:
        with self._tx() as s:
            s.execute(
                update(Survey)
                .where(Survey.id == survey_id, Survey.status != SurveyStatus.DONE)
                .values(status=SurveyStatus.PENDING, next_attempt_at=at)
            )

    def recover_interrupted(self, now: datetime, retry_at: datetime) -> int:
        """After a crash: attempts left ``dialing`` become ``interrupted`` (they count), and
        their surveys wait until ``retry_at`` before being dialled again."""
        with self._tx() as s:
            stuck = list(s.scalars(select(CallAttempt).where(CallAttempt.disposition == "dialing")))
            for attempt in stuck:
                attempt.disposition = "interrupted"
                attempt.ended_at = now
            s.execute(
                update(Survey)
                .where(Survey.status == SurveyStatus.DIALING)
                .values(status=SurveyStatus.PENDING, next_attempt_at=retry_at)
            )
            return len(stuck)

    # ---- delivery -------------------------------------------------------------------------
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

    # ---- do-not-call list and shared flags ------------------------------------------------
    def is_do_not_call(self, phone: str) -> bool:
        with self._tx() as s:
            return s.get(DoNotCall, phone) is not None

    def add_do_not_call(
        self, phone: str, source: str, now: datetime, note: str | None = None
    ) -> bool:
        """False if the number was already on the list."""
        with self._tx() as s:
            if s.get(DoNotCall, phone) is not None:
                return False
            s.add(DoNotCall(phone=phone, source=source, note=note, added_at=now))
            return True

    def remove_do_not_call(self, phone: str) -> bool:
        with self._tx() as s:
            row = s.get(DoNotCall, phone)
            if row is None:
                return False
            s.delete(row)
            return True

    def list_do_not_call(self) -> list[tuple[str, str, datetime, str | None]]:
        with self._tx() as s:
            rows = s.scalars(select(DoNotCall).order_by(DoNotCall.added_at))
            return [(r.phone, r.source, r.added_at, r.note) for r in rows]

    def set_flag(self, name: str, value: str, now: datetime) -> None:
        with self._tx() as s:
            row = s.get(ServiceFlag, name)
            if row is None:
                s.add(ServiceFlag(name=name, value=value, updated_at=now))
            else:
                row.value, row.updated_at = value, now

    def get_flag(self, name: str) -> str | None:
        with self._tx() as s:
            row = s.get(ServiceFlag, name)
            return None if row is None else row.value

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

    def attempts_of(self, survey_portal_id: str) -> list[CallAttempt]:
        with self._tx() as s:
            q = (
                select(CallAttempt)
                .join(Survey, Survey.id == CallAttempt.survey_id)
                .where(Survey.portal_request_id == survey_portal_id)
                .order_by(CallAttempt.id)
            )
            return list(s.scalars(q))
