"""Client transactions (RFC 3261 section 17.1) as pure state machines: responses and clock
ticks in, ``Send``s and events out. No socket, no thread, no clock read: ``now`` is an argument.

pyVoIP 1.6.8 has no INVITE timeout and no CANCEL, hangs on 407, ignores most finals and ACKs
a 2xx wrongly (docs/sip-notes.md, pitfalls 5-9); these replace its ``SIPClient.invite`` loop.

``InviteClient``, one per outbound call::

    CALLING --1xx--> PROCEEDING --2xx--> ANSWERED (the dialog: ivr.sip.dialog)
       |  Timer A: the INVITE again at T1, doubling (stops at the first response)
       |  Timer B: no response in 64*T1 -> ENDED (no_response)
       +--3xx-6xx (ACKed, every copy) --> ENDED (remote_reject), or once per call on
          401/407: the INVITE again with the digest, CSeq+1, a new branch
    cancel(): CANCEL now if a 1xx came, else as soon as one comes (RFC 3261 9.1); the call
    ends at the 487, or locally CANCEL_GRACE later. A 2xx crossing the CANCEL is ACKed and
    BYEd (``Answered`` is not given: nobody heard anything) and ends as local_cancel with 200.

``NonInviteClient``: a BYE, CANCEL or other in-dialog request, sent again at T1 doubling to
T2 (Timer E) until a final comes or 64*T1 passes (Timer F).
"""

from __future__ import annotations

import dataclasses
import enum

from ivr.sip import digest, sip_messages as sm
from ivr.sip.api import EndedBy
from ivr.sip.sip_events import Answered, Ended, Output, Ringing, Send

T1, T2 = 0.5, 4.0
TIMER_B = 64 * T1  # 32 s: no response at all to the INVITE
TIMER_F = 64 * T1  # 32 s: no final to a non-INVITE request
CANCEL_GRACE = 4.0  # after CANCEL, end locally if no final answer came


class InviteState(enum.Enum):
    CALLING = "calling"  # INVITE sent, no response yet: Timer A and B run
    PROCEEDING = "proceeding"  # a 1xx came
    ANSWERED = "answered"  # a 2xx came: the dialog is confirmed
    ENDED = "ended"


@dataclasses.dataclass
class NonInviteClient:
    """One non-INVITE request in flight over UDP."""

    method: str
    cseq: int
    data: bytes
    sent_at: float
    next_at: float
    interval: float = T1
    status: int | None = None  # the final, once it came (or 408 after Timer F)

    @classmethod
    def start(cls, method: str, cseq: int, data: bytes, now: float) -> tuple[NonInviteClient, Send]:
        return cls(method, cseq, data, now, now + T1), Send(data)

    @property
    def done(self) -> bool:
        return self.status is not None

    @property
    def wake(self) -> float:
        """When ``tick`` next has work: a retransmission or Timer F."""
        return min(self.next_at, self.sent_at + TIMER_F)

    def matches(self, msg: sm.SipMessage) -> bool:
        return msg.cseq == (self.cseq, self.method)

    def on_response(self, msg: sm.SipMessage) -> bool:
        """True when ``msg`` is this request's first final answer."""
        if self.done:
            return False
        if msg.status < 200:
            self.interval = T2  # Proceeding: again every T2 (RFC 3261 17.1.2.2)
            return False
        self.status = msg.status
        return True

    def tick(self, now: float) -> list[Send]:
        """Timer E (again, T1 doubling to T2) and F (give up: ``status`` 408)."""
        if self.done:
            return []
        if now - self.sent_at >= TIMER_F:
            self.status = 408
            return []
        if now < self.next_at:
            return []
        self.interval = min(self.interval * 2, T2)
        self.next_at = now + self.interval
        return [Send(self.data)]


@dataclasses.dataclass(frozen=True)
class Credentials:
    username: str
    password: str = dataclasses.field(repr=False)


