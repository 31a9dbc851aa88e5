"""The plain records the store takes and hands out, and what is derived from a row (the due
query, the portal's Rating body)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import Select, select

from ivr.core.rating import FinishedSurvey, rating_body
from storage.models import Survey, SurveyStatus


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
    # What the portal says about the work (informative: shown and analysed, never dialled).
    executor_id: str | None = None
    executor_name: str | None = None
    address: str | None = None
    category_name: str | None = None  # the prompt catalog's name of ``category`` ("lift")
    district: str | None = None  # read from the address (ivr.core.district), None if it names none


@dataclass(frozen=True)
class DueSurvey:
    id: str
    portal_request_id: str
    request_number: str
    phone: str
    language: str | None
    attempts: int
    # Read out in the call: the local day the request was closed, and its category.
    closed_on: date | None = None
    category: str | None = None
    closed_at: datetime | None = None


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
    # How each key arrived, in order: r = RFC 4733, i = SIP INFO, b = in-band.
    key_sources: str | None = None


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


def due_of(r: Survey) -> DueSurvey:
    return DueSurvey(
        id=r.id,
        portal_request_id=r.portal_request_id,
        request_number=r.request_number,
        phone=r.phone or "",
        language=r.language,
        attempts=r.attempts,
        closed_on=r.local_date,
        category=r.category,
        closed_at=r.closed_at,
    )


@dataclass(frozen=True)
class ClaimedCall:
    """One call to place: the due surveys of one phone, each with its attempt row."""

    phone: str
    surveys: list[DueSurvey]
    attempt_ids: list[int]


def due_query(now: datetime, local_date: date | None) -> Select[Survey]:
    """Pending surveys with a phone whose next attempt is due, oldest due first."""
    q = (
        select(Survey)
        .where(
            Survey.status == SurveyStatus.PENDING,
            Survey.next_attempt_at <= now,
            Survey.phone.is_not(None),
        )
        .order_by(Survey.next_attempt_at, Survey.closed_at)
    )
    if local_date is not None:
        q = q.where(Survey.local_date == local_date)
    return q


def rating_payload(survey: Survey) -> dict[str, Any]:
    """The Rating body for a survey that has its final outcome (the rule: ivr.core.rating)."""
    assert survey.outcome is not None
    return rating_body(
        FinishedSurvey(
            survey.id,
            survey.outcome,
            survey.reason,
            survey.digit,
            survey.answered_at,
            survey.completed_at,
            survey.attempts,
        )
    )
