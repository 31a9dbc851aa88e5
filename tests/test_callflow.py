"""Every path through the survey call, driven event by event (no pyVoIP, no clock)."""

from __future__ import annotations

from datetime import date

import pytest

from ivr.core.call_events import (
    Answered,
    CallTooLong,
    CancelInputTimer,
    Event,
    FinishComment,
    Hangup,
    InputTimeout,
    KeyPressed,
    Play,
    PromptFinished,
    RecordingStopped,
    RecordOutcome,
    RemoteHangup,
    StartInputTimer,
    StartRecording,
    StopPlayback,
    TransferAccepted,
    TransferFailed,
)
from ivr.core.call_script import FlowSettings, OperatorMode, RequestInfo, request_parts
from ivr.core.callflow import _TABLE, Outcome, State, SurveyCall
from ivr.core.errors import CallFlowError

SETTINGS = FlowSettings(input_timeout_s=5.0, max_repeats=2)
REQ = RequestInfo("s1", "4071")
Q = ("question", "question_rest", "question_opt_out")
OPENING = Play(("greeting", "about_request", "number:4071", *Q))
N, S, U, OUT = Outcome.NO_INPUT, Outcome.SATISFIED, Outcome.UNSATISFIED, Outcome.OPTED_OUT


def run(
    events: list[Event],
    settings: FlowSettings = SETTINGS,
    requests: tuple[RequestInfo, ...] = (REQ,),
) -> tuple[SurveyCall, list[object]]:
    flow = SurveyCall(requests, settings)
    actions: list[object] = []
    for event in events:
        actions.extend(flow.handle(event))
    return flow, actions


def outcomes_of(actions: list[object]) -> list[RecordOutcome]:
    return [a for a in actions if isinstance(a, RecordOutcome)]


A, P, T, H, L = Answered(), PromptFinished(), InputTimeout(), RemoteHangup(), CallTooLong()


def K(key: str) -> KeyPressed:
    return KeyPressed(key)


CASES = [
    # (events, expected outcome, key, reason)
    ([A, P, K("1"), P], S, "1", None),
    ([A, P, K("2"), P], U, "2", None),
    ([A, K("1"), P], S, "1", None),
    ([A, K("2"), P], U, "2", None),
    ([A, P, K("7"), P, K("2")], U, "2", None),
    ([A, P, T, P, K("1")], S, "1", None),
    ([A, P, K("0"), P, K("0"), P, K("0"), K("1")], S, "1", None),  # 0 is not a wasted repeat
    ([A, K("9"), P], OUT, "9", None),
    ([A, P, K("9")], OUT, "9", None),
    ([A] + [P, T] * 3 + [P], N, None, None),
    ([A, P, K("5"), P, K("#"), P, K("*"), P], N, None, None),
    ([A, H], N, None, "remote_hangup"),
    ([A, P, H], N, None, "remote_hangup"),
    ([A, P, RemoteHangup("no_media")], N, None, "no_media"),
    ([A, P, L], N, None, "max_call_length"),
    ([A, L], N, None, "max_call_length"),
    # The answer is kept when the citizen hangs up during "thank you".
    ([A, K("2"), H], U, "2", None),
    ([A, K("1"), L], S, "1", None),
]
IDS = [
    "satisfied-after-question",
    "unsatisfied-after-question",
    "satisfied-barge-in",
    "unsatisfied-barge-in",
    "wrong-key-then-2",
    "silence-then-1",
    "repeats-then-1",
    "opt-out-barge-in",
    "opt-out-listening",
    "silence-to-no-input",
    "wrong-keys-to-no-input",
    "hangup-during-opening",
    "hangup-while-listening",
    "no-media",
    "too-long-listening",
    "too-long-asking",
    "hangup-during-thanks-keeps-answer",
    "too-long-during-thanks-keeps-answer",
]


@pytest.mark.parametrize(("events", "outcome", "key", "reason"), CASES, ids=IDS)
def test_outcome_of_each_path(
    events: list[Event], outcome: Outcome, key: str | None, reason: str | None
) -> None:
    flow, actions = run(events)
    assert outcomes_of(actions) == [RecordOutcome("s1", outcome, key, reason)]
    assert flow.recorded == outcomes_of(actions)


def test_opening_names_the_request_and_asks() -> None:
    _, actions = run([A])
    assert actions == [OPENING]


def test_opening_reads_the_date_and_a_known_category() -> None:
    req = RequestInfo("s1", "905", date(2026, 11, 26), "Уборка двора")
    assert request_parts(req) == (
        "about_request",
        "number:905",
        "day_26",
        "month_11",
        "category_yard_cleaning",
    )


