"""``SipPhone`` over pyVoIP 1.6.8: a thin adapter plus small, named fixes of pyVoIP defects.

pyVoIP keeps: the UDP socket and its receive thread, REGISTER (401 digest), RTP (PCMU and
PCMA, RFC 2833 reception), the audio/DTMF buffers and RTP port allocation. Everything about the
INVITE transaction and dialog is done here, because pyVoIP gets it wrong (REPORT.md =
/work/shared/sip-lab/REPORT.md, section 1.2 and pitfalls 4-18):

pyVoIP's classes are subclassed at their override points in ``ivr.sip.pyvoip_overrides``:

* ``IvrSipClient.invite`` only sends; no receive in the caller's thread (pitfall 8).
* ``IvrSipClient.recv`` hands every datagram to the adapter, which answers 401/407,
  ACKs every final, builds the 2xx ACK/BYE/CANCEL itself (pitfalls 5-7, 9, 14).
* ``IvrSipClient.gen_call_id``: random Call-IDs (pitfall 10).
* ``IvrSipClient.start/stop``: bounded registration, optional REGISTER, clean stop
  (pitfalls 4, 18).
* ``SafeRtpClient`` (``ivr.sip.rtp``): telephone-event >= 16 ignored (pitfall 12); a new
  event is a new timestamp, not a marker bit (a lost first packet lost the key); the
  payload type is the one the peer's SDP gave (pyVoIP maps it from ``a=rtpmap``); received
  PCMU or PCMA goes to the in-band DTMF detector instead of pyVoIP's never-read buffer;
  PCMA is sent A-law encoded (pyVoIP: mu-law labelled PCMA, pitfall 13); stop joins its
  threads; while a comment is recorded the received audio is also kept, decoded to 16-bit
  PCM from the negotiated law. We offer PCMU and PCMA; the far end's answer picks.
* INFO keys (application/dtmf-relay, application/dtmf) answered 200; re-INVITEs (hold,
  unhold, new address, the other G.711 law) answered 200 with our SDP when PCMU or PCMA is
  offered (pyVoIP: 488); that 200 is sent again until its ACK comes, and a retransmitted
  re-INVITE gets the same 200 (RFC 3261 13.3.1.4).

No business decisions here: ring timeouts and what a status means are decided above.
"""

from __future__ import annotations

import dataclasses
import logging
import random
import threading
import time
from typing import Any, Literal

import pyVoIP.VoIP  # noqa: F401  (pyVoIP must import VoIP before SIP: circular imports)
from pyVoIP import RTP, SIP
from pyVoIP.VoIP.status import PhoneStatus
from pyVoIP.VoIP.VoIP import CallState

from ivr.errors import DialFailed, RegistrationFailed, SipError
from ivr.sip import sip_messages as sm
from ivr.sip.api import EndedBy, KeyPress, KeySource, LineState, SipSettings
from ivr.sip.keys import KeyCollector
from ivr.sip.pyvoip_overrides import IvrVoipPhone
from ivr.sip.redact import mask_digits, redact_sip

log = logging.getLogger(__name__)

TIMER_B = 32.0  # RFC 3261 17.1.1.2: 64*T1, no response at all to the INVITE
CANCEL_GRACE = 4.0  # after CANCEL, end locally if no final answer came
ENDED_RETENTION = 32.0  # keep ended calls this long to re-ACK retransmitted finals


_PAYLOAD_TYPES = {"pcmu": RTP.PayloadType.PCMU, "pcma": RTP.PayloadType.PCMA}


@dataclasses.dataclass
class _Sent2xx:
    """Our 2xx to a re-INVITE: over UDP it is sent again (T1 doubling to T2) until its ACK
    comes, or for 64*T1 (RFC 3261 13.3.1.4); a retransmitted re-INVITE gets it again."""

    cseq: int
    data: bytes
    target: Any
    sent_at: float
    next_at: float
    interval: float = 0.5
    acked: bool = False


def _codec_name(payload_type: Any) -> str:
    return "pcma" if payload_type == RTP.PayloadType.PCMA else "pcmu"


