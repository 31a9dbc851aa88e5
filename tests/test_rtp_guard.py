"""What an RTP datagram must be before it is read, and whose it must be (pure)."""

from __future__ import annotations

import logging

import pytest

from ivr.sip.ratelog import RateLimitedLog
from ivr.sip.rtp_guard import SourceLock, header_problem, payload_of

HEADER = bytes([0x80, 0]) + (1).to_bytes(2, "big") + (160).to_bytes(4, "big") + bytes(4)


@pytest.mark.parametrize(
    ("packet", "problem"),
    [
        (b"", "runt"),
        (b"\x80", "runt"),
        (HEADER[:11], "runt"),
        (HEADER, None),
        (HEADER + b"\xff" * 160, None),
        (bytes([0x40]) + HEADER[1:] + b"\xff", "malformed"),  # version 1
        (bytes([0x80, 200]) + HEADER[2:], "malformed"),  # RTCP sender report
        (bytes([0x82]) + HEADER[1:] + bytes(4), "malformed"),  # 2 CSRCs, only one there
        (bytes([0x81]) + HEADER[1:] + bytes(4) + b"\xff", None),  # 1 CSRC
        (bytes([0x90]) + HEADER[1:] + b"\x00\x00\x00\x02" + bytes(4), "malformed"),
        (bytes([0x90]) + HEADER[1:] + b"\x00\x00\x00\x01" + bytes(4) + b"\xff", None),
        (bytes([0xA0]) + HEADER[1:] + b"\xff\x00\x00\x00", "malformed"),  # padding 0
        (bytes([0xA0]) + HEADER[1:] + b"\xff\x00\x02", None),  # 2 bytes of padding
        (bytes([0xA0]) + HEADER[1:] + b"\xff\x09", "malformed"),  # more padding than bytes
    ],
    ids=[
        "empty",
        "one-byte",
        "eleven-bytes",
        "bare-header",
        "pcmu-frame",
        "version-1",
        "rtcp",
        "csrc-missing",
        "csrc",
        "extension-short",
        "extension",
        "padding-zero",
        "padding",
        "padding-too-long",
    ],  # fmt: skip
)
def test_header_problem(packet: bytes, problem: str | None) -> None:
    assert header_problem(packet) == problem


def test_payload_skips_csrc_extension_and_padding() -> None:
    packet = bytes([0xB1]) + HEADER[1:] + b"CSRC" + b"\x00\x00\x00\x01EXTN" + b"data" + b"\x00\x02"
    assert header_problem(packet) is None
    assert payload_of(packet) == b"data"


@pytest.mark.parametrize(
    ("sdp", "first", "later", "accepted"),
    [
        (("127.0.0.1", 4000), ("127.0.0.1", 4000), ("127.0.0.1", 4001), [True, False]),
        (("127.0.0.1", 4000), ("127.0.0.1", 4001), ("127.0.0.1", 4000), [False, True]),
        (("203.0.113.5", 4000), ("198.51.100.7", 4000), ("203.0.113.5", 4000), [False, True]),
        (("192.168.1.20", 4000), ("203.0.113.9", 31000), ("203.0.113.9", 31000), [True, True]),
        (("192.168.1.20", 4000), ("203.0.113.9", 31000), ("203.0.113.10", 31000), [True, False]),
        (("10.0.0.2", 4000), ("10.0.0.2", 4000), ("203.0.113.9", 31000), [True, False]),
    ],
    ids=[
        "sdp-address-locks",
        "foreign-port-first-is-refused",
        "foreign-host-refused",
        "private-sdp-latches-nat-source",
        "latched-then-locked",
        "private-sdp-itself",
    ],  # fmt: skip
)
def test_source_lock(
    sdp: tuple[str, int], first: tuple[str, int], later: tuple[str, int], accepted: list[bool]
) -> None:
    lock = SourceLock(*sdp)
    assert [lock.accept(first), lock.accept(later)] == accepted


def test_new_sdp_starts_over() -> None:
    lock = SourceLock("127.0.0.1", 4000)
    assert lock.accept(("127.0.0.1", 4000))
    lock.expect("127.0.0.1", 5000)
    assert not lock.accept(("127.0.0.1", 4000)) and lock.accept(("127.0.0.1", 5000))


def test_rate_limited_log_says_how_many_it_held_back(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    limited = RateLimitedLog(logging.getLogger("t"), 10.0, monotonic=lambda: now[0])
    with caplog.at_level(logging.WARNING):
        for t in (0.0, 1.0, 2.0, 9.9, 10.0, 10.5):
            now[0] = t
            limited.warning("runt", "runt from %s", "x")
        limited.warning("foreign", "foreign from %s", "y")
    assert [r.getMessage() for r in caplog.records] == [
        "runt from x",
        "runt from x (3 more like it in the last 10 s)",
        "foreign from y",
    ]
