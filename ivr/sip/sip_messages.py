"""Pure SIP message parsing and building for the pyVoIP adapter (no sockets, no threads).

The SDP bodies are in ``ivr.sip.sdp``, the digest answers to a challenge in ``ivr.sip.digest``.

pyVoIP 1.6.8's own parser keeps only the first line of each header (so one Record-Route),
does not parse Proxy-Authenticate, and fails on status codes outside its enum; its
builders produce a wrong 2xx ACK and have no CANCEL. The adapter therefore reads every
message about its own calls with ``parse`` and writes every request of an INVITE dialog
with the builders here (docs/sip-notes.md, pitfalls 5-9).
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field

# Re-exported for ivr/sip/pyvoip_adapter.py, being split on another branch (which imports them
# from here); the lead points it at ivr.sip.sdp at the merge and drops this.
from ivr.sip.sdp import G711 as G711, sdp_offer as sdp_offer

_COMPACT = {
    "v": "via",
    "f": "from",
    "t": "to",
    "i": "call-id",
    "m": "contact",
    "l": "content-length",
    "c": "content-type",
    "k": "supported",
}
# Headers whose comma-separated values are separate entries (RFC 3261 7.3.1).
_LIST_HEADERS = {"via", "record-route", "route", "contact"}
USER_AGENT = "ivr-rating (pyVoIP 1.6.8)"


def new_branch() -> str:
    return "z9hG4bK" + uuid.uuid4().hex


def new_tag() -> str:
    return uuid.uuid4().hex[:16]


def new_call_id(host: str) -> str:
    """Random Call-ID (pyVoIP's are sha256 of a per-process counter, SIP.py:995-998)."""
    return f"{uuid.uuid4().hex}@{host}"


def _split_list(value: str) -> list[str]:
    """Split a header value on commas that are outside <...> and quotes."""
    parts: list[str] = []
    depth, quoted, start = 0, False, 0
    for i, ch in enumerate(value):
        if ch == '"':
            quoted = not quoted
        elif not quoted and ch == "<":
            depth += 1
        elif not quoted and ch == ">":
            depth -= 1
        elif not quoted and depth == 0 and ch == ",":
            parts.append(value[start:i].strip())
            start = i + 1
    parts.append(value[start:].strip())
    return [p for p in parts if p]


@dataclass
class SipMessage:
    """A parsed SIP request or response (header names lower-cased)."""

    start_line: str
    headers: list[tuple[str, str]]
    body: bytes = b""
    raw: bytes = b""

    @property
    def is_response(self) -> bool:
        return self.start_line.startswith("SIP/2.0 ")

    @property
    def status(self) -> int:
        return int(self.start_line.split(" ", 2)[1]) if self.is_response else 0

    @property
    def reason_phrase(self) -> str:
        parts = self.start_line.split(" ", 2)
        return parts[2] if self.is_response and len(parts) > 2 else ""

    @property
    def method(self) -> str:
        return "" if self.is_response else self.start_line.split(" ", 1)[0]

    def header(self, name: str) -> str | None:
        name = name.lower()
        for key, value in self.headers:
            if key == name:
                return value
        return None

    def all(self, name: str) -> list[str]:
        name = name.lower()
        out: list[str] = []
        for key, value in self.headers:
            if key == name:
                out.extend(_split_list(value) if name in _LIST_HEADERS else [value])
        return out

    @property
    def call_id(self) -> str:
        return self.header("call-id") or ""

    @property
    def cseq(self) -> tuple[int, str]:
        number, _, method = (self.header("cseq") or "0 ?").partition(" ")
        return int(number), method.strip()

    def tag(self, name: str) -> str:
        match = re.search(r";\s*tag=([^;>\s]+)", self.header(name) or "")
        return match.group(1) if match else ""


def parse(raw: bytes) -> SipMessage:
    """Parse one datagram; raises ValueError if it is not a SIP message."""
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("utf-8", errors="replace").split("\r\n")
    start = lines[0].strip()
    if not (_STATUS_LINE.fullmatch(start) or _REQUEST_LINE.fullmatch(start)):
        raise ValueError(f"not a SIP message: {start[:60]!r}")
    headers: list[tuple[str, str]] = []
    for line in lines[1:]:
        if line[:1] in (" ", "\t") and headers:  # folded continuation line
            key, value = headers[-1]
            headers[-1] = (key, value + " " + line.strip())
            continue
        key, sep, value = line.partition(":")
        if not sep:
            continue
        key = key.strip().lower()
        headers.append((_COMPACT.get(key, key), value.strip()))
    msg = SipMessage(start, headers, body, raw)
    if not msg.call_id or not msg.all("via"):
        raise ValueError("no Call-ID or no Via")
    if not _CSEQ.fullmatch(msg.header("cseq") or ""):
        raise ValueError(f"bad CSeq: {(msg.header('cseq') or '')[:40]!r}")
    return msg


_STATUS_LINE = re.compile(r"SIP/2\.0 [1-6]\d\d(?: .*)?")
_REQUEST_LINE = re.compile(r"[A-Z]+ \S+ SIP/2\.0")
_CSEQ = re.compile(r"\d{1,10}\s+[A-Za-z]+")


def tag_of(name_addr: str) -> str:
    """The tag parameter of a From/To value ("" if none)."""
    match = re.search(r";\s*tag=([^;>\s]+)", name_addr.rsplit(">", 1)[-1])
    return match.group(1) if match else ""


def uri_of(name_addr: str) -> str:
    """The URI inside a name-addr (``"x" <sip:a@b>;tag=1`` -> ``sip:a@b``)."""
    if "<" in name_addr:
        return name_addr.split("<", 1)[1].split(">", 1)[0]
    return name_addr.split(";", 1)[0].strip()


# ---------------------------------------------------------------- requests of an INVITE dialog
@dataclass
class InviteRequest:
    """What we sent in one INVITE; everything CANCEL and ACK are derived from."""

    ruri: str
    via_host: str
    via_port: int
    branch: str
    from_hdr: str  # full From value including ;tag=
    to_hdr: str  # without tag
    call_id: str
    cseq: int
    contact: str
    sdp: str
    auth_header: tuple[str, str] | None = None  # (name, value)

    def render(self) -> bytes:
        lines = [
            f"INVITE {self.ruri} SIP/2.0",
            f"Via: SIP/2.0/UDP {self.via_host}:{self.via_port};branch={self.branch};rport",
            "Max-Forwards: 70",
            f"From: {self.from_hdr}",
            f"To: {self.to_hdr}",
            f"Call-ID: {self.call_id}",
            f"CSeq: {self.cseq} INVITE",
            f"Contact: <{self.contact}>",
            "Allow: INVITE, ACK, CANCEL, BYE, OPTIONS",
            "Content-Type: application/sdp",
            f"User-Agent: {USER_AGENT}",
        ]
        if self.auth_header:
            lines.append(f"{self.auth_header[0]}: {self.auth_header[1]}")
        body = self.sdp.encode()
        lines.append(f"Content-Length: {len(body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def build_cancel(invite: InviteRequest) -> bytes:
    """RFC 3261 9.1: same R-URI, Via (branch), From, To, Call-ID and CSeq number as the INVITE."""
    return _render(
        f"CANCEL {invite.ruri} SIP/2.0",
        [
            f"Via: SIP/2.0/UDP {invite.via_host}:{invite.via_port};branch={invite.branch};rport",
            "Max-Forwards: 70",
            f"From: {invite.from_hdr}",
            f"To: {invite.to_hdr}",
            f"Call-ID: {invite.call_id}",
            f"CSeq: {invite.cseq} CANCEL",
            f"User-Agent: {USER_AGENT}",
        ],
    )


def build_ack_non2xx(invite: InviteRequest, response: SipMessage) -> bytes:
    """RFC 3261 17.1.1.3: ACK of a non-2xx final: INVITE's branch, To (with tag) of the response."""
    return _render(
        f"ACK {invite.ruri} SIP/2.0",
        [
            f"Via: SIP/2.0/UDP {invite.via_host}:{invite.via_port};branch={invite.branch};rport",
            "Max-Forwards: 70",
            f"From: {invite.from_hdr}",
            f"To: {response.header('to') or invite.to_hdr}",
            f"Call-ID: {invite.call_id}",
            f"CSeq: {invite.cseq} ACK",
        ],
    )


@dataclass
class Dialog:
    """The confirmed dialog after a 2xx (RFC 3261 12.1.2), UAC side."""

    call_id: str
    local: str  # our From value, with tag
    remote: str  # the 2xx's To value, with tag
    remote_target: str  # Contact URI of the 2xx
    route_set: list[str] = field(default_factory=list)  # Record-Route reversed
    invite_cseq: int = 1

    @classmethod
    def from_2xx(cls, invite: InviteRequest, ok: SipMessage) -> Dialog:
        contact = ok.header("contact")
        return cls(
            call_id=invite.call_id,
            local=invite.from_hdr,
            remote=ok.header("to") or invite.to_hdr,
            remote_target=uri_of(contact) if contact else invite.ruri,
            route_set=list(reversed(ok.all("record-route"))),
            invite_cseq=invite.cseq,
        )

    def request(
        self,
        method: str,
        cseq: int,
        via_host: str,
        via_port: int,
        extra: tuple[str, ...] = (),
        body: tuple[str, bytes] | None = None,
    ) -> bytes:
        """An in-dialog request; ``extra`` header lines, ``body`` as (content type, bytes)."""
        lines = [
            f"Via: SIP/2.0/UDP {via_host}:{via_port};branch={new_branch()};rport",
            "Max-Forwards: 70",
        ]
        lines += [f"Route: {route}" for route in self.route_set]
        lines += [
            f"From: {self.local}",
            f"To: {self.remote}",
            f"Call-ID: {self.call_id}",
            f"CSeq: {cseq} {method}",
            f"User-Agent: {USER_AGENT}",
            *extra,
        ]
        start = f"{method} {self.remote_target} SIP/2.0"
        if body is None:
            return _render(start, lines)
        lines += [f"Content-Type: {body[0]}", f"Content-Length: {len(body[1])}"]
        return ("\r\n".join([start, *lines]) + "\r\n\r\n").encode() + body[1]

    def ack(self, via_host: str, via_port: int) -> bytes:
        """2xx ACK: R-URI = Contact, Route set, new branch, CSeq number of the INVITE."""
        return self.request("ACK", self.invite_cseq, via_host, via_port)

    def bye(self, via_host: str, via_port: int) -> bytes:
        return self.request("BYE", self.invite_cseq + 1, via_host, via_port)


def build_response(request: SipMessage, status: int, reason: str, to_tag: str = "") -> bytes:
    """A response to ``request`` (all Vias, From, To, Call-ID, CSeq copied)."""
    lines = [f"Via: {via}" for via in request.all("via")]
    to = request.header("to") or ""
    if to_tag and ";tag=" not in to:
        to += f";tag={to_tag}"
    lines += [
        f"From: {request.header('from') or ''}",
        f"To: {to}",
        f"Call-ID: {request.call_id}",
        f"CSeq: {request.header('cseq') or ''}",
        f"User-Agent: {USER_AGENT}",
    ]
    return _render(f"SIP/2.0 {status} {reason}", lines)


def final_reason(response: SipMessage) -> str:
    """Reason phrase plus the Reason header, e.g. ``Busy Here (Q.850;cause=17)``."""
    reason = response.header("reason")
    phrase = response.reason_phrase
    return f"{phrase} ({reason})" if reason else phrase


def _render(start: str, lines: list[str]) -> bytes:
    return ("\r\n".join([start, *lines, "Content-Length: 0"]) + "\r\n\r\n").encode()


def build_response_with_body(
    request: SipMessage, status: int, reason: str, contact: str, content_type: str, body: str
) -> bytes:
    """A response carrying a body (a 200 with SDP for a re-INVITE)."""
    head = build_response(request, status, reason).decode()
    head = head.removesuffix("Content-Length: 0\r\n\r\n")
    data = body.encode()
    return (
        head
        + f"Contact: <{contact}>\r\nContent-Type: {content_type}\r\n"
        + f"Content-Length: {len(data)}\r\n\r\n"
    ).encode() + data


_INFO_KEYS = {str(i): str(i) for i in range(10)} | {
    "*": "*",
    "#": "#",
    "10": "*",
    "11": "#",
    **{c: c for c in "ABCD"},
}


def dtmf_of_info(msg: SipMessage) -> str | None:
    """The key an INFO carries (application/dtmf-relay ``Signal=5`` or application/dtmf
    ``5``); None if it is not a DTMF INFO."""
    ctype = (msg.header("content-type") or "").split(";", 1)[0].strip().lower()
    text = msg.body.decode("utf-8", errors="replace").strip()
    if ctype == "application/dtmf-relay":
        match = re.search(r"(?im)^\s*signal\s*=\s*(\S+)", text)
        return _INFO_KEYS.get(match.group(1).upper()) if match else None
    if ctype == "application/dtmf":
        return _INFO_KEYS.get(text.split()[0].upper()) if text else None
    return None
