"""The keys of one call, from every path they can arrive by, each press counted once.

A trunk may send the same press as an RFC 4733 event *and* leave the tones in the audio (or
send an INFO as well): a key equal to one from another path less than :data:`DEDUPE_S` ago
is the same press. Two presses by one path are always two presses (each path separates its
own presses: a new RFC 4733 event timestamp, a new INFO, a pause between tones).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from ivr.sip.api import KeyPress, KeySource

DEDUPE_S = 0.5


class KeyCollector:
    """Thread-safe: the RTP receiver and the SIP receiver add, the call runner takes."""

    def __init__(self, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._queue: list[KeyPress] = []
        self._recent: list[tuple[float, str, KeySource]] = []
        self._waiting = threading.Event()  # set while a key is queued, not yet taken

    def add(self, key: str, source: KeySource) -> bool:
        """False if the press was already seen by another path."""
        now = self._monotonic()
        with self._lock:
            self._recent = [r for r in self._recent if now - r[0] < DEDUPE_S]
            if any(k == key and s is not source for _, k, s in self._recent):
                return False
            self._recent.append((now, key, source))
            self._queue.append(KeyPress(key, source))
            self._waiting.set()
            return True

    def take(self) -> list[KeyPress]:
        with self._lock:
            out, self._queue = self._queue, []
            self._waiting.clear()
            return out

    def wait(self, timeout: float) -> bool:
        """Until a key is queued (True) or ``timeout`` seconds have passed (False)."""
        return self._waiting.wait(timeout)
