"""The call runner over a fake line and a fake clock: timing and the order of effects."""

from __future__ import annotations

from datetime import datetime

import pytest

from ivr.campaign import metrics
from ivr.campaign.call_runner import CallPlan, CallReport, RunnerSettings, run_call
from ivr.core.call_events import RecordOutcome
from ivr.core.call_script import FlowSettings, RequestInfo
from ivr.core.callflow import Outcome
from ivr.core.policy import disposition
from ivr.sip.api import EndedBy, KeyPress, KeySource, LineState
from tests.fakes import FakeCall, FakeClock, FakePhone, FakePrompts

SETTINGS = RunnerSettings(ring_timeout_s=20, max_call_s=60, flow=FlowSettings(4.0, 2))
PLAN = CallPlan(dial_string="375291234567", requests=(RequestInfo("s1", "4071"),), language="ru")
# FakePrompts: one second per part. Opening: greeting, about_request, number, question,
# question_rest, question_opt_out = 6 s (answered at 0.5 s, so it ends at 6.8 s with the tail).
QUESTION_S = 3


def run(
    call: FakeCall, clock: FakeClock, settings: RunnerSettings = SETTINGS, plan: CallPlan = PLAN
) -> tuple[CallReport, list[tuple[RecordOutcome, list[str]]]]:
    recorded: list[tuple[RecordOutcome, list[str]]] = []

    def sink(rec: RecordOutcome, answered_at: datetime | None) -> None:
        recorded.append((rec, list(call.log)))

    report = run_call(FakePhone([call]), plan, FakePrompts(), settings, clock, sink)
    return report, recorded


@pytest.mark.parametrize(
    ("keys_at", "outcome", "key"),
    [
        ([(6.0, "1")], Outcome.SATISFIED, "1"),  # listening after the opening
        ([(2.0, "2")], Outcome.UNSATISFIED, "2"),  # barge-in during the opening
        ([(6.0, "5"), (9.0, "2")], Outcome.UNSATISFIED, "2"),
        ([(6.0, "0"), (8.0, "1")], Outcome.SATISFIED, "1"),  # repeat, then answer
        ([(6.0, "9")], Outcome.OPTED_OUT, "9"),
        ([], Outcome.NO_INPUT, None),
    ],
    ids=["satisfied", "barge-in-unsatisfied", "wrong-then-2", "repeat-then-1", "opt-out", "silent"],
)
def test_outcomes(keys_at: list[tuple[float, str]], outcome: Outcome, key: str | None) -> None:
    clock = FakeClock()
    call = FakeCall(clock, keys_at=keys_at)
    report, recorded = run(call, clock)
    assert report.outcomes == [RecordOutcome("s1", outcome, key)]
    assert [r for r, _ in recorded] == [RecordOutcome("s1", outcome, key)]
    assert report.answered_at is not None and report.prompt_version == "ru-test"
    assert call.log[-2:] == ["hangup", "ended:local_hangup"]
    # in-band detection on from the answer (barge-in) until the goodbye, then off
    assert call.listening == [True, False]


def test_keys_and_their_sources_are_reported() -> None:
    clock = FakeClock()
    call = FakeCall(clock, keys_at=[(6.0, "5"), (9.0, "1")], key_source=KeySource.INBAND)
    report, _ = run(call, clock)
    assert (report.keys, report.key_sources) == ("51", "bb")


def test_outcome_is_stored_before_the_closing_prompt_and_hangup() -> None:
    clock = FakeClock()
    call = FakeCall(clock, keys_at=[(6.0, "2")])
    _, recorded = run(call, clock)
    (_, log_at_record) = recorded[0]
    assert "hangup" not in log_at_record
    assert log_at_record.count("play:1s") == 0  # the thanks prompt had not started yet


def test_several_requests_are_asked_one_after_another() -> None:
    clock = FakeClock()
    plan = CallPlan("375291234567", (RequestInfo("a", "11"), RequestInfo("b", "22")), "ru")
    call = FakeCall(clock, keys_at=[(6.0, "2"), (20.0, "1")])
    report, recorded = run(call, clock, plan=plan)
    assert [r for r, _ in recorded] == [
        RecordOutcome("a", Outcome.UNSATISFIED, "2"),
        RecordOutcome("b", Outcome.SATISFIED, "1"),
    ]
    assert report.keys == "21"


