"""The media process boundary, with the real process and real sockets over loopback: keys,
comment audio and counters cross it; when it dies mid-call the call ends cleanly (as a call
whose media stopped) and the next call works; no media process outlives its users."""

from __future__ import annotations

import audioop
import logging
import os
import signal
import socket
import threading
from collections import OrderedDict
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pyVoIP import RTP

from ivr.campaign.call_runner import CallPlan, CallReport, RunnerSettings, run_call
from ivr.core.callflow import FlowSettings, RecordOutcome, RequestInfo
from ivr.core.clock import SYSTEM_CLOCK
from ivr.core.vocabulary import Outcome
from ivr.sip import media_client
from ivr.sip.api import EndedBy, KeySource, LineState, SipSettings
from ivr.sip.media_client import MEDIA
from ivr.sip.media_stream import FRAME, encode_frames
from ivr.sip.pyvoip_adapter import PyVoipPhone
from ivr.sip.remote_stream import RemoteStream
from lab.peer_process import find_free_udp_port
from lab.sipp_peer import SippCitizen
from prompts.library import PromptLibrary
from tests.helpers import media_processes, wait_until

ASSOC = {0: RTP.PayloadType.PCMU, 8: RTP.PayloadType.PCMA, 101: RTP.PayloadType.EVENT}
PROMPTS_ROOT = Path(__file__).resolve().parent.parent / "prompts"


def tone16(seconds: float, freq: float = 1000.0, level: float = 6000.0) -> bytes:
    t = np.arange(int(seconds * 8000)) / 8000
    return (np.sin(2 * np.pi * freq * t) * level).astype("<i2").tobytes()


def rtp(pt: int, payload: bytes, ts: int, seq: int) -> bytes:
    return bytes([0x80, pt]) + seq.to_bytes(2, "big") + ts.to_bytes(4, "big") + bytes(4) + payload


@pytest.fixture
def far_end() -> Iterator[socket.socket]:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(5)
        yield sock


def test_prompt_keys_comment_audio_and_counters_cross_the_process_boundary(
    far_end: socket.socket, caplog: pytest.LogCaptureFixture
) -> None:
    keys: list[tuple[str, KeySource]] = []
    MEDIA.acquire()
    pid = MEDIA.pid
    assert pid in media_processes()
    far_port = far_end.getsockname()[1]
    stream = RemoteStream(MEDIA, dict(ASSOC), "127.0.0.1", find_free_udp_port(), "127.0.0.1",
                          far_port, key_sink=lambda k, s: keys.append((k, s)))  # fmt: skip
    ours = ("127.0.0.1", stream.inPort)
    try:
        stream.start()
        prompt = tone16(0.2)
        stream.write_linear16(prompt)  # 10 frames, then silence
        sent = [far_end.recvfrom(2048) for _ in range(16)]
        assert {source for _, source in sent} == {ours}  # from the port our SDP offered
        payloads = [packet[12:] for packet, _ in sent]
        silence = b"\xff" * FRAME
        while payloads[0] == silence:  # the stream's clock may start before the play arrives
            del payloads[0]
        assert payloads[:10] == encode_frames(prompt, 2, "pcmu")
        assert payloads[10] == silence

        far_end.sendto(rtp(101, bytes([5, 10, 0, 160]), ts=1000, seq=1), ours)
        wait_until(lambda: keys == [("5", KeySource.RFC4733)], 3, "the key to cross")

        heard: list[bytes] = []
        stream.audio_sink = heard.append  # a comment: what the far end says, 16-bit
        frame = audioop.lin2ulaw(tone16(0.02, 440.0), 2)
        for n in range(2, 60):
            far_end.sendto(rtp(0, frame, ts=160 * n, seq=n), ours)
            if len(heard) >= 5:
                break
            far_end.recvfrom(2048)  # paced by our own packets: one frame per 20 ms
        wait_until(lambda: len(heard) >= 5, 3, "the comment's audio to cross")
        assert set(heard) == {audioop.ulaw2lin(frame, 2)}

        far_end.sendto(b"", ours)  # a runt: counted over there, the count seen here
        wait_until(lambda: stream.counters.runt == 1, 3, "the runt to be counted")
        assert stream.counters.received >= 6 and not stream.failed
        wait_until(lambda: "runt datagram" in caplog.text, 3, "the media process's log line")
    finally:
        stream.stop()
        MEDIA.release()
    wait_until(lambda: pid not in media_processes(), 5, "the media process to end")
    assert MEDIA.pid is None


