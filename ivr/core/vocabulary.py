"""The words of a survey's result, each with one home: outcomes, dispositions and reasons.

They are stored in the database, posted to the portal, counted in metrics and shown in the
console, always as these values (a ``StrEnum`` member is the string itself, so a stored or
posted value and a member compare equal).

- :class:`Outcome`: how a survey ended (what the portal is told).
- :class:`Disposition`: how one call attempt ended at the SIP level, plus the two states of
  an attempt that has no SIP ending (still ``dialing``, or ``interrupted`` by a crash).
- :class:`Reason`: why a survey ended the way it did, where the outcome alone does not say.
"""

from __future__ import annotations

import enum


class Outcome(enum.StrEnum):
    SATISFIED = "satisfied"
    UNSATISFIED = "unsatisfied"
    NO_INPUT = "no_input"
    NO_ANSWER = "no_answer"
    OPTED_OUT = "opted_out"
    NOT_CALLED = "not_called"


class Disposition(enum.StrEnum):
    ANSWERED = "answered"
    BUSY = "busy"  # 486, 600
    NO_ANSWER = "no_answer"  # 480, 408, 487, or our CANCEL after the ring timeout
    DECLINED = "declined"  # 603
    INVALID_NUMBER = "invalid_number"  # 404, 484, 604
    FAILED = "failed"  # anything else: the trunk's or our fault, not the citizen's
    # Attempt states without a SIP ending:
    DIALING = "dialing"  # committed before the INVITE, not ended yet
    INTERRUPTED = "interrupted"  # the runner died while it was dialing (found on recovery)


# The dispositions a call can end with (the metrics' label values).
CALL_DISPOSITIONS = (
    Disposition.ANSWERED,
    Disposition.BUSY,
    Disposition.NO_ANSWER,
    Disposition.DECLINED,
    Disposition.INVALID_NUMBER,
    Disposition.FAILED,
)


class Reason(enum.StrEnum):
    # not_called: decided at intake, before any call.
    NO_CONSENT = "no_consent"
    DO_NOT_CALL = "do_not_call"
    INVALID_PHONE = "invalid_phone"
    DISALLOWED_NUMBER = "disallowed_number"
    SUPERSEDED = "superseded"  # the request was closed again before this round was called
    # no_answer: the last attempt's disposition (busy, no_answer, declined, invalid_number,
    # failed) is the reason, or the survey's deadline passed first.
    SURVEY_EXPIRED = "survey_expired"
    # no_input: the line went away before a key.
    REMOTE_HANGUP = "remote_hangup"
    NO_MEDIA = "no_media"  # no RTP for too long
    INTERRUPTED = "interrupted"  # the runner died during its last attempt
    # no_input, digit 3: the citizen asked for a person (ivr.core.callflow).
    TRANSFERRED = "transferred"  # put through to an operator
    CALLBACK_REQUESTED = "callback_requested"  # none could take the call: the portal calls back
    # unsatisfied: a later round of a request already returned for rework.
    UNSATISFIED_AGAIN = "unsatisfied_again"
