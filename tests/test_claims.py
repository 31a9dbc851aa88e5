"""Claiming work: one call per phone, never the same survey twice, leases and recovery.
Runs on SQLite and on the real PostgreSQL (where claims use FOR UPDATE SKIP LOCKED)."""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import Engine

from storage.db import make_engine
from storage.store import AttemptResult, NewSurvey, Store

NOW = datetime(2026, 11, 27, 7, 0, tzinfo=UTC)
LEASE = timedelta(minutes=3)


def add(store: Store, pid: str, phone: str, closed_hour: int = 10) -> None:
    store.add_survey(
        NewSurvey(
            pid,
            pid[-4:],
            datetime(2026, 11, 26, closed_hour, tzinfo=UTC),
            date(2026, 11, 26),
            phone,
            phone,
            "ru",
            None,
        ),
        NOW,
    )


def test_surveys_of_one_phone_share_one_call(store: Store) -> None:
    add(store, "R1", "+375291000001", 9)
    add(store, "R2", "+375291000002", 10)
    add(store, "R3", "+375291000001", 11)
    calls = store.claim_due(NOW, 10, "node-a", LEASE)
    by_phone = {c.phone: [s.portal_request_id for s in c.surveys] for c in calls}
    assert by_phone == {"+375291000001": ["R1", "R3"], "+375291000002": ["R2"]}
    for c in calls:
        assert len(c.attempt_ids) == len(c.surveys)
        assert [s.attempts for s in c.surveys] == [0] * len(c.surveys)
    assert store.claim_due(NOW, 10, "node-a", LEASE) == []  # all are being dialled


def test_max_calls_counts_calls_not_surveys(store: Store) -> None:
    for i in range(4):
        add(store, f"R{i}", f"+37529100000{i}")
    add(store, "R9", "+375291000000", 11)
    calls = store.claim_due(NOW, 2, "node-a", LEASE)
    assert len(calls) == 2
    assert sum(len(c.surveys) for c in calls) == 3  # R0 and R9 share a phone


def test_a_phone_in_a_call_or_answered_today_is_not_called_again(store: Store) -> None:
    add(store, "R1", "+375291000001", 9)
    (call,) = store.claim_due(NOW, 10, "node-a", LEASE)
    add(store, "R2", "+375291000001", 12)  # closed later, same citizen, arrives mid-call
    assert store.claim_due(NOW, 10, "node-b", LEASE) == []
    answered = NOW + timedelta(seconds=5)
    store.finish_attempt(
        call.attempt_ids[0],
        AttemptResult(
            "c", 200, "OK", answered, answered + timedelta(seconds=30), "1", "answered", "v"
        ),
    )
    store.record_outcome(call.surveys[0].id, "satisfied", "1", None, answered, NOW)
    day_start = datetime(2026, 11, 26, 21, 0, tzinfo=UTC)  # Minsk midnight of the 27th
    later = NOW + timedelta(hours=1)
    assert store.claim_due(later, 10, "node-a", LEASE, answered_since=day_start) == []
    next_day = day_start + timedelta(days=1)
    (again,) = store.claim_due(
        next_day + timedelta(hours=9), 10, "node-a", LEASE, answered_since=next_day
    )
    assert [s.portal_request_id for s in again.surveys] == ["R2"]


