"""The sans-I/O SIP core on an injected clock: every timer and transaction path in
milliseconds, no socket, no thread, no sleep (the real-peer tests stay in
tests/test_sip_*_peers.py)."""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterable

import pytest

from ivr.core.policy import disposition
from ivr.sip import digest, sip_messages as sm
from ivr.sip.api import EndedBy
from ivr.sip.core import ENDED_RETENTION, SipCore
from ivr.sip.sdp import G711, sdp_offer
from ivr.sip.sip_events import (
    Answered,
    DialogRequest,
    DialogResponse,
    Ended,
    KeyReceived,
    MediaChanged,
    Output,
    Ringing,
    Send,
)
from ivr.sip.transaction import CANCEL_GRACE, TIMER_B, TIMER_F, Credentials

PROXY = ("127.0.0.1", 5060)
FAR = ("127.0.0.1", 7000)  # the far end's Contact in its 2xx
STRANGER = ("127.0.0.1", 6666)
SDP = (
    "v=0\r\no=far 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    "m=audio {port} RTP/AVP {pts} 101\r\na=rtpmap:101 telephone-event/8000\r\n{extra}"
)


def new_core() -> SipCore:
    return SipCore(PROXY, Credentials("dialer", "secret"), ("127.0.0.1", 5062))


def new_invite() -> sm.InviteRequest:
    return sm.InviteRequest(
        ruri="sip:375290000001@127.0.0.1", via_host="127.0.0.1", via_port=5062,
        branch=sm.new_branch(), from_hdr="<sip:dialer@127.0.0.1>;tag=ours",
        to_hdr="<sip:375290000001@127.0.0.1>", call_id=sm.new_call_id("t"), cseq=1,
        contact="sip:dialer@127.0.0.1:5062", sdp=sdp_offer("127.0.0.1", 30000, 1000),
    )  # fmt: skip


def answer(
    request: bytes, status: int, reason: str = "X", extra: str = "", body: str = ""
) -> bytes:
    """The far end's response to ``request`` (To-tag ``far``; a 2xx names its Contact)."""
    head = sm.build_response(sm.parse(request), status, reason, to_tag="far").decode()
    head = head.removesuffix("Content-Length: 0\r\n\r\n")
    if 200 <= status < 300 and request.startswith(b"INVITE"):
        extra += f"Contact: <sip:far@{FAR[0]}:{FAR[1]}>\r\n"
    if body:
        extra += "Content-Type: application/sdp\r\n"
    return f"{head}{extra}Content-Length: {len(body)}\r\n\r\n{body}".encode()


def sent(outputs: Iterable[Output]) -> list[sm.SipMessage]:
    return [sm.parse(o.data) for o in outputs if isinstance(o, Send)]


def events(outputs: Iterable[Output]) -> list[Output]:
    return [o for o in outputs if not isinstance(o, Send)]


def methods(outputs: Iterable[Output]) -> list[str]:
    return [m.method or str(m.status) for m in sent(outputs)]


def run(core: SipCore, start: float, end: float, step: float = 0.01) -> list[tuple[float, Output]]:
    """Tick the core every ``step`` from ``start`` to ``end``: (time, output) pairs."""
    out: list[tuple[float, Output]] = []
    for i in range(round((end - start) / step) + 1):
        now = round(start + i * step, 6)
        out += [(now, o) for o in core.tick(now)]
    return out


def dialing() -> tuple[SipCore, bytes]:
    core, invite = new_core(), new_invite()
    (first,) = core.invite(invite, 30000, 0.0)
    assert isinstance(first, Send) and first.target is None  # to the proxy
    return core, first.data


def answered() -> tuple[SipCore, bytes, str]:
    core, invite = dialing()
    core.receive(answer(invite, 180, "Ringing"), PROXY, 0.1)
    out = core.receive(answer(invite, 200, "OK", body=SDP.format(port=7002, pts="0", extra="")),
                       PROXY, 0.2)  # fmt: skip
    assert methods(out) == ["ACK"] and isinstance(events(out)[0], Answered)
    return core, invite, sm.parse(invite).call_id


