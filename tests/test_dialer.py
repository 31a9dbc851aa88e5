"""The dialer over a fake line (the real-peer night is in test_night_e2e)."""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from ivr.campaign.dialer import Dialer
from ivr.campaign.heartbeat import NodeProbe
from ivr.core.clock import SYSTEM_CLOCK
from ivr.core.config import Config, parse_config
from ivr.sip.api import EndedBy, LineState, RegistrationStatus
from lab.readback import attempts_of
from storage.store import NewSurvey, Store
from tests.fakes import FakeCall, FakeClock, FakePhone, FakePrompts
from tests.helpers import config_data, wait_until

# Thursday 2026-11-26 10:00 in Minsk (07:00 UTC) is inside the default weekday window.
INSIDE = datetime(2026, 11, 26, 7, 0, tzinfo=UTC)
NIGHT = datetime(2026, 11, 26, 20, 0, tzinfo=UTC)  # 23:00 in Minsk


def call_due(dialer: Dialer, now: datetime) -> None:
    """Claim the due calls as the dial loop does (``Store.claim_due``: each attempt committed
    as dialing) and place them one after another."""
    for call in dialer.store.claim_due(now, 10, dialer.node, dialer.lease):
        dialer.call_one(call.surveys, call.attempt_ids)


def cfg(**dialing: Any) -> Config:
    sip = {**config_data()["sip"], "dial_prefix": "9"}
    return parse_config(
        config_data(
            sip=sip,
            dialing={"channels": 2, "max_attempts": 2, "retry_delay": "20m", **dialing},
            ivr={"input_timeout_s": 1, "max_repeats": 0},
        ),
        env={},
    )


def add(store: Store, n: int, now: datetime) -> None:
    for i in range(n):
        store.add_survey(
            NewSurvey(
                f"R{i}",
                f"40{i}",
                now - timedelta(hours=5),
                date(2026, 11, 26),
                "x",
                f"+37529100000{i}",
                "ru",
                None,
            ),
            now,
        )


class RecordingPhone(FakePhone):
    """Checks, at each INVITE, that the attempt is already committed as dialing."""

    def __init__(self, store: Store, calls: list[FakeCall]) -> None:
        super().__init__(calls)
        self.store = store
        self.seen_dialing: list[bool] = []

    def dial(self, number: str) -> FakeCall:
        pid = f"R{int(number[-1])}"
        attempts = attempts_of(self.store, pid)
        self.seen_dialing.append(bool(attempts) and attempts[-1].disposition == "dialing")
        return super().dial(number)


def test_nobody_is_called_outside_the_windows(store: Store) -> None:
    add(store, 2, NIGHT)
    phone = FakePhone([])
    with Dialer(store, phone, FakePrompts(), cfg(), FakeClock(NIGHT)) as dialer:
        assert dialer.start_due(NIGHT) == 0
    assert phone.dialled == []


class HeldCall(FakeCall):
    """Rings until the test releases it, then is busy."""

    release: threading.Event = threading.Event()

    @property
    def state(self) -> LineState:
        if self.release.is_set() and self._ended is None:
            self._end(EndedBy.REMOTE_REJECT, 486)
        return LineState.ENDED if self._ended else LineState.RINGING


def held_calls(store: Store, n: int) -> RecordingPhone:
    """``n`` due surveys and a phone whose calls ring until ``release_held_calls``."""
    add(store, n, INSIDE)
    HeldCall.release = threading.Event()
    return RecordingPhone(store, [HeldCall(FakeClock(INSIDE)) for _ in range(n)])


def held_cfg(**dialing: Any) -> Config:
    # Real time with held calls: the fake clock does not sleep, so they would ring out at once.
    return cfg(ring_timeout_s=300, calls_per_second=100, **dialing)


def release_held_calls(dialer: Dialer) -> None:
    """The held calls end (busy); returns once the dialer has seen every one end."""
    HeldCall.release.set()
    wait_until(lambda: dialer.active_calls() == 0, 10, "every held call to end")


def test_channels_cap_the_calls_and_attempts_are_committed_first(store: Store) -> None:
    phone = held_calls(store, 3)
    with Dialer(store, phone, FakePrompts(), held_cfg(), SYSTEM_CLOCK) as dialer:
        assert dialer.start_due(INSIDE) == 2
        assert dialer.start_due(INSIDE) == 0  # both channels are in calls
        assert dialer.active_calls() == 2
        release_held_calls(dialer)
        assert dialer.start_due(INSIDE) == 1  # the third survey; the first two wait for retry
    assert phone.seen_dialing == [True, True, True]
    assert sorted(phone.dialled) == ["9375291000000", "9375291000001", "9375291000002"]


