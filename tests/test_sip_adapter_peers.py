"""PyVoipPhone against real peers on 127.0.0.1: strict kamailio (407 on INVITE), SIPp, baresip.

Never skipped: a missing peer binary fails with the Debian package to install.
"""

from __future__ import annotations

import logging
import math
import socket
import threading
import time
import wave
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from ivr.core.dtmf_inband import alaw_decode, ulaw_decode
from ivr.core.errors import RegistrationFailed
from ivr.sip import digest, sdp, sip_messages as sm
from ivr.sip.api import EndedBy, LineState, SipSettings
from ivr.sip.media_client import MEDIA
from ivr.sip.pyvoip_adapter import PyVoipCall, PyVoipPhone
from lab.baresip_peer import BaresipCitizen
from lab.kamailio_peer import Kamailio
from lab.peer_process import find_free_udp_port
from lab.sipp_peer import SippCitizen
from tests.helpers import lab_sip_settings, wait_until

pytestmark = pytest.mark.peers

NUMBERS = {
    "press:1": "375291000001",
    "busy": "375291000002",
    "decline": "375291000003",
    "not_found": "375291000004",
    "no_answer": "375291000005",
    "hangup:1000": "375291000006",
    "silent": "375291000007",
}
BARESIP_NUMBER = "375291000099"
BARESIP_ALAW_NUMBER = "375291000098"


def wait_state(call: PyVoipCall, states: set[LineState], timeout: float) -> LineState:
    wait_until(lambda: call.state in states, timeout, f"{call.call_id} to reach {states}")
    return call.state


def first_keys(call: PyVoipCall, timeout: float, what: str) -> str:
    """The key(s) of the first press(es) that arrive within ``timeout``."""
    keys = ""

    def got_key() -> bool:
        nonlocal keys
        keys += "".join(k.key for k in call.take_keys())
        return bool(keys)

    wait_until(got_key, timeout, what)
    return keys


def heard_correlation(citizen: BaresipCitizen, prompt: bytes) -> float:
    """How well the best of baresip's recordings matches ``prompt`` (1.0: the same)."""
    recordings = citizen.recordings()
    assert recordings, "baresip recorded nothing"
    correlation = max(best_correlation(r, prompt) for r in recordings)
    print(f"baresip recording vs prompt: normalised cross-correlation {correlation:.4f}")
    return correlation


def pyvoip_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t is not threading.main_thread()]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("sip-peers")


@pytest.fixture(scope="module")
def kamailio(workdir: Path) -> Iterator[Kamailio]:
    with Kamailio(workdir, find_free_udp_port()) as kam:
        yield kam


@pytest.fixture(scope="module")
def citizens(workdir: Path, kamailio: Kamailio) -> Iterator[dict[str, SippCitizen]]:
    started: dict[str, SippCitizen] = {}
    try:
        for behaviour, number in NUMBERS.items():
            citizen = SippCitizen(workdir, behaviour, [number], kamailio.port)
            started[behaviour] = citizen.__enter__()
        yield started
    finally:
        for citizen in started.values():
            citizen.__exit__(None, None, None)


def settings(kamailio: Kamailio, password: str = "secret", register: bool = True) -> SipSettings:
    return lab_sip_settings(kamailio.port, 21000, password=password, register=register)


@pytest.fixture
def phone(kamailio: Kamailio, citizens: dict[str, SippCitizen]) -> Iterator[PyVoipPhone]:
    before = set(pyvoip_threads())
    p = PyVoipPhone(settings(kamailio))
    p.start()
    yield p
    p.stop()
    assert set(pyvoip_threads()) <= before


def test_register_ok(kamailio: Kamailio) -> None:
    s = settings(kamailio)
    p = PyVoipPhone(s)
    started = time.monotonic()
    p.start()
    try:
        assert time.monotonic() - started < 3
        registers = [
            line
            for line in kamailio.log().splitlines()
            if f"REQ REGISTER sip:127.0.0.1 from 127.0.0.1:{s.sip_port}" in line
        ]
        assert len(registers) == 2  # challenged (401), then accepted
    finally:
        p.stop()
    assert pyvoip_threads() == []