def in_dialog(call_id: str, method: str, cseq: int = 5, from_tag: str = "far",
              to_tag: str = "ours", ctype: str = "", body: str = "") -> bytes:  # fmt: skip
    extra = f"Content-Type: {ctype}\r\n" if ctype else ""
    return (
        f"{method} sip:dialer@127.0.0.1:5062 SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP {FAR[0]}:{FAR[1]};branch=z9hG4bK{method}{cseq}\r\n"
        f"From: <sip:375290000001@127.0.0.1>;tag={from_tag}\r\n"
        f"To: <sip:dialer@127.0.0.1>;tag={to_tag}\r\nCall-ID: {call_id}\r\n"
        f"CSeq: {cseq} {method}\r\n{extra}Content-Length: {len(body)}\r\n\r\n{body}"
    ).encode()


def options_from(via: str, call_id: str) -> bytes:
    return (
        f"OPTIONS sip:dialer@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {via};branch=z9hG4bKx\r\n"
        f"From: <sip:p@127.0.0.1>;tag=1\r\nTo: <sip:dialer@127.0.0.1>\r\n"
        f"Call-ID: {call_id}\r\nCSeq: 1 OPTIONS\r\n\r\n"
    ).encode()


# ---------------------------------------------------------------- INVITE client transaction
def test_timer_a_doubles_until_timer_b_ends_the_call_as_no_response() -> None:
    core, _ = dialing()
    timeline = run(core, 0.0, TIMER_B + 1)
    resent = [t for t, o in timeline if isinstance(o, Send)]
    assert resent == [0.5, 1.5, 3.5, 7.5, 15.5, 31.5]  # T1, doubling (RFC 3261 17.1.1.2)
    ended = [(t, o) for t, o in timeline if isinstance(o, Ended)]
    assert [(t, o.by, o.status) for t, o in ended] == [(TIMER_B, EndedBy.NO_RESPONSE, None)]
    assert disposition(False, None, EndedBy.NO_RESPONSE) == "failed"  # a trunk fault, as before


@pytest.mark.parametrize("status", [100, 180, 183], ids=["trying", "ringing", "progress"])
def test_a_provisional_stops_timer_a_and_b(status: int) -> None:
    core, invite = dialing()
    out = core.receive(answer(invite, status), PROXY, 0.2)
    assert [type(e) for e in events(out)] == ([Ringing] if status >= 180 else [])
    assert run(core, 0.2, 60.0, step=0.1) == []  # no retransmission, no timeout: ringing


def test_ringing_after_trying_is_reported_once() -> None:
    core, invite = dialing()
    core.receive(answer(invite, 100), PROXY, 0.1)
    got = [events(core.receive(answer(invite, s), PROXY, 0.2)) for s in (180, 183, 180)]
    assert [len(e) for e in got] == [1, 0, 0]


FINALS = [
    ("moved", 302, "failed"), ("not-found", 404, "invalid_number"),
    ("unavailable", 480, "no_answer"), ("busy", 486, "busy"), ("terminated", 487, "no_answer"),
    ("error", 500, "failed"), ("overload", 503, "failed"), ("decline", 603, "declined"),
]  # fmt: skip


@pytest.mark.parametrize(("status", "disp"), [f[1:] for f in FINALS], ids=[f[0] for f in FINALS])
def test_every_final_non_2xx_is_acked_every_copy_and_ends_the_call_once(
    status: int, disp: str
) -> None:
    core, invite = dialing()
    first = core.receive(answer(invite, status, "Nope", "Reason: Q.850;cause=17\r\n"), PROXY, 0.3)
    (ack,) = sent(first)
    req = sm.parse(invite)
    assert ack.method == "ACK" and ack.all("via") == req.all("via")  # RFC 3261 17.1.1.3
    assert ack.tag("to") == "far" and ack.cseq == (1, "ACK")
    (ended,) = events(first)
    assert ended == Ended(req.call_id, EndedBy.REMOTE_REJECT, status, "Nope (Q.850;cause=17)")
    assert disposition(False, status, EndedBy.REMOTE_REJECT) == disp
    again = core.receive(answer(invite, status, "Nope"), PROXY, 1.0)  # a retransmission
    assert methods(again) == ["ACK"] and events(again) == []
    assert run(core, 1.0, 10.0, step=0.1) == []  # no INVITE retransmission after a final


