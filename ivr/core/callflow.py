"""The survey call as a pure state machine: events in, actions out.

It never touches pyVoIP, files, the database or the clock. The events and actions are the
records of ``ivr.core.call_events``; what it says and to whom, ``ivr.core.call_script``. The
runner (``ivr.campaign.call_runner``) feeds it events and carries out the actions it returns.
One call covers one or more requests of the same citizen, asked one after another; each gets
its own ``RecordOutcome``.

States and what moves them (anything not listed raises ``CallFlowError``)::

    WAITING_ANSWER --Answered--> ASKING (greeting + request 1 + question)
    ASKING   --PromptFinished--> LISTENING (starts the input timer)
    ASKING/LISTENING --KeyPressed 1|2--> records the outcome of this request *first*, then
                                  ASKING (acknowledgement + next request + question) or
                                  CLOSING (thanks) after the last request; with
                                  ``voice_comment``, 2 goes to COMMENT_INVITE instead (the
                                  outcome is recorded first, marked ``comment_follows``)
    COMMENT_INVITE --PromptFinished--> RECORDING (invitation and tone played: StartRecording)
    COMMENT_INVITE --KeyPressed--> no comment (FinishComment), then as after the answer
    RECORDING --KeyPressed|RecordingStopped--> FinishComment, then ASKING (next request) or
                                  CLOSING (thanks) after the last request
    COMMENT_INVITE/RECORDING --RemoteHangup--> FinishComment (what was said is kept), DONE
    COMMENT_INVITE/RECORDING --CallTooLong--> FinishComment, CLOSING ("time is up")
    ASKING/LISTENING --KeyPressed 0--> ASKING (this request and the question again)
    ASKING/LISTENING --KeyPressed 9--> CLOSING (opted_out for this and every later request;
                                  only when opting out is offered)
    ASKING/LISTENING --KeyPressed other--> ASKING ("that key is not used" + question), or
                                  CLOSING with no_input once the repeats are used up
    LISTENING --InputTimeout--> ASKING (question again), or CLOSING with no_input
    CLOSING  --PromptFinished--> DONE (hang up)
    CLOSING  --KeyPressed--> CLOSING (ignored: the answers are already stored)
    any but DONE --RemoteHangup--> DONE (no_input for every request without an outcome;
                                  reason remote_hangup, or no_media when RTP stopped)
    ASKING/LISTENING --CallTooLong--> CLOSING (no_input for the rest; "time is up" goodbye)
    WAITING_ANSWER/CLOSING --CallTooLong--> DONE (hang up now: the polite end is over)
    DONE --RemoteHangup|KeyPressed|PromptFinished|CallTooLong--> DONE (late events)
    ASKING/LISTENING --KeyPressed 3--> with operator TRANSFER: TRANSFER_ANNOUNCE ("connecting
                                  you"); with CALLBACK (out of hours): CLOSING (no_input,
                                  reason callback_requested; "we will call you back")
    TRANSFER_ANNOUNCE --PromptFinished--> TRANSFERRING (Transfer: the runner sends SIP REFER)
    TRANSFERRING --TransferAccepted--> DONE (no_input, reason transferred; Hangup: our BYE)
    TRANSFERRING --TransferFailed--> CLOSING (callback_requested; "we will call you back")
    TRANSFER_ANNOUNCE/TRANSFERRING --CallTooLong--> DONE (max_call_length; Hangup)
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

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
from ivr.core.call_script import (
    FlowSettings,
    OperatorMode,
    RequestInfo,
    opening_parts,
    question_parts,
    request_parts,
)
from ivr.core.errors import CallFlowError
from ivr.core.vocabulary import Outcome, Reason

SATISFIED_KEY = "1"
UNSATISFIED_KEY = "2"
REPEAT_KEY = "0"
OPT_OUT_KEY = "9"
OPERATOR_KEY = "3"
# Reasons of the outcome (no_input, digit 3) of a citizen who asked for a person.
TRANSFERRED = Reason.TRANSFERRED
CALLBACK_REQUESTED = Reason.CALLBACK_REQUESTED


class State(enum.Enum):
    WAITING_ANSWER = "waiting_answer"
    ASKING = "asking"
    LISTENING = "listening"
    COMMENT_INVITE = "comment_invite"
    RECORDING = "recording"
    TRANSFER_ANNOUNCE = "transfer_announce"
    TRANSFERRING = "transferring"
    CLOSING = "closing"
    DONE = "done"


@dataclass
class SurveyCall:
    """The survey of ``requests`` (at least one) in one call."""

    requests: Sequence[RequestInfo]
    settings: FlowSettings
    state: State = State.WAITING_ANSWER
    current: int = 0
    repeats: int = 0
    recorded: list[RecordOutcome] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.requests:
            raise CallFlowError("a survey call needs at least one request")
        self.requests = tuple(self.requests)

    # The prompt parts of each situation, in one place.
    def _question(self) -> tuple[str, ...]:
        return question_parts(self.settings)

    def _about_current(self) -> tuple[str, ...]:
        return request_parts(self.requests[self.current]) + self._question()

    @property
    def awaits_key(self) -> bool:
        """A key would change something now (an answer, a barge-in, the end of a comment):
        only then is the received audio worth analysing for in-band keys."""
        return self.state in KEY_STATES

    def handle(self, event: Event) -> list[Action]:
        handler = _TABLE.get((self.state, type(event)))
        if handler is None:
            raise CallFlowError(
                f"{type(event).__name__} is not expected in state {self.state.value}"
            )
        return handler(self, event)

    # ---- transitions ----
    def _on_answered(self, event: Event) -> list[Action]:
        self.state = State.ASKING
        return [Play(opening_parts(self.requests[self.current], self.settings))]

    def _on_prompt_finished_asking(self, event: Event) -> list[Action]:
        self.state = State.LISTENING
        return [StartInputTimer(self.settings.input_timeout_s)]

    def _on_key(self, event: Event) -> list[Action]:
        assert isinstance(event, KeyPressed)
        key = event.key
        self.keys.append(key)
        stop: list[Action] = (
            [StopPlayback()] if self.state is State.ASKING else [CancelInputTimer()]
        )
        if key in (SATISFIED_KEY, UNSATISFIED_KEY):
            return stop + self._answered(key)
        if key == REPEAT_KEY:
            self.state = State.ASKING
            return stop + [Play(self._about_current())]
        if key == OPT_OUT_KEY and self.settings.offer_opt_out:
            return stop + self._close(Outcome.OPTED_OUT, key, None, "opted_out_goodbye")
        if key == OPERATOR_KEY and self.settings.operator is OperatorMode.TRANSFER:
            self.state = State.TRANSFER_ANNOUNCE
            return stop + [Play(("transfer_connecting",))]
        if key == OPERATOR_KEY and self.settings.operator is OperatorMode.CALLBACK:
            return stop + self._promise_callback()
        return stop + self._ask_again(("invalid_key", *self._question()))

    def _answered(self, key: str) -> list[Action]:
        satisfied = key == SATISFIED_KEY
        outcome = Outcome.SATISFIED if satisfied else Outcome.UNSATISFIED
        if not satisfied and self.settings.voice_comment:
            # Stored before the invitation plays: a hang-up from here on loses no answer.
            record = self._record(outcome, key, None, comment_follows=True)
            self.state = State.COMMENT_INVITE
            return [record, Play(("comment_invite", "tone"))]
        if self.current + 1 >= len(self.requests):
            closing = "thanks_satisfied" if satisfied else "thanks_unsatisfied"
            return self._close(outcome, key, None, closing)
        # Recorded before anything else is played: a hang-up later loses nothing.
        record = self._record(outcome, key, None)
        self.current += 1
        self.repeats = 0
        self.state = State.ASKING
        ack = "answer_noted" if satisfied else "rework_noted"
        return [record, Play((ack, "next_request", *self._about_current()))]

    def _on_timeout(self, event: Event) -> list[Action]:
        return self._ask_again(self._question())

    def _ask_again(self, parts: tuple[str, ...]) -> list[Action]:
        if self.repeats >= self.settings.max_repeats:
            return self._close(Outcome.NO_INPUT, None, None, "goodbye_no_input")
        self.repeats += 1
        self.state = State.ASKING
        return [Play(parts)]

    def _record(
        self, outcome: Outcome, key: str | None, reason: str | None, comment_follows: bool = False
    ) -> RecordOutcome:
        survey_id = self.requests[self.current].survey_id
        rec = RecordOutcome(survey_id, outcome, key, reason, comment_follows)
        self.recorded.append(rec)
        return rec

    def _record_rest(self, outcome: Outcome, key: str | None, reason: str | None) -> list[Action]:
        """``outcome`` for the current request and every later one."""
        actions: list[Action] = []
        while self.current < len(self.requests):
            actions.append(self._record(outcome, key, reason))
            self.current += 1
        return actions

    def _close(
        self, outcome: Outcome, key: str | None, reason: str | None, prompt: str
    ) -> list[Action]:
        # The outcomes are recorded before the closing prompt plays: a hang-up during
        # "thank you" loses nothing.
        actions = self._record_rest(outcome, key, reason)
        self.state = State.CLOSING
        return [*actions, Play((prompt,))]

    # ---- the spoken comment ----
    def _comment_survey(self) -> str:
        return self.requests[self.current].survey_id

    def _on_invite_finished(self, event: Event) -> list[Action]:
        self.state = State.RECORDING
        s = self.settings
        return [
            StartRecording(
                self._comment_survey(), s.comment_max_s, s.comment_silence_s, s.comment_no_speech_s
            )
        ]

    def _on_comment_over(self, event: Event) -> list[Action]:
        """A key (during the invitation: no comment; while recording: done) or the recorder's
        stop: the comment is finished, and the call goes on as after the answer."""
        if isinstance(event, KeyPressed):
            self.keys.append(event.key)
        stop: list[Action] = [StopPlayback()] if self.state is State.COMMENT_INVITE else []
        finish = FinishComment(self._comment_survey())
        self.current += 1
        self.repeats = 0
        if self.current >= len(self.requests):
            self.state = State.CLOSING
            return [*stop, finish, Play(("thanks_unsatisfied",))]
        self.state = State.ASKING
        return [*stop, finish, Play(("rework_noted", "next_request", *self._about_current()))]

    def _on_comment_hangup(self, event: Event) -> list[Action]:
        assert isinstance(event, RemoteHangup)
        finish = FinishComment(self._comment_survey())
        self.current += 1
        rest = self._record_rest(Outcome.NO_INPUT, None, event.reason)
        self.state = State.DONE
        return [finish, *rest]

    def _on_comment_too_long(self, event: Event) -> list[Action]:
        stop: list[Action] = [StopPlayback()] if self.state is State.COMMENT_INVITE else []
        finish = FinishComment(self._comment_survey())
        self.current += 1
        return [*stop, finish, *self._close(Outcome.NO_INPUT, None, "max_call_length",
                                            "goodbye_time_up")]  # fmt: skip

    # ---- a person, when the citizen asks ----
    def _for_all(self, reason: str) -> list[Action]:
        """Every request left ends with ``reason``; the current one carries the key 3."""
        first = self._record(Outcome.NO_INPUT, OPERATOR_KEY, reason)
        self.current += 1
        return [first, *self._record_rest(Outcome.NO_INPUT, None, reason)]

    def _promise_callback(self) -> list[Action]:
        # Recorded before the promise plays: the rating carries callback_requested.
        actions = self._for_all(CALLBACK_REQUESTED)
        self.state = State.CLOSING
        return [*actions, Play(("callback_promise",))]

    def _on_transfer_announced(self, event: Event) -> list[Action]:
        self.state = State.TRANSFERRING
        return [Transfer()]

    def _on_transferred(self, event: Event) -> list[Action]:
        actions = self._for_all(TRANSFERRED)
        self.state = State.DONE
        return [*actions, Hangup()]

    def _on_transfer_failed(self, event: Event) -> list[Action]:
        return self._promise_callback()

    def _on_transfer_too_long(self, event: Event) -> list[Action]:
        stop: list[Action] = [StopPlayback()] if self.state is State.TRANSFER_ANNOUNCE else []
        actions = self._record_rest(Outcome.NO_INPUT, None, "max_call_length")
        self.state = State.DONE
        return [*stop, *actions, Hangup()]

    def _on_closing_finished(self, event: Event) -> list[Action]:
        self.state = State.DONE
        return [Hangup()]

    def _ignore(self, event: Event) -> list[Action]:
        return []

    def _on_remote_hangup(self, event: Event) -> list[Action]:
        assert isinstance(event, RemoteHangup)
        if self.state is State.WAITING_ANSWER:
            self.state = State.DONE
            return []
        actions = self._record_rest(Outcome.NO_INPUT, None, event.reason)
        self.state = State.DONE
        return actions

    def _on_too_long_talking(self, event: Event) -> list[Action]:
        stop: list[Action] = (
            [StopPlayback()] if self.state is State.ASKING else [CancelInputTimer()]
        )
        return stop + self._close(Outcome.NO_INPUT, None, "max_call_length", "goodbye_time_up")

    def _on_too_long_hang_up(self, event: Event) -> list[Action]:
        self.state = State.DONE
        return [Hangup()]


_Handler = Callable[[SurveyCall, Event], list[Action]]
_TABLE: dict[tuple[State, type], _Handler] = {
    (State.WAITING_ANSWER, Answered): SurveyCall._on_answered,
    (State.WAITING_ANSWER, CallTooLong): SurveyCall._on_too_long_hang_up,
    (State.ASKING, PromptFinished): SurveyCall._on_prompt_finished_asking,
    (State.ASKING, KeyPressed): SurveyCall._on_key,
    (State.ASKING, CallTooLong): SurveyCall._on_too_long_talking,
    (State.LISTENING, KeyPressed): SurveyCall._on_key,
    (State.LISTENING, InputTimeout): SurveyCall._on_timeout,
    (State.LISTENING, CallTooLong): SurveyCall._on_too_long_talking,
    (State.COMMENT_INVITE, PromptFinished): SurveyCall._on_invite_finished,
    (State.COMMENT_INVITE, KeyPressed): SurveyCall._on_comment_over,
    (State.COMMENT_INVITE, RemoteHangup): SurveyCall._on_comment_hangup,
    (State.COMMENT_INVITE, CallTooLong): SurveyCall._on_comment_too_long,
    (State.RECORDING, KeyPressed): SurveyCall._on_comment_over,
    (State.RECORDING, RecordingStopped): SurveyCall._on_comment_over,
    (State.RECORDING, RemoteHangup): SurveyCall._on_comment_hangup,
    (State.RECORDING, CallTooLong): SurveyCall._on_comment_too_long,
    (State.CLOSING, PromptFinished): SurveyCall._on_closing_finished,
    (State.CLOSING, KeyPressed): SurveyCall._ignore,
    (State.CLOSING, CallTooLong): SurveyCall._on_too_long_hang_up,
    (State.DONE, RemoteHangup): SurveyCall._ignore,
    (State.DONE, KeyPressed): SurveyCall._ignore,
    (State.DONE, PromptFinished): SurveyCall._ignore,
    (State.DONE, CallTooLong): SurveyCall._ignore,
    (State.DONE, RecordingStopped): SurveyCall._ignore,
    (State.CLOSING, RecordingStopped): SurveyCall._ignore,
    (State.TRANSFER_ANNOUNCE, PromptFinished): SurveyCall._on_transfer_announced,
    (State.TRANSFER_ANNOUNCE, KeyPressed): SurveyCall._ignore,
    (State.TRANSFER_ANNOUNCE, CallTooLong): SurveyCall._on_transfer_too_long,
    (State.TRANSFERRING, TransferAccepted): SurveyCall._on_transferred,
    (State.TRANSFERRING, TransferFailed): SurveyCall._on_transfer_failed,
    (State.TRANSFERRING, KeyPressed): SurveyCall._ignore,
    (State.TRANSFERRING, CallTooLong): SurveyCall._on_transfer_too_long,
}
_LIVE = (State.WAITING_ANSWER, State.ASKING, State.LISTENING, State.CLOSING,
         State.TRANSFER_ANNOUNCE, State.TRANSFERRING)  # fmt: skip
for _state in _LIVE:
    _TABLE[(_state, RemoteHangup)] = SurveyCall._on_remote_hangup
for _state in (State.CLOSING, State.DONE):
    _TABLE[(_state, TransferAccepted)] = SurveyCall._ignore
    _TABLE[(_state, TransferFailed)] = SurveyCall._ignore

# The states where a key does something (derived from the table, so the two cannot disagree).
KEY_STATES = frozenset(
    state for (state, event), handler in _TABLE.items()
    if event is KeyPressed and handler is not SurveyCall._ignore
)  # fmt: skip