def test_register_wrong_password_raises(kamailio: Kamailio) -> None:
    p = PyVoipPhone(settings(kamailio, password="wrong-pass"))
    started = time.monotonic()
    with pytest.raises(RegistrationFailed) as info:
        p.start()
    assert time.monotonic() - started < 12
    assert f"127.0.0.1:{kamailio.port}" in str(info.value)
    assert "wrong-pass" not in str(info.value)
    assert pyvoip_threads() == []


def test_silent_registrar_fails_start_in_bounded_time(kamailio: Kamailio) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as black_hole:
        black_hole.bind(("127.0.0.1", 0))
        s = SipSettings(**{**settings(kamailio).__dict__, "port": black_hole.getsockname()[1]})
        started = time.monotonic()
        with pytest.raises(RegistrationFailed, match=f"127.0.0.1:{s.port}"):
            PyVoipPhone(s).start()  # stock pyVoIP: 30 s blocked, FAILED after 120 s
        assert time.monotonic() - started < 12
    assert pyvoip_threads() == []


def test_answered_call_through_407_receives_key(phone: PyVoipPhone, kamailio: Kamailio) -> None:
    call = phone.dial(NUMBERS["press:1"])
    assert wait_state(call, {LineState.ANSWERED, LineState.ENDED}, 10) is LineState.ANSWERED
    assert call.final_status == 200
    assert first_keys(call, 5, "DTMF '1'") == "1"
    assert call.take_keys() == []
    # the first INVITE was challenged with 407 and answered: kamailio saw two INVITEs
    log_lines = kamailio.log().splitlines()
    invites = [ln for ln in log_lines if "REQ INVITE" in ln and call.call_id in ln]
    assert len(invites) == 2
    call.hangup()
    assert call.state is LineState.ENDED and call.ended_by is EndedBy.LOCAL_HANGUP


@pytest.mark.parametrize(
    ("behaviour", "status", "phrase"),
    [("busy", 486, "Busy Here"), ("decline", 603, "Decline"), ("not_found", 404, "Not Found")],
    ids=["busy-486", "decline-603", "not-found-404"],
)
def test_rejected_call_is_acked_and_ended(
    phone: PyVoipPhone, caplog: pytest.LogCaptureFixture, behaviour: str, status: int, phrase: str
) -> None:
    caplog.set_level(logging.DEBUG, logger="ivr.sip.pyvoip_adapter")
    call = phone.dial(NUMBERS[behaviour])
    assert wait_state(call, {LineState.ENDED}, 10) is LineState.ENDED
    assert call.ended_by is EndedBy.REMOTE_REJECT
    assert call.final_status == status
    assert call.final_reason is not None and call.final_reason.startswith(phrase)
    assert "Q.850" in call.final_reason
    # Proving a negative: an un-ACKed final is retransmitted by kamailio after 0.5 s, 1.5 s...
    time.sleep(2.0)  # the scenario: time for those retransmissions (none must come)
    received = [
        r.getMessage()
        for r in caplog.records
        if r.getMessage().startswith("SIP <-") and call.call_id in r.getMessage()
    ]
    finals = [m for m in received if f"SIP/2.0 {status} " in m]
    assert len(finals) == 1, f"{status} was retransmitted: our ACK was not accepted"


def test_cancel_ringing_call(phone: PyVoipPhone) -> None:
    call = phone.dial(NUMBERS["no_answer"])
    assert wait_state(call, {LineState.RINGING, LineState.ENDED}, 10) is LineState.RINGING
    cancelled = time.monotonic()
    call.cancel()
    assert wait_state(call, {LineState.ENDED}, 5) is LineState.ENDED
    assert time.monotonic() - cancelled < 2  # ended by the 487, not by the local 4 s grace
    assert call.ended_by is EndedBy.LOCAL_CANCEL
    assert call.final_status == 487


def test_remote_bye(phone: PyVoipPhone) -> None:
    call = phone.dial(NUMBERS["hangup:1000"])
    assert wait_state(call, {LineState.ANSWERED, LineState.ENDED}, 10) is LineState.ANSWERED
    assert wait_state(call, {LineState.ENDED}, 5) is LineState.ENDED
    assert call.ended_by is EndedBy.REMOTE_BYE


