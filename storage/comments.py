"""Spoken comments: the rating held while the citizen speaks, the recording's row, and its
own outbox (a PUT after the rating was accepted), claimed per node like the ratings.

The rating of an unsatisfied answer is written the moment the key is recognised, as every
outcome is, but *held* (``Store.record_outcome(hold_until=...)``: due only after the longest
comment, claimed by this node, in the same transaction) so it does
not leave before we know whether a comment follows. ``settle_comment`` releases it with
``comment_expected`` and, when there is one, adds the comment in the same transaction. A
crash while the citizen speaks leaves the hold: a restarted node takes back its own claims
at once (the rating then goes without a comment), another node after the hold runs out.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import func, select

from storage import outbox
from storage.db import StoreBase
from storage.models import Comment, Delivery, DeliveryState, Survey, SurveyStatus

log = logging.getLogger(__name__)

# Set when the portal answered 404 on a comment path (a 1.0 portal): comments wait until
# an operator re-queues them (``deliver --retry-dead``), which clears it.
COMMENTS_BLOCKED_FLAG = "comments_blocked"


@dataclass(frozen=True)
class NewComment:
    attempt_id: int | None
    path: str
    duration_s: float
    sha256: str
    size_bytes: int


@dataclass(frozen=True)
class PendingComment:
    survey_id: str
    portal_request_id: str
    path: str
    duration_s: float
    sha256: str
    tries: int


@dataclass(frozen=True)
class CommentRow:
    survey_id: str
    portal_request_id: str
    path: str | None
    duration_s: float
    sha256: str
    state: str
    http_status: int | None
    last_error: str | None


class CommentsMixin(StoreBase):
    def settle_comment(self, survey_id: str, comment: NewComment | None, now: datetime) -> None:
        """The comment of ``survey_id`` is over: its rating goes now, with ``comment_expected``
        true exactly when ``comment`` is given (stored in the same transaction)."""
        with self._tx() as s:
            delivery = s.get(Delivery, survey_id, with_for_update=True)
            survey = s.get(Survey, survey_id)
            assert delivery is not None and survey is not None
            if delivery.state != DeliveryState.PENDING:
                # Already posted (a hold lost to a restart): a comment could not follow it.
                if comment is not None:
                    log.warning("survey %s: rating already sent without the comment", survey_id)
                comment = None
            else:
                delivery.payload = {**delivery.payload, "comment_expected": comment is not None}
                delivery.next_try_at = now
                delivery.claimed_by = None
            if comment is not None and s.get(Comment, survey_id) is None:
                s.add(
                    Comment(
                        survey_id=survey_id,
                        attempt_id=comment.attempt_id,
                        portal_request_id=survey.portal_request_id,
                        path=comment.path,
                        duration_s=comment.duration_s,
                        sha256=comment.sha256,
                        size_bytes=comment.size_bytes,
                        recorded_at=now,
                        state=DeliveryState.PENDING,
                        tries=0,
                        next_try_at=now,
                    )
                )

    def claim_comments(
        self,
        now: datetime,
        limit: int,
        lease: timedelta = timedelta(minutes=2),
        node: str | None = None,
    ) -> list[PendingComment]:
        """Due comments whose rating the portal has accepted, claimed for ``node``."""
        with self._tx() as s:
            q = (
                select(Comment)
                .join(Delivery, Delivery.survey_id == Comment.survey_id)
                .where(
                    Comment.state == DeliveryState.PENDING,
                    Comment.next_try_at <= now,
                    Comment.path.is_not(None),
                    Delivery.state == DeliveryState.DELIVERED,
                )
                .order_by(Comment.recorded_at)
                .limit(limit)
            )
            rows = outbox.claim(s, q, now, lease, node, of=Comment)
            return [
                PendingComment(
                    c.survey_id, c.portal_request_id, c.path or "", c.duration_s, c.sha256, c.tries
                )
                for c in rows
            ]

    def release_comments(self, survey_ids: Sequence[str], at: datetime) -> None:
        if not survey_ids:
            return
        with self._tx() as s:
            outbox.release(s, Comment, survey_ids, at)

    def release_node_comments(self, node: str, now: datetime) -> int:
        with self._tx() as s:
            return outbox.release_node(s, Comment, node, now)

    def mark_comment(
        self,
        survey_id: str,
        state: str,
        http_status: int | None,
        error: str | None,
        when: datetime,
    ) -> None:
        """delivered (``when`` is the time), dead, or pending again from ``when``."""
        with self._tx() as s:
            c = s.get(Comment, survey_id)
            assert c is not None
            outbox.record_try(c, state, http_status, error, when)

    def comment_counts(self) -> dict[str, int]:
        counts = {DeliveryState.PENDING: 0, DeliveryState.DELIVERED: 0, DeliveryState.DEAD: 0}
        with self._tx() as s:
            rows = s.execute(select(Comment.state, func.count()).group_by(Comment.state))
            for state, n in rows:
                counts[state] = int(n)
        return counts

    def comments(self, state: str | None = None) -> list[CommentRow]:
        with self._tx() as s:
            q = select(Comment).order_by(Comment.recorded_at)
            if state is not None:
                q = q.where(Comment.state == state)
            return [
                CommentRow(
                    c.survey_id,
                    c.portal_request_id,
                    c.path,
                    c.duration_s,
                    c.sha256,
                    c.state,
                    c.http_status,
                    c.last_error,
                )  # fmt: skip
                for c in s.scalars(q)
            ]

    def purge_recordings(self, before: datetime, now: datetime) -> int:
        """Retention: delete the recordings of surveys finished before ``before`` (the file;
        the row keeps length and checksum). A comment not yet delivered becomes a dead letter
        saying so. Returns how many recordings were deleted."""
        with self._tx() as s:
            q = (
                select(Comment)
                .join(Survey, Survey.id == Comment.survey_id)
                .where(
                    Survey.status == SurveyStatus.DONE,
                    Survey.completed_at < before,
                    Comment.path.is_not(None),
                )
            )
            rows = list(s.scalars(q.with_for_update(of=Comment)))
            for c in rows:
                assert c.path is not None
                Path(c.path).unlink(missing_ok=True)
                if c.state == DeliveryState.PENDING:
                    c.state = DeliveryState.DEAD
                    c.last_error = "recording purged (retention) before it was delivered"
                c.path = None
                c.purged_at = now
            return len(rows)
