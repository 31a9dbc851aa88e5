"""Fakes for unit tests of the layers above the edges (the real peers are tested elsewhere)."""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from ivr.sip.api import (
    REGISTRATION_NOT_USED,
    EndedBy,
    KeyPress,
    KeySource,
    LineState,
    MediaCounters,
    RegistrationStatus,
)
from ivr.sip.refer import ReferResult


class FakeClock:
    """Time that moves only when the code under test sleeps."""

    def __init__(self, start: datetime = datetime(2026, 11, 27, 7, 0, tzinfo=UTC)) -> None:
        self.start = start
        self.t = 0.0

    def now(self) -> datetime:
        return self.start + timedelta(seconds=self.t)

    def monotonic(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.t += max(seconds, 0.001)


class FakePrompts:
    """Each part lasts one second of audio."""

    def render(self, lang: str, parts: Sequence[str]) -> bytes:
        return b"\x80" * (8000 * len(parts))

    def version(self, lang: str) -> str:
        return f"{lang}-test"


@dataclass
class FakeCall:
    """A line scripted on the fake clock: answer_at / reject / keys at times / remote bye."""

    clock: FakeClock
    answer_at: float | None = 0.5
    reject: int | None = None
    keys_at: list[tuple[float, str]] = field(default_factory=list)
    bye_at: float | None = None
    # the far end stops sending RTP at this time (None: it never stops)
    media_stops_at: float | None = None
    key_source: KeySource = KeySource.RFC4733
    # RTP datagrams taken and dropped, as the adapter counts them (a test may set some)
    media_counters: MediaCounters = field(default_factory=MediaCounters)
    # (from, to) on the fake clock: the citizen speaks (a loud 300 Hz tone); silence otherwise
    talk: list[tuple[float, float]] = field(default_factory=list)
    _capture_from: float | None = None
    call_id: str = "fake-call"
    log: list[str] = field(default_factory=list)
    _ended: EndedBy | None = None
    _status: int | None = None
    _taken: int = 0
    # 3 "talk to an operator": what the far end does with our REFER, and when (fake clock)
    transfer_answer: ReferResult | None = None
    transfer_after_s: float = 1.0
    _transfer_at: float | None = None
    listening: list[bool] = field(default_factory=list)  # every listen_for_keys, in order

    @property
    def state(self) -> LineState:
        t = self.clock.monotonic()
        if self._ended is None:
            if self.reject is not None and t >= 0.3:
                self._end(EndedBy.REMOTE_REJECT, self.reject)
            elif self.answer_at is not None and self.bye_at is not None and t >= self.bye_at:
                self._end(EndedBy.REMOTE_BYE, 200)
        if self._ended is not None:
            return LineState.ENDED
        if self.answer_at is not None and t >= self.answer_at:
            return LineState.ANSWERED
        return LineState.RINGING

    def _end(self, by: EndedBy, status: int | None) -> None:
        self._ended, self._status = by, status
        self.log.append(f"ended:{by.value}")

    @property
    def final_status(self) -> int | None:
        if self._status is None and self.state is LineState.ANSWERED:
            return 200
        return self._status

    @property
    def final_reason(self) -> str | None:
        return {486: "Busy Here", 487: "Request Terminated", 200: "OK"}.get(self._status or 0)

    @property
    def ended_by(self) -> EndedBy | None:
        return self._ended

    def play(self, audio: bytes) -> None:
        self.log.append(f"play:{len(audio) // 8000}s")

    def stop_audio(self) -> None:
        self.log.append("stop_audio")

    def take_keys(self) -> list[KeyPress]:
        t = self.clock.monotonic()
        due = [k for at, k in self.keys_at if at <= t]
        new, self._taken = due[self._taken :], len(due)
        if self._ended is not None and self._ended is not EndedBy.REMOTE_BYE:
            return []
        return [KeyPress(k, self.key_source) for k in new]

    def wait_for_key(self, timeout: float) -> None:
        """The fake clock moves to the next scripted key or hang-up, or by ``timeout``."""
        t = self.clock.monotonic()
        later = [at for at, _ in self.keys_at if at > t]
        if self.bye_at is not None and self.bye_at > t:
            later.append(self.bye_at)
        self.clock.sleep(min([timeout, *(at - t for at in later)]))

    def listen_for_keys(self, on: bool) -> None:
        self.listening.append(on)

    def start_capture(self) -> None:
        self.log.append("start_capture")
        self._capture_from = self.clock.monotonic()

    def take_audio(self) -> bytes:
        if self._capture_from is None:
            return b""
        start, end = self._capture_from, self.clock.monotonic()
        if self.bye_at is not None:
            end = min(end, self.bye_at)
        first, last = round(start * 8000), round(end * 8000)
        self._capture_from = max(end, start)
        out = []
        for n in range(first, last):
            t = n / 8000
            loud = any(a <= t < b for a, b in self.talk)
            out.append(int(8000 * math.sin(2 * math.pi * 300 * t)) if loud else 0)
        return struct.pack(f"<{len(out)}h", *out)

    def stop_capture(self) -> None:
        self.log.append("stop_capture")
        self._capture_from = None

    @property
    def media_idle_s(self) -> float:
        t = self.clock.monotonic()
        if self.media_stops_at is None or t < self.media_stops_at:
            return 0.0
        return t - self.media_stops_at

    def cancel(self) -> None:
        self.log.append("cancel")
        if self._ended is None:
            self._end(EndedBy.LOCAL_CANCEL, 487)

    def hangup(self) -> None:
        self.log.append("hangup")
        if self._ended is None:
            self._end(EndedBy.LOCAL_HANGUP, 200)

    def transfer(self, target: str) -> None:
        self.log.append(f"transfer:{target}")
        self._transfer_at = self.clock.monotonic() + self.transfer_after_s

    @property
    def transfer_result(self) -> ReferResult | None:
        if self._transfer_at is None or self.clock.monotonic() < self._transfer_at:
            return None
        return self.transfer_answer or ReferResult(False, "REFER timeout")


class FakePhone:
    def __init__(self, calls: list[FakeCall]) -> None:
        self.calls = calls
        self.dialled: list[str] = []
        self.registration: RegistrationStatus = REGISTRATION_NOT_USED

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def dial(self, number: str) -> FakeCall:
        self.dialled.append(number)
        return self.calls.pop(0)