def test_no_response_ends_after_timer_b(kamailio: Kamailio) -> None:
    # A "server" that swallows everything; no REGISTER (direct-to-trunk mode).
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as black_hole:
        black_hole.bind(("127.0.0.1", 0))
        s = settings(kamailio, register=False)
        s = SipSettings(**{**s.__dict__, "port": black_hole.getsockname()[1]})
        p = PyVoipPhone(s)
        p.start()
        try:
            call = p.dial("375291000123")
            started = time.monotonic()
            assert wait_state(call, {LineState.ENDED}, 40) is LineState.ENDED
            assert 31 < time.monotonic() - started < 35
            assert call.ended_by is EndedBy.NO_RESPONSE and call.final_status is None
        finally:
            p.stop()
    assert pyvoip_threads() == []


def test_stop_ends_every_call_and_releases_threads_and_ports(
    kamailio: Kamailio, citizens: dict[str, SippCitizen]
) -> None:
    s = settings(kamailio)
    p = PyVoipPhone(s)
    p.start()
    answered = [p.dial(NUMBERS["silent"]) for _ in range(3)]
    ringing = p.dial(NUMBERS["no_answer"])
    for call in answered:
        assert wait_state(call, {LineState.ANSWERED, LineState.ENDED}, 10) is LineState.ANSWERED
        call.play(bytes([128]) * 8000)
    assert wait_state(ringing, {LineState.RINGING}, 10) is LineState.RINGING
    started = time.monotonic()
    p.stop()
    assert time.monotonic() - started < 6
    assert all(c.state is LineState.ENDED for c in [*answered, ringing])
    assert {c.ended_by for c in answered} == {EndedBy.LOCAL_HANGUP}
    assert ringing.ended_by is EndedBy.LOCAL_CANCEL
    assert pyvoip_threads() == []
    for port in range(s.rtp_port_low, s.rtp_port_high + 1):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.bind(("127.0.0.1", port))  # raises if an RTP socket leaked


def chirp_u8(seconds: float, f0: float = 300.0, f1: float = 3000.0) -> bytes:
    """A sweep: unlike a steady tone it only correlates with itself at one lag."""
    n = int(seconds * 8000)
    k = (f1 - f0) / seconds
    return bytes(
        int(128 + 90 * math.sin(2 * math.pi * (f0 * t + k * t * t / 2)))
        for t in (i / 8000 for i in range(n))
    )


def best_correlation(recording: Path, prompt_u8: bytes) -> float:
    with wave.open(str(recording), "rb") as w:
        assert w.getframerate() == 8000 and w.getsampwidth() == 2
        rec = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16).astype(np.float64)
        if w.getnchannels() > 1:
            rec = rec.reshape(-1, w.getnchannels()).mean(axis=1)
    ref = np.frombuffer(prompt_u8, dtype=np.uint8).astype(np.float64) - 128.0
    rec, ref = rec - rec.mean(), ref - ref.mean()
    nfft = 1 << (len(rec) + len(ref) - 1).bit_length()
    cc = np.fft.irfft(np.fft.rfft(rec, nfft) * np.conj(np.fft.rfft(ref, nfft)), nfft)[: len(rec)]
    lag = int(np.argmax(cc))
    seg = rec[lag : lag + len(ref)]
    m = min(len(seg), len(ref))
    return float(
        np.dot(seg[:m], ref[:m]) / (np.linalg.norm(seg[:m]) * np.linalg.norm(ref[:m]) + 1e-9)
    )


def test_baresip_call_survives_timer_h_and_hears_the_prompt(
    phone: PyVoipPhone, kamailio: Kamailio, workdir: Path
) -> None:
    bdir = workdir / "baresip"
    bdir.mkdir()
    prompt = chirp_u8(3.0)
    with BaresipCitizen(bdir, BARESIP_NUMBER, kamailio.port) as citizen:
        citizen.press_after_answer("1", delay_s=2.0)
        call = phone.dial(BARESIP_NUMBER)
        assert wait_state(call, {LineState.ANSWERED, LineState.ENDED}, 10) is LineState.ANSWERED
        answered = time.monotonic()
        call.play(prompt)
        assert first_keys(call, 8, "DTMF '1' from baresip") == "1"
        # baresip drops a call whose 2xx was never properly ACKed at 32 s (Timer H): the
        # scenario is 36 s of call, answered throughout
        while time.monotonic() - answered < 36:
            assert call.state is LineState.ANSWERED, f"dropped after {time.monotonic() - answered}"
            time.sleep(0.2)
        call.hangup()
        assert call.ended_by is EndedBy.LOCAL_HANGUP
        wait_until(lambda: "closed" in citizen.log().lower(), 5, "baresip to see our BYE")
    assert heard_correlation(citizen, prompt) > 0.95


