"""The media process: the media engine in an interpreter of its own.

In one process the media loop shared the GIL with 300 call runners, the SIP threads and the
garbage collector: at 300 calls its socket calls waited to get the interpreter back and the
p99 inter-packet interval was 29-72 ms (docs/media-capacity.md). Here the engine
(``ivr.sip.media``) runs in a child process started with multiprocessing's "spawn" (the
product has threads: never a plain fork), which holds nothing else: a command thread and the
loop.

The wire (``socketpair(AF_UNIX, SOCK_SEQPACKET)``: one pickled tuple a message, each sent
whole, so threads need no lock to send). Commands, product -> media:

``("open", sid, assoc, in_ip, in_port, out_ip, out_port, listening)`` with the call's bound
RTP socket as SCM_RIGHTS (the SDP port stays the one the product allocated);
``("clip", clip_id, width, total, piece)`` audio sent once per content, in pieces;
``("forget", clip_id)``; ``("play", sid, clip_id)``; ``("drop", sid)``;
``("remote", sid, ip, port)``; ``("codec", sid, event_pt, law_pt, payload_type)``;
``("listen", sid, on)``; ``("capture", sid, on)``; ``("stop", sid)``; ``("quit",)``.

Events, media -> product: ``("key", sid, key, source)``; ``("audio", sid, linear16)`` (only
while a capture is on, from once the queued audio has been sent); ``("stats", rows)`` every
:data:`STATS_S` (counters and ``last_rx`` per stream; CLOCK_MONOTONIC is the machine's, so
the times compare across the processes); ``("closed", sid, row)``; ``("failed", sid,
detail)``; ``("log", level, logger, message)`` (the child has no handlers of its own).

The process ends on ``quit`` or when the product's end of the socket closes (the product
died): it never outlives the node.
"""

from __future__ import annotations

import ctypes
import gc
import logging
import pickle
import select
import signal
import socket
import time
from collections.abc import Callable, Sequence
from typing import Any

from ivr.sip.api import KeySource
from ivr.sip.media import MediaEngine, raise_priority
from ivr.sip.media_stream import Chunk, MediaStream

PROCESS_NAME = "ivr-media"
STATS_S = 0.25  # how often counters and last_rx go to the product
MAX_MESSAGE = 1 << 16  # bytes; audio goes in pieces of CLIP_PIECE
CLIP_PIECE = 48 * 1024
StatsRow = tuple[int, int, int, int, int, float]  # sid, received, runt, malformed, foreign, rx

log = logging.getLogger(__name__)


def send_message(sock: socket.socket, message: tuple[Any, ...], fds: Sequence[int] = ()) -> None:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    if fds:
        socket.send_fds(sock, [data], list(fds))
    else:
        sock.sendmsg([data])


def stats_row(sid: int, stream: Any) -> StatsRow:
    c = stream.counters
    return (sid, c.received, c.runt, c.malformed, c.foreign, stream.last_rx)


class _Forwarder(logging.Handler):
    """The child's log records, to the product's logging (formatted here)."""

    def __init__(self, emit: Callable[[tuple[Any, ...]], None]) -> None:
        super().__init__()
        self._emit = emit

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._emit(("log", record.levelno, record.name, record.getMessage()))
        except Exception:  # noqa: BLE001  (a log line must never stop the media)
            pass


class _Capture:
    """The far end's audio while a comment is recorded, from the first frame received once
    everything queued to play has been sent (before, it may be our prompt's echo)."""

    def __init__(self, stream: MediaStream, sid: int, emit: Callable[[tuple[Any, ...]], None]):
        self._stream, self._sid, self._emit, self._armed = stream, sid, emit, True

    def __call__(self, linear: bytes) -> None:  # the loop's thread
        if self._armed:
            if self._stream.queue and self._stream.queued_s > 0:
                return
            self._armed = False
        self._emit(("audio", self._sid, linear))


