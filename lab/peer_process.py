"""What every lab SIP peer shares: the missing-binary error, free UDP ports, and a child
process in its own process group that is waited on until ready and stopped by its id.

The peers themselves: :mod:`lab.kamailio_peer` (the registrar/proxy), :mod:`lab.sipp_peer`
(SIPp citizens, scenarios from :mod:`lab.sipp_scenarios`) and :mod:`lab.baresip_peer`.
All are context managers; a missing binary raises ``PeerError`` naming the Debian package.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

LAB = Path(__file__).resolve().parent
_PACKAGES = {"kamailio": "kamailio", "sipp": "sip-tester", "baresip": "baresip", "sox": "sox"}


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


class PeerProcess:
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
