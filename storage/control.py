"""Operator state shared by every node: the do-not-call list and service flags."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select

from storage.base import StoreBase
from storage.models import DoNotCall, LiveSettings, ServiceFlag

CAMPAIGN = "campaign"


class ControlMixin(StoreBase):
    def is_do_not_call(self, phone: str) -> bool:
        with self._tx() as s:
            return s.get(DoNotCall, phone) is not None

    def add_do_not_call(
        self, phone: str, source: str, now: datetime, note: str | None = None
    ) -> bool:
        """False if the number was already on the list."""
        with self._tx() as s:
            if s.get(DoNotCall, phone) is not None:
                return False
            s.add(DoNotCall(phone=phone, source=source, note=note, added_at=now))
            return True

    def remove_do_not_call(self, phone: str) -> bool:
        with self._tx() as s:
            row = s.get(DoNotCall, phone)
            if row is None:
                return False
            s.delete(row)
            return True

    def list_do_not_call(self) -> list[tuple[str, str, datetime, str | None]]:
        with self._tx() as s:
            rows = s.scalars(select(DoNotCall).order_by(DoNotCall.added_at))
            return [(r.phone, r.source, r.added_at, r.note) for r in rows]

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
