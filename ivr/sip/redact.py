"""What SIP messages look like in logs: numbers masked, credentials dropped.

A DEBUG dump of a SIP message carries the citizen's number (request URI, To, SDP origin...)
and our digest credentials (Authorization, Proxy-Authorization). ``redact_sip`` masks every
run of 7 or more digits as ``mask_phone`` does (``+37529*****67``, ``37529*****67``) and keeps
only the name of a credential header. Used for every SIP dump and for errors naming a number.
"""

from __future__ import annotations

import re

# A number is a run of digits standing alone (``sip:375...@``, ``tel:+375...``); digits inside
# a longer token (a hex Call-ID, a branch) are not a phone number and stay readable.
_DIGITS = re.compile(r"(?<![\w+])\+?\d{7,}(?!\w)")
_CREDENTIALS = re.compile(
    r"^((?:Proxy-)?Authorization)[ \t]*:.*?(\r?\n(?![ \t])|\Z)",
    re.IGNORECASE | re.MULTILINE | re.DOTALL,
)


def mask_digits(text: str) -> str:
    """Every number of 7 digits or more: at most its first five digits (country and operator
    code) and its last two, at least five digits as ``*``."""

    def mask(m: re.Match[str]) -> str:
        run = m.group(0)
        plus = 1 if run.startswith("+") else 0
        head = plus + min(5, max(0, len(run) - plus - 7))
        return run[:head] + "*" * (len(run) - head - 2) + run[-2:]

    return _DIGITS.sub(mask, text)


def redact_sip(text: str) -> str:
    """A SIP message fit for a log: credentials dropped, numbers masked."""
    return mask_digits(_CREDENTIALS.sub(r"\1: [dropped]\2", text))
