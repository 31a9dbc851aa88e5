"""Pure SIP message builders and parser used by the pyVoIP adapter."""

from __future__ import annotations

import hashlib

import pytest

from ivr.sip import digest, sdp, sip_messages as sm

INVITE = sm.InviteRequest(
    ruri="sip:375291000001@127.0.0.1",
    via_host="127.0.0.1",
    via_port=5062,
    branch="z9hG4bKaaa",
    from_hdr="<sip:dialer@127.0.0.1>;tag=ourtag",
    to_hdr="<sip:375291000001@127.0.0.1>",
    call_id="cid-1@127.0.0.1",
    cseq=2,
    contact="sip:dialer@127.0.0.1:5062",
    sdp="v=0\r\n",
)

OK_200 = (
    b"SIP/2.0 200 OK\r\n"
    b"Via: SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bKaaa;rport=5062\r\n"
    b"Record-Route: <sip:10.0.0.1;lr>, <sip:10.0.0.2;lr>\r\n"
    b"Record-Route: <sip:10.0.0.3;lr;ftag=ourtag>\r\n"
    b"From: <sip:dialer@127.0.0.1>;tag=ourtag\r\n"
    b"To: <sip:375291000001@127.0.0.1>;tag=theirtag\r\n"
    b"i: cid-1@127.0.0.1\r\n"
    b"CSeq: 2 INVITE\r\n"
    b"Contact: <sip:375291000001@127.0.0.1:5070;transport=udp>\r\n"
    b"Content-Length: 0\r\n\r\n"
)


def header_lines(raw: bytes) -> list[str]:
    return raw.decode().split("\r\n\r\n")[0].split("\r\n")


def test_digest_matches_rfc2617_example() -> None:
    # RFC 2617 section 3.5
    assert (
        digest.digest_response(
            username="Mufasa",
            password="Circle Of Life",
            realm="testrealm@host.com",
            nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093",
            method="GET",
            uri="/dir/index.html",
            qop="auth",
            nc="00000001",
            cnonce="0a4f113b",
        )
        == "6629fae49393a05397450978507c4ef1"
    )


def test_digest_without_qop_is_rfc2069_form() -> None:
    def md5(text: str) -> str:
        return hashlib.md5(text.encode()).hexdigest()

    expected = md5(
        md5("dialer:127.0.0.1:secret") + ":n0nce:" + md5("INVITE:sip:375291000001@127.0.0.1")
    )
    got = digest.digest_response(
        username="dialer",
        password="secret",
        realm="127.0.0.1",
        nonce="n0nce",
        method="INVITE",
        uri="sip:375291000001@127.0.0.1",
    )
    assert got == expected


@pytest.mark.parametrize(
    ("challenge", "qop"),
    [
        ('Digest realm="127.0.0.1", nonce="abc", qop="auth,auth-int", opaque="op"', True),
        ('Digest realm="127.0.0.1", nonce="abc"', False),
    ],
    ids=["qop-auth-offered", "no-qop"],
)
def test_authorization_header_uses_real_request_uri(challenge: str, qop: bool) -> None:
    value = digest.authorization_value(
        digest.parse_challenge(challenge),
        username="dialer",
        password="secret",
        method="INVITE",
        uri=INVITE.ruri,
        cnonce="c0ffee",
    )
    params = digest.parse_challenge(value)
    assert params["uri"] == INVITE.ruri
    assert params["realm"] == "127.0.0.1"
    assert "secret" not in value
    expected = digest.digest_response(
        username="dialer",
        password="secret",
        realm="127.0.0.1",
        nonce="abc",
        method="INVITE",
        uri=INVITE.ruri,
        qop="auth" if qop else None,
        cnonce="c0ffee",
    )
    assert params["response"] == expected
    assert ("qop" in params) is qop
    if qop:
        assert params["nc"] == "00000001"
        assert params["opaque"] == "op"


def test_parse_keeps_every_record_route_and_compact_headers() -> None:
    msg = sm.parse(OK_200)
    assert msg.status == 200
    assert msg.call_id == "cid-1@127.0.0.1"
    assert msg.cseq == (2, "INVITE")
    assert msg.tag("to") == "theirtag"
    assert msg.all("record-route") == [
        "<sip:10.0.0.1;lr>",
        "<sip:10.0.0.2;lr>",
        "<sip:10.0.0.3;lr;ftag=ourtag>",
    ]


def test_parse_accepts_status_codes_pyvoip_cannot() -> None:
    msg = sm.parse(b"SIP/2.0 299 Odd\r\nVia: SIP/2.0/UDP h\r\nCall-ID: x\r\nCSeq: 1 INVITE\r\n\r\n")
    assert (msg.status, msg.reason_phrase) == (299, "Odd")


