"""SIPp scenario text for a citizen's behaviour (see :class:`lab.sipp_peer.SippCitizen`).

The answering, rejecting and never-answering templates live in lab/sipp/*.xml; this module
fills their ``@...@`` fields, and writes the pcaps a behaviour plays (generated keys, tones,
speech) to the citizen's workdir.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from lab.peer_process import LAB, PeerError

DTMF_PCAP = "/usr/share/sip-tester/dtmf_2833_{}.pcap"

_REJECTS = {
    "busy": (486, "Busy Here", 17),
    "decline": (603, "Decline", 21),
    "not_found": (404, "Not Found", 1),
}
_DIALOG_EREGS = """
    <action>
      <ereg regexp="sip:[^>;]*" search_in="hdr" header="Contact:" check_it="true"
            assign_to="contact"/>
      <ereg regexp=".*" search_in="hdr" header="From:" check_it="true" assign_to="inv_from"/>
      <ereg regexp=".*" search_in="hdr" header="To:" check_it="true" assign_to="inv_to"/>
      <ereg regexp=".*" search_in="hdr" header="Record-Route:" assign_to="rr"/>
    </action>
  """
_HANGUP = """  <send retrans="500"><![CDATA[
BYE [$contact] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
Route: [$rr]
From: [$inv_to];tag=[pid]SIPpTag01[call_number]
To: [$inv_from]
Call-ID: [call_id]
CSeq: 2 BYE
Max-Forwards: 70
Content-Length: 0

]]></send>
  <recv response="200" next="end"/>
"""


_IN_DIALOG = """  <send retrans="500"><![CDATA[
@METHOD@ [$contact] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
Route: [$rr]
From: [$inv_to];tag=[pid]SIPpTag01[call_number]
To: [$inv_from]
Call-ID: [call_id]
CSeq: @CSEQ@ @METHOD@
Contact: <sip:[local_ip]:[local_port];transport=[transport]>
Max-Forwards: 70
Content-Type: @CTYPE@
Content-Length: [len]

@BODY@
]]></send>
  <recv response="100" optional="true"/>
  <recv response="200"/>
"""
_REINVITE_SDP = """v=0
o=user1 53655765 @VERSION@ IN IP[local_ip_type] [local_ip]
s=-
c=IN IP[media_ip_type] [media_ip]
t=0 0
m=audio [media_port] RTP/AVP @AUDIO_PT@ 101
a=rtpmap:@AUDIO_PT@ @AUDIO_CODEC@/8000
a=rtpmap:101 telephone-event/8000
a=@DIRECTION@"""
_ACK_IN_DIALOG = """  <send><![CDATA[
ACK [$contact] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
Route: [$rr]
From: [$inv_to];tag=[pid]SIPpTag01[call_number]
To: [$inv_from]
Call-ID: [call_id]
CSeq: @CSEQ@ ACK
Max-Forwards: 70
Content-Length: 0

]]></send>
"""
_EARLY_MEDIA = """  <send><![CDATA[
SIP/2.0 183 Session Progress
[last_Via:]
[last_From:]
[last_To:];tag=[pid]SIPpTag01[call_number]
[last_Call-ID:]
[last_CSeq:]
[last_Record-Route:]
Contact: <sip:[local_ip]:[local_port];transport=[transport]>
Content-Type: application/sdp
Content-Length: [len]

v=0
o=user1 53655765 2353687637 IN IP[local_ip_type] [local_ip]
s=-
c=IN IP[media_ip_type] [media_ip]
t=0 0
m=audio [media_port] RTP/AVP 0 101
a=rtpmap:0 PCMU/8000
a=rtpmap:101 telephone-event/8000

]]></send>
  <pause milliseconds="1000"/>