class PyVoipCall:
    """``OutboundCall``; all state lives here and is guarded by the phone's lock."""

    def __init__(self, phone: PyVoipPhone, invite: sm.InviteRequest, vcall: Any) -> None:
        self._phone = phone
        self.invite = invite
        self.prev_invite: sm.InviteRequest | None = None
        self.vcall = vcall
        self._state = LineState.DIALING
        self._final_status: int | None = None
        self._final_reason: str | None = None
        self._ended_by: EndedBy | None = None
        self.dialog: sm.Dialog | None = None
        self.ack: bytes | None = None
        self.auth_tried = False
        self.got_response = False
        self.cancel_sent_at: float | None = None
        self.ended_at = 0.0
        self.invite_sent_at = time.monotonic()
        self.retransmit_interval = 0.5
        self.retransmit_at = self.invite_sent_at + 0.5
        self.pending_audio: list[bytes] = []
        self.keys = KeyCollector()
        vcall.key_sink = self.keys.add
        self.answered_mono = 0.0
        self.held = False  # the far end put us on hold: no RTP is expected
        self.sdp_version = 2
        self.reinvite_ok: _Sent2xx | None = None  # our 200 to the last re-INVITE

    @property
    def call_id(self) -> str:
        return self.invite.call_id

    @property
    def state(self) -> LineState:
        return self._state

    @property
    def final_status(self) -> int | None:
        return self._final_status

    @property
    def final_reason(self) -> str | None:
        return self._final_reason

    @property
    def ended_by(self) -> EndedBy | None:
        return self._ended_by

    @property
    def codec(self) -> str | None:
        """The G.711 law we send, as the far end's answer chose it ("PCMU"/"PCMA")."""
        clients = self.vcall.RTPClients
        return _codec_name(clients[0].preference).upper() if clients else None

    def play(self, audio: bytes) -> None:
        with self._phone.lock:
            if self._state is LineState.ANSWERED:
                self.vcall.write_audio(audio)
            elif self._state is not LineState.ENDED:
                self.pending_audio.append(audio)

    def stop_audio(self) -> None:
        with self._phone.lock:
            self.pending_audio.clear()
            for client in self.vcall.RTPClients:
                client.drop_queued_audio()

    def take_keys(self) -> list[KeyPress]:
        return self.keys.take()

    def start_capture(self) -> None:
        for client in self.vcall.RTPClients:
            client.set_capture(True)

    def take_audio(self) -> bytes:
        return b"".join(client.take_capture() for client in self.vcall.RTPClients)

    def stop_capture(self) -> None:
        for client in self.vcall.RTPClients:
            client.set_capture(False)

    @property
    def media_idle_s(self) -> float:
        if self.held or self._state is not LineState.ANSWERED:
            return 0.0
        last: float = max([self.answered_mono, *(c.last_rx for c in self.vcall.RTPClients)])
        return time.monotonic() - last

    def cancel(self) -> None:
        with self._phone.lock:
            if self._state in (LineState.ENDED, LineState.ANSWERED) or self.cancel_sent_at:
                return
            self.cancel_sent_at = time.monotonic()
            self._phone.send(sm.build_cancel(self.invite))

    def hangup(self) -> None:
        with self._phone.lock:
            if self._state is LineState.ANSWERED and self.dialog is not None:
                self._phone.send(self.dialog.bye(self.invite.via_host, self.invite.via_port))
                self._phone.end(self, EndedBy.LOCAL_HANGUP)
            else:
                self.cancel()