def test_a_call_is_forgotten_after_the_retention_not_before() -> None:
    core, invite = dialing()
    core.receive(answer(invite, 486), PROXY, 0.3)
    run(core, 0.3, ENDED_RETENTION, step=1.0)
    assert methods(core.receive(answer(invite, 486), PROXY, ENDED_RETENTION)) == ["ACK"]
    core.tick(ENDED_RETENTION + 0.5)
    assert core.calls == {}


# ---------------------------------------------------------------- digest
@pytest.mark.parametrize(
    ("status", "challenge", "header"),
    [
        (401, 'WWW-Authenticate: Digest realm="lab", nonce="n1", qop="auth"\r\n', "authorization"),
        (407, 'Proxy-Authenticate: Digest realm="lab", nonce="n1"\r\n', "proxy-authorization"),
    ],
    ids=["401-qop", "407"],
)
def test_a_challenge_is_answered_once_with_the_digest(
    status: int, challenge: str, header: str
) -> None:
    core, invite = dialing()
    out = core.receive(answer(invite, status, "Auth", challenge), PROXY, 0.1)
    ack, again = sent(out)
    first = sm.parse(invite)
    assert ack.method == "ACK" and events(out) == []
    assert (again.call_id, again.tag("from")) == (first.call_id, first.tag("from"))
    assert again.cseq == (2, "INVITE") and again.all("via") != first.all("via")
    auth = digest.parse_challenge(again.header(header) or "")
    assert auth["uri"] == "sip:375290000001@127.0.0.1" and auth["username"] == "dialer"
    # the retried INVITE has its own Timer A from now
    assert [t for t, o in run(core, 0.1, 2.0) if isinstance(o, Send)] == [0.6, 1.6]
    # a retransmitted final of the first INVITE is ACKed with the first INVITE's branch
    (old_ack,) = sent(core.receive(answer(invite, status, "Auth", challenge), PROXY, 2.0))
    assert old_ack.all("via") == first.all("via") and old_ack.cseq == (1, "ACK")
    # a second challenge ends the call: no endless retry
    out = core.receive(answer(again.raw, status, "Auth", challenge), PROXY, 2.1)
    assert methods(out) == ["ACK"]
    assert [(e.by, e.status) for e in events(out) if isinstance(e, Ended)] == [
        (EndedBy.REMOTE_REJECT, status)
    ]


# ---------------------------------------------------------------- CANCEL
def test_cancel_after_a_provisional_goes_at_once_and_the_487_ends_the_call() -> None:
    core, invite = dialing()
    core.receive(answer(invite, 180), PROXY, 0.1)
    (cancel,) = sent(core.cancel(sm.parse(invite).call_id, 1.0))
    req = sm.parse(invite)
    assert cancel.method == "CANCEL" and cancel.all("via") == req.all("via")
    assert cancel.cseq == (1, "CANCEL")
    assert core.receive(answer(cancel.raw, 200, "OK"), PROXY, 1.05) == []
    out = core.receive(answer(invite, 487, "Request Terminated"), PROXY, 1.1)
    assert methods(out) == ["ACK"]
    assert [(e.by, e.status) for e in events(out)] == [(EndedBy.LOCAL_CANCEL, 487)]
    assert run(core, 1.1, 10.0) == []  # the CANCEL was answered: not sent again


def test_cancel_before_any_provisional_waits_for_one_rfc3261_9_1() -> None:
    core, invite = dialing()
    call_id = sm.parse(invite).call_id
    assert core.cancel(call_id, 0.1) == []  # nothing to cancel on the wire yet
    assert methods(core.tick(0.5)) == ["INVITE"]  # Timer A still runs
    out = core.receive(answer(invite, 100), PROXY, 0.6)
    assert methods(out) == ["CANCEL"]


