"""pyVoIP 1.6.8 subclassed at its override points: the call (our RTP client, no port release
on GC), the SIP client (no REGISTER of its own, every datagram with its source to the adapter,
an INVITE built but not sent here, random Call-IDs, a clean stop) and the phone (a
non-blocking call).
The SIP decisions and timers built on these are ``ivr.sip.core``'s; the adapter
``ivr.sip.pyvoip_adapter`` is the loop between the two.
"""

from __future__ import annotations

import logging
import random
import socket
import threading
import time
from typing import Any

import pyVoIP.VoIP  # noqa: F401  (pyVoIP must import VoIP before SIP: circular imports)
from pyVoIP import RTP, SIP
from pyVoIP.VoIP.VoIP import CallState, VoIPCall, VoIPPhone

from ivr.sip import sip_messages as sm
from ivr.sip.api import SipSettings
from ivr.sip.media import ENGINE, MediaStream
from ivr.sip.media_client import IN_PROCESS, MEDIA
from ivr.sip.media_stream import KeySink
from ivr.sip.remote_stream import RemoteStream

log = logging.getLogger(__name__)


class IvrVoipCall(VoIPCall):
    key_sink: KeySink | None = None
    listening = True  # in-band detection wanted: the adapter's ``listen_for_keys``

    def create_rtp_clients(
        self, codecs: Any, ip: str, port: int, request: Any, baseport: int
    ) -> None:
        # pyVoIP's RTPClient (two threads per call, a relative sleep) is replaced by a stream
        # of the one media loop, in the media process (docs/sip-notes.md, pitfall 19).
        clients: list[Any] = self.RTPClients  # duck-typed: the adapter uses what both have
        for index in range(len(request.body["c"])):
            where = (ip, port, request.body["c"][index]["address"], baseport + index)
            stream: MediaStream | RemoteStream = (
                MediaStream(ENGINE, codecs, *where, key_sink=self.key_sink)
                if IN_PROCESS
                else RemoteStream(MEDIA, codecs, *where, key_sink=self.key_sink)
            )
            stream.listening = self.listening
            clients.append(stream)

    def __del__(self) -> None:
        # Fix: pyVoIP releases the ports again on GC and raises ValueError if already released;
        # the adapter releases them exactly once (PyVoipPhone.end).
        pass


class IvrSipClient(SIP.SIPClient):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.datagram_handler: Any = None
        self.pending_invite: sm.InviteRequest | None = None
        self._recv_thread: threading.Thread | None = None

    def gen_call_id(self) -> str:
        # Fix (pitfall 10): sha256(counter) repeats across restarts; proxies took new INVITEs
        # for retransmissions.
        return sm.new_call_id(f"{self.myIP}:{self.myPort}")

    def start_phone(self) -> None:
        """SIPClient.start without pyVoIP's REGISTER: that one took whatever datagram came
        next as its answer and stopped the phone after three (pitfalls 4 and 21); the adapter
        registers with ``ivr.sip.registration``. The receive thread is kept, to join it."""
        self.NSD = True
        self.s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.s.bind((self.myIP, self.myPort))
        self.out = self.s
        self._recv_thread = threading.Thread(target=self.recv_loop, name="SIP Receive")
        self._recv_thread.start()

    def recv_loop(self) -> None:
        # pyVoIP polled a non-blocking socket every 10 ms under its lock (100 wake-ups a
        # second competing for the GIL with the media loop); wait in recvfrom instead, and
        # take the lock only to handle what came (``call_with`` holds it while it registers
        # a call, so no response is handled before its call exists).
        self.s.settimeout(0.25)
        while self.NSD:
            try:
                raw, source = self.s.recvfrom(8192)
            except TimeoutError:
                continue
            except OSError:
                if self.NSD:
                    time.sleep(0.01)
                continue
            with self.recvLock:
                self.handle(raw, source)

    def handle(self, raw: bytes, source: tuple[str, int]) -> None:
        # Fix (pitfall 8, 14, 17): pyVoIP's parser drops unknown status codes and OPTIONS,
        # and its parse_message ignores most finals; every datagram goes to the adapter,
        # with its source (pyVoIP answered to the Via: a reflector, with a DNS lookup).
        if raw.strip(b"\r\n\x00") and self.datagram_handler is not None:
            try:
                self.datagram_handler(raw, source)
            except Exception as exc:  # our bug; one line, not a traceback per datagram
                log.error("error while handling a SIP datagram from %s:%s: %r",
                          source[0], source[1], exc)  # fmt: skip
                log.debug("traceback", exc_info=True)

    def invite(self, number: str, ms: Any, sendtype: Any) -> tuple[Any, str, int]:
        """The INVITE as pyVoIP's call object wants it, not sent: the SIP core sends it (and
        again, Timer A) once the call is registered (pyVoIP blocked here for 100/180)."""
        invite = self.pending_invite
        assert invite is not None
        return SIP.SIPMessage(invite.render()), invite.call_id, random.randint(1, 10**9)

    def stop(self) -> None:
        if not self.NSD:
            return
        self.NSD = False
        if self._recv_thread is not None:
            self._recv_thread.join(timeout=2.0)
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
        """VoIPPhone.call fixed: never waits and, holding the receive lock, registers the call
        (``on_created`` sends the INVITE) before any response can be processed
        (docs/sip-notes.md, pitfall 8)."""
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
