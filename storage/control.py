"""Operator state shared by every node: the do-not-call list and service flags.

A number put on the do-not-call list is never dialled again: its open surveys end at once as
``not_called`` / ``do_not_call`` (their ratings go to the outbox in the same transaction), and
the claim checks the list again before every INVITE (``Store.claim_due``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ivr.core.vocabulary import Outcome, Reason
from storage.db import StoreBase
from storage.models import DoNotCall, LiveSettings, ServiceFlag, Survey, SurveyStatus
from storage.outcomes import finish

CAMPAIGN = "campaign"


@dataclass(frozen=True)
class DoNotCallAdded:
    added: bool  # False: the number was already on the list
    # Portal request ids of the open surveys of the number just closed as not_called.
    closed: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:  # as before: true if the number was added now
        return self.added


class ControlMixin(StoreBase):
    def add_do_not_call(
        self, phone: str, source: str, now: datetime, note: str | None = None
    ) -> DoNotCallAdded:
        """Put ``phone`` on the list and end its waiting surveys as not_called/do_not_call, in
        one transaction. A survey in a call right now ends as that call decides; it is not
        dialled again (the claim checks the list)."""
        with self._tx() as s:
            added = self._list(s, phone, source, now, note)
            return DoNotCallAdded(added, self._close_open(s, phone, now, in_call=False))

    def opt_out(
        self, survey_id: str, phone: str, digit: str, answered_at: datetime | None, now: datetime
    ) -> DoNotCallAdded:
        """Key 9 in a call: the survey asked ends as opted_out, the number goes on the list and
        every other open survey of it (later requests of this call included) ends as
        not_called/do_not_call, all in one transaction."""
        with self._tx() as s:
            added = self._list(s, phone, "ivr", now, "key 9 in a survey call")
            asked = s.get(Survey, survey_id, with_for_update=True)
            if asked is not None and asked.status != SurveyStatus.DONE:
                finish(s, asked, Outcome.OPTED_OUT, digit, None, answered_at, now)
            return DoNotCallAdded(added, self._close_open(s, phone, now, in_call=True))

    def _list(self, s: Session, phone: str, source: str, now: datetime, note: str | None) -> bool:
        if s.get(DoNotCall, phone) is not None:
            return False
        s.add(DoNotCall(phone=phone, source=source, note=note, added_at=now))
        s.flush()
        return True

    def _close_open(self, s: Session, phone: str, now: datetime, in_call: bool) -> list[str]:
        states = [SurveyStatus.PENDING, SurveyStatus.DIALING] if in_call else [SurveyStatus.PENDING]
        rows = list(
            s.scalars(
                select(Survey)
                .where(Survey.phone == phone, Survey.status.in_(states))
                .order_by(Survey.closed_at)
                .with_for_update()
            )
        )
        for row in rows:
            finish(s, row, Outcome.NOT_CALLED, None, Reason.DO_NOT_CALL, None, now)
        return [r.portal_request_id for r in rows]

    def set_flag(self, name: str, value: str, now: datetime) -> None:
        with self._tx() as s:
            row = s.get(ServiceFlag, name)
            if row is None:
                s.add(ServiceFlag(name=name, value=value, updated_at=now))
            else:
                row.value, row.updated_at = value, now

    def get_flag(self, name: str) -> str | None:
        with self._tx() as s:
            row = s.get(ServiceFlag, name)
            return None if row is None else row.value

    def live_document(self) -> tuple[dict[str, Any] | None, datetime | None]:
        """The campaign settings edited in the console (over the file's) and when they were
        saved; (None, None) when the file's values are in force."""
        with self._tx() as s:
            row = s.get(LiveSettings, CAMPAIGN)
            return (None, None) if row is None else (dict(row.data), row.updated_at)
