"""Every path through the survey call, driven event by event (no pyVoIP, no clock)."""

from __future__ import annotations

import pytest

from ivr.callflow import (
    Answered,
    CallTooLong,
    CancelInputTimer,
    Event,
    FlowSettings,
    Hangup,
    InputTimeout,
    KeyPressed,
    Outcome,
    Play,
    PromptFinished,
    RecordOutcome,
    RemoteHangup,
    StartInputTimer,
    State,
    StopPlayback,
    SurveyCall,
)
from ivr.errors import CallFlowError

SETTINGS = FlowSettings(input_timeout_s=5.0, max_repeats=2)
OPENING = Play(("greeting", "about_request", "number:4071", "question"))


def run(events: list[Event], settings: FlowSettings = SETTINGS) -> tuple[SurveyCall, list[object]]:
    flow = SurveyCall("4071", settings)
    actions: list[object] = []
    for event in events:
        actions.extend(flow.handle(event))
    return flow, actions


def outcome_of(actions: list[object]) -> RecordOutcome | None:
    records = [a for a in actions if isinstance(a, RecordOutcome)]
    assert len(records) <= 1, "an outcome is recorded at most once"
    return records[0] if records else None


CASES = [
    # (events, expected outcome, expected key, expected reason)
    (
        [Answered(), PromptFinished(), KeyPressed("1"), PromptFinished()],
        Outcome.SATISFIED,
        "1",
        None,
    ),
    (
        [Answered(), PromptFinished(), KeyPressed("2"), PromptFinished()],
        Outcome.UNSATISFIED,
        "2",
        None,
    ),
    ([Answered(), KeyPressed("1"), PromptFinished()], Outcome.SATISFIED, "1", None),
    ([Answered(), KeyPressed("2"), PromptFinished()], Outcome.UNSATISFIED, "2", None),
    (
        [Answered(), PromptFinished(), KeyPressed("7"), PromptFinished(), KeyPressed("2")],
        Outcome.UNSATISFIED,
        "2",
        None,
    ),
    (
        [Answered(), PromptFinished(), InputTimeout(), PromptFinished(), KeyPressed("1")],
        Outcome.SATISFIED,
        "1",
        None,
    ),
    (
        [Answered()] + [PromptFinished(), InputTimeout()] * 3 + [PromptFinished()],
        Outcome.NO_INPUT,
        None,
        None,
    ),
    (
        [Answered(), PromptFinished(), KeyPressed("5"), PromptFinished(), KeyPressed("#")]
        + [PromptFinished(), KeyPressed("9"), PromptFinished()],
        Outcome.NO_INPUT,
        None,
        None,
    ),
    ([Answered(), RemoteHangup()], Outcome.NO_INPUT, None, "remote_hangup"),
    ([Answered(), PromptFinished(), RemoteHangup()], Outcome.NO_INPUT, None, "remote_hangup"),
    ([Answered(), PromptFinished(), CallTooLong()], Outcome.NO_INPUT, None, "max_call_length"),
    # The answer is kept when the citizen hangs up during "thank you".
    ([Answered(), KeyPressed("2"), RemoteHangup()], Outcome.UNSATISFIED, "2", None),
    ([Answered(), KeyPressed("1"), CallTooLong()], Outcome.SATISFIED, "1", None),
]
IDS = [
    "satisfied-after-question",
    "unsatisfied-after-question",
    "satisfied-barge-in",
    "unsatisfied-barge-in",
    "wrong-key-then-2",
    "silence-then-1",
    "silence-to-no-input",
    "wrong-keys-to-no-input",
    "hangup-during-opening",
    "hangup-while-listening",
    "too-long",
    "hangup-during-thanks-keeps-answer",
    "too-long-during-thanks-keeps-answer",
]


@pytest.mark.parametrize(("events", "outcome", "key", "reason"), CASES, ids=IDS)
def test_outcome_of_each_path(
    events: list[Event], outcome: Outcome, key: str | None, reason: str | None
) -> None:
    flow, actions = run(events)
    rec = outcome_of(actions)
    assert rec == RecordOutcome(outcome, key, reason)
    assert flow.recorded == rec


