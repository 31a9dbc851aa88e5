"""Small helpers shared by the tests."""

from __future__ import annotations

import csv
import functools
import io
import os
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, Protocol

import numpy as np

from ivr.core import exports
from ivr.sip.api import SipSettings
from ivr.sip.media_process import PROCESS_NAME
from lab.peer_process import find_free_udp_port
from storage import claims
from storage.models import Survey
from storage.store import Store


def config_data(**sections: Any) -> dict[str, Any]:
    """The smallest valid configuration (a portal nobody listens at, a SIP account on
    loopback) with ``sections`` added or replacing its own."""
    data: dict[str, Any] = {
        "portal": {"base_url": "http://127.0.0.1:9/api/v1", "token": "t"},
        "sip": {"server": "127.0.0.1", "username": "d", "password": "p", "local_ip": "127.0.0.1"},
    }
    return {**data, **sections}


def media_processes() -> set[int]:
    """The media processes (``ivr-media``) this test process is answerable for: those it
    started, directly or through a node it ran, and orphans (re-parented to init). Another
    test process's (a parallel worker, another run on the machine) are not counted."""
    out = subprocess.run(["ps", "-e", "-o", "pid=,ppid=,comm="], capture_output=True,
                         text=True, check=False).stdout  # fmt: skip
    parent, media = {}, set()
    for line in out.splitlines():
        pid, ppid, comm = line.split(None, 2)
        parent[int(pid)] = int(ppid)
        if comm.strip() == PROCESS_NAME:
            media.add(int(pid))

    def ours(pid: int) -> bool:
        if parent.get(pid) == 1:
            return True  # an orphan
        ancestor = parent.get(pid)
        while ancestor not in (None, 0, 1):
            if ancestor == os.getpid():
                return True
            ancestor = parent.get(ancestor)
        return False

    return {pid for pid in media if ours(pid)}


@functools.cache
def password_hash(password: str) -> str:
    """The product's argon2 hash of ``password``, computed once per process: a tenth of a
    second each, and the console tests seed the same users again and again."""
    from ivr.console.security import hash_password

    return hash_password(password)


def examples(thorough: int) -> int:
    """``max_examples`` for a property test whose examples are costly: ``thorough`` in CI
    (``CI`` set, as scripts/test.sh does), a third of it at a desk (the ``dev`` profile of
    tests/conftest.py)."""
    return thorough if os.environ.get("CI") else max(5, thorough // 3)


def lab_sip_settings(
    server_port: int,
    rtp_base: int,
    *,
    password: str = "secret",
    register: bool = True,
    spread: int = 80,
) -> SipSettings:
    """Our SIP account at the lab Kamailio (or a scripted peer), on free ports; each test file
    passes its own ``rtp_base`` so concurrent phones do not share RTP ports."""
    low = rtp_base + 100 * (find_free_udp_port() % spread)
    return SipSettings(
        server="127.0.0.1",
        port=server_port,
        username="dialer",
        password=password,
        local_ip="127.0.0.1",
        sip_port=find_free_udp_port(),
        rtp_port_low=low,
        rtp_port_high=low + 99,
        register=register,
    )


def u8_signal(u8: bytes) -> np.ndarray:
    """u8 PCM (what we play, what wav_to_u8 returns) as zero-centred floats."""
    return np.frombuffer(u8, dtype=np.uint8).astype(np.float64) - 128.0


def best_match(haystack: np.ndarray, needle: np.ndarray) -> float:
    """Peak normalised cross-correlation of ``needle`` anywhere in ``haystack``."""
    n = len(needle)
    if len(haystack) < n:
        return 0.0
    size = 1 << int(np.ceil(np.log2(len(haystack) + n)))
    corr = np.fft.irfft(np.fft.rfft(haystack, size) * np.conj(np.fft.rfft(needle, size)), size)
    corr = corr[: len(haystack) - n + 1]
    energy = np.convolve(haystack**2, np.ones(n), mode="valid")
    return float((corr / (np.sqrt(np.maximum(energy, 1e-9)) * np.linalg.norm(needle))).max())


def free_tcp_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def http_get(url: str) -> tuple[int, str]:
    """GET ``url``: the status and the body, for error statuses too."""
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


class _Process(Protocol):
    returncode: int | None

    def poll(self) -> int | None: ...


def wait_until(
    predicate: Callable[[], object],
    timeout: float,
    what: str,
    *,
    poll: float = 0.05,
    process: _Process | None = None,
) -> None:
    """The one wait of the tests: poll ``predicate`` until true, fail naming ``what`` after
    ``timeout`` seconds (a deadline, never a fixed sleep), or at once when ``process`` exits."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if process is not None and process.poll() is not None:
            raise AssertionError(f"the process exited ({process.returncode}) before {what}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(poll)


def start_attempt(
    store: Store, survey_id: str, now: datetime, node: str = "test", lease_s: float = 600.0
) -> int:
    """Seed data: the survey the test chose, claimed by ``node`` and its attempt started
    (``dialing``) as ``Store.claim_due`` starts every attempt. Returns the attempt id."""
    from sqlalchemy.orm import Session

    with Session(store.engine) as s, s.begin():
        survey = s.get(Survey, survey_id, with_for_update=True)
        assert survey is not None, survey_id
        return claims.start_attempt(s, survey, node, now + timedelta(seconds=lease_s), now)


def read_csv(data: bytes) -> tuple[list[tuple[str, str]], list[list[str]]]:
    """(filters, header and rows) of a file ``ivr.core.exports.write_csv`` made."""
    text = data.decode("utf-8-sig")
    lines = list(csv.reader(io.StringIO(text, newline=""), delimiter=exports.SEPARATOR))
    filters: list[tuple[str, str]] = []
    start = 0
    while start < len(lines) and lines[start][:1] == [exports.FILTER_MARK]:
        filters.append((lines[start][1], lines[start][2]))
        start += 1
    if filters:
        start += 1  # the empty row
    return filters, lines[start:]