"""
# A line that will not be transferred: REFER (RFC 3515) answered 603, then our BYE as usual.
_REFUSE_REFER = """  <recv request="REFER" timeout="60000" ontimeout="end"/>
  <send><![CDATA[
SIP/2.0 603 Declined
[last_Via:]
[last_From:]
[last_To:]
[last_Call-ID:]
[last_CSeq:]
Content-Length: 0

]]></send>
"""


def _in_dialog(method: str, cseq: int, ctype: str, body: str) -> str:
    return (
        _IN_DIALOG.replace("@METHOD@", method)
        .replace("@CSEQ@", str(cseq))
        .replace("@CTYPE@", ctype)
        .replace("@BODY@", body)
    )


def _play(path: Path | str) -> str:
    return f'  <nop><action><exec play_pcap_audio="{path}"/></action></nop>\n'


# Behaviours whose keys the lab generates (or sends in the dialog) rather than sip-tester's pcaps.
_GENERATED = ("pt96", "info", "info_dtmf", "inband", "inband_pcma", "hold_unhold", "to_pcma")


@dataclass(frozen=True)
class _Fill:
    """The answering template's fields for one behaviour."""

    pcap: str = ""
    hangup: str = ""
    actions: str = ""
    delay: int = 1000
    te_pt: str = "101"
    early: str = ""


def scenario(behaviour: str, workdir: Path | None = None) -> str:
    """SIPp scenario text for a behaviour (see SippCitizen); generated pcaps go to workdir."""
    name, _, arg = behaviour.partition(":")
    if name in _REJECTS:
        code, reason, cause = _REJECTS[name]
        text = (LAB / "sipp" / "uas_reject.xml").read_text()
        return (
            text.replace("@CODE@", str(code))
            .replace("@REASON@", reason)
            .replace("@CAUSE@", str(cause))
        )
    if name == "no_answer":
        return (LAB / "sipp" / "uas_noanswer.xml").read_text()
    text = (LAB / "sipp" / "uas_answer.xml").read_text().replace("@RING_MS@", "200")
    codec = "PCMA" if name == "inband_pcma" or arg.startswith("pcma") else "PCMU"  # 200's SDP
    fill = _answer_fill(name, arg, codec, workdir)
    return (
        text.replace("@DELAY_MS@", str(fill.delay))
        .replace("@TE_PT@", fill.te_pt)
        .replace("@AUDIO_PT@", "8" if codec == "PCMA" else "0")
        .replace("@AUDIO_CODEC@", codec)
        .replace("@EARLY@", fill.early)
        .replace("@PCAP_ACTION@", fill.pcap)
        .replace("@HANGUP@", fill.hangup)
        .replace("@INVITE_ACTIONS@", fill.actions)
    )


def _answer_fill(name: str, arg: str, codec: str, workdir: Path | None) -> _Fill:
    args = arg.split(":") if arg else []
    if name in _GENERATED:
        return _generated_fill(name, args, codec, _out(workdir))
    if name == "speak":
        return _speak_fill(args, _out(workdir))
    if name == "early":  # early[:<digit>]: 183 with SDP first, then 200 and a digit
        return _Fill(early=_EARLY_MEDIA, pcap=_play(DTMF_PCAP.format(arg or "1")))
    if name in ("press", "refuse_refer"):  # press:<digit>[:<delay_ms>]
        digit, _, delay_text = arg.partition(":")
        path = DTMF_PCAP.format({"*": "star", "#": "pound"}.get(digit, digit))
        if not Path(path).exists():
            raise PeerError(f"no RFC 2833 pcap for digit {digit!r} ({path}; package sip-tester)")
        return _Fill(
            pcap=f'  <nop><action><exec play_pcap_audio="{path}"/></action></nop>',
            hangup=_REFUSE_REFER if name == "refuse_refer" else "",
            delay=int(delay_text or 1000),
        )
    if name == "hangup":  # hangup[:<delay_ms>]: answers, then sends BYE itself
        return _Fill(delay=int(arg or 1000), hangup=_HANGUP, actions=_DIALOG_EREGS)
    if name in ("silent", "mute"):  # mute: answers, then sends no RTP at all
        return _Fill()
    raise ValueError(f"unknown SIPp citizen behaviour {name + (':' + arg if arg else '')!r}")


