"""The REFER client (RFC 3515) as a pure state machine: messages and an injected clock in,
messages and one result out."""

from __future__ import annotations

import pytest

from ivr.sip import sip_messages as sm
from ivr.sip.refer import T2, TIMER_F, ReferClient, ReferResult, sipfrag_status

DIALOG = sm.Dialog(
    call_id="c-1@127.0.0.1",
    local="<sip:dialer@127.0.0.1>;tag=ours",
    remote="<sip:375291200001@127.0.0.1>;tag=theirs",
    remote_target="sip:375291200001@127.0.0.1:5090",
    route_set=["<sip:127.0.0.1:5060;lr>"],
    invite_cseq=2,
)
TARGET = "sip:operator@127.0.0.1"


def client(notify_timeout_s: float = 60.0) -> ReferClient:
    return ReferClient(DIALOG, TARGET, ("127.0.0.1", 5062), "sip:dialer@127.0.0.1:5062",
                       notify_timeout_s)  # fmt: skip


def response(status: int, reason: str, cseq: int = 3) -> sm.SipMessage:
    return sm.parse(
        f"SIP/2.0 {status} {reason}\r\nVia: SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bKx\r\n"
        f"From: {DIALOG.local}\r\nTo: {DIALOG.remote}\r\nCall-ID: {DIALOG.call_id}\r\n"
        f"CSeq: {cseq} REFER\r\nContent-Length: 0\r\n\r\n".encode()
    )


def notify(frag: str, state: str = "active;expires=60", cseq: int = 1) -> sm.SipMessage:
    body = frag.encode()
    return sm.parse(
        f"NOTIFY sip:dialer@127.0.0.1:5062 SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.1:5090;branch=z9hG4bKn{cseq}\r\n"
        f"From: {DIALOG.remote}\r\nTo: {DIALOG.local}\r\nCall-ID: {DIALOG.call_id}\r\n"
        f"CSeq: {cseq} NOTIFY\r\nEvent: refer\r\nSubscription-State: {state}\r\n"
        f"Content-Type: message/sipfrag;version=2.0\r\nContent-Length: {len(body)}\r\n\r\n".encode()
        + body
    )


def test_the_refer_is_in_the_dialog_and_names_the_target() -> None:
    c = client()
    msg = sm.parse(c.start(0.0))
    assert msg.start_line == f"REFER {DIALOG.remote_target} SIP/2.0"
    assert msg.cseq == (3, "REFER") and c.bye_cseq == 4  # above the INVITE's, BYE above it
    assert msg.header("refer-to") == f"<{TARGET}>"
    assert msg.all("route") == DIALOG.route_set
    assert msg.tag("from") == "ours" and msg.tag("to") == "theirs"
    assert msg.header("contact") == "<sip:dialer@127.0.0.1:5062>"


def test_accepted_then_notify_200_is_a_transfer_and_each_notify_gets_200() -> None:
    c = client()
    c.start(0.0)
    c.on_response(response(202, "Accepted"), 0.1)
    assert c.result is None and c.accepted
    ok = sm.parse(c.on_notify(notify("SIP/2.0 100 Trying"), 0.2))
    assert ok.status == 200 and ok.cseq == (1, "NOTIFY") and c.result is None
    c.on_notify(notify("SIP/2.0 200 OK", "terminated;reason=noresource", 2), 3.0)
    assert c.result == ReferResult(True, "NOTIFY 200 OK")
    c.on_notify(notify("SIP/2.0 503 Service Unavailable", cseq=3), 4.0)
    assert c.result == ReferResult(True, "NOTIFY 200 OK")  # settled once


@pytest.mark.parametrize(
    ("feed", "detail"),
    [
        (lambda c: c.on_response(response(603, "Declined"), 0.1), "REFER 603 Declined"),
        (lambda c: c.on_response(response(405, "Method Not Allowed"), 0.1),
         "REFER 405 Method Not Allowed"),
        (lambda c: (c.on_response(response(202, "Accepted"), 0.1),
                    c.on_notify(notify("SIP/2.0 486 Busy Here", "terminated"), 5.0)),
         "NOTIFY 486 Busy Here"),
        (lambda c: (c.on_response(response(202, "Accepted"), 0.1),
                    c.on_notify(notify("", "terminated;reason=timeout"), 5.0)),
         "subscription terminated without a final status"),
        (lambda c: (c.on_response(response(202, "Accepted"), 0.1), c.tick(61.0)),
         "no final NOTIFY"),
    ],
    ids=["603", "405", "notify-486", "terminated-empty", "no-final-notify"],
)  # fmt: skip
def test_refusals_and_failures(feed: object, detail: str) -> None:
    c = client()
    c.start(0.0)
    feed(c)  # type: ignore[operator]
    assert c.result == ReferResult(False, detail)


def test_refer_is_sent_again_until_answered_and_given_up_at_timer_f() -> None:
    c = client()
    first = c.start(0.0)
    times = [t / 10 for t in range(0, int(TIMER_F * 10) + 20)]
    sent = [t for t in times if c.tick(t)]
    assert sent[:3] == [0.5, 1.5, 3.5]  # T1 doubling
    gaps = [b - a for a, b in zip(sent, sent[1:], strict=False)]
    assert max(gaps) == pytest.approx(T2)
    assert c.result == ReferResult(False, "REFER timeout")
    assert c.tick(100.0) == [] and first


def test_a_provisional_changes_nothing_and_a_notify_may_overtake_the_202() -> None:
    c = client()
    c.start(0.0)
    c.on_response(response(100, "Trying"), 0.1)
    assert not c.accepted
    c.on_notify(notify("SIP/2.0 100 Trying"), 0.2)
    assert c.accepted and c.tick(10.0) == []  # no retransmission once accepted
    assert c.matches(response(202, "Accepted")) and not c.matches(response(202, "x", cseq=2))


def test_sipfrag_status() -> None:
    assert sipfrag_status(b"SIP/2.0 200 OK\r\n") == (200, "OK")
    assert sipfrag_status(b"SIP/2.0 180 Ringing") == (180, "Ringing")
    assert sipfrag_status(b"garbage") is None
