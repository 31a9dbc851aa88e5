"""The call flow when the citizen presses 3 "talk to an operator" (issue 14): in hours the
call is transferred (REFER) and recorded as such; refused, or out of hours, a callback is
promised and recorded so the rating carries callback_requested. No pyVoIP, no clock."""

from __future__ import annotations

import pytest

from ivr.core.call_events import (
    Answered,
    CallTooLong,
    CancelInputTimer,
    Event,
    Hangup,
    KeyPressed,
    Play,
    PromptFinished,
    RecordOutcome,
    RemoteHangup,
    StopPlayback,
    Transfer,
    TransferAccepted,
    TransferFailed,
)
from ivr.core.call_script import FlowSettings, OperatorMode, RequestInfo, opening_parts
from ivr.core.callflow import CALLBACK_REQUESTED, TRANSFERRED, Outcome, State, SurveyCall

IN_HOURS = FlowSettings(5.0, 2, operator=OperatorMode.TRANSFER)
OUT_OF_HOURS = FlowSettings(5.0, 2, operator=OperatorMode.CALLBACK)
OFF = FlowSettings(5.0, 2)
ONE = (RequestInfo("s1", "4071"),)
TWO = (RequestInfo("s1", "4071"), RequestInfo("s2", "11"))
A, P, H, L = Answered(), PromptFinished(), RemoteHangup(), CallTooLong()
N = Outcome.NO_INPUT


def K(key: str) -> KeyPressed:
    return KeyPressed(key)


def run(
    events: list[Event], settings: FlowSettings, requests: tuple[RequestInfo, ...] = ONE
) -> tuple[SurveyCall, list[object]]:
    flow = SurveyCall(requests, settings)
    actions: list[object] = []
    for event in events:
        actions.extend(flow.handle(event))
    return flow, actions


def test_3_is_offered_only_when_an_operator_can_take_the_call() -> None:
    request = ONE[0]
    assert "question_operator" in opening_parts(request, IN_HOURS)
    assert "question_operator" not in opening_parts(request, OUT_OF_HOURS)
    assert "question_operator" not in opening_parts(request, OFF)
    # after 1 and 2, before 9
    parts = opening_parts(request, IN_HOURS)
    assert parts.index("question_rest") < parts.index("question_operator")
    assert parts.index("question_operator") < parts.index("question_opt_out")


def test_in_hours_3_announces_then_transfers_and_records_transferred() -> None:
    flow, actions = run([A, P, K("3")], IN_HOURS)
    assert actions[-2:] == [CancelInputTimer(), Play(("transfer_connecting",))]
    assert flow.state is State.TRANSFER_ANNOUNCE and flow.recorded == []
    assert flow.handle(P) == [Transfer()]
    assert flow.handle(K("1")) == []  # keys while the REFER is on its way change nothing
    assert flow.handle(TransferAccepted()) == [
        RecordOutcome("s1", N, "3", TRANSFERRED),
        Hangup(),
    ]
    assert flow.state is State.DONE
    assert flow.handle(H) == []  # the citizen's leg goes away afterwards


def test_3_during_the_opening_cuts_it_short() -> None:
    _, actions = run([A, K("3")], IN_HOURS)
    assert actions[-2:] == [StopPlayback(), Play(("transfer_connecting",))]


@pytest.mark.parametrize(
    "failure",
    ["603 Declined", "timeout", "NOTIFY 486 Busy Here"],
    ids=["refused", "no-answer-to-refer", "operator-line-failed"],
)
def test_a_refused_transfer_promises_a_callback(failure: str) -> None:
    flow, _ = run([A, P, K("3"), P], IN_HOURS)
    assert flow.handle(TransferFailed(failure)) == [
        RecordOutcome("s1", N, "3", CALLBACK_REQUESTED),
        Play(("callback_promise",)),
    ]
    assert flow.state is State.CLOSING
    assert flow.handle(P) == [Hangup()]


def test_out_of_hours_3_promises_a_callback_without_refer() -> None:
    flow, actions = run([A, P, K("3"), P], OUT_OF_HOURS)
    assert actions[-4:] == [
        CancelInputTimer(),
        RecordOutcome("s1", N, "3", CALLBACK_REQUESTED),
        Play(("callback_promise",)),
        Hangup(),
    ]
    assert not any(isinstance(a, Transfer) for a in actions)


def test_with_transfer_off_3_is_a_wrong_key() -> None:
    flow, actions = run([A, P, K("3")], OFF)
    assert actions[-1] == Play(("invalid_key", "question", "question_rest", "question_opt_out"))
    assert flow.recorded == []


@pytest.mark.parametrize(
    ("ending", "reason"),
    [(TransferAccepted(), TRANSFERRED), (TransferFailed("603 Declined"), CALLBACK_REQUESTED)],
    ids=["transferred", "callback"],
)
def test_every_request_of_the_call_gets_the_reason(ending: Event, reason: str) -> None:
    flow, _ = run([A, P, K("3"), P, ending], IN_HOURS, TWO)
    assert flow.recorded == [
        RecordOutcome("s1", N, "3", reason),
        RecordOutcome("s2", N, None, reason),
    ]


def test_after_the_first_answer_3_concerns_the_second_request() -> None:
    flow, _ = run([A, P, K("1"), P, K("3"), P, TransferAccepted()], IN_HOURS, TWO)
    assert flow.recorded == [
        RecordOutcome("s1", Outcome.SATISFIED, "1"),
        RecordOutcome("s2", N, "3", TRANSFERRED),
    ]


@pytest.mark.parametrize(
    "events",
    [[A, P, K("3"), H], [A, P, K("3"), P, H]],
    ids=["hangup-while-announcing", "hangup-while-transferring"],
)
def test_a_hang_up_before_the_transfer_is_settled_is_no_input(events: list[Event]) -> None:
    flow, _ = run(events, IN_HOURS)
    assert flow.recorded == [RecordOutcome("s1", N, None, "remote_hangup")]
    assert flow.state is State.DONE
    assert flow.handle(TransferAccepted()) == []  # a late NOTIFY changes nothing


@pytest.mark.parametrize(
    ("events", "stop"),
    [([A, P, K("3"), L], [StopPlayback()]), ([A, P, K("3"), P, L], [])],
    ids=["announcing", "transferring"],
)
def test_too_long_while_transferring_hangs_up(events: list[Event], stop: list[object]) -> None:
    flow, actions = run(events, IN_HOURS)
    assert actions[-(len(stop) + 2) :] == [
        *stop,
        RecordOutcome("s1", N, None, "max_call_length"),
        Hangup(),
    ]


def test_a_late_refer_result_after_the_goodbye_is_ignored() -> None:
    flow, _ = run([A, P, K("3"), P, TransferFailed("timeout")], IN_HOURS)
    assert flow.handle(TransferAccepted()) == []
    assert flow.handle(TransferFailed("again")) == []
