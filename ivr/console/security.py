"""Sign-in and request safety for the console: password hashes, session cookies, CSRF tokens,
and the slowing of repeated failed sign-ins. Pure but for argon2; time comes in as an argument.

- Passwords: argon2id (argon2-cffi's defaults), never stored or logged in clear.
- Sessions: a signed (itsdangerous, HMAC) cookie holding the user name, a CSRF token and a
  fingerprint of the password hash (changing the password signs every session out); it expires
  after ``SESSION_MAX_AGE_S``; HttpOnly and SameSite=Strict are set by the app.
- CSRF: every POST carries the session's token (form field ``csrf`` or header ``X-CSRF-Token``).
- Throttle: after ``FREE_FAILURES`` failed sign-ins for one user name or one address, the next
  attempt waits 2, 4, 8... seconds (at most ``MAX_DELAY_S``) after the last failure.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass, field

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from itsdangerous import BadSignature, URLSafeTimedSerializer

SESSION_MAX_AGE_S = 8 * 3600
FREE_FAILURES = 3
MAX_DELAY_S = 300.0
_hasher = PasswordHasher()
# A hash to verify against when the user does not exist, so both cases take as long.
_DUMMY_HASH = _hasher.hash("not a password of anyone")


def hash_password(password: str) -> str:
    if len(password) < 8:
        raise ValueError("a password needs at least 8 characters")
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def hash_fingerprint(password_hash: str) -> str:
    return hashlib.sha256(password_hash.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Session:
    user: str | None  # None: not signed in (the token still protects the sign-in form)
    csrf: str
    fingerprint: str = ""


FLASH_MAX_AGE_S = 120  # a message not shown by then is stale


class SessionCodec:
    def __init__(self, secret: str, max_age_s: int = SESSION_MAX_AGE_S) -> None:
        self._s = URLSafeTimedSerializer(secret, salt="ivr-console-session")
        self._flash = URLSafeTimedSerializer(secret, salt="ivr-console-flash")
        self.max_age_s = max_age_s

    def dumps_flash(self, message: str) -> str:
        """What a POST says happened, for the page it redirects to (signed: a crafted link or
        cookie cannot put words on the console's pages)."""
        return self._flash.dumps(message)

    def loads_flash(self, cookie: str | None) -> str | None:
        if not cookie:
            return None
        try:
            message = self._flash.loads(cookie, max_age=FLASH_MAX_AGE_S)
        except BadSignature:
            return None
        return message if isinstance(message, str) else None

    def dumps(self, session: Session) -> str:
        return self._s.dumps({"u": session.user, "c": session.csrf, "f": session.fingerprint})

    def loads(self, cookie: str | None) -> Session | None:
        """The session, or None when the cookie is missing, forged or expired."""
        if not cookie:
            return None
        try:
            data = self._s.loads(cookie, max_age=self.max_age_s)
        except BadSignature:  # SignatureExpired is a BadSignature too
            return None
        if not isinstance(data, dict) or not isinstance(data.get("c"), str):
            return None
        user = data.get("u")
        return Session(user if isinstance(user, str) else None, data["c"], str(data.get("f", "")))


def new_token() -> str:
    return secrets.token_urlsafe(32)


def same_token(expected: str, given: str | None) -> bool:
    return given is not None and hmac.compare_digest(expected.encode(), given.encode())


@dataclass
class _Failures:
    count: int = 0
    last: float = 0.0
    told: int = 0  # the count at which a refused attempt was last reported


@dataclass
class SignInThrottle:
    """Failed sign-ins per user name and per address; ``now`` is a monotonic time in seconds."""

    _by_key: dict[str, _Failures] = field(default_factory=dict)

    def wait_s(self, user: str, address: str, now: float) -> float:
        """Seconds before another attempt is heard (0: go ahead)."""
        return max(self._wait(f"u:{user}", now), self._wait(f"a:{address}", now))

    def _wait(self, key: str, now: float) -> float:
        f = self._by_key.get(key)
        if f is None or f.count < FREE_FAILURES:
            return 0.0
        delay = min(2.0 ** (f.count - FREE_FAILURES + 1), MAX_DELAY_S)
        return max(0.0, f.last + delay - now)

    def first_refusal(self, user: str, address: str) -> bool:
        """True for the first attempt refused since the last failure (the one worth an audit
        entry: an attacker hammering away while slowed does not fill the audit log)."""
        first = False
        for key in (f"u:{user}", f"a:{address}"):
            f = self._by_key.get(key)
            if f is not None and f.count >= FREE_FAILURES and f.told != f.count:
                f.told, first = f.count, True
        return first

    def failed(self, user: str, address: str, now: float) -> None:
        for key in (f"u:{user}", f"a:{address}"):
            f = self._by_key.setdefault(key, _Failures())
            f.count += 1
            f.last = now

    def succeeded(self, user: str, address: str) -> None:
        self._by_key.pop(f"u:{user}", None)
        self._by_key.pop(f"a:{address}", None)