def test_an_alaw_only_line_hears_the_prompt(
    phone: PyVoipPhone, kamailio: Kamailio, workdir: Path
) -> None:
    """A trunk that speaks only PCMA (common in Europe) answers our offer with PCMA; what it
    hears is the prompt (pyVoIP alone sent mu-law labelled PCMA: noise)."""
    bdir = workdir / "baresip-alaw"
    bdir.mkdir()
    prompt = chirp_u8(3.0)
    with BaresipCitizen(bdir, BARESIP_ALAW_NUMBER, kamailio.port, codecs="PCMA") as citizen:
        citizen.press_after_answer("2", delay_s=1.0)
        call = phone.dial(BARESIP_ALAW_NUMBER)
        assert wait_state(call, {LineState.ANSWERED, LineState.ENDED}, 10) is LineState.ANSWERED
        assert call.codec == "PCMA"
        call.play(prompt)
        assert first_keys(call, 8, "DTMF '2' from baresip") == "2"
        # The scenario: the prompt plays out in real time before we hang up (a call reports no
        # end of playback), so that baresip records all of it.
        time.sleep(len(prompt) / 8000 + 0.5)
        call.hangup()
        wait_until(lambda: "closed" in citizen.log().lower(), 5, "baresip to see our BYE")
    assert heard_correlation(citizen, prompt) > 0.95


# ---------------------------------------------------------------- scripted UDP peer
# Cases SIPp/kamailio cannot produce on demand, against a real socket scripted message by
# message (phone in direct-to-trunk mode, no REGISTER).
SDP_ANSWER = (
    "v=0\r\no=peer 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    "m=audio {port} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\n"
    "a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\n"
)


class ScriptedPeer:
    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = int(self.sock.getsockname()[1])
        self.addr: tuple[str, int] = ("127.0.0.1", 0)

    def expect(self, method: str, timeout: float = 5.0) -> sm.SipMessage:
        """Next request with ``method`` (others are skipped); fails after ``timeout``."""
        self.sock.settimeout(timeout)
        while True:
            raw, self.addr = self.sock.recvfrom(8192)
            msg = sm.parse(raw)
            if not msg.is_response and msg.method == method:
                return msg

    def respond(
        self, request: sm.SipMessage, status: int, reason: str, extra: str = "", body: str = ""
    ) -> None:
        head = sm.build_response(request, status, reason, to_tag="peertag").decode()
        head = head.replace("Content-Length: 0\r\n\r\n", "")
        if status == 200 and request.method == "INVITE":
            extra += f"Contact: <sip:peer@127.0.0.1:{self.port}>\r\n"
        if body:
            extra += "Content-Type: application/sdp\r\n"
        data = f"{head}{extra}Content-Length: {len(body)}\r\n\r\n{body}"
        self.sock.sendto(data.encode(), self.addr)

    def send_request(self, text: str) -> None:
        self.sock.sendto(text.encode(), self.addr)

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def scripted() -> Iterator[tuple[ScriptedPeer, PyVoipPhone]]:
    peer = ScriptedPeer()
    p = PyVoipPhone(lab_sip_settings(peer.port, 21000, register=False))
    p.start()
    try:
        yield peer, p
    finally:
        p.stop()
        peer.close()
    assert pyvoip_threads() == []


def test_200_after_cancel_is_acked_then_byed(scripted: tuple[ScriptedPeer, PyVoipPhone]) -> None:
    peer, phone = scripted
    call = phone.dial("375291000200")
    invite = peer.expect("INVITE")
    peer.respond(invite, 180, "Ringing")
    wait_state(call, {LineState.RINGING}, 5)
    call.cancel()
    cancel = peer.expect("CANCEL")
    assert cancel.all("via") == invite.all("via") and cancel.cseq == (invite.cseq[0], "CANCEL")
    peer.respond(cancel, 200, "OK")
    peer.respond(invite, 200, "OK", body=SDP_ANSWER.format(port=peer.port))  # crossed
    ack = peer.expect("ACK")
    assert ack.start_line.startswith(f"ACK sip:peer@127.0.0.1:{peer.port} ")
    assert ack.tag("to") == "peertag"
    bye = peer.expect("BYE")
    assert bye.cseq == (invite.cseq[0] + 1, "BYE")
    wait_state(call, {LineState.ENDED}, 2)
    assert call.ended_by is EndedBy.LOCAL_CANCEL


