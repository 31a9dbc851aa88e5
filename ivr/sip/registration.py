"""REGISTER and its refresh as a pure state machine: datagrams and clock ticks in, datagrams
and state out (sans-I/O, the shape of h11). No socket, no thread, no clock of its own.

Why not pyVoIP's: its refresh thread takes whatever datagram comes next on the SIP socket as
the REGISTER answer, so an OPTIONS (or any proxy traffic) during a refresh counts as a failed
registration; after three the phone closes its socket without a word and every later call
fails (docs/sip-notes.md, pitfall 21). Here an answer is ours only when its Call-ID and CSeq
are those of the REGISTER we sent; everything else goes to the rest of the SIP edge.

States::

    IDLE --start--> REGISTERING --2xx--> REGISTERED --refresh due--> REFRESHING --2xx--+
                       |  401/407: once more with the digest           |               |
                       +--refused / no answer--> LOST <----------------+---------------+
                                                   | backoff (1 s doubling to 60 s)
                                                   +--> REGISTERING
    any --stop--> UNREGISTERING --answer or timeout--> STOPPED

A REGISTER goes again after 0.5 s, doubling to 4 s (RFC 3261 Timer E), until
``step_timeout_s`` passes without an answer.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from ivr.sip import digest, sip_messages as sm

T1, T2 = 0.5, 4.0
REFRESH_FRACTION = 0.5  # refresh when half of the granted time has passed
BACKOFF_FIRST_S, BACKOFF_MAX_S = 1.0, 60.0


class RegState(enum.Enum):
    IDLE = "idle"
    REGISTERING = "registering"  # first REGISTER (or a retry after a loss) in flight
    REGISTERED = "registered"
    REFRESHING = "refreshing"  # registered; the refresh is in flight
    LOST = "lost"  # not registered; the next try is at ``retry_at``
    UNREGISTERING = "unregistering"
    STOPPED = "stopped"


@dataclass(frozen=True)
class RegEvent:
    """Something the owner logs: ``kind`` is registered, lost or unregistered."""

    kind: str
    detail: str


@dataclass
class _Transaction:
    cseq: int
    data: bytes
    sent_at: float
    next_at: float
    interval: float = T1
    authorized: bool = False


class Registration:
    """One account's registration at one registrar."""

    def __init__(
        self,
        *,
        server: str,
        port: int,
        username: str,
        password: str,
        local_ip: str,
        local_port: int,
        expires_s: int = 300,
        step_timeout_s: float = 5.0,
    ) -> None:
        self.server, self.port = server, port
        self.username, self.password = username, password
        self.local_ip, self.local_port = local_ip, local_port
        self.expires_s = expires_s
        self.step_timeout_s = step_timeout_s
        self.call_id = sm.new_call_id(f"{local_ip}:{local_port}")
        self.from_tag = sm.new_tag()
        self.state = RegState.IDLE
        self.granted_s = 0
        self.refresh_at: float | None = None
        self.retry_at: float | None = None
        self.lost_since: float | None = None
        self.failures = 0  # consecutive failed tries
        self.last_error = ""
        self._cseq = 0
        self._tx: _Transaction | None = None
        self._events: list[RegEvent] = []

    # ------------------------------------------------------------------ inputs
    def start(self, now: float) -> list[bytes]:
        self.state = RegState.REGISTERING
        return self._send(now, self.expires_s)

    def stop(self, now: float) -> list[bytes]:
        """De-register (Expires: 0) if registered; otherwise just stop."""
        if self.state in (RegState.REGISTERED, RegState.REFRESHING):
            self.state = RegState.UNREGISTERING
            return self._send(now, 0)
        self.state, self._tx = RegState.STOPPED, None
        return []

    def matches(self, msg: sm.SipMessage) -> bool:
        """True if ``msg`` answers the REGISTER in flight (Call-ID and CSeq both ours)."""
        tx = self._tx
        return (
            tx is not None
            and msg.is_response
            and msg.call_id == self.call_id
            and msg.cseq == (tx.cseq, "REGISTER")
        )

    def on_response(self, msg: sm.SipMessage, now: float) -> list[bytes]:
        """Feed a response that ``matches``; anything else is ignored."""
        if not self.matches(msg):
            return []
        tx = self._tx
        assert tx is not None
        status = msg.status
        if status < 200:
            tx.next_at = now + T2  # provisional: slow down, keep waiting (RFC 3261 17.1.2.2)
            return []
        self._tx = None
        if self.state is RegState.UNREGISTERING:
            self.state = RegState.STOPPED
            self._events.append(RegEvent("unregistered", f"{status}"))
            return []
        if status < 300:
            return self._registered(msg, now)
        if status in (401, 407) and not tx.authorized:
            header = "www-authenticate" if status == 401 else "proxy-authenticate"
            challenge = msg.header(header)
            if challenge:
                return self._send(now, self._expires_of(tx), (status, challenge))
        if status == 423:  # Interval Too Brief: ask for what the registrar wants
            wanted = int(msg.header("min-expires") or "0") or self.expires_s
            if wanted > self._expires_of(tx):
                self.expires_s = wanted
                return self._send(now, wanted)
        return self._failed(now, f"{status} {msg.reason_phrase}".strip())

    def tick(self, now: float) -> list[bytes]:
        """Timers: retransmission, transaction timeout, refresh, retry after backoff."""
        tx = self._tx
        if tx is not None:
            if now - tx.sent_at >= self.step_timeout_s:
                self._tx = None
                if self.state is RegState.UNREGISTERING:
                    self.state = RegState.STOPPED
                    return []
                return self._failed(now, f"no answer in {self.step_timeout_s:g} s")
            if now >= tx.next_at:
                tx.interval = min(tx.interval * 2, T2)
                tx.next_at = now + tx.interval
                return [tx.data]
            return []
        if self.state is RegState.REGISTERED and self.refresh_at is not None:
            if now >= self.refresh_at:
                self.state = RegState.REFRESHING
                return self._send(now, self.expires_s)
        if self.state is RegState.LOST and self.retry_at is not None and now >= self.retry_at:
            self.state = RegState.REGISTERING
            return self._send(now, self.expires_s)
        return []

    # ------------------------------------------------------------------ outputs
    def take_events(self) -> list[RegEvent]:
        out, self._events = self._events, []
        return out

    @property
    def registered(self) -> bool:
        return self.state in (RegState.REGISTERED, RegState.REFRESHING)

    def next_wake(self) -> float | None:
        """The earliest time ``tick`` has something to do."""
        if self._tx is not None:
            return min(self._tx.next_at, self._tx.sent_at + self.step_timeout_s)
        if self.state is RegState.REGISTERED:
            return self.refresh_at
        if self.state is RegState.LOST:
            return self.retry_at
        return None

    # ------------------------------------------------------------------ internals
    def _registered(self, msg: sm.SipMessage, now: float) -> list[bytes]:
        granted = _granted_expires(msg, self.local_ip, self.local_port) or self.expires_s
        was_lost = self.lost_since is not None or self.granted_s == 0
        self.state, self.granted_s = RegState.REGISTERED, granted
        self.refresh_at = now + max(granted * REFRESH_FRACTION, 1.0)
        self.retry_at, self.failures, self.last_error = None, 0, ""
        if was_lost:
            self._events.append(RegEvent("registered", f"for {granted} s"))
        self.lost_since = None
        return []

    def _failed(self, now: float, reason: str) -> list[bytes]:
        self.failures += 1
        delay = min(BACKOFF_FIRST_S * 2 ** (self.failures - 1), BACKOFF_MAX_S)
        self.state, self.retry_at, self.last_error = RegState.LOST, now + delay, reason
        if self.lost_since is None:
            self.lost_since = now
        self._events.append(RegEvent("lost", f"{reason}; next try in {delay:g} s"))
        return []

    def _expires_of(self, tx: _Transaction) -> int:
        match = re.search(rb"\r\nExpires: (\d+)\r\n", tx.data)
        return int(match.group(1)) if match else self.expires_s

    def _send(
        self, now: float, expires: int, challenge: tuple[int, str] | None = None
    ) -> list[bytes]:
        self._cseq += 1
        data = self._render(expires, challenge)
        self._tx = _Transaction(self._cseq, data, now, now + T1, authorized=challenge is not None)
        return [data]

    @property
    def aor(self) -> str:
        return f"sip:{self.username}@{self.server}"

    @property
    def request_uri(self) -> str:
        return f"sip:{self.server}"

    def _render(self, expires: int, challenge: tuple[int, str] | None) -> bytes:
        lines = [
            f"REGISTER {self.request_uri} SIP/2.0",
            f"Via: SIP/2.0/UDP {self.local_ip}:{self.local_port};branch={sm.new_branch()};rport",
            "Max-Forwards: 70",
            f"From: <{self.aor}>;tag={self.from_tag}",
            f"To: <{self.aor}>",
            f"Call-ID: {self.call_id}",
            f"CSeq: {self._cseq} REGISTER",
            f"Contact: <sip:{self.username}@{self.local_ip}:{self.local_port}>",
            f"Expires: {expires}",
            f"User-Agent: {sm.USER_AGENT}",
        ]
        if challenge is not None:
            status, value = challenge
            name = "Authorization" if status == 401 else "Proxy-Authorization"
            auth = digest.authorization_value(
                digest.parse_challenge(value),
                username=self.username,
                password=self.password,
                method="REGISTER",
                uri=self.request_uri,
            )
            lines.append(f"{name}: {auth}")
        return ("\r\n".join([*lines, "Content-Length: 0"]) + "\r\n\r\n").encode()


def _granted_expires(msg: sm.SipMessage, local_ip: str, local_port: int) -> int:
    """The registrar's grant: our Contact's expires parameter, else the Expires header."""
    ours = f"@{local_ip}:{local_port}"
    for contact in msg.all("contact"):
        if ours in contact:
            match = re.search(r";\s*expires=(\d+)", contact)
            if match:
                return int(match.group(1))
    value = msg.header("expires")
    return int(value) if value and value.strip().isdigit() else 0
