"""The rules of a result, above storage (ivr.core.rating)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from ivr.core.rating import FinishedSurvey, delivery_priority, final_reason, rating_body
from ivr.core.vocabulary import Outcome, Reason

DONE = datetime(2026, 1, 5, 9, 30, tzinfo=UTC)  # fixed date: a value in a body, not a run day


@pytest.mark.parametrize(
    ("outcome", "rework", "priority"),
    [
        (Outcome.UNSATISFIED, True, 0),
        (Outcome.SATISFIED, False, 1),
        (Outcome.NO_ANSWER, False, 1),
        (Outcome.NOT_CALLED, False, 1),
    ],
    ids=str,
)
def test_unsatisfied_goes_back_for_rework_and_first(
    outcome: Outcome, rework: bool, priority: int
) -> None:
    body = rating_body(FinishedSurvey("s1", outcome, None, None, None, DONE, 1))
    assert body["return_for_rework"] is rework
    assert body["completed_at"] == DONE.isoformat() and body["answered_at"] is None
    assert delivery_priority(outcome) == priority


@pytest.mark.parametrize(
    ("outcome", "reason", "previous", "expected"),
    [
        (Outcome.UNSATISFIED, None, Outcome.UNSATISFIED, Reason.UNSATISFIED_AGAIN),
        (Outcome.UNSATISFIED, None, Outcome.SATISFIED, None),
        (Outcome.UNSATISFIED, None, None, None),
        (Outcome.SATISFIED, None, Outcome.UNSATISFIED, None),
        (Outcome.NO_ANSWER, Reason.SURVEY_EXPIRED, Outcome.UNSATISFIED, Reason.SURVEY_EXPIRED),
    ],
    ids=["again", "after-satisfied", "first-round", "satisfied-now", "other-reason-kept"],
)
def test_unsatisfied_again(
    outcome: str, reason: str | None, previous: str | None, expected: str | None
) -> None:
    assert final_reason(outcome, reason, previous) == expected
