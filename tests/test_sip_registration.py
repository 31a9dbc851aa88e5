"""The REGISTER state machine on an injected clock (no socket, no sleep): millisecond tests."""

from __future__ import annotations

import pytest

from ivr.sip import digest, sip_messages as sm
from ivr.sip.registration import Registration, RegState

CHALLENGE = 'WWW-Authenticate: Digest realm="lab", nonce="n1", qop="auth"\r\n'


def reg(expires: int = 60) -> Registration:
    return Registration(
        server="127.0.0.1", port=5060, username="dialer", password="secret",
        local_ip="127.0.0.1", local_port=5062, expires_s=expires, step_timeout_s=5.0,
    )  # fmt: skip


def answer(request: bytes, status: int, reason: str, extra: str = "") -> sm.SipMessage:
    req = sm.parse(request)
    head = sm.build_response(req, status, reason, to_tag="reg").decode()
    return sm.parse(head.replace("Content-Length: 0\r\n", extra + "Content-Length: 0\r\n").encode())


def registered(r: Registration, now: float = 0.0, grant: str = "") -> None:
    (first,) = r.start(now)
    (second,) = r.on_response(answer(first, 401, "Unauthorized", CHALLENGE), now)
    assert r.on_response(answer(second, 200, "OK", grant), now) == []
    assert r.state is RegState.REGISTERED
    assert [e.kind for e in r.take_events()] == ["registered"]


def test_challenge_is_answered_with_a_digest_over_the_request_uri() -> None:
    r = reg()
    (first,) = r.start(0.0)
    req = sm.parse(first)
    assert req.start_line == "REGISTER sip:127.0.0.1 SIP/2.0"
    assert req.header("expires") == "60"
    (second,) = r.on_response(answer(first, 401, "Unauthorized", CHALLENGE), 0.01)
    again = sm.parse(second)
    assert again.call_id == req.call_id and again.cseq == (req.cseq[0] + 1, "REGISTER")
    auth = digest.parse_challenge(again.header("authorization") or "")
    assert auth["uri"] == "sip:127.0.0.1" and auth["qop"] == "auth"
    assert auth["response"] == digest.digest_response(
        username="dialer", password="secret", realm="lab", nonce="n1", method="REGISTER",
        uri="sip:127.0.0.1", qop="auth", nc=auth["nc"], cnonce=auth["cnonce"],
    )  # fmt: skip
    r.on_response(answer(second, 200, "OK", "Expires: 40\r\n"), 0.02)
    assert (r.state, r.granted_s) == (RegState.REGISTERED, 40)
    assert [e.kind for e in r.take_events()] == ["registered"]


def test_refresh_at_half_the_grant_keeps_the_registration() -> None:
    r = reg()
    registered(r, grant="Contact: <sip:dialer@127.0.0.1:5062>;expires=20\r\n")
    assert r.tick(9.99) == []
    (refresh,) = r.tick(10.0)
    assert r.state is RegState.REFRESHING and r.registered
    r.on_response(answer(refresh, 200, "OK", "Expires: 20\r\n"), 10.05)
    assert r.state is RegState.REGISTERED and r.refresh_at == pytest.approx(20.05)
    assert r.take_events() == []  # a refresh is not news


def test_answers_are_matched_by_call_id_and_cseq_not_by_arrival() -> None:
    """pyVoIP took the next datagram as the answer: an OPTIONS during a refresh, a stale 200
    of an earlier REGISTER, or another dialog's 200 counted as failures (three stopped it)."""
    r = reg()
    registered(r, grant="Expires: 20\r\n")
    (refresh,) = r.tick(10.0)
    req = sm.parse(refresh)
    options = sm.parse(
        f"OPTIONS sip:dialer@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1;branch=z9hG4bKo\r\n"
        f"Call-ID: {req.call_id}\r\nCSeq: {req.cseq[0]} OPTIONS\r\n\r\n".encode()
    )
    stale = answer(refresh.replace(f"CSeq: {req.cseq[0]}".encode(), b"CSeq: 1"), 403, "No")
    other = answer(refresh.replace(req.call_id.encode(), b"someone-else"), 500, "Error")
    for msg in (options, stale, other):
        assert not r.matches(msg)
        assert r.on_response(msg, 10.1) == []
    assert r.state is RegState.REFRESHING
    r.on_response(answer(refresh, 200, "OK", "Expires: 20\r\n"), 10.2)
    assert r.state is RegState.REGISTERED and r.take_events() == []