def test_unanswered_cancel_ends_locally_after_grace(
    scripted: tuple[ScriptedPeer, PyVoipPhone],
) -> None:
    peer, phone = scripted
    call = phone.dial("375291000204")
    invite = peer.expect("INVITE")
    peer.respond(invite, 180, "Ringing")
    wait_state(call, {LineState.RINGING}, 5)
    call.cancel()
    peer.expect("CANCEL")  # and then nothing: no 200, no 487
    cancelled = time.monotonic()
    wait_state(call, {LineState.ENDED}, 6)
    assert 3.5 < time.monotonic() - cancelled < 5
    assert (call.ended_by, call.final_status) == (EndedBy.LOCAL_CANCEL, None)


def test_401_with_qop_then_second_challenge_ends_call(
    scripted: tuple[ScriptedPeer, PyVoipPhone],
) -> None:
    peer, phone = scripted
    challenge = 'WWW-Authenticate: Digest realm="lab", nonce="n1", qop="auth", algorithm=MD5\r\n'
    call = phone.dial("375291000201")
    first = peer.expect("INVITE")
    peer.respond(first, 401, "Unauthorized", extra=challenge)
    ack = peer.expect("ACK")
    assert ack.all("via") == first.all("via")
    second = peer.expect("INVITE")
    assert second.call_id == first.call_id and second.tag("from") == first.tag("from")
    assert second.cseq[0] == first.cseq[0] + 1
    assert second.all("via") != first.all("via")  # new branch
    auth = digest.parse_challenge(second.header("authorization") or "")
    ruri = second.start_line.split()[1]
    assert auth["uri"] == ruri
    assert auth["response"] == digest.digest_response(
        username="dialer", password="secret", realm="lab", nonce="n1", method="INVITE",
        uri=ruri, qop="auth", nc=auth["nc"], cnonce=auth["cnonce"],
    )  # fmt: skip
    peer.respond(second, 401, "Unauthorized", extra=challenge)
    peer.expect("ACK")
    wait_state(call, {LineState.ENDED}, 2)
    assert (call.final_status, call.ended_by) == (401, EndedBy.REMOTE_REJECT)