_VIA = "Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK1\r\n"


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"\r\n\r\n",
        b"SIP/2.0 abc Odd\r\n" + _VIA.encode() + b"Call-ID: x\r\nCSeq: 1 INVITE\r\n\r\n",
        b"SIP/2.0 99 Low\r\n" + _VIA.encode() + b"Call-ID: x\r\nCSeq: 1 INVITE\r\n\r\n",
        b"OPTIONS sip:x SIP/2.0\r\n" + _VIA.encode() + b"CSeq: 1 OPTIONS\r\n\r\n",
        b"OPTIONS sip:x SIP/2.0\r\n" + _VIA.encode() + b"Call-ID: x\r\nCSeq: one OPTIONS\r\n\r\n",
        b"OPTIONS sip:x SIP/2.0\r\nCall-ID: x\r\nCSeq: 1 OPTIONS\r\n\r\n",
        b"OPTIONS  SIP/2.0\r\n" + _VIA.encode() + b"Call-ID: x\r\nCSeq: 1 OPTIONS\r\n\r\n",
    ],
    ids=[
        "empty",
        "blank",
        "status-not-a-number",
        "status-99",
        "no-call-id",
        "cseq-not-a-number",
        "no-via",
        "no-request-uri",
    ],  # fmt: skip
)
def test_parse_rejects_malformed_messages_with_value_error(raw: bytes) -> None:
    """Everything the SIP edge cannot use is one ValueError here (one log line above), never
    an IndexError or a traceback later."""
    with pytest.raises(ValueError):
        sm.parse(raw)


@pytest.mark.parametrize(
    ("value", "tag"),
    [('"A" <sip:a@b;tag=uri>;tag=t1', "t1"), ("<sip:a@b>", ""), ("sip:a@b;tag=x2", "x2")],
    ids=["tag-in-uri-ignored", "none", "bare-uri"],
)
def test_tag_of(value: str, tag: str) -> None:
    assert sm.tag_of(value) == tag


def test_parse_rejects_non_sip() -> None:
    with pytest.raises(ValueError):
        sm.parse(b"\x80\x00garbage")


def test_2xx_ack_is_built_from_the_200() -> None:
    dialog = sm.Dialog.from_2xx(INVITE, sm.parse(OK_200))
    lines = header_lines(dialog.ack("127.0.0.1", 5062))
    assert lines[0] == "ACK sip:375291000001@127.0.0.1:5070;transport=udp SIP/2.0"
    assert "To: <sip:375291000001@127.0.0.1>;tag=theirtag" in lines
    assert "From: <sip:dialer@127.0.0.1>;tag=ourtag" in lines
    assert "CSeq: 2 ACK" in lines
    routes = [line for line in lines if line.startswith("Route:")]
    assert routes == [
        "Route: <sip:10.0.0.3;lr;ftag=ourtag>",
        "Route: <sip:10.0.0.2;lr>",
        "Route: <sip:10.0.0.1;lr>",
    ]
    via = next(line for line in lines if line.startswith("Via:"))
    assert "branch=z9hG4bK" in via and "z9hG4bKaaa" not in via


def test_bye_follows_dialog_with_higher_cseq_and_new_branch() -> None:
    dialog = sm.Dialog.from_2xx(INVITE, sm.parse(OK_200))
    first = header_lines(dialog.bye("127.0.0.1", 5062))
    second = header_lines(dialog.bye("127.0.0.1", 5062))
    assert first[0].startswith("BYE sip:375291000001@127.0.0.1:5070")
    assert "CSeq: 3 BYE" in first
    assert [h for h in first if h.startswith("Via")] != [h for h in second if h.startswith("Via")]


def test_cancel_matches_the_invite() -> None:
    lines = header_lines(sm.build_cancel(INVITE))
    assert lines[0] == f"CANCEL {INVITE.ruri} SIP/2.0"
    assert "Via: SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bKaaa;rport" in lines
    assert "CSeq: 2 CANCEL" in lines
    assert f"To: {INVITE.to_hdr}" in lines
    assert f"Call-ID: {INVITE.call_id}" in lines


def test_non2xx_ack_reuses_invite_branch_and_response_to_tag() -> None:
    busy = sm.parse(OK_200.replace(b"200 OK", b"486 Busy Here"))
    lines = header_lines(sm.build_ack_non2xx(INVITE, busy))
    assert lines[0] == f"ACK {INVITE.ruri} SIP/2.0"
    assert "Via: SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bKaaa;rport" in lines
    assert "To: <sip:375291000001@127.0.0.1>;tag=theirtag" in lines
    assert "CSeq: 2 ACK" in lines
    assert not any(line.startswith("Route:") for line in lines)


def test_invite_render_carries_auth_and_length() -> None:
    invite = sm.InviteRequest(**{**INVITE.__dict__, "auth_header": ("Proxy-Authorization", "x")})
    raw = invite.render()
    lines = header_lines(raw)
    assert "Proxy-Authorization: x" in lines
    assert "Content-Length: 5" in lines
    assert raw.endswith(b"\r\n\r\nv=0\r\n")


