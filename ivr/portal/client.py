"""The client of the city request portal: pull closed requests, push ratings.

Everything that can go wrong on the wire leaves this module as one of
:mod:`ivr.core.errors`' portal errors (unavailable / rejected / auth), each carrying
the URL and the HTTP status, never the token. What an answer means (and the translation of
``requests`` exceptions, in exactly one place) is :mod:`ivr.portal.answers`.

Pulling retries inside a time budget (``retry_budget_s``, 0 by default: no retry): a
429 waits the portal's Retry-After; a 5xx, a timeout, a connection error or a malformed
page waits an exponential backoff with jitter; the same page (same cursor) is asked again.
When the next wait would overrun the budget the last error is raised: the caller gives up
for now and retries the whole day later. A refused token (401/403) is never retried.
Posting ratings does not retry here: the outbox (:mod:`ivr.campaign.delivery`) does.

Every call is bounded (:mod:`ivr.portal.transport`): a wall-clock deadline for the whole
exchange, body included (``request_deadline_s``: a portal trickling its answer is cut there
and counts as unavailable); a page is streamed and abandoned past ``max_page_bytes``; a page
must hold at most the ``limit`` asked for; one import follows at most ``max_pages`` cursors.
Each ends in a named error, and what came before it is kept by the importer. A 3xx is never
followed: it is :class:`PortalRedirected` (a configuration alarm showing the Location). A stop
event (SIGTERM) ends an import between pages, during a retry wait or in the middle of a page
(:class:`ImportStopped`); rating POSTs are not interrupted (the shutdown delivers).
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Iterator
from datetime import datetime
from typing import Any
from urllib.parse import quote, urlencode

import requests

from ivr.core.clock import SYSTEM_CLOCK, Clock
from ivr.core.errors import (
    ImportStopped,
    PortalRejected,
    PortalUnavailable,
)
from ivr.core.policy import backoff_s
from ivr.portal.answers import (
    Answer,
    MalformedPage,
    parse_page,
    raise_for_status,
    translate_requests_error,
)
from ivr.portal.transport import (
    BodyTooLarge,
    RequestWatch,
    bounded_session,
    read_capped,
)

log = logging.getLogger(__name__)

ANSWER_BYTES = 64 * 1024
"""How much of an answer that is not a page is read (ratings, errors): only an excerpt is kept."""

REQUEST_DEADLINE_S = 60.0
MAX_PAGE_BYTES = 16 * 1024 * 1024
MAX_PAGES = 1000
STOP_POLL_S = 0.25
"""A retry wait looks at the stop event this often."""

DELIVERED = frozenset({200, 201, 409})
"""Rating answers that all mean "the portal has it": 201 new, 200/409 a repeat."""

COMMENT_STORED = frozenset({200, 201})
"""Comment answers that mean "the portal has it": 201 stored, 200 the same one before."""


class PortalClient:
    """One portal, one token. Pass a ``session`` to share connections or to test; ``stop``
    (an event set on SIGTERM) ends an import early with :class:`ImportStopped`."""

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
        request_deadline_s: float = REQUEST_DEADLINE_S,
        max_page_bytes: int = MAX_PAGE_BYTES,
        max_pages: int = MAX_PAGES,
        stop: threading.Event | None = None,
    ) -> None:
        if not 1 <= page_size <= 1000:
            raise ValueError(f"page_size must be 1..1000, got {page_size}")
        if retry_budget_s < 0 or backoff_base_s <= 0 or backoff_cap_s < backoff_base_s:
            raise ValueError("retry budget must be >= 0 and 0 < backoff base <= backoff cap")
        if request_deadline_s <= 0 or max_page_bytes < 1 or max_pages < 1:
            raise ValueError("request deadline, page byte cap and page cap must be positive")
        self._retry_budget_s = retry_budget_s
        self._backoff_base_s = backoff_base_s
        self._backoff_cap_s = backoff_cap_s
        self._clock = clock
        self._rng = rng or random.Random()
        self._base = base_url.rstrip("/")
        self._token = token
        self._timeout_s = timeout_s
        self._page_size = page_size
        self._deadline_s = request_deadline_s
        self._max_page_bytes = max_page_bytes
        self._max_pages = max_pages
        self._stop = stop
        self._owns_session = session is None
        self._session = bounded_session(session)

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

        Items are yielded as the portal sent them, unchecked: :func:`ivr.core.intake.parse_item`
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
        pages = 0
        give_up_at = self._clock.monotonic() + self._retry_budget_s
        while True:
            params = dict(query, cursor=cursor) if cursor is not None else query
            url = f"{self._base}/requests/closed?{urlencode(params)}"
            self._check_stop(url, pages)
            items, cursor = self._fetch_page(url, give_up_at)
            pages += 1
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
            if pages >= self._max_pages:
                raise PortalRejected(
                    f"portal still gives a next cursor after {pages} pages (portal.max_pages); "
                    "import stopped, the day is tried again later",
                    url=url,
                    status=200,
                )
            seen_cursors.add(cursor)

    def _check_stop(self, url: str, pages: int) -> None:
        if self._stop is not None and self._stop.is_set():
            raise ImportStopped(f"import stopped by a signal after {pages} page(s) ({url})")

    def _fetch_page(self, url: str, give_up_at: float) -> tuple[list[dict[str, Any]], str | None]:
        """One page, asked again after 429/5xx/timeouts/malformed answers until ``give_up_at``."""
        failures = 0
        while True:
            try:
                answer = self._exchange("GET", url, page=True)
                raise_for_status(
                    answer, url, self._base, self._token, ok={200}, what="closed requests page"
                )
                return parse_page(answer, url, self._page_size, self._token)
            except (PortalUnavailable, MalformedPage) as exc:
                retry_after = exc.retry_after if isinstance(exc, PortalUnavailable) else None
                wait = backoff_s(
                    failures, self._backoff_base_s, self._backoff_cap_s, self._rng, retry_after
                )
                failures += 1
                left = give_up_at - self._clock.monotonic()
                if wait > left:
                    log.warning(
                        "portal page failed %d time(s), giving up for now: %s", failures, exc
                    )
                    raise
                log.warning("portal page failed (%s); asking again in %.1f s", exc, wait)
                self._pause(wait, url)

    def _pause(self, seconds: float, url: str) -> None:
        """Sleep before asking again; a stop ends the wait (and the import) within
        ``STOP_POLL_S``."""
        if self._stop is None:
            self._clock.sleep(seconds)
            return
        wake_at = self._clock.monotonic() + seconds
        while True:
            if self._stop.is_set():
                raise ImportStopped(f"import stopped by a signal while waiting to retry ({url})")
            left = wake_at - self._clock.monotonic()
            if left <= 0:
                return
            self._clock.sleep(min(left, STOP_POLL_S))

    def post_rating(self, request_id: str, rating: dict[str, Any]) -> int:
        """Deliver one rating; return 201 (recorded) or 200/409 (already had it)."""
        url = f"{self._base}/requests/{quote(request_id, safe='')}/ratings"
        headers = {"Idempotency-Key": str(rating["survey_id"])}
        answer = self._exchange("POST", url, headers=headers, json_body=rating)
        raise_for_status(
            answer, url, self._base, self._token, ok=DELIVERED, what=f"rating for {request_id}"
        )
        # The outbox logs the one INFO line of a delivery (with the outcome).
        log.debug("rating posted for request %s: HTTP %d", request_id, answer.status)
        return answer.status

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
        answer = self._exchange("PUT", url, headers=headers, data=wav)
        raise_for_status(
            answer,
            url,
            self._base,
            self._token,
            ok=COMMENT_STORED,
            what=f"comment for request {request_id}",
        )
        log.debug("comment put for request %s: HTTP %d", request_id, answer.status)
        return answer.status

    def _exchange(
        self,
        method: str,
        url: str,
        *,
        headers: dict[str, str] | None = None,
        json_body: dict[str, Any] | None = None,
        data: bytes | None = None,
        page: bool = False,
    ) -> Answer:
        """One request and its (capped) body, within the deadline; a page is also ended by
        the stop event."""
        all_headers = {"Authorization": f"Bearer {self._token}", "Accept": "application/json"}
        all_headers.update(headers or {})
        watch = RequestWatch(self._deadline_s, self._stop if page else None)
        try:
            with watch.running():
                return self._request(method, url, all_headers, json_body, data, page)
        except BodyTooLarge as exc:
            raise PortalRejected(
                f"portal page is larger than {self._max_page_bytes} bytes "
                f"(portal.max_page_bytes); stopped reading at {exc.seen} bytes",
                url=url,
                status=200,
            ) from None
        except Exception as exc:
            if watch.fired == "stop":
                raise ImportStopped(
                    f"import stopped by a signal in the middle of a page ({url})"
                ) from exc
            if watch.fired == "deadline":
                raise PortalUnavailable(
                    f"portal did not finish answering within {self._deadline_s:g} s "
                    "(portal.request_deadline_s)",
                    url=url,
                ) from exc
            if isinstance(exc, requests.RequestException):
                raise translate_requests_error(exc, url) from exc
            raise

    def _request(
        self,
        method: str,
        url: str,
        headers: dict[str, str],
        json_body: dict[str, Any] | None,
        data: bytes | None,
        page: bool,
    ) -> Answer:
        """Send, and read the body: a whole page (a 200 to a page request) up to
        ``max_page_bytes`` or it fails, any other answer up to ``ANSWER_BYTES`` (an excerpt)."""
        response = self._session.request(
            method,
            url,
            headers=headers,
            json=json_body,
            data=data,
            timeout=self._timeout_s,
            allow_redirects=False,
            stream=True,
        )
        try:
            whole_page = page and response.status_code == 200
            limit = self._max_page_bytes if whole_page else ANSWER_BYTES
            body = read_capped(response, limit, must_fit=whole_page)
        finally:
            response.close()
        return Answer(response.status_code, response.headers, body)
