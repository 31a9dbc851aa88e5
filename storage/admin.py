"""Operator and administrator changes, each written with its audit entry in one transaction.

Used by the console and by the CLI (``pause``, ``resume``, ``dnc``, ``reload``, ``user``,
``deliver --retry-dead``): whoever makes a change, the audit log says who (a console user, or
``cli:<os user>``), when, from which address, what, and the values before and after.
Phone numbers are stored in full (the list needs them) and shown masked by the callers. What an
operator types (a note, a pause reason) is stored with its control characters escaped
(:func:`ivr.core.untrusted.operator_text`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from ivr.core.untrusted import operator_text
from storage import outbox
from storage.comments import COMMENTS_BLOCKED_FLAG
from storage.control import CAMPAIGN, DoNotCallAdded
from storage.models import (
    AuditEntry,
    Comment,
    ConsoleUser,
    Delivery,
    DeliveryState,
    DoNotCall,
    LiveSettings,
    ServiceFlag,
)
from storage.store import Store


def _dead(s: Session, model: outbox.Model, ids: Sequence[str]) -> list[Any]:
    """The dead letters of ``model`` (ratings or comments), those of ``ids`` if any given."""
    q = select(model).where(model.state == DeliveryState.DEAD)
    if ids:
        q = q.where(or_(model.portal_request_id.in_(ids), model.survey_id.in_(ids)))
    return list(s.scalars(q))


PAUSED, PAUSED_BY, PAUSE_REASON = "paused", "paused_by", "pause_reason"
RELOAD = "reload_requested_at"
# A controller sees what a viewer sees, and also reviews the control list and hears the
# citizens' spoken comments (which operators do not); an admin may do everything.
ROLES = ("viewer", "controller", "operator", "admin")


@dataclass(frozen=True)
class Actor:
    """Who makes a change: a console user (with the client's address) or ``cli:<os user>``."""

    name: str
    address: str | None = None


@dataclass(frozen=True)
class PauseState:
    paused: bool
    by: str | None
    reason: str | None
    since: datetime | None


@dataclass(frozen=True)
class UserRow:
    name: str
    role: str
    disabled: bool
    password_hash: str
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class DncRow:
    phone: str
    source: str
    note: str | None
    added_at: datetime
    added_by: str | None  # from the audit log; None for entries older than it


def audit(
    s: Session,
    actor: Actor,
    now: datetime,
    action: str,
    target: str | None,
    before: Any = None,
    after: Any = None,
) -> None:
    s.add(
        AuditEntry(
            at=now,
            actor=actor.name[:100],
            address=actor.address,
            action=action,
            target=target,
            before=before,
            after=after,
        )
    )


def _set_flag(s: Session, name: str, value: str, now: datetime) -> None:
    row = s.get(ServiceFlag, name)
    if row is None:
        s.add(ServiceFlag(name=name, value=value[:200], updated_at=now))
    else:
        row.value, row.updated_at = value[:200], now


class AdminStore(Store):
    # ---- pause ---------------------------------------------------------------------------
    def pause_state(self) -> PauseState:
        with self._tx() as s:
            rows = {
                r.name: r
                for r in s.scalars(
                    select(ServiceFlag).where(
                        ServiceFlag.name.in_((PAUSED, PAUSED_BY, PAUSE_REASON))
                    )
                )
            }
        flag = rows.get(PAUSED)
        paused = flag is not None and flag.value == "1"
        by, reason = rows.get(PAUSED_BY), rows.get(PAUSE_REASON)
        return PauseState(
            paused,
            by.value if by and by.value else None,
            reason.value if reason and reason.value else None,
            flag.updated_at if flag is not None else None,
        )

    def pause(self, actor: Actor, reason: str, now: datetime) -> bool:
        """Stop new calls on every node; False if calling was already paused."""
        reason = operator_text(reason, 200) or ""
        if not reason:
            raise ValueError("a reason is required")
        before = self.pause_state()
        with self._tx() as s:
            _set_flag(s, PAUSED, "1", now)
            _set_flag(s, PAUSED_BY, actor.name, now)
            _set_flag(s, PAUSE_REASON, reason, now)
            audit(s, actor, now, "pause", None, _pause_json(before), {"paused": True,
                  "reason": reason})  # fmt: skip
        return not before.paused

    def resume(self, actor: Actor, now: datetime) -> bool:
        before = self.pause_state()
        with self._tx() as s:
            _set_flag(s, PAUSED, "0", now)
            _set_flag(s, PAUSED_BY, actor.name, now)
            _set_flag(s, PAUSE_REASON, "", now)
            audit(s, actor, now, "resume", None, _pause_json(before), {"paused": False})
        return before.paused

    def request_reload(self, actor: Actor, now: datetime) -> None:
        with self._tx() as s:
            _set_flag(s, RELOAD, now.isoformat(), now)
            audit(s, actor, now, "reload", None)

    # ---- do-not-call ---------------------------------------------------------------------
    def dnc_add(self, actor: Actor, phone: str, note: str | None, now: datetime) -> DoNotCallAdded:
        """Put ``phone`` on the list and end its waiting surveys as not_called/do_not_call
        (``Store.add_do_not_call``), audited, in one transaction."""
        with self._tx() as s:
            return self._dnc_add(s, actor, phone, note, now)

    def _dnc_add(
        self, s: Session, actor: Actor, phone: str, note: str | None, now: datetime
    ) -> DoNotCallAdded:
        note = operator_text(note, 200)
        added = self._list(s, phone, "operator", now, note)
        closed = self._close_open(s, phone, now, in_call=False)
        if added:
            audit(s, actor, now, "dnc.add", phone, None, {"note": note, "closed": closed})
        return DoNotCallAdded(added, closed)

    def dnc_import(
        self, actor: Actor, rows: Iterable[tuple[str, str | None]], now: datetime
    ) -> int:
        """Add every (E.164, note) not yet listed, in one transaction; returns how many."""
        with self._tx() as s:
            return sum(self._dnc_add(s, actor, phone, note, now).added for phone, note in rows)

    def dnc_remove(self, actor: Actor, phone: str, now: datetime) -> bool:
        with self._tx() as s:
            row = s.get(DoNotCall, phone)
            if row is None:
                return False
            before = {"source": row.source, "note": row.note, "added_at": row.added_at.isoformat()}
            s.delete(row)
            audit(s, actor, now, "dnc.remove", phone, before, None)
            return True

    def dnc_rows(self, phone_like: str | None = None, limit: int = 1000) -> list[DncRow]:
        """The list, newest first; ``phone_like`` is a run of digits found anywhere."""
        adder = (
            select(AuditEntry.actor)
            .where(AuditEntry.action == "dnc.add", AuditEntry.target == DoNotCall.phone)
            .order_by(AuditEntry.at.desc())
            .limit(1)
            .scalar_subquery()
        )
        q = select(DoNotCall, adder).order_by(DoNotCall.added_at.desc()).limit(limit)
        if phone_like:
            q = q.where(DoNotCall.phone.contains(phone_like))
        with self._tx() as s:
            return [
                DncRow(r.phone, r.source, r.note, r.added_at, by) for r, by in s.execute(q).all()
            ]

    # ---- dead letters --------------------------------------------------------------------
    def retry_dead(self, actor: Actor, now: datetime, ids: Sequence[str] = ()) -> list[str]:
        """Dead letters sent again (all when ``ids`` is empty; request or survey ids), audited:
        ratings, and spoken comments whose recording is still kept (their request id is
        returned as ``"<id> (comment)"``); the comment path is trusted again (a 1.0 portal's
        404 had blocked it). An id that is not a dead letter's is an error and nothing is
        re-queued."""
        with self._tx() as s:
            ratings = _dead(s, Delivery, ids)
            comments = [c for c in _dead(s, Comment, ids) if c.path is not None]
            rows = [*ratings, *comments]
            known = {r.portal_request_id for r in rows} | {r.survey_id for r in rows}
            unknown = [i for i in ids if i not in known]
            if unknown:
                raise ValueError(f"not a dead letter: {', '.join(unknown)}")
            for r in rows:
                action = "dead.retry" if isinstance(r, Delivery) else "dead.retry_comment"
                audit(s, actor, now, action, r.portal_request_id,
                      {"state": "dead", "http_status": r.http_status, "answer": r.last_error},
                      {"state": "pending"})  # fmt: skip
            outbox.requeue(rows, now)
            blocked = s.get(ServiceFlag, COMMENTS_BLOCKED_FLAG)
            if blocked is not None:
                s.delete(blocked)
            return [d.portal_request_id for d in ratings] + [
                f"{c.portal_request_id} (comment)" for c in comments
            ]

    # ---- live campaign settings ----------------------------------------------------------
    def save_live_settings(self, actor: Actor, doc: dict[str, Any], now: datetime) -> None:
        with self._tx() as s:
            row = s.get(LiveSettings, CAMPAIGN)
            before = None if row is None else row.data
            if row is None:
                s.add(LiveSettings(name=CAMPAIGN, data=doc, updated_at=now, updated_by=actor.name))
            else:
                row.data, row.updated_at, row.updated_by = doc, now, actor.name
            audit(s, actor, now, "settings.save", "campaign", before, doc)

    def reset_live_settings(self, actor: Actor, now: datetime) -> bool:
        """Back to the file's values; False if they were already in force."""
        with self._tx() as s:
            row = s.get(LiveSettings, CAMPAIGN)
            if row is None:
                return False
            audit(s, actor, now, "settings.reset", "campaign", row.data, None)
            s.delete(row)
            return True

    # ---- users ---------------------------------------------------------------------------
    def user(self, name: str) -> UserRow | None:
        with self._tx() as s:
            row = s.get(ConsoleUser, name)
            return None if row is None else _user_row(row)

    def users(self) -> list[UserRow]:
        with self._tx() as s:
            return [_user_row(r) for r in s.scalars(select(ConsoleUser).order_by(ConsoleUser.name))]

    def add_user(
        self, actor: Actor, name: str, role: str, password_hash: str, now: datetime
    ) -> None:
        _check_role(role)
        _check_name(name)
        with self._tx() as s:
            if s.get(ConsoleUser, name) is not None:
                raise ValueError("a user of this name exists already")
            s.add(ConsoleUser(name=name, password_hash=password_hash, role=role, disabled=False,
                              created_at=now, updated_at=now))  # fmt: skip
            audit(s, actor, now, "user.add", name, None, {"role": role})

    def set_role(self, actor: Actor, name: str, role: str, now: datetime) -> None:
        _check_role(role)
        with self._tx() as s:
            row = _existing(s, name)
            audit(s, actor, now, "user.role", name, {"role": row.role}, {"role": role})
            row.role, row.updated_at = role, now

    def set_password(self, actor: Actor, name: str, password_hash: str, now: datetime) -> None:
        with self._tx() as s:
            row = _existing(s, name)
            audit(s, actor, now, "user.passwd", name)  # never the hashes
            row.password_hash, row.updated_at = password_hash, now

    def set_disabled(self, actor: Actor, name: str, disabled: bool, now: datetime) -> None:
        with self._tx() as s:
            row = _existing(s, name)
            action = "user.disable" if disabled else "user.enable"
            audit(s, actor, now, action, name, {"disabled": row.disabled}, {"disabled": disabled})
            row.disabled, row.updated_at = disabled, now

    def record(
        self, actor: Actor, now: datetime, action: str, target: str | None, after: Any = None
    ) -> None:
        """An audited act that changes nothing else (an administrator revealing a number, a
        sign-in or sign-out)."""
        with self._tx() as s:
            audit(s, actor, now, action, target, None, after)

    # ---- the audit log -------------------------------------------------------------------
    def audit_rows(
        self,
        limit: int = 200,
        action: str | None = None,
        actor: str | None = None,
        offset: int = 0,
    ) -> tuple[list[AuditEntry], int]:
        q = select(AuditEntry)
        if action:
            q = q.where(AuditEntry.action.startswith(action))
        if actor:
            q = q.where(AuditEntry.actor == actor)
        with self._tx() as s:
            total = int(s.scalar(select(func.count()).select_from(q.subquery())) or 0)
            rows = list(s.scalars(q.order_by(AuditEntry.id.desc()).offset(offset).limit(limit)))
            return rows, total


def _pause_json(state: PauseState) -> dict[str, Any]:
    return {"paused": state.paused, "reason": state.reason, "by": state.by}


def _check_role(role: str) -> None:
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")


def _check_name(name: str) -> None:
    """A user name is shown on every page, in the audit log and in ``status``: 1 to 64
    letters, digits and ``. _ @ -``, nothing a terminal or a page would interpret."""
    if not 1 <= len(name) <= 64 or not all(c.isalnum() or c in "._@-" for c in name):
        raise ValueError("a user name has 1 to 64 letters, digits or . _ @ -")


def _existing(s: Session, name: str) -> ConsoleUser:
    row = s.get(ConsoleUser, name)
    if row is None:
        raise ValueError("no user of this name")
    return row


def _user_row(r: ConsoleUser) -> UserRow:
    return UserRow(r.name, r.role, r.disabled, r.password_hash, r.created_at, r.updated_at)
