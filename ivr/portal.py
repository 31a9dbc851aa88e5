"""The client of the city request portal: pull closed requests, push ratings.

Everything that can go wrong on the wire leaves this module as one of
:mod:`ivr.errors`' portal errors (unavailable / rejected / auth), each carrying
the URL and the HTTP status, never the token. ``requests`` exceptions are
translated in exactly one place, :func:`translate_requests_error`.

Pulling retries inside a time budget (``retry_budget_s``, 0 by default: no retry): a
429 waits the portal's Retry-After; a 5xx, a timeout, a connection error or a malformed
page waits an exponential backoff with jitter; the same page (same cursor) is asked again.
When the next wait would overrun the budget the last error is raised: the caller gives up
for now and retries the whole day later. A refused token (401/403) is never retried.
Posting ratings does not retry here: the outbox (:mod:`ivr.delivery`) does.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Iterator
from collections.abc import Set as AbstractSet
from datetime import datetime
from typing import Any
from urllib.parse import quote, urlencode

import requests

from ivr.clock import SYSTEM_CLOCK, Clock
from ivr.errors import PortalAuthError, PortalError, PortalRejected, PortalUnavailable
from ivr.untrusted import json_loads

log = logging.getLogger(__name__)

BODY_LIMIT = 500
"""How much of a rejecting answer's body is kept (PortalRejected.body)."""

DELIVERED = frozenset({200, 201, 409})
"""Rating answers that all mean "the portal has it": 201 new, 200/409 a repeat."""

COMMENT_STORED = frozenset({200, 201})
"""Comment answers that mean "the portal has it": 201 stored, 200 the same one before."""

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


def _retry_after(value: str | None) -> float | None:
    """Retry-After in seconds; an HTTP-date or garbage gives None (caller's own backoff)."""
    if value is None:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    return seconds if seconds >= 0 else None