class MediaServer:
    """The child's side: commands in (its main thread), the engine's loop, events out."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.engine = MediaEngine()
        self.streams: dict[int, MediaStream] = {}
        self.clips: dict[bytes, tuple[bytes, int]] = {}
        self._partial: dict[bytes, bytearray] = {}

    def emit(self, message: tuple[Any, ...]) -> None:
        try:
            send_message(self.sock, message)
        except OSError:
            pass  # the product is gone: the command loop sees it and ends

    def run(self) -> None:
        self.engine.acquire()
        poller = select.poll()
        poller.register(self.sock, select.POLLIN)
        next_stats = time.monotonic() + STATS_S
        try:
            while True:
                wait_ms = max(next_stats - time.monotonic(), 0.0) * 1000
                if poller.poll(wait_ms):
                    data, fds, _flags, _addr = socket.recv_fds(self.sock, MAX_MESSAGE, 1)
                    if not data or not self.handle(pickle.loads(data), fds):
                        return  # the product closed its end (or died), or said quit
                if time.monotonic() >= next_stats:
                    next_stats = time.monotonic() + STATS_S
                    if self.streams:
                        self.emit(("stats", [stats_row(s, m) for s, m in self.streams.items()]))
        finally:
            self.engine.release()

    def handle(self, message: tuple[Any, ...], fds: list[int]) -> bool:
        kind, *args = message
        if kind == "quit":
            return False
        try:
            if kind == "open":
                self._open(fds[0], *args)
            elif kind == "clip":
                self._clip(*args)
            elif kind == "forget":
                self.clips.pop(args[0], None)
            else:
                self._stream_command(kind, *args)
        except Exception as exc:  # a bug of ours: one call's problem, not every call's
            log.error("media process: command %s failed: %r", kind, exc)
        return True

    def _open(self, fd: int, sid: int, assoc: dict[int, Any], in_ip: str, in_port: int,
              out_ip: str, out_port: int, listening: bool) -> None:  # fmt: skip
        sock = socket.socket(fileno=fd)
        stream = MediaStream(self.engine, assoc, in_ip, in_port, out_ip, out_port,
                             key_sink=lambda key, source: self._key(sid, key, source))  # fmt: skip
        stream.listening = listening
        try:
            stream.start(sock)
        except Exception as exc:
            sock.close()
            self.emit(("failed", sid, repr(exc)))
            return
        self.streams[sid] = stream

    def _key(self, sid: int, key: str, source: KeySource) -> None:  # the loop's thread
        self.emit(("key", sid, key, source.value))

    def _clip(self, clip_id: bytes, width: int, total: int, piece: bytes) -> None:
        audio = self._partial.setdefault(clip_id, bytearray())
        audio += piece
        if len(audio) >= total:
            del self._partial[clip_id]
            self.clips[clip_id] = (bytes(audio), width)

    def _stream_command(self, kind: str, sid: int, *args: Any) -> None:
        stream = self.streams.get(sid)
        if stream is None:
            return
        if kind == "play":
            audio, width = self.clips[args[0]]
            stream.queue.append(
                stream.encoded(Chunk(audio, width))
            )  # encoded here, not by the loop
        elif kind == "drop":
            stream.drop_queued_audio()
        elif kind == "remote":
            stream.set_remote(*args)
        elif kind == "codec":
            stream.renegotiate(*args)
        elif kind == "listen":
            stream.listening = args[0]
        elif kind == "capture":
            stream.audio_sink = _Capture(stream, sid, self.emit) if args[0] else None
        elif kind == "stop":
            stream.stop()
            del self.streams[sid]
            self.emit(("closed", sid, stats_row(sid, stream)))


def _name_process() -> None:
    """``ivr-media`` in ``ps``/``top`` (PR_SET_NAME), not one more ``python``."""
    try:
        ctypes.CDLL(None).prctl(15, PROCESS_NAME.encode(), 0, 0, 0)
    except (OSError, AttributeError):
        pass


def serve(sock: socket.socket, log_level: int) -> None:
    """The media process's main: until ``quit`` or the product's end closes."""
    # Ctrl-C and a service manager's SIGTERM (sent to the whole group) are the node's: it
    # lets its calls finish, then stops us; we end with it in any case (its socket closes)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    _name_process()
    server = MediaServer(sock)
    root = logging.getLogger()
    root.addHandler(_Forwarder(server.emit))
    root.setLevel(log_level)
    gc.freeze()  # what the imports made is never garbage: later passes skip it
    # This thread shares the interpreter with the loop only: at the loop's priority, it never
    # waits for a core while holding the GIL the loop needs (no priority inversion here).
    raise_priority()
    server.emit(("ready",))
    server.run()