def test_an_unknown_category_is_skipped() -> None:
    req = RequestInfo("s1", "905", None, "Что-то редкое")
    assert request_parts(req) == ("about_request", "number:905")


def test_without_opt_out_9_is_a_wrong_key_and_not_offered() -> None:
    settings = FlowSettings(5.0, 2, offer_opt_out=False)
    flow, actions = run([A, P], settings)
    assert actions[0] == Play(("greeting", "about_request", "number:4071", "question",
                               "question_rest"))  # fmt: skip
    assert flow.handle(K("9")) == [
        CancelInputTimer(),
        Play(("invalid_key", "question", "question_rest")),
    ]


def test_prompt_end_starts_the_input_timer() -> None:
    _, actions = run([A, P])
    assert actions[-1] == StartInputTimer(5.0)


@pytest.mark.parametrize(
    ("key", "closing"),
    [("1", "thanks_satisfied"), ("2", "thanks_unsatisfied")],
    ids=["satisfied", "unsatisfied"],
)
def test_outcome_is_recorded_before_the_closing_prompt(key: str, closing: str) -> None:
    flow, _ = run([A, P])
    after_key = flow.handle(K(key))
    assert after_key == [
        CancelInputTimer(),
        RecordOutcome("s1", S if key == "1" else U, key),
        Play((closing,)),
    ]
    assert flow.handle(P) == [Hangup()]
    assert flow.state is State.DONE


def test_key_during_prompt_stops_it_at_once() -> None:
    flow, _ = run([A])
    assert flow.handle(K("2"))[0] == StopPlayback()


def test_wrong_key_says_so_and_asks_again() -> None:
    flow, _ = run([A, P])
    assert flow.handle(K("3")) == [CancelInputTimer(), Play(("invalid_key", *Q))]
    assert flow.state is State.ASKING


def test_zero_repeats_the_request_and_question() -> None:
    flow, _ = run([A, P])
    assert flow.handle(K("0")) == [
        CancelInputTimer(),
        Play(("about_request", "number:4071", *Q)),
    ]
    assert flow.state is State.ASKING


def test_nine_opts_out_every_request_of_the_call_before_the_goodbye() -> None:
    two = (REQ, RequestInfo("s2", "77"))
    flow, _ = run([A, P], requests=two)
    assert flow.handle(K("9")) == [
        CancelInputTimer(),
        RecordOutcome("s1", OUT, "9"),
        RecordOutcome("s2", OUT, "9"),
        Play(("opted_out_goodbye",)),
    ]


def test_silence_repeats_the_question_max_repeats_times_then_says_goodbye() -> None:
    flow, _ = run([A, P])
    plays = []
    for _ in range(SETTINGS.max_repeats):
        plays.append(flow.handle(T))
        flow.handle(P)
    assert plays == [[Play(Q)]] * SETTINGS.max_repeats
    assert flow.handle(T) == [RecordOutcome("s1", N, None), Play(("goodbye_no_input",))]


def test_zero_repeats_gives_up_after_the_first_silence() -> None:
    flow, _ = run([A, P], FlowSettings(3.0, 0))
    assert flow.handle(T)[0] == RecordOutcome("s1", N, None)


def test_keys_after_the_answer_change_nothing() -> None:
    flow, _ = run([A, K("1")])
    assert flow.handle(K("2")) == []
    assert flow.recorded == [RecordOutcome("s1", S, "1")]


@pytest.mark.parametrize("state", list(State), ids=[s.value for s in State])
def test_a_key_is_awaited_exactly_where_a_key_does_something(state: State) -> None:
    """In-band detection (issue 11) runs only while ``awaits_key``: during prompts (barge-in),
    listening, and the comment; not before the answer, in the goodbye or after."""
    flow = SurveyCall((RequestInfo("s1", "4071"),), FlowSettings(4.0, 2), state=state)
    waits = {State.ASKING, State.LISTENING, State.COMMENT_INVITE, State.RECORDING}
    assert flow.awaits_key is (state in waits)


# ---- several requests in one call -----------------------------------------------------------
TWO = (RequestInfo("a", "11", date(2026, 11, 26)), RequestInfo("b", "22", None, "Лифт"))


def test_two_requests_are_asked_in_turn_each_answer_stored_at_once() -> None:
    flow, actions = run([A], requests=TWO)
    assert actions == [Play(("greeting", "about_request", "number:11", "day_26", "month_11", *Q))]
    assert flow.handle(K("2")) == [
        StopPlayback(),
        RecordOutcome("a", U, "2"),
        Play(("rework_noted", "next_request", "about_request", "number:22",
              "category_lift", *Q)),
    ]  # fmt: skip
    flow.handle(P)
    assert flow.handle(K("1")) == [
        CancelInputTimer(),
        RecordOutcome("b", S, "1"),
        Play(("thanks_satisfied",)),
    ]


