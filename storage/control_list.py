"""The control list as the console shows it: :func:`storage.analytics.control_query` with the
citizen's spoken comment, the choices of its filters, and a controller's review written with
its audit entry in one transaction.

Recordings are WAV files on the node that recorded them (``ivr.comment_dir``); the database
keeps their path, length and checksum (``comments``), and the path goes once they are purged.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import Engine, case, func, select

from storage.admin import Actor, AdminStore, audit
from storage.analytics import UNKNOWN, AnySelect, Filters, control_query, mark_reviewed_in
from storage.models import Comment, ControlReview, Survey

NOTE_MAX = 500
_HIDDEN = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn"})
_SPACES = re.compile(r"\s+")


def control_rows_query(filters: Filters, reviewed: bool | None = None) -> AnySelect:
    """The control list's rows (unsatisfied again first, then newest closing), each with the
    catalog category, the language, and the comment's length (``comment_s``, None without a
    comment) and whether its recording is still kept (``recording``: 1 or 0)."""
    q = control_query(filters, reviewed).outerjoin(Comment, Comment.survey_id == Survey.id)
    return q.add_columns(
        Survey.category_name,
        Survey.language,
        Comment.duration_s.label("comment_s"),
        case((Comment.path.is_not(None), 1), else_=0).label("recording"),
    )


def _in_period(filters: Filters) -> list[object]:
    return [
        Survey.outcome == "unsatisfied",
        Survey.local_date >= filters.date_from,
        Survey.local_date <= filters.date_to,
    ]


def executor_choices(engine: Engine, filters: Filters) -> list[tuple[str, str]]:
    """(key, name) of the executors with a request returned for rework in the period, by name;
    the executor the portal did not name as ``unknown``, last."""
    q = (
        select(Survey.executor_id, func.max(Survey.executor_name))
        .where(*_in_period(filters))  # type: ignore[arg-type]
        .group_by(Survey.executor_id)
    )
    with engine.connect() as conn:
        rows = [(key, name) for key, name in conn.execute(q)]
    known = sorted(((str(k), str(n or k)) for k, n in rows if k is not None), key=lambda r: r[1])
    return known + ([(UNKNOWN, UNKNOWN)] if any(k is None for k, _ in rows) else [])


def category_choices(engine: Engine, filters: Filters) -> list[str]:
    """The categories (catalog name, else the text as sent) with a request returned for rework
    in the period; ``unknown`` last when some came without one."""
    key = func.coalesce(Survey.category_name, Survey.category)
    q = select(key).where(*_in_period(filters)).group_by(key)  # type: ignore[arg-type]
    with engine.connect() as conn:
        keys = [k for (k,) in conn.execute(q)]
    return sorted(str(k) for k in keys if k is not None) + (
        [UNKNOWN] if any(k is None for k in keys) else []
    )


def clean_note(text: str | None) -> str | None:
    """A reviewer's note as stored: control, format and separator characters removed (a note
    is shown in pages, exports and terminals), whitespace runs as one space, at most
    ``NOTE_MAX`` characters; None when nothing is left."""
    if not text:
        return None
    kept = "".join(" " if unicodedata.category(ch) in _HIDDEN else ch for ch in text)
    kept = _SPACES.sub(" ", kept).strip()[:NOTE_MAX]
    return kept or None


@dataclass(frozen=True)
class Reviewed:
    portal_request_id: str
    note: str | None


def review(
    admin: AdminStore, actor: Actor, survey_id: str, note: str | None, now: datetime
) -> Reviewed | None:
    """Mark a request returned for rework as reviewed by ``actor`` with ``note`` (cleaned), and
    audit it (``control.review``: the earlier review before, this one after), in one
    transaction. None if ``survey_id`` is not a request returned for rework."""
    note = clean_note(note)
    with admin._tx() as s:
        request_id = s.scalar(select(Survey.portal_request_id).where(Survey.id == survey_id))
        earlier = s.execute(
            select(ControlReview.reviewed_by, ControlReview.reviewed_at, ControlReview.note).where(
                ControlReview.survey_id == survey_id
            )
        ).first()
        if request_id is None or not mark_reviewed_in(s, survey_id, actor.name, note, now):
            return None
        before = None
        if earlier is not None:
            before = {"by": earlier[0], "at": earlier[1].isoformat(), "note": earlier[2]}
        audit(s, actor, now, "control.review", request_id, before,
              {"survey": survey_id, "note": note})  # fmt: skip
        return Reviewed(request_id, note)


@dataclass(frozen=True)
class Recording:
    portal_request_id: str
    path: Path | None  # None: purged (retention), or not a file under the comment folder
    duration_s: float


def recording(engine: Engine, survey_id: str, folder: Path) -> Recording | None:
    """The comment recording of ``survey_id``, if it has a comment. Only a ``.wav`` file under
    ``folder`` (the configured ``ivr.comment_dir``) that exists here is given out: the console
    serves no other file whatever the database says."""
    q = select(Comment.portal_request_id, Comment.path, Comment.duration_s).where(
        Comment.survey_id == survey_id
    )
    with engine.connect() as conn:
        row = conn.execute(q).first()
    if row is None:
        return None
    request_id, stored, duration = row
    path = None
    if stored:
        candidate = Path(stored).resolve()
        root = folder.resolve()
        if candidate.suffix == ".wav" and candidate.is_relative_to(root) and candidate.is_file():
            path = candidate
    return Recording(str(request_id), path, float(duration))