def test_final_as_first_response_and_options_during_invite(
    scripted: tuple[ScriptedPeer, PyVoipPhone],
) -> None:
    peer, phone = scripted
    call = phone.dial("375291000202")
    invite = peer.expect("INVITE")
    peer.send_request(
        f"OPTIONS sip:dialer@127.0.0.1 SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.1:{peer.port};branch=z9hG4bKopt\r\n"
        "From: <sip:peer@127.0.0.1>;tag=o1\r\nTo: <sip:dialer@127.0.0.1>\r\n"
        "Call-ID: options-1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    )
    peer.sock.settimeout(5)
    answer = sm.parse(peer.sock.recv(8192))
    assert (answer.status, answer.call_id) == (200, "options-1")
    peer.respond(invite, 404, "Not Found")  # no 100 first: pyVoIP raised KeyError here
    peer.expect("ACK")
    peer.respond(invite, 404, "Not Found")  # retransmission: ACKed again
    peer.expect("ACK")
    assert call.state is LineState.ENDED
    assert (call.final_status, call.ended_by) == (404, EndedBy.REMOTE_REJECT)


def test_retransmitted_200_is_reacked_and_event_16_does_not_kill_dtmf(
    scripted: tuple[ScriptedPeer, PyVoipPhone],
) -> None:
    peer, phone = scripted
    call = phone.dial("375291000203")
    invite = peer.expect("INVITE")
    our_rtp = int(invite.body.decode().split("m=audio ")[1].split()[0])
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as rtp:
        rtp.bind(("127.0.0.1", 0))
        body = SDP_ANSWER.format(port=rtp.getsockname()[1])
        peer.respond(invite, 200, "OK", body=body)  # 200 without 100/180 first
        first_ack = peer.expect("ACK")
        peer.respond(invite, 200, "OK", body=body)
        assert peer.expect("ACK").raw == first_ack.raw
        wait_state(call, {LineState.ANSWERED}, 2)
        for seq, event in enumerate([16, 4]):  # flash (event 16), then '4'
            header = bytes([0x80, 0x80 | 101]) + (100 + seq).to_bytes(2, "big")
            packet = header + (1000 * (seq + 1)).to_bytes(4, "big") + (7).to_bytes(4, "big")
            rtp.sendto(packet + bytes([event, 0x0A, 0x00, 0xA0]), ("127.0.0.1", our_rtp))
        assert first_keys(call, 3, "DTMF '4' after event 16") == "4"
        assert MEDIA.alive  # the media process (its loop) survived event 16
        call.stop_audio()  # nothing queued: must not break anything
        call.play(bytes([200]) * 8000 * 5)  # 5 s of a loud constant: u-law byte != 0xFF
        rtp.settimeout(2)

        def next_payload() -> bytes:
            return rtp.recv(2048)[12:]

        wait_until(lambda: set(next_payload()) != {0xFF}, 3, "the queued audio to play")
        call.stop_audio()
        stopped = time.monotonic()
        wait_until(lambda: set(next_payload()) == {0xFF}, 1, "silence after stop_audio()")
        while time.monotonic() - stopped < 0.5:  # and it stays silent: the queue is gone
            assert set(next_payload()) == {0xFF}
        call.play(bytes([200]) * 8000)  # and audio queued afterwards plays again
        wait_until(lambda: set(next_payload()) != {0xFF}, 2, "audio played after stop_audio()")
        call.hangup()
        bye = peer.expect("BYE")
        assert bye.start_line.startswith(f"BYE sip:peer@127.0.0.1:{peer.port} ")


class FarEnd:
    """The scripted peer's side of an answered call: in-dialog re-INVITEs and ACKs."""

    def __init__(self, peer: ScriptedPeer, invite: sm.SipMessage, call_id: str) -> None:
        self.peer, self.call_id, self.cseq = peer, call_id, 1
        self.contact = (invite.header("contact") or "").split("<", 1)[1].split(">", 1)[0]
        self.ours, self.theirs = invite.header("from") or "", invite.header("to") or ""

    def send_reinvite(self, body: str, cseq: int | None = None) -> None:
        """A re-INVITE (the next CSeq, or ``cseq`` again: a retransmission)."""
        if cseq is None:
            self.cseq += 1
        cseq = cseq or self.cseq
        self.peer.send_request(
            f"INVITE {self.contact} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:{self.peer.port};branch=z9hG4bKre{cseq}\r\n"
            f"From: {self.theirs};tag=peertag\r\nTo: {self.ours}\r\n"
            f"Call-ID: {self.call_id}\r\nCSeq: {cseq} INVITE\r\n"
            f"Contact: <sip:peer@127.0.0.1:{self.peer.port}>\r\n"
            f"Content-Type: application/sdp\r\nContent-Length: {len(body)}\r\n\r\n{body}"
        )

    def answer(self, timeout: float = 5.0) -> sm.SipMessage:
        """The next response to our last re-INVITE."""
        self.peer.sock.settimeout(timeout)
        while True:
            msg = sm.parse(self.peer.sock.recv(8192))
            if msg.is_response and msg.cseq == (self.cseq, "INVITE"):
                return msg

    def reinvite(self, body: str) -> sm.SipMessage:
        self.send_reinvite(body)
        return self.answer()

    def ack(self, answer: sm.SipMessage) -> None:
        self.peer.send_request(
            f"ACK {self.contact} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:{self.peer.port};branch=z9hG4bKack{self.cseq}\r\n"
            f"From: {self.theirs};tag=peertag\r\nTo: {answer.header('to')}\r\n"
            f"Call-ID: {self.call_id}\r\nCSeq: {self.cseq} ACK\r\nContent-Length: 0\r\n\r\n"
        )


SDP_ONE_CODEC = (
    "v=0\r\no=peer 1 {version} IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    "m=audio {port} RTP/AVP {pt} 101\r\na=rtpmap:{pt} {name}/8000\r\n"
    "a=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n"
)


def test_alaw_answer_is_sent_alaw_and_reinvites_switch_the_law(
    scripted: tuple[ScriptedPeer, PyVoipPhone],
) -> None:
    """We offer PCMU and PCMA; the far end's answer and later re-INVITEs pick. What we send
    decodes, in the chosen law, to what was played; an offer with neither law gets 488."""
    peer, phone = scripted
    call = phone.dial("375291000206")
    invite = peer.expect("INVITE")
    offer = sdp.parse_sdp_audio(invite.body)
    assert offer is not None and offer.payloads == {0: "pcmu", 8: "pcma", 101: "telephone-event"}
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as rtp:
        rtp.bind(("127.0.0.1", 0))
        rtp_port = rtp.getsockname()[1]
        answer_sdp = SDP_ONE_CODEC.format(version=1, port=rtp_port, pt=8, name="PCMA")
        peer.respond(invite, 200, "OK", body=answer_sdp)
        peer.expect("ACK")
        wait_state(call, {LineState.ANSWERED}, 2)
        assert call.codec == "PCMA"
        rtp.settimeout(2)
        level = (200 - 128) * 256  # the linear value of the u8 sample we play

        def heard(pt: int, decode: Callable[[bytes], npt.NDArray[np.float64]]) -> None:
            """Play a constant; the packets carry ``pt`` and decode to it (one quantum)."""
            call.play(bytes([200]) * 8000)
            for _ in range(150):
                packet = rtp.recv(2048)
                assert packet[1] & 0x7F == pt
                samples = decode(packet[12:])
                if abs(samples).max() > 1000:
                    assert abs(samples - level).max() <= 1024, samples[:8]
                    call.stop_audio()
                    return
            raise AssertionError("the played audio never arrived")

        heard(8, alaw_decode)
        far_end = FarEnd(peer, invite, call.call_id)

        def reinvite(pt: int, name: str) -> sm.SipMessage:
            body = SDP_ONE_CODEC.format(version=far_end.cseq + 1, port=rtp_port, pt=pt, name=name)
            answer = far_end.reinvite(body)
            if answer.status == 200:
                far_end.ack(answer)
            return answer

        answer = reinvite(0, "PCMU")  # the trunk moves to mu-law
        assert answer.status == 200
        audio = sdp.parse_sdp_audio(answer.body)
        assert audio is not None and audio.payloads == {0: "pcmu", 101: "telephone-event"}
        assert call.codec == "PCMU"
        heard(0, ulaw_decode)
        answer = reinvite(18, "G729")  # a law we cannot speak: refused, the call goes on as it was
        assert answer.status == 488
        assert (call.state, call.codec) == (LineState.ANSWERED, "PCMU")
        heard(0, ulaw_decode)
        call.hangup()
        peer.expect("BYE")


def test_our_200_to_a_reinvite_is_sent_again_until_its_ack(
    scripted: tuple[ScriptedPeer, PyVoipPhone],
) -> None:
    """UDP loses packets: our 200 to a re-INVITE goes again (0.5 s, then 1 s, ...) until the
    ACK comes; a retransmitted re-INVITE gets the very same 200; after the ACK, silence."""
    peer, phone = scripted
    call = phone.dial("375291000207")
    invite = peer.expect("INVITE")
    peer.respond(invite, 200, "OK", body=SDP_ANSWER.format(port=peer.port + 1))
    peer.expect("ACK")
    wait_state(call, {LineState.ANSWERED}, 2)
    far_end = FarEnd(peer, invite, call.call_id)
    body = SDP_ONE_CODEC.format(version=2, port=peer.port + 1, pt=0, name="PCMU")
    first = far_end.reinvite(body)
    assert first.status == 200
    sent = time.monotonic()
    again = far_end.answer(timeout=2)
    assert again.raw == first.raw and 0.3 < time.monotonic() - sent < 0.9
    third = far_end.answer(timeout=3)
    assert third.raw == first.raw and 1.2 < time.monotonic() - sent < 2.2
    far_end.send_reinvite(body, cseq=far_end.cseq)  # our 200 was lost both ways
    assert far_end.answer(timeout=2).raw == first.raw
    far_end.ack(first)
    late = 0
    with pytest.raises(TimeoutError):
        while True:  # one retransmission may already be on its way; then nothing for 4.5 s
            far_end.answer(timeout=4.5)  # longer than the next two gaps (2 s, 4 s)
            late += 1
            assert late == 1, "our 200 was sent again after its ACK"
    assert call.state is LineState.ANSWERED
    call.hangup()
    peer.expect("BYE")
