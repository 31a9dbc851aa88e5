"""Every read and write the service makes, in short transactions.

``Store`` takes an Engine and does not own it. Each method is one transaction: a survey's final
outcome and its outbox row are written together, an attempt is committed as ``dialing`` before
the INVITE goes out. The outbox lives in ``storage.outbox``, the do-not-call list and flags in
``storage.control``, the records in ``storage.records`` (re-exported here).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from ivr.core.rating import delivery_priority, final_reason
from ivr.core.vocabulary import Disposition, Outcome, Reason
from storage.comments import CommentsMixin
from storage.control import ControlMixin, DoNotCallAdded
from storage.models import (
    CallAttempt,
    Delivery,
    DeliveryState,
    DoNotCall,
    ImportRun,
    RejectedItem,
    Survey,
    SurveyStatus,
)
from storage.outbox import OutboxMixin
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


class Store(OutboxMixin, CommentsMixin, ControlMixin):
    """Surveys, attempts, outcomes and reports; the outbox and operator state via mixins."""

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

    # ---- dialing --------------------------------------------------------------------------
    def due_surveys(
        self, now: datetime, limit: int, local_date: date | None = None
    ) -> list[DueSurvey]:
        with self._tx() as s:
            return [due_of(r) for r in s.scalars(due_query(now, local_date).limit(limit))]

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
            postgres = s.get_bind().dialect.name == "postgresql"
            busy_phones = select(Survey.phone).where(
                Survey.status == SurveyStatus.DIALING, Survey.phone.is_not(None)
            )
            q = (
                due_query(now, local_date)
                .where(Survey.phone.not_in(busy_phones))
                .limit(max_calls * 4)
            )
            if answered_since is not None:
                answered = (
                    select(Survey.phone)
                    .join(CallAttempt, CallAttempt.survey_id == Survey.id)
                    .where(CallAttempt.answered_at >= answered_since)
                )
                q = q.where(Survey.phone.not_in(answered))
            if postgres:
                q = q.with_for_update(skip_locked=True, of=Survey)
            rows = list(s.scalars(q))
            # The list is checked again here, before every INVITE: a number listed after the
            # import (or while a call to it rang out) ends as not_called instead of ringing.
            listed = set(
                s.scalars(
                    select(DoNotCall.phone).where(DoNotCall.phone.in_({r.phone for r in rows}))
                )
            )
            groups: dict[str, list[Survey]] = {}
            for row in rows:
                assert row.phone is not None
                if row.phone in listed:
                    self._finish(s, row, Outcome.NOT_CALLED, None, Reason.DO_NOT_CALL, None, now)
                    continue
                if row.phone not in groups and len(groups) >= max_calls:
                    continue
                groups.setdefault(row.phone, []).append(row)
            claimed: list[ClaimedCall] = []
            for phone, rows in groups.items():
                if postgres and not s.scalar(
                    select(func.pg_try_advisory_xact_lock(func.hashtext(phone)))
                ):
                    continue  # another node is claiming this number right now
                attempt_ids = []
                for row in rows:
                    row.status = SurveyStatus.DIALING
                    row.claimed_by = node
                    row.claim_until = now + lease
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
                    attempt_ids.append(attempt.id)
                # The DueSurvey carries the attempt count before this attempt (as due_surveys).
                due = [replace(due_of(r), attempts=r.attempts - 1) for r in rows]
                claimed.append(ClaimedCall(phone, due, attempt_ids))
            return claimed

    def attempt_history(self, survey_id: str) -> list[str]:
        """Dispositions of the survey's attempts, oldest first."""
        with self._tx() as s:
            q = (
                select(CallAttempt.disposition)
                .where(CallAttempt.survey_id == survey_id)
                .order_by(CallAttempt.id)
            )
            return list(s.scalars(q))

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
                self._finish(s, row, Outcome.NO_ANSWER, None, Reason.SURVEY_EXPIRED, None, now)
            return [r.portal_request_id for r in rows]

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
                disposition=Disposition.DIALING,
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
            self._finish(s, survey, outcome, digit, reason, answered_at, now)
            if hold_until is not None:
                s.flush()
                delivery = s.get(Delivery, survey_id)
                assert delivery is not None
                delivery.next_try_at = hold_until
                delivery.claimed_by = node
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
        with self._tx() as s:
            q = select(Survey).where(Survey.status == SurveyStatus.DIALING)
            names: list[str] | None = None
            if expired_only:
                q = q.where(Survey.claim_until < now)
            elif node is not None or nodes is not None:
                names = ([node] if node is not None else []) + list(nodes or [])
                q = q.where(
                    Survey.claimed_by.in_(names)
                    | Survey.claimed_by.is_(None)
                    | (Survey.claim_until < now)
                )
            surveys = list(s.scalars(q.with_for_update()))
            ids = [sv.id for sv in surveys]
            stuck = list(
                s.scalars(
                    select(CallAttempt).where(
                        CallAttempt.disposition == Disposition.DIALING,
                        CallAttempt.survey_id.in_(ids),
                    )
                )
            )
            if names is not None:
                # Killed after the outcome was stored but before the line was closed: the
                # survey is done, its attempt was left dialing. It was interrupted too.
                stuck += s.scalars(
                    select(CallAttempt).where(
                        CallAttempt.disposition == Disposition.DIALING,
                        CallAttempt.node.in_(names),
                        CallAttempt.survey_id.not_in(ids),
                    )
                )
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
                counted = s.scalar(
                    select(func.count())
                    .select_from(CallAttempt)
                    .where(
                        CallAttempt.survey_id == sv.id,
                        CallAttempt.disposition != Disposition.FAILED,
                    )
                )
                if max_attempts is not None and int(counted or 0) >= max_attempts:
                    self._finish(s, sv, Outcome.NO_ANSWER, None, Reason.INTERRUPTED, None, now)
                else:
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
