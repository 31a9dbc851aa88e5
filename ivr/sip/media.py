"""One media engine per process: every call's RTP socket on one event loop, sending on an
absolute clock.

pyVoIP ran two threads per call (a receiver polling every 10 ms, a sender sleeping "20 ms minus
this packet's work"): past ~35 calls on 2 vCPU the GIL and the relative sleep made prompts
play slow and broken up (docs/sip-notes.md, pitfall 19; issue 11's table). Here one thread
waits in ``selectors`` for the earliest of: a readable RTP socket, or the next packet due.
Packet n of a stream leaves at ``t0 + n * 20 ms``; a late wake-up sends what is due at once,
so lateness never accumulates (aiortc's ``AudioStreamTrack.recv`` does the same).

Audio is turned into 160-byte G.711 frames once per law when first played (cached, so a
prompt played on 300 calls is encoded once), never per packet. Received audio goes to the
in-band key detector only while the call listens for keys and only for frames that pass a
cheap energy gate (``audioop.rms``); a gated frame is a gap for the detector, as silence is.

What a datagram must be to be heard at all is ``ivr.sip.rtp_guard``'s (pitfalls 22, 23).
"""

from __future__ import annotations

import audioop  # C, and what pyVoIP itself uses (audioop-lts on Python >= 3.13)
import heapq
import itertools
import logging
import os
import random
import selectors
import socket
import struct
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import pyVoIP.VoIP  # noqa: F401  (pyVoIP must import VoIP before SIP: circular imports)
from pyVoIP import RTP

from ivr.core.dtmf_inband import ALAW, ULAW, InbandDetector, candidate_frames
from ivr.sip.api import KeySource
from ivr.sip.ratelog import RateLimitedLog
from ivr.sip.rtp_guard import MediaCounters, SourceLock, header_problem, payload_of

log = logging.getLogger(__name__)
_dropped_log = RateLimitedLog(log)

KeySink = Callable[[str, KeySource], object]
PTIME = 0.020
FRAME = 160  # samples (and G.711 bytes) per 20 ms packet
_EVENT_KEYS = "0123456789*#ABCD"
_HEADER = struct.Struct("!BBHII")
# The weakest key tone heard is -40 dBm0 (~227 in 16-bit scale); a frame half covered by one
# has an RMS of ~160. Below this nothing in the frame can be a key: skip the detector.
INBAND_GATE_RMS = 100
_SILENCE = {"pcmu": b"\xff" * FRAME, "pcma": b"\xd5" * FRAME}
MEDIA_NICE = -10  # where permitted (root or CAP_SYS_NICE); otherwise the default
MAX_RECV_PER_WAKE = 64  # per socket and wake-up, so one flooded port cannot starve the rest


def law_of(payload_type: Any) -> str:
    return "pcma" if payload_type == RTP.PayloadType.PCMA else "pcmu"


# ------------------------------------------------------------------ encoding, once per law
_cache: OrderedDict[tuple[bytes, int, str], list[bytes]] = OrderedDict()
_cache_lock = threading.Lock()
# A prompt played to many calls (the question, the thanks) is encoded once; the opening,
# which names each call's own request, is encoded once per call. Bounded: RSS stays flat.
CACHE_ENTRIES = 32


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
    linear = audio if width == 2 else audioop.lin2lin(audioop.bias(audio, 1, -128), 1, 2)
    coded = audioop.lin2alaw(linear, 2) if law == "pcma" else audioop.lin2ulaw(linear, 2)
    if len(coded) % FRAME:
        coded += _SILENCE[law][: FRAME - len(coded) % FRAME]
    frames = [coded[i : i + FRAME] for i in range(0, len(coded), FRAME)]
    with _cache_lock:
        _cache[key] = frames
        while len(_cache) > CACHE_ENTRIES:
            _cache.popitem(last=False)
    return frames


class _Chunk:
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


