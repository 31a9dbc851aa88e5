"""Set-at-a-time reads and writes for the import and the reports, on a :class:`Store`'s Engine.

The nightly import stores a page of requests in one transaction: one query finds which closings
are already known (and the earlier rounds of each request, to link a new round to the latest
and to supersede those still waiting for a call), the new surveys go in together, and a
``not_called`` one gets its outcome and outbox row in the same transaction
(``storage.outcomes.finish``). :meth:`Store.add_survey` is this for one closing.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from ivr.core.vocabulary import Outcome, Reason
from storage.db import mapped
from storage.models import Delivery, DeliveryState, DoNotCall, Survey, SurveyStatus
from storage.outcomes import finish
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


@dataclass(frozen=True)
class Added:
    """What storing one request closing did."""

    new: bool  # False: this closing (request id and closed_at) was already known
    changed: tuple[str, ...] = ()  # a known closing whose data now differs: those fields
    superseded: int = 0  # earlier rounds still waiting for a call, closed by this closing


# Fields compared when a known closing arrives again (the column, the name shown).
_COMPARED = (
    ("request_number", "number"),
    ("phone", "phone"),
    ("language", "language"),
    ("category", "category"),
)


def _differences(stored: dict[str, object], new: NewSurvey) -> tuple[str, ...]:
    changed = []
    for column, shown in _COMPARED:
        old, now = stored.get(column), getattr(new, column)
        if column == "phone":
            if stored.get("phone_raw") is None and old is None:
                continue  # erased by retention: nothing to compare with
            if old is None and now is None:  # both unreadable: compare as written
                old, now = stored.get("phone_raw"), new.phone_raw
        if old != now:
            changed.append(shown)
    return tuple(changed)


def add_surveys(store: Store, news: Sequence[NewSurvey], now: datetime) -> list[Added]:
    """Store a batch of request closings in one transaction; for each, what it did.

    A closing already known (same request, same ``closed_at``; also twice in one batch) is
    skipped, and the fields in which it differs from the stored one are returned. A later
    closing of a known request starts a new round linked to the latest earlier one, and
    closes every earlier round still waiting for a call (not being dialled) as ``not_called``
    (``superseded``): one call and one rating per closing, never two calls about one request.
    A closing older than a stored round is kept the same way, as superseded. A database error
    raises the project's :class:`~ivr.core.errors.StorageError` (nothing of the batch is then
    written): the caller falls back to one item at a time."""
    with mapped():
        return _add_surveys(store, news, now)


Round = dict[str, object]


def _add_surveys(store: Store, news: Sequence[NewSurvey], now: datetime) -> list[Added]:
    with Session(store.engine, expire_on_commit=False) as s, s.begin():
        # Every round of these requests, stored or added by this batch, by request.
        rounds = _stored_rounds(s, sorted({n.portal_request_id for n in news}))
        result: list[Added] = []
        added: list[Round] = []
        supersede_stored: list[str] = []
        for new in news:
            known = rounds.setdefault(new.portal_request_id, [])
            same = next((r for r in known if r["closed_at"] == new.closed_at), None)
            if same is not None:
                result.append(Added(new=False, changed=_differences(same, new)))
                continue
            earlier = [r for r in known if _closed(r) < new.closed_at]
            superseded = _supersede(earlier, supersede_stored)
            later_known = any(_closed(r) > new.closed_at for r in known)
            reason = new.not_called_reason or (Reason.SUPERSEDED if later_known else None)
            row = _new_row(new, max(earlier, key=_closed) if earlier else None, now)
            known.append(row | {"stored": False, "not_called_reason": reason})
            added.append(row)
            result.append(Added(new=True, superseded=superseded))
        _write(s, rounds, added, supersede_stored, now)
    return result


def _stored_rounds(s: Session, ids: Sequence[str]) -> dict[str, list[Round]]:
    rounds: dict[str, list[Round]] = {}
    for chunk in _chunks(ids):
        q = select(
            Survey.portal_request_id,
            Survey.closed_at,
            Survey.id,
            Survey.round_no,
            Survey.status,
            Survey.request_number,
            Survey.phone_raw,
            Survey.phone,
            Survey.language,
            Survey.category,
        ).where(Survey.portal_request_id.in_(chunk))
        for stored in s.execute(q).mappings():
            rounds.setdefault(stored["portal_request_id"], []).append(
                {**stored, "stored": True, "not_called_reason": None}
            )
    return rounds


def _supersede(earlier: list[Round], supersede_stored: list[str]) -> int:
    """Earlier rounds still waiting for their call: a later closing replaces them. The stored
    ones go to ``supersede_stored``; returns how many."""
    superseded = 0
    for r in earlier:
        if r["status"] == SurveyStatus.PENDING and r["not_called_reason"] is None:
            r["status"] = SurveyStatus.DONE
            r["not_called_reason"] = Reason.SUPERSEDED
            if r["stored"]:
                supersede_stored.append(str(r["id"]))
            superseded += 1
    return superseded


def _new_row(new: NewSurvey, previous: Round | None, now: datetime) -> Round:
    return {
        "id": str(uuid.uuid4()),
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
        "previous_survey_id": previous["id"] if previous else None,
        "round_no": int(str(previous["round_no"])) + 1 if previous else 1,
        "deadline_at": new.deadline_at,
        "executor_id": new.executor_id,
        "executor_name": new.executor_name,
        "address": new.address,
        "category_name": new.category_name,
        "district": new.district,
    }


def _write(
    s: Session,
    rounds: dict[str, list[Round]],
    added: list[Round],
    supersede_stored: list[str],
    now: datetime,
) -> None:
    """Insert the new rounds (those not to be called with their outcome and outbox row) and
    end the stored rounds they supersede."""
    reasons = {
        str(r["id"]): r["not_called_reason"]
        for known in rounds.values()
        for r in known
        if not r["stored"]
    }
    pending: list[Round] = []
    finished: list[tuple[Survey, str]] = []
    for new_row in added:
        why = reasons[str(new_row["id"])]
        if why is None:
            pending.append(new_row)
        else:  # few: through the ORM, to share the outcome-and-outbox write
            finished.append((Survey(**new_row), str(why)))
    if pending:
        s.execute(insert(Survey), pending)  # one executemany
    if finished:
        s.add_all(survey for survey, _ in finished)
        s.flush()
        for survey, reason_text in finished:
            # The outcome-and-outbox write of every final outcome, in this transaction.
            finish(s, survey, Outcome.NOT_CALLED, None, reason_text, None, now)
    for survey_id in supersede_stored:
        earlier_round = s.get(Survey, survey_id, with_for_update=True)
        # Claimed for a call since it was read: that call is about its own closing.
        if earlier_round is not None and earlier_round.status == SurveyStatus.PENDING:
            finish(s, earlier_round, Outcome.NOT_CALLED, None, Reason.SUPERSEDED, None, now)


def _closed(row: Round) -> datetime:
    closed_at = row["closed_at"]
    assert isinstance(closed_at, datetime)
    return closed_at


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
