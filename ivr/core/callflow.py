"""The survey call as a pure state machine: events in, actions out.

It never touches pyVoIP, files, the database or the clock. The runner (``ivr.campaign.call_runner``)
feeds it events and carries out the actions it returns. One call covers one or more requests
of the same citizen, asked one after another; each gets its own ``RecordOutcome``.

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
from datetime import date

from ivr.core.errors import CallFlowError
from ivr.core.vocabulary import Outcome, Reason
from prompts.catalog import category_clip, day_clip, month_clip

SATISFIED_KEY = "1"
UNSATISFIED_KEY = "2"
REPEAT_KEY = "0"
OPT_OUT_KEY = "9"
OPERATOR_KEY = "3"
# Reasons of the outcome (no_input, digit 3) of a citizen who asked for a person.
TRANSFERRED = Reason.TRANSFERRED
CALLBACK_REQUESTED = Reason.CALLBACK_REQUESTED


class OperatorMode(enum.Enum):
    """What 3 does in this call (judged by the runner when the call is answered)."""

    OFF = "off"  # 3 is a wrong key
    TRANSFER = "transfer"  # offered; pressed: SIP REFER to the operators
    CALLBACK = "callback"  # not offered (out of hours); pressed anyway: a callback is promised


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


@dataclass(frozen=True)
class RequestInfo:
    """One closed request the call asks about. ``number`` is read out digit by digit."""

    survey_id: str
    number: str
    closed_on: date | None = None
    category: str | None = None


# ---- events -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Answered:
    pass


@dataclass(frozen=True)
class PromptFinished:
    pass


@dataclass(frozen=True)
class KeyPressed:
    key: str


@dataclass(frozen=True)
class InputTimeout:
    pass


@dataclass(frozen=True)
class RemoteHangup:
    """The line is gone: BYE from the citizen, or (``no_media``) no RTP for too long."""

    reason: str = Reason.REMOTE_HANGUP


@dataclass(frozen=True)
class CallTooLong:
    pass


@dataclass(frozen=True)
class RecordingStopped:
    """The runner's recorder says the comment is over: ``silence`` after speech,
    ``max_length``, or ``no_speech`` (nothing said since the tone)."""

    reason: str


@dataclass(frozen=True)
class TransferAccepted:
    """The far end took the REFER and the operator's line answered (NOTIFY sipfrag 2xx)."""


@dataclass(frozen=True)
class TransferFailed:
    """The REFER was refused, timed out, or its NOTIFY reported a failure (``reason``)."""

    reason: str


Event = (
    Answered | PromptFinished | KeyPressed | InputTimeout | RemoteHangup | CallTooLong
    | RecordingStopped | TransferAccepted | TransferFailed
)  # fmt: skip


# ---- actions ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Play:
    """Play these prompt parts (clip names, or ``number:<digits>``) after stopping any other."""

    parts: tuple[str, ...]


@dataclass(frozen=True)
class StopPlayback:
    pass


@dataclass(frozen=True)
class StartInputTimer:
    seconds: float


@dataclass(frozen=True)
class CancelInputTimer:
    pass


@dataclass(frozen=True)
class RecordOutcome:
    """The outcome of one request's survey (``survey_id``); opted_out also means: put the
    number on the do-not-call list."""

    survey_id: str
    outcome: Outcome
    key: str | None
    reason: str | None = None
    # A spoken comment is asked for next: the rating waits for it (FinishComment).
    comment_follows: bool = False


@dataclass(frozen=True)
class Hangup:
    pass


@dataclass(frozen=True)
class StartRecording:
    """Record what the citizen says about ``survey_id`` (the received audio only)."""

    survey_id: str
    max_s: float
    silence_s: float
    no_speech_s: float


@dataclass(frozen=True)
class FinishComment:
    """Stop recording; keep what was said (if anything) as the comment of ``survey_id``, and
    let its rating go (with ``comment_expected`` when there is a comment)."""

    survey_id: str


@dataclass(frozen=True)
class Transfer:
    """Send the citizen to the operators (SIP REFER in this call's dialog); the runner answers
    with TransferAccepted or TransferFailed."""


Action = (
    Play | StopPlayback | StartInputTimer | CancelInputTimer | RecordOutcome | Hangup
    | StartRecording | FinishComment | Transfer
)  # fmt: skip


@dataclass(frozen=True)
class FlowSettings:
    input_timeout_s: float
    max_repeats: int
    # Offer 9 "do not call me again" (the question then mentions it).
    offer_opt_out: bool = True
    # After "not satisfied", invite a short spoken comment (ivr.voice_comment).
    voice_comment: bool = False
    comment_max_s: float = 60.0
    comment_silence_s: float = 3.0
    # Nothing said this long after the tone: no comment.
    comment_no_speech_s: float = 6.0
    # 3 "talk to an operator" (ivr.operator_transfer, transfer.hours and transfer.target).
    operator: OperatorMode = OperatorMode.OFF


def request_parts(request: RequestInfo) -> tuple[str, ...]:
    """What names a request: its number, closing date (day and month) and category if known."""
    parts: list[str] = ["about_request", f"number:{request.number}"]
    if request.closed_on is not None:
        d = request.closed_on
        parts += [day_clip(d.day), month_clip(d.month)]
    clip = category_clip(request.category)
    if clip is not None:
        parts.append(clip)
    return tuple(parts)


def question_parts(settings: FlowSettings) -> tuple[str, ...]:
    """The question: the first option first ("satisfied? press 1"), then the others."""
    opt_out = ("question_opt_out",) if settings.offer_opt_out else ()
    operator = ("question_operator",) if settings.operator is OperatorMode.TRANSFER else ()
    return ("question", "question_rest", *operator, *opt_out)


def opening_parts(request: RequestInfo, settings: FlowSettings) -> tuple[str, ...]:
    """What the citizen hears on answering: a short greeting, what identifies the request
    (number, date, category) and the question, first option first."""
    return ("greeting", *request_parts(request), *question_parts(settings))


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
