"""Reading back what the service stored, for tests and benchmarks: the product reads its rows
through its own reports and the console."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from storage.models import CallAttempt, Survey
from storage.store import Store


def attempts_of(store: Store, portal_request_id: str) -> list[CallAttempt]:
    """Every attempt of the request's surveys, oldest first."""
    with Session(store.engine, expire_on_commit=False) as s:
        q = (
            select(CallAttempt)
            .join(Survey, Survey.id == CallAttempt.survey_id)
            .where(Survey.portal_request_id == portal_request_id)
            .order_by(CallAttempt.id)
        )
        return list(s.scalars(q))
