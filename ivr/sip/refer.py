"""Blind transfer by SIP REFER (RFC 3515), sans-I/O: messages and clock ticks in, messages and
one result out. The adapter only routes datagrams here and sends what comes back.

What a ``ReferClient`` does, in the confirmed dialog of an answered call (we are the UAC):

* ``start``: the REFER (Refer-To the operators' URI, CSeq one above the INVITE's), sent again
  at T1 doubling to T2 until a final response (RFC 3261 17.1.2.2, Timer E), given up at 64*T1
  (Timer F: the far end never answered).
* a final response: 2xx (202 Accepted) means the far end is trying the target; anything else
  (4xx/5xx/6xx, say 603 Declined) is a refusal.
* every NOTIFY of the implicit subscription (Event: refer) is answered 200; its body is a
  message/sipfrag status line. A final status there settles it: 2xx the operator's line
  answered (the transfer happened), else it failed. ``Subscription-State: terminated``
  without a final status is a failure too.
* no final NOTIFY within ``notify_timeout_s`` of the 202: a failure.

After success the transferor ends its leg with BYE (RFC 5589 6.1); ``bye_cseq`` is the CSeq
that BYE must carry (above the REFER's). The result never changes once set.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ivr.sip import sip_messages as sm

T1 = 0.5
T2 = 4.0
TIMER_F = 64 * T1
NOTIFY_TIMEOUT_S = 60.0
_SIPFRAG = re.compile(rb"^\s*SIP/2\.0\s+(\d{3})\s*([^\r\n]*)")


@dataclass(frozen=True)
class ReferResult:
    """``transferred``: the target answered. Else ``detail`` says what failed."""

    transferred: bool
    detail: str


def sipfrag_status(body: bytes) -> tuple[int, str] | None:
    """The status line of a message/sipfrag body ("SIP/2.0 200 OK" -> (200, "OK"))."""
    match = _SIPFRAG.match(body)
    if match is None:
        return None
    return int(match.group(1)), match.group(2).decode(errors="replace").strip()


def build_refer(
    dialog: sm.Dialog, cseq: int, target: str, via_host: str, via_port: int, contact: str
) -> bytes:
    """REFER in ``dialog`` asking the far end to call ``target`` (a SIP URI)."""
    head = dialog.request("REFER", cseq, via_host, via_port).decode()
    head = head.removesuffix("Content-Length: 0\r\n\r\n")
    extra = [f"Refer-To: <{target}>", f"Referred-By: <{contact}>", f"Contact: <{contact}>"]
    return (head + "\r\n".join(extra) + "\r\nContent-Length: 0\r\n\r\n").encode()


class ReferClient:
    """One REFER and its subscription; feed it with ``on_response``, ``on_notify``, ``tick``."""

    def __init__(
        self,
        dialog: sm.Dialog,
        target: str,
        via: tuple[str, int],
        contact: str,
        notify_timeout_s: float = NOTIFY_TIMEOUT_S,
    ) -> None:
        self.cseq = dialog.invite_cseq + 1
        self.bye_cseq = self.cseq + 1
        self.request = build_refer(dialog, self.cseq, target, via[0], via[1], contact)
        self.notify_timeout_s = notify_timeout_s
        self.result: ReferResult | None = None
        self.accepted = False
        self._sent_at = 0.0
        self._next_at = 0.0
        self._interval = T1
        self._accepted_at = 0.0

    def start(self, now: float) -> bytes:
        self._sent_at, self._next_at = now, now + T1
        return self.request

    def matches(self, response: sm.SipMessage) -> bool:
        return response.cseq == (self.cseq, "REFER")

    def on_response(self, response: sm.SipMessage, now: float) -> None:
        if self.accepted or self.result is not None or response.status < 200:
            return  # provisional, or a retransmitted final
        if 200 <= response.status < 300:
            self.accepted, self._accepted_at = True, now
        else:
            self._settle(False, f"REFER {response.status} {response.reason_phrase}".strip())

    def on_notify(self, notify: sm.SipMessage, now: float) -> bytes:
        """The 200 for ``notify``; its sipfrag may settle the transfer."""
        if not self.accepted and self.result is None:
            # The NOTIFY overtook the 202 (RFC 3515 2.4.4): the REFER was accepted.
            self.accepted, self._accepted_at = True, now
        status = sipfrag_status(notify.body)
        terminated = (notify.header("subscription-state") or "").lower().startswith("terminated")
        if status is not None and status[0] >= 200:
            detail = f"NOTIFY {status[0]} {status[1]}".strip()
            self._settle(200 <= status[0] < 300, detail)
        elif terminated:
            self._settle(False, "subscription terminated without a final status")
        return sm.build_response(notify, 200, "OK")

    def tick(self, now: float) -> list[bytes]:
        """Retransmissions due at ``now``; settles on Timer F or the NOTIFY deadline."""
        if self.result is not None:
            return []
        if self.accepted:
            if now - self._accepted_at > self.notify_timeout_s:
                self._settle(False, "no final NOTIFY")
            return []
        if now - self._sent_at > TIMER_F:
            self._settle(False, "REFER timeout")
            return []
        if now >= self._next_at:
            self._interval = min(self._interval * 2, T2)
            self._next_at = now + self._interval
            return [self.request]
        return []

    def next_wake(self) -> float | None:
        """When ``tick`` next has work (None: settled), so a timer loop can sleep till then."""
        if self.result is not None:
            return None
        if self.accepted:
            return self._accepted_at + self.notify_timeout_s + 0.001
        return min(self._next_at, self._sent_at + TIMER_F + 0.001)

    def _settle(self, transferred: bool, detail: str) -> None:
        if self.result is None:
            self.result = ReferResult(transferred, detail)
