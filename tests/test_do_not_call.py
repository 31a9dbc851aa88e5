"""A number on the do-not-call list is never dialled: ``dnc add`` and key 9 end every open
survey of the number at once (their results go to the outbox), and the claim checks the list
again before every INVITE. On SQLite and PostgreSQL."""

from __future__ import annotations

import argparse
from datetime import UTC, date, datetime, timedelta

from ivr.campaign import operator
from ivr.campaign.dialer import Dialer
from lab.readback import attempts_of
from storage.admin import AdminStore
from storage.store import AttemptResult, NewSurvey, Store
from tests.fakes import FakeCall, FakeClock, FakePhone, FakePrompts
from tests.test_dialer import INSIDE, cfg

PHONE = "+375291000001"
OTHER = "+375291000002"
LEASE = timedelta(minutes=3)


def add(store: Store, pid: str, phone: str, day: int = 26, due: datetime = INSIDE) -> None:
    store.add_survey(
        NewSurvey(pid, pid[-3:], datetime(2026, 11, day, 6, tzinfo=UTC), date(2026, 11, day),
                  phone, phone, "ru", None),
        due,
    )  # fmt: skip


def results(store: Store) -> dict[str, tuple[str | None, str | None]]:
    return {r.portal_request_id: (r.outcome, r.reason) for r in store.report_rows()}


def outbox(store: Store) -> dict[str, tuple[str, str]]:
    return {
        d.portal_request_id: (d.payload["outcome"], d.payload["reason"])
        for d in store.pending_deliveries(INSIDE + timedelta(days=1), 100)
    }


def test_dnc_add_after_import_closes_the_open_surveys_of_that_number(store: Store) -> None:
    add(store, "R-1", PHONE)
    add(store, "R-2", PHONE, day=25)
    add(store, "R-3", OTHER)
    args = argparse.Namespace(command="dnc", dnc_command="add", phone="8 029 100-00-01",
                              note=None)  # fmt: skip
    code, text = operator.run(args, cfg(), store, INSIDE)
    assert code == 0
    assert "+37529*****01 added; 2 open survey(s) closed as not_called" in text
    assert PHONE not in text
    assert results(store) == {
        "R-1": ("not_called", "do_not_call"),
        "R-2": ("not_called", "do_not_call"),
        "R-3": (None, None),
    }
    assert outbox(store) == {"R-1": ("not_called", "do_not_call"),
                             "R-2": ("not_called", "do_not_call")}  # fmt: skip
    assert [c.phone for c in store.claim_due(INSIDE, 10, "n", LEASE)] == [OTHER]


def test_a_number_listed_during_its_call_is_not_dialled_again(store: Store) -> None:
    """Listed while its first call rang (that call ends as it started), then due again: the
    claim ends it as not_called instead of dialling."""
    add(store, "R-1", PHONE)
    (call,) = store.claim_due(INSIDE, 10, "n", LEASE)
    assert store.add_do_not_call(PHONE, "operator", INSIDE).closed == []  # in a call right now
    store.finish_attempt(call.attempt_ids[0], AttemptResult(
        "c", 486, "Busy Here", None, INSIDE, "", "busy", None))  # fmt: skip
    store.schedule_retry(call.surveys[0].id, INSIDE + timedelta(minutes=20))
    later = INSIDE + timedelta(minutes=21)
    assert store.claim_due(later, 10, "n", LEASE) == []
    assert results(store) == {"R-1": ("not_called", "do_not_call")}
    assert outbox(store) == {"R-1": ("not_called", "do_not_call")}
    assert len(attempts_of(store, "R-1")) == 1


def test_key_nine_ends_every_open_survey_of_the_number(store: Store) -> None:
    """Two requests asked in one call, a third of the same citizen waiting for another day:
    9 on the first: it is opted_out, the other two not_called (do_not_call), all delivered."""
    add(store, "R-1", PHONE)
    add(store, "R-2", PHONE)
    add(store, "R-3", PHONE, day=27, due=INSIDE + timedelta(days=1))  # not due in this call
    add(store, "R-4", OTHER, due=INSIDE + timedelta(days=1))
    clock = FakeClock(INSIDE)
    phone = FakePhone([FakeCall(clock, keys_at=[(3.0, "9")])])
    dialer = Dialer(store, phone, FakePrompts(), cfg(), clock)
    (call,) = store.claim_due(INSIDE, 10, "n", LEASE)
    assert [s.portal_request_id for s in call.surveys] == ["R-1", "R-2"]
    dialer.call_one(call.surveys, call.attempt_ids)
    dialer.drain()
    assert results(store) == {
        "R-1": ("opted_out", None),
        "R-2": ("not_called", "do_not_call"),
        "R-3": ("not_called", "do_not_call"),
        "R-4": (None, None),
    }
    assert outbox(store) == {"R-1": ("opted_out", None), "R-2": ("not_called", "do_not_call"),
                             "R-3": ("not_called", "do_not_call")}  # fmt: skip
    assert [r.phone for r in AdminStore(store.engine).dnc_rows()] == [PHONE]
    assert phone.dialled == ["9375291000001"]
    later = INSIDE + timedelta(days=2)
    assert [c.phone for c in store.claim_due(later, 10, "n", LEASE)] == [OTHER]


def test_an_invalid_number_is_not_echoed_in_full(store: Store) -> None:
    args = argparse.Namespace(command="dnc", dnc_command="add", phone="3752912345678901",
                              note=None)  # fmt: skip
    code, text = operator.run(args, cfg(), store, INSIDE)
    assert code == 2 and "not a valid phone number" in text
    assert "12345678901" not in text
