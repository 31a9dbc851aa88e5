"""What an RTP datagram must be before anything reads it (pure; no sockets).

pyVoIP parsed whatever arrived on a call's RTP port from anywhere: an empty datagram killed
the call's receiver thread (the key of a real press was lost, the call ended ``no_input``), and
a telephone-event from an unrelated port was taken as the citizen's key (docs/sip-notes.md,
pitfalls 22 and 23). Here a datagram is dropped and counted unless it is a well-formed RTP
header from the address the far end's SDP names.
"""

from __future__ import annotations

import ipaddress

RTP_HEADER = 12


def header_problem(packet: bytes) -> str | None:
    """``runt`` or ``malformed`` if the datagram is no RTP packet we can read, else None."""
    if len(packet) < RTP_HEADER:
        return "runt"
    first = packet[0]
    if first >> 6 != 2:
        return "malformed"
    if 72 <= packet[1] & 0x7F <= 76:  # RTCP types 200-204 on the RTP port
        return "malformed"
    length = RTP_HEADER + 4 * (first & 0x0F)
    if first & 0x10:  # header extension
        if len(packet) < length + 4:
            return "malformed"
        length += 4 + 4 * int.from_bytes(packet[length + 2 : length + 4], "big")
    if first & 0x20:  # padding: the last byte counts it
        padding = packet[-1]
        if padding == 0 or length + padding > len(packet):
            return "malformed"
        length += padding
    return "malformed" if length > len(packet) else None


def payload_of(packet: bytes) -> bytes:
    """The payload of a packet ``header_problem`` accepted."""
    first = packet[0]
    start = RTP_HEADER + 4 * (first & 0x0F)
    if first & 0x10:
        start += 4 + 4 * int.from_bytes(packet[start + 2 : start + 4], "big")
    end = len(packet) - (packet[-1] if first & 0x20 else 0)
    return packet[start:end]


def _may_be_behind_nat(ip: str) -> bool:
    """An SDP address we cannot expect packets from: private (RFC 1918, CGNAT), unspecified
    or not an IP literal."""
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return True
    return addr.is_unspecified or any(addr in net for net in _NAT_NETS)


_NAT_NETS = [
    ipaddress.ip_network(net)
    for net in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10",
                "169.254.0.0/16", "fc00::/7", "fe80::/10")
]  # fmt: skip


class SourceLock:
    """Which source address a call's RTP is taken from.

    The address the far end's SDP names is always right, and locks the stream to it. When
    that address is a private one (the far end behind NAT), the first source seen is latched
    instead, once; then it is locked too. A new SDP (re-INVITE) starts over."""

    def __init__(self, ip: str, port: int) -> None:
        self.expect(ip, port)

    def expect(self, ip: str, port: int) -> None:
        self.expected = (ip, port)
        self.locked: tuple[str, int] | None = None

    def accept(self, source: tuple[str, int]) -> bool:
        source = (source[0], source[1])
        if self.locked is not None:
            return source == self.locked
        if source == self.expected or _may_be_behind_nat(self.expected[0]):
            self.locked = source
            return True
        return False
