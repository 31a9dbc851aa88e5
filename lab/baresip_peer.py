"""A baresip citizen: registered at the lab kamailio, auto-answers, records what it hears and
presses keys through its ctrl_tcp interface."""

from __future__ import annotations

import json
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Self

from lab.kamailio_peer import PASSWORD
from lab.peer_process import LAB, PeerProcess, find_free_udp_port, require_binary


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
        self._process = PeerProcess("baresip", self.log_path)
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
        config = (LAB / "baresip" / "config.tmpl").read_text()
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
