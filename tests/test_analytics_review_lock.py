"""PostgreSQL, two sessions at once: a controller's review and the counting of its day. The
counting takes a SHARE lock on ``control_reviews`` (storage.analytics_days.lock_reviews), so a
review is counted once: by the counting, or by its own increment of the counts."""

from __future__ import annotations

import threading
from datetime import date

import pytest
from sqlalchemy import func, select, text

from storage.analytics import Filters
from storage.analytics_days import settle
from storage.analytics_tables import AnalyticsDayCount
from storage.control_entries import control_counts, mark_reviewed_in
from storage.control_list import control_summary
from storage.db import make_engine, upgrade
from storage.store import Store
from tests.helpers import wait_until
from tests.test_analytics import NOW, A, answer, survey
from tests.test_analytics_days import TODAY


@pytest.mark.postgres
def test_a_review_made_while_its_day_is_counted_is_counted_once(pg_schema_url: str) -> None:
    """PostgreSQL, two sessions: a review not yet committed when its day starts being counted.
    The counting waits for it (its lock on control_reviews), then counts it; the review's own
    increment found no counts to add to, so it is counted exactly once."""
    engine = make_engine(pg_schema_url)
    upgrade(engine)
    store = Store(engine)
    sid = survey(store, "R40", 3, A, "Лифт")
    answer(store, sid, "unsatisfied", "2")
    day = (date(2026, 11, 3), date(2026, 11, 3))
    done: list[list[date]] = []
    with engine.connect() as reviewer:
        pending = reviewer.begin()
        assert mark_reviewed_in(reviewer, sid, "kira", None, NOW)
        counting = threading.Thread(target=lambda: done.append(settle(engine, *day, TODAY, NOW)))
        counting.start()
        with engine.connect() as watch:

            def waits() -> bool:
                found = watch.scalar(text(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                    "AND query LIKE 'LOCK TABLE control_reviews%'"))  # fmt: skip
                watch.rollback()  # the statistics are a snapshot per transaction
                return bool(found)

            wait_until(waits, 30, "the counting to wait for the review's transaction")
        pending.commit()
    counting.join(30)
    assert done == [[date(2026, 11, 3)]]
    with engine.connect() as conn:
        reviewed = conn.scalar(select(func.sum(AnalyticsDayCount.reviewed)).where(
            AnalyticsDayCount.dim == "total"))  # fmt: skip
    assert reviewed == 1
    f = Filters(*day)
    summary = control_summary(engine, f)
    assert (summary.total, summary.unreviewed) == control_counts(engine, f) == (1, 0)
    engine.dispose()
