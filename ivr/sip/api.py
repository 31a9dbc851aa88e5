"""What the dialer needs from a SIP stack, and nothing more.

The implementation over pyVoIP 1.6.8 lives in ``ivr.sip.pyvoip_adapter``; unit tests of the
layer above use a fake with the same shape. The adapter reports SIP facts (ringing, answered,
ended with status X); every decision (ring timeout, what a status means for the survey) is
taken above it.

Audio is 8 kHz mono unsigned 8-bit linear PCM (``play``: 8000 bytes per second), or signed
16-bit little-endian (``play_linear16``, where a line has it: encoded straight to G.711).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Protocol


class LineState(enum.Enum):
    DIALING = "dialing"  # INVITE sent, nothing final yet (maybe 100 Trying)
    RINGING = "ringing"  # 180/183 seen
    ANSWERED = "answered"  # 200 OK received and ACKed; media flowing
    ENDED = "ended"  # final: rejected, cancelled, hung up by either side, or failed


class KeySource(enum.StrEnum):
    """How a key arrived (stored per attempt as one letter per key)."""

    RFC4733 = "r"  # RTP telephone-event, on whatever payload type the peer's SDP gave it
    SIP_INFO = "i"  # INFO with application/dtmf-relay or application/dtmf
    INBAND = "b"  # tones in the received audio


@dataclass(frozen=True)
class KeyPress:
    key: str
    source: KeySource


class EndedBy(enum.Enum):
    REMOTE_REJECT = "remote_reject"  # a final non-2xx answer to our INVITE (see final_status)
    REMOTE_BYE = "remote_bye"  # the citizen hung up after answering
    LOCAL_HANGUP = "local_hangup"  # we sent BYE
    LOCAL_CANCEL = "local_cancel"  # we sent CANCEL while it rang (487 or no answer to CANCEL)
    NO_RESPONSE = "no_response"  # nobody answered our INVITE at all (SIP timer B)
    ERROR = "error"  # the stack failed (socket closed, parse error on our side)


@dataclass(frozen=True)
class SipSettings:
    server: str
    port: int
    username: str
    password: str = field(repr=False)
    local_ip: str
    sip_port: int
    rtp_port_low: int
    rtp_port_high: int
    register: bool = True
    # Used as the From display name / user part where the stack allows it.
    caller_id: str | None = None
    register_expires_s: int = 300  # asked of the registrar; refreshed at half the grant
    register_timeout_s: float = 5.0  # one REGISTER exchange, retransmissions included
    # A ``night`` gives up (exit 4) when the registration stays lost this long.
    register_give_up_s: float = 300.0


@dataclass(frozen=True)
class RegistrationStatus:
    """Whether calls may be placed: ``state`` is not_used (direct to a trunk), registering,
    registered, lost (retried with backoff; ``detail`` says why and when) or stopped."""

    state: str
    detail: str = ""
    lost_for_s: float | None = None  # seconds since the registration was lost

    @property
    def can_dial(self) -> bool:
        return self.state in ("not_used", "registered")

    def describe(self) -> str:
        return self.state + (f" ({self.detail})" if self.detail else "")


REGISTRATION_NOT_USED = RegistrationStatus("not_used")


class TransferResult(Protocol):
    @property
    def transferred(self) -> bool: ...

    @property
    def detail(self) -> str: ...


@dataclass
class MediaCounters:
    """Per call: datagrams taken, and dropped by kind (``runt``: shorter than an RTP header,
    ``malformed``: not RTP version 2 or lengths that do not add up, ``foreign``: from an
    address other than the far end's)."""

    received: int = 0
    runt: int = 0
    malformed: int = 0
    foreign: int = 0

    @property
    def dropped(self) -> int:
        return self.runt + self.malformed + self.foreign


class OutboundCall(Protocol):
    """One outbound call. All methods are thread-safe and never block for long."""

    @property
    def call_id(self) -> str: ...

    @property
    def state(self) -> LineState: ...

    @property
    def final_status(self) -> int | None:
        """SIP status of the final answer to the INVITE (200, 486, 487, ...); None if none came."""
        ...

    @property
    def final_reason(self) -> str | None:
        """Reason phrase, plus the Reason header (e.g. Q.850 cause) if the peer sent one."""
        ...

    @property
    def ended_by(self) -> EndedBy | None: ...

    @property
    def media_counters(self) -> MediaCounters:
        """RTP datagrams taken and dropped (runt, malformed, foreign) so far."""
        ...

    def play(self, audio: bytes) -> None:
        """Queue audio (u8, 8 kHz) after whatever is queued. Returns at once."""
        ...

    def stop_audio(self) -> None:
        """Drop every queued, not yet sent, audio byte (barge-in)."""
        ...

    def take_keys(self) -> list[KeyPress]:
        """Every DTMF key received since the previous call, in order. A press seen by two
        paths (say RFC 4733 and in-band) is given once."""
        ...

    def wait_for_key(self, timeout: float) -> None:
        """Return as soon as a key is waiting to be taken, or after ``timeout`` seconds (the
        runner's wait between two looks at the line: a key ends it at once)."""
        ...

    def listen_for_keys(self, on: bool) -> None:
        """Whether a key is awaited now. In-band detection (analysis of the received audio)
        runs only while on; RFC 4733 and SIP INFO keys are taken either way. On by default."""
        ...

    def start_capture(self) -> None:
        """Start keeping the audio received from the far end (a comment is being recorded),
        from the moment everything queued with ``play`` has been sent: never our prompt."""
        ...

    def take_audio(self) -> bytes:
        """The far end's audio kept since the previous call (or start_capture), decoded from
        the negotiated G.711 law to 16-bit signed little-endian PCM, 8 kHz mono. Works after
        the call ended too (what arrived before the BYE)."""
        ...

    def stop_capture(self) -> None:
        """Stop keeping received audio and drop what was not taken."""
        ...

    @property
    def media_idle_s(self) -> float:
        """Seconds since the last RTP packet from the far end (or since the answer)."""
        ...

    def cancel(self) -> None:
        """Stop a call that has not been answered (CANCEL). No-op once ended."""
        ...

    def hangup(self) -> None:
        """End the call whatever its state: BYE if answered, CANCEL if ringing, no-op if ended."""
        ...

    def transfer(self, target: str) -> None:
        """Ask the far end to call ``target`` (a SIP URI) instead: SIP REFER in this call's
        dialog (RFC 3515). Returns at once; see ``transfer_result``. Once a call; answered only."""
        ...

    @property
    def transfer_result(self) -> TransferResult | None:
        """None until the transfer is settled: the target answered, or it failed (refused,
        no answer to the REFER, or a failure reported by NOTIFY)."""
        ...


class SipPhone(Protocol):
    def start(self) -> None:
        """Bind, register (if configured). Raises RegistrationFailed when the registrar refuses."""
        ...

    def stop(self) -> None:
        """Hang up whatever is still up, de-register, release sockets and threads."""
        ...

    @property
    def registration(self) -> RegistrationStatus:
        """Whether calls may be placed now (see ``RegistrationStatus``)."""
        ...

    def dial(self, number: str) -> OutboundCall:
        """Send an INVITE to ``number`` (the user part: e.g. '375291234567'). Returns at once.

        Raises DialFailed if the INVITE could not be sent."""
        ...