def _out(workdir: Path | None) -> Path:
    out = workdir or Path(".")
    out.mkdir(parents=True, exist_ok=True)
    return out


def _generated_fill(name: str, args: list[str], codec: str, out: Path) -> _Fill:
    """<name>:<digit or keys>[:<delay_ms>], keys the lab makes itself."""
    from lab import dtmf_vectors as dv

    if name == "pt96":  # telephone-event on payload type 96
        events = out / f"event96_{args[0]}.pcap"
        events.write_bytes(dv.event_pcap(args[0], 96))
        pcap = _play(events)
    elif name == "info":
        pcap = _in_dialog("INFO", 2, "application/dtmf-relay", f"Signal={args[0]}\nDuration=160")
    elif name == "info_dtmf":
        pcap = _in_dialog("INFO", 2, "application/dtmf", args[0])
    elif name in ("inband", "inband_pcma"):  # tones in the PCMU (PCMA) audio
        keys = args[0]
        tones = out / f"{name}_{keys.replace('*', 's').replace('#', 'h')}.pcap"
        samples = dv.gap(200)
        for k in keys:
            samples = dv.join(samples, dv.tone(k, 80), dv.gap(120))
        tones.write_bytes(dv.pcma_pcap(samples) if codec == "PCMA" else dv.pcmu_pcap(samples))
        pcap = _play(tones)
    else:
        pcap = _reinvites(name, args[0])
    in_dialog = name not in ("pt96", "inband", "inband_pcma")  # sends requests in the dialog
    return _Fill(
        pcap=pcap,
        actions=_DIALOG_EREGS if in_dialog else "",
        delay=int(args[1]) if len(args) > 1 else 1000,
        te_pt="96" if name == "pt96" else "101",
    )


def _reinvites(name: str, digit: str) -> str:
    """hold_unhold: hold, unhold, then an RFC 2833 digit; to_pcma: a re-INVITE to PCMA only,
    then the digit."""
    steps = [(3, "sendonly", "PCMU"), (4, "sendrecv", "PCMU")]
    if name == "to_pcma":
        steps = [(3, "sendrecv", "PCMA")]
    pcap = ""
    for cseq, direction, law in steps:
        sdp = (
            _REINVITE_SDP.replace("@VERSION@", str(cseq))
            .replace("@DIRECTION@", direction)
            .replace("@AUDIO_PT@", "8" if law == "PCMA" else "0")
            .replace("@AUDIO_CODEC@", law)
        )
        pcap += _in_dialog("INVITE", cseq, "application/sdp", sdp)
        pcap += _ACK_IN_DIALOG.replace("@CSEQ@", str(cseq))
        pcap += '  <pause milliseconds="500"/>\n'
    return pcap + _play(DTMF_PCAP.format(digit))


def _speak_fill(args: list[str], out: Path) -> _Fill:
    """speak:<law>:<speech_at_ms>[:<bye_at_ms>]: 2 at 1 s, then speaks (and hangs up itself
    mid-sentence at <bye_at_ms>)."""
    from lab.comment_lab import speaking_pcap

    law, speech_ms = args[0], int(args[1])
    bye_ms = int(args[2]) if len(args) > 2 else 0
    capture = out / f"speak_{law}_{speech_ms}_{bye_ms}.pcap"
    capture.write_bytes(speaking_pcap(law, "2", 1.0, speech_ms / 1000, cut_at=bye_ms / 1000))
    if not bye_ms:
        return _Fill(delay=0, pcap=_play(capture))
    pcap = _play(capture) + f'  <pause milliseconds="{bye_ms}"/>\n'
    return _Fill(delay=0, pcap=pcap, hangup=_HANGUP, actions=_DIALOG_EREGS)
