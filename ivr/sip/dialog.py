"""The confirmed dialog of one outbound call (RFC 3261 section 12), UAC side, as a pure state
machine: in-dialog requests and clock ticks in, ``Send``s and events out. No socket, no
thread, no clock read.

What it does that pyVoIP 1.6.8 did not (docs/sip-notes.md, pitfalls 9, 12, 24):

* an in-dialog request is ours only when its tags are the dialog's (theirs in From, ours in
  To) and it comes from the proxy or the 2xx's Contact address (pyVoIP: Call-ID only);
* BYE either way: theirs answered 200, ours a non-INVITE client transaction (Timer E/F);
* INFO keys (application/dtmf-relay, application/dtmf) answered 200, anything else 415;
* re-INVITEs (hold, unhold, a new address, the other G.711 law) answered 200 with our SDP
  when PCMU or PCMA is offered (pyVoIP: 488); that 200 goes again at T1 doubling to T2
  until its ACK, for at most 64*T1, and a retransmitted re-INVITE gets the same 200
  (RFC 3261 13.3.1.4);
* ``transfer`` sends a blind-transfer REFER (``ivr.sip.refer``, RFC 3515): its response and
  NOTIFYs are routed to it, its timers ticked, and our BYE after it numbered above it;
* ``request`` sends any other in-dialog request as a non-INVITE client transaction; its
  final comes back as ``DialogResponse``, and a NOTIFY with no REFER of ours is answered 200
  and handed on as ``DialogRequest``.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import logging

from ivr.sip import sdp, sip_messages as sm
from ivr.sip.api import EndedBy
from ivr.sip.refer import ReferClient, ReferResult
from ivr.sip.sip_events import (
    Address,
    DialogRequest,
    DialogResponse,
    Ended,
    KeyReceived,
    MediaChanged,
    Output,
    Send,
)
from ivr.sip.transaction import T1, T2, TIMER_F, NonInviteClient

log = logging.getLogger(__name__)

# Answered 200 and handed on as DialogRequest: a NOTIFY reports on a REFER of ours (RFC 3515).
HANDED_ON = frozenset({"NOTIFY"})


@dataclasses.dataclass
class Sent2xx:
    """Our 2xx to a re-INVITE, until its ACK (RFC 3261 13.3.1.4: Timer G/H over UDP)."""

    cseq: int
    data: bytes
    target: Address
    sent_at: float
    next_at: float
    interval: float = T1
    acked: bool = False

    def tick(self, now: float) -> list[Output]:
        if self.acked:
            return []
        if now - self.sent_at >= TIMER_F:
            self.acked = True  # give up; the media goes on as agreed
            log.warning("no ACK for our 200 to a re-INVITE (CSeq %s)", self.cseq)
            return []
        if now < self.next_at:
            return []
        self.interval = min(self.interval * 2, T2)
        self.next_at = now + self.interval
        return [Send(self.data, self.target)]


@dataclasses.dataclass(frozen=True)
class LocalMedia:
    """What our SDP answer says: where we are and which session it is."""

    local_ip: str
    sip_port: int
    username: str
    rtp_port: int
    session_id: int


class CallDialog:
    """One confirmed dialog. ``codec`` is the G.711 law we send ("pcmu"/"pcma"), set by the
    adapter from the media it started and kept up to date by re-INVITEs."""

    def __init__(
        self,
        invite: sm.InviteRequest,
        dialog: sm.Dialog,
        proxy: Address,
        media: LocalMedia,
    ) -> None:
        self.invite = invite
        self.dialog = dialog
        self.media = media
        self.codec = "pcmu"
        self.sdp_version = 2
        self.local_cseq = invite.cseq  # the next request of ours takes local_cseq + 1
        self.peer_addrs: set[Address] = {proxy}
        contact = literal_address(dialog.remote_target)
        if contact is not None:
            self.peer_addrs.add(contact)
        self.reinvite_ok: Sent2xx | None = None
        self.requests: list[NonInviteClient] = []  # ours in flight (BYE, INFO, ...)
        self.refer: ReferClient | None = None  # a blind transfer asked for (ivr.sip.refer)
        self.ended = False

    @property
    def call_id(self) -> str:
        return self.invite.call_id

    def accepts(self, msg: sm.SipMessage, source: Address) -> bool:
        """``msg`` belongs to this dialog: its tags are the dialog's and it comes from the
        proxy or the far end's Contact."""
        return (
            source in self.peer_addrs
            and msg.tag("from") == sm.tag_of(self.dialog.remote)
            and msg.tag("to") == sm.tag_of(self.invite.from_hdr)
        )

    # ------------------------------------------------------------ our requests
    def request(
        self,
        method: str,
        now: float,
        extra: tuple[str, ...] = (),
        body: tuple[str, bytes] | None = None,
    ) -> tuple[int, list[Output]]:
        """Send an in-dialog request (REFER, INFO, ...): returns its CSeq and what to send.
        Its final answer (or 408 after Timer F) comes back as ``DialogResponse``."""
        self.local_cseq += 1
        data = self.dialog.request(
            method, self.local_cseq, self.media.local_ip, self.media.sip_port, extra, body
        )
        tx, send = NonInviteClient.start(method, self.local_cseq, data, now)
        self.requests.append(tx)
        return self.local_cseq, [send]

    def transfer(self, target: str, now: float) -> list[Output]:
        """Blind transfer: a REFER asking the far end to call ``target`` (once a call; its
        NOTIFYs settle ``transfer_result``; our BYE after it carries a CSeq above it)."""
        if self.ended or self.refer is not None:
            return []
        m = self.media
        contact = f"sip:{m.username}@{m.local_ip}:{m.sip_port}"
        numbered = dataclasses.replace(self.dialog, invite_cseq=self.local_cseq)
        self.refer = ReferClient(numbered, target, (m.local_ip, m.sip_port), contact)
        self.local_cseq = self.refer.cseq
        return [Send(self.refer.start(now))]

    @property
    def transfer_result(self) -> ReferResult | None:
        return None if self.refer is None else self.refer.result

    def hangup(self, now: float, by: EndedBy = EndedBy.LOCAL_HANGUP) -> list[Output]:
        """BYE (sent again until answered) and the call ends now."""
        if self.ended:
            return []
        _, out = self.request("BYE", now)
        self.ended = True
        return [*out, Ended(self.call_id, by)]

    def on_response(self, msg: sm.SipMessage, now: float) -> list[Output]:
        if self.refer is not None and self.refer.matches(msg):
            self.refer.on_response(msg, now)
            return []
        for tx in self.requests:
            if tx.matches(msg) and tx.on_response(msg):
                if tx.method == "BYE":
                    return []
                return [DialogResponse(self.call_id, tx.method, tx.cseq, msg.status, msg)]
        return []

    # ------------------------------------------------------------ their requests
    def on_request(self, msg: sm.SipMessage, source: Address, now: float) -> list[Output]:
        """A request ``accepts`` said is ours."""
        method = msg.method
        if method == "ACK":
            pending = self.reinvite_ok
            if pending is not None and pending.cseq == msg.cseq[0]:
                pending.acked = True
            return []
        if method == "BYE":
            out: list[Output] = [Send(sm.build_response(msg, 200, "OK"), source)]
            if not self.ended:
                self.ended = True
                out.append(Ended(self.call_id, EndedBy.REMOTE_BYE))
            return out
        if method == "INVITE":
            return self._on_reinvite(msg, source, now)
        if method == "INFO":
            return self._on_info(msg, source)
        if method == "OPTIONS":
            return [Send(sm.build_response(msg, 200, "OK"), source)]
        if method == "NOTIFY" and self.refer is not None:
            return [Send(self.refer.on_notify(msg, now), source)]
        if method in HANDED_ON:
            ok = Send(sm.build_response(msg, 200, "OK"), source)
            return [ok, DialogRequest(self.call_id, msg)]
        return [Send(sm.build_response(msg, 405, "Method Not Allowed"), source)]

    def _on_info(self, msg: sm.SipMessage, source: Address) -> list[Output]:
        key = sm.dtmf_of_info(msg)
        if key is None:
            return [Send(sm.build_response(msg, 415, "Unsupported Media Type"), source)]
        out: list[Output] = [Send(sm.build_response(msg, 200, "OK"), source)]
        if not self.ended:
            out.append(KeyReceived(self.call_id, key))
        return out

    def _on_reinvite(self, msg: sm.SipMessage, source: Address, now: float) -> list[Output]:
        """Hold, unhold, a new media address or the other G.711 law: 200 with our SDP (the
        direction mirrored, the codec kept if still offered); an offer with neither PCMU nor
        PCMA: 488 and the call goes on as it was."""
        sent = self.reinvite_ok
        if sent is not None and sent.cseq == msg.cseq[0]:
            return [Send(sent.data, source)]  # a retransmission: the same answer
        offer = sdp.parse_sdp_audio(msg.body) if msg.body.strip() else None
        codec = self.codec
        if offer is not None and offer.payload_of(codec) is None:
            codec = next((c for c in sdp.G711 if offer.payload_of(c) is not None), "")
            if not codec:
                return [Send(sm.build_response(msg, 488, "Not Acceptable Here"), source)]
        out: list[Output] = []
        event_pt, direction = 101, "sendrecv"
        if offer is not None:
            event_pt = offer.payload_of("telephone-event") or 101
            direction = offer.direction
            hold = offer.ip == "0.0.0.0" or direction in ("sendonly", "inactive")
            self.codec = codec
            out.append(MediaChanged(self.call_id, offer.ip, offer.port, codec, event_pt, hold,
                                    direction))  # fmt: skip
        m = self.media
        self.sdp_version += 1
        answer = sdp.sdp_answer(m.local_ip, m.rtp_port, m.session_id,
                                m.session_id + self.sdp_version, event_pt, direction,
                                codec)  # fmt: skip
        contact = f"sip:{m.username}@{m.local_ip}:{m.sip_port}"
        data = sm.build_response_with_body(msg, 200, "OK", contact, "application/sdp", answer)
        self.reinvite_ok = Sent2xx(msg.cseq[0], data, source, now, now + T1)
        return [*out, Send(data, source)]

    # ------------------------------------------------------------ timers
    def tick(self, now: float) -> list[Output]:
        out: list[Output] = []
        if self.reinvite_ok is not None:
            out += self.reinvite_ok.tick(now)
        if self.refer is not None:
            out += [Send(data) for data in self.refer.tick(now)]
        for tx in self.requests:
            out += tx.tick(now)
            if tx.status == 408 and tx.method != "BYE":
                out.append(DialogResponse(self.call_id, tx.method, tx.cseq, 408, None))
        self.requests = [tx for tx in self.requests if not tx.done]
        return out

    def next_wake(self) -> float | None:
        """The earliest time ``tick`` may have something to do."""
        times = [tx.wake for tx in self.requests if not tx.done]
        sent = self.reinvite_ok
        if sent is not None and not sent.acked:
            times.append(min(sent.next_at, sent.sent_at + TIMER_F))
        if self.refer is not None and (wake := self.refer.next_wake()) is not None:
            times.append(wake)
        return min(times) if times else None

    @property
    def busy(self) -> bool:
        """Something is still being sent again (so the dialog must be kept after the end)."""
        pending = self.reinvite_ok is not None and not self.reinvite_ok.acked
        return pending or any(not tx.done for tx in self.requests)


def literal_address(uri: str) -> Address | None:
    """host:port of a SIP URI when the host is an IP literal (never a DNS lookup)."""
    hostport = uri.split("@", 1)[-1].split(";", 1)[0].split(">", 1)[0]
    host, _, port = hostport.partition(":")
    try:
        ipaddress.ip_address(host)
        return host, int(port or 5060)
    except ValueError:
        return None
