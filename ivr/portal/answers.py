"""What the portal's answers mean: a status is accepted or becomes one of the portal errors of
:mod:`ivr.core.errors`, a closed-requests page is checked against the contract
(docs/portal-api.yaml), and every ``requests`` exception is translated in exactly one place,
:func:`translate_requests_error`. No error carries the token.
"""

from __future__ import annotations

from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from typing import Any

import requests
from requests.structures import CaseInsensitiveDict

from ivr.core.errors import (
    PortalAuthError,
    PortalError,
    PortalRedirected,
    PortalRejected,
    PortalUnavailable,
)
from ivr.core.untrusted import TooDeep, json_loads, printable
from ivr.portal.transport import redact_credentials

BODY_LIMIT = 500
"""How much of a rejecting answer's body is kept (PortalRejected.body)."""

# Every exception ``requests`` defines, and what it means for us. Looked up along the
# exception's MRO, so the most specific entry wins. The completeness test checks that
# every RequestException subclass in requests.exceptions is listed here by name.
_REQUESTS_ERRORS: dict[type[BaseException], type[PortalError]] = {
    # The portal (or the way to it) is down or slow: a later try may work.
    requests.exceptions.ConnectTimeout: PortalUnavailable,
    requests.exceptions.ReadTimeout: PortalUnavailable,
    requests.exceptions.Timeout: PortalUnavailable,
    requests.exceptions.SSLError: PortalUnavailable,
    requests.exceptions.ProxyError: PortalUnavailable,
    requests.exceptions.ConnectionError: PortalUnavailable,
    requests.exceptions.ChunkedEncodingError: PortalUnavailable,
    requests.exceptions.ContentDecodingError: PortalUnavailable,
    requests.exceptions.RetryError: PortalUnavailable,
    requests.exceptions.HTTPError: PortalUnavailable,
    requests.exceptions.RequestException: PortalUnavailable,
    # The same request will fail the same way: bad URL/config, nonsense answer, our bug.
    requests.exceptions.JSONDecodeError: PortalRejected,
    requests.exceptions.InvalidJSONError: PortalRejected,
    requests.exceptions.TooManyRedirects: PortalRejected,
    requests.exceptions.URLRequired: PortalRejected,
    requests.exceptions.MissingSchema: PortalRejected,
    requests.exceptions.InvalidSchema: PortalRejected,
    requests.exceptions.InvalidURL: PortalRejected,
    requests.exceptions.InvalidProxyURL: PortalRejected,
    requests.exceptions.InvalidHeader: PortalRejected,
    requests.exceptions.StreamConsumedError: PortalRejected,
    requests.exceptions.UnrewindableBodyError: PortalRejected,
}


class MalformedPage(PortalRejected):
    """A closed-requests page that is not the contract's JSON (an intermediary's error page,
    a cut answer). A :class:`PortalRejected` for the caller, but the pull asks again within
    its retry budget: a GET is safe to repeat."""


def translate_requests_error(exc: requests.RequestException, url: str) -> PortalError:
    """The portal error for a ``requests`` exception (raise it ``from exc``)."""
    for cls in type(exc).__mro__:
        target = _REQUESTS_ERRORS.get(cls)
        if target is not None:
            return target(f"portal request failed: {type(exc).__name__}", url=url)
    return PortalUnavailable(f"portal request failed: {type(exc).__name__}", url=url)


@dataclass(frozen=True)
class Answer:
    """An HTTP answer as read: its status, headers and (capped) body."""

    status: int
    headers: CaseInsensitiveDict[str]
    body: bytes


def retry_after(value: str | None) -> float | None:
    """Retry-After in seconds; an HTTP-date or garbage gives None (caller's own backoff)."""
    if value is None:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    return seconds if seconds >= 0 else None


def body_excerpt(answer: Answer, token: str) -> str:
    """The start of the answer's body, the token redacted (before truncating, so no prefix of
    a secret survives at the cut)."""
    text = answer.body.decode("utf-8", errors="replace")
    return redact_credentials(text, token)[:BODY_LIMIT]


def raise_for_status(
    answer: Answer,
    url: str,
    base: str,
    token: str,
    *,
    ok: AbstractSet[int],
    what: str = "request",
) -> None:
    """Nothing if the status is in ``ok``; else the portal error it means, naming ``what``."""
    status = answer.status
    if status in ok:
        return
    if 300 <= status < 400:
        location = printable(redact_credentials(answer.headers.get("Location", "(none)"), token))[
            :300
        ]
        raise PortalRedirected(
            f"the portal at {base} answered HTTP {status} for {what}, redirecting to "
            f"{location}; redirects are not followed: check portal.base_url",
            url=url,
            status=status,
            location=location,
        )
    if status in (401, 403):
        raise PortalAuthError(
            f"the portal at {base} refused our token for {what} (HTTP {status}); "
            "check portal.token",
            url=url,
            status=status,
        )
    if status in (408, 429) or status >= 500:
        raise PortalUnavailable(
            f"portal unavailable for {what}: HTTP {status}",
            url=url,
            status=status,
            retry_after=retry_after(answer.headers.get("Retry-After")),
        )
    body = body_excerpt(answer, token)
    raise PortalRejected(
        f"portal rejected {what}: HTTP {status}: {body[:200]}",
        url=url,
        status=status,
        body=body,
    )


def parse_page(
    answer: Answer, url: str, page_size: int, token: str
) -> tuple[list[dict[str, Any]], str | None]:
    """The items and the next cursor of a closed-requests page, checked against the contract."""
    try:
        page = json_loads(answer.body)  # deep nesting (TooDeep) is a ValueError too
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError both are
        reason = f"not JSON: {exc}" if isinstance(exc, TooDeep) else "not JSON"
        raise MalformedPage(
            f"portal page is {reason}", url=url, status=200, body=body_excerpt(answer, token)
        ) from exc
    if (
        not isinstance(page, dict)
        or not isinstance(page.get("items"), list)
        or "next_cursor" not in page
        or not isinstance(page["next_cursor"], str | None)
    ):
        raise MalformedPage(
            "portal page lacks items/next_cursor",
            url=url,
            status=200,
            body=body_excerpt(answer, token),
        )
    items: list[dict[str, Any]] = page["items"]
    if len(items) > page_size:
        raise PortalRejected(
            f"portal page has {len(items)} items, more than the limit={page_size} asked for",
            url=url,
            status=200,
        )
    cursor: str | None = page["next_cursor"]
    return items, cursor
