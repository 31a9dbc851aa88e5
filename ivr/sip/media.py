"""One media engine per process: every call's RTP socket on one event loop, sending on an
absolute clock.

pyVoIP ran two threads per call (a receiver polling every 10 ms, a sender sleeping "20 ms minus
this packet's work"): past ~35 calls on 2 vCPU the GIL and the relative sleep made prompts
play slow and broken up (docs/sip-notes.md, pitfall 19; issue 11's table). Here one thread,
at real-time priority where permitted, wakes every 5 ms tick: it sends what is due, then
reads every socket one ``epoll_wait`` finds readable. Packet n of a stream leaves at
``t0 + n * 20 ms`` (t0 on a tick); a late wake-up sends what is due at once, so lateness
never accumulates (aiortc's ``AudioStreamTrack.recv`` does the same).

Audio is turned into 160-byte G.711 frames once per law when queued, by the thread that
queues it (cached, so a prompt played on 300 calls is encoded once), never per packet.
Received audio goes to the in-band key detector only while a key is awaited (the call
runner says so) and only for frames that pass a cheap energy gate (``audioop.rms``); a
gated frame is a gap for the detector, as silence is.

What a datagram must be to be heard at all is ``ivr.sip.rtp_guard``'s (pitfalls 22, 23).
"""

from __future__ import annotations

import audioop  # C, and what pyVoIP itself uses (audioop-lts on Python >= 3.13)
import heapq
import itertools
import logging
import math
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
MEDIA_RT_PRIORITY = 10  # SCHED_RR, where permitted (root or CAP_SYS_NICE)
MEDIA_NICE = -10  # else this, where permitted; otherwise the default
MAX_RECV_PER_WAKE = 16  # per socket and tick, after a late wake-up
SLOT = PTIME / 4  # the loop's tick
PHASES = 4  # ticks per packet time: a stream's packets are all due on one of them


# pyVoIP's PayloadType members compare by value through a Python ``__eq__`` (~2 us each, three
# a packet); they are singletons, so per packet they are told apart by identity.
_PCMU, _PCMA, _EVENT = RTP.PayloadType.PCMU, RTP.PayloadType.PCMA, RTP.PayloadType.EVENT


def law_of(payload_type: Any) -> str:
    return "pcma" if payload_type is _PCMA else "pcmu"


# ------------------------------------------------------------------ encoding, once per law
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
        coded += _SILENCE[law][: FRAME - len(coded) % FRAME]
    frames = [coded[i : i + FRAME] for i in range(0, len(coded), FRAME)]
    with _cache_lock:
        _cache[key] = frames
        while len(_cache) > CACHE_ENTRIES:
            _cache.popitem(last=False)
    return frames


def _encode(audio: bytes, width: int, law: str) -> bytes:
    linear = audio if width == 2 else audioop.lin2lin(audioop.bias(audio, 1, -128), 1, 2)
    return audioop.lin2alaw(linear, 2) if law == "pcma" else audioop.lin2ulaw(linear, 2)


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
        # In-band detection wanted: a key is awaited (the call runner says so, through the
        # adapter's ``listen_for_keys``). Off, received audio is not even decoded for it.
        self.listening = True
        self._was_listening = True
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
        self.queue.append(self._encoded(_Chunk(audio, 1)))

    def write_linear16(self, audio: bytes) -> None:
        """Queue signed 16-bit little-endian audio: straight to G.711, no 8-bit step."""
        self.queue.append(self._encoded(_Chunk(audio, 2)))

    def _encoded(self, chunk: _Chunk) -> _Chunk:
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
            _dropped_log.warning(
                problem, "RTP port %s: %s datagram (%d bytes) from %s:%s dropped",
                self.inPort, problem, len(packet), source[0], source[1],
            )  # fmt: skip
            return
        counters.received += 1
        self.last_rx = time.monotonic()
        kind = self.assoc.get(packet[1] & 0x7F)
        if kind is _EVENT:
            self._telephone_event(packet)
        elif kind is _PCMU or kind is _PCMA:
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
        alaw = kind is _PCMA
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
def _raise_priority() -> str:
    """The calling (media) thread ahead of every ordinary thread for the CPU: real-time
    round-robin where permitted (root or CAP_SYS_NICE; as Asterisk's ``-p`` and PipeWire's
    data threads), else nice -10, else as it is. It sleeps most of each tick and the
    kernel keeps 5 % of every second for others (``sched_rt_runtime_us``), so a loaded
    node stays usable. Measured at 300 calls on a 2-vCPU machine busy with other work
    (load 12): ticks p99 19 ms apart with it, 338 ms at nice -10 (bench/media_profile.py)."""
    tid = threading.get_native_id()
    try:
        os.sched_setscheduler(tid, os.SCHED_RR, os.sched_param(MEDIA_RT_PRIORITY))
        return "realtime"
    except (OSError, AttributeError):
        pass
    try:
        os.setpriority(os.PRIO_PROCESS, tid, MEDIA_NICE)
        return "nice"
    except OSError:
        log.debug("media loop: neither real-time nor nice %d permitted", MEDIA_NICE)
        return "default"