def test_satisfied_then_next_request_acknowledges_briefly() -> None:
    flow, _ = run([A, P], requests=TWO)
    assert flow.handle(K("1"))[2] == Play(
        ("answer_noted", "next_request", "about_request", "number:22",
         "category_lift", *Q)
    )  # fmt: skip


def test_repeats_are_counted_per_request() -> None:
    flow, _ = run([A, P, T, P, T, P, K("1"), P], requests=TWO)  # 2 repeats used on "a"
    assert flow.handle(T) == [Play(Q)]  # "b" has its own repeats


def test_hangup_after_the_first_answer_closes_the_rest_as_no_input() -> None:
    _, actions = run([A, K("1"), P, H], requests=TWO)
    assert outcomes_of(actions) == [
        RecordOutcome("a", S, "1"),
        RecordOutcome("b", N, None, "remote_hangup"),
    ]


def test_silence_gives_up_on_every_remaining_request() -> None:
    _, actions = run([A, K("1"), P] + [T, P] * 2 + [T], requests=TWO)
    assert outcomes_of(actions)[-1] == RecordOutcome("b", N, None)
    assert actions[-1] == Play(("goodbye_no_input",))


def test_too_long_closes_politely_then_hangs_up() -> None:
    flow, actions = run([A, K("1"), P, L], requests=TWO)
    assert actions[-2:] == [RecordOutcome("b", N, None, "max_call_length"),
                            Play(("goodbye_time_up",))]  # fmt: skip
    assert flow.state is State.CLOSING
    assert flow.handle(L) == [Hangup()]
    assert flow.state is State.DONE


def test_a_call_needs_a_request() -> None:
    with pytest.raises(CallFlowError):
        SurveyCall((), SETTINGS)


# ---- the edges of the table -----------------------------------------------------------------
def test_remote_hangup_does_not_send_bye_but_too_long_does() -> None:
    _, hung = run([A, H])
    _, long = run([A, L, P])
    assert Hangup() not in hung
    assert long[-1] == Hangup()


def test_hangup_before_answer_records_nothing() -> None:
    flow, actions = run([H])
    assert actions == [] and flow.state is State.DONE and flow.recorded == []


def test_too_long_before_answer_hangs_up_and_records_nothing() -> None:
    flow, actions = run([L])
    assert actions == [Hangup()] and flow.recorded == []


def test_late_events_after_the_end_are_ignored() -> None:
    flow, _ = run([A, K("1"), P])
    for late in (H, K("2"), P, L):
        assert flow.handle(late) == []


@pytest.mark.parametrize(
    ("events", "bad"),
    [
        ([], P),
        ([], K("1")),
        ([], T),
        ([A], A),
        ([A], T),
        ([A, K("1")], T),
        ([A, K("1"), P], A),
        ([A, K("1"), P], T),
    ],
    ids=[
        "prompt-end-before-answer",
        "key-before-answer",
        "timeout-before-answer",
        "answered-twice",
        "timeout-while-asking",
        "timeout-while-closing",
        "answered-after-end",
        "timeout-after-end",
    ],
)
def test_illegal_events_raise_one_error_type(events: list[Event], bad: Event) -> None:
    flow, _ = run(events)
    with pytest.raises(CallFlowError, match=type(bad).__name__):
        flow.handle(bad)


# Events that reach each state, to check the table covers exactly what is listed.
_REACH: dict[State, list[Event]] = {
    State.WAITING_ANSWER: [],
    State.ASKING: [A],
    State.LISTENING: [A, P],
    State.CLOSING: [A, K("1")],
    State.DONE: [A, K("1"), P],
    State.COMMENT_INVITE: [A, K("2")],
    State.RECORDING: [A, K("2"), P],
    State.TRANSFER_ANNOUNCE: [A, K("3")],
    State.TRANSFERRING: [A, K("3"), P],
}
_SAMPLE: list[Event] = [A, P, K("1"), T, H, L, RecordingStopped("silence"), TransferAccepted(),
                        TransferFailed("603 Declined")]  # fmt: skip


@pytest.mark.parametrize(
    ("state", "event"),
    [(s, e) for s in State for e in _SAMPLE],
    ids=[f"{s.value}-{type(e).__name__}" for s in State for e in _SAMPLE],
)
def test_every_state_event_pair_is_either_a_transition_or_an_error(
    state: State, event: Event
) -> None:
    commenting = FlowSettings(5.0, 2, voice_comment=True, operator=OperatorMode.TRANSFER)
    flow, _ = run(_REACH[state], commenting)
    assert flow.state is state
    if (state, type(event)) in _TABLE:
        flow.handle(event)  # a listed transition never raises
    else:
        with pytest.raises(CallFlowError):
            flow.handle(event)