def test_a_response_copies_every_via() -> None:
    bye = sm.parse(
        b"BYE sip:dialer@127.0.0.1:5062 SIP/2.0\r\n"
        b"Via: SIP/2.0/UDP 10.1.1.1:5060;branch=z9hG4bKx;received=127.0.0.9;rport=5999\r\n"
        b"Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKy\r\n"
        b"From: <sip:a@b>;tag=1\r\nTo: <sip:c@d>;tag=2\r\nCall-ID: q\r\nCSeq: 5 BYE\r\n\r\n"
    )
    lines = header_lines(sm.build_response(bye, 200, "OK"))
    assert lines[0] == "SIP/2.0 200 OK"
    assert len([line for line in lines if line.startswith("Via:")]) == 2
    assert "CSeq: 5 BYE" in lines


def test_final_reason_includes_reason_header() -> None:
    msg = sm.parse(
        b"SIP/2.0 486 Busy Here\r\nVia: SIP/2.0/UDP h\r\nCall-ID: x\r\n"
        b"Reason: Q.850;cause=17\r\nCSeq: 1 INVITE\r\n\r\n"
    )
    assert sm.final_reason(msg) == "Busy Here (Q.850;cause=17)"


# ---- INFO keys, SDP of re-INVITEs -------------------------------------------------------------
def _info(ctype: str, body: str) -> sm.SipMessage:
    raw = (
        "INFO sip:d@127.0.0.1:5062 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK1\r\n"
        "From: <sip:a@x>;tag=1\r\nTo: <sip:d@x>;tag=2\r\nCall-ID: c1\r\nCSeq: 2 INFO\r\n"
        f"Content-Type: {ctype}\r\nContent-Length: {len(body)}\r\n\r\n{body}"
    )
    return sm.parse(raw.encode())


@pytest.mark.parametrize(
    ("ctype", "body", "key"),
    [
        ("application/dtmf-relay", "Signal=5\r\nDuration=160\r\n", "5"),
        ("application/dtmf-relay", "signal= #\nDuration=100", "#"),
        ("application/dtmf-relay", "Signal=10\r\nDuration=160", "*"),
        ("application/dtmf-relay", "Signal=11\r\nDuration=160", "#"),
        ("Application/DTMF", "9", "9"),
        ("application/dtmf", "*\r\n", "*"),
        ("application/dtmf-relay", "Duration=160", None),
        ("application/dtmf-relay", "Signal=Z", None),
        ("application/media_control+xml", "<x/>", None),
    ],
    ids=["relay", "relay-lower-spaces", "relay-10-star", "relay-11-pound", "dtmf", "dtmf-star",
         "relay-no-signal", "relay-bad", "other-type"],
)  # fmt: skip
def test_dtmf_of_info(ctype: str, body: str, key: str | None) -> None:
    assert sm.dtmf_of_info(_info(ctype, body)) == key


HOLD_OFFER = (
    b"v=0\r\no=x 1 2 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\n"
    b"m=audio 4000 RTP/AVP 8 0 96\r\na=rtpmap:96 telephone-event/8000\r\na=sendonly\r\n"
)


def test_sdp_audio_of_an_offer() -> None:
    audio = sdp.parse_sdp_audio(HOLD_OFFER)
    assert audio == sdp.SdpAudio(
        "10.0.0.1", 4000, {8: "pcma", 0: "pcmu", 96: "telephone-event"}, "sendonly"
    )
    assert audio.payload_of("telephone-event") == 96 and audio.payload_of("g729") is None


@pytest.mark.parametrize(
    ("offer", "answer"),
    [("sendrecv", "sendrecv"), ("sendonly", "recvonly"), ("recvonly", "sendonly"),
     ("inactive", "inactive")],
    ids=["active", "hold", "hold-reverse", "inactive"],
)  # fmt: skip
def test_sdp_answer_mirrors_the_direction_and_keeps_the_event_type(offer: str, answer: str) -> None:
    body = sdp.sdp_answer("127.0.0.1", 21000, 7, 9, 96, offer)
    assert "m=audio 21000 RTP/AVP 0 96\r\n" in body
    assert "a=rtpmap:96 telephone-event/8000\r\n" in body
    assert body.endswith(f"a={answer}\r\n") and "o=ivr 7 9 IN IP4 127.0.0.1" in body


def test_we_offer_both_g711_laws_and_answer_in_the_one_chosen() -> None:
    offer = sdp.parse_sdp_audio(sdp.sdp_offer("127.0.0.1", 21000, 5).encode())
    assert offer is not None
    assert offer.payloads == {0: "pcmu", 8: "pcma", 101: "telephone-event"}
    answer = sdp.sdp_answer("127.0.0.1", 21000, 7, 9, 101, "sendrecv", "pcma")
    assert "m=audio 21000 RTP/AVP 8 101\r\n" in answer and "a=rtpmap:8 PCMA/8000\r\n" in answer
    assert "PCMU" not in answer


def test_response_with_body_has_its_length() -> None:
    msg = _info("application/dtmf", "1")
    raw = sm.build_response_with_body(msg, 200, "OK", "sip:d@127.0.0.1:5062", "application/sdp",
                                      "v=0\r\n")  # fmt: skip
    parsed = sm.parse(raw)
    assert parsed.status == 200 and parsed.body == b"v=0\r\n"
    assert parsed.header("content-length") == "5" and parsed.header("contact") == (
        "<sip:d@127.0.0.1:5062>"
    )
