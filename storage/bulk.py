"""Set-at-a-time reads and writes for the import and the reports, on a :class:`Store`'s Engine.

The nightly import stores a page of requests in one transaction: one query finds which closings
are already known (and the latest earlier round of each request, to link a new round to it),
the new surveys go in together, and a ``not_called`` one gets its outbox row in the same
transaction, exactly as :meth:`Store.add_survey` does one at a time.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from storage.models import Delivery, DeliveryState, DoNotCall, Survey, SurveyStatus
from storage.store import NewSurvey, Store

# Bound parameters per IN (...) query: far below SQLite's and PostgreSQL's limits.
_CHUNK = 500


def _chunks(values: Sequence[str]) -> Iterable[Sequence[str]]:
    for start in range(0, len(values), _CHUNK):
        yield values[start : start + _CHUNK]


def do_not_call_among(store: Store, phones: Iterable[str | None]) -> set[str]:
    """The numbers (E.164) of ``phones`` that are on the do-not-call list."""
    wanted = sorted({p for p in phones if p})
    found: set[str] = set()
    with store.engine.connect() as conn:
        for chunk in _chunks(wanted):
            found.update(conn.scalars(select(DoNotCall.phone).where(DoNotCall.phone.in_(chunk))))
    return found


def add_surveys(store: Store, news: Sequence[NewSurvey], now: datetime) -> list[bool]:
    """Store a batch of request closings in one transaction; for each, True if it was new.

    A closing already known (same request, same ``closed_at``; also twice in one batch) is
    skipped. A later closing of a known request starts a new round linked to the latest
    earlier one. Raises on a database error (nothing of the batch is then written): the
    caller falls back to one item at a time."""
    ids = sorted({n.portal_request_id for n in news})
    # Every round already stored for these requests: (closed_at, survey) per request.
    rounds: dict[str, list[tuple[datetime, str, int]]] = {}
    # One transaction for the whole batch.
    with Session(store.engine, expire_on_commit=False) as s, s.begin():
        for chunk in _chunks(ids):
            q = select(
                Survey.portal_request_id, Survey.closed_at, Survey.id, Survey.round_no
            ).where(Survey.portal_request_id.in_(chunk))
            for pid, closed_at, sid, round_no in s.execute(q):
                rounds.setdefault(pid, []).append((closed_at, sid, round_no))
        result: list[bool] = []
        pending: list[dict[str, object]] = []
        finished: list[tuple[Survey, str]] = []
        for new in news:
            known = rounds.setdefault(new.portal_request_id, [])
            if any(closed_at == new.closed_at for closed_at, _, _ in known):
                result.append(False)
                continue
            earlier = [r for r in known if r[0] < new.closed_at]
            previous = max(earlier) if earlier else None
            survey_id = str(uuid.uuid4())
            round_no = previous[2] + 1 if previous else 1
            row: dict[str, object] = {
                "id": survey_id,
                "portal_request_id": new.portal_request_id,
                "request_number": new.request_number,
                "closed_at": new.closed_at,
                "local_date": new.local_date,
                "phone_raw": new.phone_raw,
                "phone": new.phone,
                "language": new.language,
                "category": new.category,
                "status": SurveyStatus.PENDING,
                "attempts": 0,
                "next_attempt_at": now,
                "created_at": now,
                "previous_survey_id": previous[1] if previous else None,
                "round_no": round_no,
                "deadline_at": new.deadline_at,
            }
            known.append((new.closed_at, survey_id, round_no))
            if new.not_called_reason is None:
                pending.append(row)
            else:  # few: through the ORM, to share Store's outcome-and-outbox write
                finished.append((Survey(**row), new.not_called_reason))
            result.append(True)
        if pending:
            s.execute(insert(Survey), pending)  # one executemany
        if finished:
            s.add_all(survey for survey, _ in finished)
            s.flush()
            for survey, reason in finished:
                # The same outcome-and-outbox write as Store.add_survey, in this transaction.
                store._finish(s, survey, "not_called", None, reason, None, now)
    return result


@dataclass(frozen=True)
class DeadLetter:
    """A rating the portal refused for good, with the portal's answer."""

    portal_request_id: str
    survey_id: str
    http_status: int | None
    answer: str | None
    tries: int


def outbox_counts(store: Store, local_date: date | None = None) -> dict[str, int]:
    """pending / delivered / dead (always all three), for one local day or all of them."""
    counts = {DeliveryState.PENDING: 0, DeliveryState.DELIVERED: 0, DeliveryState.DEAD: 0}
    with store.engine.connect() as conn:
        q = select(Delivery.state, func.count()).group_by(Delivery.state)
        if local_date is not None:
            q = q.join(Survey, Survey.id == Delivery.survey_id).where(
                Survey.local_date == local_date
            )
        for state, n in conn.execute(q):
            counts[state] = int(n)
    return counts


def dead_letters(store: Store, local_date: date | None = None) -> list[DeadLetter]:
    """Dead letters, oldest first, for one local day or all of them."""
    q = (
        select(
            Delivery.portal_request_id,
            Delivery.survey_id,
            Delivery.http_status,
            Delivery.last_error,
            Delivery.tries,
        )
        .where(Delivery.state == DeliveryState.DEAD)
        .order_by(Delivery.created_at, Delivery.portal_request_id)
    )
    if local_date is not None:
        q = q.join(Survey, Survey.id == Delivery.survey_id).where(Survey.local_date == local_date)
    with store.engine.connect() as conn:
        return [DeadLetter(*row) for row in conn.execute(q)]