def test_opening_names_the_request_and_asks() -> None:
    _, actions = run([Answered()])
    assert actions == [OPENING]


def test_prompt_end_starts_the_input_timer() -> None:
    _, actions = run([Answered(), PromptFinished()])
    assert actions[-1] == StartInputTimer(5.0)


@pytest.mark.parametrize(
    ("key", "closing"),
    [("1", "thanks_satisfied"), ("2", "thanks_unsatisfied")],
    ids=["satisfied", "unsatisfied"],
)
def test_outcome_is_recorded_before_the_closing_prompt(key: str, closing: str) -> None:
    flow, actions = run([Answered(), PromptFinished()])
    after_key = flow.handle(KeyPressed(key))
    assert after_key == [
        CancelInputTimer(),
        RecordOutcome(Outcome.SATISFIED if key == "1" else Outcome.UNSATISFIED, key),
        Play((closing,)),
    ]
    assert flow.handle(PromptFinished()) == [Hangup()]
    assert flow.state is State.DONE


def test_key_during_prompt_stops_it_at_once() -> None:
    flow, _ = run([Answered()])
    assert flow.handle(KeyPressed("2"))[0] == StopPlayback()


def test_wrong_key_says_so_and_asks_again() -> None:
    flow, _ = run([Answered(), PromptFinished()])
    assert flow.handle(KeyPressed("3")) == [CancelInputTimer(), Play(("invalid_key", "question"))]
    assert flow.state is State.ASKING


def test_silence_repeats_the_question_max_repeats_times_then_says_goodbye() -> None:
    flow, _ = run([Answered(), PromptFinished()])
    plays = []
    for _ in range(SETTINGS.max_repeats):
        plays.append(flow.handle(InputTimeout()))
        flow.handle(PromptFinished())
    assert plays == [[Play(("question",))]] * SETTINGS.max_repeats
    assert flow.handle(InputTimeout()) == [
        RecordOutcome(Outcome.NO_INPUT, None),
        Play(("goodbye_no_input",)),
    ]


def test_zero_repeats_gives_up_after_the_first_silence() -> None:
    flow, _ = run([Answered(), PromptFinished()], FlowSettings(3.0, 0))
    assert flow.handle(InputTimeout())[0] == RecordOutcome(Outcome.NO_INPUT, None)


def test_keys_after_the_answer_change_nothing() -> None:
    flow, _ = run([Answered(), KeyPressed("1")])
    assert flow.handle(KeyPressed("2")) == []
    assert flow.recorded == RecordOutcome(Outcome.SATISFIED, "1")


def test_remote_hangup_does_not_send_bye_but_too_long_does() -> None:
    _, hung = run([Answered(), RemoteHangup()])
    _, long = run([Answered(), CallTooLong()])
    assert Hangup() not in hung
    assert long[-1] == Hangup()


def test_hangup_before_answer_records_nothing() -> None:
    flow, actions = run([RemoteHangup()])
    assert actions == [] and flow.state is State.DONE and flow.recorded is None


def test_late_events_after_the_end_are_ignored() -> None:
    flow, _ = run([Answered(), KeyPressed("1"), PromptFinished()])
    for late in (RemoteHangup(), KeyPressed("2"), PromptFinished(), CallTooLong()):
        assert flow.handle(late) == []


@pytest.mark.parametrize(
    ("events", "bad"),
    [
        ([], PromptFinished()),
        ([], KeyPressed("1")),
        ([], InputTimeout()),
        ([Answered()], Answered()),
        ([Answered()], InputTimeout()),
        ([Answered(), KeyPressed("1")], InputTimeout()),
        ([Answered(), KeyPressed("1"), PromptFinished()], Answered()),
    ],
    ids=[
        "prompt-end-before-answer",
        "key-before-answer",
        "timeout-before-answer",
        "answered-twice",
        "timeout-while-asking",
        "timeout-while-closing",
        "answered-after-end",
    ],
)
def test_illegal_events_raise_one_error_type(events: list[Event], bad: Event) -> None:
    flow, _ = run(events)
    with pytest.raises(CallFlowError, match=type(bad).__name__):
        flow.handle(bad)