class InviteClient:
    """The INVITE client transaction of one outbound call, its CANCEL and digest retry."""

    def __init__(self, invite: sm.InviteRequest, credentials: Credentials) -> None:
        self.invite = invite
        self.prev_invite: sm.InviteRequest | None = None  # the challenged one
        self.credentials = credentials
        self.state = InviteState.CALLING
        self.auth_tried = False
        self.sent_at = 0.0
        self.retransmit_at = 0.0
        self.interval = T1
        self.cancel_wanted_at: float | None = None
        self.cancel_tx: NonInviteClient | None = None
        self.dialog: sm.Dialog | None = None  # from the first 2xx
        self.ack: bytes | None = None
        self.race_bye: NonInviteClient | None = None  # the BYE of a 2xx that crossed CANCEL
        self.rang = False

    @property
    def call_id(self) -> str:
        return self.invite.call_id

    @property
    def cancelled(self) -> bool:
        return self.cancel_wanted_at is not None

    def start(self, now: float) -> list[Output]:
        self.sent_at, self.interval, self.retransmit_at = now, T1, now + T1
        return [Send(self.invite.render())]

    def cancel(self, now: float) -> list[Output]:
        """Stop ringing. A no-op once answered, ended or already cancelled."""
        if self.state in (InviteState.ANSWERED, InviteState.ENDED) or self.cancelled:
            return []
        self.cancel_wanted_at = now
        return self._send_cancel(now) if self.state is InviteState.PROCEEDING else []

    def _send_cancel(self, now: float) -> list[Output]:
        if self.cancel_tx is not None:
            return []
        self.cancel_tx, send = NonInviteClient.start(
            "CANCEL", self.invite.cseq, sm.build_cancel(self.invite), now
        )
        return [send]

    def end(
        self, by: EndedBy, status: int | None = None, reason: str | None = None
    ) -> list[Output]:
        if self.state is InviteState.ENDED:
            return []
        self.state = InviteState.ENDED
        return [Ended(self.call_id, by, status, reason)]

    # ------------------------------------------------------------ responses
    def on_response(self, msg: sm.SipMessage, now: float) -> list[Output]:
        """A response with our Call-ID from the proxy (INVITE or CANCEL in its CSeq)."""
        for tx in (self.cancel_tx, self.race_bye):
            if tx is not None and tx.matches(msg):
                tx.on_response(msg)
                return []
        if msg.cseq[1] != "INVITE":
            return []
        status, cseq = msg.status, msg.cseq[0]
        if cseq != self.invite.cseq:  # a retransmitted final of the challenged INVITE
            prev = self.prev_invite
            if status >= 300 and prev is not None and cseq == prev.cseq:
                return [Send(sm.build_ack_non2xx(prev, msg))]
            return []
        if status < 200:
            return self._provisional(status, now)
        if status < 300:
            return self._on_2xx(msg, now)
        out: list[Output] = [Send(sm.build_ack_non2xx(self.invite, msg))]  # 17.1.1.3, every copy
        if self.state in (InviteState.ENDED, InviteState.ANSWERED):
            return out
        kind = "www-authenticate" if status == 401 else "proxy-authenticate"
        challenge = msg.header(kind)
        if status in (401, 407) and challenge and not self.auth_tried and not self.cancelled:
            return out + self._retry_with_auth(status, challenge, now)
        by = EndedBy.LOCAL_CANCEL if self.cancelled else EndedBy.REMOTE_REJECT
        return out + self.end(by, status, sm.final_reason(msg))

    def _provisional(self, status: int, now: float) -> list[Output]:
        out: list[Output] = []
        if self.state is InviteState.CALLING:
            self.state = InviteState.PROCEEDING  # Timer A and B stop
            if status >= 180:
                out.append(Ringing(self.call_id))
        elif self.state is InviteState.PROCEEDING and status >= 180 and not self.rang:
            out.append(Ringing(self.call_id))
        self.rang = self.rang or status >= 180
        if self.cancelled:  # a CANCEL held back until now (RFC 3261 9.1)
            out += self._send_cancel(now)
        return out

    def _retry_with_auth(self, status: int, challenge: str, now: float) -> list[Output]:
        """The same Call-ID and From tag, CSeq+1, a new branch, the digest over the R-URI
        (pyVoIP: 407 hung call(); 401 reused the branch and the wrong digest uri)."""
        old = self.invite
        value = digest.authorization_value(
            digest.parse_challenge(challenge),
            username=self.credentials.username,
            password=self.credentials.password,
            method="INVITE",
            uri=old.ruri,
        )
        name = "Authorization" if status == 401 else "Proxy-Authorization"
        self.prev_invite, self.auth_tried = old, True
        self.invite = dataclasses.replace(
            old, branch=sm.new_branch(), cseq=old.cseq + 1, auth_header=(name, value)
        )
        self.state = InviteState.CALLING
        return self.start(now)

    def _on_2xx(self, msg: sm.SipMessage, now: float) -> list[Output]:
        """The ACK built from the 2xx (pyVoIP: random To-tag, R-URI = To, no Route; pitfall
        9), sent again for every retransmitted 2xx."""
        if self.dialog is not None:
            return [Send(self.ack)] if self.ack is not None else []
        self.dialog = sm.Dialog.from_2xx(self.invite, msg)
        self.ack = self.dialog.ack(self.invite.via_host, self.invite.via_port)
        out: list[Output] = [Send(self.ack)]
        reason = sm.final_reason(msg)
        if self.state is InviteState.ENDED or self.cancelled:
            # the 2xx crossed our CANCEL (RFC 3261 9.1): ACK, then BYE; nobody heard anything
            bye = self.dialog.bye(self.invite.via_host, self.invite.via_port)
            self.race_bye, send = NonInviteClient.start("BYE", self.invite.cseq + 1, bye, now)
            out.append(send)
            return out + self.end(EndedBy.LOCAL_CANCEL, 200, reason)
        self.state = InviteState.ANSWERED
        return [*out, Answered(self.call_id, msg, reason)]

    # ------------------------------------------------------------ timers
    def tick(self, now: float) -> list[Output]:
        """Timer A and B while CALLING; the CANCEL's Timer E/F; the CANCEL grace."""
        out: list[Output] = []
        for tx in (self.cancel_tx, self.race_bye):
            if tx is not None:
                out += tx.tick(now)
        if self.state is InviteState.ENDED or self.state is InviteState.ANSWERED:
            return out
        if self.cancel_wanted_at is not None and now - self.cancel_wanted_at >= CANCEL_GRACE:
            return out + self.end(EndedBy.LOCAL_CANCEL)
        if self.state is InviteState.CALLING:
            if now - self.sent_at >= TIMER_B:
                return out + self.end(EndedBy.NO_RESPONSE)
            if now >= self.retransmit_at:
                self.interval *= 2  # Timer A doubles, uncapped (RFC 3261 17.1.1.2)
                self.retransmit_at = now + self.interval
                out.append(Send(self.invite.render()))
        return out

    def next_wake(self) -> float | None:
        """The earliest time ``tick`` may have something to do."""
        times = [tx.wake for tx in (self.cancel_tx, self.race_bye) if tx and not tx.done]
        if self.state in (InviteState.CALLING, InviteState.PROCEEDING):
            if self.cancel_wanted_at is not None:
                times.append(self.cancel_wanted_at + CANCEL_GRACE)
            if self.state is InviteState.CALLING:
                times += [self.retransmit_at, self.sent_at + TIMER_B]
        return min(times) if times else None