class PyVoipPhone:
    """``SipPhone`` over pyVoIP 1.6.8."""

    def __init__(self, settings: SipSettings) -> None:
        self.settings = settings
        self.lock = threading.RLock()
        self.changed = threading.Condition(self.lock)
        self._calls: dict[str, PyVoipCall] = {}
        self._vphone = IvrVoipPhone(settings)
        self._vphone.ivr_sip.datagram_handler = self._on_datagram
        self._running = False
        self._stopping = False
        self._housekeeper: threading.Thread | None = None
        self._registration_failed = False

    @property
    def registration(self) -> Literal["registered", "unregistered", "failed"]:
        """For the node heartbeat and /metrics: unregistered when registration is not
        configured or the phone is not running; failed when the registrar refused at start or a
        refresh failed (pyVoIP keeps retrying a refresh)."""
        if self._registration_failed:
            return "failed"
        if not self.settings.register or not self._running:
            return "unregistered"
        client = self._vphone.ivr_sip
        if self._vphone._status is PhoneStatus.FAILED or client.registerFailures > 0:
            return "failed"
        return "registered"

    # ------------------------------------------------------------ SipPhone
    def start(self) -> None:
        where = f"{self.settings.server}:{self.settings.port}"
        try:
            self._vphone.ivr_sip.start_phone(self.settings.register)
        except Exception as exc:
            self._vphone.ivr_sip.stop()
            if isinstance(exc, OSError) and not isinstance(exc, TimeoutError):
                raise SipError(
                    f"cannot use SIP socket {self.settings.local_ip}:{self.settings.sip_port} "
                    f"(registrar {where}): {exc}"
                ) from exc
            self._registration_failed = True
            raise RegistrationFailed(
                f"registration as {self.settings.username!r} at {where} failed: "
                f"{type(exc).__name__}"
            ) from exc
        self._vphone.NSD = True
        self._running = True
        self._housekeeper = threading.Thread(
            target=self._housekeeping, name="ivr SIP timers", daemon=True
        )
        self._housekeeper.start()
        log.info(
            "SIP phone started on %s:%s (registrar %s, register=%s)",
            self.settings.local_ip,
            self.settings.sip_port,
            where,
            self.settings.register,
        )

    def stop(self) -> None:
        with self.lock:
            self._stopping = True
            for call in list(self._calls.values()):
                call.hangup()
            deadline = time.monotonic() + CANCEL_GRACE + 0.5
            while any(c.state is not LineState.ENDED for c in self._calls.values()):
                if not self.changed.wait(timeout=deadline - time.monotonic()):
                    break
            for call in list(self._calls.values()):
                self.end(call, EndedBy.LOCAL_CANCEL)
        self._running = False
        if self._housekeeper is not None:
            self._housekeeper.join(timeout=2.0)
        self._vphone.ivr_sip.stop()
        self._vphone.NSD = False
        log.info("SIP phone on %s:%s stopped", self.settings.local_ip, self.settings.sip_port)

    def dial(self, number: str) -> PyVoipCall:
        if not self._running or self._stopping:
            raise DialFailed(f"cannot dial {mask_digits(number)}: SIP phone not started")
        s = self.settings
        host = s.server if s.port == 5060 else f"{s.server}:{s.port}"
        display = f'"{s.caller_id}" ' if s.caller_id else ""
        call_id = sm.new_call_id(f"{s.local_ip}:{s.sip_port}")
        try:
            with self.lock:  # pyVoIP's request_port() is not thread-safe
                rtp_port = self._vphone.request_port(blocking=False)
        except Exception as exc:
            raise DialFailed(f"no free RTP port for call {call_id}") from exc
        invite = sm.InviteRequest(
            ruri=f"sip:{number}@{host}",
            via_host=s.local_ip,
            via_port=s.sip_port,
            branch=sm.new_branch(),
            from_hdr=f"{display}<sip:{s.username}@{host}>;tag={sm.new_tag()}",
            to_hdr=f"<sip:{number}@{host}>",
            call_id=call_id,
            cseq=1,
            contact=f"sip:{s.username}@{s.local_ip}:{s.sip_port}",
            sdp=sm.sdp_offer(s.local_ip, rtp_port, random.randint(1, 10**9)),
        )
        holder: list[PyVoipCall] = []

        def register(vcall: Any) -> None:
            with self.lock:
                holder.append(PyVoipCall(self, invite, vcall))
                self._calls[call_id] = holder[0]

        try:
            self._vphone.call_with(invite, rtp_port, register)
        except OSError as exc:
            self._vphone.assignedPorts.remove(rtp_port)
            raise DialFailed(f"INVITE for call {call_id} could not be sent: {exc}") from exc
        log.info("call %s: INVITE sent", call_id)
        return holder[0]

    # ------------------------------------------------------------ internals
    def send(self, data: bytes, target: tuple[str, int] | None = None) -> None:
        target = target or (self.settings.server, self.settings.port)
        if log.isEnabledFor(logging.DEBUG):
            log.debug("SIP -> %s:%s\n%s", target[0], target[1],
                      redact_sip(data.decode(errors="replace")))  # fmt: skip
        try:
            self._vphone.ivr_sip.out.sendto(data, target)
        except OSError as exc:
            log.warning("SIP send to %s:%s failed: %s", target[0], target[1], exc)

    def end(
        self, call: PyVoipCall, by: EndedBy, status: int | None = None, reason: str | None = None
    ) -> None:
        """Mark ENDED once: stop RTP, leave pyVoIP's call table, release the RTP port."""
        with self.lock:
            if call._state is LineState.ENDED:
                return
            call._state, call._ended_by, call.ended_at = LineState.ENDED, by, time.monotonic()
            if status is not None and call._final_status is None:
                call._final_status, call._final_reason = status, reason
            for client in call.vcall.RTPClients:
                client.stop()
            call.vcall.state = CallState.ENDED
            self._vphone.calls.pop(call.call_id, None)
            if call.vcall.assignedPorts:
                self._vphone.release_ports(call=call.vcall)
                call.vcall.assignedPorts = {}
            log.info("call %s ended by %s (final %s %s)", call.call_id, by.value,
                     call._final_status, call._final_reason or "")  # fmt: skip
            self.changed.notify_all()

    def _on_datagram(self, raw: bytes) -> None:
        try:
            msg = sm.parse(raw)
        except ValueError:
            log.debug("ignored non-SIP datagram (%d bytes)", len(raw))
            return
        if log.isEnabledFor(logging.DEBUG):
            log.debug("SIP <-\n%s", redact_sip(raw.decode(errors="replace")))
        with self.lock:
            call = self._calls.get(msg.call_id)
            if msg.is_response:
                if call is not None and msg.cseq[1] == "INVITE":
                    self._on_invite_response(call, msg)
                return
            if msg.method == "BYE":
                known = call is not None and call.dialog is not None
                self.send(sm.build_response(msg, 200 if known else 481,
                                            "OK" if known else "Call Does Not Exist"),
                          sm.response_target(msg))  # fmt: skip
                if call is not None and known:
                    self.end(call, EndedBy.REMOTE_BYE)
            elif msg.method == "OPTIONS":
                self.send(sm.build_response(msg, 200, "OK"), sm.response_target(msg))
            elif msg.method == "INVITE":
                if call is not None and call.dialog is not None:
                    self._on_reinvite(call, msg)
                else:  # we only dial out
                    code, phrase = (488, "Not Acceptable Here") if call else (486, "Busy Here")
                    self.send(sm.build_response(msg, code, phrase, sm.new_tag()),
                              sm.response_target(msg))  # fmt: skip
            elif msg.method == "INFO":
                self._on_info(call, msg)
            elif msg.method == "CANCEL":
                self.send(sm.build_response(msg, 481, "Call Does Not Exist"),
                          sm.response_target(msg))  # fmt: skip
            elif msg.method == "ACK":
                pending = call.reinvite_ok if call is not None else None
                if pending is not None and pending.cseq == msg.cseq[0]:
                    pending.acked = True
            else:
                self.send(sm.build_response(msg, 405, "Method Not Allowed"),
                          sm.response_target(msg))  # fmt: skip

    def _on_info(self, call: PyVoipCall | None, msg: sm.SipMessage) -> None:
        """INFO in a dialog: DTMF (dtmf-relay or dtmf) becomes a key; anything else 415."""
        if call is None or call.dialog is None:
            self.send(sm.build_response(msg, 481, "Call Does Not Exist"), sm.response_target(msg))
            return
        key = sm.dtmf_of_info(msg)
        if key is None:
            self.send(sm.build_response(msg, 415, "Unsupported Media Type"),
                      sm.response_target(msg))  # fmt: skip
            return
        self.send(sm.build_response(msg, 200, "OK"), sm.response_target(msg))
        if call._state is LineState.ANSWERED:
            call.keys.add(key, KeySource.SIP_INFO)

    def _on_reinvite(self, call: PyVoipCall, msg: sm.SipMessage) -> None:
        """Hold, unhold, a new media address or the other G.711 law: 200 with our SDP (the
        direction mirrored, the codec kept if still offered); an offer with neither PCMU nor
        PCMA: 488 and the call goes on as it was."""
        target = sm.response_target(msg)
        if call.reinvite_ok is not None and call.reinvite_ok.cseq == msg.cseq[0]:
            self.send(call.reinvite_ok.data, target)  # a retransmission: the same answer
            return
        offer = sm.parse_sdp_audio(msg.body) if msg.body.strip() else None
        clients = call.vcall.RTPClients
        codec = _codec_name(clients[0].preference) if clients else "pcmu"
        if offer is not None and offer.payload_of(codec) is None:
            codec = next((c for c in sm.G711 if offer.payload_of(c) is not None), "")
            if not codec:
                self.send(sm.build_response(msg, 488, "Not Acceptable Here"), target)
                return
        event_pt = 101
        direction = "sendrecv"
        if offer is not None:
            event_pt = offer.payload_of("telephone-event") or 101
            direction = offer.direction
            on_hold = offer.ip == "0.0.0.0" or direction in ("sendonly", "inactive")
            for client in clients:
                if not on_hold:
                    client.outIP, client.outPort = offer.ip, offer.port
                client.assoc[event_pt] = RTP.PayloadType.EVENT
                client.assoc[sm.G711[codec]] = client.preference = _PAYLOAD_TYPES[codec]
                client.last_rx = time.monotonic()
            call.held = on_hold
            log.info("call %s: re-INVITE (%s, %s)", call.call_id,
                     "hold" if on_hold else direction, codec.upper())  # fmt: skip
        port = clients[0].inPort if clients else 0
        call.sdp_version += 1
        session = int(call.invite.sdp.split("o=ivr ", 1)[1].split()[0])
        sdp = sm.sdp_answer(self.settings.local_ip, port, session, session + call.sdp_version,
                            event_pt, direction, codec)  # fmt: skip
        contact = f"sip:{self.settings.username}@{self.settings.local_ip}:{self.settings.sip_port}"
        data = sm.build_response_with_body(msg, 200, "OK", contact, "application/sdp", sdp)
        self.send(data, target)
        now = time.monotonic()
        call.reinvite_ok = _Sent2xx(msg.cseq[0], data, target, now, now + 0.5)

    def _on_invite_response(self, call: PyVoipCall, msg: sm.SipMessage) -> None:
        status, cseq = msg.status, msg.cseq[0]
        if cseq != call.invite.cseq:  # retransmitted final of the challenged INVITE
            if status >= 300 and call.prev_invite and cseq == call.prev_invite.cseq:
                self.send(sm.build_ack_non2xx(call.prev_invite, msg))
            return
        call.got_response = True
        if status < 200:
            if status >= 180 and call._state is LineState.DIALING:
                call._state = LineState.RINGING
                self.changed.notify_all()
            return
        if status < 300:
            self._on_2xx(call, msg)
            return
        self.send(sm.build_ack_non2xx(call.invite, msg))  # RFC 3261 17.1.1.3, every copy
        if call._state is LineState.ENDED:
            return
        challenge = msg.header("www-authenticate" if status == 401 else "proxy-authenticate")
        if status in (401, 407) and challenge and not call.auth_tried and not call.cancel_sent_at:
            self._retry_with_auth(call, status, challenge)
            return
        by = EndedBy.LOCAL_CANCEL if call.cancel_sent_at else EndedBy.REMOTE_REJECT
        self.end(call, by, status, sm.final_reason(msg))

    def _retry_with_auth(self, call: PyVoipCall, status: int, challenge: str) -> None:
        """401/407 on INVITE (pyVoIP: 407 hung call(); 401 reused the branch and the wrong
        digest uri): same Call-ID/From tag, CSeq+1, new branch, digest over the R-URI."""
        old = call.invite
        value = sm.authorization_value(
            sm.parse_challenge(challenge),
            username=self.settings.username,
            password=self.settings.password,
            method="INVITE",
            uri=old.ruri,
        )
        name = "Authorization" if status == 401 else "Proxy-Authorization"
        call.prev_invite, call.auth_tried, call.got_response = old, True, False
        call.invite = dataclasses.replace(
            old, branch=sm.new_branch(), cseq=old.cseq + 1, auth_header=(name, value)
        )
        call.invite_sent_at = time.monotonic()
        call.retransmit_interval, call.retransmit_at = 0.5, call.invite_sent_at + 0.5
        self.send(call.invite.render())

    def _on_2xx(self, call: PyVoipCall, msg: sm.SipMessage) -> None:
        """Correct 2xx ACK (pyVoIP: random To-tag, R-URI=To, no Route; REPORT.md pitfall 9),
        sent again for every retransmitted 2xx."""
        if call.dialog is not None:
            if call.ack is not None:
                self.send(call.ack)
            return
        call.dialog = sm.Dialog.from_2xx(call.invite, msg)
        call.ack = call.dialog.ack(self.settings.local_ip, self.settings.sip_port)
        self.send(call.ack)
        reason = sm.final_reason(msg)
        if call._state is LineState.ENDED or call.cancel_sent_at or self._stopping:
            # the 200 crossed our CANCEL (RFC 3261 9.1): ACK, then BYE
            self.send(call.dialog.bye(self.settings.local_ip, self.settings.sip_port))
            self.end(call, EndedBy.LOCAL_CANCEL, 200, reason)
            return
        try:
            call.vcall.answered(SIP.SIPMessage(msg.raw))
        except Exception:
            log.exception("call %s: could not start media", call.call_id)
            self.send(call.dialog.bye(self.settings.local_ip, self.settings.sip_port))
            self.end(call, EndedBy.ERROR, 200, reason)
            return
        call._final_status, call._final_reason = 200, reason
        call._state = LineState.ANSWERED
        call.answered_mono = time.monotonic()
        for chunk in call.pending_audio:
            call.vcall.write_audio(chunk)
        call.pending_audio.clear()
        log.info("call %s answered (%s)", call.call_id, call.codec)
        self.changed.notify_all()

    def _resend_2xx(self, call: PyVoipCall, sent: _Sent2xx, now: float) -> None:
        if now - sent.sent_at > TIMER_B:
            sent.acked = True  # give up; the media goes on as agreed
            log.warning("call %s: no ACK for our 200 to the re-INVITE", call.call_id)
        elif now >= sent.next_at:
            self.send(sent.data, sent.target)
            sent.interval = min(sent.interval * 2, 4.0)
            sent.next_at = now + sent.interval

    def _housekeeping(self) -> None:
        """Timers pyVoIP lacks: INVITE retransmission (Timer A), Timer B, CANCEL grace, and
        our 2xx to a re-INVITE sent again until its ACK."""
        while self._running:
            time.sleep(0.05)
            now = time.monotonic()
            with self.lock:
                for call in list(self._calls.values()):
                    if call._state is LineState.ENDED:
                        if now - call.ended_at > ENDED_RETENTION:
                            del self._calls[call.call_id]
                    elif call.cancel_sent_at and now - call.cancel_sent_at > CANCEL_GRACE:
                        self.end(call, EndedBy.LOCAL_CANCEL)
                    elif call.reinvite_ok is not None and not call.reinvite_ok.acked:
                        self._resend_2xx(call, call.reinvite_ok, now)
                    elif call._state is LineState.DIALING and not call.got_response:
                        if now - call.invite_sent_at > TIMER_B:
                            self.end(call, EndedBy.NO_RESPONSE)
                        elif now >= call.retransmit_at:
                            self.send(call.invite.render())
                            call.retransmit_interval = min(call.retransmit_interval * 2, 4.0)
                            call.retransmit_at = now + call.retransmit_interval
