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
from datetime import date, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, case, func, select

from storage.admin import Actor, AdminStore, audit
from storage.analytics import UNKNOWN, AnySelect, Filters, _where
from storage.analytics_days import Counts, _date_of, _in_ranges, counted_parts, counts_where
from storage.analytics_tables import AnalyticsDayCount, AnalyticsMonthCount
from storage.control_entries import Mark, control_page_ids, control_query, mark_reviewed_in
from storage.models import Comment, ControlReview, Survey

NOTE_MAX = 500
SUMMARY_WORK_MEM = "64MB"  # PostgreSQL, for the summary's grouping (in this transaction only)
_HIDDEN = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn"})
_SPACES = re.compile(r"\s+")
Runs = list[tuple[date, date]]


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


def read_control_page(conn: Any, filters: Filters, reviewed: bool | None, limit: int,
                 after: str = "", before: str = "") -> list[dict[str, Any]]:  # fmt: skip
    """One page of :func:`control_rows_query`: the first, the one after the entry marked
    ``after`` or the one before ``before`` (:meth:`Mark.token`). Its ids are read in the
    list's order first (:func:`control_page_ids`), then only its rows whole, with their key
    path and comment. A page before that would be short is the first page."""
    later, earlier = Mark.parse(after), Mark.parse(before)
    ids = control_page_ids(conn, filters, reviewed, limit, later, earlier)
    if earlier is not None and len(ids) < limit:
        ids = control_page_ids(conn, filters, reviewed, limit)
    q = control_rows_query(filters, reviewed).where(Survey.id.in_(ids))
    return [dict(row) for row in conn.execute(q).mappings()]


def control_page_query(
    filters: Filters, reviewed: bool | None, limit: int, offset: int
) -> AnySelect:
    """Page ``offset / limit`` of :func:`control_rows_query` by its number (a link without
    its mark): the page's ids sorted and cut first, then only the page's rows read whole."""
    ids = control_query(filters, reviewed).with_only_columns(Survey.id).limit(limit)
    ids = ids.offset(offset)
    return control_rows_query(filters, reviewed).where(Survey.id.in_(ids.scalar_subquery()))


@dataclass(frozen=True)
class ControlSummary:
    """What the list's page says besides its rows, from one pass over the period."""

    total: int  # returned for rework, of the filters
    unreviewed: int  # of them, not yet reviewed
    executors: list[tuple[str, str]]  # (key, name) with an entry in the period
    categories: list[str]  # keys (catalog name, else the text as sent) with one


class _Summing:
    """What :func:`control_summary` adds up from the counts and the surveys."""

    def __init__(self) -> None:
        self.total = self.reviewed = 0
        self.names: dict[str | None, str] = {}
        self.categories: set[str | None] = set()

    def executor(self, key: str | None, name: str | None) -> None:
        if key is None:
            self.names[None] = UNKNOWN
        else:
            self.names[key] = max(str(name or key), self.names.get(key, ""))

    def result(self) -> ControlSummary:
        executors = sorted(((str(k), v) for k, v in self.names.items() if k is not None),
                           key=lambda r: r[1])  # fmt: skip
        categories = sorted(str(k) for k in self.categories if k is not None)
        return ControlSummary(
            self.total,
            self.total - self.reviewed,
            executors + ([(UNKNOWN, UNKNOWN)] if None in self.names else []),
            categories + ([UNKNOWN] if None in self.categories else []),
        )


