"""Keys over every path, and re-INVITE / early media, against real peers: strict kamailio
(407 on INVITE) and SIPp citizens. Never skipped: a missing peer fails."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from ivr.campaign.call_runner import CallPlan, RunnerSettings, run_call
from ivr.core.call_events import RecordOutcome
from ivr.core.call_script import FlowSettings, RequestInfo
from ivr.core.clock import SYSTEM_CLOCK
from ivr.core.vocabulary import Outcome
from ivr.sip.api import EndedBy, KeyPress, KeySource, LineState
from ivr.sip.pyvoip_adapter import PyVoipCall, PyVoipPhone
from lab.kamailio_peer import Kamailio
from lab.peer_process import find_free_udp_port
from lab.sipp_peer import SippCitizen
from prompts.library import PromptLibrary
from tests.helpers import lab_sip_settings, wait_until

pytestmark = pytest.mark.peers

NUMBERS = {
    "pt96:7": "375291100001",
    "info:5": "375291100002",
    "info_dtmf:#": "375291100003",
    "inband:19*0": "375291100004",
    "hold_unhold:3": "375291100005",
    "early:8": "375291100006",
    "press:4": "375291100007",
    "mute": "375291100008",
    "inband_pcma:28#": "375291100009",
    "to_pcma:6": "375291100010",
}


def threads() -> set[str]:
    return {t.name for t in threading.enumerate() if t is not threading.main_thread()}


@pytest.fixture(scope="module")
def kamailio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kamailio]:
    with Kamailio(tmp_path_factory.mktemp("kam-keys"), find_free_udp_port()) as kam:
        yield kam


@pytest.fixture(scope="module")
def citizens(
    tmp_path_factory: pytest.TempPathFactory, kamailio: Kamailio
) -> Iterator[dict[str, SippCitizen]]:
    workdir = tmp_path_factory.mktemp("sipp-keys")
    started: dict[str, SippCitizen] = {}
    try:
        for behaviour, number in NUMBERS.items():
            started[behaviour] = SippCitizen(
                workdir, behaviour, [number], kamailio.port
            ).__enter__()
        yield started
    finally:
        for citizen in started.values():
            citizen.__exit__(None, None, None)


@pytest.fixture
def phone(kamailio: Kamailio, citizens: dict[str, SippCitizen]) -> Iterator[PyVoipPhone]:
    before = threads()
    p = PyVoipPhone(lab_sip_settings(kamailio.port, 26000, spread=30))
    p.start()
    yield p
    p.stop()
    assert threads() <= before  # no thread left behind


def keys_of(call: PyVoipCall, n: int, timeout: float) -> list[KeyPress]:
    got: list[KeyPress] = []

    def enough() -> bool:
        got.extend(call.take_keys())
        return len(got) >= n

    wait_until(enough, timeout, f"{n} key(s)")
    return got


def answered(phone: PyVoipPhone, behaviour: str) -> PyVoipCall:
    call = phone.dial(NUMBERS[behaviour])
    wait_until(lambda: call.state in (LineState.ANSWERED, LineState.ENDED), 10, "the answer")
    assert call.state is LineState.ANSWERED
    call.play(bytes([128]) * 8000 * 10)  # we talk while the citizen presses
    return call


@pytest.mark.parametrize(
    ("behaviour", "expected"),
    [
        ("pt96:7", [KeyPress("7", KeySource.RFC4733)]),
        ("press:4", [KeyPress("4", KeySource.RFC4733)]),
        ("info:5", [KeyPress("5", KeySource.SIP_INFO)]),
        ("info_dtmf:#", [KeyPress("#", KeySource.SIP_INFO)]),
        ("inband:19*0", [KeyPress(k, KeySource.INBAND) for k in "19*0"]),
        ("inband_pcma:28#", [KeyPress(k, KeySource.INBAND) for k in "28#"]),
    ],
    ids=[
        "rfc4733-pt96",
        "rfc4733-pt101",
        "info-dtmf-relay",
        "info-dtmf",
        "inband-tones",
        "inband-tones-alaw",
    ],
)
def test_keys_arrive_by_every_path(
    phone: PyVoipPhone,
    citizens: dict[str, SippCitizen],
    behaviour: str,
    expected: list[KeyPress],
) -> None:
    call = answered(phone, behaviour)
    assert call.codec == ("PCMA" if "pcma" in behaviour else "PCMU")  # as the citizen answered
    assert keys_of(call, len(expected), 8) == expected
    call.hangup()
    if behaviour.startswith("info"):
        # SIPp waited for our 200 to its INFO (a missing answer would be retransmitted)
        wait_until(lambda: "SIP/2.0 200 OK" in citizens[behaviour].messages(), 3, "200 to INFO")
    # Nothing else arrived until the call ended: each key the peer sent counts once (an
    # RFC 4733 end packet is sent three times, an INFO retransmitted while unanswered).
    assert call.take_keys() == []


def test_hold_and_unhold_reinvites_are_answered_200_and_the_call_goes_on(
    phone: PyVoipPhone, citizens: dict[str, SippCitizen]
) -> None:
    call = answered(phone, "hold_unhold:3")
    assert keys_of(call, 1, 10) == [KeyPress("3", KeySource.RFC4733)]
    assert call.state is LineState.ANSWERED
    call.hangup()
    trace = citizens["hold_unhold:3"].messages()
    # our answers to hold (sendonly -> recvonly) and unhold (sendrecv)
    assert "a=recvonly" in trace and "CSeq: 3 INVITE" in trace and "CSeq: 4 INVITE" in trace
    assert "488 Not Acceptable" not in trace


def test_a_reinvite_to_alaw_is_answered_200_pcma_and_the_call_goes_on(
    phone: PyVoipPhone, citizens: dict[str, SippCitizen]
) -> None:
    call = answered(phone, "to_pcma:6")
    assert call.codec == "PCMU"
    assert keys_of(call, 1, 10) == [KeyPress("6", KeySource.RFC4733)]  # sent after our 200
    assert (call.state, call.codec) == (LineState.ANSWERED, "PCMA")
    call.hangup()
    trace = citizens["to_pcma:6"].messages()
    # our 200 to the re-INVITE, as SIPp got it
    (answer,) = [m for m in trace.split("-" * 40)
                 if "received" in m and "SIP/2.0 200" in m and "CSeq: 3 INVITE" in m]  # fmt: skip
    assert "RTP/AVP 8 101" in answer and "a=rtpmap:8 PCMA/8000" in answer
    assert "PCMU" not in answer and "488 Not Acceptable" not in trace


def test_183_with_early_media_then_answer(
    phone: PyVoipPhone, citizens: dict[str, SippCitizen]
) -> None:
    call = phone.dial(NUMBERS["early:8"])
    wait_until(lambda: call.state is not LineState.DIALING, 10, "183")
    assert call.state is LineState.RINGING  # early media is not an answer
    wait_until(lambda: call.state is not LineState.RINGING, 10, "200")
    assert call.state is LineState.ANSWERED
    assert keys_of(call, 1, 8) == [KeyPress("8", KeySource.RFC4733)]
    call.hangup()


def test_rtp_from_the_far_end_keeps_media_idle_low(
    phone: PyVoipPhone, citizens: dict[str, SippCitizen]
) -> None:
    call = answered(phone, "info:5")  # SIPp echoes the audio we send
    started = time.monotonic()
    while time.monotonic() - started < 2.0:  # the scenario: 2 s of echo, checked throughout
        assert call.media_idle_s < 0.5
        time.sleep(0.05)
    call.stop_audio()  # nothing to echo now (pyVoIP sends silence, which is echoed too)
    call.hangup()
    assert call.media_idle_s == 0.0  # ended: nothing to wait for


def test_a_far_end_that_sends_no_rtp_ends_the_call(
    phone: PyVoipPhone, citizens: dict[str, SippCitizen], tmp_path: Path
) -> None:
    prompts = PromptLibrary(Path(__file__).resolve().parent.parent / "prompts",
                            tmp_path / "cache", ["ru", "be"])  # fmt: skip
    settings = RunnerSettings(
        ring_timeout_s=10, max_call_s=60, flow=FlowSettings(30, 0), media_timeout_s=3.0
    )
    got: list[RecordOutcome] = []

    def sink(rec: RecordOutcome, answered_at: datetime | None) -> None:
        got.append(rec)

    plan = CallPlan(NUMBERS["mute"], (RequestInfo("s", "12"),), "ru")
    report = run_call(phone, plan, prompts, settings, SYSTEM_CLOCK, sink)
    assert got == [RecordOutcome("s", Outcome.NO_INPUT, None, "no_media")]
    assert report.ended_by is EndedBy.LOCAL_HANGUP
    assert report.answered_at is not None and report.ended_at is not None
    # The silence is timed from the 200 OK; answered_at is taken when the runner next polls
    # (a few ms later on a loaded machine), so the lower bound allows for that poll.
    assert 2.5 <= (report.ended_at - report.answered_at).total_seconds() < 5.0
    wait_until(lambda: "BYE sip:" in citizens["mute"].messages(), 3, "our BYE at SIPp")
