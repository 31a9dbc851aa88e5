"""One log line per kind of bad datagram per interval: a peer (or an attacker) sending
garbage must not flood the log or cost a traceback per packet."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable


class RateLimitedLog:
    def __init__(
        self,
        logger: logging.Logger,
        interval_s: float = 10.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._log = logger
        self._interval = interval_s
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def warning(self, kind: str, msg: str, *args: object) -> bool:
        """Log ``msg`` unless a line of ``kind`` was logged less than the interval ago.
        Returns True if it was logged."""
        now = self._monotonic()
        with self._lock:
            last = self._last.get(kind)
            if last is not None and now - last < self._interval:
                self._suppressed[kind] = self._suppressed.get(kind, 0) + 1
                return False
            self._last[kind] = now
            skipped = self._suppressed.pop(kind, 0)
        if skipped:
            msg += " (%d more like it in the last %.0f s)"
            args = (*args, skipped, self._interval)
        self._log.warning(msg, *args)
        return True
