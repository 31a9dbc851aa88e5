"""One call's RTP as the media engine serves it: what is sent (an absolute clock of packets),
what is heard (the far end's well-formed RTP only), and the in-band key detector, run only
while a key is awaited and only on frames past a cheap energy gate.

Audio becomes 160-byte frames of the law the far end chose when it is queued, never per
packet; cached by content, so a prompt played to 300 calls is encoded once. Clips go from
16-bit straight to G.711 (the old 8-bit unsigned step cost ~14 dB SNR, pitfall 11).

What a datagram must be to be heard at all is ``ivr.sip.rtp_guard``'s (pitfalls 22, 23).
"""

from __future__ import annotations

import audioop  # C, and what pyVoIP itself uses (audioop-lts on Python >= 3.13)
import logging
import random
import socket
import struct
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import numpy as np
import pyVoIP.VoIP  # noqa: F401  (pyVoIP must import VoIP before SIP: circular imports)
from pyVoIP import RTP

from ivr.core.dtmf_inband import ALAW, ULAW, InbandDetector, candidate_frames
from ivr.sip.api import KeySource, MediaCounters
from ivr.sip.ratelog import RateLimitedLog
from ivr.sip.rtp_guard import SourceLock, header_problem, payload_of

if TYPE_CHECKING:
    from ivr.sip.media import MediaEngine

log = logging.getLogger(__name__)
dropped_log = RateLimitedLog(log)

KeySink = Callable[[str, KeySource], object]
_EVENT_KEYS = "0123456789*#ABCD"
_HEADER = struct.Struct("!BBHII")
# The weakest key tone heard is -40 dBm0 (~227 in 16-bit scale); a frame half covered by one
# has an RMS of ~160. Below this nothing in the frame can be a key: skip the detector.
INBAND_GATE_RMS = 100


# ------------------------------------------------------------------ frames, once per law
PTIME = 0.020
FRAME = 160  # samples (and G.711 bytes) per 20 ms packet
SILENCE = {"pcmu": b"\xff" * FRAME, "pcma": b"\xd5" * FRAME}

# pyVoIP's PayloadType members compare by value through a Python ``__eq__`` (~2 us each, three
# a packet); they are singletons, so per packet they are told apart by identity.
PCMU, PCMA, EVENT = RTP.PayloadType.PCMU, RTP.PayloadType.PCMA, RTP.PayloadType.EVENT


def law_of(payload_type: Any) -> str:
    return "pcma" if payload_type is PCMA else "pcmu"


_cache: OrderedDict[tuple[bytes, int, str], list[bytes]] = OrderedDict()
_cache_lock = threading.Lock()
# A prompt played to many calls (the question, the thanks) is encoded once; the opening,
# which names each call's own request, is encoded once per call. Bounded: RSS stays flat.
CACHE_ENTRIES = 32
ENCODE_PIECE = 50 * FRAME  # samples: one second


def encode_frames(audio: bytes, width: int, law: str) -> list[bytes]:
    """``audio`` (8 kHz mono linear PCM: ``width`` 1 = unsigned 8-bit, 2 = signed 16-bit
    little-endian) as 160-byte frames of ``law``; the last one padded with silence. Cached:
    the same audio in the same law is encoded once."""
    key = (audio, width, law)
    with _cache_lock:
        frames = _cache.get(key)
        if frames is not None:
            _cache.move_to_end(key)
            return frames
    coded = b"".join(
        _encode(audio[i : i + ENCODE_PIECE * width], width, law)
        for i in range(0, len(audio), ENCODE_PIECE * width)
    )  # in pieces: between two C calls the media loop can take the interpreter
    if len(coded) % FRAME:
        coded += SILENCE[law][: FRAME - len(coded) % FRAME]
    frames = [coded[i : i + FRAME] for i in range(0, len(coded), FRAME)]
    with _cache_lock:
        _cache[key] = frames
        while len(_cache) > CACHE_ENTRIES:
            _cache.popitem(last=False)
    return frames


def _encode(audio: bytes, width: int, law: str) -> bytes:
    linear = audio if width == 2 else audioop.lin2lin(audioop.bias(audio, 1, -128), 1, 2)
    return audioop.lin2alaw(linear, 2) if law == "pcma" else audioop.lin2ulaw(linear, 2)