# ------------------------------------------------------------------ one call's RTP
class MediaStream:
    """One call's RTP: what pyVoIP's RTPClient was to the adapter (same attribute names:
    ``assoc``, ``preference``, ``inPort``, ``outIP``/``outPort``), served by the engine."""

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
        self.engine = engine
        self.assoc = assoc
        audio = [p for p in assoc.values() if p in (RTP.PayloadType.PCMU, RTP.PayloadType.PCMA)]
        self.preference = audio[0] if audio else RTP.PayloadType.PCMU
        self.inIP, self.inPort = in_ip, in_port
        self.outIP, self.outPort = out_ip, out_port
        self.key_sink = key_sink
        self.source = SourceLock(out_ip, out_port)
        self.counters = MediaCounters()
        self.last_rx = time.monotonic()
        self.inband = InbandDetector()
        self.listening = True  # in-band detection wanted (a key is awaited)
        # every received audio frame as 16-bit linear PCM, for whoever wants to hear it
        self.audio_sink: Callable[[bytes], object] | None = None
        self.inband_frames: list[tuple[bytes, bool]] = []  # gated in, not yet analysed
        self.sock: socket.socket | None = None
        self.queue: deque[_Chunk] = deque()
        self.t0 = 0.0
        self.sent = 0  # packets sent: packet n is due at t0 + n * PTIME
        self.seq = random.randint(0, 0xFFFF)
        self.ts = random.randint(0, 0xFFFFFFFF)
        self.ssrc = random.randint(1, 0xFFFFFFFF)
        self.closed = False
        self._event_ts: int | None = None

    # ---- what the adapter calls (any thread)
    def start(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((self.inIP, self.inPort))
        self.sock.setblocking(False)
        self.last_rx = time.monotonic()
        self.engine.add(self)

    def stop(self) -> None:
        if not self.closed:
            self.closed = True
            self.engine.remove(self)

    def write(self, audio: bytes) -> None:
        """Queue unsigned 8-bit audio (the adapter's ``play``)."""
        self.queue.append(_Chunk(audio, 1))

    def write_linear16(self, audio: bytes) -> None:
        """Queue signed 16-bit little-endian audio: straight to G.711, no 8-bit step."""
        self.queue.append(_Chunk(audio, 2))

    def drop_queued_audio(self) -> None:
        self.queue = deque()

    def set_remote(self, ip: str, port: int) -> None:
        """Send to, and take RTP only from, this address (a re-INVITE moved the far end)."""
        self.outIP, self.outPort = ip, port
        self.source.expect(ip, port)

    @property
    def queued_s(self) -> float:
        """Seconds of audio still to send."""
        return (
            sum(max(len(c.audio) // c.width - c.pos * FRAME, 0) for c in list(self.queue)) / 8000.0
        )

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
                sock_send(header + (payload or _SILENCE[law]), target)
            except OSError as exc:
                _dropped_log.warning("send", "RTP send to %s:%s failed: %s", *target, exc)
            self.sent += 1
            self.seq = (self.seq + 1) & 0xFFFF
            self.ts = (self.ts + FRAME) & 0xFFFFFFFF

    def take(self, packet: bytes, source: tuple[str, int]) -> None:
        """One datagram from ``source``: counted, and read only if it is the far end's RTP."""
        problem = header_problem(packet)
        if problem is None and not self.source.accept(source):
            problem = "foreign"
        counters = self.counters
        if problem is not None:
            setattr(counters, problem, getattr(counters, problem) + 1)
            _dropped_log.warning(
                problem, "RTP port %s: %s datagram (%d bytes) from %s:%s dropped",
                self.inPort, problem, len(packet), source[0], source[1],
            )  # fmt: skip
            return
        counters.received += 1
        self.last_rx = time.monotonic()
        kind = self.assoc.get(packet[1] & 0x7F)
        if kind == RTP.PayloadType.EVENT:
            self._telephone_event(packet)
        elif kind in (RTP.PayloadType.PCMU, RTP.PayloadType.PCMA):
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
        if not listening and self.audio_sink is None:
            return
        alaw = kind == RTP.PayloadType.PCMA
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
            self._inband_keys(keys)

    def _inband_keys(self, keys: list[str]) -> None:
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
            stream._inband_keys(stream.inband.feed(frame))
        else:
            stream.inband.gap()


# ------------------------------------------------------------------ the loop
class MediaEngine:
    """The process's media loop; started by the first phone that needs it, stopped (and its
    thread joined) when the last one releases it."""

    def __init__(self, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._users = 0
        self._thread: threading.Thread | None = None
        self._running = False
        self._selector: selectors.BaseSelector | None = None
        self._heap: list[tuple[float, int, MediaStream]] = []
        self._order = itertools.count()
        self._wake_r: socket.socket | None = None
        self._wake_w: socket.socket | None = None
        self._streams: set[MediaStream] = set()

    def acquire(self) -> None:
        with self._lock:
            self._users += 1
            if self._thread is not None:
                return
            self._selector = selectors.DefaultSelector()
            self._wake_r, self._wake_w = socket.socketpair()
            self._wake_r.setblocking(False)
            self._selector.register(self._wake_r, selectors.EVENT_READ, None)
            self._running = True
            self._thread = threading.Thread(target=self._run, name="ivr media", daemon=True)
            self._thread.start()

    def release(self) -> None:
        with self._lock:
            self._users -= 1
            if self._users > 0 or self._thread is None:
                return
            self._running = False
            thread, self._thread = self._thread, None
        self._wake()
        thread.join(timeout=2.0)
        with self._lock:
            for stream in list(self._streams):
                self._forget(stream)
            assert self._selector is not None and self._wake_r and self._wake_w
            self._selector.close()
            self._wake_r.close()
            self._wake_w.close()

    def add(self, stream: MediaStream) -> None:
        with self._lock:
            if self._selector is None or not self._running:
                raise RuntimeError("media engine not started")
            assert stream.sock is not None
            stream.t0 = self._monotonic()
            self._selector.register(stream.sock, selectors.EVENT_READ, stream)
            self._streams.add(stream)
            heapq.heappush(self._heap, (stream.t0, next(self._order), stream))
        self._wake()

    def remove(self, stream: MediaStream) -> None:
        with self._lock:
            self._forget(stream)

    @property
    def streams(self) -> int:
        return len(self._streams)

    def _forget(self, stream: MediaStream) -> None:
        stream.closed = True
        if stream in self._streams:
            self._streams.discard(stream)
            if self._selector is not None and stream.sock is not None:
                try:
                    self._selector.unregister(stream.sock)
                except (KeyError, ValueError):
                    pass
        if stream.sock is not None:
            stream.sock.close()

    def _wake(self) -> None:
        if self._wake_w is not None:
            try:
                self._wake_w.send(b"\0")
            except OSError:
                pass

    def _run(self) -> None:
        selector = self._selector
        assert selector is not None
        try:  # a media thread: ahead of the process's other threads (and others') for the CPU
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), MEDIA_NICE)
        except OSError:
            log.debug("media loop: nice %d not permitted, running at the default", MEDIA_NICE)
        while self._running:
            with self._lock:
                due = self._heap[0][0] if self._heap else None
            timeout = 0.1 if due is None else max(due - self._monotonic(), 0.0)
            try:
                ready = selector.select(timeout)
            except (OSError, ValueError):  # a socket closed under us: go round again
                ready = []
            heard: list[MediaStream] = []
            for key, _ in ready:
                stream = key.data
                if stream is None:
                    try:
                        key.fileobj.recv(4096)  # type: ignore[union-attr]
                    except OSError:
                        pass
                elif not stream.closed:
                    self._receive(stream)
                    heard.append(stream)
            try:
                self._send_due()  # first what is due, then the analysis
                inband_batch(heard)
            except Exception as exc:  # a bug of ours must not stop every call's media
                _dropped_log.warning("bug", "media loop: %r", exc)

    def _receive(self, stream: MediaStream) -> None:
        sock = stream.sock
        assert sock is not None
        for _ in range(MAX_RECV_PER_WAKE):
            try:
                packet, source = sock.recvfrom(2048)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return  # closed by stop(), or an ICMP error reported on the socket
            try:
                stream.take(packet, source)
            except Exception as exc:  # a bug of ours must not stop every call's media
                stream.counters.malformed += 1
                _dropped_log.warning("bug", "RTP port %s: packet not handled: %r",
                                     stream.inPort, exc)  # fmt: skip

    def _send_due(self) -> None:
        now = self._monotonic()
        with self._lock:
            heap = self._heap
            while heap and heap[0][0] <= now + 0.0005:
                _, _, stream = heapq.heappop(heap)
                if stream.closed or stream.sock is None:
                    continue
                try:
                    stream.send_due(now, stream.sock.sendto)
                finally:  # a stream whose send failed is still served next time
                    heapq.heappush(heap, (stream.next_due(), next(self._order), stream))


ENGINE = MediaEngine()  # the process's one media loop
