"""Runs one survey call: turns what the SIP line does into call-flow events, and carries out
the actions the flow returns. No decisions here beyond timing (ring timeout, prompt end,
input timer, maximum call length, far end silent on RTP).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol, runtime_checkable

from ivr.campaign import metrics
from ivr.core.call_events import (
    Action,
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
    Transfer,
    TransferAccepted,
    TransferFailed,
)
from ivr.core.call_script import FlowSettings, OperatorMode, RequestInfo
from ivr.core.callflow import State, SurveyCall
from ivr.core.clock import Clock
from ivr.core.comment_audio import CommentRecorder, Recording, StopReason
from ivr.core.vocabulary import Reason
from ivr.sip.api import EndedBy, LineState, OutboundCall, SipPhone

log = logging.getLogger(__name__)

BYTES_PER_SECOND = 8000  # u8 PCM at 8 kHz
# Playback is paced by the RTP sender; allow for its start-up and the far end's jitter buffer.
PROMPT_TAIL_S = 0.3
# A recording also ends by the clock this long after its limit (the far end may stop sending
# RTP while silent, so the received samples alone would never reach it).
RECORDING_CLOCK_SLACK_S = 2.0


class PromptRenderer(Protocol):
    def render(self, lang: str, parts: Sequence[str]) -> bytes: ...

    def version(self, lang: str) -> str: ...


@runtime_checkable
class Linear16Renderer(Protocol):
    """A renderer that also gives 16-bit audio (played with no 8-bit step before G.711)."""

    def render_linear16(self, lang: str, parts: Sequence[str]) -> bytes: ...


@dataclass(frozen=True)
class CallPlan:
    """One call: the requests of one citizen, asked one after another, in ``language``."""

    dial_string: str
    requests: tuple[RequestInfo, ...]
    language: str


@dataclass(frozen=True)
class OperatorLine:
    """Where 3 "talk to an operator" goes (a SIP URI) and whether someone is there at a
    moment (``transfer.hours``; judged when the call is answered)."""

    target: str
    is_open: Callable[[datetime], bool]


@dataclass(frozen=True)
class RunnerSettings:
    ring_timeout_s: float
    max_call_s: float
    flow: FlowSettings
    poll_s: float = 0.02
    # In a call, the runner waits for a key (which ends the wait at once) or the next timer,
    # but looks at the line at least this often: how late a hang-up or a dead line is seen.
    # (300 calls polling every 20 ms kept the interpreter from the media loop: issue 11.)
    idle_wait_s: float = 0.2
    # No RTP from the far end this long: the line is dead, end the call.
    media_timeout_s: float = 15.0
    # The polite "time is up" goodbye starts this long before max_call_s (the hard end).
    closing_grace_s: float = 10.0
    # After CANCEL (or BYE) the line should end quickly; past this we stop waiting for it.
    teardown_grace_s: float = 6.0
    # ivr.operator_transfer on: the operators' line; None: 3 is not a key of the survey.
    operator: OperatorLine | None = None


@dataclass
class CallReport:
    call_id: str | None
    final_status: int | None = None
    final_reason: str | None = None
    ended_by: EndedBy | None = None
    answered_at: datetime | None = None
    ended_at: datetime | None = None
    keys: str = ""
    key_sources: str = ""
    outcomes: list[RecordOutcome] = field(default_factory=list)
    prompt_version: str | None = None

    @property
    def answered(self) -> bool:
        return self.answered_at is not None


OutcomeSink = Callable[[RecordOutcome, datetime | None], None]
# Called with the answer time the moment the 200 OK is seen, before anything plays.
AnswerSink = Callable[[datetime], None]

# The spoken comment of a survey once it is over: the recording, or None (nothing said).
CommentSink = Callable[[str, Recording | None], None]


def _no_comment_sink(survey_id: str, recording: Recording | None) -> None:
    log.warning("survey %s: a comment was recorded but nobody keeps it", survey_id)


class _CallDriver:
    def __init__(
        self,
        call: OutboundCall,
        plan: CallPlan,
        prompts: PromptRenderer,
        settings: RunnerSettings,
        clock: Clock,
        on_outcome: OutcomeSink,
        on_answer: AnswerSink | None = None,
        on_comment: CommentSink = _no_comment_sink,
    ) -> None:
        self.call = call
        self.on_answer = on_answer
        self.on_comment = on_comment
        self.recorder: CommentRecorder | None = None
        self.recording_until: float | None = None
        self.plan = plan
        self.prompts = prompts
        self.settings = settings
        self.clock = clock
        self.on_outcome = on_outcome
        self.flow = SurveyCall(plan.requests, settings.flow)
        self.report = CallReport(call_id=call.call_id)
        self.playing_until: float | None = None
        self.timer_at: float | None = None
        self.answered_mono: float | None = None
        self.too_long_fed = False
        self.key_taken_at: float | None = None  # when the last key came off the line
        self.listening: bool | None = None  # what the line was last told (None: nothing yet)

    def feed(self, event: Event) -> None:
        """Every event of a call goes through here: the one place its transitions are logged."""
        before = self.flow.state
        actions = self.flow.handle(event)
        if log.isEnabledFor(logging.DEBUG):
            log.debug(
                "call %s: %s on %s -> %s: %s",
                self.call.call_id,
                type(event).__name__,
                before.value,
                self.flow.state.value,
                ", ".join(type(a).__name__ for a in actions) or "-",
            )
        for action in actions:
            self.perform(action)
        awaits = self.flow.awaits_key
        if awaits is not self.listening:  # in-band detection only while a key is awaited
            self.listening = awaits
            self.call.listen_for_keys(awaits)

    def perform(self, action: Action) -> None:
        now = self.clock.monotonic()
        if isinstance(action, Play):
            self.call.stop_audio()
            play16 = getattr(self.call, "play_linear16", None)
            if isinstance(self.prompts, Linear16Renderer) and play16 is not None:
                audio = self.prompts.render_linear16(self.plan.language, action.parts)
                play16(audio)
                seconds = len(audio) / (2 * BYTES_PER_SECOND)
            else:
                audio = self.prompts.render(self.plan.language, action.parts)
                self.call.play(audio)
                seconds = len(audio) / BYTES_PER_SECOND
            self.playing_until = now + seconds + PROMPT_TAIL_S
        elif isinstance(action, StopPlayback):
            self.call.stop_audio()
            self.playing_until = None
        elif isinstance(action, StartInputTimer):
            self.timer_at = now + action.seconds
        elif isinstance(action, CancelInputTimer):
            self.timer_at = None
        elif isinstance(action, RecordOutcome):
            self.report.outcomes.append(action)
            # Stored the moment the key is recognised, before the closing prompt plays.
            self.on_outcome(action, self.report.answered_at)
            if action.key is not None and self.key_taken_at is not None:
                metrics.KEY_TO_OUTCOME.observe(self.clock.monotonic() - self.key_taken_at)
        elif isinstance(action, Hangup):
            self.call.hangup()
        elif isinstance(action, StartRecording):
            # Only what arrives from now on: the invitation and the tone are over.
            self.call.start_capture()
            self.recorder = CommentRecorder(action.max_s, action.silence_s, action.no_speech_s)
            self.recording_until = now + action.max_s + RECORDING_CLOCK_SLACK_S
        elif isinstance(action, FinishComment):
            self._finish_comment(action.survey_id)
        elif isinstance(action, Transfer):
            assert self.settings.operator is not None
            log.info("call %s: transfer to the operators asked for", self.call.call_id)
            self.call.transfer(self.settings.operator.target)

    def _finish_comment(self, survey_id: str) -> None:
        recorder, self.recorder, self.recording_until = self.recorder, None, None
        pcm = None
        if recorder is not None:
            recorder.feed(self.call.take_audio())  # what came until now, even after a BYE
            self.call.stop_capture()
            pcm = recorder.speech()
        recording = Recording.of_pcm(pcm) if pcm else None
        if recording is not None:
            log.info("call %s: comment recorded (%.1f s)", self.call.call_id,
                     recording.duration_s)  # fmt: skip
        self.on_comment(survey_id, recording)

    def _step_recording(self, now: float) -> None:
        if self.recorder is None:
            return
        reason = self.recorder.feed(self.call.take_audio())
        if reason is None and self.recording_until is not None and now >= self.recording_until:
            started = self.recorder.speech_started
            reason = StopReason.MAX_LENGTH if started else StopReason.NO_SPEECH
        if reason is not None:
            self.feed(RecordingStopped(reason.value))

    def _step_transfer(self) -> None:
        if self.flow.state is not State.TRANSFERRING:
            return
        result = self.call.transfer_result
        if result is None:
            return
        log.info("call %s: transfer %s (%s)", self.call.call_id,
                 "done" if result.transferred else "failed", result.detail)  # fmt: skip
        self.feed(TransferAccepted() if result.transferred else TransferFailed(result.detail))

    def answered(self) -> None:
        self.report.answered_at = self.clock.now()
        self.answered_mono = self.clock.monotonic()
        self.report.prompt_version = self.prompts.version(self.plan.language)
        line = self.settings.operator
        if line is not None:
            mode = OperatorMode.TRANSFER if line.is_open(self.report.answered_at) else (
                OperatorMode.CALLBACK)  # fmt: skip
            self.flow.settings = dataclasses.replace(self.flow.settings, operator=mode)
        if self.on_answer is not None:
            # Committed now: a crash or SIGKILL later in the call still counts as an
            # answered attempt (one answered call a day), never as a trunk fault.
            self.on_answer(self.report.answered_at)
        self.feed(Answered())

    def step_in_call(self) -> None:
        for press in self.call.take_keys():
            self.key_taken_at = self.clock.monotonic()
            self.report.keys += press.key
            self.report.key_sources += press.source.value
            self.feed(KeyPressed(press.key))
        self._step_transfer()  # before a BYE that may follow the NOTIFY
        now = self.clock.monotonic()
        if self.call.state is LineState.ENDED and self.flow.state is not State.DONE:
            self.feed(RemoteHangup())
            return
        self._step_recording(now)
        if (
            self.flow.state is not State.DONE
            and self.call.media_idle_s > self.settings.media_timeout_s
        ):
            log.info("call %s: no RTP from the far end for %.0f s, ending it",
                     self.call.call_id, self.call.media_idle_s)  # fmt: skip
            self.feed(RemoteHangup(Reason.NO_MEDIA))
            self.call.hangup()
            return
        if self.playing_until is not None and now >= self.playing_until:
            self.playing_until = None
            self.feed(PromptFinished())
        if self.timer_at is not None and now >= self.timer_at:
            self.timer_at = None
            self.feed(InputTimeout())
        assert self.answered_mono is not None
        talked = now - self.answered_mono
        polite_at = max(self.settings.max_call_s - self.settings.closing_grace_s, 0.0)
        if self.flow.state is not State.DONE and (
            (not self.too_long_fed and talked > polite_at) or talked > self.settings.max_call_s
        ):
            # first the polite goodbye; at max_call_s, whatever is playing, hang up
            self.too_long_fed = True
            self.feed(CallTooLong())

    def wait_in_call(self, now: float) -> None:
        """Until a key comes or the next deadline, within [poll_s, idle_wait_s]; the poll
        while a comment is recorded (its audio is taken as it comes)."""
        s = self.settings
        if self.recorder is not None or self.flow.state is State.DONE:
            self.clock.sleep(s.poll_s)
            return
        assert self.answered_mono is not None
        polite_at = self.answered_mono + max(s.max_call_s - s.closing_grace_s, 0.0)
        deadlines = [self.playing_until, self.timer_at, self.answered_mono + s.max_call_s]
        if not self.too_long_fed:
            deadlines.append(polite_at)
        soonest = min(d for d in deadlines if d is not None) - now
        self.call.wait_for_key(min(max(soonest, s.poll_s), s.idle_wait_s))

    def run(self) -> CallReport:
        s = self.settings
        started = self.clock.monotonic()
        cancel_sent: float | None = None
        done_at: float | None = None
        while True:
            now = self.clock.monotonic()
            state = self.call.state
            if self.answered_mono is None:
                if state is LineState.ANSWERED or (
                    # answered and hung up between two polls; but a 200 that crossed our
                    # CANCEL (ACKed, then BYE at once) is no answer: nobody heard anything
                    state is LineState.ENDED
                    and self.call.final_status == 200
                    and self.call.ended_by is not EndedBy.LOCAL_CANCEL
                ):
                    self.answered()
                    continue
                if state is LineState.ENDED:
                    break
                if cancel_sent is None and now - started >= s.ring_timeout_s:
                    log.debug("ring timeout on %s: CANCEL", self.call.call_id)
                    self.call.cancel()
                    cancel_sent = now
                elif cancel_sent is not None and now - cancel_sent > s.teardown_grace_s:
                    break
            else:
                self.step_in_call()
                if self.flow.state is State.DONE:
                    if self.call.state is LineState.ENDED:
                        break
                    if done_at is None:
                        done_at = now
                        self.call.hangup()
                    elif now - done_at > s.teardown_grace_s:
                        break
                self.wait_in_call(self.clock.monotonic())
                continue
            self.clock.sleep(s.poll_s)
        if self.call.state is not LineState.ENDED:
            self.call.hangup()
        r = self.report
        r.final_status = self.call.final_status
        r.final_reason = self.call.final_reason
        r.ended_by = self.call.ended_by
        r.ended_at = self.clock.now()
        metrics.count_rtp_dropped(self.call.media_counters)
        return r


def run_call(
    phone: SipPhone,
    plan: CallPlan,
    prompts: PromptRenderer,
    settings: RunnerSettings,
    clock: Clock,
    on_outcome: OutcomeSink,
    on_answer: AnswerSink | None = None,
    on_comment: CommentSink = _no_comment_sink,
) -> CallReport:
    """Dial, hold the survey, hang up. Raises DialFailed if the INVITE could not be sent;
    whatever else goes wrong during the call, the line is hung up before it propagates."""
    call = phone.dial(plan.dial_string)
    try:
        return _CallDriver(
            call, plan, prompts, settings, clock, on_outcome, on_answer, on_comment
        ).run()
    except BaseException:
        if call.state is not LineState.ENDED:
            call.hangup()
        raise