def test_silence_asks_again_then_no_input_within_the_expected_time() -> None:
    clock = FakeClock()
    call = FakeCall(clock)
    report, _ = run(call, clock)
    # opening 6 s, then (4 s silence + question) twice, 4 s silence, 1 s goodbye, + tails
    base = 0.5 + 6 + 4 + (QUESTION_S + 4) * 2 + 1
    assert base <= clock.t <= base + 2.5
    assert report.outcomes == [RecordOutcome("s1", Outcome.NO_INPUT, None)]


def test_barge_in_stops_the_prompt() -> None:
    clock = FakeClock()
    call = FakeCall(clock, keys_at=[(2.0, "1")])
    run(call, clock)
    assert call.log.index("stop_audio") < call.log.index("hangup")
    assert call.log[:2] == ["stop_audio", "play:6s"]


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
    assert report.outcomes == [RecordOutcome("s1", Outcome.NO_INPUT, None, "remote_hangup")]
    assert "hangup" not in call.log


def test_key_then_immediate_hangup_keeps_the_key() -> None:
    clock = FakeClock()
    call = FakeCall(clock, keys_at=[(6.0, "2")], bye_at=6.0)
    report, _ = run(call, clock)
    assert report.outcomes == [RecordOutcome("s1", Outcome.UNSATISFIED, "2")]


def test_no_rtp_for_the_media_timeout_ends_the_call() -> None:
    clock = FakeClock()
    call = FakeCall(clock, media_stops_at=3.0)
    settings = RunnerSettings(ring_timeout_s=20, max_call_s=120, flow=FlowSettings(30.0, 5))
    report, _ = run(call, clock, settings)
    assert report.outcomes == [RecordOutcome("s1", Outcome.NO_INPUT, None, "no_media")]
    assert 3.0 + 15 <= clock.t <= 3.0 + 15.2
    assert "hangup" in call.log


def test_max_call_length_says_goodbye_then_hangs_up_by_the_limit() -> None:
    clock = FakeClock()
    call = FakeCall(clock)
    settings = RunnerSettings(
        ring_timeout_s=20, max_call_s=12, flow=FlowSettings(30.0, 5), closing_grace_s=4
    )
    report, _ = run(call, clock, settings)
    assert report.outcomes == [RecordOutcome("s1", Outcome.NO_INPUT, None, "max_call_length")]
    # the goodbye (1 s) starts 4 s before the limit and ends well within it
    assert call.log[-4:] == ["stop_audio", "play:1s", "hangup", "ended:local_hangup"]
    assert 8 + 1 <= clock.t - 0.5 <= 12


def test_max_call_length_hangs_up_even_if_the_goodbye_would_run_over() -> None:
    clock = FakeClock()
    call = FakeCall(clock)
    settings = RunnerSettings(
        ring_timeout_s=20, max_call_s=12, flow=FlowSettings(30.0, 5), closing_grace_s=0.5
    )
    run(call, clock, settings)
    assert 12 <= clock.t - 0.5 <= 12.2
    assert call.log[-2:] == ["hangup", "ended:local_hangup"]


# ---- the spoken comment: key 2 at 3 s, invitation + tone (2 s) end at 5.3 s with the tail ----
COMMENTING = RunnerSettings(
    ring_timeout_s=20,
    max_call_s=120,
    flow=FlowSettings(4.0, 2, voice_comment=True, comment_max_s=20, comment_silence_s=3,
                      comment_no_speech_s=4),
)  # fmt: skip


def run_comment(call: FakeCall, clock: FakeClock) -> tuple[CallReport, list[object]]:
    kept: list[object] = []
    report = run_call(FakePhone([call]), PLAN, FakePrompts(), COMMENTING, clock,
                      lambda rec, at: kept.append(rec), None,
                      lambda sid, recording: kept.append((sid, recording)))  # fmt: skip
    return report, kept


@pytest.mark.parametrize(
    ("talk", "keys_at", "bye_at", "seconds"),
    [
        ([(7.0, 10.0)], [(3.0, "2")], None, 3.0),  # ends on 3 s of silence after speech
        ([(7.0, 10.0)], [(3.0, "2"), (11.0, "#")], None, 3.0),  # ends on a key
        ([(7.0, 10.0)], [(3.0, "2")], 9.0, 2.0),  # hang-up mid-comment: the part said is kept
        ([(6.0, 40.0)], [(3.0, "2")], None, 19.3),  # comment_max_s from the tone (5.3 s)
    ],
    ids=["silence-after-speech", "key", "hangup-mid-comment", "max-length"],
)
def test_the_comment_is_what_the_citizen_said(
    talk: list[tuple[float, float]],
    keys_at: list[tuple[float, str]],
    bye_at: float | None,
    seconds: float,
) -> None:
    clock = FakeClock()
    call = FakeCall(clock, keys_at=keys_at, talk=talk, bye_at=bye_at)
    report, kept = run_comment(call, clock)
    rec, (survey_id, recording) = kept
    assert rec == RecordOutcome("s1", Outcome.UNSATISFIED, "2", None, True)
    assert survey_id == "s1" and recording is not None
    assert abs(recording.duration_s - seconds) <= 0.2  # trimmed to the speech (+ 60 ms pads)
    # recording started only after the invitation and the tone had played
    assert call.log.index("start_capture") > call.log.index("play:2s")


