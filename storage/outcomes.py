"""A survey's end: its final outcome and its outbox row written together, and each attempt's
SIP facts.

:func:`finish` is the one write of every final outcome (a call's result, an opt-out, the
do-not-call list, an expired or superseded survey, a not_called import), in the caller's
transaction: the outcome and the rating to deliver are never apart.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from ivr.core.rating import delivery_priority, final_reason
from ivr.core.vocabulary import Disposition, Outcome, Reason
from storage.db import StoreBase
from storage.models import CallAttempt, Delivery, DeliveryState, Survey, SurveyStatus
from storage.records import AttemptResult, rating_payload


def finish(
    s: Session,
    survey: Survey,
    outcome: str,
    digit: str | None,
    reason: str | None,
    answered_at: datetime | None,
    now: datetime,
) -> None:
    """End ``survey`` with ``outcome`` and queue its rating (the outbox row), in ``s``."""
    if survey.previous_survey_id and reason is None:
        previous = s.get(Survey, survey.previous_survey_id)
        reason = final_reason(outcome, reason, previous.outcome if previous else None)
    survey.status = SurveyStatus.DONE
    survey.claimed_by = None
    survey.claim_until = None
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
            priority=delivery_priority(outcome),
            tries=0,
            next_try_at=now,
            created_at=now,
        )
    )


class OutcomesMixin(StoreBase):
    """What a call writes as it goes and when it ends: the answer, the attempt, the outcome."""

    def attempt_history(self, survey_id: str) -> list[str]:
        """Dispositions of the survey's attempts, oldest first."""
        with self._tx() as s:
            q = (
                select(CallAttempt.disposition)
                .where(CallAttempt.survey_id == survey_id)
                .order_by(CallAttempt.id)
            )
            return list(s.scalars(q))

    def mark_answered(
        self, attempt_ids: list[int], answered_at: datetime, sip_call_id: str | None = None
    ) -> None:
        """The 200 OK arrived: commit the answer time at once, before the call goes on. An
        attempt killed after this counts and keeps the number's one answered call a day."""
        with self._tx() as s:
            s.execute(
                update(CallAttempt)
                .where(
                    CallAttempt.id.in_(attempt_ids), CallAttempt.disposition == Disposition.DIALING
                )
                .values(answered_at=answered_at, sip_call_id=sip_call_id)
            )

    def finish_attempt(self, attempt_id: int, result: AttemptResult) -> None:
        with self._tx() as s:
            attempt = s.get(CallAttempt, attempt_id)
            assert attempt is not None
            attempt.sip_call_id = result.sip_call_id
            attempt.sip_status = result.sip_status
            attempt.sip_reason = result.sip_reason
            # An answer time committed at the 200 OK (mark_answered) is never lost.
            attempt.answered_at = result.answered_at or attempt.answered_at
            attempt.ended_at = result.ended_at
            attempt.keys = result.keys
            attempt.disposition = result.disposition
            attempt.prompt_version = result.prompt_version
            attempt.key_sources = result.key_sources
            attempt.duration_s = (
                (result.ended_at - attempt.answered_at).total_seconds()
                if attempt.answered_at is not None
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
        hold_until: datetime | None = None,
        node: str | None = None,
    ) -> bool:
        """Final outcome and its outbox row, in one transaction. False if it already had one.

        ``hold_until``: the rating is not due before then, claimed by ``node`` (a spoken
        comment may follow; see ``storage.comments``). In the same transaction, so no
        delivery round can post it in between."""
        with self._tx() as s:
            survey = s.get(Survey, survey_id, with_for_update=True)
            assert survey is not None
            if survey.status == SurveyStatus.DONE:
                return False
            finish(s, survey, outcome, digit, reason, answered_at, now)
            if hold_until is not None:
                s.flush()
                delivery = s.get(Delivery, survey_id)
                assert delivery is not None
                delivery.next_try_at = hold_until
                delivery.claimed_by = node
            return True

    def schedule_retry(self, survey_id: str, at: datetime) -> None:
        with self._tx() as s:
            s.execute(
                update(Survey)
                .where(Survey.id == survey_id, Survey.status != SurveyStatus.DONE)
                .values(
                    status=SurveyStatus.PENDING,
                    next_attempt_at=at,
                    claimed_by=None,
                    claim_until=None,
                )
            )

    def expire_overdue(self, now: datetime, deadline: timedelta) -> list[str]:
        """Surveys still pending ``deadline`` after their closing end as no_answer
        (survey_expired). Returns their portal request ids."""
        with self._tx() as s:
            rows = list(
                s.scalars(
                    select(Survey)
                    .where(
                        Survey.status == SurveyStatus.PENDING,
                        Survey.closed_at <= now - deadline,
                    )
                    .with_for_update()
                )
            )
            for row in rows:
                finish(s, row, Outcome.NO_ANSWER, None, Reason.SURVEY_EXPIRED, None, now)
            return [r.portal_request_id for r in rows]
