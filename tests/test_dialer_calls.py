"""``Dialer.call_one`` with a list of surveys (one citizen, several requests) over a fake line:
one attempt row per survey with the same SIP facts, one outcome each, opt-out on the list."""

from __future__ import annotations

from datetime import date, timedelta

from ivr.campaign.dialer import Dialer
from ivr.sip.api import KeySource
from lab.readback import attempts_of
from storage.admin import AdminStore
from storage.store import DueSurvey, NewSurvey, Store
from tests.fakes import FakeCall, FakeClock, FakePhone, FakePrompts
from tests.test_dialer import INSIDE, cfg

PHONE = "+375291000000"


def two_surveys(store: Store) -> list[DueSurvey]:
    for i, category in enumerate(("Лифт", None)):
        store.add_survey(
            NewSurvey(f"R{i}", f"40{i}", INSIDE - timedelta(hours=5), date(2026, 11, 26),
                      "x", PHONE, "be", category),
            INSIDE,
        )  # fmt: skip
    surveys = store.due_surveys(INSIDE, 10)
    assert len(surveys) == 2
    return sorted(surveys, key=lambda s: s.portal_request_id)


def call(store: Store, fake: FakeCall, clock: FakeClock) -> tuple[list[DueSurvey], FakePhone]:
    surveys = two_surveys(store)
    phone = FakePhone([fake])
    dialer = Dialer(store, phone, FakePrompts(), cfg(), clock)
    # Claimed as the dial loop claims them (one call for the phone), asked in request order.
    (claimed,) = store.claim_due(INSIDE, 1, dialer.node, dialer.lease)
    asked = sorted(zip(claimed.surveys, claimed.attempt_ids, strict=True),
                   key=lambda pair: pair[0].portal_request_id)  # fmt: skip
    dialer.call_one([sv for sv, _ in asked], [attempt for _, attempt in asked])
    dialer.drain()
    return surveys, phone


def test_one_call_asks_every_request_and_stores_each_answer(store: Store) -> None:
    clock = FakeClock(INSIDE)
    fake = FakeCall(clock, keys_at=[(3.0, "2"), (8.0, "1")], key_source=KeySource.SIP_INFO)
    surveys, phone = call(store, fake, clock)
    assert phone.dialled == ["9375291000000"]  # one call for both
    rows = {r.portal_request_id: r for r in store.report_rows()}
    assert (rows["R0"].outcome, rows["R0"].digit) == ("unsatisfied", "2")
    assert (rows["R1"].outcome, rows["R1"].digit) == ("satisfied", "1")
    for s in surveys:
        (attempt,) = attempts_of(store, s.portal_request_id)
        assert (attempt.disposition, attempt.keys, attempt.key_sources) == ("answered", "21", "ii")


def test_nine_puts_the_number_on_the_do_not_call_list(store: Store) -> None:
    clock = FakeClock(INSIDE)
    surveys, _ = call(store, FakeCall(clock, keys_at=[(3.0, "9")]), clock)
    rows = store.report_rows()
    # 9 answers the request asked; the later one of the call is not asked (do_not_call)
    assert [(r.outcome, r.digit, r.reason) for r in rows] == [
        ("opted_out", "9", None),
        ("not_called", None, "do_not_call"),
    ]
    assert [r.phone for r in AdminStore(store.engine).dnc_rows()] == [PHONE]


def test_an_unanswered_call_reschedules_every_survey_in_it(store: Store) -> None:
    clock = FakeClock(INSIDE)
    surveys, _ = call(store, FakeCall(clock, answer_at=None, reject=486), clock)
    assert {r.outcome for r in store.report_rows()} == {None}
    due_again = store.due_surveys(INSIDE + timedelta(hours=2), 10)
    assert sorted(s.id for s in due_again) == sorted(s.id for s in surveys)
    for s in surveys:
        (attempt,) = attempts_of(store, s.portal_request_id)
        assert (attempt.sip_status, attempt.disposition) == (486, "busy")