def test_a_reload_changes_the_number_of_channels_without_a_restart(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    phone = held_calls(store, 5)
    with Dialer(store, phone, FakePrompts(), held_cfg(), SYSTEM_CLOCK) as dialer:
        assert dialer.start_due(INSIDE) == 2
        more = held_cfg(channels=4)
        # another SIP account needs a restart: said so, not applied
        other_account = more.sip.model_copy(update={"username": "x"})
        dialer.reload(more.model_copy(update={"sip": other_account}))
        assert dialer.start_due(INSIDE) == 2  # two more channels, at once
        assert dialer.active_calls() == 4
        dialer.reload(held_cfg(channels=1))
        assert dialer.start_due(INSIDE) == 0  # calls in progress finish; none new above the cap
        release_held_calls(dialer)
        assert dialer.start_due(INSIDE) == 1  # the fifth survey, on the one channel left
    assert "changed but applied only after a restart: sip" in caplog.text


@pytest.mark.parametrize(
    ("reject", "final_reason"),
    [(486, "busy"), (480, "no_answer")],
    ids=["busy", "unavailable"],
)
def test_unanswered_calls_are_retried_then_final(
    store: Store, reject: int, final_reason: str
) -> None:
    add(store, 1, INSIDE)
    clock = FakeClock(INSIDE)
    phone = FakePhone([FakeCall(clock, answer_at=None, reject=reject) for _ in range(2)])
    dialer = Dialer(store, phone, FakePrompts(), cfg(), clock)
    (survey,) = store.due_surveys(INSIDE, 10)
    call_due(dialer, INSIDE)
    retry_at = store.next_attempt_time()
    assert retry_at is not None and retry_at - INSIDE >= timedelta(minutes=20)
    assert store.due_surveys(retry_at - timedelta(seconds=1), 10) == []
    (again,) = store.due_surveys(retry_at, 10)
    call_due(dialer, retry_at)
    (row,) = store.report_rows()
    assert (row.outcome, row.reason, row.attempts) == ("no_answer", final_reason, 2)
    dialer.drain()


@pytest.mark.parametrize(
    ("reject", "reason"),
    [(404, "invalid_number"), (603, "declined")],
    ids=["invalid-number", "declined"],
)
def test_invalid_number_and_decline_are_not_retried(store: Store, reject: int, reason: str) -> None:
    add(store, 1, INSIDE)
    clock = FakeClock(INSIDE)
    dialer = Dialer(
        store,
        FakePhone([FakeCall(clock, answer_at=None, reject=reject)]),
        FakePrompts(),
        cfg(),
        clock,
    )
    (survey,) = store.due_surveys(INSIDE, 10)
    call_due(dialer, INSIDE)
    (row,) = store.report_rows()
    assert (row.outcome, row.reason, row.attempts) == ("no_answer", reason, 1)
    dialer.drain()


def test_answered_call_stores_key_and_delivery(store: Store) -> None:
    add(store, 1, INSIDE)
    clock = FakeClock(INSIDE)
    dialer = Dialer(
        store, FakePhone([FakeCall(clock, keys_at=[(1.0, "2")])]), FakePrompts(), cfg(), clock
    )
    (survey,) = store.due_surveys(INSIDE, 10)
    call_due(dialer, INSIDE)
    (row,) = store.report_rows()
    assert (row.outcome, row.digit, row.attempts) == ("unsatisfied", "2", 1)
    (pending,) = store.pending_deliveries(clock.now(), 10)
    assert pending.payload["return_for_rework"] is True
    (attempt,) = attempts_of(store, "R0")
    assert (attempt.disposition, attempt.keys, attempt.prompt_version) == (
        "answered",
        "2",
        "ru-test",
    )
    dialer.drain()


def test_trunk_faults_do_not_use_up_attempts_but_the_deadline_ends_them(store: Store) -> None:
    add(store, 1, INSIDE)  # closed 5 h before INSIDE
    clock = FakeClock(INSIDE)
    phone = FakePhone([FakeCall(clock, answer_at=None, reject=503) for _ in range(3)])
    dialer = Dialer(store, phone, FakePrompts(), cfg(survey_deadline="6h"), clock)
    now = INSIDE
    for expected_attempts in (1, 2, 3):
        (survey,) = store.due_surveys(now, 10)
        call_due(dialer, now)
        (row,) = store.report_rows()
        assert row.attempts == expected_attempts
        if expected_attempts < 3:
            # max_attempts is 2, yet a third call comes: trunk faults are not the citizen's.
            assert row.outcome is None
            nxt = store.next_attempt_time()
            assert nxt is not None
            now = nxt
            clock.start, clock.t = now, 0.0
    # The next retry would fall after closing + 6 h: the survey ends and is reported.
    assert (row.outcome, row.reason) == ("no_answer", "survey_expired")
    dialer.drain()


def test_reload_applies_new_windows_at_once(store: Store) -> None:
    add(store, 1, INSIDE)
    clock = FakeClock(INSIDE)
    dialer = Dialer(store, FakePhone([]), FakePrompts(), cfg(), clock)
    # INSIDE is Thursday 10:00 in Minsk
    closed = parse_config(config_data(call_windows={"thu": ["15:00-18:00"]}), env={})
    dialer.reload(closed)
    assert dialer.start_due(INSIDE) == 0
    dialer.drain()


def test_no_input_gets_one_more_call_in_a_later_window_the_next_day(store: Store) -> None:
    add(store, 1, INSIDE)  # Thursday 10:00 in Minsk: the 09:00-13:00 window
    clock = FakeClock(INSIDE)
    phone = FakePhone([FakeCall(clock), FakeCall(clock)])  # answers, never presses a key
    dialer = Dialer(store, phone, FakePrompts(), cfg(), clock)
    (survey,) = store.due_surveys(INSIDE, 10)
    call_due(dialer, INSIDE)
    (row,) = store.report_rows()
    assert row.outcome is None  # not final yet
    later = store.next_attempt_time()
    # The next day's first window (one answered call a day): Friday 09:00 in Minsk.
    assert later == datetime(2026, 11, 27, 6, 0, tzinfo=UTC)
    (again,) = store.due_surveys(later, 10)
    clock.start, clock.t = later, 0.0
    call_due(dialer, later)
    (row,) = store.report_rows()
    assert (row.outcome, row.attempts) == ("no_input", 2)
    (delivery,) = store.pending_deliveries(clock.now(), 10)
    assert delivery.payload["answered_at"] is not None
    dialer.drain()


@pytest.mark.parametrize(
    ("state", "dialled"),
    [("lost", 0), ("registering", 0), ("registered", 2), ("not_used", 2)],
    ids=["lost", "registering", "registered", "direct-trunk"],
)
def test_no_call_and_no_attempt_while_unregistered(store: Store, state: str, dialled: int) -> None:
    add(store, 2, INSIDE)
    phone = FakePhone([FakeCall(FakeClock(INSIDE), answer_at=None, reject=486) for _ in range(2)])
    phone.registration = RegistrationStatus(state, "no answer in 5 s; next try in 4 s")
    with Dialer(store, phone, FakePrompts(), cfg(), FakeClock(INSIDE)) as dialer:
        assert dialer.start_due(INSIDE) == dialled
    assert len(phone.dialled) == dialled
    assert sum(len(attempts_of(store, f"R{i}")) for i in range(2)) == dialled
    # What status and the console show of it: the node's heartbeat.
    shown = NodeProbe(dialer.node, FakeClock(INSIDE), phone).registration()
    assert shown == {"lost": "failed", "registered": "registered"}.get(state, "unregistered")


def test_night_stops_with_registration_failed_once_the_loss_outlasts_the_limit(
    store: Store,
) -> None:
    """``night`` exits 4 (RegistrationFailed) when registration cannot be recovered."""
    from ivr.campaign.campaign import Campaign
    from ivr.campaign.night import Night
    from ivr.core.errors import RegistrationFailed

    add(store, 1, INSIDE)
    config = cfg()
    phone = FakePhone([])
    night = Night(Campaign(config, store, None, None, phone, FakePrompts(), FakeClock(INSIDE)))  # type: ignore[arg-type]
    phone.registration = RegistrationStatus("lost", "403 Forbidden; next try in 60 s", 299.0)
    night._check_registration()  # not yet: retried with backoff
    phone.registration = RegistrationStatus("lost", "403 Forbidden; next try in 60 s", 301.0)
    with pytest.raises(RegistrationFailed, match="lost for 301 s.*403 Forbidden"):
        night._dial(date(2026, 11, 26))
    assert phone.dialled == [] and attempts_of(store, "R0") == []