def test_a_cancel_nobody_answers_is_sent_again_and_the_call_ends_after_the_grace() -> None:
    core, invite = dialing()
    core.receive(answer(invite, 180), PROXY, 0.1)
    core.cancel(sm.parse(invite).call_id, 1.0)
    timeline = run(core, 1.0, 1.0 + CANCEL_GRACE + 1)
    assert [t for t, o in timeline if isinstance(o, Send)] == [1.5, 2.5, 4.5]  # Timer E
    ends = [(t, o.by, o.status) for t, o in timeline if isinstance(o, Ended)]
    assert ends == [(1.0 + CANCEL_GRACE, EndedBy.LOCAL_CANCEL, None)]


def test_cancel_before_any_response_ends_after_the_grace_without_a_cancel() -> None:
    core, invite = dialing()
    core.cancel(sm.parse(invite).call_id, 0.1)
    timeline = run(core, 0.1, 0.1 + CANCEL_GRACE + 0.5)
    assert {sm.parse(o.data).method for _, o in timeline if isinstance(o, Send)} == {"INVITE"}
    assert [o.by for _, o in timeline if isinstance(o, Ended)] == [EndedBy.LOCAL_CANCEL]


@pytest.mark.parametrize("cancel_answered", [True, False], ids=["cancel-200", "cancel-unanswered"])
def test_a_200_crossing_our_cancel_is_acked_byed_and_unanswered(cancel_answered: bool) -> None:
    core, invite = dialing()
    call_id = sm.parse(invite).call_id
    core.receive(answer(invite, 180), PROXY, 0.1)
    (cancel,) = sent(core.cancel(call_id, 1.0))
    if cancel_answered:
        core.receive(answer(cancel.raw, 200, "OK"), PROXY, 1.01)
    out = core.receive(answer(invite, 200, "OK", body=SDP.format(port=7002, pts="0", extra="")),
                       PROXY, 1.02)  # fmt: skip
    ack, bye = sent(out)
    assert ack.start_line == f"ACK sip:far@{FAR[0]}:{FAR[1]} SIP/2.0" and ack.tag("to") == "far"
    assert bye.method == "BYE" and bye.cseq == (2, "BYE")
    (ended,) = events(out)  # no Answered: nobody heard anything
    assert isinstance(ended, Ended) and (ended.by, ended.status) == (EndedBy.LOCAL_CANCEL, 200)
    assert disposition(False, ended.status, ended.by) == "no_answer"
    # the BYE goes again until answered, the 2xx's retransmission is ACKed again
    resent = sorted(methods(core.tick(1.52)))
    assert resent == (["BYE"] if cancel_answered else ["BYE", "CANCEL"])
    again = core.receive(answer(invite, 200, "OK"), PROXY, 1.6)
    assert methods(again) == ["ACK"] and events(again) == []
    core.receive(answer(bye.raw, 200, "OK"), PROXY, 1.7)
    assert "BYE" not in methods(o for _, o in run(core, 1.7, 10.0))


# ---------------------------------------------------------------- non-INVITE (BYE) and dialog
def test_our_bye_goes_again_timer_e_until_answered_or_timer_f() -> None:
    core, _, call_id = answered()
    out = core.hangup(call_id, 1.0)
    assert methods(out) == ["BYE"] and [type(e) for e in events(out)] == [Ended]
    timeline = run(core, 1.0, 1.0 + TIMER_F + 1)
    times = [t for t, o in timeline if isinstance(o, Send)]
    assert times[:6] == [1.5, 2.5, 4.5, 8.5, 12.5, 16.5]  # T1 doubling to T2
    assert max(times) < 1.0 + TIMER_F
    assert core.hangup(call_id, 40.0) == []  # once ended, never again


def test_a_provisional_to_our_bye_slows_it_to_t2_and_its_200_stops_it() -> None:
    core, _, call_id = answered()
    (bye,) = sent(core.hangup(call_id, 1.0))
    core.receive(answer(bye.raw, 100, "Trying"), PROXY, 1.1)
    assert [t for t, o in run(core, 1.1, 6.0) if isinstance(o, Send)] == [1.5, 5.5]
    core.receive(answer(bye.raw, 200, "OK"), PROXY, 6.0)
    assert run(core, 6.0, 20.0, step=0.1) == []


