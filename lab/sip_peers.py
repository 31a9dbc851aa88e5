"""Real SIP peers on 127.0.0.1 for the end-to-end tests and the demo.

* ``Kamailio(workdir, port)``: the strict lab registrar/proxy (407 on INVITE, no ACK rescue).
* ``SippCitizen(workdir, behaviour, numbers, kamailio_port, sip_port)``: one SIPp UAS serving
  many calls; every number is REGISTERed at kamailio with Contact pointing at it.
* ``BaresipCitizen(...)``: a baresip that auto-answers, records what it hears, can press keys.

All are context managers; a missing binary raises ``PeerError`` naming the Debian package.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Self

from ivr.sip import digest, sip_messages as sm

HERE = Path(__file__).resolve().parent
KAMAILIO_CFG = HERE / "kamailio.cfg"
PASSWORD = "secret"  # the lab kamailio accepts any username with this password
_PACKAGES = {"kamailio": "kamailio", "sipp": "sip-tester", "baresip": "baresip", "sox": "sox"}
DTMF_PCAP = "/usr/share/sip-tester/dtmf_2833_{}.pcap"


class PeerError(RuntimeError):
    """A lab peer is missing or did not come up."""


def require_binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        package = _PACKAGES.get(name, name)
        raise PeerError(f"{name} not found: apt-get install {package}")
    return path


def find_free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def udp_port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def wait_for(predicate: object, timeout: float, what: str) -> None:
    """Poll ``predicate()`` until true; PeerError after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise PeerError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.05)


