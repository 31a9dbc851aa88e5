"""The runner's side of 3 "talk to an operator" over a fake line and a fake clock: hours judged
at the answer, REFER asked for after "connecting you", our BYE after a transfer, the callback
promise after a refusal. Plus the rating that carries callback_requested."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from ivr.campaign.call_runner import CallPlan, CallReport, OperatorLine, RunnerSettings, run_call
from ivr.core.call_events import RecordOutcome
from ivr.core.call_script import FlowSettings, RequestInfo
from ivr.core.callflow import CALLBACK_REQUESTED, TRANSFERRED, Outcome
from ivr.sip.api import EndedBy
from ivr.sip.refer import ReferResult
from storage.models import Survey
from storage.records import rating_payload
from tests.fakes import FakeCall, FakeClock, FakePhone, FakePrompts

TARGET = "sip:operator@127.0.0.1"
PLAN = CallPlan("375291234567", (RequestInfo("s1", "4071"),), "ru")


def settings(open_: bool) -> RunnerSettings:
    return RunnerSettings(ring_timeout_s=20, max_call_s=90, flow=FlowSettings(4.0, 2),
                          operator=OperatorLine(TARGET, lambda at: open_))  # fmt: skip


class Prompts(FakePrompts):
    played: list[tuple[str, ...]]

    def render(self, lang: str, parts: object) -> bytes:
        self.played.append(tuple(parts))  # type: ignore[arg-type]
        return super().render(lang, parts)  # type: ignore[arg-type]


def run(call: FakeCall, clock: FakeClock, s: RunnerSettings) -> tuple[CallReport, list[object]]:
    recorded: list[object] = []
    prompts = Prompts()
    prompts.played = []

    def sink(rec: RecordOutcome, answered_at: datetime | None) -> None:
        recorded.append((rec, list(call.log)))

    report = run_call(FakePhone([call]), PLAN, prompts, s, clock, sink)
    recorded.append(prompts.played)
    return report, recorded


def test_in_hours_3_transfers_and_we_hang_up_after_the_operator_answered() -> None:
    clock = FakeClock()
    call = FakeCall(clock, keys_at=[(8.0, "3")], transfer_answer=ReferResult(True, "NOTIFY 200 OK"))
    report, recorded = run(call, clock, settings(True))
    (rec, log_then), played = recorded
    assert rec == RecordOutcome("s1", Outcome.NO_INPUT, "3", TRANSFERRED)
    assert "question_operator" in played[0]
    assert played[-1] == ("transfer_connecting",)
    assert f"transfer:{TARGET}" in log_then and "hangup" not in log_then
    assert call.log[-2:] == ["hangup", "ended:local_hangup"]  # our BYE after the NOTIFY 200
    assert report.ended_by is EndedBy.LOCAL_HANGUP


@pytest.mark.parametrize(
    "answer",
    [ReferResult(False, "REFER 603 Declined"), ReferResult(False, "NOTIFY 486 Busy Here"), None],
    ids=["refused", "operator-busy", "no-answer"],
)
def test_a_refused_transfer_promises_a_callback(answer: ReferResult | None) -> None:
    clock = FakeClock()
    call = FakeCall(clock, keys_at=[(8.0, "3")], transfer_answer=answer)
    _, recorded = run(call, clock, settings(True))
    (rec, _), played = recorded
    assert rec == RecordOutcome("s1", Outcome.NO_INPUT, "3", CALLBACK_REQUESTED)
    assert played[-1] == ("callback_promise",)


def test_out_of_hours_3_is_not_offered_but_pressed_promises_a_callback_without_refer() -> None:
    clock = FakeClock()
    call = FakeCall(clock, keys_at=[(8.0, "3")])
    _, recorded = run(call, clock, settings(False))
    (rec, _), played = recorded
    assert "question_operator" not in played[0]
    assert rec == RecordOutcome("s1", Outcome.NO_INPUT, "3", CALLBACK_REQUESTED)
    assert played[-1] == ("callback_promise",)
    assert not any(entry.startswith("transfer:") for entry in call.log)


def test_the_rating_carries_callback_requested_exactly_for_a_promised_callback() -> None:
    def payload(reason: str | None, outcome: str = "no_input") -> dict[str, object]:
        survey = Survey(id="s1", outcome=outcome, reason=reason, digit="3", attempts=1,
                        completed_at=datetime(2026, 11, 30, 12, tzinfo=UTC))  # fmt: skip
        return rating_payload(survey)

    assert payload(CALLBACK_REQUESTED)["callback_requested"] is True
    assert payload(TRANSFERRED)["callback_requested"] is False
    assert payload(None, "satisfied")["callback_requested"] is False
    assert payload(CALLBACK_REQUESTED)["return_for_rework"] is False