def test_silence_after_the_tone_is_no_comment() -> None:
    clock = FakeClock()
    call = FakeCall(clock, keys_at=[(3.0, "2")])
    report, kept = run_comment(call, clock)
    assert kept[1] == ("s1", None)
    assert report.outcomes == [RecordOutcome("s1", Outcome.UNSATISFIED, "2", None, True)]
    assert call.log[-2:] == ["hangup", "ended:local_hangup"]


class CrossedCall(FakeCall):
    """Rings; our CANCEL crosses its 200 OK: the adapter ACKs and BYEs it, and reports the
    line ended by our CANCEL with final status 200."""

    @property
    def state(self) -> LineState:
        return LineState.ENDED if self._ended else LineState.RINGING

    def cancel(self) -> None:
        self.log.append("cancel")
        if self._ended is None:
            self._end(EndedBy.LOCAL_CANCEL, 200)


def test_a_200_that_crossed_our_cancel_is_not_an_answer() -> None:
    """Stored before as answered (survey no_input, remote_hangup, the day's one answered call
    spent) though nobody heard anything and we hung up."""
    clock = FakeClock()
    call = CrossedCall(clock, answer_at=None)
    report, recorded = run(call, clock)
    assert not report.answered and report.answered_at is None and recorded == []
    assert (report.final_status, report.ended_by) == (200, EndedBy.LOCAL_CANCEL)
    assert disposition(report.answered, report.final_status, report.ended_by) == "no_answer"


def test_answered_and_hung_up_between_two_polls_is_still_an_answer() -> None:
    clock = FakeClock()
    call = FakeCall(clock, answer_at=0.5, bye_at=0.5)
    report, _ = run(call, clock)
    assert report.answered and report.ended_by is EndedBy.REMOTE_BYE


class CountedCall(FakeCall):
    """Counts the runner's looks at the line and notes when each key was taken."""

    looks: int = 0
    taken_at: list[float]

    def take_keys(self) -> list[KeyPress]:
        self.looks += 1
        keys = super().take_keys()
        self.taken_at += [self.clock.monotonic()] * len(keys)
        return keys


def test_in_a_call_the_runner_waits_for_a_key_instead_of_polling() -> None:
    """Issue 11: 300 runners looking at their lines every 20 ms kept the interpreter from the
    media loop. In a call the runner now waits for a key or its next deadline (looking at
    the line at least every ``idle_wait_s``); a key still ends the wait at once."""
    clock = FakeClock()
    call = CountedCall(clock, keys_at=[(3.217, "0"), (14.05, "1")])
    call.taken_at = []
    report, _ = run(call, clock, SETTINGS)
    assert report.keys == "01"
    assert call.taken_at == [pytest.approx(3.217), pytest.approx(14.05)]
    # a look per 20 ms would be 50 a second
    assert call.looks < clock.t / SETTINGS.idle_wait_s + 40 < clock.t * 15


def test_what_a_calls_media_dropped_reaches_the_nodes_metrics() -> None:
    """An operator sees forged or broken RTP in /metrics (ivr_rtp_dropped_total by kind)."""
    clock = FakeClock()
    call = FakeCall(clock, keys_at=[(6.0, "1")])
    call.media_counters.received, call.media_counters.foreign = 300, 3
    call.media_counters.runt = 1
    before = {k: metrics.RTP_DROPPED.labels(kind=k)._value.get() for k in metrics.RTP_DROP_KINDS}
    run(call, clock)
    after = {k: metrics.RTP_DROPPED.labels(kind=k)._value.get() for k in metrics.RTP_DROP_KINDS}
    assert {k: after[k] - before[k] for k in after} == {"runt": 1, "malformed": 0, "foreign": 3}
    assert b'ivr_rtp_dropped_total{kind="foreign"}' in metrics.exposition()[0]
