"""The SIP edge's sans-I/O core: every datagram of the SIP socket (with its source) and every
clock tick go in, datagrams to send and events come out (the shape of h11's
``_connection.py``). No socket, no thread, no clock read, no DNS: the adapter
(``ivr.sip.pyvoip_adapter``) is the loop around it.

Routing, in order (docs/sip-notes.md, pitfalls 21, 24, 25):

* a datagram that does not parse: dropped, one rate-limited WARNING line per kind;
* a response not from the configured proxy: dropped; from it: the REGISTER's if its Call-ID
  and CSeq are (``ivr.sip.registration``), else the call's with that Call-ID (its INVITE
  transaction, CANCEL, or an in-dialog request of ours);
* a request the call's dialog ``accepts`` (tags and source): to that dialog;
* any other request not from the proxy: dropped (a response would go where it claims, a
  reflector; one from elsewhere in a dialog of ours is forged);
* from the proxy, outside a dialog: OPTIONS 200, INVITE 486 (we only dial out), BYE/INFO/
  CANCEL 481, ACK nothing, others 405; always to the datagram's source, never to its Via.

An ended call is kept ``ENDED_RETENTION`` seconds, to ACK retransmitted finals and finish
its BYE or CANCEL.
"""

from __future__ import annotations

import heapq
import logging
import math
from dataclasses import dataclass

from ivr.sip import sip_messages as sm
from ivr.sip.api import EndedBy
from ivr.sip.dialog import CallDialog, LocalMedia
from ivr.sip.ratelog import RateLimitedLog
from ivr.sip.registration import Registration, RegState
from ivr.sip.sip_events import Address, Answered, Ended, Output, Send
from ivr.sip.transaction import TIMER_B, Credentials, InviteClient, InviteState

log = logging.getLogger(__name__)

ENDED_RETENTION = TIMER_B  # keep ended calls this long to re-ACK retransmitted finals


@dataclass
class CallLeg:
    client: InviteClient
    media: LocalMedia
    dialog: CallDialog | None = None
    ended_at: float | None = None
    wake: float = math.inf  # when its tick next has work

    def next_wake(self) -> float:
        times = [self.client.next_wake(), self.dialog.next_wake() if self.dialog else None]
        if self.ended_at is not None:
            times.append(self.ended_at + ENDED_RETENTION + 0.001)
        return min((t for t in times if t is not None), default=math.inf)


