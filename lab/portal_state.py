"""What the emulated portal holds: the closed requests it serves, paged by closed_at, and the
ratings and comments it has recorded (a :class:`RatingBook`, which outlives one emulator)."""

from __future__ import annotations

import base64
import bisect
import hashlib
import json
import threading
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs

from lab.portal_contract import (
    DEFAULT_LIMIT,
    MAX_LIMIT,
    Answer,
    aware,
    comment_problem,
    error_answer,
    json_answer,
    rating_problem,
)


class RatingBook:
    """The portal's record of ratings: survives an emulator stop/start when passed on."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.ratings: list[tuple[str, str, dict[str, Any]]] = []
        self.keys: set[str] = set()
        # (request_id, survey_id) -> the WAV stored, and every comment stored, in order
        self.comments: dict[tuple[str, str], bytes] = {}
        self.comment_log: list[tuple[str, str, str]] = []  # request, survey, sha256

    def rate(self, request_id: str, key: str | None, raw_body: bytes, repeat_status: int) -> Answer:
        """Record a Rating under its Idempotency-Key; a repeated key answers ``repeat_status``."""
        if not key:
            return error_answer(400, "Idempotency-Key header is required")
        try:
            body = json.loads(raw_body)
        except ValueError:
            return error_answer(422, "body is not JSON")
        problem = rating_problem(body, key)
        if problem is not None:
            return error_answer(422, problem)
        with self.lock:
            if key in self.keys:
                return json_answer(repeat_status, {"status": "already recorded"})
            self.keys.add(key)
            self.ratings.append((request_id, key, body))
        return json_answer(201, {"status": "recorded"})

    def rated(self, request_id: str, survey_id: str) -> bool:
        with self.lock:
            return any(r == request_id and k == survey_id for r, k, _ in self.ratings)

    def store_comment(
        self, request_id: str, survey_id: str, headers: dict[str, str], wav: bytes
    ) -> Answer:
        """Keep a rating's comment (once: the same WAV again is no new comment)."""
        problem = comment_problem(wav, headers)
        if problem is not None:
            return error_answer(*problem)
        with self.lock:
            if self.comments.get((request_id, survey_id)) == wav:
                return json_answer(200, {"status": "already stored"})
            self.comments[(request_id, survey_id)] = wav
            self.comment_log.append((request_id, survey_id, hashlib.sha256(wav).hexdigest()))
        return json_answer(201, {"status": "stored"})


class ClosedRequests:
    """The closed requests served, indexed once: pages are bisected by closed_at, ratings look
    ids up in a set. Items without an aware ``closed_at`` come in every window, last."""

    def __init__(self, items: list[dict[str, Any]]) -> None:
        dated: list[tuple[datetime, int, Any]] = []
        self._undated: list[Any] = []
        self._ids: set[str] = set()
        for index, item in enumerate(items):
            if isinstance(item, dict) and isinstance(item.get("id"), str):
                self._ids.add(item["id"])
            closed_at = aware(item.get("closed_at")) if isinstance(item, dict) else None
            if closed_at is None:
                self._undated.append(item)
            else:
                dated.append((closed_at, index, item))
        dated.sort(key=lambda entry: (entry[0], entry[1]))
        self._dated_keys = [closed_at for closed_at, _, _ in dated]
        self._dated = [item for _, _, item in dated]
        self._lock = threading.Lock()
        self._overlap = 0
        self._endless_cursors = False
        self._cursor_serial = 0

    def __contains__(self, request_id: object) -> bool:
        return request_id in self._ids

    def overlap_next_page(self, k: int) -> None:
        with self._lock:
            self._overlap = k

    def endless_cursors(self, on: bool) -> None:
        with self._lock:
            self._endless_cursors = on

    def page(self, query_string: str) -> Answer:
        """One page of ``GET /requests/closed?...``."""
        with self._lock:
            endless, self._cursor_serial = self._endless_cursors, self._cursor_serial + 1
            serial = self._cursor_serial
        if endless:
            return json_answer(200, {"items": [], "next_cursor": f"endless-{serial}"})
        query = {k: v[-1] for k, v in parse_qs(query_string, keep_blank_values=True).items()}
        closed_from = aware(query.get("closed_from"))
        closed_to = aware(query.get("closed_to"))
        if closed_from is None or closed_to is None:
            return error_answer(400, "closed_from and closed_to must be date-times with offset")
        if closed_to < closed_from:
            return error_answer(400, "closed_to is before closed_from")
        try:
            limit = int(query.get("limit", DEFAULT_LIMIT))
        except ValueError:
            return error_answer(400, "limit must be an integer")
        if not 1 <= limit <= MAX_LIMIT:
            return error_answer(400, f"limit must be 1..{MAX_LIMIT}")
        window = f"{closed_from.isoformat()}|{closed_to.isoformat()}"
        offset = _cursor_offset(query.get("cursor"), window)
        if isinstance(offset, Answer):
            return offset
        return self._page_from(self._matching(closed_from, closed_to), offset, limit, window)

    def _page_from(self, matching: list[Any], offset: int, limit: int, window: str) -> Answer:
        with self._lock:
            overlap, self._overlap = (self._overlap, 0) if offset > 0 else (0, self._overlap)
        start = max(0, offset - overlap)  # shifted, but still at most `limit` items
        page = matching[start : start + limit]
        next_offset = start + len(page)
        next_cursor = (
            base64.urlsafe_b64encode(f"{next_offset}|{window}".encode()).decode()
            if next_offset < len(matching)
            else None
        )
        return json_answer(200, {"items": page, "next_cursor": next_cursor})

    def _matching(self, closed_from: datetime, closed_to: datetime) -> list[Any]:
        low = bisect.bisect_left(self._dated_keys, closed_from)
        high = bisect.bisect_left(self._dated_keys, closed_to)
        return self._dated[low:high] + self._undated


def _cursor_offset(cursor: str | None, window: str) -> int | Answer:
    """Where a cursor of this query's ``window`` resumes (0 without one), or the 400."""
    if cursor is None:
        return 0
    try:
        decoded = base64.urlsafe_b64decode(cursor.encode()).decode()
        offset_text, cursor_window = decoded.split("|", 1)
        offset = int(offset_text)
    except ValueError:
        return error_answer(400, "bad cursor")
    if cursor_window != window or offset < 0:
        return error_answer(400, "cursor belongs to another query")
    return offset
