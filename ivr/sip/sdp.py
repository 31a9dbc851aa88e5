"""The SDP bodies of our calls: the offer of an INVITE, the audio stream of the other side's
SDP, and our answer to a re-INVITE. G.711 (PCMU, PCMA) and telephone-event only."""

from __future__ import annotations

from dataclasses import dataclass


def sdp_offer(ip: str, rtp_port: int, session_id: int) -> str:
    """What the adapter can play and hear: G.711 PCMU or PCMA (A-law-only trunks are common
    in Europe), and telephone-event/101."""
    return (
        "v=0\r\n"
        f"o=ivr {session_id} {session_id + 2} IN IP4 {ip}\r\n"
        "s=ivr-rating\r\n"
        f"c=IN IP4 {ip}\r\n"
        "t=0 0\r\n"
        f"m=audio {rtp_port} RTP/AVP 0 8 101\r\n"
        "a=rtpmap:0 PCMU/8000\r\n"
        "a=rtpmap:8 PCMA/8000\r\n"
        "a=rtpmap:101 telephone-event/8000\r\n"
        "a=fmtp:101 0-15\r\n"
        "a=ptime:20\r\n"
        "a=sendrecv\r\n"
    )


@dataclass(frozen=True)
class SdpAudio:
    """The audio stream of an SDP body, as much as the adapter needs of it."""

    ip: str
    port: int
    payloads: dict[int, str]  # payload type -> encoding name (lower case)
    direction: str  # sendrecv, sendonly, recvonly, inactive

    def payload_of(self, encoding: str) -> int | None:
        for pt, name in self.payloads.items():
            if name == encoding:
                return pt
        return None


_STATIC_PT = {0: "pcmu", 8: "pcma", 18: "g729", 9: "g722"}


def parse_sdp_audio(body: bytes) -> SdpAudio | None:
    text = body.decode("utf-8", errors="replace")
    ip, port, direction = "", 0, "sendrecv"
    payloads: dict[int, str] = {}
    in_audio = False
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("c=") and (in_audio or not ip):
            ip = line.split()[-1]
        elif line.startswith("m="):
            fields = line[2:].split()
            in_audio = fields[0] == "audio"
            if in_audio:
                port = int(fields[1])
                payloads = {int(p): _STATIC_PT.get(int(p), "") for p in fields[3:]}
        elif in_audio and line.startswith("a=rtpmap:"):
            pt, _, rest = line[9:].partition(" ")
            if pt.isdigit():
                payloads[int(pt)] = rest.split("/", 1)[0].lower()
        elif in_audio and line[2:] in ("sendrecv", "sendonly", "recvonly", "inactive"):
            direction = line[2:]
    if not port and not payloads:
        return None
    return SdpAudio(ip, port, payloads, direction)


_ANSWER_DIRECTION = {
    "sendrecv": "sendrecv",
    "sendonly": "recvonly",
    "recvonly": "sendonly",
    "inactive": "inactive",
}


G711 = {"pcmu": 0, "pcma": 8}  # the codecs we send and receive: static payload types


def sdp_answer(
    ip: str,
    rtp_port: int,
    session_id: int,
    version: int,
    event_pt: int | None,
    offer_dir: str,
    codec: str = "pcmu",
) -> str:
    """Our answer to a re-INVITE offer: one G.711 codec (and telephone-event on the offer's
    type)."""
    pt = G711[codec]
    pts = f"{pt}" + (f" {event_pt}" if event_pt is not None else "")
    lines = [
        "v=0",
        f"o=ivr {session_id} {version} IN IP4 {ip}",
        "s=ivr-rating",
        f"c=IN IP4 {ip}",
        "t=0 0",
        f"m=audio {rtp_port} RTP/AVP {pts}",
        f"a=rtpmap:{pt} {codec.upper()}/8000",
    ]
    if event_pt is not None:
        lines += [f"a=rtpmap:{event_pt} telephone-event/8000", f"a=fmtp:{event_pt} 0-15"]
    lines += ["a=ptime:20", f"a={_ANSWER_DIRECTION.get(offer_dir, 'sendrecv')}"]
    return "\r\n".join(lines) + "\r\n"