def test_unanswered_register_is_retransmitted_then_lost_then_retried_with_backoff() -> None:
    r = reg()
    registered(r, grant="Expires: 20\r\n")
    (refresh,) = r.tick(10.0)
    sent = [t for t in (10.49, 10.5, 11.49, 11.5, 13.5, 14.99) if r.tick(t)]
    assert sent == [10.5, 11.5, 13.5]  # Timer E: 0.5 s, doubling
    assert r.tick(15.0) == [] and r.state is RegState.LOST and not r.registered
    (event,) = r.take_events()
    assert event.kind == "lost" and "no answer in 5 s" in event.detail
    assert r.lost_since == 15.0
    (retry,) = r.tick(16.0)  # 1 s later
    assert r.state is RegState.REGISTERING
    r.on_response(answer(retry, 503, "Service Unavailable"), 16.1)
    assert r.state is RegState.LOST and r.retry_at == pytest.approx(18.1)  # then 2 s
    assert r.tick(18.0) == []
    (retry,) = r.tick(18.1)
    r.on_response(answer(retry, 401, "Unauthorized", CHALLENGE), 18.2)
    assert r.state is RegState.REGISTERING
    [again] = [*r.tick(18.7)]  # the authorised REGISTER sent again after 0.5 s
    r.on_response(answer(again, 200, "OK"), 18.8)
    assert r.state is RegState.REGISTERED and r.lost_since is None and r.failures == 0
    assert [e.kind for e in r.take_events()] == ["lost", "registered"]  # the 503, then back


def test_backoff_doubles_to_a_minute() -> None:
    r = reg()
    r.start(0.0)
    now, gaps = 0.0, []
    for _ in range(9):
        while r.state is not RegState.LOST:
            now += 0.25
            r.tick(now)
        assert r.granted_s == 0  # never registered: every retry is a first one
        gaps.append(round((r.retry_at or 0) - now))
        now = r.retry_at or 0
        r.tick(now)
    assert gaps == [1, 2, 4, 8, 16, 32, 60, 60, 60]


def test_wrong_password_is_refused_after_one_digest() -> None:
    r = reg()
    (first,) = r.start(0.0)
    (second,) = r.on_response(answer(first, 401, "Unauthorized", CHALLENGE), 0.01)
    assert r.on_response(answer(second, 401, "Unauthorized", CHALLENGE), 0.02) == []
    assert r.state is RegState.LOST and r.last_error == "401 Unauthorized"


def test_interval_too_brief_asks_for_the_minimum() -> None:
    r = reg(expires=30)
    (first,) = r.start(0.0)
    (second,) = r.on_response(answer(first, 423, "Interval Too Brief", "Min-Expires: 120\r\n"), 0.1)
    assert sm.parse(second).header("expires") == "120"


def test_stop_deregisters_with_expires_zero() -> None:
    r = reg()
    registered(r)
    (bye,) = r.stop(1.0)
    assert sm.parse(bye).header("expires") == "0"
    assert r.state is RegState.UNREGISTERING
    r.on_response(answer(bye, 200, "OK"), 1.1)
    assert r.state is RegState.STOPPED
    assert r.tick(100.0) == []


def test_provisional_answer_slows_retransmission() -> None:
    r = reg()
    (first,) = r.start(0.0)
    r.on_response(answer(first, 100, "Trying"), 0.1)
    assert r.tick(0.6) == [] and r.tick(4.09) == [] and r.tick(4.1) == [first]
