"""The strict lab kamailio (407 on INVITE, no ACK rescue) and REGISTER at it.

``Kamailio(workdir, port)`` runs lab/kamailio.cfg on 127.0.0.1:``port``; ``register_at``
registers a number there with a Contact of our choosing (how SIPp citizens get their calls).
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Self

from ivr.sip import digest, sip_messages as sm
from lab.peer_process import LAB, PeerError, PeerProcess, require_binary, udp_port_in_use

KAMAILIO_CFG = LAB / "kamailio.cfg"
PASSWORD = "secret"  # the lab kamailio accepts any username with this password


class Kamailio:
    """The strict lab kamailio on 127.0.0.1:``port``; ``log_path`` has its log."""

    def __init__(self, workdir: Path | str, port: int = 5060) -> None:
        self.workdir = Path(workdir)
        self.port = port
        self.log_path = self.workdir / f"kamailio-{port}.log"
        self._process = PeerProcess("kamailio", self.log_path)

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
