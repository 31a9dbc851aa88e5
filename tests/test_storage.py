"""The store on SQLite and PostgreSQL (one parametrized fixture, see conftest)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from sqlalchemy import Engine, inspect

from lab.readback import attempts_of
from storage.admin import Actor, AdminStore
from storage.bulk import do_not_call_among
from storage.db import current_revision
from storage.store import AttemptResult, NewSurvey, Store
from tests.helpers import start_attempt

NOW = datetime(2026, 11, 27, 7, 0, tzinfo=UTC)
DAY = date(2026, 11, 26)


def new(pid: str = "REQ-1", closed: datetime | None = None, **kw: object) -> NewSurvey:
    fields: dict[str, object] = dict(
        portal_request_id=pid,
        request_number="4071",
        closed_at=closed or datetime(2026, 11, 26, 10, tzinfo=UTC),
        local_date=DAY,
        phone_raw="8 029 123-45-67",
        phone="+375291234567",
        language="ru",
        category="Лифт",
    )
    fields.update(kw)
    return NewSurvey(**fields)  # type: ignore[arg-type]


def test_schema_is_at_head(engine: Engine) -> None:
    from alembic.script import ScriptDirectory

    from storage.db import alembic_config

    head = ScriptDirectory.from_config(alembic_config(engine)).get_current_head()
    assert current_revision(engine) == head is not None
    assert {"surveys", "call_attempts", "deliveries", "rejected_items", "imports"} <= set(
        inspect(engine).get_table_names()
    )


def test_a_closing_is_surveyed_once_but_a_new_closing_is_a_new_round(store: Store) -> None:
    assert store.add_survey(new(), NOW)
    assert not store.add_survey(new(), NOW)
    assert store.add_survey(new(closed=datetime(2026, 11, 26, 15, tzinfo=UTC)), NOW)
    assert [r.portal_request_id for r in store.report_rows(DAY)] == ["REQ-1", "REQ-1"]


def test_times_come_back_aware_utc(store: Store) -> None:
    minsk_noon = datetime.fromisoformat("2026-11-26T12:00:00+03:00")
    store.add_survey(new(closed=minsk_noon), NOW)
    due = store.due_surveys(NOW, 10)
    assert len(due) == 1
    nxt = store.next_attempt_time()
    assert nxt == NOW and nxt is not None and nxt.tzinfo is not None


def test_attempt_then_outcome_fills_the_outbox(store: Store) -> None:
    store.add_survey(new(), NOW)
    (survey,) = store.due_surveys(NOW, 10)
    attempt = start_attempt(store, survey.id, NOW)
    # While dialling it is not due again.
    assert store.due_surveys(NOW + timedelta(hours=1), 10) == []
    answered = NOW + timedelta(seconds=5)
    assert store.record_outcome(survey.id, "unsatisfied", "2", None, answered, NOW)
    assert not store.record_outcome(survey.id, "satisfied", "1", None, answered, NOW)
    store.finish_attempt(
        attempt,
        AttemptResult(
            "cid", 200, "OK", answered, answered + timedelta(seconds=20), "2", "answered", "v1"
        ),
    )
    (pending,) = store.pending_deliveries(NOW, 10)
    assert pending.payload == {
        "survey_id": survey.id,
        "outcome": "unsatisfied",
        "reason": None,
        "digit": "2",
        "answered_at": answered.isoformat(),
        "completed_at": NOW.isoformat(),
        "attempts": 1,
        "return_for_rework": True,
        "comment_expected": False,
        "callback_requested": False,
    }
    (a,) = attempts_of(store, "REQ-1")
    assert (a.sip_status, a.keys, a.disposition, a.duration_s) == (200, "2", "answered", 20.0)


def test_unsatisfied_are_delivered_first(store: Store) -> None:
    outcomes = {"R0": "satisfied", "R1": "unsatisfied", "R2": "no_input"}
    for pid in outcomes:
        store.add_survey(new(pid), NOW)
    for s in store.due_surveys(NOW, 10):
        store.record_outcome(s.id, outcomes[s.portal_request_id], None, None, None, NOW)
    order = [d.portal_request_id for d in store.pending_deliveries(NOW, 10)]
    assert order[0] == "R1"
    assert sorted(order) == ["R0", "R1", "R2"]


def test_not_called_request_is_final_at_once(store: Store) -> None:
    store.add_survey(new(phone=None, not_called_reason="invalid_phone"), NOW)
    assert store.due_surveys(NOW, 10) == []
    (row,) = store.report_rows(DAY)
    assert (row.outcome, row.reason, row.attempts) == ("not_called", "invalid_phone", 0)
    (d,) = store.pending_deliveries(NOW, 10)
    assert d.payload["outcome"] == "not_called" and d.payload["attempts"] == 0


def test_retry_waits_until_its_time(store: Store) -> None:
    store.add_survey(new(), NOW)
    (s,) = store.due_surveys(NOW, 10)
    start_attempt(store, s.id, NOW)
    store.schedule_retry(s.id, NOW + timedelta(minutes=20))
    assert store.due_surveys(NOW + timedelta(minutes=19), 10) == []
    (again,) = store.due_surveys(NOW + timedelta(minutes=20), 10)
    assert again.attempts == 1


def test_crash_recovery_closes_dialing_attempts(store: Store) -> None:
    store.add_survey(new(), NOW)
    (s,) = store.due_surveys(NOW, 10)
    start_attempt(store, s.id, NOW)
    later = NOW + timedelta(minutes=20)
    assert store.recover_interrupted(NOW, later) == 1
    assert store.due_surveys(NOW, 10) == []
    (again,) = store.due_surveys(later, 10)
    assert again.attempts == 1
    (a,) = attempts_of(store, "REQ-1")
    assert a.disposition == "interrupted"


def test_delivery_states(store: Store) -> None:
    for pid in ("A", "B", "C"):
        store.add_survey(new(pid), NOW)
    for s in store.due_surveys(NOW, 10):
        store.record_outcome(s.id, "satisfied", "1", None, NOW, NOW)
    ids = {d.portal_request_id: d.survey_id for d in store.pending_deliveries(NOW, 10)}
    store.mark_delivered(ids["A"], 201, NOW)
    store.mark_dead(ids["B"], 404, "no such request", NOW)
    store.mark_retry(ids["C"], 503, "portal down", NOW + timedelta(minutes=1))
    assert store.delivery_counts() == {"delivered": 1, "dead": 1, "pending": 1}
    assert store.pending_deliveries(NOW, 10) == []
    assert [
        d.portal_request_id for d in store.pending_deliveries(NOW + timedelta(minutes=1), 10)
    ] == ["C"]


def test_rejected_items_are_kept_once_per_day(store: Store) -> None:
    raw = {"id": "X", "phone": None}
    assert store.add_rejected(DAY, "X", "phone: missing", raw, NOW)
    assert not store.add_rejected(DAY, "X", "phone: missing", raw, NOW)
    assert store.rejected(DAY) == [("X", "phone: missing")]


def test_import_completion(store: Store) -> None:
    assert not store.import_completed(DAY)
    store.begin_import(DAY, NOW)
    assert not store.import_completed(DAY)
    store.complete_import(DAY, NOW, 10, 1)
    assert store.import_completed(DAY)


def test_migrations_match_the_models(engine: Engine) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    import storage.analytics_tables  # noqa: F401  (its tables join Base.metadata)
    from storage.models import Base

    with engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []


def test_a_second_closing_is_a_linked_round_and_unsatisfied_again_is_marked(store: Store) -> None:
    store.add_survey(new(), NOW)
    (first,) = store.due_surveys(NOW, 10)
    store.record_outcome(first.id, "unsatisfied", "2", None, NOW, NOW)
    reclosed = datetime(2026, 11, 28, 9, tzinfo=UTC)
    store.add_survey(new(closed=reclosed, local_date=date(2026, 11, 28)), NOW)
    (second,) = store.due_surveys(NOW, 10)
    store.record_outcome(second.id, "unsatisfied", "2", None, NOW, NOW)
    reasons = {d.survey_id: d.payload["reason"] for d in store.pending_deliveries(NOW, 10)}
    assert reasons == {first.id: None, second.id: "unsatisfied_again"}


def test_do_not_call_list_and_flags(store: Store) -> None:
    phone = "+375291234567"
    assert do_not_call_among(store, [phone]) == set()
    assert store.add_do_not_call(phone, "citizen", NOW)
    assert not store.add_do_not_call(phone, "operator", NOW)
    assert do_not_call_among(store, [phone, None, "+375291234568"]) == {phone}
    admin = AdminStore(store.engine)
    assert [(r.phone, r.source) for r in admin.dnc_rows()] == [(phone, "citizen")]
    assert admin.dnc_remove(Actor("test"), phone, NOW)
    assert not admin.dnc_remove(Actor("test"), phone, NOW)
    assert store.get_flag("paused") is None
    store.set_flag("paused", "1", NOW)
    store.set_flag("paused", "0", NOW)
    assert store.get_flag("paused") == "0"


def test_concurrent_upgrades_do_not_collide(pg_schema_url: str) -> None:
    """Three nodes starting at once all upgrade the schema: they take turns."""
    import subprocess
    import sys

    code = (
        "import sys\nfrom storage.db import make_engine, upgrade\n"
        "upgrade(make_engine(sys.argv[1]))\n"
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, pg_schema_url], stderr=subprocess.PIPE, text=True
        )
        for _ in range(3)
    ]
    results = [(p.wait(timeout=120), p.stderr.read() if p.stderr else "") for p in procs]
    for p in procs:
        if p.stderr:
            p.stderr.close()
    assert [code for code, _ in results] == [0, 0, 0], [err[-500:] for _, err in results]
