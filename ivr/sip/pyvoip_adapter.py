"""``SipPhone`` over pyVoIP 1.6.8: the loop around the sans-I/O SIP core, and the media.

The SIP decisions (REGISTER, the INVITE transaction, CANCEL, digest, the dialog, every timer)
are taken by ``ivr.sip.core`` and its parts (``transaction``, ``dialog``, ``registration``),
which never touch a socket, a thread or the clock (docs/sip-notes.md says which pyVoIP
defect each replaces, pitfalls 4-25). This module only:

* feeds every datagram of the SIP socket, with its source and ``time.monotonic()``, to the
  core, and ticks the core's timers every 50 ms from one thread;
* sends the datagrams the core returns, and applies its events to the calls: state,
  ``Answered`` starts the media, ``Ended`` stops it and releases the RTP port,
  ``KeyReceived`` (INFO) is a key, ``MediaChanged`` (re-INVITE) moves or re-codes the RTP;
* owns the media side of a call (``ivr.sip.pyvoip_call``) over pyVoIP's classes, subclassed
  at their override points in ``ivr.sip.pyvoip_overrides``: a stream of the media process
  (``ivr.sip.remote_stream``, ``ivr.sip.media_process``) instead of pyVoIP's RTPClient,
  every call's RTP on one media loop in its own interpreter, sent on an absolute clock
  (pitfall 19), only the far end's well-formed RTP heard (pitfalls 22, 23), telephone-event
  >= 16 ignored (pitfall 12), PCMA sent A-law encoded (pitfall 13). We offer PCMU and PCMA;
  the far end's answer picks.

A blind transfer (``PyVoipCall.transfer``) is the core's too: the REFER of
``ivr.sip.refer`` runs in the call's dialog (``ivr.sip.dialog``).

No business decisions here: ring timeouts and what a status means are decided above.
"""

from __future__ import annotations

import logging
import random
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import pyVoIP.VoIP  # noqa: F401  (pyVoIP must import VoIP before SIP: circular imports)
from pyVoIP import RTP, SIP
from pyVoIP.VoIP.VoIP import CallState

from ivr.core.errors import DialFailed, RegistrationFailed, SipError
from ivr.sip import sip_messages as sm
from ivr.sip.api import (
    REGISTRATION_NOT_USED,
    EndedBy,
    KeySource,
    LineState,
    RegistrationStatus,
    SipSettings,
)
from ivr.sip.core import SipCore
from ivr.sip.media_client import media_service
from ivr.sip.pyvoip_call import Linear16, PyVoipCall, codec_name
from ivr.sip.pyvoip_overrides import IvrVoipPhone
from ivr.sip.redact import mask_digits, redact_sip
from ivr.sip.registration import Registration, RegState
from ivr.sip.sip_events import (
    Address,
    Answered,
    DialogRequest,
    DialogResponse,
    Ended,
    Event,
    KeyReceived,
    MediaChanged,
    Output,
    Ringing,
    Send,
)
from ivr.sip.transaction import CANCEL_GRACE, Credentials

log = logging.getLogger(__name__)

TICK_S = 0.05  # how often the core's timers are looked at

_PAYLOAD_TYPES = {"pcmu": RTP.PayloadType.PCMU, "pcma": RTP.PayloadType.PCMA}


