"""The survey call as a pure state machine: events in, actions out.

It never touches pyVoIP, files, the database or the clock. The runner (``ivr.call_runner``)
feeds it events and carries out the actions it returns. One call covers one or more requests
of the same citizen, asked one after another; each gets its own ``RecordOutcome``.

States and what moves them (anything not listed raises ``CallFlowError``)::

    WAITING_ANSWER --Answered--> ASKING (greeting + request 1 + question)
    ASKING   --PromptFinished--> LISTENING (starts the input timer)
    ASKING/LISTENING --KeyPressed 1|2--> records the outcome of this request *first*, then
                                  ASKING (acknowledgement + next request + question) or
                                  CLOSING (thanks) after the last request
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
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date

from ivr.errors import CallFlowError
from prompts.catalog import category_clip, day_clip, month_clip

SATISFIED_KEY = "1"
UNSATISFIED_KEY = "2"
REPEAT_KEY = "0"
OPT_OUT_KEY = "9"


class Outcome(enum.StrEnum):
    SATISFIED = "satisfied"
    UNSATISFIED = "unsatisfied"
    NO_INPUT = "no_input"
    NO_ANSWER = "no_answer"
    OPTED_OUT = "opted_out"
    NOT_CALLED = "not_called"


class State(enum.Enum):
    WAITING_ANSWER = "waiting_answer"
    ASKING = "asking"
    LISTENING = "listening"
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

    reason: str = "remote_hangup"


@dataclass(frozen=True)
class CallTooLong:
    pass


Event = Answered | PromptFinished | KeyPressed | InputTimeout | RemoteHangup | CallTooLong


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


@dataclass(frozen=True)
class Hangup:
    pass


Action = Play | StopPlayback | StartInputTimer | CancelInputTimer | RecordOutcome | Hangup


@dataclass(frozen=True)
class FlowSettings:
    input_timeout_s: float
    max_repeats: int
    # Offer 9 "do not call me again" (the question then mentions it).
    offer_opt_out: bool = True


def request_parts(request: RequestInfo) -> tuple[str, ...]:
    """What names a request: its number, closing date (day and month) and category if known."""
    parts: list[str] = ["about_request", f"number:{request.number}"]
    if request.closed_on is not None:
        d = request.closed_on
        parts += ["closed_on", day_clip(d.day), month_clip(d.month)]
    clip = category_clip(request.category)
    if clip is not None:
        parts += ["category", clip]
    return tuple(parts)


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
        return ("question", "question_opt_out") if self.settings.offer_opt_out else ("question",)

    def _about_current(self) -> tuple[str, ...]:
        return request_parts(self.requests[self.current]) + self._question()

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
        return [Play(("greeting", *self._about_current()))]

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
        return stop + self._ask_again(("invalid_key", *self._question()))

    def _answered(self, key: str) -> list[Action]:
        satisfied = key == SATISFIED_KEY
        outcome = Outcome.SATISFIED if satisfied else Outcome.UNSATISFIED
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

    def _record(self, outcome: Outcome, key: str | None, reason: str | None) -> RecordOutcome:
        rec = RecordOutcome(self.requests[self.current].survey_id, outcome, key, reason)
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
    (State.CLOSING, PromptFinished): SurveyCall._on_closing_finished,
    (State.CLOSING, KeyPressed): SurveyCall._ignore,
    (State.CLOSING, CallTooLong): SurveyCall._on_too_long_hang_up,
    (State.DONE, RemoteHangup): SurveyCall._ignore,
    (State.DONE, KeyPressed): SurveyCall._ignore,
    (State.DONE, PromptFinished): SurveyCall._ignore,
    (State.DONE, CallTooLong): SurveyCall._ignore,
}
for _state in (State.WAITING_ANSWER, State.ASKING, State.LISTENING, State.CLOSING):
    _TABLE[(_state, RemoteHangup)] = SurveyCall._on_remote_hangup