@pytest.fixture
def citizen(tmp_path: Path) -> Iterator[SippCitizen]:
    with SippCitizen(tmp_path, "silent", []) as sipp:
        yield sipp


@pytest.fixture
def phone(citizen: SippCitizen) -> Iterator[PyVoipPhone]:
    before = media_processes()
    p = PyVoipPhone(
        SipSettings(
            server="127.0.0.1", port=citizen.sip_port, username="dialer", password="",
            local_ip="127.0.0.1", sip_port=find_free_udp_port(), rtp_port_low=27000,
            rtp_port_high=27400, register=False,
        )
    )  # fmt: skip
    p.start()
    yield p
    p.stop()
    wait_until(lambda: media_processes() <= before, 5, "no media process left behind")


def survey_call(phone: PyVoipPhone, tmp_path: Path, out: list[Any]) -> threading.Thread:
    prompts = PromptLibrary(PROMPTS_ROOT, tmp_path / "prompt-cache", ["ru"])
    plan = CallPlan("375290000001", (RequestInfo("s1", "4071"),), "ru")
    settings = RunnerSettings(ring_timeout_s=10, max_call_s=60,
                              flow=FlowSettings(input_timeout_s=60, max_repeats=0))  # fmt: skip

    def sink(rec: RecordOutcome, at: datetime | None) -> None:
        out.append(rec)

    def run() -> None:
        out.append(run_call(phone, plan, prompts, settings, SYSTEM_CLOCK, sink))

    thread = threading.Thread(target=run, name="test survey call")
    thread.start()
    return thread


@pytest.mark.peers
@pytest.mark.parametrize("restart_after_s", [0.0, 1e9], ids=["restarted-at-once", "on-next-call"])
def test_media_process_dying_mid_call_ends_it_cleanly_and_the_next_call_works(
    phone: PyVoipPhone,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    restart_after_s: float,
) -> None:
    """A process that served long enough is replaced at once; one that died young, when the
    next call needs it."""
    monkeypatch.setattr(media_client, "RESTART_AFTER_S", restart_after_s)
    caplog.set_level(logging.INFO)
    out: list[Any] = []
    thread = survey_call(phone, tmp_path, out)
    wait_until(lambda: phone.answered_calls() == 1, 10, "the call to be answered")
    killed = MEDIA.pid
    assert killed is not None
    os.kill(killed, signal.SIGKILL)
    thread.join(timeout=10)
    assert not thread.is_alive(), "the call did not end"
    (outcome,) = [o for o in out if isinstance(o, RecordOutcome)]
    (report,) = [r for r in out if isinstance(r, CallReport)]
    assert (outcome.outcome, outcome.reason) == (Outcome.NO_INPUT, "no_media")
    assert report.answered and report.ended_by is EndedBy.LOCAL_HANGUP
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "media process" in errors[0].getMessage()

    if restart_after_s == 0.0:
        wait_until(lambda: MEDIA.pid not in (None, killed), 10, "a new media process at once")
    call = phone.dial("375290000002")  # the next call: a new media process serves it
    wait_until(lambda: call.state is LineState.ANSWERED, 10, "the next call to be answered")
    call.play_linear16(tone16(1.0))
    wait_until(lambda: call.media_counters.received >= 10, 5, "the echo of our RTP")
    assert MEDIA.pid not in (None, killed) and call.media_idle_s < 2
    call.hangup()
    wait_until(lambda: call.state is LineState.ENDED, 5, "the hang-up")


def test_a_long_prompt_crosses_in_pieces_once_and_plays_whole() -> None:
    """The wire's side of a clip: pieces put back together, sent once for many plays."""
    from ivr.sip.media_client import MediaLink
    from ivr.sip.media_process import CLIP_PIECE, MediaServer

    prompt = tone16(5.0)  # 80000 bytes: two pieces
    assert len(prompt) > CLIP_PIECE
    sent: list[tuple[Any, ...]] = []
    link = MediaLink.__new__(MediaLink)  # its wire only: no process
    link.lock, link.clips = threading.Lock(), OrderedDict()
    link.send = lambda message, fds=None: sent.append(message) or True  # type: ignore[method-assign]
    for sid in (1, 2):
        link.play(sid, prompt, 2)
    assert [m[0] for m in sent] == ["clip", "clip", "play", "play"]
    server = MediaServer.__new__(MediaServer)
    server.clips, server._partial = {}, {}
    for message in sent[:2]:
        server.handle(message, [])
    assert server.clips[sent[2][2]] == (prompt, 2)
