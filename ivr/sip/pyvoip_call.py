"""``OutboundCall`` over pyVoIP 1.6.8: one call's media side and the state the dialer reads.

The SIP side of a call lives in the phone's core (``ivr.sip.core``); the phone
(``ivr.sip.pyvoip_adapter``) applies the core's events to these. A call's RTP streams are
those of ``ivr.sip.pyvoip_overrides`` (``RemoteStream``: served by the media process, or
``MediaStream`` in this process): every method here works on either. While a comment is
recorded ``Capture`` keeps the far end's audio (16-bit) from once our queued prompt has been
sent.
"""

from __future__ import annotations

import math
import threading
import time
from typing import TYPE_CHECKING, Any

from pyVoIP import RTP

from ivr.sip import sip_messages as sm
from ivr.sip.api import EndedBy, KeyPress, LineState, MediaCounters
from ivr.sip.keys import KeyCollector
from ivr.sip.refer import ReferResult

if TYPE_CHECKING:
    from ivr.sip.pyvoip_adapter import PyVoipPhone


class Capture:
    """A stream's ``audio_sink`` while a comment is recorded: keeps the far end's 16-bit audio
    from the first frame received after everything we queued to play has been sent (what
    comes back while our prompt still goes out may be its echo, and is not the comment)."""

    def __init__(self, stream: Any) -> None:
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


class Linear16(bytes):
    """Audio queued before the answer by ``play_linear16``."""


def codec_name(payload_type: Any) -> str:
    return "pcma" if payload_type == RTP.PayloadType.PCMA else "pcmu"


class PyVoipCall:
    """``OutboundCall``: the media side and the state the dialer reads; guarded by the
    phone's lock. The SIP side of the call lives in the phone's core."""

    def __init__(self, phone: PyVoipPhone, invite: sm.InviteRequest, vcall: Any) -> None:
        self._phone = phone
        self.invite = invite
        self.vcall = vcall
        self._state = LineState.DIALING
        self._final_status: int | None = None
        self._final_reason: str | None = None
        self._ended_by: EndedBy | None = None
        self.pending_audio: list[bytes] = []
        self.keys = KeyCollector()
        vcall.key_sink = self.keys.add
        self.answered_mono = 0.0
        self.held = False  # the far end put us on hold: no RTP is expected

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
        return codec_name(clients[0].preference).upper() if clients else None

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
                self.pending_audio.append(Linear16(audio))

    def stop_audio(self) -> None:
        with self._phone.lock:
            self.pending_audio.clear()
            for client in self.vcall.RTPClients:
                client.drop_queued_audio()

    def take_keys(self) -> list[KeyPress]:
        return self.keys.take()

    def wait_for_key(self, timeout: float) -> None:
        self.keys.wait(timeout)

    def listen_for_keys(self, on: bool) -> None:
        """In-band detection on this call's streams only while a key is awaited (issue 11)."""
        with self._phone.lock:
            self.vcall.listening = on  # for streams made later, at the answer
            for client in self.vcall.RTPClients:
                client.listening = on

    def start_capture(self) -> None:
        for client in self.vcall.RTPClients:
            client.audio_sink = Capture(client)

    def take_audio(self) -> bytes:
        return b"".join(
            sink.take()
            for sink in (client.audio_sink for client in self.vcall.RTPClients)
            if isinstance(sink, Capture)
        )

    def stop_capture(self) -> None:
        for client in self.vcall.RTPClients:
            client.audio_sink = None

    @property
    def media_idle_s(self) -> float:
        """Seconds since the far end's last RTP; infinite once the media process serving
        this call died (the runner then ends the call as one whose media stopped)."""
        if self._state is LineState.ANSWERED and any(c.failed for c in self.vcall.RTPClients):
            return math.inf
        if self.held or self._state is not LineState.ANSWERED:
            return 0.0
        last: float = max([self.answered_mono, *(c.last_rx for c in self.vcall.RTPClients)])
        return time.monotonic() - last

    def cancel(self) -> None:
        self._phone.command(lambda now: self._phone.core.cancel(self.call_id, now))

    def transfer(self, target: str) -> None:
        """Blind transfer: REFER to ``target`` in this call's dialog (once; answered only)."""
        if self._state is LineState.ANSWERED:
            self._phone.command(lambda now: self._phone.core.transfer(self.call_id, target, now))

    @property
    def transfer_result(self) -> ReferResult | None:
        """None while a transfer is pending (or none was asked for)."""
        dialog = self._phone.core.dialog(self.call_id)
        return None if dialog is None else dialog.transfer_result

    def hangup(self) -> None:
        self._phone.command(lambda now: self._phone.core.hangup(self.call_id, now))
