"""What the SIP edge trusts, against real sockets on 127.0.0.1 scripted message by message:
a registrar whose proxy traffic interleaves with the refresh, forged and broken RTP, requests
from strangers and with the wrong tags, our CANCEL crossing the citizen's 200 OK, and a
registrar that vanishes under a running ``night``.

Never skipped: these are plain UDP sockets.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from ivr.campaign.call_runner import CallPlan, RunnerSettings, run_call
from ivr.core.call_script import FlowSettings, RequestInfo
from ivr.core.clock import SYSTEM_CLOCK
from ivr.core.errors import DialFailed
from ivr.core.policy import decide_unanswered, disposition
from ivr.sip import sip_messages as sm
from ivr.sip.api import EndedBy, LineState
from ivr.sip.pyvoip_adapter import PyVoipCall, PyVoipPhone
from lab.night_lab import Citizen, LabSettings, NightLab, lab_day
from lab.readback import attempts_of
from storage.db import make_engine
from storage.store import Store
from tests.fakes import FakePrompts
from tests.helpers import lab_sip_settings
from tests.test_sip_adapter_peers import (
    SDP_ANSWER,
    ScriptedPeer,
    first_keys,
    pyvoip_threads,
    wait_state,
    wait_until,
)

pytestmark = pytest.mark.peers

CHALLENGE = 'WWW-Authenticate: Digest realm="lab", nonce="n1", algorithm=MD5\r\n'


def options(port: int, n: int) -> str:
    return (
        f"OPTIONS sip:dialer@127.0.0.1 SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bKopt{n}\r\n"
        f"From: <sip:proxy@127.0.0.1>;tag=o{n}\r\nTo: <sip:dialer@127.0.0.1>\r\n"
        f"Call-ID: options-{n}\r\nCSeq: {n} OPTIONS\r\nContent-Length: 0\r\n\r\n"
    )


def info(port: int, call_id: str, from_tag: str, to_tag: str, key: str) -> str:
    body = f"Signal={key}\r\nDuration=160\r\n"
    return (
        f"INFO sip:dialer@127.0.0.1 SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bKinfo{key}{from_tag}\r\n"
        f"From: <sip:peer@127.0.0.1>;tag={from_tag}\r\nTo: <sip:dialer@127.0.0.1>;tag={to_tag}\r\n"
        f"Call-ID: {call_id}\r\nCSeq: 7 INFO\r\nContent-Type: application/dtmf-relay\r\n"
        f"Content-Length: {len(body)}\r\n\r\n{body}"
    )


def responses(peer: ScriptedPeer, count: int, timeout: float = 5.0) -> list[sm.SipMessage]:
    """The next ``count`` responses the peer gets (requests are skipped)."""
    out: list[sm.SipMessage] = []
    peer.sock.settimeout(timeout)
    while len(out) < count:
        msg = sm.parse(peer.sock.recv(8192))
        if msg.is_response:
            out.append(msg)
    return out


def nothing_arrives(sock: socket.socket, seconds: float) -> bool:
    sock.settimeout(seconds)
    try:
        sock.recv(8192)
    except TimeoutError:
        return True
    return False


# ---------------------------------------------------------------- registration
class Registrar(ScriptedPeer):
    """Challenges the first REGISTER, grants ``expires`` seconds to the authorised one."""

    def grant(self, expires: int) -> sm.SipMessage:
        register = self.expect("REGISTER")
        if not register.header("authorization"):
            self.respond(register, 401, "Unauthorized", extra=CHALLENGE)
            register = self.expect("REGISTER")
        self.respond(register, 200, "OK", extra=f"Expires: {expires}\r\n")
        return register


@pytest.fixture
def registrar() -> Iterator[tuple[Registrar, PyVoipPhone]]:
    peer = Registrar()
    settings = replace(
        lab_sip_settings(peer.port, 23000), register_expires_s=2, register_timeout_s=1.0
    )
    phone = PyVoipPhone(settings)
    granted = threading.Thread(target=peer.grant, args=(2,))
    granted.start()
    phone.start()
    granted.join()
    try:
        yield peer, phone
    finally:
        phone.stop()
        peer.close()
    assert pyvoip_threads() == []


def test_options_burst_and_info_during_a_refresh_leave_the_registration_up(
    registrar: tuple[Registrar, PyVoipPhone], caplog: pytest.LogCaptureFixture
) -> None:
    """pyVoIP took the next datagram as the REGISTER answer: this burst counted as three
    failures and the phone closed its socket without a word."""
    peer, phone = registrar
    assert phone.registration.state == "registered"
    for _ in range(2):  # two refreshes, each interleaved with proxy traffic
        refresh = peer.expect("REGISTER", timeout=3)  # at half the 2 s grant
        for n in range(5):
            peer.send_request(options(peer.port, n))
        peer.send_request(info(peer.port, "not-a-call", "x", "y", "5"))
        answers = responses(peer, 6)
        assert sorted(a.status for a in answers) == [200] * 5 + [481]
        assert phone.registration.state == "registered"  # still: the refresh is in flight
        peer.respond(refresh, 200, "OK", extra="Expires: 2\r\n")
    assert phone.registration.state == "registered"
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_lost_registration_is_an_error_retried_with_backoff_and_no_call_starts(
    registrar: tuple[Registrar, PyVoipPhone], caplog: pytest.LogCaptureFixture
) -> None:
    peer, phone = registrar
    refresh = peer.expect("REGISTER", timeout=3)  # no answer: the registrar is down
    wait_until(lambda: phone.registration.state == "lost", 4, "the loss to be noticed")
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert errors == [f"SIP registration at 127.0.0.1:{peer.port} lost: no answer in 1 s; "
                      "next try in 1 s"]  # fmt: skip
    assert "next try in" in phone.registration.detail
    with pytest.raises(DialFailed, match="registration lost"):
        phone.dial("375291000300")
    retry = refresh
    while retry.cseq == refresh.cseq:  # past the refresh's retransmissions: the retry
        retry = peer.expect("REGISTER", timeout=3)
    peer.respond(retry, 200, "OK", extra="Expires: 2\r\n")
    wait_until(lambda: phone.registration.state == "registered", 2, "registered again")
    assert phone.dial("375291000301").state is LineState.DIALING


# ---------------------------------------------------------------- an answered call
@pytest.fixture
def answered() -> Iterator[tuple[ScriptedPeer, PyVoipCall, socket.socket, sm.SipMessage]]:
    """A call answered by the scripted peer, whose SDP names ``rtp`` as its media address."""
    peer = ScriptedPeer()
    phone = PyVoipPhone(lab_sip_settings(peer.port, 23000, register=False))
    phone.start()
    rtp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rtp.bind(("127.0.0.1", 0))
    try:
        call = phone.dial("375291000310")
        invite = peer.expect("INVITE")
        peer.respond(invite, 200, "OK", body=SDP_ANSWER.format(port=rtp.getsockname()[1]))
        peer.expect("ACK")
        wait_state(call, {LineState.ANSWERED}, 2)
        yield peer, call, rtp, invite
    finally:
        phone.stop()
        peer.close()
        rtp.close()
    assert pyvoip_threads() == []


def our_rtp(invite: sm.SipMessage) -> tuple[str, int]:
    return "127.0.0.1", int(invite.body.decode().split("m=audio ")[1].split()[0])


def event(key: int, timestamp: int) -> bytes:
    header = bytes([0x80, 0x80 | 101]) + (timestamp % 65536).to_bytes(2, "big")
    return header + timestamp.to_bytes(4, "big") + (7).to_bytes(4, "big") + bytes([key, 10, 0, 160])


def test_telephone_event_from_a_foreign_port_is_ignored_the_citizens_key_counts(
    answered: tuple[ScriptedPeer, PyVoipCall, socket.socket, sm.SipMessage],
) -> None:
    """pyVoIP heard any source: a forged 9 opted the citizen out, a forged 2 sent the
    request back for rework."""
    _peer, call, rtp, invite = answered
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as forger:
        forger.bind(("127.0.0.1", 0))
        for ts in (1000, 2000, 3000):
            forger.sendto(event(9, ts), our_rtp(invite))
        wait_until(lambda: call.media_counters.foreign == 3, 3, "the forged packets to arrive")
        rtp.sendto(event(1, 4000), our_rtp(invite))  # the citizen's own key
        assert first_keys(call, 3, "the citizen's '1'") == "1"
        forger.sendto(event(9, 5000), our_rtp(invite))  # still locked to the citizen's port
        wait_until(lambda: call.media_counters.foreign == 4, 3, "the late forged packet")
    assert call.take_keys() == []
    assert call.state is LineState.ANSWERED


def test_empty_and_runt_datagrams_mid_call_leave_the_call_and_its_keys_working(
    answered: tuple[ScriptedPeer, PyVoipCall, socket.socket, sm.SipMessage],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """pyVoIP: one empty datagram killed the receiver; the real key after it was lost and
    the call ended no_input on the media timeout."""
    _peer, call, rtp, invite = answered
    for junk in (b"", b"\x80", b"\x80\x00\x00", bytes(11), b"\x00" * 40):
        rtp.sendto(junk, our_rtp(invite))
    wait_until(lambda: call.media_counters.dropped == 5, 3, "the junk to be counted")
    counters = call.media_counters
    assert (counters.runt, counters.malformed) == (4, 1)
    rtp.sendto(event(4, 9000), our_rtp(invite))
    assert first_keys(call, 3, "'4' after the junk") == "4"
    assert call.state is LineState.ANSWERED and call.media_idle_s < 2
    assert not any(r.exc_info for r in caplog.records)


def test_requests_from_strangers_or_with_wrong_tags_do_not_touch_the_call(
    answered: tuple[ScriptedPeer, PyVoipCall, socket.socket, sm.SipMessage],
    caplog: pytest.LogCaptureFixture,
) -> None:
    peer, call, _rtp, invite = answered
    ours = invite.tag("from")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as stranger:
        stranger.bind(("127.0.0.1", 0))
        target = ("127.0.0.1", int((invite.all("via")[0].split(":")[-1]).split(";")[0]))
        # right tags, wrong source: a forged key and a forged BYE are dropped unanswered
        stranger.sendto(info(peer.port, call.call_id, "peertag", ours, "9").encode(), target)
        bye = info(peer.port, call.call_id, "peertag", ours, "x").replace("INFO", "BYE")
        stranger.sendto(bye.encode(), target)
        # an OPTIONS naming the peer in its Via: we do not reflect it there
        stranger.sendto(options(peer.port, 40).encode(), target)
        assert nothing_arrives(stranger, 0.5) and nothing_arrives(peer.sock, 0.5)
        # from the proxy, but the tags of no dialog of ours: 481, the call goes on
        peer.send_request(info(peer.port, call.call_id, "othertag", ours, "9"))
        assert [a.status for a in responses(peer, 1)] == [481]
        stranger.sendto(b"INVITE garbage\r\n\r\n" * 3, target)
        stranger.sendto(b"SIP/2.0 200 OK\r\nCSeq: x\r\n\r\n", target)
    assert call.state is LineState.ANSWERED and call.take_keys() == []
    # the real thing still works
    peer.send_request(info(peer.port, call.call_id, "peertag", ours, "2"))
    assert [a.status for a in responses(peer, 1)] == [200]
    assert first_keys(call, 2, "the INFO '2'") == "2"
    assert not any(r.exc_info for r in caplog.records)
    malformed = [r for r in caplog.records if "malformed SIP datagram" in r.getMessage()]
    assert len(malformed) == 1  # two bad datagrams, one line (rate-limited)


# ---------------------------------------------------------------- CANCEL crosses 200
def test_200_crossing_our_cancel_is_an_unanswered_attempt_retried_as_one() -> None:
    """We ACK and BYE the late 200, and the attempt is no_answer (it was answered, survey
    ending no_input / remote_hangup, and counted as the citizen's one call of the day)."""
    peer = ScriptedPeer()
    phone = PyVoipPhone(lab_sip_settings(peer.port, 23000, register=False))
    phone.start()
    settings = RunnerSettings(ring_timeout_s=0.5, max_call_s=30, flow=FlowSettings(5, 1, False))
    plan = CallPlan("375291000320", (RequestInfo("s1", "N1"),), "ru")
    reports = []
    try:

        def script() -> None:
            invite = peer.expect("INVITE")
            peer.respond(invite, 180, "Ringing")
            cancel = peer.expect("CANCEL")  # the ring timeout
            peer.respond(cancel, 200, "OK")
            peer.respond(invite, 200, "OK", body=SDP_ANSWER.format(port=peer.port + 1))
            peer.expect("ACK")
            peer.respond(peer.expect("BYE"), 200, "OK")

        scripted = threading.Thread(target=script)
        scripted.start()
        reports.append(
            run_call(phone, plan, FakePrompts(), settings, SYSTEM_CLOCK, lambda *a: None)
        )
        scripted.join(timeout=10)
    finally:
        phone.stop()
        peer.close()
    (report,) = reports
    assert (report.final_status, report.ended_by) == (200, EndedBy.LOCAL_CANCEL)
    assert not report.answered and report.outcomes == []
    disp = disposition(report.answered, report.final_status, report.ended_by)
    assert disp == "no_answer"
    now = SYSTEM_CLOCK.now()
    decision = decide_unanswered([disp], 3, lambda _kind: [timedelta(minutes=10)], now)
    assert getattr(decision, "at", None) is not None  # retried, like any unanswered ring


# ---------------------------------------------------------------- a night that cannot re-register
class VanishingRegistrar(ScriptedPeer):
    """Grants the first REGISTER 2 s, then answers no REGISTER again; answers every INVITE
    486 (so the citizen's second attempt falls due while the registration is lost)."""

    def __init__(self) -> None:
        super().__init__()
        self.invites: list[float] = []
        self.registers: list[float] = []
        self.calls: set[str] = set()
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        self.sock.settimeout(0.2)
        while not self.done.is_set():
            try:
                raw, self.addr = self.sock.recvfrom(8192)
            except (TimeoutError, OSError):
                continue
            msg = sm.parse(raw)
            if msg.method == "REGISTER":
                self.registers.append(time.monotonic())
                if len(self.registers) == 1:
                    self.respond(msg, 200, "OK", extra="Expires: 2\r\n")
            elif msg.method == "INVITE":
                if msg.call_id not in self.calls:  # not a retransmission
                    self.calls.add(msg.call_id)
                    self.invites.append(time.monotonic())
                self.respond(msg, 486, "Busy Here")

    def close(self) -> None:
        self.done.set()
        self.thread.join(timeout=2)
        super().close()


def test_night_exits_4_when_the_registration_cannot_recover(tmp_path: Path) -> None:
    """The refresh goes unanswered: an ERROR line, no call while unregistered (the busy
    citizen's retry falls due then and is not dialled, no attempt spent), and after
    ``sip.register_give_up_s`` the night stops with exit code 4."""
    citizen = Citizen("+375291000340", "busy")
    registrar = VanishingRegistrar()
    settings = LabSettings(retry_delay="10s", max_attempts=2)
    overrides = {"sip": {"port": registrar.port, "register_give_up_s": 6}}
    try:
        with NightLab(tmp_path, lab_day(), (citizen,), with_bad_items=False,
                      settings=settings, overrides=overrides) as lab:  # fmt: skip
            night = lab.cli("night", "--date", lab.day.isoformat(), timeout=180)
            store = Store(make_engine(f"sqlite:///{lab.database}"))
            attempts = attempts_of(store, lab.items[0]["id"])
    finally:
        registrar.close()
    assert night.returncode == 4, night.stderr[-3000:]
    assert "SIP registration failed" in night.stderr and "lost for" in night.stderr
    assert "ERROR" in night.stderr and "registration at 127.0.0.1" in night.stderr
    assert len(registrar.invites) == 1 and len(attempts) == 1  # the retry was never dialled
    assert len(registrar.registers) > 2  # the loss was retried (with backoff)
