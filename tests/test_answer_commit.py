"""The answer time of an attempt is committed at the 200 OK: a call that crashes, or a runner
killed, after the answer counts as an attempt and keeps the number's one answered call a day.
On SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

import pytest

from ivr.campaign.dialer import Dialer, recover_after_restart
from ivr.core.windows import local_day_bounds
from lab.readback import attempts_of
from storage.store import Store
from tests.fakes import FakeCall, FakeClock, FakePhone, FakePrompts
from tests.helpers import wait_until
from tests.test_dialer import INSIDE, add, cfg

LEASE = timedelta(minutes=3)
DAY_START = local_day_bounds(INSIDE.astimezone(cfg().tz).date(), cfg().tz)[0]


class CheckingPrompts(FakePrompts):
    """Looks at the database when the first prompt is rendered (after the 200 OK), and can
    crash a later render, as a bug of ours in mid-call would."""

    def __init__(self, store: Store, crash_on: int | None = None) -> None:
        self.store = store
        self.crash_on = crash_on
        self.renders = 0
        self.seen: list[tuple[str, bool]] = []

    def render(self, lang: str, parts: Sequence[str]) -> bytes:
        self.renders += 1
        if self.renders == 1:
            (attempt,) = attempts_of(self.store, "R0")
            self.seen.append((attempt.disposition, attempt.answered_at is not None))
        if self.renders == self.crash_on:
            raise RuntimeError("a bug of ours in mid-call")
        return super().render(lang, parts)


def dial(store: Store, prompts: CheckingPrompts, fake: FakeCall, clock: FakeClock) -> None:
    dialer = Dialer(store, FakePhone([fake]), prompts, cfg(), clock)
    (call,) = store.claim_due(INSIDE, 1, dialer.node, LEASE, answered_since=DAY_START)
    dialer.call_one(call.surveys, call.attempt_ids)
    dialer.drain()


def test_the_answer_is_committed_before_the_greeting_plays(store: Store) -> None:
    add(store, 1, INSIDE)
    clock = FakeClock(INSIDE)
    prompts = CheckingPrompts(store)
    dial(store, prompts, FakeCall(clock, keys_at=[(3.0, "1")]), clock)
    assert prompts.seen == [("dialing", True)]
    (attempt,) = attempts_of(store, "R0")
    assert attempt.disposition == "answered" and attempt.duration_s is not None


def test_a_call_that_crashes_after_the_answer_counts_and_is_not_redialled_today(
    store: Store,
) -> None:
    add(store, 1, INSIDE)
    clock = FakeClock(INSIDE)
    fake = FakeCall(clock)
    dial(store, CheckingPrompts(store, crash_on=2), fake, clock)
    assert "hangup" in fake.log  # the line is not left up
    (attempt,) = attempts_of(store, "R0")
    assert attempt.disposition == "answered" and attempt.answered_at is not None
    later = INSIDE + timedelta(hours=3)  # past every retry step, still today
    assert store.claim_due(later, 10, "n", LEASE, answered_since=DAY_START) == []
    (row,) = store.report_rows()
    assert row.attempts == 1 and row.outcome in (None, "no_input")


@pytest.mark.parametrize("explicit_name", [True, False], ids=["node.name", "default-name"])
def test_a_runner_killed_after_the_answer_does_not_call_again_that_day(
    store: Store, explicit_name: bool
) -> None:
    """SIGKILL after the 200 OK, as the database sees it: the attempt left dialing with its
    answer time. The restarted runner closes it as interrupted (it counts) and the survey
    waits for the next day's window."""
    config = cfg()
    if explicit_name:
        config = config.model_copy(update={"node": config.node.model_copy(update={"name": "a"})})
    add(store, 1, INSIDE)
    node = "a" if explicit_name else "host-1"  # the killed process (default: its own pid)
    (call,) = store.claim_due(INSIDE, 1, node, LEASE, answered_since=DAY_START)
    store.mark_answered(call.attempt_ids, INSIDE + timedelta(seconds=4), "call-1")
    restart = INSIDE + timedelta(seconds=30)
    recover_after_restart(store, config, restart)
    (attempt,) = attempts_of(store, "R0")
    assert (attempt.disposition, attempt.sip_call_id) == ("interrupted", "call-1")
    assert attempt.answered_at == INSIDE + timedelta(seconds=4)
    # The night sleeps until then rather than polling a survey it may not dial today.
    next_due = store.next_attempt_time()
    assert next_due is not None and next_due >= DAY_START + timedelta(days=1)
    for hours in (1, 6, 12):
        at = restart + timedelta(hours=hours)
        assert store.claim_due(at, 10, "n", LEASE, answered_since=DAY_START) == []
    tomorrow = DAY_START + timedelta(days=1)
    (again,) = store.claim_due(tomorrow + timedelta(hours=10), 10, "n", LEASE,
                               answered_since=tomorrow)  # fmt: skip
    assert again.surveys[0].attempts == 1


def test_a_night_waiting_for_tomorrow_stops_at_once_on_sigterm(store: Store) -> None:
    """The restarted night has nothing to dial before tomorrow's window: SIGTERM (what
    ``request_stop`` is called from) ends its wait at once, not after up to 30 s."""
    import threading

    from ivr.campaign.campaign import Campaign
    from ivr.campaign.night import Night
    from tests.test_import import InMemorySource
    from tests.test_privacy import AcceptingSink

    add(store, 1, INSIDE)
    store.schedule_retry(store.due_surveys(INSIDE, 1)[0].id, INSIDE + timedelta(days=1))
    clock = FakeClock(INSIDE)
    night = Night(Campaign(cfg(), store, InMemorySource([]), AcceptingSink(), FakePhone([]),
                  FakePrompts(), clock))  # fmt: skip
    day = INSIDE.astimezone(cfg().tz).date()
    dialer = night.campaign.dialer
    idle_waits: list[float] = []
    real_wait = dialer.wait

    def observed_wait(seconds: float) -> None:  # the loop's wait for the next window
        idle_waits.append(seconds)
        real_wait(seconds)

    dialer.wait = observed_wait  # type: ignore[method-assign]
    runner = threading.Thread(target=night.finish, args=(day, night.prepare(day), 1.0))
    runner.start()
    wait_until(lambda: any(s > 1.0 for s in idle_waits), 30, "the night to wait for tomorrow")
    night.request_stop()
    runner.join(timeout=10)
    assert not runner.is_alive(), "the night kept waiting after SIGTERM"
