"""The one exception tree of ivr-rating.

Split by whose fault it is and whether a retry can help::

    IvrError
    +-- ConfigError              bad configuration; names the key (operator's fault)
    +-- PortalError              anything on the portal link; carries the URL, never the token
    |   +-- PortalUnavailable    5xx, 429, timeouts, connection errors: retry later
    |   +-- PortalRejected       404/422/400 or a malformed answer: retrying won't help
    |   +-- PortalMisconfigured  our side of the link is wrong: stop and alarm until fixed
    |       +-- PortalAuthError  401/403: the token
    |       +-- PortalRedirected 3xx: portal.base_url (the answer's Location is shown)
    +-- ImportStopped            a stop (SIGTERM) was asked for in the middle of an import
    +-- SipError                 anything on the SIP side
    |   +-- RegistrationFailed   the registrar refused or never answered
    |   +-- DialFailed           an INVITE could not be sent (socket, ports): our side or network
    +-- CallFlowError            an event the call state machine does not accept: our bug
    +-- StorageError             the database refused something we relied on
    |   +-- DatabaseUnavailable  cannot connect (server down, wrong host, login refused)
    |   +-- SchemaMismatch       the schema is not the one this version needs (db upgrade)
    |   +-- AlreadyStored        a row with this key is stored already (a concurrent writer)
    |   +-- StorageRefused       the database refused a write (a constraint, a value it cannot hold)
    +-- RunnerLocked             another runner already works on this database
"""

from __future__ import annotations

from collections.abc import Sequence


class IvrError(Exception):
    """Base of every error ivr-rating raises on purpose."""


class ConfigError(IvrError):
    """The configuration is invalid. ``key`` is the dotted path of the (first) offending key;
    ``problems`` holds every (key, message) found, so one check reports them all."""

    def __init__(self, key: str, message: str, problems: Sequence[tuple[str, str]] = ()) -> None:
        self.problems = list(problems) or [(key, message)]
        super().__init__("\n".join(f"{k}: {m}" if k else m for k, m in self.problems))
        self.key = key
        self.message = message

    @classmethod
    def of(cls, problems: Sequence[tuple[str, str]]) -> ConfigError:
        return cls(problems[0][0], problems[0][1], problems)


class PortalError(IvrError):
    """A portal call failed. ``url`` is where we went; the token is never part of it."""

    def __init__(self, message: str, *, url: str, status: int | None = None) -> None:
        super().__init__(f"{message} ({url})")
        self.url = url
        self.status = status


class PortalUnavailable(PortalError):
    """5xx, 429, timeout or connection error: the same request may succeed later.

    ``retry_after`` is the portal's Retry-After in seconds, when it sent one."""

    def __init__(
        self,
        message: str,
        *,
        url: str,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, url=url, status=status)
        self.retry_after = retry_after


class PortalRejected(PortalError):
    """The portal refused this request for good (404/422/400) or answered nonsense.

    ``body`` keeps the portal's answer (truncated) for the dead-letter record."""

    def __init__(
        self, message: str, *, url: str, status: int | None = None, body: str = ""
    ) -> None:
        super().__init__(message, url=url, status=status)
        self.body = body


class PortalMisconfigured(PortalError):
    """Our configuration of the portal is wrong: nothing will work until it is fixed, and
    nothing is given up meanwhile (ratings stay pending, days stay incomplete)."""


class PortalAuthError(PortalMisconfigured):
    """401/403: the token is wrong or expired. Nothing will work until it is fixed."""


class PortalRedirected(PortalMisconfigured):
    """A 3xx answer: ``portal.base_url`` points at the wrong place (redirects are never
    followed: the token would go wherever the portal, or someone in between, says).
    ``location`` is the answer's Location header, credentials redacted."""

    def __init__(
        self, message: str, *, url: str, status: int | None = None, location: str = ""
    ) -> None:
        super().__init__(message, url=url, status=status)
        self.location = location


class ImportStopped(IvrError):
    """A stop (SIGTERM/SIGINT) was asked for in the middle of an import. What was fetched is
    stored; the day stays incomplete and is imported again later."""


class SipError(IvrError):
    """Anything that went wrong on the SIP side."""


class RegistrationFailed(SipError):
    """The registrar refused our credentials or never answered."""


class DialFailed(SipError):
    """An INVITE could not be sent at all (no RTP port, socket error)."""


class CallFlowError(IvrError):
    """The call state machine got an event it does not accept in its state: a bug of ours."""


class StorageError(IvrError):
    """The database refused something the service relied on."""


class DatabaseUnavailable(StorageError):
    """The database cannot be reached. The message names it without its password."""


class SchemaMismatch(StorageError):
    """The database's schema is not this version's (a read-only command does not upgrade)."""


class AlreadyStored(StorageError):
    """A row with this key is stored already: another node or import wrote it meanwhile."""


class StorageRefused(StorageError):
    """The database refused a statement for its data (a constraint, a value it cannot hold);
    the same statement will be refused again."""


class RunnerLocked(IvrError):
    """Another runner already works on this database."""