class Chunk:
    """One played piece of audio and how far it has been sent."""

    __slots__ = ("audio", "width", "frames", "pos")

    def __init__(self, audio: bytes, width: int) -> None:
        self.audio, self.width, self.pos = audio, width, 0
        self.frames: dict[str, list[bytes]] = {}

    def frame(self, law: str) -> bytes | None:
        frames = self.frames.get(law)
        if frames is None:
            frames = self.frames[law] = encode_frames(self.audio, self.width, law)
        if self.pos >= len(frames):
            return None
        self.pos += 1
        return frames[self.pos - 1]

    @property
    def samples_left(self) -> int:
        return max(len(self.audio) // self.width - self.pos * FRAME, 0)


# ------------------------------------------------------------------ one call's RTP
class StreamEnds:
    """What pyVoIP's RTPClient was to the adapter (same attribute names: ``assoc``,
    ``preference``, ``inPort``, ``outIP``/``outPort``), with the call's key sink, what its
    media took and dropped, and when it last heard the far end."""

    def __init__(
        self,
        assoc: dict[int, Any],
        in_ip: str,
        in_port: int,
        out_ip: str,
        out_port: int,
        key_sink: KeySink | None = None,
    ) -> None:
        self.assoc = assoc
        audio = [p for p in assoc.values() if p is PCMU or p is PCMA]
        self.preference = audio[0] if audio else PCMU
        self.inIP, self.inPort = in_ip, in_port
        self.outIP, self.outPort = out_ip, out_port
        self.key_sink = key_sink
        self.counters = MediaCounters()
        self.last_rx = time.monotonic()


class MediaStream(StreamEnds):
    """One call's RTP, served by the engine in this process."""

    failed = False  # the engine is in this process: it cannot vanish under the call

    def __init__(
        self,
        engine: MediaEngine,
        assoc: dict[int, Any],
        in_ip: str,
        in_port: int,
        out_ip: str,
        out_port: int,
        key_sink: KeySink | None = None,
    ) -> None:
        super().__init__(assoc, in_ip, in_port, out_ip, out_port, key_sink)
        self.engine = engine
        self.source = SourceLock(out_ip, out_port)
        self.inband = InbandDetector()
        # In-band detection wanted: a key is awaited (the call runner says so, through the
        # adapter's ``listen_for_keys``). Off, received audio is not even decoded for it.
        self.listening = True
        self._was_listening = True
        # every received audio frame as 16-bit linear PCM, for whoever wants to hear it
        self.audio_sink: Callable[[bytes], object] | None = None
        self.inband_frames: list[tuple[bytes, bool]] = []  # gated in, not yet analysed
        self.sock: socket.socket | None = None
        self.queue: deque[Chunk] = deque()
        self.t0 = 0.0
        self.sent = 0  # packets sent: packet n is due at t0 + n * PTIME
        self.seq = random.randint(0, 0xFFFF)
        self.ts = random.randint(0, 0xFFFFFFFF)
        self.ssrc = random.randint(1, 0xFFFFFFFF)
        self.closed = False
        self._event_ts: int | None = None

    # ---- what the adapter calls (any thread)
    def start(self, sock: socket.socket | None = None) -> None:
        """Serve ``sock`` (bound by whoever allocated the port), else a socket bound here."""
        if sock is None:
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.bind((self.inIP, self.inPort))
        self.sock = sock
        sock.setblocking(False)
        self.last_rx = time.monotonic()
        self.engine.add(self)

    def stop(self) -> None:
        if not self.closed:
            self.closed = True
            self.engine.remove(self)

    def write(self, audio: bytes) -> None:
        """Queue unsigned 8-bit audio (the adapter's ``play``)."""
        self.queue.append(self.encoded(Chunk(audio, 1)))

    def write_linear16(self, audio: bytes) -> None:
        """Queue signed 16-bit little-endian audio: straight to G.711, no 8-bit step."""
        self.queue.append(self.encoded(Chunk(audio, 2)))

    def encoded(self, chunk: Chunk) -> Chunk:
        """Encoded here, in the caller's thread (a 6 s prompt takes ~4 ms, which the media
        loop must not spend); only a law switched by a re-INVITE is encoded by the loop."""
        law = law_of(self.preference)
        chunk.frames[law] = encode_frames(chunk.audio, chunk.width, law)
        return chunk

    def drop_queued_audio(self) -> None:
        self.queue = deque()

    def set_remote(self, ip: str, port: int) -> None:
        """Send to, and take RTP only from, this address (a re-INVITE moved the far end)."""
        self.outIP, self.outPort = ip, port
        self.source.expect(ip, port)

    def renegotiate(self, event_pt: int, law_pt: int, law: Any) -> None:
        """A re-INVITE's answer: its telephone-event type and the G.711 law now sent."""
        self.assoc[event_pt] = EVENT
        self.assoc[law_pt] = self.preference = law
        self.last_rx = time.monotonic()

    @property
    def queued_s(self) -> float:
        """Seconds of audio still to send."""
        return sum(c.samples_left for c in list(self.queue)) / 8000.0

    # ---- what the engine calls (its thread)
    def next_due(self) -> float:
        return self.t0 + self.sent * PTIME

    def send_due(self, now: float, sock_send: Callable[[bytes, tuple[str, int]], Any]) -> None:
        law = law_of(self.preference)
        pt = 8 if law == "pcma" else 0
        target = (self.outIP, self.outPort)
        while self.t0 + self.sent * PTIME <= now + 0.0005:
            payload = None
            queue = self.queue  # drop_queued_audio may swap it from another thread
            while queue and payload is None:
                payload = queue[0].frame(law)
                if payload is None:
                    queue.popleft()
            header = _HEADER.pack(0x80, pt, self.seq, self.ts, self.ssrc)
            try:
                sock_send(header + (payload or SILENCE[law]), target)
            except OSError as exc:
                dropped_log.warning("send", "RTP send to %s:%s failed: %s", *target, exc)
            self.sent += 1
            self.seq = (self.seq + 1) & 0xFFFF
            self.ts = (self.ts + FRAME) & 0xFFFFFFFF

    def take(self, packet: bytes, source: tuple[str, int]) -> None:
        """One datagram from ``source``: counted, and read only if it is the far end's RTP."""
        if (
            packet[:1] == b"\x80"  # version 2, no padding, extension or CSRC: a 12-byte header
            and len(packet) > 12
            and not 72 <= packet[1] & 0x7F <= 76  # not RTCP
            and source == self.source.locked
        ):  # the usual packet, as ``header_problem`` and ``SourceLock`` would take it
            problem = None
        else:
            problem = header_problem(packet)
            if problem is None and not self.source.accept(source):
                problem = "foreign"
        counters = self.counters
        if problem is not None:
            setattr(counters, problem, getattr(counters, problem) + 1)
            dropped_log.warning(
                problem, "RTP port %s: %s datagram (%d bytes) from %s:%s dropped",
                self.inPort, problem, len(packet), source[0], source[1],
            )  # fmt: skip
            return
        counters.received += 1
        self.last_rx = time.monotonic()
        kind = self.assoc.get(packet[1] & 0x7F)
        if kind is EVENT:
            self._telephone_event(packet)
        elif kind is PCMU or kind is PCMA:
            self._audio(payload_of(packet), kind)

    def _telephone_event(self, packet: bytes) -> None:
        # Fix (docs/sip-notes.md, pitfall 12): pyVoIP died on event >= 16 and took a key only
        # from a packet with the marker bit; RFC 4733 2.5.1.1: every packet of one event
        # carries its start timestamp, so a new one is a new press.
        payload = payload_of(packet)
        timestamp = int.from_bytes(packet[4:8], "big")
        if not payload or payload[0] > 15 or timestamp == self._event_ts:
            return
        self._event_ts = timestamp
        if self.key_sink is not None:
            self.key_sink(_EVENT_KEYS[payload[0]], KeySource.RFC4733)

    def _audio(self, payload: bytes, kind: Any) -> None:
        listening = self.listening and self.key_sink is not None
        if listening is not self._was_listening:
            self._was_listening = listening
            self.inband.gap()  # a tone heard before a pause in listening is not joined to one after
        if not listening and self.audio_sink is None:
            return
        alaw = kind is PCMA
        linear = audioop.alaw2lin(payload, 2) if alaw else audioop.ulaw2lin(payload, 2)
        if self.audio_sink is not None:
            self.audio_sink(linear)
        if not listening or self.key_sink is None:
            return
        if audioop.rms(linear, 2) < INBAND_GATE_RMS:
            self.inband.gap()
        elif len(payload) == FRAME:
            self.inband_frames.append((payload, alaw))  # to ``inband_batch``, with the rest
        else:
            keys = self.inband.feed_alaw(payload) if alaw else self.inband.feed_ulaw(payload)
            self.inband_keys(keys)

    def inband_keys(self, keys: list[str]) -> None:
        for key in keys:
            if self.key_sink is not None:
                self.key_sink(key, KeySource.INBAND)


_LAWS = np.stack((ULAW, ALAW))


def inband_batch(streams: Iterable[MediaStream]) -> None:
    """The frames that passed the energy gate, of every stream, through the detector's first
    stage in one batch; only frames with a candidate block go to the (costly) detector."""
    items = [(s, payload, alaw) for s in streams for payload, alaw in s.inband_frames]
    for s in streams:
        s.inband_frames = []
    if not items:
        return
    codes = np.frombuffer(b"".join(p for _, p, _ in items), dtype=np.uint8).reshape(-1, FRAME)
    laws = np.fromiter((a for _, _, a in items), dtype=np.intp, count=len(items))
    samples = _LAWS[laws[:, None], codes]
    for (stream, _payload, _alaw), frame, maybe in zip(
        items, samples, candidate_frames(samples), strict=True
    ):
        if maybe:
            stream.inband_keys(stream.inband.feed(frame))
        else:
            stream.inband.gap()