class PortalClient:
    """One portal, one token. Pass a ``session`` to share connections or to test."""

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        timeout_s: float,
        page_size: int,
        session: requests.Session | None = None,
        retry_budget_s: float = 0.0,
        backoff_base_s: float = 1.0,
        backoff_cap_s: float = 60.0,
        clock: Clock = SYSTEM_CLOCK,
        rng: random.Random | None = None,
    ) -> None:
        if not 1 <= page_size <= 1000:
            raise ValueError(f"page_size must be 1..1000, got {page_size}")
        if retry_budget_s < 0 or backoff_base_s <= 0 or backoff_cap_s < backoff_base_s:
            raise ValueError("retry budget must be >= 0 and 0 < backoff base <= backoff cap")
        self._retry_budget_s = retry_budget_s
        self._backoff_base_s = backoff_base_s
        self._backoff_cap_s = backoff_cap_s
        self._clock = clock
        self._rng = rng or random.Random()
        self._base = base_url.rstrip("/")
        self._token = token
        self._timeout_s = timeout_s
        self._page_size = page_size
        self._owns_session = session is None
        self._session = session if session is not None else requests.Session()

    def close(self) -> None:
        """Close the session if this client created it."""
        if self._owns_session:
            self._session.close()

    def __enter__(self) -> PortalClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def iter_closed(self, closed_from: datetime, closed_to: datetime) -> Iterator[dict[str, Any]]:
        """Yield every item closed in [closed_from, closed_to), page by page, oldest first.

        Items are yielded as the portal sent them, unchecked: :func:`ivr.intake.parse_item`
        validates each on its own. Both bounds must be timezone-aware."""
        for name, moment in (("closed_from", closed_from), ("closed_to", closed_to)):
            if moment.utcoffset() is None:
                raise ValueError(f"{name} must be timezone-aware, got {moment!r}")
        query = {
            "closed_from": closed_from.isoformat(),
            "closed_to": closed_to.isoformat(),
            "limit": str(self._page_size),
        }
        cursor: str | None = None
        seen_cursors: set[str] = set()
        give_up_at = self._clock.monotonic() + self._retry_budget_s
        while True:
            params = dict(query, cursor=cursor) if cursor is not None else query
            url = f"{self._base}/requests/closed?{urlencode(params)}"
            items, cursor = self._fetch_page(url, give_up_at)
            log.info(
                "portal page fetched: %d items, next cursor %s",
                len(items),
                "present" if cursor is not None else "absent",
            )
            yield from items
            if cursor is None:
                return
            if cursor in seen_cursors:
                raise PortalRejected("portal repeated a page cursor", url=url, status=200)
            seen_cursors.add(cursor)

    def _fetch_page(self, url: str, give_up_at: float) -> tuple[list[dict[str, Any]], str | None]:
        """One page, asked again after 429/5xx/timeouts/malformed answers until ``give_up_at``."""
        failures = 0
        while True:
            try:
                response = self._send("GET", url)
                self._raise_for_status(response, url, ok={200}, what="closed requests page")
                return self._parse_page(response, url)
            except (PortalUnavailable, MalformedPage) as exc:
                retry_after = exc.retry_after if isinstance(exc, PortalUnavailable) else None
                if retry_after is not None:
                    wait = retry_after
                else:
                    ceiling = min(
                        self._backoff_cap_s, self._backoff_base_s * 2 ** min(failures, 30)
                    )
                    wait = self._rng.uniform(ceiling / 2, ceiling)
                failures += 1
                left = give_up_at - self._clock.monotonic()
                if wait > left:
                    log.warning(
                        "portal page failed %d time(s), giving up for now: %s", failures, exc
                    )
                    raise
                log.warning("portal page failed (%s); asking again in %.1f s", exc, wait)
                self._clock.sleep(wait)

    def post_rating(self, request_id: str, rating: dict[str, Any]) -> int:
        """Deliver one rating; return 201 (recorded) or 200/409 (already had it)."""
        url = f"{self._base}/requests/{quote(request_id, safe='')}/ratings"
        headers = {"Idempotency-Key": str(rating["survey_id"])}
        response = self._send("POST", url, headers=headers, json_body=rating)
        self._raise_for_status(response, url, ok=DELIVERED, what=f"rating for {request_id}")
        log.info("rating delivered for request %s: HTTP %d", request_id, response.status_code)
        return response.status_code

    def put_comment(
        self, request_id: str, survey_id: str, wav: bytes, duration_s: float, sha256: str
    ) -> int:
        """Upload a spoken comment (API 1.1) after its rating was accepted; 201 stored or
        200 (the same recording was stored before)."""
        url = (
            f"{self._base}/requests/{quote(request_id, safe='')}"
            f"/ratings/{quote(survey_id, safe='')}/comment"
        )
        headers = {
            "Content-Type": "audio/wav",
            "X-Comment-Duration": f"{duration_s:.2f}",
            "X-Content-SHA256": sha256,
        }
        response = self._send("PUT", url, headers=headers, data=wav)
        self._raise_for_status(
            response, url, ok=COMMENT_STORED, what=f"comment for request {request_id}"
        )
        log.info("comment delivered for request %s: HTTP %d", request_id, response.status_code)
        return response.status_code

    def _send(
        self,
        method: str,
        url: str,
        *,
        headers: dict[str, str] | None = None,
        json_body: dict[str, Any] | None = None,
        data: bytes | None = None,
    ) -> requests.Response:
        all_headers = {"Authorization": f"Bearer {self._token}", "Accept": "application/json"}
        all_headers.update(headers or {})
        try:
            return self._session.request(
                method,
                url,
                headers=all_headers,
                json=json_body,
                data=data,
                timeout=self._timeout_s,
                allow_redirects=False,
            )
        except requests.RequestException as exc:
            raise translate_requests_error(exc, url) from exc

    def _body_excerpt(self, response: requests.Response) -> str:
        # Redact before truncating, so no prefix of the token survives at the cut.
        text = response.text.replace(self._token, "***") if self._token else response.text
        return text[:BODY_LIMIT]

    def _raise_for_status(
        self,
        response: requests.Response,
        url: str,
        *,
        ok: AbstractSet[int],
        what: str = "request",
    ) -> None:
        status = response.status_code
        if status in ok:
            return
        if status in (401, 403):
            raise PortalAuthError(
                f"the portal at {self._base} refused our token for {what} (HTTP {status}); "
                "check portal.token",
                url=url,
                status=status,
            )
        if status in (408, 429) or status >= 500:
            raise PortalUnavailable(
                f"portal unavailable for {what}: HTTP {status}",
                url=url,
                status=status,
                retry_after=_retry_after(response.headers.get("Retry-After")),
            )
        body = self._body_excerpt(response)
        raise PortalRejected(
            f"portal rejected {what}: HTTP {status}: {body[:200]}",
            url=url,
            status=status,
            body=body,
        )

    def _parse_page(
        self, response: requests.Response, url: str
    ) -> tuple[list[dict[str, Any]], str | None]:
        try:
            # Not response.json(): requests' own errors stay in _send.
            page = json_loads(response.content)  # deep nesting: a ValueError too
        except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError both are
            raise MalformedPage(
                "portal page is not JSON", url=url, status=200, body=self._body_excerpt(response)
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
                body=self._body_excerpt(response),
            )
        items: list[dict[str, Any]] = page["items"]
        cursor: str | None = page["next_cursor"]
        return items, cursor