@pytest.mark.parametrize(
    ("source", "from_tag", "to_tag", "accepted"),
    [
        (PROXY, "far", "ours", True),
        (FAR, "far", "ours", True),
        (STRANGER, "far", "ours", False),
        (PROXY, "forged", "ours", False),
        (PROXY, "far", "other", False),
        (PROXY, "far", "", False),
    ],
    ids=["proxy", "contact", "stranger", "wrong-from-tag", "wrong-to-tag", "no-to-tag"],
)
def test_an_in_dialog_bye_is_checked_against_tags_and_source(
    source: tuple[str, int], from_tag: str, to_tag: str, accepted: bool
) -> None:
    core, _, call_id = answered()
    out = core.receive(in_dialog(call_id, "BYE", from_tag=from_tag, to_tag=to_tag), source, 1.0)
    if accepted:
        assert [(m.status, o.target) for m, o in zip(sent(out), out, strict=False)] == [
            (200, source)
        ]
        assert [type(e) for e in events(out)] == [Ended]
    elif source == STRANGER:
        assert out == []  # dropped: not even a response to a stranger
    else:
        assert [m.status for m in sent(out)] == [481] and events(out) == []


def test_info_keys_in_the_dialog_and_other_info_refused() -> None:
    core, _, call_id = answered()
    relay = in_dialog(call_id, "INFO", 6, ctype="application/dtmf-relay", body="Signal=7\r\n")
    out = core.receive(relay, PROXY, 1.0)
    assert [m.status for m in sent(out)] == [200] and events(out) == [KeyReceived(call_id, "7")]
    plain = in_dialog(call_id, "INFO", 7, ctype="application/dtmf", body="#")
    assert events(core.receive(plain, FAR, 1.1)) == [KeyReceived(call_id, "#")]
    other = in_dialog(call_id, "INFO", 8, ctype="text/plain", body="hello")
    out = core.receive(other, PROXY, 1.2)
    assert [m.status for m in sent(out)] == [415] and events(out) == []
    forged = in_dialog(call_id, "INFO", 9, from_tag="x", ctype="application/dtmf", body="9")
    assert events(core.receive(forged, PROXY, 1.3)) == []


# ---------------------------------------------------------------- re-INVITE
REINVITES = [
    ("hold-sendonly", SDP.format(port=7002, pts="0", extra="a=sendonly\r\n"), "pcmu", True),
    (
        "hold-zero-ip",
        SDP.format(port=7002, pts="0", extra="").replace(
            "IN IP4 127.0.0.1\r\nt", "IN IP4 0.0.0.0\r\nt"
        ),
        "pcmu",
        True,
    ),  # noqa: E501
    ("new-address", SDP.format(port=7010, pts="0", extra=""), "pcmu", False),
    ("to-alaw", SDP.format(port=7002, pts="8", extra=""), "pcma", False),
]


@pytest.mark.parametrize(
    ("sdp", "codec", "hold"), [r[1:] for r in REINVITES], ids=[r[0] for r in REINVITES]
)
def test_a_reinvite_is_answered_200_and_sent_again_until_its_ack(
    sdp: str, codec: str, hold: bool
) -> None:
    core, _, call_id = answered()
    reinvite = in_dialog(call_id, "INVITE", 10, ctype="application/sdp", body=sdp)
    out = core.receive(reinvite, FAR, 2.0)
    (ok,) = sent(out)
    assert ok.status == 200 and f"RTP/AVP {G711[codec]} 101" in ok.body.decode()
    (changed,) = events(out)
    assert isinstance(changed, MediaChanged) and (changed.codec, changed.hold) == (codec, hold)
    timeline = run(core, 2.0, 10.0)
    assert [t for t, o in timeline if isinstance(o, Send)] == [2.5, 3.5, 5.5, 9.5]
    assert all(o.target == FAR for _, o in timeline if isinstance(o, Send))
    again = core.receive(reinvite, FAR, 10.0)  # a retransmitted re-INVITE: the same 200
    assert [o.data for o in again if isinstance(o, Send)] == [ok.raw] and events(again) == []
    assert core.receive(in_dialog(call_id, "ACK", 10), FAR, 10.1) == []
    assert run(core, 10.1, 40.0, step=0.1) == []  # ACKed: quiet