def test_two_claimers_never_take_the_same_survey(engine: Engine, db_url: str) -> None:
    for i in range(60):
        add(Store(engine), f"R{i:02d}", f"+3752910{i:05d}")
    other = make_engine(db_url)
    taken: dict[str, list[str]] = {"a": [], "b": []}
    errors: list[BaseException] = []

    def claimer(name: str, store: Store) -> None:
        try:
            while True:
                calls = store.claim_due(NOW, 3, name, LEASE)
                if not calls:
                    return
                taken[name] += [s.id for c in calls for s in c.surveys]
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [
        threading.Thread(target=claimer, args=("a", Store(engine))),
        threading.Thread(target=claimer, args=("b", Store(other))),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    other.dispose()
    assert not errors, errors
    assert not set(taken["a"]) & set(taken["b"])
    assert len(taken["a"]) + len(taken["b"]) == 60


def test_recovery_leaves_other_live_nodes_alone(store: Store) -> None:
    add(store, "R1", "+375291000001")
    add(store, "R2", "+375291000002")
    a = store.claim_due(NOW, 1, "node-a", LEASE)
    b = store.claim_due(NOW, 1, "node-b", LEASE)
    assert len(a) == len(b) == 1
    retry_at = NOW + timedelta(minutes=20)
    # node-a restarts: only its own attempt is interrupted.
    assert store.recover_interrupted(NOW, retry_at, node="node-a") == 1
    assert store.status_counts() == {"pending": 1, "dialing": 1}
    # node-b died: once its lease has run out, any node recovers its attempt.
    assert store.recover_interrupted(NOW + timedelta(minutes=1), retry_at, node="node-a") == 0
    assert (
        store.recover_interrupted(NOW + LEASE + timedelta(seconds=1), retry_at, node="node-a") == 1
    )
    assert store.status_counts() == {"pending": 2}
    assert store.attempt_history(b[0].surveys[0].id) == ["interrupted"]


def test_overdue_surveys_expire_and_are_reported(store: Store) -> None:
    add(store, "R1", "+375291000001")
    assert store.expire_overdue(NOW, timedelta(days=3)) == []
    later = datetime(2026, 11, 29, 10, 0, 1, tzinfo=UTC)
    assert store.expire_overdue(later, timedelta(days=3)) == ["R1"]
    (d,) = store.pending_deliveries(later, 10)
    assert (d.payload["outcome"], d.payload["reason"]) == ("no_answer", "survey_expired")


def test_retention_erases_phones_and_keeps_outcomes(store: Store) -> None:
    add(store, "R1", "+375291000001")
    add(store, "R2", "+375291000002")
    (s1,) = [s for s in store.due_surveys(NOW, 10) if s.portal_request_id == "R1"]
    store.record_outcome(s1.id, "satisfied", "1", None, NOW, NOW)
    assert store.erase_phones(NOW + timedelta(days=91)) == 1
    rows = {r.portal_request_id: r for r in store.report_rows()}
    assert rows["R1"].phone is None and rows["R1"].outcome == "satisfied"
    assert rows["R2"].phone == "+375291000002"  # not finished: kept


def test_recovery_ends_a_survey_whose_attempts_are_used_up(store: Store) -> None:
    add(store, "R1", "+375291000001")
    at = NOW
    for _ in range(3):  # killed during every attempt
        (call,) = store.claim_due(at, 1, "node-a", LEASE)
        store.recover_interrupted(at, at + timedelta(minutes=5), node="node-a", max_attempts=3)
        at += timedelta(minutes=5)
    assert store.claim_due(at, 1, "node-a", LEASE) == []
    (row,) = store.report_rows()
    assert (row.outcome, row.reason, row.attempts) == ("no_answer", "interrupted", 3)


def test_two_nodes_never_take_the_same_delivery(engine: Engine, db_url: str) -> None:
    store = Store(engine)
    for i in range(40):
        add(store, f"R{i:02d}", f"+3752910{i:05d}")
    for s in store.due_surveys(NOW, 100):
        store.record_outcome(s.id, "satisfied", "1", None, NOW, NOW)
    other = Store(make_engine(db_url))
    taken: dict[str, list[str]] = {"a": [], "b": []}

    def taker(name: str, st: Store) -> None:
        while batch := st.claim_deliveries(NOW, 3):
            taken[name] += [d.survey_id for d in batch]

    threads = [
        threading.Thread(target=taker, args=("a", store)),
        threading.Thread(target=taker, args=("b", other)),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    other.engine.dispose()
    assert not set(taken["a"]) & set(taken["b"])
    assert len(taken["a"]) + len(taken["b"]) == 40
    # Not delivered within the lease: due again afterwards, for any node.
    assert len(store.claim_deliveries(NOW + timedelta(minutes=3), 100)) == 40


def test_a_restarted_node_takes_back_its_delivery_claims_at_once(store: Store) -> None:
    """A node killed mid-delivery: on restart its claimed ratings are due again now, not when
    the lease runs out; another node's claims stay hidden until theirs does."""
    for i in range(6):
        add(store, f"R{i:02d}", f"+3752910{i:05d}")
    for s in store.due_surveys(NOW, 100):
        store.record_outcome(s.id, "satisfied", "1", None, NOW, NOW)
    mine = store.claim_deliveries(NOW, 4, node="node-a")
    theirs = store.claim_deliveries(NOW, 2, node="node-b")
    assert (len(mine), len(theirs)) == (4, 2)
    later = NOW + timedelta(seconds=10)
    assert store.claim_deliveries(later, 100, node="node-a") == []  # all leased
    assert store.release_node_deliveries("node-a", later) == 4
    again = store.claim_deliveries(later, 100, node="node-a")
    assert sorted(d.survey_id for d in again) == sorted(d.survey_id for d in mine)
    store.mark_delivered(again[0].survey_id, 201, later)
    assert store.release_node_deliveries("node-a", later) == 3  # the delivered one stays so
    assert store.delivery_counts() == {"delivered": 1, "pending": 5}


def test_a_kill_after_the_outcome_was_stored_closes_that_nodes_attempt(store: Store) -> None:
    add(store, "R1", "+375291000001")
    add(store, "R2", "+375291000002")
    (a,) = store.claim_due(NOW, 1, "node-a", LEASE)
    (b,) = store.claim_due(NOW, 1, "node-b", LEASE)
    # Both citizens pressed 1; node-a was killed before it closed its line, node-b is still
    # hanging up.
    for call in (a, b):
        store.record_outcome(call.surveys[0].id, "satisfied", "1", None, NOW, NOW)
    retry_at = NOW + timedelta(minutes=20)
    assert store.recover_interrupted(NOW, retry_at, node="node-a") == 1
    assert store.attempt_history(a.surveys[0].id) == ["interrupted"]
    assert store.attempt_history(b.surveys[0].id) == ["dialing"]  # another node's live call
    rows = {r.portal_request_id: r for r in store.report_rows()}
    assert rows["R1"].outcome == rows["R2"].outcome == "satisfied"  # the answer stands