class SipCore:
    """All SIP state of one phone: its registration and its calls."""

    def __init__(self, proxy: Address, credentials: Credentials, local: Address) -> None:
        self.proxy = proxy  # resolved once by the adapter: no DNS here
        self.credentials = credentials
        self.local = local
        self.registration: Registration | None = None
        self.calls: dict[str, CallLeg] = {}
        self._now = 0.0
        # (wake, call id) of every call with a timer: a tick looks only at the calls due,
        # so hundreds of answered calls cost nothing between their timers.
        self._due: list[tuple[float, str]] = []
        self._bad = RateLimitedLog(log, monotonic=lambda: self._now)

    # ------------------------------------------------------------ commands
    def register(self, registration: Registration, now: float) -> list[Output]:
        self.registration = registration
        return [Send(d) for d in registration.start(now)]

    def unregister(self, now: float) -> list[Output]:
        reg = self.registration
        if reg is None or reg.state is RegState.STOPPED:
            return []
        return [Send(d) for d in reg.stop(now)]

    def invite(self, invite: sm.InviteRequest, rtp_port: int, now: float) -> list[Output]:
        """Start an outbound call: the INVITE goes now."""
        session = int(invite.sdp.split("o=ivr ", 1)[1].split()[0])
        media = LocalMedia(self.local[0], self.local[1], self.credentials.username, rtp_port,
                           session)  # fmt: skip
        leg = CallLeg(InviteClient(invite, self.credentials), media)
        self.calls[invite.call_id] = leg
        return self._note(leg, leg.client.start(now), now)

    def cancel(self, call_id: str, now: float) -> list[Output]:
        leg = self.calls.get(call_id)
        return [] if leg is None else self._note(leg, leg.client.cancel(now), now)

    def hangup(self, call_id: str, now: float, by: EndedBy = EndedBy.LOCAL_HANGUP) -> list[Output]:
        """BYE if answered, else CANCEL; nothing once ended."""
        leg = self.calls.get(call_id)
        if leg is None:
            return []
        if leg.dialog is not None and not leg.dialog.ended:
            return self._note(leg, leg.dialog.hangup(now, by), now)
        return self.cancel(call_id, now)

    def dialog(self, call_id: str) -> CallDialog | None:
        """The call's confirmed dialog (its codec, whether it ended)."""
        leg = self.calls.get(call_id)
        return None if leg is None else leg.dialog

    def transfer(self, call_id: str, target: str, now: float) -> list[Output]:
        """Blind transfer of an answered call to ``target`` by REFER (once a call)."""
        leg = self.calls.get(call_id)
        if leg is None or leg.dialog is None:
            return []
        return self._note(leg, leg.dialog.transfer(target, now), now)

    def request(
        self,
        call_id: str,
        method: str,
        now: float,
        extra: tuple[str, ...] = (),
        body: tuple[str, bytes] | None = None,
    ) -> tuple[int | None, list[Output]]:
        """Send an in-dialog request (a REFER) on an answered call: its CSeq (None if the call
        has no live dialog) and what to send. Its final comes back as ``DialogResponse``."""
        leg = self.calls.get(call_id)
        if leg is None or leg.dialog is None or leg.dialog.ended:
            return None, []
        cseq, out = leg.dialog.request(method, now, extra, body)
        return cseq, self._note(leg, out, now)

    # ------------------------------------------------------------ inputs
    def receive(self, raw: bytes, source: Address, now: float) -> list[Output]:
        """One datagram of the SIP socket and the address it came from."""
        self._now = now
        try:
            msg = sm.parse(raw)
        except ValueError as exc:
            self._bad.warning(
                "malformed",
                "malformed SIP datagram (%d bytes) from %s:%s dropped: %s",
                *(len(raw), source[0], source[1], exc),
            )
            return []
        if msg.is_response:
            return self._on_response(msg, source, now)
        leg = self.calls.get(msg.call_id)
        if leg is not None and leg.dialog is not None and leg.dialog.accepts(msg, source):
            return self._note(leg, leg.dialog.on_request(msg, source, now), now)
        if source != self.proxy:
            self._bad.warning("stranger", "SIP %s from %s:%s (not the proxy %s:%s) dropped",
                              msg.method, source[0], source[1], *self.proxy)  # fmt: skip
            return []
        return _out_of_dialog(msg, source)

    def tick(self, now: float) -> list[Output]:
        """Every timer that is due: registration, INVITE and non-INVITE transactions, our
        re-INVITE 2xx, and forgetting calls ended long enough ago."""
        self._now = now
        out: list[Output] = []
        reg = self.registration
        if reg is not None and reg.state is not RegState.STOPPED:
            wake = reg.next_wake()
            if wake is not None and now >= wake:
                out += [Send(d) for d in reg.tick(now)]
        due: dict[str, CallLeg] = {}
        while self._due and self._due[0][0] <= now:
            wake, call_id = heapq.heappop(self._due)
            leg = self.calls.get(call_id)
            if leg is not None and leg.wake == wake:
                leg.wake = math.inf  # popped: ``_note`` schedules it again
                due[call_id] = leg
        for call_id, leg in due.items():
            done = leg.ended_at is not None and now - leg.ended_at > ENDED_RETENTION
            if done and not (leg.dialog is not None and leg.dialog.busy):
                del self.calls[call_id]
                continue
            steps = leg.client.tick(now)
            if leg.dialog is not None:
                steps += leg.dialog.tick(now)
            out += self._note(leg, steps, now)
        return out

    def next_wake(self) -> float:
        """The earliest time ``tick`` may have something to do (inf: nothing pending)."""
        while self._due and self._due[0][0] != self._wake_of(self._due[0][1]):
            heapq.heappop(self._due)  # stale: that call was rescheduled or forgotten
        wake = self._due[0][0] if self._due else math.inf
        reg = self.registration
        if reg is not None and reg.state is not RegState.STOPPED:
            wake = min(wake, reg.next_wake() or math.inf)
        return wake

    def _wake_of(self, call_id: str) -> float | None:
        leg = self.calls.get(call_id)
        return None if leg is None else leg.wake

    # ------------------------------------------------------------ internals
    def _on_response(self, msg: sm.SipMessage, source: Address, now: float) -> list[Output]:
        if source != self.proxy:
            self._bad.warning("stranger", "SIP response from %s:%s (not the proxy %s:%s) dropped",
                              source[0], source[1], *self.proxy)  # fmt: skip
            return []
        reg = self.registration
        if reg is not None and reg.matches(msg):
            return [Send(d) for d in reg.on_response(msg, now)]
        leg = self.calls.get(msg.call_id)
        if leg is None:
            return []
        if msg.cseq[1] in ("INVITE", "CANCEL") or leg.dialog is None:
            return self._note(leg, leg.client.on_response(msg, now), now)
        return self._note(leg, leg.dialog.on_response(msg, now), now)

    def _note(self, leg: CallLeg, outputs: list[Output], now: float) -> list[Output]:
        """Keep the leg in step with what its parts said: a dialog once answered, the end."""
        for item in outputs:
            if isinstance(item, Answered) and leg.dialog is None:
                assert leg.client.dialog is not None
                leg.dialog = CallDialog(leg.client.invite, leg.client.dialog, self.proxy,
                                        leg.media)  # fmt: skip
            elif isinstance(item, Ended):
                leg.ended_at = now if leg.ended_at is None else leg.ended_at
                leg.client.state = InviteState.ENDED
                if leg.dialog is not None:
                    leg.dialog.ended = True
        wake = leg.next_wake()
        if wake != leg.wake:
            leg.wake = wake
            if wake != math.inf:
                heapq.heappush(self._due, (wake, leg.client.call_id))
        return outputs


def _out_of_dialog(msg: sm.SipMessage, source: Address) -> list[Output]:
    """A request from the proxy that belongs to no dialog of ours, answered to its source."""
    method = msg.method
    if method == "OPTIONS":
        return [Send(sm.build_response(msg, 200, "OK"), source)]
    if method == "INVITE":  # we only dial out
        return [Send(sm.build_response(msg, 486, "Busy Here", sm.new_tag()), source)]
    if method in ("BYE", "INFO", "CANCEL"):
        return [Send(sm.build_response(msg, 481, "Call Does Not Exist"), source)]
    if method == "ACK":
        return []
    return [Send(sm.build_response(msg, 405, "Method Not Allowed"), source)]