def control_summary(engine: Engine, filters: Filters) -> ControlSummary:
    """The counts of :func:`storage.control_entries.control_counts` for ``filters``, and the
    executors (by name; ``unknown`` last) and categories with an entry in its period.

    The counted days (and summed months) of :mod:`storage.analytics_days` give their part from
    the counts; the other days are read from the surveys in one grouped query. A selection of
    one executor's one category is counted from its surveys (it is small)."""
    acc = _Summing()
    dim = "executor" if filters.executor is not None else "total"
    if filters.category is not None:
        dim = "category" if filters.executor is None else ""
    with engine.connect() as conn:
        months, days, live = counted_parts(conn, filters.date_from, filters.date_to, True)
        for table, runs in ((AnalyticsMonthCount, months), (AnalyticsDayCount, days)):
            if runs:
                _choices_counted(conn, acc, table, runs)
                if dim:
                    _totals_counted(conn, acc, table, runs, filters, dim)
        if live:
            _from_surveys(conn, acc, filters, live, totals=bool(dim))
        if not dim:
            _totals_of_surveys(conn, acc, filters)
    return acc.result()


def _choices_counted(conn: Any, acc: _Summing, table: Counts, runs: Runs) -> None:
    q = (
        select(table.dim, table.key, func.max(table.name))
        .where(
            table.dim.in_(("executor", "category")),
            table.bucket == "unsatisfied",
            _in_ranges(_date_of(table), runs),
            table.n > 0,
        )  # fmt: skip
        .group_by(table.dim, table.key)
    )
    for dim, key, name in conn.execute(q):
        if dim == "executor":
            acc.executor(key, name)
        else:
            acc.categories.add(key)


def _totals_counted(conn: Any, acc: _Summing, table: Counts, runs: Runs, filters: Filters,
                    dim: str) -> None:  # fmt: skip
    where = [*counts_where(table, filters, dim, runs), table.bucket == "unsatisfied"]
    n, done = conn.execute(select(func.sum(table.n), func.sum(table.reviewed)).where(*where)).one()
    acc.total += int(n or 0)
    acc.reviewed += int(done or 0)


def _from_surveys(conn: Any, acc: _Summing, filters: Filters, runs: Runs, totals: bool) -> None:
    """The entries of the days ``runs``, grouped by executor, category and round (the filters
    applied to the groups here)."""
    category = func.coalesce(Survey.category_name, Survey.category)
    rework = case((Survey.round_no > 1, 1), else_=0)
    again = case((Survey.reason == "unsatisfied_again", 1), else_=0)
    q = (
        select(
            Survey.executor_id,
            func.max(Survey.executor_name),
            category,
            rework,
            again,
            func.count(),
            func.count(ControlReview.survey_id),
        )  # fmt: skip
        .outerjoin(ControlReview, ControlReview.survey_id == Survey.id)
        .where(Survey.outcome == "unsatisfied", _in_ranges(Survey.local_date, runs))
        .group_by(Survey.executor_id, category, rework, again)
    )
    if conn.dialect.name == "postgresql":
        # Many live days: with the default 4 MB the planner sorts them on disk to group them
        # (1.1 s for a year); in memory it hashes them (0.35 s). This transaction only.
        conn.exec_driver_sql(f"SET LOCAL work_mem = '{SUMMARY_WORK_MEM}'")
    for ex, name, cat, is_rework, is_again, n, done in conn.execute(q):
        acc.executor(ex, name)
        acc.categories.add(cat)
        if totals and _matches(filters, ex, cat, bool(is_rework), bool(is_again)):
            acc.total += int(n)
            acc.reviewed += int(done)


def _totals_of_surveys(conn: Any, acc: _Summing, filters: Filters) -> None:
    q = (
        select(func.count(), func.count(ControlReview.survey_id))
        .select_from(Survey)
        .outerjoin(ControlReview, ControlReview.survey_id == Survey.id)
        .where(Survey.outcome == "unsatisfied", *_where(filters))
    )
    n, done = conn.execute(q).one()
    acc.total += int(n)
    acc.reviewed += int(done)


def _matches(f: Filters, executor: str | None, category: str | None, rework: bool,
             again: bool) -> bool:  # fmt: skip
    def same(wanted: str | None, value: str | None) -> bool:
        return wanted is None or (value is None if wanted == UNKNOWN else value == wanted)

    round_ok = {None: True, "first": not rework, "rework": rework, "again": again}[f.round]
    return same(f.executor, executor) and same(f.category, category) and round_ok


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