def test_an_unacked_reinvite_200_is_given_up_after_64_t1() -> None:
    core, _, call_id = answered()
    sdp = SDP.format(port=7002, pts="0", extra="")
    core.receive(in_dialog(call_id, "INVITE", 10, ctype="application/sdp", body=sdp), FAR, 2.0)
    times = [t for t, o in run(core, 2.0, 2.0 + TIMER_F + 5, step=0.05) if isinstance(o, Send)]
    assert times and max(times) < 2.0 + TIMER_F


def test_a_reinvite_without_g711_gets_488_and_the_call_goes_on() -> None:
    core, _, call_id = answered()
    sdp = SDP.format(port=7002, pts="18", extra="a=rtpmap:18 G729/8000\r\n")
    out = core.receive(
        in_dialog(call_id, "INVITE", 10, ctype="application/sdp", body=sdp), FAR, 2.0
    )
    assert [m.status for m in sent(out)] == [488] and events(out) == []


# ---------------------------------------------------------------- a request of ours (REFER)
def test_an_in_dialog_request_gets_its_final_as_an_event_and_notify_is_handed_on() -> None:
    core, _, call_id = answered()
    cseq, out = core.request(call_id, "REFER", 1.0, ("Refer-To: <sip:operator@127.0.0.1>",))
    (refer,) = sent(out)
    assert refer.cseq == (cseq, "REFER") and refer.header("refer-to") == "<sip:operator@127.0.0.1>"
    assert refer.start_line.startswith(f"REFER sip:far@{FAR[0]}:{FAR[1]} ")
    got = core.receive(answer(refer.raw, 202, "Accepted"), PROXY, 1.1)
    assert [(e.method, e.status) for e in got if isinstance(e, DialogResponse)] == [("REFER", 202)]
    notify = in_dialog(call_id, "NOTIFY", 11, ctype="message/sipfrag", body="SIP/2.0 200 OK")
    out = core.receive(notify, PROXY, 2.0)
    assert [m.status for m in sent(out)] == [200]
    assert [type(e) for e in events(out)] == [DialogRequest]
    # a request nobody answers: Timer F gives it a 408
    _, out = core.request(call_id, "REFER", 3.0)
    late = [
        o for _, o in run(core, 3.0, 3.0 + TIMER_F + 1, step=0.1) if isinstance(o, DialogResponse)
    ]
    assert [(e.status, e.msg) for e in late] == [(408, None)]


