"""What a survey call says and to whom: the requests it asks about, the flow's settings
(repeats, the offered keys, the spoken comment, the operator) and the prompt parts that name a
request and ask the question. Plain data for :mod:`ivr.core.callflow`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import date

from prompts.catalog import category_clip, day_clip, month_clip


class OperatorMode(enum.Enum):
    """What 3 does in this call (judged by the runner when the call is answered)."""

    OFF = "off"  # 3 is a wrong key
    TRANSFER = "transfer"  # offered; pressed: SIP REFER to the operators
    CALLBACK = "callback"  # not offered (out of hours); pressed anyway: a callback is promised


@dataclass(frozen=True)
class RequestInfo:
    """One closed request the call asks about. ``number`` is read out digit by digit."""

    survey_id: str
    number: str
    closed_on: date | None = None
    category: str | None = None


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
