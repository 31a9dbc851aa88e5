"""pyVoIP 1.6.8 subclassed at its override points: the call (our RTP client, no port release
on GC), the SIP client (bounded optional REGISTER, every datagram to the adapter, a sending-only
INVITE, random Call-IDs, a clean stop) and the phone (a non-blocking call). What each fixes is
listed in ``ivr.sip.pyvoip_adapter``, which owns the dialogs and timers built on these.
"""

from __future__ import annotations

import logging
import random
import socket
import threading
from typing import Any

import pyVoIP.VoIP  # noqa: F401  (pyVoIP must import VoIP before SIP: circular imports)
from pyVoIP import RTP, SIP
from pyVoIP.VoIP.status import PhoneStatus
from pyVoIP.VoIP.VoIP import CallState, VoIPCall, VoIPPhone

from ivr.sip import sip_messages as sm
from ivr.sip.api import SipSettings
from ivr.sip.redact import redact_sip
from ivr.sip.rtp import KeySink, SafeRtpClient

log = logging.getLogger(__name__)

# pyVoIP's private single REGISTER exchange and its refresh timer (name-mangled)
_REGISTER_ONCE = "_SIPClient__register"
_START_REFRESH = "_SIPClient__start_register_timer"
REGISTER_STEP_TIMEOUT = 5  # per REGISTER round trip (pyVoIP default 30 s, 3 tries)


class IvrVoipCall(VoIPCall):
    key_sink: KeySink | None = None

    def create_rtp_clients(
        self, codecs: Any, ip: str, port: int, request: Any, baseport: int
    ) -> None:
        for index in range(len(request.body["c"])):
            self.RTPClients.append(
                SafeRtpClient(
                    codecs,
                    ip,
                    port,
                    request.body["c"][index]["address"],
                    baseport + index,
                    self.sendmode,
                    key_sink=self.key_sink,
                )
            )

    def __del__(self) -> None:
        # Fix: pyVoIP releases the ports again on GC and raises ValueError if already released;
        # the adapter releases them exactly once (PyVoipPhone.end).
        pass


class IvrSipClient(SIP.SIPClient):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.register_timeout = REGISTER_STEP_TIMEOUT
        self.datagram_handler: Any = None
        self.pending_invite: sm.InviteRequest | None = None
        self._recv_thread: threading.Thread | None = None

    def gen_call_id(self) -> str:
        # Fix (pitfall 10): sha256(counter) repeats across restarts; proxies took new INVITEs
        # for retransmissions.
        return sm.new_call_id(f"{self.myIP}:{self.myPort}")

    def start_phone(self, register: bool) -> None:
        """SIPClient.start with two fixes: REGISTER is optional (pitfall 4) and bounded
        (pyVoIP: 3 x 30 s, then the phone kills itself), and the receive thread is kept."""
        self.NSD = True
        self.s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.s.bind((self.myIP, self.myPort))
        self.out = self.s
        if register:
            with self.recvLock:
                # the single-attempt body of register(), without its retry/fail-later loop
                ok = getattr(self, _REGISTER_ONCE)()
            if not ok:
                raise SIP.InvalidAccountInfoError("registrar did not accept")
            self.phone._status = PhoneStatus.REGISTERED
            getattr(self, _START_REFRESH)()
        self._recv_thread = threading.Thread(target=self.recv_loop, name="SIP Receive")
        self._recv_thread.start()

    def recv(self) -> None:
        # Fix (pitfall 8, 14, 17): pyVoIP's parser drops unknown status codes and OPTIONS,
        # and its parse_message ignores most finals; every datagram goes to the adapter.
        raw = self.s.recv(8192)  # BlockingIOError goes back to recv_loop
        if raw.strip(b"\r\n\x00") and self.datagram_handler is not None:
            try:
                self.datagram_handler(raw)
            except Exception:
                log.exception("error while handling a SIP datagram")

    def invite(self, number: str, ms: Any, sendtype: Any) -> tuple[Any, str, int]:
        """Build and send the INVITE, return at once (pyVoIP blocked here for 100/180)."""
        invite = self.pending_invite
        assert invite is not None
        self.out.sendto(invite.render(), (self.server, self.port))
        if log.isEnabledFor(logging.DEBUG):
            log.debug("SIP -> %s:%s\n%s", self.server, self.port,
                      redact_sip(invite.render().decode(errors="replace")))  # fmt: skip
        return SIP.SIPMessage(invite.render()), invite.call_id, random.randint(1, 10**9)

    def stop(self) -> None:
        if not self.NSD:
            return
        self.NSD = False
        if self._recv_thread is not None:
            self._recv_thread.join(timeout=2.0)
        if self.registerThread is not None:
            self.registerThread.cancel()
            if self.registerThread is not threading.current_thread():
                self.registerThread.join(timeout=REGISTER_STEP_TIMEOUT * 2)
            try:
                self.deregister()
            except Exception as exc:
                log.warning("de-REGISTER at %s:%s failed: %s", self.server, self.port, exc)
        self._close_sockets()


class IvrVoipPhone(VoIPPhone):
    def __init__(self, settings: SipSettings) -> None:
        super().__init__(
            settings.server,
            settings.port,
            settings.username,
            settings.password,
            myIP=settings.local_ip,
            sipPort=settings.sip_port,
            rtpPortLow=settings.rtp_port_low,
            rtpPortHigh=settings.rtp_port_high,
        )
        self.ivr_sip = IvrSipClient(
            settings.server,
            settings.port,
            settings.username,
            settings.password,
            phone=self,
            myIP=settings.local_ip,
            myPort=settings.sip_port,
            callCallback=None,
            fatalCallback=self.fatal,
        )
        self.sip = self.ivr_sip

    def call_with(self, invite: sm.InviteRequest, rtp_port: int, on_created: Any) -> Any:
        """VoIPPhone.call fixed: sends without waiting and, holding the receive lock, registers
        the call before any response can be processed (REPORT.md 1.2, KeyError/race rows)."""
        medias: Any = {rtp_port: {0: RTP.PayloadType.PCMU, 8: RTP.PayloadType.PCMA,
                                  101: RTP.PayloadType.EVENT}}  # fmt: skip
        with self.ivr_sip.recvLock:
            self.ivr_sip.pending_invite = invite
            request, call_id, sess_id = self.ivr_sip.invite("", medias, RTP.TransmitType.SENDRECV)
            vcall = IvrVoipCall(
                self, CallState.DIALING, request, sess_id, self.myIP, ms=medias,
                sendmode=self.sendmode,
            )  # fmt: skip
            self.calls[call_id] = vcall
            on_created(vcall)
        return vcall
