"""The product's side of the media process (``ivr.sip.media_process``): starting it,
sending it commands, and one reader thread that hands its events to the calls' streams
(``ivr.sip.remote_stream``).

The process is started by the first phone that needs media (``acquire``, at the phone's
start: a spawn takes ~0.1 s, never inside a call's answer) and stopped by the last one
(``release``). If it dies, every stream it served is marked failed (the call runner ends
those calls as it ends any call whose media stopped: ``no_media``; keys already received
are already the call's), one ERROR is logged, and a new process is started for later calls.

``IVR_MEDIA_IN_PROCESS=1`` runs the engine in the product's process instead (as before
issue 11's last step; for comparison in ``bench/``).
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import multiprocessing as mp
import os
import pickle
import socket
import threading
import time
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

from ivr.sip.api import KeySource
from ivr.sip.media import ENGINE, MediaEngine
from ivr.sip.media_process import CLIP_PIECE, MAX_MESSAGE, StatsRow, send_message, serve

if TYPE_CHECKING:
    from multiprocessing.process import BaseProcess

    from ivr.sip.remote_stream import RemoteStream

log = logging.getLogger(__name__)

IN_PROCESS = os.environ.get("IVR_MEDIA_IN_PROCESS") == "1"
CLIPS_KEPT = 64  # distinct clips the media process keeps (the opening is one per call)
START_TIMEOUT_S = 30.0
RESTART_AFTER_S = 5.0  # a process that died younger is started again only when needed


class MediaLink:
    """One media process: its socket, its streams, the clips it holds."""

    def __init__(self, owner: MediaProcess) -> None:
        self.owner = owner
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.sock = ours
        self.lock = threading.Lock()  # clip registration and its play stay in order
        self.streams: dict[int, RemoteStream] = {}
        self.clips: OrderedDict[bytes, None] = OrderedDict()
        self.stopping = False
        self.ready = threading.Event()  # the process said it serves
        self.started = time.monotonic()
        level = logging.getLogger("ivr").getEffectiveLevel()
        self.process: BaseProcess = mp.get_context("spawn").Process(
            target=serve, args=(theirs, level), name="ivr media", daemon=True
        )
        self.process.start()
        theirs.close()
        self.reader = threading.Thread(target=self._read, name="ivr media events", daemon=True)
        self.reader.start()
        if not self.ready.wait(START_TIMEOUT_S):
            self.stop()
            raise RuntimeError(f"media process (pid {self.process.pid}) did not start")
        log.info("media process started (pid %s)", self.process.pid)

    @property
    def alive(self) -> bool:
        return not self.stopping and self.process.is_alive()

    def send(self, message: tuple[Any, ...], fds: list[int] | None = None) -> bool:
        try:
            send_message(self.sock, message, fds or [])
            return True
        except OSError:
            return False  # the process is gone: the reader marks its streams failed

    def play(self, sid: int, audio: bytes, width: int) -> None:
        """Audio sent once per content (a prompt played on 300 calls crosses once), then
        played by id."""
        clip_id = hashlib.blake2b(audio, digest_size=16).digest() + bytes([width])
        with self.lock:
            if clip_id in self.clips:
                self.clips.move_to_end(clip_id)
            else:
                for at in range(0, max(len(audio), 1), CLIP_PIECE):
                    piece = audio[at : at + CLIP_PIECE]
                    self.send(("clip", clip_id, width, len(audio), piece))
                self.clips[clip_id] = None
                while len(self.clips) > CLIPS_KEPT:
                    self.send(("forget", self.clips.popitem(last=False)[0]))
            self.send(("play", sid, clip_id))

    def stop(self) -> None:
        self.stopping = True
        self.send(("quit",))
        self.process.join(timeout=5.0)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(timeout=5.0)
        self.sock.close()  # the reader sees it and ends
        self.reader.join(timeout=5.0)

    def _read(self) -> None:
        while True:
            try:
                data = self.sock.recv(MAX_MESSAGE)
            except OSError:
                data = b""
            if not data:
                break
            try:
                self._dispatch(pickle.loads(data))
            except Exception as exc:  # our bug: one line, and the next event
                log.error("media event not handled: %r", exc)
        if not self.stopping:
            self.owner.died(self)

    def _dispatch(self, message: tuple[Any, ...]) -> None:
        kind, *args = message
        if kind == "ready":
            self.ready.set()
            return
        if kind == "stats":
            for row in args[0]:
                self._stats(row)
            return
        if kind == "log":
            logging.getLogger(args[1]).log(args[0], "%s", args[2])
            return
        stream = self.streams.get(args[0])
        if stream is None:
            return
        if kind == "key" and stream.key_sink is not None:
            stream.key_sink(args[1], KeySource(args[2]))
        elif kind == "audio":
            sink = stream.audio_sink
            if sink is not None:
                sink(args[1])
        elif kind == "closed":
            self._stats(args[1])
            self.streams.pop(args[0], None)
        elif kind == "failed":
            stream.failed = True
            log.error("RTP port %s: media process could not serve it: %s", stream.inPort, args[1])

    def _stats(self, row: StatsRow) -> None:
        stream = self.streams.get(row[0])
        if stream is not None:
            stream.update(row)


class MediaProcess:
    """The product's one media process: started by the first ``acquire``, stopped by the
    last ``release``, started again after it died."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._users = 0
        self._link: MediaLink | None = None
        self._sids = itertools.count(1)

    def acquire(self) -> None:
        with self._lock:
            if self._link is None:
                self._link = MediaLink(self)  # raises RuntimeError if it does not start
            self._users += 1

    def release(self) -> None:
        with self._lock:
            self._users -= 1
            if self._users > 0 or self._link is None:
                return
            link, self._link = self._link, None
        link.stop()

    @property
    def alive(self) -> bool:
        link = self._link
        return link is not None and link.alive

    @property
    def pid(self) -> int | None:
        link = self._link
        return None if link is None else link.process.pid

    def open(self, stream: RemoteStream, sock: socket.socket, listening: bool) -> MediaLink:
        """Hand a bound RTP socket to the media process; the stream's events come back."""
        with self._lock:
            if self._link is None or not self._link.alive:
                if self._users <= 0:
                    raise RuntimeError("media process not started")
                self._link = MediaLink(self)
            link = self._link
            sid = next(self._sids)
        stream.sid = sid
        link.streams[sid] = stream
        message = ("open", sid, stream.assoc, stream.inIP, stream.inPort, stream.outIP,
                   stream.outPort, listening)  # fmt: skip
        if not link.send(message, [sock.fileno()]):
            link.streams.pop(sid, None)
            raise OSError("media process gone")
        return link

    def died(self, link: MediaLink) -> None:
        """The reader of ``link`` saw its process end without being asked to."""
        link.process.join(timeout=1.0)
        streams = list(link.streams.values())
        log.error("media process (pid %s) died (exit code %s): %d calls in progress end "
                  "as a media fault", link.process.pid, link.process.exitcode,
                  len(streams))  # fmt: skip
        for stream in streams:
            stream.failed = True
        link.sock.close()
        with self._lock:
            if self._link is not link:
                return
            self._link = None
            # at once for the next calls, unless it died young (then the next call tries)
            if self._users > 0 and time.monotonic() - link.started > RESTART_AFTER_S:
                try:
                    self._link = MediaLink(self)
                except RuntimeError as exc:
                    log.error("%s", exc)


MEDIA = MediaProcess()  # the product's one media process


def media_service() -> MediaProcess | MediaEngine:
    """What a phone acquires for its calls' media: the media process, or the engine in this
    process with ``IVR_MEDIA_IN_PROCESS=1``."""
    return ENGINE if IN_PROCESS else MEDIA
