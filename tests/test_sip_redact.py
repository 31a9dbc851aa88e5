"""SIP messages in logs: numbers masked, Authorization and Proxy-Authorization dropped; no
error names a full number."""

from __future__ import annotations

import logging

import pytest

from ivr.core.errors import DialFailed
from ivr.sip.pyvoip_adapter import PyVoipPhone
from ivr.sip.redact import mask_digits, redact_sip
from tests.helpers import lab_sip_settings

INVITE = (
    "INVITE sip:375291234567@127.0.0.1:5060 SIP/2.0\r\n"
    "Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK77\r\n"
    'From: "115" <sip:dialer@127.0.0.1>;tag=1\r\n'
    "To: <sip:375291234567@127.0.0.1>\r\n"
    "Call-ID: 5f0c@127.0.0.1\r\n"
    "CSeq: 2 INVITE\r\n"
    'Proxy-Authorization: Digest username="dialer", realm="lab",\r\n'
    ' nonce="n0nce", uri="sip:375291234567@127.0.0.1", response="0123456789abcdef"\r\n'
    'authorization: Digest username="dialer", response="fedcba9876543210"\r\n'
    "P-Asserted-Identity: <tel:+375291234567>\r\n"
    "Content-Length: 0\r\n\r\n"
)


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("+375291234567", "+37529*****67"),
        ("375291234567", "37529*****67"),
        ("9375291234567", "93752******67"),
        ("port 31000, cseq 2", "port 31000, cseq 2"),
        ("call 1234567", "call *****67"),
        ("291234567", "29*****67"),
        (
            "Call-ID: b199efc74d284277830e749@127.0.0.1",
            "Call-ID: b199efc74d284277830e749@127.0.0.1",
        ),
    ],
    ids=[
        "e164",
        "sip-user",
        "with-prefix",
        "short-numbers-kept",
        "seven-digits",
        "nine",
        "call-id-kept",
    ],
)
def test_numbers_are_masked(text: str, masked: str) -> None:
    assert mask_digits(text) == masked


def test_a_dump_keeps_the_message_but_no_number_and_no_credential() -> None:
    out = redact_sip(INVITE)
    assert "1234567" not in out and "291234" not in out
    assert "n0nce" not in out and "0123456789abcdef" not in out and "fedcba" not in out
    assert "Proxy-Authorization: [dropped]\r\n" in out
    assert "authorization: [dropped]\r\n" in out
    assert out.startswith("INVITE sip:37529*****67@127.0.0.1:5060 SIP/2.0\r\n")
    assert "Call-ID: 5f0c@127.0.0.1\r\nCSeq: 2 INVITE\r\n" in out
    assert "<tel:+37529*****67>" in out


def test_the_adapter_logs_received_messages_redacted(caplog: pytest.LogCaptureFixture) -> None:
    phone = PyVoipPhone(lab_sip_settings(5060, 40000, register=False))
    with caplog.at_level(logging.DEBUG, logger="ivr.sip.pyvoip_adapter"):
        response = "SIP/2.0 100 Trying\r\n" + INVITE.split("\r\n", 1)[1]  # of no known call
        phone._on_datagram(response.encode(), ("127.0.0.1", 5060))
    dumped = "\n".join(r.getMessage() for r in caplog.records)
    assert "SIP <-" in dumped and "37529*****67" in dumped
    assert "1234567" not in dumped and "0123456789abcdef" not in dumped


def test_a_dial_error_does_not_carry_the_number() -> None:
    phone = PyVoipPhone(lab_sip_settings(5060, 40000, register=False))
    with pytest.raises(DialFailed) as info:
        phone.dial("375291234567")
    assert "1234567" not in str(info.value) and "37529*****67" in str(info.value)
