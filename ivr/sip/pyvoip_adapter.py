"""``SipPhone`` over pyVoIP 1.6.8: a thin adapter plus small, named fixes of pyVoIP defects.

pyVoIP keeps: the UDP socket and its receive thread, RTP (PCMU and PCMA, RFC 2833
reception), the audio/DTMF buffers and RTP port allocation. Everything about REGISTER
(``ivr.sip.registration``), the INVITE transaction and the dialog is done here, because pyVoIP
gets it wrong (docs/sip-notes.md, pitfalls 4-18 and 21-25, the numbers the comments cite):

pyVoIP's classes are subclassed at their override points in ``ivr.sip.pyvoip_overrides``:

* ``IvrSipClient.invite`` only sends; no receive in the caller's thread (pitfall 8).
* ``IvrSipClient.recv`` hands every datagram to the adapter, which answers 401/407,
  ACKs every final, builds the 2xx ACK/BYE/CANCEL itself (pitfalls 5-7, 9, 14).
* ``IvrSipClient.gen_call_id``: random Call-IDs (pitfall 10).
* ``IvrSipClient.start/stop``: bounded registration, optional REGISTER, clean stop
  (pitfalls 4, 18).
* ``MediaStream`` (``ivr.sip.media``) instead of pyVoIP's RTPClient: every call's RTP on the
  process's one media loop, sent on an absolute clock (pitfall 19); only the far end's
  well-formed RTP is heard (pitfalls 22, 23); telephone-event >= 16 ignored and a new event
  known by its timestamp (pitfall 12); in-band keys in PCMU or PCMA; PCMA sent A-law encoded
  (pitfall 13); while a comment is recorded ``_Capture``, the stream's ``audio_sink``, keeps
  the far end's audio (16-bit) from once our queued prompt has been sent. We offer PCMU and
  PCMA; the far end's answer picks.
* INFO keys (application/dtmf-relay, application/dtmf) answered 200; re-INVITEs (hold,
  unhold, new address, the other G.711 law) answered 200 with our SDP when PCMU or PCMA is
  offered (pyVoIP: 488); that 200 is sent again until its ACK comes, and a retransmitted
  re-INVITE gets the same 200 (RFC 3261 13.3.1.4).

No business decisions here: ring timeouts and what a status means are decided above.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import logging
import random
import socket
import threading
import time
from typing import Any

import pyVoIP.VoIP  # noqa: F401  (pyVoIP must import VoIP before SIP: circular imports)
from pyVoIP import RTP, SIP
from pyVoIP.VoIP.VoIP import CallState

from ivr.core.errors import DialFailed, RegistrationFailed, SipError
from ivr.sip import sip_messages as sm
from ivr.sip.api import (
    REGISTRATION_NOT_USED,
    EndedBy,
    KeyPress,
    KeySource,
    LineState,
    RegistrationStatus,
    SipSettings,
)
from ivr.sip.keys import KeyCollector
from ivr.sip.media import ENGINE, MediaStream
from ivr.sip.pyvoip_overrides import IvrVoipPhone
from ivr.sip.ratelog import RateLimitedLog
from ivr.sip.redact import mask_digits, redact_sip
from ivr.sip.registration import Registration, RegState
from ivr.sip.rtp_guard import MediaCounters

log = logging.getLogger(__name__)
_bad = RateLimitedLog(log)  # one line per kind of bad datagram per 10 s, never a traceback

Address = tuple[str, int]

TIMER_B = 32.0  # RFC 3261 17.1.1.2: 64*T1, no response at all to the INVITE
CANCEL_GRACE = 4.0  # after CANCEL, end locally if no final answer came
ENDED_RETENTION = 32.0  # keep ended calls this long to re-ACK retransmitted finals


_PAYLOAD_TYPES = {"pcmu": RTP.PayloadType.PCMU, "pcma": RTP.PayloadType.PCMA}


class _Capture:
    """A stream's ``audio_sink`` while a comment is recorded: keeps the far end's 16-bit audio
    from the first frame received after everything we queued to play has been sent (what
    comes back while our prompt still goes out may be its echo, and is not the comment)."""

    def __init__(self, stream: MediaStream) -> None:
        self._stream = stream
        self._armed = True
        self._lock = threading.Lock()
        self._audio = bytearray()

    def __call__(self, linear: bytes) -> None:  # the media engine's thread
        if self._armed:
            if self._stream.queued_s > 0:
                return
            self._armed = False
        with self._lock:
            self._audio += linear

    def take(self) -> bytes:
        with self._lock:
            data = bytes(self._audio)
            self._audio.clear()
            return data


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


class _Linear16(bytes):
    """Audio queued before the answer by ``play_linear16``."""


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
        # where in-dialog requests may come from: the proxy, and the 2xx's Contact
        self.peer_addrs: set[Address] = set()

    def in_dialog(self, msg: sm.SipMessage, source: Address) -> bool:
        """``msg`` belongs to our confirmed dialog: its tags are the dialog's (theirs in
        From, ours in To) and it comes from the proxy or the far end's Contact."""
        dialog = self.dialog
        if dialog is None or source not in self.peer_addrs:
            return False
        ours = sm.tag_of(self.invite.from_hdr)
        return msg.tag("from") == sm.tag_of(dialog.remote) and msg.tag("to") == ours

    @property
    def media_counters(self) -> MediaCounters:
        """RTP datagrams taken and dropped (runt, malformed, foreign) so far."""
        total = MediaCounters()
        for client in self.vcall.RTPClients:
            for name in ("received", "runt", "malformed", "foreign"):
                setattr(total, name, getattr(total, name) + getattr(client.counters, name))
        return total

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

    def play_linear16(self, audio: bytes) -> None:
        """Queue signed 16-bit little-endian 8 kHz audio: encoded straight to G.711."""
        with self._phone.lock:
            if self._state is LineState.ANSWERED:
                for client in self.vcall.RTPClients:
                    client.write_linear16(audio)
            elif self._state is not LineState.ENDED:
                self.pending_audio.append(_Linear16(audio))

    def stop_audio(self) -> None:
        with self._phone.lock:
            self.pending_audio.clear()
            for client in self.vcall.RTPClients:
                client.drop_queued_audio()

    def take_keys(self) -> list[KeyPress]:
        return self.keys.take()

    def start_capture(self) -> None:
        for client in self.vcall.RTPClients:
            client.audio_sink = _Capture(client)

    def take_audio(self) -> bytes:
        return b"".join(
            sink.take()
            for sink in (client.audio_sink for client in self.vcall.RTPClients)
            if isinstance(sink, _Capture)
        )

    def stop_capture(self) -> None:
        for client in self.vcall.RTPClients:
            client.audio_sink = None

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
        self.proxy_addr: Address = (settings.server, settings.port)
        self._reg: Registration | None = None

    @property
    def registration(self) -> RegistrationStatus:
        reg = self._reg
        if reg is None:
            return REGISTRATION_NOT_USED if self._running else RegistrationStatus("stopped")
        with self.lock:
            if reg.registered:
                return RegistrationStatus("registered", f"for {reg.granted_s} s")
            if reg.state is RegState.LOST:
                lost = time.monotonic() - (reg.lost_since or time.monotonic())
                wait = max((reg.retry_at or 0.0) - time.monotonic(), 0.0)
                return RegistrationStatus("lost", f"{reg.last_error}; next try in {wait:.0f} s",
                                          lost_for_s=lost)  # fmt: skip
            if reg.state is RegState.REGISTERING:
                since = None if reg.lost_since is None else time.monotonic() - reg.lost_since
                return RegistrationStatus("registering", reg.last_error, lost_for_s=since)
            return RegistrationStatus("stopped")

    # ------------------------------------------------------------ SipPhone
    def start(self) -> None:
        s = self.settings
        where = f"{s.server}:{s.port}"
        try:
            # Resolved once here: no DNS lookup on the receive path, and the address every
            # request from outside a dialog must come from.
            self.proxy_addr = (socket.gethostbyname(s.server), s.port)
            self._vphone.ivr_sip.start_phone()
        except OSError as exc:
            self._vphone.ivr_sip.stop()
            raise SipError(
                f"cannot use SIP socket {s.local_ip}:{s.sip_port} (registrar {where}): {exc}"
            ) from exc
        self._vphone.NSD = True
        self._running = True
        ENGINE.acquire()
        self._housekeeper = threading.Thread(
            target=self._housekeeping, name="ivr SIP timers", daemon=True
        )
        self._housekeeper.start()
        if s.register:
            self._register_first(where)
        log.info(
            "SIP phone started on %s:%s (registrar %s, register=%s)",
            self.settings.local_ip,
            self.settings.sip_port,
            where,
            self.settings.register,
        )

    def _register_first(self, where: str) -> None:
        """The first REGISTER: wait for its outcome; refused or unanswered raises."""
        s = self.settings
        reg = Registration(
            server=s.server, port=s.port, username=s.username, password=s.password,
            local_ip=s.local_ip, local_port=s.sip_port, expires_s=s.register_expires_s,
            step_timeout_s=s.register_timeout_s,
        )  # fmt: skip
        with self.lock:
            self._reg = reg
            for data in reg.start(time.monotonic()):
                self.send(data)
            deadline = time.monotonic() + 2 * s.register_timeout_s + 1.0
            while reg.state is RegState.REGISTERING and time.monotonic() < deadline:
                self.changed.wait(timeout=0.1)
            reg.take_events()
            error = reg.last_error
            ok = reg.registered
        if not ok:
            self.stop()
            raise RegistrationFailed(
                f"registration as {s.username!r} at {where} failed: {error or 'no answer'}"
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
            reg = self._reg
            if reg is not None and reg.state is not RegState.STOPPED:
                for data in reg.stop(time.monotonic()):
                    self.send(data)
                deadline = time.monotonic() + 2.0  # de-REGISTER: a short wait, not pyVoIP's 30 s
                while reg.state is RegState.UNREGISTERING and time.monotonic() < deadline:
                    self.changed.wait(timeout=0.1)
        self._running = False
        if self._housekeeper is not None:
            self._housekeeper.join(timeout=2.0)
        self._vphone.ivr_sip.stop()
        if self._vphone.NSD:
            ENGINE.release()
        self._vphone.NSD = False
        log.info("SIP phone on %s:%s stopped", self.settings.local_ip, self.settings.sip_port)

    def dial(self, number: str) -> PyVoipCall:
        if not self._running or self._stopping:
            raise DialFailed(f"cannot dial {mask_digits(number)}: SIP phone not started")
        if not self.registration.can_dial:
            raise DialFailed(f"cannot dial: registration {self.registration.describe()}")
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

    def answered_calls(self) -> int:
        """How many calls are up now (for load runs and ``status``-like reports)."""
        with self.lock:
            return sum(c.state is LineState.ANSWERED for c in self._calls.values())

    # ------------------------------------------------------------ internals
    def send(self, data: bytes, target: Address | None = None) -> None:
        target = target or self.proxy_addr
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

    def _on_datagram(self, raw: bytes, source: Address) -> None:
        """Every datagram of the SIP socket, with the address it came from."""
        try:
            msg = sm.parse(raw)
        except ValueError as exc:
            _bad.warning("malformed", "malformed SIP datagram (%d bytes) from %s:%s dropped: %s",
                         len(raw), source[0], source[1], exc)  # fmt: skip
            return
        if log.isEnabledFor(logging.DEBUG):
            log.debug("SIP <- %s:%s\n%s", source[0], source[1],
                      redact_sip(raw.decode(errors="replace")))  # fmt: skip
        with self.lock:
            call = self._calls.get(msg.call_id)
            if msg.is_response:
                self._on_response(msg, source, call)
            elif call is not None and call.in_dialog(msg, source):
                self._on_dialog_request(call, msg, source)
            elif source != self.proxy_addr:
                # Not ours to answer: a response would go wherever the datagram claims (a
                # reflector); a request in a dialog of ours from elsewhere is forged.
                _bad.warning("stranger", "SIP %s from %s:%s (not the proxy %s:%s) dropped",
                             msg.method, source[0], source[1], *self.proxy_addr)  # fmt: skip
            elif msg.method == "OPTIONS":
                self.send(sm.build_response(msg, 200, "OK"), source)
            elif msg.method == "INVITE":  # we only dial out
                self.send(sm.build_response(msg, 486, "Busy Here", sm.new_tag()), source)
            elif msg.method in ("BYE", "INFO", "CANCEL"):
                self.send(sm.build_response(msg, 481, "Call Does Not Exist"), source)
            elif msg.method != "ACK":
                self.send(sm.build_response(msg, 405, "Method Not Allowed"), source)

    def _on_response(self, msg: sm.SipMessage, source: Address, call: PyVoipCall | None) -> None:
        if source != self.proxy_addr:
            _bad.warning("stranger", "SIP response from %s:%s (not the proxy %s:%s) dropped",
                         source[0], source[1], *self.proxy_addr)  # fmt: skip
            return
        reg = self._reg
        if reg is not None and reg.matches(msg):
            for data in reg.on_response(msg, time.monotonic()):
                self.send(data)
            self._log_registration(reg)
            self.changed.notify_all()
        elif call is not None and msg.cseq[1] == "INVITE":
            self._on_invite_response(call, msg)

    def _on_dialog_request(self, call: PyVoipCall, msg: sm.SipMessage, source: Address) -> None:
        if msg.method == "BYE":
            self.send(sm.build_response(msg, 200, "OK"), source)
            self.end(call, EndedBy.REMOTE_BYE)
        elif msg.method == "INVITE":
            self._on_reinvite(call, msg, source)
        elif msg.method == "INFO":
            self._on_info(call, msg, source)
        elif msg.method == "ACK":
            pending = call.reinvite_ok
            if pending is not None and pending.cseq == msg.cseq[0]:
                pending.acked = True
        elif msg.method == "OPTIONS":
            self.send(sm.build_response(msg, 200, "OK"), source)
        else:
            self.send(sm.build_response(msg, 405, "Method Not Allowed"), source)

    def _on_info(self, call: PyVoipCall, msg: sm.SipMessage, source: Address) -> None:
        """INFO in a dialog: DTMF (dtmf-relay or dtmf) becomes a key; anything else 415."""
        key = sm.dtmf_of_info(msg)
        if key is None:
            self.send(sm.build_response(msg, 415, "Unsupported Media Type"), source)
            return
        self.send(sm.build_response(msg, 200, "OK"), source)
        if call._state is LineState.ANSWERED:
            call.keys.add(key, KeySource.SIP_INFO)

    def _log_registration(self, reg: Registration) -> None:
        for event in reg.take_events():
            if event.kind == "lost":
                log.error("SIP registration at %s:%s lost: %s", self.settings.server,
                          self.settings.port, event.detail)  # fmt: skip
            elif event.kind == "registered":
                log.info("SIP registered at %s:%s as %r (%s)", self.settings.server,
                         self.settings.port, self.settings.username, event.detail)  # fmt: skip

    def _on_reinvite(self, call: PyVoipCall, msg: sm.SipMessage, target: Address) -> None:
        """Hold, unhold, a new media address or the other G.711 law: 200 with our SDP (the
        direction mirrored, the codec kept if still offered); an offer with neither PCMU nor
        PCMA: 488 and the call goes on as it was."""
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
                    client.set_remote(offer.ip, offer.port)
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
        """Correct 2xx ACK (pyVoIP: random To-tag, R-URI=To, no Route; docs/sip-notes.md,
        pitfall 9), sent again for every retransmitted 2xx."""
        if call.dialog is not None:
            if call.ack is not None:
                self.send(call.ack)
            return
        call.dialog = sm.Dialog.from_2xx(call.invite, msg)
        call.peer_addrs = {self.proxy_addr}
        contact = _literal_address(call.dialog.remote_target)
        if contact is not None:
            call.peer_addrs.add(contact)
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
            if isinstance(chunk, _Linear16):
                call.play_linear16(bytes(chunk))
            else:
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
                reg = self._reg
                if reg is not None and reg.state is not RegState.STOPPED:
                    for data in reg.tick(now):
                        self.send(data)
                    self._log_registration(reg)
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


def _literal_address(uri: str) -> Address | None:
    """host:port of a SIP URI when the host is an IP literal (never a DNS lookup)."""
    hostport = uri.split("@", 1)[-1].split(";", 1)[0].split(">", 1)[0]
    host, _, port = hostport.partition(":")
    try:
        ipaddress.ip_address(host)
        return host, int(port or 5060)
    except ValueError:
        return None