# ---- the spoken comment -----------------------------------------------------------------------
COMMENTING = FlowSettings(5.0, 2, voice_comment=True, comment_max_s=60, comment_silence_s=3,
                          comment_no_speech_s=5)  # fmt: skip
INVITE = Play(("comment_invite", "tone"))
REC = StartRecording("s1", 60, 3, 5)
FIN = FinishComment("s1")
STOPPED = RecordingStopped("silence")
THANKS_U = Play(("thanks_unsatisfied",))
COMMENT_CASES = [
    # events after the opening; the actions they give (the opening's Play left out)
    ([K("2")], [StopPlayback(), RecordOutcome("s1", U, "2", None, True), INVITE]),
    ([K("2"), P], [StopPlayback(), RecordOutcome("s1", U, "2", None, True), INVITE, REC]),
    ([K("2"), P, STOPPED], [StopPlayback(), RecordOutcome("s1", U, "2", None, True), INVITE, REC,
                            FIN, THANKS_U]),
    ([K("2"), P, RecordingStopped("no_speech")],
     [StopPlayback(), RecordOutcome("s1", U, "2", None, True), INVITE, REC, FIN, THANKS_U]),
    ([K("2"), P, K("5")], [StopPlayback(), RecordOutcome("s1", U, "2", None, True), INVITE, REC,
                           FIN, THANKS_U]),
    # a key during the invitation: no comment
    ([K("2"), K("1")], [StopPlayback(), RecordOutcome("s1", U, "2", None, True), INVITE,
                        StopPlayback(), FIN, THANKS_U]),
    # hang-up while speaking: what was said is kept, nothing more recorded
    ([K("2"), P, H], [StopPlayback(), RecordOutcome("s1", U, "2", None, True), INVITE, REC, FIN]),
    ([K("2"), H], [StopPlayback(), RecordOutcome("s1", U, "2", None, True), INVITE, FIN]),
    ([K("2"), P, L], [StopPlayback(), RecordOutcome("s1", U, "2", None, True), INVITE, REC, FIN,
                      Play(("goodbye_time_up",))]),
    # satisfied: no comment asked
    ([K("1")], [StopPlayback(), RecordOutcome("s1", S, "1"), Play(("thanks_satisfied",))]),
]  # fmt: skip
COMMENT_IDS = ["invite", "recording", "silence-ends", "no-speech", "key-ends",
               "key-during-invite", "hangup-recording", "hangup-invite", "too-long",
               "satisfied-no-comment"]  # fmt: skip


@pytest.mark.parametrize(("events", "expected"), COMMENT_CASES, ids=COMMENT_IDS)
def test_comment_paths(events: list[Event], expected: list[object]) -> None:
    flow = SurveyCall((REQ,), COMMENTING)
    flow.handle(A)
    actions: list[object] = []
    for event in events:
        actions.extend(flow.handle(event))
    assert actions == expected
    # the answer is stored once, before the invitation, whatever happens next
    assert [r.outcome for r in flow.recorded] == [r.outcome for r in outcomes_of(expected)]


def test_comment_states_finish_the_call() -> None:
    flow = SurveyCall((REQ,), COMMENTING)
    for event in (A, K("2"), P, STOPPED):
        flow.handle(event)
    assert flow.state is State.CLOSING
    assert flow.handle(P) == [Hangup()]
    assert flow.state is State.DONE
    assert flow.handle(RecordingStopped("silence")) == []  # late


def test_comment_then_next_request_and_hangup_marks_the_rest() -> None:
    flow = SurveyCall(TWO, COMMENTING)
    flow.handle(A)
    flow.handle(K("2"))
    flow.handle(P)
    assert flow.handle(STOPPED) == [
        FinishComment("a"),
        Play(("rework_noted", "next_request", "about_request", "number:22", "category_lift",
              *Q)),
    ]  # fmt: skip
    flow.handle(K("2"))
    flow.handle(P)
    assert flow.handle(H) == [FinishComment("b")]
    assert [r.survey_id for r in flow.recorded] == ["a", "b"]


def test_two_requests_hangup_during_first_comment_ends_the_second_as_no_input() -> None:
    flow = SurveyCall(TWO, COMMENTING)
    for event in (A, K("2"), P):
        flow.handle(event)
    assert flow.handle(H) == [FinishComment("a"), RecordOutcome("b", N, None, "remote_hangup")]
