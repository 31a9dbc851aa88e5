"""One media engine per process: every call's RTP socket on one event loop, sending on an
absolute clock.

pyVoIP ran two threads per call (a receiver polling every 10 ms, a sender sleeping "20 ms minus
this packet's work"): past ~35 calls on 2 vCPU the GIL and the relative sleep made prompts
play slow and broken up (docs/sip-notes.md, pitfall 19; issue 11's table). Here one thread,
at real-time priority where permitted, wakes every 5 ms tick: it sends what is due, then
reads every socket one ``epoll_wait`` finds readable. Packet n of a stream leaves at
``t0 + n * 20 ms`` (t0 on a tick); a late wake-up sends what is due at once, so lateness
never accumulates (aiortc's ``AudioStreamTrack.recv`` does the same).

The product runs this engine in a process of its own (``ivr.sip.media_process``: its own
interpreter, so no call runner holds the loop's GIL); the streams and their frames are
``ivr.sip.media_stream``'s.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import math
import os
import selectors
import threading
import time
from collections.abc import Callable

from ivr.sip.media_stream import (
    FRAME,
    PTIME,
    KeySink,
    MediaStream,
    dropped_log,
    encode_frames,
    inband_batch,
)

__all__ = ["FRAME", "ENGINE", "KeySink", "MediaEngine", "MediaStream", "encode_frames",
           "inband_batch"]  # fmt: skip

log = logging.getLogger(__name__)

MEDIA_RT_PRIORITY = 10  # SCHED_RR, where permitted (root or CAP_SYS_NICE)
MEDIA_NICE = -10  # else this, where permitted; otherwise the default
MAX_RECV_PER_WAKE = 16  # per socket and tick, after a late wake-up
SLOT = PTIME / 4  # the loop's tick
PHASES = 4  # ticks per packet time: a stream's packets are all due on one of them


# ------------------------------------------------------------------ the loop
def raise_priority() -> str:
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
        raise_priority()
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
                dropped_log.warning("bug", "media loop: %r", exc)
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
                dropped_log.warning("bug", "RTP port %s: packet not handled: %r",
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
