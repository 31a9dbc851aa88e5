"""pyVoIP's RTP client with the fixes the adapter needs (see ``ivr.sip.pyvoip_adapter``):
keys from RFC 4733 events by timestamp on any payload type, in-band tones from the received
PCMU or PCMA, PCMA sent A-law encoded, the time of the last packet received, and a stop that
joins its threads.
"""

from __future__ import annotations

import audioop  # pyVoIP's own codec library (audioop-lts on Python >= 3.13)
import io
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import pyVoIP.VoIP  # noqa: F401  (pyVoIP must import VoIP before SIP: circular imports)
from pyVoIP import RTP

from ivr.dtmf_inband import InbandDetector
from ivr.sip.api import KeySource

KeySink = Callable[[str, KeySource], object]
_EVENT_KEYS = "0123456789*#ABCD"


class SafeRtpClient(RTP.RTPClient):
    """pyVoIP's RTPClient with its fixes (see the module docstring)."""

    def __init__(self, *args: Any, key_sink: KeySink | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.key_sink = key_sink
        self.last_rx = time.monotonic()
        self.inband = InbandDetector()
        self._event_ts: int | None = None
        # Received audio as 16-bit linear PCM while a comment is recorded (None: not kept).
        self.capture_lock = threading.Lock()
        self.capture: bytearray | None = None
        self._capture_armed = False

    def parse_packet(self, packet: bytes) -> None:
        self.last_rx = time.monotonic()
        super().parse_packet(packet)

    def parse_pcmu(self, packet: Any) -> None:
        # Nobody reads pyVoIP's receive buffer (it only grows); listen for tones instead.
        self._inband_keys(self.inband.feed_ulaw(packet.payload))
        self._capture(packet.payload, audioop.ulaw2lin)

    def parse_pcma(self, packet: Any) -> None:
        self._inband_keys(self.inband.feed_alaw(packet.payload))
        self._capture(packet.payload, audioop.alaw2lin)

    def _capture(self, payload: bytes, decode: Callable[[bytes, int], bytes]) -> None:
        with self.capture_lock:
            if self.capture is None:
                return
            if self._capture_armed:
                if self.queued_audio_bytes() > 0:
                    return  # our prompt is still going out: what comes back may be its echo
                self._capture_armed = False
            self.capture += decode(payload, 2)

    def queued_audio_bytes(self) -> int:
        """Audio queued to send and not sent yet (pyVoIP has no API for it)."""
        manager = self.pmout
        with manager.bufferLock:
            buffer = manager.buffer
            position = buffer.tell()
            end = buffer.seek(0, io.SEEK_END)
            buffer.seek(position)
        return int(end - position)

    def set_capture(self, on: bool) -> None:
        """Keep received audio from once everything queued to send has been sent."""
        with self.capture_lock:
            self.capture = bytearray() if on else None
            self._capture_armed = on

    def take_capture(self) -> bytes:
        with self.capture_lock:
            if self.capture is None:
                return b""
            data = bytes(self.capture)
            self.capture.clear()
            return data

    def _inband_keys(self, keys: list[str]) -> None:
        for key in keys:
            if self.key_sink is not None:
                self.key_sink(key, KeySource.INBAND)

    def encode_packet(self, payload: bytes) -> bytes:
        # Fix (REPORT.md 1.4, pitfall 13): pyVoIP mu-law encodes PCMA too, so a trunk that
        # answered PCMA heard noise. ``payload`` is unsigned 8-bit linear PCM.
        if self.preference == RTP.PayloadType.PCMA:
            return audioop.lin2alaw(audioop.bias(payload, 1, -128), 1)
        return super().encode_packet(payload)

    def start(self) -> None:
        # Fix: pyVoIP's stop() closes the socket under its still running threads
        # (send errors become RuntimeWarnings); keep them so stop() can join them.
        self.sin = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sout = self.sin
        self.sin.bind((self.inIP, self.inPort))
        self.sin.setblocking(False)
        self._threads = [
            threading.Thread(target=self.recv, name="RTP Receiver", daemon=True),
            threading.Thread(target=self.trans, name="RTP Transmitter", daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self.NSD = False
        for thread in getattr(self, "_threads", []):
            if thread is not threading.current_thread():
                thread.join(timeout=1.0)
        if hasattr(self, "sin"):
            self.sin.close()

    def parse_telephone_event(self, packet: Any) -> None:
        # Fix (REPORT.md 1.3, pitfall 12): event >= 16 raised IndexError and killed the receiver.
        # Fix: pyVoIP took a key only from a packet with the marker bit; RFC 4733 2.5.1.1:
        # every packet of one event carries its start timestamp, so a new one is a new press.
        if not packet.payload or packet.payload[0] > 15 or packet.timestamp == self._event_ts:
            return
        self._event_ts = packet.timestamp
        if self.key_sink is not None:
            self.key_sink(_EVENT_KEYS[packet.payload[0]], KeySource.RFC4733)

    def drop_queued_audio(self) -> None:
        """Forget every queued, unsent byte (pyVoIP has no API for it)."""
        manager = self.pmout
        with manager.bufferLock:
            manager.buffer = io.BytesIO()
            manager.log = {}
            manager.offset = 4294967296  # next write() resets the buffer (RTP.py:198-210)