class MediaEngine:
    """The process's media loop; started by the first phone that needs it, stopped (and its
    thread joined) when the last one releases it.

    It wakes on a grid of :data:`SLOT` ticks, never per socket or per packet: each tick
    sends every packet due, then reads every socket that became readable (one
    ``epoll_wait`` for all), then runs the batched in-band stage. Each stream's clock
    starts on a tick of the least used of the :data:`PHASES` phases, so its packets are
    always due on a tick and the 20 ms cycle's sends are spread evenly over the phases.
    Every socket call lets other Python threads take the interpreter, and getting it back
    can take long when they are busy; so the fewer wake-ups and calls, the steadier the
    clock (docs/sip-notes.md, pitfall 19)."""

    def __init__(self, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._users = 0
        self._thread: threading.Thread | None = None
        self._running = False
        self._selector: selectors.BaseSelector | None = None
        self._heap: list[tuple[float, int, MediaStream]] = []
        self._order = itertools.count()
        self._epoch = 0.0  # tick k is at epoch + k * SLOT
        self._phase_load = [0] * PHASES
        self._streams: dict[MediaStream, int] = {}  # stream -> its phase

    def acquire(self) -> None:
        with self._lock:
            self._users += 1
            if self._thread is not None:
                return
            self._selector = selectors.DefaultSelector()
            self._epoch = self._monotonic()
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
        thread.join(timeout=2.0)
        with self._lock:
            for stream in list(self._streams):
                self._forget(stream)
            assert self._selector is not None
            self._selector.close()

    def first_tick(self, now: float) -> tuple[float, int]:
        """When a stream starting at ``now`` sends its first packet, and on which phase: the
        least used one among the next :data:`PHASES` ticks."""
        k = math.ceil((now - self._epoch) / SLOT - 1e-9)
        best = min(range(k, k + PHASES), key=lambda j: (self._phase_load[j % PHASES], j))
        return self._epoch + best * SLOT, best % PHASES

    def add(self, stream: MediaStream) -> None:
        with self._lock:
            if self._selector is None or not self._running:
                raise RuntimeError("media engine not started")
            assert stream.sock is not None
            stream.t0, phase = self.first_tick(self._monotonic())
            self._phase_load[phase] += 1
            self._selector.register(stream.sock, selectors.EVENT_READ, stream)
            self._streams[stream] = phase
            heapq.heappush(self._heap, (stream.t0, next(self._order), stream))

    def remove(self, stream: MediaStream) -> None:
        with self._lock:
            self._forget(stream)

    @property
    def streams(self) -> int:
        return len(self._streams)

    def _forget(self, stream: MediaStream) -> None:
        stream.closed = True
        phase = self._streams.pop(stream, None)
        if phase is not None:
            self._phase_load[phase] -= 1
            if self._selector is not None and stream.sock is not None:
                try:
                    self._selector.unregister(stream.sock)
                except (KeyError, ValueError):
                    pass
        if stream.sock is not None:
            stream.sock.close()

    def _run(self) -> None:
        _raise_priority()
        tick = self._epoch
        while self._running:
            now = self._monotonic()
            if tick > now:
                time.sleep(tick - now)
                now = self._monotonic()
            # one datagram per ready socket and tick (RTP brings one per 4 ticks), more after
            # a late wake-up: never a read that finds nothing (a failed call costs as much)
            budget = min(1 + int((now - tick) / SLOT), MAX_RECV_PER_WAKE)
            try:
                self._tick(now, budget)
            except Exception as exc:  # a bug of ours must not stop every call's media
                _dropped_log.warning("bug", "media loop: %r", exc)
            tick += SLOT
            if tick < now:  # woke late: what was due is sent; go on from the next tick
                tick = self._epoch + math.ceil((now - self._epoch) / SLOT) * SLOT

    def _tick(self, now: float, budget: int = 1) -> None:
        self._send_due(now)  # first what is due, then what came, then the analysis
        selector = self._selector
        assert selector is not None
        try:
            ready = selector.select(0) if self._streams else []
        except (OSError, ValueError):  # a socket closed under us: next tick
            return
        heard: list[MediaStream] = []
        for key, _ in ready:
            stream = key.data
            if not stream.closed:
                self._receive(stream, budget)
                heard.append(stream)
        inband_batch(heard)

    def _receive(self, stream: MediaStream, budget: int) -> None:
        """Up to ``budget`` datagrams; what is left is read on the next tick (the socket is
        still readable), so a flooded port cannot hold up the others."""
        sock = stream.sock
        assert sock is not None
        for _ in range(budget):
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

    def _send_due(self, now: float) -> None:
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
