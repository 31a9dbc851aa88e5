"""The rules of a survey's result, above storage: what the portal is told (the Rating body of
``docs/portal-api.yaml``), which results are posted first, and when an unsatisfied answer is
"unsatisfied again". Storage calls these when it writes a final outcome; it decides nothing."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ivr.core.vocabulary import Outcome, Reason


@dataclass(frozen=True)
class FinishedSurvey:
    survey_id: str
    outcome: str
    reason: str | None
    digit: str | None
    answered_at: datetime | None
    completed_at: datetime | None
    attempts: int


def rating_body(survey: FinishedSurvey) -> dict[str, Any]:
    """The Rating body for a survey that has its final outcome. An unsatisfied answer sends
    the request back for rework (``return_for_rework``)."""

    def iso(value: datetime | None) -> str | None:
        return None if value is None else value.isoformat()

    return {
        "survey_id": survey.survey_id,
        "outcome": survey.outcome,
        "reason": survey.reason,
        "digit": survey.digit,
        "answered_at": iso(survey.answered_at),
        "completed_at": iso(survey.completed_at),
        "attempts": survey.attempts,
        "return_for_rework": survey.outcome == Outcome.UNSATISFIED,
        # Portal API 1.1: set true when a spoken comment follows (storage.comments).
        "comment_expected": False,
        # The citizen asked for a person and none could take the call (ivr.core.callflow).
        "callback_requested": survey.reason == Reason.CALLBACK_REQUESTED,
    }


def delivery_priority(outcome: str) -> int:
    """Lower goes first: unsatisfied results reach the portal before the others."""
    return 0 if outcome == Outcome.UNSATISFIED else 1


def final_reason(outcome: str, reason: str | None, previous_outcome: str | None) -> str | None:
    """The reason stored with an outcome: an unsatisfied answer in a later round of a request
    whose previous round was unsatisfied too is ``unsatisfied_again``."""
    if (
        outcome == Outcome.UNSATISFIED
        and reason is None
        and previous_outcome == Outcome.UNSATISFIED
    ):
        return Reason.UNSATISFIED_AGAIN
    return reason
