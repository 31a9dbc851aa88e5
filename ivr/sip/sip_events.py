"""What the sans-I/O SIP core hands back: datagrams to send and events for the adapter.

Frozen dataclasses, the shape of h11's ``_events.py``. ``ivr.sip.transaction``,
``ivr.sip.dialog`` and ``ivr.sip.core`` return lists of these; the adapter
(``ivr.sip.pyvoip_adapter``) sends every ``Send`` and applies every event, nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass

from ivr.sip import sip_messages as sm
from ivr.sip.api import EndedBy

Address = tuple[str, int]


@dataclass(frozen=True)
class Send:
    """A datagram to send; ``target`` None means the configured proxy."""

    data: bytes
    target: Address | None = None


@dataclass(frozen=True)
class Ringing:
    call_id: str


@dataclass(frozen=True)
class Answered:
    """A 2xx confirmed the dialog and was ACKed: start the media (``ok`` carries the SDP)."""

    call_id: str
    ok: sm.SipMessage
    reason: str


@dataclass(frozen=True)
class Ended:
    call_id: str
    by: EndedBy
    status: int | None = None
    reason: str | None = None


@dataclass(frozen=True)
class KeyReceived:
    """A key from a SIP INFO in the dialog."""

    call_id: str
    key: str


@dataclass(frozen=True)
class MediaChanged:
    """A re-INVITE we answered 200: where and how the far end's media now is."""

    call_id: str
    ip: str
    port: int
    codec: str  # "pcmu" or "pcma"
    event_pt: int
    hold: bool
    direction: str


@dataclass(frozen=True)
class DialogResponse:
    """The final answer (or Timer F's timeout: ``status`` 408) to an in-dialog request we sent
    with ``CallCore.request`` (a REFER, say)."""

    call_id: str
    method: str
    cseq: int
    status: int
    msg: sm.SipMessage | None


@dataclass(frozen=True)
class DialogRequest:
    """An in-dialog request the core answered 200 but does not interpret (a NOTIFY about
    a REFER, say): for whoever sent the request it relates to."""

    call_id: str
    msg: sm.SipMessage


Event = Ringing | Answered | Ended | KeyReceived | MediaChanged | DialogResponse | DialogRequest
Output = Send | Event
