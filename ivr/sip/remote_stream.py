"""One call's RTP served by the media process: ``MediaStream``'s interface for the adapter
(``start``, ``stop``, ``write``, ``write_linear16``, ``drop_queued_audio``, ``set_remote``,
``renegotiate``, ``queued_s``, ``listening``, ``key_sink``, ``audio_sink``, ``counters``,
``last_rx``, ``preference``), each call a small command to ``ivr.sip.media_process``.

The RTP socket is bound here, on the port the SDP offered, and handed over. ``queued_s`` is
reckoned here from what was queued and when (the process sends on an absolute clock from
the next packet time on, so this is at most a packet early); the capture of a comment is
armed by the process itself, on its own queue.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from typing import Any

from ivr.sip.media_client import MediaLink, MediaProcess
from ivr.sip.media_process import StatsRow
from ivr.sip.media_stream import EVENT, KeySink, StreamEnds


class RemoteStream(StreamEnds):
    """A ``MediaStream`` of the media process, as the adapter sees it."""

    def __init__(
        self,
        media: MediaProcess,
        assoc: dict[int, Any],
        in_ip: str,
        in_port: int,
        out_ip: str,
        out_port: int,
        key_sink: KeySink | None = None,
    ) -> None:
        # key_sink is called by the media client's reader thread
        super().__init__(assoc, in_ip, in_port, out_ip, out_port, key_sink)
        self.media = media
        self.failed = False  # the media process serving it died, or could not take it
        self.sid = 0
        self._link: MediaLink | None = None
        self._listening = True
        self._audio_sink: Callable[[bytes], object] | None = None
        self._until = 0.0  # when the audio queued so far will have been sent
        self.closed = False

    def _send(self, *message: Any) -> None:
        if self._link is not None and not self.closed:
            self._link.send((message[0], self.sid, *message[1:]))

    def start(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            sock.bind((self.inIP, self.inPort))
            self.last_rx = time.monotonic()
            self._link = self.media.open(self, sock, self._listening)
        finally:
            sock.close()  # the media process has its own copy

    def stop(self) -> None:
        if not self.closed:
            self._send("stop")
            self.closed = True

    def write(self, audio: bytes) -> None:
        """Queue unsigned 8-bit audio (the adapter's ``play``)."""
        self._play(audio, 1)

    def write_linear16(self, audio: bytes) -> None:
        """Queue signed 16-bit little-endian audio: straight to G.711, no 8-bit step."""
        self._play(audio, 2)

    def _play(self, audio: bytes, width: int) -> None:
        now = time.monotonic()
        self._until = max(self._until, now) + len(audio) / width / 8000.0
        if self._link is not None and not self.closed:
            self._link.play(self.sid, audio, width)

    def drop_queued_audio(self) -> None:
        self._until = 0.0
        self._send("drop")

    def set_remote(self, ip: str, port: int) -> None:
        """Send to, and take RTP only from, this address (a re-INVITE moved the far end)."""
        self.outIP, self.outPort = ip, port
        self._send("remote", ip, port)

    def renegotiate(self, event_pt: int, law_pt: int, law: Any) -> None:
        """A re-INVITE's answer: its telephone-event type and the G.711 law now sent."""
        self.assoc[event_pt] = EVENT
        self.assoc[law_pt] = self.preference = law
        self.last_rx = time.monotonic()
        self._send("codec", event_pt, law_pt, law)

    @property
    def queued_s(self) -> float:
        """Seconds of audio still to send."""
        return max(self._until - time.monotonic(), 0.0)

    @property
    def listening(self) -> bool:
        return self._listening

    @listening.setter
    def listening(self, on: bool) -> None:
        if on is not self._listening:
            self._listening = on
            self._send("listen", on)

    @property
    def audio_sink(self) -> Callable[[bytes], object] | None:
        return self._audio_sink

    @audio_sink.setter
    def audio_sink(self, sink: Callable[[bytes], object] | None) -> None:
        """Received audio (16-bit) to ``sink`` from once the queued audio has been sent."""
        self._audio_sink = sink
        self._send("capture", sink is not None)

    def update(self, row: StatsRow) -> None:
        """Counters and last reception, as the media process reports them."""
        c = self.counters
        _sid, c.received, c.runt, c.malformed, c.foreign, last_rx = row
        self.last_rx = max(self.last_rx, last_rx)