class _Process:
    """A child process in its own process group, stopped by its id."""

    def __init__(self, name: str, log_path: Path) -> None:
        self.name = name
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def spawn(self, argv: list[str], cwd: Path) -> None:
        with open(self.log_path, "ab") as log_file:
            self.proc = subprocess.Popen(
                argv,
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def start(
        self, argv: list[str], cwd: Path, ready: Callable[[], bool], what: str, timeout: float = 10
    ) -> None:
        """Spawn, then wait until ``ready()``; a process that dies or never gets ready is
        stopped and reported (PeerError naming ``what`` and the log)."""
        self.spawn(argv, cwd)
        try:
            wait_for(lambda: self.check_alive() and ready(), timeout, what)
        except BaseException:
            self.stop()
            raise

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def check_alive(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise PeerError(f"{self.name} exited with {self.proc.returncode}; see {self.log_path}")
        return True

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        try:  # children (kamailio workers) in the group we created
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


class Kamailio:
    """The strict lab kamailio on 127.0.0.1:``port``; ``log_path`` has its log."""

    def __init__(self, workdir: Path | str, port: int = 5060) -> None:
        self.workdir = Path(workdir)
        self.port = port
        self.log_path = self.workdir / f"kamailio-{port}.log"
        self._process = _Process("kamailio", self.log_path)

    def __enter__(self) -> Self:
        exe = require_binary("kamailio")
        self.workdir.mkdir(parents=True, exist_ok=True)
        if udp_port_in_use(self.port):
            raise PeerError(f"UDP 127.0.0.1:{self.port} is already in use")
        cfg = self.workdir / f"kamailio-{self.port}.cfg"
        text = KAMAILIO_CFG.read_text()
        cfg.write_text(text.replace("127.0.0.1:5060", f"127.0.0.1:{self.port}"))
        run = self.workdir / f"kamailio-{self.port}.run"
        run.mkdir(exist_ok=True)
        argv = [exe, "-f", str(cfg), "-P", str(run / "kamailio.pid"), "-Y", str(run)]
        self._process.start([*argv, "-m", "64", "-M", "8", "-DD"], self.workdir,
                            lambda: udp_port_in_use(self.port),
                            f"kamailio on 127.0.0.1:{self.port}")  # fmt: skip
        return self

    def __exit__(self, *exc: object) -> None:
        self._process.stop()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def register_at(kamailio_port: int, number: str, contact_port: int, expires: int = 3600) -> None:
    """REGISTER ``number`` at the lab kamailio (digest, password 'secret') with Contact
    127.0.0.1:``contact_port``. Raises PeerError unless a 200 comes back."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(3.0)
        local_port = sock.getsockname()[1]
        call_id, tag = sm.new_call_id("127.0.0.1"), sm.new_tag()
        ruri = f"sip:127.0.0.1:{kamailio_port}"
        auth = ""
        for cseq in (1, 2):
            request = (
                f"REGISTER {ruri} SIP/2.0\r\n"
                f"Via: SIP/2.0/UDP 127.0.0.1:{local_port};branch={sm.new_branch()};rport\r\n"
                "Max-Forwards: 70\r\n"
                f"From: <sip:{number}@127.0.0.1>;tag={tag}\r\n"
                f"To: <sip:{number}@127.0.0.1>\r\n"
                f"Call-ID: {call_id}\r\nCSeq: {cseq} REGISTER\r\n"
                f"Contact: <sip:{number}@127.0.0.1:{contact_port}>\r\n"
                f"Expires: {expires}\r\n{auth}Content-Length: 0\r\n\r\n"
            )
            sock.sendto(request.encode(), ("127.0.0.1", kamailio_port))
            while True:
                try:
                    response = sm.parse(sock.recv(8192))
                except TimeoutError as exc:
                    raise PeerError(f"no answer to REGISTER {number}") from exc
                if response.status >= 200:
                    break
            if response.status == 200:
                return
            challenge = response.header("www-authenticate")
            if response.status != 401 or challenge is None:
                break
            value = digest.authorization_value(
                digest.parse_challenge(challenge),
                username=number,
                password=PASSWORD,
                method="REGISTER",
                uri=ruri,
            )
            auth = f"Authorization: {value}\r\n"
        raise PeerError(f"REGISTER {number} refused: {response.start_line}")


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


def _scenario(behaviour: str, workdir: Path | None = None) -> str:
    """SIPp scenario text for a behaviour (see SippCitizen); generated pcaps go to workdir."""
    name, _, arg = behaviour.partition(":")
    if name in _REJECTS:
        code, reason, cause = _REJECTS[name]
        text = (HERE / "sipp" / "uas_reject.xml").read_text()
        return (
            text.replace("@CODE@", str(code))
            .replace("@REASON@", reason)
            .replace("@CAUSE@", str(cause))
        )
    if name == "no_answer":
        return (HERE / "sipp" / "uas_noanswer.xml").read_text()
    text = (HERE / "sipp" / "uas_answer.xml").read_text().replace("@RING_MS@", "200")
    pcap, hangup, actions, delay, te_pt, early = "", "", "", 1000, "101", ""
    codec = "PCMA" if name == "inband_pcma" or arg.startswith("pcma") else "PCMU"  # 200's SDP
    args = arg.split(":") if arg else []
    if name in ("pt96", "info", "info_dtmf", "inband", "inband_pcma", "hold_unhold", "to_pcma"):
        from lab import dtmf_vectors as dv

        out = workdir or Path(".")
        out.mkdir(parents=True, exist_ok=True)
        delay = int(args[1]) if len(args) > 1 else 1000
        if name not in ("pt96", "inband", "inband_pcma"):
            actions = _DIALOG_EREGS  # the scenario sends requests in the dialog
        if name == "pt96":  # pt96:<digit>[:<delay_ms>]: telephone-event on payload type 96
            te_pt = "96"
            events = out / f"event96_{args[0]}.pcap"
            events.write_bytes(dv.event_pcap(args[0], 96))
            pcap = _play(events)
        elif name in ("info", "info_dtmf"):  # info:<digit>[:<delay_ms>]
            if name == "info":
                pcap = _in_dialog("INFO", 2, "application/dtmf-relay",
                                  f"Signal={args[0]}\nDuration=160")  # fmt: skip
            else:
                pcap = _in_dialog("INFO", 2, "application/dtmf", args[0])
        elif name in ("inband", "inband_pcma"):  # inband[_pcma]:<keys>[:<delay_ms>]: tones
            keys = args[0]  # in the PCMU (PCMA) audio
            tones = out / f"{name}_{keys.replace('*', 's').replace('#', 'h')}.pcap"
            samples = dv.gap(200)
            for k in keys:
                samples = dv.join(samples, dv.tone(k, 80), dv.gap(120))
            tones.write_bytes(dv.pcma_pcap(samples) if codec == "PCMA" else dv.pcmu_pcap(samples))
            pcap = _play(tones)
        else:  # hold_unhold:<digit>[:<delay_ms>]: hold, unhold, then an RFC 2833 digit;
            pcap = ""  # to_pcma:<digit>[:<delay_ms>]: a re-INVITE to PCMA only, then the digit
            steps = [(3, "sendonly", "PCMU"), (4, "sendrecv", "PCMU")]
            if name == "to_pcma":
                steps = [(3, "sendrecv", "PCMA")]
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
            pcap += _play(DTMF_PCAP.format(args[0]))
    elif name == "speak":  # speak:<law>:<speech_at_ms>[:<bye_at_ms>]: 2 at 1 s, then speaks
        from lab.comment_lab import speaking_pcap

        out = workdir or Path(".")
        out.mkdir(parents=True, exist_ok=True)
        law, speech_ms = args[0], int(args[1])
        bye_ms = int(args[2]) if len(args) > 2 else 0
        capture = out / f"speak_{law}_{speech_ms}_{bye_ms}.pcap"
        capture.write_bytes(speaking_pcap(law, "2", 1.0, speech_ms / 1000, cut_at=bye_ms / 1000))
        delay, pcap = 0, _play(capture)
        if bye_ms:  # hangs up itself mid-sentence
            pcap += f'  <pause milliseconds="{bye_ms}"/>\n'
            hangup, actions = _HANGUP, _DIALOG_EREGS
    elif name == "early":  # early[:<digit>]: 183 with SDP first, then 200 and a digit
        early = _EARLY_MEDIA
        pcap = _play(DTMF_PCAP.format(arg or "1"))
    elif name in ("press", "refuse_refer"):  # press:<digit>[:<delay_ms>]
        digit, _, delay_text = arg.partition(":")
        hangup = _REFUSE_REFER if name == "refuse_refer" else ""
        path = DTMF_PCAP.format({"*": "star", "#": "pound"}.get(digit, digit))
        if not Path(path).exists():
            raise PeerError(f"no RFC 2833 pcap for digit {digit!r} ({path}; package sip-tester)")
        delay = int(delay_text or 1000)
        pcap = f'  <nop><action><exec play_pcap_audio="{path}"/></action></nop>'
    elif name == "hangup":  # hangup[:<delay_ms>]: answers, then sends BYE itself
        delay = int(arg or 1000)
        hangup, actions = _HANGUP, _DIALOG_EREGS
    elif name not in ("silent", "mute"):  # mute: answers, then sends no RTP at all
        raise ValueError(f"unknown SIPp citizen behaviour {behaviour!r}")
    return (
        text.replace("@DELAY_MS@", str(delay))
        .replace("@TE_PT@", te_pt)
        .replace("@AUDIO_PT@", "8" if codec == "PCMA" else "0")
        .replace("@AUDIO_CODEC@", codec)
        .replace("@EARLY@", early)
        .replace("@PCAP_ACTION@", pcap)
        .replace("@HANGUP@", hangup)
        .replace("@INVITE_ACTIONS@", actions)
    )


class SippCitizen:
    """One SIPp UAS (many sequential and concurrent calls) behind ``numbers`` at kamailio.

    behaviour: "press:<d>" (RFC 2833 digit 1 s after ACK; "press:<d>:<ms>" for another
    delay; every answering citizen but "inband" echoes our RTP back, as a line with a live
    handset sends audio), "pt96:<d>[:<ms>]" (the same on telephone-event payload type 96),
    "info:<d>" /
    "info_dtmf:<d>" (SIP INFO dtmf-relay / dtmf), "inband:<keys>" (tones in the audio),
    "inband_pcma:<keys>" (answers PCMA only; tones in the A-law audio),
    "hold_unhold:<d>" (re-INVITE sendonly, re-INVITE sendrecv, then the digit), "to_pcma:<d>"
    (a re-INVITE offering PCMA only, then the digit), "early[:<d>]"
    (183 with SDP, then 200 and the digit), "silent" (answers, no key, waits up to 180 s for
    BYE), "hangup[:<ms>]" (answers, then sends BYE itself), "busy" (486), "decline" (603),
    "not_found" (404), "refuse_refer:<d>[:<ms>]" (presses the digit like "press", then answers
    a REFER 603 Declined), "no_answer" (rings until CANCEL -> 200 + 487), "mute" (answers and
    sends no RTP: a dead media path), "speak:<pcmu|pcma>:<ms>[:<bye_ms>]" (answers in that
    law, presses 2 at 1 s as RFC 4733, says ``comment_lab``'s sentence from <ms> after the
    answer; with <bye_ms>, hangs up then, mid-sentence)."""

    def __init__(
        self,
        workdir: Path | str,
        behaviour: str,
        numbers: list[str] | tuple[str, ...],
        kamailio_port: int = 5060,
        sip_port: int | None = None,
        media_port: int | None = None,
    ) -> None:
        self.workdir = Path(workdir)
        self.behaviour = behaviour
        self.media_port = media_port or find_free_udp_port()
        self.numbers = list(numbers)
        self.kamailio_port = kamailio_port
        self.sip_port = sip_port or find_free_udp_port()
        tag = re.sub(r"\W", "_", behaviour)
        self.scenario_path = self.workdir / f"sipp-{tag}-{self.sip_port}.xml"
        self.messages_path = self.workdir / f"sipp-{tag}-{self.sip_port}-msgs.log"
        self.log_path = self.workdir / f"sipp-{tag}-{self.sip_port}.log"
        self.error_path = self.workdir / f"sipp-{tag}-{self.sip_port}-err.log"
        self._process = _Process("sipp", self.log_path)

    def __enter__(self) -> Self:
        exe = require_binary("sipp")
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.scenario_path.write_text(_scenario(self.behaviour, self.workdir))
        media_port = self.media_port
        # one RTP stream towards us: the in-band citizen's tones, or the echo of our audio
        echo = [] if self.behaviour.startswith(("inband", "mute", "speak")) else ["-rtp_echo"]
        argv = [exe, "-sf", str(self.scenario_path), "-i", "127.0.0.1", "-p", str(self.sip_port),
                "-mi", "127.0.0.1", "-mp", str(media_port), *echo, "-nostdin", "-aa",
                "-trace_msg", "-message_file", str(self.messages_path),
                "-trace_err", "-error_file", str(self.error_path)]  # fmt: skip
        self._process.start(argv, self.workdir, lambda: udp_port_in_use(self.sip_port),
                            f"SIPp on 127.0.0.1:{self.sip_port}")  # fmt: skip
        try:
            for number in self.numbers:
                register_at(self.kamailio_port, number, self.sip_port)
        except BaseException:
            self._process.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self._process.stop(signal.SIGUSR1)  # SIPp: quit now

    def messages(self) -> str:
        """SIPp's message trace (what it sent and received)."""
        return self.messages_path.read_text(errors="replace") if self.messages_path.exists() else ""


class BaresipCitizen:
    """baresip registered as ``number`` at kamailio; auto-answers; records what it hears
    (sndfile: dump-*-dec.wav in ``workdir``); ``press_after_answer`` sends RFC 2833 keys."""

    def __init__(
        self,
        workdir: Path | str,
        number: str,
        kamailio_port: int = 5060,
        sip_port: int | None = None,
        ctrl_port: int | None = None,
        rtp_range: tuple[int, int] = (24000, 24999),
        codecs: str = "PCMU",
    ) -> None:
        self.workdir = Path(workdir)
        self.number = number
        self.codecs = codecs  # baresip's audio_codecs: "PCMA" is an A-law-only line
        self.kamailio_port = kamailio_port
        self.sip_port = sip_port or find_free_udp_port()
        self.ctrl_port = ctrl_port or find_free_udp_port()
        self.rtp_range = rtp_range
        self.log_path = self.workdir / f"baresip-{number}.log"
        self._process = _Process("baresip", self.log_path)
        self._threads: list[threading.Thread] = []
        self._stopping = threading.Event()  # set on exit: key threads end at once
        self.sent: list[str] = []

    def __enter__(self) -> Self:
        exe = require_binary("baresip")
        sox = require_binary("sox")
        cfg_dir = self.workdir / f"baresip-{self.number}"
        cfg_dir.mkdir(parents=True, exist_ok=True)
        silence = self.workdir / "silence.wav"
        subprocess.run([sox, "-n", "-r", "8000", "-c", "1", "-b", "16", str(silence),
                        "trim", "0", "300"], check=True)  # fmt: skip
        config = (HERE / "baresip" / "config.tmpl").read_text()
        for key, value in {"@SIPPORT@": self.sip_port, "@OUT@": self.workdir,
                           "@RTPLOW@": self.rtp_range[0], "@RTPHIGH@": self.rtp_range[1],
                           "@CTRLPORT@": self.ctrl_port}.items():  # fmt: skip
            config = config.replace(key, str(value))
        (cfg_dir / "config").write_text(config)
        (cfg_dir / "accounts").write_text(
            f"<sip:{self.number}@127.0.0.1;transport=udp>;auth_pass={PASSWORD};"
            f'outbound="sip:127.0.0.1:{self.kamailio_port}";regint=3600;answermode=auto;'
            f"audio_codecs={self.codecs};dtmfmode=rtpevent\n"
        )
        (cfg_dir / "contacts").write_text("")
        self._process.start([exe, "-f", str(cfg_dir)], self.workdir,
                            lambda: "200 OK" in self.log(),
                            f"baresip {self.number} to register")  # fmt: skip
        return self

    def __exit__(self, *exc: object) -> None:
        # Whatever the outcome of the test, no key thread outlives the citizen: a failed night
        # must not leave one waiting for a call that never comes (it would fail later tests).
        self._stopping.set()
        for thread in self._threads:
            thread.join()
        self._threads.clear()
        self._process.stop()  # SIGTERM: baresip closes (flushes) its WAV files

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def command(self, cmd: str, params: str = "") -> str:
        """One ctrl_tcp command (netstring-framed JSON); returns baresip's reply."""
        msg = json.dumps({"command": cmd, "params": params, "token": "ivr"}).encode()
        with socket.create_connection(("127.0.0.1", self.ctrl_port), timeout=3) as conn:
            conn.sendall(str(len(msg)).encode() + b":" + msg + b",")
            return conn.recv(65536).decode(errors="replace")

    def press_after_answer(self, key: str, delay_s: float = 2.0, timeout: float = 30.0) -> None:
        """In the background: wait for the next "established" call, then send ``key``."""
        seen = self.log().lower().count("established")

        def run() -> None:
            deadline = time.monotonic() + timeout
            while self.log().lower().count("established") <= seen:
                if time.monotonic() > deadline or self._stopping.wait(0.05):
                    return
            # The scenario: the citizen presses a key delay_s after answering.
            if not self._stopping.wait(delay_s):
                self.sent.append(self.command("sndcode", key))

        thread = threading.Thread(target=run, name=f"baresip {self.number} keys", daemon=True)
        thread.start()
        self._threads.append(thread)

    def recordings(self) -> list[Path]:
        return sorted(self.workdir.glob("dump-*-dec.wav"))


__all__ = [
    "BaresipCitizen",
    "Kamailio",
    "PeerError",
    "SippCitizen",
    "find_free_udp_port",
    "register_at",
    "require_binary",
]