class PyVoipPhone:
    """``SipPhone`` over pyVoIP 1.6.8: the socket and clock loop around ``SipCore``."""

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
        self._pending: list[Send] | None = None  # sends held while events are applied
        self.core = SipCore(
            (settings.server, settings.port),
            Credentials(settings.username, settings.password),
            (settings.local_ip, settings.sip_port),
        )

    @property
    def proxy_addr(self) -> Address:
        return self.core.proxy

    @property
    def registration(self) -> RegistrationStatus:
        reg = self.core.registration
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
            self.core.proxy = (socket.gethostbyname(s.server), s.port)
            self._vphone.ivr_sip.start_phone()
        except OSError as exc:
            self._vphone.ivr_sip.stop()
            raise SipError(
                f"cannot use SIP socket {s.local_ip}:{s.sip_port} (registrar {where}): {exc}"
            ) from exc
        try:
            media_service().acquire()
        except RuntimeError as exc:
            self._vphone.ivr_sip.stop()
            raise SipError(f"cannot start the calls' media: {exc}") from exc
        self._vphone.NSD = True
        self._running = True
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
            self._run(self.core.register(reg, time.monotonic()))
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
            reg = self.core.registration
            if reg is not None and reg.state is not RegState.STOPPED:
                self._run(self.core.unregister(time.monotonic()))
                deadline = time.monotonic() + 2.0  # de-REGISTER: a short wait, not pyVoIP's 30 s
                while reg.state is RegState.UNREGISTERING and time.monotonic() < deadline:
                    self.changed.wait(timeout=0.1)
        self._running = False
        if self._housekeeper is not None:
            self._housekeeper.join(timeout=2.0)
        self._vphone.ivr_sip.stop()
        if self._vphone.NSD:
            media_service().release()
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

        def register(vcall: Any) -> None:  # under pyVoIP's receive lock: no answer before
            with self.lock:
                holder.append(PyVoipCall(self, invite, vcall))
                self._calls[call_id] = holder[0]
                self._run(self.core.invite(invite, rtp_port, time.monotonic()), strict=True)

        try:
            self._vphone.call_with(invite, rtp_port, register)
        except OSError as exc:
            with self.lock:
                self._calls.pop(call_id, None)
                self.core.calls.pop(call_id, None)
                self._vphone.calls.pop(call_id, None)
            self._vphone.assignedPorts.remove(rtp_port)
            raise DialFailed(f"INVITE for call {call_id} could not be sent: {exc}") from exc
        log.info("call %s: INVITE sent", call_id)
        return holder[0]

    def answered_calls(self) -> int:
        """How many calls are up now (for load runs and ``status``-like reports)."""
        with self.lock:
            return sum(c.state is LineState.ANSWERED for c in self._calls.values())

    # ------------------------------------------------------------ the loop
    def command(self, step: Callable[[float], list[Output]]) -> None:
        """Run one core command with the current time and carry out what it returns."""
        with self.lock:
            self._run(step(time.monotonic()))

    def _run(self, outputs: list[Output], strict: bool = False) -> None:
        """Apply the core's events, then send what it says to send (under the lock): what the
        far end sees next (our 200, ACK) never runs ahead of the call's state here.
        ``strict``: a send that fails raises (the first INVITE of a call)."""
        sends = [item for item in outputs if isinstance(item, Send)]
        if self._pending is not None:  # an event's own command: sent after the outer sends
            self._pending += sends
            for item in outputs:
                if not isinstance(item, Send):
                    self._apply(item)
            return
        self._pending = sends
        try:
            for item in outputs:
                if not isinstance(item, Send):
                    self._apply(item)
        finally:
            sends, self._pending = self._pending, None
        for item in sends:
            self.send(item.data, item.target, strict)
        self._log_registration()
        self.changed.notify_all()

    def _apply(self, event: Event) -> None:
        if isinstance(event, DialogResponse | DialogRequest):
            return  # only for requests of our own through SipCore.request: none here yet
        call = self._calls.get(event.call_id)
        if call is None:
            return
        if isinstance(event, Ringing):
            if call._state is LineState.DIALING:
                call._state = LineState.RINGING
        elif isinstance(event, Answered):
            self._answered(call, event)
        elif isinstance(event, Ended):
            self.end(call, event.by, event.status, event.reason)
        elif isinstance(event, KeyReceived):
            if call._state is LineState.ANSWERED:
                call.keys.add(event.key, KeySource.SIP_INFO)
        elif isinstance(event, MediaChanged):
            self._media_changed(call, event)

    def _answered(self, call: PyVoipCall, event: Answered) -> None:
        """Start the media on the 2xx's SDP, then play what was queued before the answer."""
        call._final_status, call._final_reason = 200, event.reason
        if call._state is LineState.ENDED:
            return
        try:
            call.vcall.answered(SIP.SIPMessage(event.ok.raw))
        except Exception:
            log.exception("call %s: could not start media", call.call_id)
            self._run(self.core.hangup(call.call_id, time.monotonic(), EndedBy.ERROR))
            return
        dialog = self.core.dialog(call.call_id)
        if dialog is not None and call.vcall.RTPClients:
            dialog.codec = codec_name(call.vcall.RTPClients[0].preference)
        call._state = LineState.ANSWERED
        call.answered_mono = time.monotonic()
        for chunk in call.pending_audio:
            if isinstance(chunk, Linear16):
                call.play_linear16(bytes(chunk))
            else:
                call.vcall.write_audio(chunk)
        call.pending_audio.clear()
        log.info("call %s answered (%s)", call.call_id, call.codec)

    def _media_changed(self, call: PyVoipCall, event: MediaChanged) -> None:
        """A re-INVITE answered 200: hold, unhold, a new address or the other G.711 law."""
        for client in call.vcall.RTPClients:
            if not event.hold:
                client.set_remote(event.ip, event.port)
            client.renegotiate(event.event_pt, sm.G711[event.codec], _PAYLOAD_TYPES[event.codec])
        call.held = event.hold
        log.info("call %s: re-INVITE (%s, %s)", call.call_id,
                 "hold" if event.hold else event.direction, event.codec.upper())  # fmt: skip

    def send(self, data: bytes, target: Address | None = None, strict: bool = False) -> None:
        target = target or self.proxy_addr
        if log.isEnabledFor(logging.DEBUG):
            log.debug("SIP -> %s:%s\n%s", target[0], target[1],
                      redact_sip(data.decode(errors="replace")))  # fmt: skip
        try:
            self._vphone.ivr_sip.out.sendto(data, target)
        except OSError as exc:
            if strict:
                raise
            log.warning("SIP send to %s:%s failed: %s", target[0], target[1], exc)

    def end(
        self, call: PyVoipCall, by: EndedBy, status: int | None = None, reason: str | None = None
    ) -> None:
        """Mark ENDED once: stop RTP, leave pyVoIP's call table, release the RTP port."""
        with self.lock:
            if call._state is LineState.ENDED:
                return
            call._state, call._ended_by = LineState.ENDED, by
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
        if log.isEnabledFor(logging.DEBUG):
            log.debug("SIP <- %s:%s\n%s", source[0], source[1],
                      redact_sip(raw.decode(errors="replace")))  # fmt: skip
        with self.lock:
            self._run(self.core.receive(raw, source, time.monotonic()))

    def _log_registration(self) -> None:
        reg = self.core.registration
        if reg is None:
            return
        for event in reg.take_events():
            if event.kind == "lost":
                log.error("SIP registration at %s:%s lost: %s", self.settings.server,
                          self.settings.port, event.detail)  # fmt: skip
            elif event.kind == "registered":
                log.info("SIP registered at %s:%s as %r (%s)", self.settings.server,
                         self.settings.port, self.settings.username, event.detail)  # fmt: skip

    def _housekeeping(self) -> None:
        """The one clock of the SIP edge: ticks the core's timers, and forgets calls the
        core has forgotten."""
        while self._running:
            time.sleep(TICK_S)
            with self.lock:
                self._run(self.core.tick(time.monotonic()))
                for call_id in [c for c in self._calls if c not in self.core.calls]:
                    del self._calls[call_id]
