"""The call runner over a fake line and a fake clock: timing and the order of effects."""

from __future__ import annotations

from datetime import datetime

import pytest

from ivr.call_runner import CallPlan, RunnerSettings, run_call
from ivr.callflow import FlowSettings, Outcome, RecordOutcome
from ivr.sip.api import EndedBy
from tests.fakes import FakeCall, FakeClock, FakePhone, FakePrompts

SETTINGS = RunnerSettings(ring_timeout_s=20, max_call_s=60, flow=FlowSettings(4.0, 2))
PLAN = CallPlan(dial_string="375291234567", request_number="4071", language="ru")


def run(call: FakeCall, clock: FakeClock, settings: RunnerSettings = SETTINGS):  # type: ignore[no-untyped-def]
    recorded: list[tuple[RecordOutcome, list[str]]] = []

    def sink(rec: RecordOutcome, answered_at: datetime | None) -> None:
        recorded.append((rec, list(call.log)))

    report = run_call(FakePhone([call]), PLAN, FakePrompts(), settings, clock, sink)
    return report, recorded


@pytest.mark.parametrize(
    ("keys_at", "outcome", "key"),
    [
        ([(6.0, "1")], Outcome.SATISFIED, "1"),  # listening after the opening (ends 4.8 s)
        ([(2.0, "2")], Outcome.UNSATISFIED, "2"),  # barge-in during the opening
        ([(6.0, "5"), (9.0, "2")], Outcome.UNSATISFIED, "2"),
        ([], Outcome.NO_INPUT, None),
    ],
    ids=["satisfied", "barge-in-unsatisfied", "wrong-then-2", "silent"],
)
def test_outcomes(keys_at: list[tuple[float, str]], outcome: Outcome, key: str | None) -> None:
    clock = FakeClock()
    call = FakeCall(clock, keys_at=keys_at)
    report, recorded = run(call, clock)
    assert report.outcome == RecordOutcome(outcome, key)
    assert [r for r, _ in recorded] == [RecordOutcome(outcome, key)]
    assert report.answered_at is not None and report.prompt_version == "ru-test"
    assert call.log[-2:] == ["hangup", "ended:local_hangup"]


def test_outcome_is_stored_before_the_closing_prompt_and_hangup() -> None:
    clock = FakeClock()
    call = FakeCall(clock, keys_at=[(6.0, "2")])
    _, recorded = run(call, clock)
    (_, log_at_record) = recorded[0]
    assert "hangup" not in log_at_record
    assert log_at_record.count("play:1s") == 0  # the thanks prompt had not started yet


def test_silence_asks_again_then_no_input_within_the_expected_time() -> None:
    clock = FakeClock()
    call = FakeCall(clock)
    report, _ = run(call, clock)
    # opening 4 s, then (4 s silence + 1 s question) twice, 4 s silence, 1 s goodbye, + tails
    assert 0.5 + 4 + 4 + (1 + 4) * 2 + 1 <= clock.t <= 0.5 + 4 + 4 + (1 + 4) * 2 + 1 + 2.5
    assert report.outcome == RecordOutcome(Outcome.NO_INPUT, None)


def test_barge_in_stops_the_prompt() -> None:
    clock = FakeClock()
    call = FakeCall(clock, keys_at=[(2.0, "1")])
    run(call, clock)
    assert call.log.index("stop_audio") < call.log.index("hangup")
    assert call.log[:2] == ["stop_audio", "play:4s"]


def test_ring_timeout_cancels() -> None:
    clock = FakeClock()
    call = FakeCall(clock, answer_at=None)
    report, recorded = run(call, clock)
    assert "cancel" in call.log and recorded == []
    assert 20 <= clock.t < 21
    assert report.ended_by is EndedBy.LOCAL_CANCEL and report.final_status == 487


def test_busy_is_reported_with_its_status() -> None:
    clock = FakeClock()
    call = FakeCall(clock, answer_at=None, reject=486)
    report, recorded = run(call, clock)
    assert (report.final_status, report.ended_by, report.answered_at) == (
        486,
        EndedBy.REMOTE_REJECT,
        None,
    )
    assert recorded == [] and "cancel" not in call.log


def test_remote_hangup_mid_question_is_no_input() -> None:
    clock = FakeClock()
    call = FakeCall(clock, bye_at=3.0)
    report, _ = run(call, clock)
    assert report.outcome == RecordOutcome(Outcome.NO_INPUT, None, "remote_hangup")
    assert "hangup" not in call.log


def test_key_then_immediate_hangup_keeps_the_key() -> None:
    clock = FakeClock()
    call = FakeCall(clock, keys_at=[(6.0, "2")], bye_at=6.0)
    report, _ = run(call, clock)
    assert report.outcome == RecordOutcome(Outcome.UNSATISFIED, "2")


def test_max_call_length_ends_the_call() -> None:
    clock = FakeClock()
    call = FakeCall(clock)
    settings = RunnerSettings(ring_timeout_s=20, max_call_s=12, flow=FlowSettings(30.0, 5))
    report, _ = run(call, clock, settings)
    assert report.outcome == RecordOutcome(Outcome.NO_INPUT, None, "max_call_length")
    assert 12 <= clock.t - 0.5 <= 12.2