# ---------------------------------------------------------------- out of dialog, trust
def test_out_of_dialog_requests_are_answered_to_their_source_never_their_via(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def no_dns(*_args: object) -> None:
        raise AssertionError("DNS lookup on the receive path")

    monkeypatch.setattr(socket, "gethostbyname", no_dns)
    monkeypatch.setattr(socket, "getaddrinfo", no_dns)
    core = new_core()
    options = options_from("victim.example.org:5099", "o1")
    out = core.receive(options, PROXY, 0.0)
    assert [(sm.parse(o.data).status, o.target) for o in out if isinstance(o, Send)] == [
        (200, PROXY)
    ]
    assert core.receive(options, STRANGER, 0.1) == []  # not the proxy: no answer at all
    for method, status in (
        ("INVITE", 486),
        ("BYE", 481),
        ("INFO", 481),
        ("CANCEL", 481),
        ("SUBSCRIBE", 405),
        ("ACK", None),
    ):  # noqa: E501
        req = options.replace(b"OPTIONS", method.encode())
        assert [m.status for m in sent(core.receive(req, PROXY, 0.2))] == (
            [status] if status else []
        )


def test_responses_not_from_the_proxy_are_dropped() -> None:
    core, invite = dialing()
    assert core.receive(answer(invite, 200, "OK", body="v=0\r\n"), STRANGER, 0.1) == []
    assert methods(core.tick(0.5)) == ["INVITE"]  # still calling


def test_malformed_datagrams_cost_one_rate_limited_line_and_no_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    core = new_core()
    bad = [
        b"",
        b"\x00" * 3,
        b"hello",
        b"SIP/2.0 200 OK\r\nCSeq: x\r\n\r\n",
        b"INVITE x SIP/2.0\r\n\r\n",
    ]
    with caplog.at_level(logging.WARNING, logger="ivr.sip.core"):
        for i, raw in enumerate(bad * 4):
            assert core.receive(raw, PROXY, i * 0.1) == []
        core.receive(b"junk", PROXY, 11.0)  # the next interval: one more line, with the count
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2 and not any(r.exc_info for r in caplog.records)
    assert "19 more like it" in lines[1]


# ---------------------------------------------------------------- REGISTER among other traffic
def test_a_refresh_survives_options_info_and_other_responses_interleaved() -> None:
    from ivr.sip.registration import Registration, RegState

    core = new_core()
    reg = Registration(server="127.0.0.1", port=5060, username="dialer", password="secret",
                       local_ip="127.0.0.1", local_port=5062, expires_s=20)  # fmt: skip
    (first,) = sent(core.register(reg, 0.0))
    core.receive(answer(first.raw, 200, "OK", "Expires: 20\r\n"), PROXY, 0.1)
    assert reg.state is RegState.REGISTERED
    (refresh,) = sent(core.tick(10.1))
    assert reg.state is RegState.REFRESHING
    noise = [
        options_from("127.0.0.1:5060", "o2"),
        in_dialog("unknown-call", "INFO", 4, ctype="application/dtmf", body="5"),
        answer(refresh.raw.replace(refresh.call_id.encode(), b"another-call"), 500, "Error"),
        answer(refresh.raw.replace(b"CSeq: 2 REGISTER", b"CSeq: 1 REGISTER"), 403, "Stale"),
        b"",
    ]
    for i, raw in enumerate(noise * 3):
        core.receive(raw, PROXY, 10.2 + i * 0.01)
    assert reg.state is RegState.REFRESHING and reg.failures == 0
    core.receive(answer(refresh.raw, 200, "OK", "Expires: 20\r\n"), PROXY, 10.5)
    assert reg.state is RegState.REGISTERED and reg.failures == 0


def test_answered_calls_with_nothing_pending_have_no_timer_until_a_command_gives_one() -> None:
    """Between timers ``tick`` looks at no call at all (hundreds of answered calls are free)."""
    core, _, call_id = answered()
    core.tick(0.3)
    assert core.next_wake() == float("inf")
    assert core.tick(1e6) == []
    out = core.hangup(call_id, 1e6)
    assert methods(out) == ["BYE"]
    assert methods(core.tick(1e6 + 0.5)) == ["BYE"]  # the command woke the timers


def test_a_blind_transfer_runs_its_refer_in_the_dialog_and_our_bye_is_numbered_above_it() -> None:
    core, _, call_id = answered()
    (refer,) = sent(core.transfer(call_id, "sip:operator@127.0.0.1", 1.0))
    assert refer.method == "REFER" and refer.cseq == (2, "REFER")
    assert refer.header("refer-to") == "<sip:operator@127.0.0.1>"
    assert core.transfer(call_id, "sip:other@127.0.0.1", 1.1) == []  # once a call
    assert methods(core.tick(1.5)) == ["REFER"]  # Timer E until its answer
    core.receive(answer(refer.raw, 202, "Accepted"), PROXY, 1.6)
    assert run(core, 1.6, 5.0) == []
    frag = in_dialog(call_id, "NOTIFY", 6, ctype="message/sipfrag", body="SIP/2.0 200 OK")
    out = core.receive(frag, FAR, 5.0)
    assert [(m.status, o.target) for m, o in zip(sent(out), out, strict=True)] == [(200, FAR)]
    dialog = core.dialog(call_id)
    assert dialog is not None and dialog.transfer_result is not None
    assert dialog.transfer_result.transferred
    (bye,) = sent(core.hangup(call_id, 5.1))
    assert bye.cseq == (3, "BYE")


def test_a_refer_nobody_answers_settles_as_failed_at_timer_f() -> None:
    core, _, call_id = answered()
    core.transfer(call_id, "sip:operator@127.0.0.1", 1.0)
    run(core, 1.0, 1.0 + TIMER_F + 1, step=0.1)
    dialog = core.dialog(call_id)
    assert dialog is not None and dialog.transfer_result is not None
    assert not dialog.transfer_result.transferred
