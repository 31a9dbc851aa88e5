"""The events the survey call takes and the actions it returns: frozen records, no behaviour.

:mod:`ivr.core.callflow` is the state machine over them; the runner
(``ivr.campaign.call_runner``) turns what happens on the line into events and carries out the
actions.
"""

from __future__ import annotations

from dataclasses import dataclass

from ivr.core.vocabulary import Outcome, Reason


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
