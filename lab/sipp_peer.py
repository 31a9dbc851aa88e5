"""A SIPp citizen: one SIPp UAS serving many calls, every number REGISTERed at the lab kamailio
with Contact pointing at it. What it does on a call is its behaviour (see SippCitizen)."""

from __future__ import annotations

import re
import signal
from pathlib import Path
from typing import Self

from lab.kamailio_peer import register_at
from lab.peer_process import PeerProcess, find_free_udp_port, require_binary, udp_port_in_use
from lab.sipp_scenarios import scenario


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
        self._process = PeerProcess("sipp", self.log_path)

    def __enter__(self) -> Self:
        exe = require_binary("sipp")
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.scenario_path.write_text(scenario(self.behaviour, self.workdir))
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
