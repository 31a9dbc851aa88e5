"""The survey call as a pure state machine: events in, actions out.

It never touches pyVoIP, files, the database or the clock. The runner (``ivr.call_runner``)
feeds it events and carries out the actions it returns.

States and what moves them (anything not listed raises ``CallFlowError``)::

    WAITING_ANSWER --Answered--> ASKING (plays greeting + request number + question)
    ASKING   --PromptFinished--> LISTENING (starts the input timer)
    ASKING/LISTENING --KeyPressed 1|2--> CLOSING (records the outcome *first*, then thanks)
    ASKING/LISTENING --KeyPressed other--> ASKING ("that key is not used" + question), or
                                          CLOSING with no_input once the repeats are used up
    LISTENING --InputTimeout--> ASKING (question again), or CLOSING with no_input
    CLOSING  --PromptFinished--> DONE (hang up)
    CLOSING  --KeyPressed--> CLOSING (ignored: the answer is already stored)
    any but DONE --RemoteHangup--> DONE (no_input if nothing was recorded yet)
    any but DONE --CallTooLong--> DONE (no_input if nothing was recorded yet; hang up)
    DONE --RemoteHangup|KeyPressed|PromptFinished--> DONE (late events of a finished call)
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field

from ivr.errors import CallFlowError

SATISFIED_KEY = "1"
UNSATISFIED_KEY = "2"


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
    pass


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


@dataclass
class SurveyCall:
    """One survey of one request. ``request_number`` is read out digit by digit."""

    request_number: str
    settings: FlowSettings
    state: State = State.WAITING_ANSWER
    repeats: int = 0
    recorded: RecordOutcome | None = None
    keys: list[str] = field(default_factory=list)

    # The prompt parts of each situation, in one place.
    def _question(self) -> tuple[str, ...]:
        return ("question",)

    def _opening(self) -> tuple[str, ...]:
        return ("greeting", "about_request", f"number:{self.request_number}", "question")

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
        return [Play(self._opening())]

    def _on_prompt_finished_asking(self, event: Event) -> list[Action]:
        self.state = State.LISTENING
        return [StartInputTimer(self.settings.input_timeout_s)]

    def _on_key(self, event: Event) -> list[Action]:
        assert isinstance(event, KeyPressed)
        self.keys.append(event.key)
        stop: list[Action] = (
            [StopPlayback()] if self.state is State.ASKING else [CancelInputTimer()]
        )
        if event.key in (SATISFIED_KEY, UNSATISFIED_KEY):
            satisfied = event.key == SATISFIED_KEY
            outcome = Outcome.SATISFIED if satisfied else Outcome.UNSATISFIED
            closing = "thanks_satisfied" if satisfied else "thanks_unsatisfied"
            return stop + self._close(RecordOutcome(outcome, event.key), closing)
        return stop + self._ask_again(("invalid_key", "question"))

    def _on_timeout(self, event: Event) -> list[Action]:
        return self._ask_again(self._question())

    def _ask_again(self, parts: tuple[str, ...]) -> list[Action]:
        if self.repeats >= self.settings.max_repeats:
            return self._close(RecordOutcome(Outcome.NO_INPUT, None), "goodbye_no_input")
        self.repeats += 1
        self.state = State.ASKING
        return [Play(parts)]

    def _close(self, record: RecordOutcome, prompt: str) -> list[Action]:
        self.recorded = record
        self.state = State.CLOSING
        # The outcome is recorded before the closing prompt plays: a hang-up during
        # "thank you" loses nothing.
        return [record, Play((prompt,))]

    def _on_closing_finished(self, event: Event) -> list[Action]:
        self.state = State.DONE
        return [Hangup()]

    def _ignore(self, event: Event) -> list[Action]:
        return []

    def _on_remote_hangup(self, event: Event) -> list[Action]:
        return self._finish(reason="remote_hangup", hangup=False)

    def _on_too_long(self, event: Event) -> list[Action]:
        return self._finish(reason="max_call_length", hangup=True)

    def _finish(self, *, reason: str, hangup: bool) -> list[Action]:
        actions: list[Action] = []
        if self.state is State.WAITING_ANSWER:
            self.state = State.DONE
            return actions
        if self.recorded is None:
            self.recorded = RecordOutcome(Outcome.NO_INPUT, None, reason)
            actions.append(self.recorded)
        self.state = State.DONE
        if hangup:
            actions.append(Hangup())
        return actions


_Handler = Callable[[SurveyCall, Event], list[Action]]
_TABLE: dict[tuple[State, type], _Handler] = {
    (State.WAITING_ANSWER, Answered): SurveyCall._on_answered,
    (State.ASKING, PromptFinished): SurveyCall._on_prompt_finished_asking,
    (State.ASKING, KeyPressed): SurveyCall._on_key,
    (State.LISTENING, KeyPressed): SurveyCall._on_key,
    (State.LISTENING, InputTimeout): SurveyCall._on_timeout,
    (State.CLOSING, PromptFinished): SurveyCall._on_closing_finished,
    (State.CLOSING, KeyPressed): SurveyCall._ignore,
    (State.DONE, RemoteHangup): SurveyCall._ignore,
    (State.DONE, KeyPressed): SurveyCall._ignore,
    (State.DONE, PromptFinished): SurveyCall._ignore,
    (State.DONE, CallTooLong): SurveyCall._ignore,
}
for _state in (State.WAITING_ANSWER, State.ASKING, State.LISTENING, State.CLOSING):
    _TABLE[(_state, RemoteHangup)] = SurveyCall._on_remote_hangup
    _TABLE[(_state, CallTooLong)] = SurveyCall._on_too_long
