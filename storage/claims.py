"""Claims on surveys to dial: taken for a node with a lease, given back after a crash.

A claimed survey is ``dialing``, held by one node until ``claim_until``, and its attempt row
(``dialing``) is committed before any INVITE. A node that dies leaves its claims to run out;
a restarted one takes back its own at once (``recover_interrupted``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import date, datetime, timedelta

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from ivr.core.vocabulary import Disposition, Outcome, Reason
from storage.db import StoreBase
from storage.models import (
    CallAttempt,
    Delivery,
    DeliveryState,
    DoNotCall,
    Survey,
    SurveyStatus,
)
from storage.outcomes import finish
from storage.records import ClaimedCall, due_of, due_query


def _is_postgres(s: Session) -> bool:
    return s.get_bind().dialect.name == "postgresql"


def _claimable(
    now: datetime, max_calls: int, local_date: date | None, answered_since: datetime | None
) -> Select[Survey]:
    """Due surveys whose phone is not being dialled (by any node) nor answered since
    ``answered_since``."""
    busy_phones = select(Survey.phone).where(
        Survey.status == SurveyStatus.DIALING, Survey.phone.is_not(None)
    )
    q = due_query(now, local_date).where(Survey.phone.not_in(busy_phones)).limit(max_calls * 4)
    if answered_since is not None:
        answered = (
            select(Survey.phone)
            .join(CallAttempt, CallAttempt.survey_id == Survey.id)
            .where(CallAttempt.answered_at >= answered_since)
        )
        q = q.where(Survey.phone.not_in(answered))
    return q


def _group_by_phone(
    s: Session, rows: Sequence[Survey], max_calls: int, now: datetime
) -> dict[str, list[Survey]]:
    """Up to ``max_calls`` phones' surveys, one call each. The list is checked again here,
    before every INVITE: a number listed after the import (or while a call to it rang out)
    ends as not_called instead of ringing."""
    listed = set(
        s.scalars(select(DoNotCall.phone).where(DoNotCall.phone.in_({r.phone for r in rows})))
    )
    groups: dict[str, list[Survey]] = {}
    for row in rows:
        assert row.phone is not None
        if row.phone in listed:
            finish(s, row, Outcome.NOT_CALLED, None, Reason.DO_NOT_CALL, None, now)
            continue
        if row.phone not in groups and len(groups) >= max_calls:
            continue
        groups.setdefault(row.phone, []).append(row)
    return groups


def start_attempt(s: Session, row: Survey, node: str, until: datetime, now: datetime) -> int:
    """Mark ``row`` as being dialled by ``node`` until ``until`` and write its attempt
    (``dialing``), in ``s``: the start of every attempt (``ClaimsMixin.claim_due``)."""
    row.status = SurveyStatus.DIALING
    row.claimed_by = node
    row.claim_until = until
    row.attempts += 1
    attempt = CallAttempt(
        survey_id=row.id,
        attempt_no=row.attempts,
        started_at=now,
        keys="",
        disposition=Disposition.DIALING,
        node=node,
    )
    s.add(attempt)
    s.flush()
    return attempt.id


def _interrupted_query(
    now: datetime, expired_only: bool, names: list[str] | None
) -> Select[Survey]:
    q = select(Survey).where(Survey.status == SurveyStatus.DIALING)
    if expired_only:
        return q.where(Survey.claim_until < now)
    if names is not None:
        q = q.where(
            Survey.claimed_by.in_(names) | Survey.claimed_by.is_(None) | (Survey.claim_until < now)
        )
    return q


def _stuck_attempts(s: Session, ids: list[str], names: list[str] | None) -> list[CallAttempt]:
    """The attempts left ``dialing`` of the surveys ``ids``; with ``names``, also those of
    these nodes on surveys already done (killed after the outcome was stored but before the
    line was closed: they were interrupted too)."""
    dialing = CallAttempt.disposition == Disposition.DIALING
    stuck = list(s.scalars(select(CallAttempt).where(dialing, CallAttempt.survey_id.in_(ids))))
    if names is not None:
        stuck += s.scalars(
            select(CallAttempt).where(
                dialing, CallAttempt.node.in_(names), CallAttempt.survey_id.not_in(ids)
            )
        )
    return stuck


def _counted_attempts(s: Session, survey_id: str) -> int:
    """Attempts that count towards the limit (trunk faults do not)."""
    q = (
        select(func.count())
        .select_from(CallAttempt)
        .where(CallAttempt.survey_id == survey_id, CallAttempt.disposition != Disposition.FAILED)
    )
    return int(s.scalar(q) or 0)


class ClaimsMixin(StoreBase):
    def claim_due(
        self,
        now: datetime,
        max_calls: int,
        node: str,
        lease: timedelta,
        local_date: date | None = None,
        answered_since: datetime | None = None,
    ) -> list[ClaimedCall]:
        """Claim up to ``max_calls`` calls' worth of due surveys for ``node``, in one transaction.

        Surveys of one phone go into one call. A phone being dialled (by any node) is skipped,
        and so is a phone answered since ``answered_since`` (at most one call a day to one
        number). Each claimed survey is marked ``dialing`` with a lease and gets its attempt row
        (``dialing``) committed before any INVITE. A due survey whose number is on the
        do-not-call list ends as not_called (do_not_call) instead. On PostgreSQL rows are taken with
        ``FOR UPDATE SKIP LOCKED`` and a transaction-level advisory lock per phone, so two
        nodes never dial the same survey or the same number at once."""
        if max_calls <= 0:
            return []
        with self._tx() as s:
            postgres = _is_postgres(s)
            q = _claimable(now, max_calls, local_date, answered_since)
            if postgres:
                q = q.with_for_update(skip_locked=True, of=Survey)
            groups = _group_by_phone(s, list(s.scalars(q)), max_calls, now)
            claimed: list[ClaimedCall] = []
            for phone, rows in groups.items():
                if postgres and not s.scalar(
                    select(func.pg_try_advisory_xact_lock(func.hashtext(phone)))
                ):
                    continue  # another node is claiming this number right now
                attempt_ids = [start_attempt(s, row, node, now + lease, now) for row in rows]
                # The DueSurvey carries the attempt count before this attempt (as due_surveys).
                due = [replace(due_of(r), attempts=r.attempts - 1) for r in rows]
                claimed.append(ClaimedCall(phone, due, attempt_ids))
            return claimed

    def recover_interrupted(
        self,
        now: datetime,
        retry_at: datetime,
        node: str | None = None,
        expired_only: bool = False,
        max_attempts: int | None = None,
        nodes: list[str] | None = None,
        answered_retry_at: datetime | None = None,
    ) -> int:
        """After a crash: attempts left ``dialing`` become ``interrupted`` (they count), and
        their surveys wait until ``retry_at`` before being dialled again.

        ``expired_only``: just the claims whose lease ran out (a node that died). With
        ``node``: that node's attempts and those whose lease ran out; other nodes' calls in
        progress are left alone; ``nodes``: the same for several (stopped) nodes. With
        ``max_attempts``, a survey whose attempts are used up (trunk faults not counted) ends
        as no_answer (interrupted) instead of waiting. An attempt cut after its 200 OK (its
        answer time committed) waits for ``answered_retry_at`` (the next day's window: one
        answered call a day) when given."""
        names: list[str] | None = None
        if not expired_only and (node is not None or nodes is not None):
            names = ([node] if node is not None else []) + list(nodes or [])
        with self._tx() as s:
            q = _interrupted_query(now, expired_only, names)
            surveys = list(s.scalars(q.with_for_update()))
            stuck = _stuck_attempts(s, [sv.id for sv in surveys], names)
            answered: set[str] = set()
            for attempt in stuck:
                attempt.disposition = Disposition.INTERRUPTED
                attempt.ended_at = now
                if attempt.answered_at is not None:
                    answered.add(attempt.survey_id)
            s.flush()
            for sv in surveys:
                sv.claimed_by = None
                sv.claim_until = None
                if max_attempts is not None and _counted_attempts(s, sv.id) >= max_attempts:
                    finish(s, sv, Outcome.NO_ANSWER, None, Reason.INTERRUPTED, None, now)
                    continue
                sv.status = SurveyStatus.PENDING
                sv.next_attempt_at = retry_at
                if sv.id in answered and answered_retry_at is not None:
                    sv.next_attempt_at = max(retry_at, answered_retry_at)
            return len(stuck)

    def claiming_nodes(self) -> set[str]:
        """Names of the nodes holding claims: surveys being dialled, ratings being posted."""
        with self._tx() as s:
            dialing = s.scalars(
                select(Survey.claimed_by)
                .where(Survey.status == SurveyStatus.DIALING, Survey.claimed_by.is_not(None))
                .distinct()
            )
            posting = s.scalars(
                select(Delivery.claimed_by)
                .where(Delivery.state == DeliveryState.PENDING, Delivery.claimed_by.is_not(None))
                .distinct()
            )
            return {n for n in [*dialing, *posting] if n is not None}
