"""PortalClient against the real portal emulator over loopback."""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import requests

from ivr.core.errors import PortalAuthError, PortalRejected, PortalUnavailable
from ivr.portal.answers import _REQUESTS_ERRORS, translate_requests_error
from ivr.portal.client import PortalClient
from lab.portal_emulator import PortalEmulator
from lab.sample_requests import make_items

MINSK = ZoneInfo("Europe/Minsk")
DAY = date(2026, 3, 1)
DAY_START = datetime(2026, 3, 1, tzinfo=MINSK)
DAY_END = DAY_START + timedelta(days=1)
TOKEN = "test-token"
PHONES = [f"+37529{n:07d}" for n in range(1234560, 1234567)]  # 7 items


def rating(survey_id: str = "survey-1", outcome: str = "satisfied") -> dict[str, Any]:
    return {
        "survey_id": survey_id,
        "outcome": outcome,
        "reason": None,
        "digit": "1",
        "answered_at": "2026-03-02T10:00:05+03:00",
        "completed_at": "2026-03-02T10:00:30+03:00",
        "attempts": 1,
        "return_for_rework": outcome == "unsatisfied",
    }


@pytest.fixture
def items() -> list[dict[str, Any]]:
    day_items = make_items(DAY, "Europe/Minsk", PHONES)
    # Outside the window on both sides, and exactly on its (exclusive) end.
    before = dict(day_items[0], id="REQ-BEFORE", closed_at="2026-02-28T23:59:59+03:00")
    at_end = dict(day_items[0], id="REQ-AT-END", closed_at="2026-03-01T21:00:00+00:00")
    return [*reversed(day_items), before, at_end]


@pytest.fixture
def portal(items: list[dict[str, Any]]) -> Iterator[PortalEmulator]:
    with PortalEmulator(items, token=TOKEN) as emulator:
        yield emulator


def client_for(portal: PortalEmulator, **kwargs: Any) -> PortalClient:
    options: dict[str, Any] = {"timeout_s": 2.0, "page_size": 3, "token": TOKEN}
    options.update(kwargs)
    token = options.pop("token")
    return PortalClient(portal.base_url, token, **options)


# -- paging -------------------------------------------------------------------------------


@pytest.mark.parametrize("page_size", [1, 3, 7, 1000], ids=lambda n: f"page_size={n}")
def test_iter_closed_pages_through_the_window_oldest_first(
    portal: PortalEmulator, page_size: int, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="ivr.portal.client")
    with client_for(portal, page_size=page_size) as client:
        got = list(client.iter_closed(DAY_START, DAY_END))

    assert [item["id"] for item in got] == [f"REQ-{1000001 + i}" for i in range(7)]
    pages = -(-7 // page_size)
    gets = [path for method, path in portal.requests_seen if method == "GET"]
    assert len(gets) == pages
    assert all(f"limit={page_size}" in path for path in gets)
    page_lines = [r for r in caplog.records if r.message.startswith("portal page fetched")]
    assert len(page_lines) == pages
    assert page_lines[-1].message.endswith("next cursor absent")


def test_iter_closed_sends_rfc3339_bounds_with_offset(portal: PortalEmulator) -> None:
    with client_for(portal) as client:
        list(client.iter_closed(DAY_START, DAY_END))
    first = portal.requests_seen[0][1]
    assert "closed_from=2026-03-01T00%3A00%3A00%2B03%3A00" in first
    assert "closed_to=2026-03-02T00%3A00%3A00%2B03%3A00" in first


def test_iter_closed_empty_window(portal: PortalEmulator) -> None:
    with client_for(portal) as client:
        assert (
            list(client.iter_closed(DAY_END + timedelta(days=5), DAY_END + timedelta(days=6))) == []
        )


def test_iter_closed_refuses_naive_bounds(portal: PortalEmulator) -> None:
    with client_for(portal) as client, pytest.raises(ValueError, match="closed_from"):
        list(client.iter_closed(datetime(2026, 3, 1), DAY_END))


def test_bad_query_is_rejected(portal: PortalEmulator) -> None:
    with client_for(portal) as client, pytest.raises(PortalRejected) as caught:
        list(client.iter_closed(DAY_END, DAY_START))
    assert caught.value.status == 400
    assert "closed_to is before closed_from" in caught.value.body


@pytest.mark.parametrize(
    "body",
    [b"<html>Bad gateway</html>", b'{"data": []}', b'{"items": []}', b"[]",
     b'{"items": {}, "next_cursor": null}', b'{"items": [], "next_cursor": 5}', b"\xff\xfe\xfa"],
    ids=["html", "no-items", "no-next-cursor", "array", "items-not-list", "cursor-not-string",
         "not-utf8"],
)  # fmt: skip
def test_malformed_page_is_rejected(portal: PortalEmulator, body: bytes) -> None:
    portal.fail_next(1, 200, body=body)
    with client_for(portal) as client, pytest.raises(PortalRejected) as caught:
        list(client.iter_closed(DAY_START, DAY_END))
    assert caught.value.status == 200
    assert "/requests/closed" in caught.value.url


def test_a_cursor_that_repeats_is_rejected_instead_of_looping(portal: PortalEmulator) -> None:
    portal.fail_next(2, 200, body=b'{"items": [], "next_cursor": "same"}')
    with client_for(portal) as client, pytest.raises(PortalRejected, match="repeated"):
        list(client.iter_closed(DAY_START, DAY_END))


# -- authentication -------------------------------------------------------------------------


def test_wrong_token_is_an_auth_error_naming_the_url_not_the_token(portal: PortalEmulator) -> None:
    secret = "s3cret-token-value"
    with client_for(portal, token=secret) as client, pytest.raises(PortalAuthError) as caught:
        list(client.iter_closed(DAY_START, DAY_END))
    error = caught.value
    assert error.status == 401
    assert f"{portal.base_url}/requests/closed" in str(error)
    assert secret not in str(error) and secret not in repr(error.args) and secret not in error.url


def test_token_is_sent_as_bearer_on_post_too(portal: PortalEmulator) -> None:
    with client_for(portal, token="wrong") as client, pytest.raises(PortalAuthError):
        client.post_rating("REQ-1000001", rating())
    with client_for(portal) as client:
        assert client.post_rating("REQ-1000001", rating()) == 201


def test_forbidden_is_an_auth_error(portal: PortalEmulator) -> None:
    portal.fail_next(1, 403)
    with client_for(portal) as client, pytest.raises(PortalAuthError) as caught:
        client.post_rating("REQ-1000001", rating())
    assert caught.value.status == 403


# -- posting ratings ------------------------------------------------------------------------


@pytest.mark.parametrize("repeat_status", [200, 409], ids=["repeat-200", "repeat-409"])
def test_post_rating_is_idempotent(items: list[dict[str, Any]], repeat_status: int) -> None:
    with PortalEmulator(items, token=TOKEN, repeat_status=repeat_status) as portal:
        with client_for(portal) as client:
            assert client.post_rating("REQ-1000003", rating("s-3", "unsatisfied")) == 201
            assert client.post_rating("REQ-1000003", rating("s-3", "unsatisfied")) == repeat_status
        assert portal.ratings == [("REQ-1000003", "s-3", rating("s-3", "unsatisfied"))]
        assert portal.rating_posts == 2


def test_post_rating_quotes_the_request_id() -> None:
    odd_id = "REQ 7/б?x"
    with PortalEmulator([{"id": odd_id, "phone": "1", "closed_at": "x"}]) as portal:
        with client_for(portal) as client:
            assert client.post_rating(odd_id, rating()) == 201
        assert portal.ratings[0][0] == odd_id


def test_unknown_request_is_rejected_with_the_body(portal: PortalEmulator) -> None:
    with client_for(portal) as client, pytest.raises(PortalRejected) as caught:
        client.post_rating("REQ-NOPE", rating())
    assert caught.value.status == 404
    assert "REQ-NOPE" in str(caught.value) and "REQ-NOPE" in caught.value.body


@pytest.mark.parametrize(
    "change",
    [
        {"outcome": "maybe"},
        {"return_for_rework": True},
        {"attempts": -1},
        {"completed_at": "yesterday"},
    ],
    ids=["outcome-not-in-enum", "rework-without-unsatisfied", "negative-attempts", "bad-date"],
)
def test_invalid_rating_is_rejected(portal: PortalEmulator, change: dict[str, Any]) -> None:
    with client_for(portal) as client, pytest.raises(PortalRejected) as caught:
        client.post_rating("REQ-1000001", rating() | change)
    assert caught.value.status == 422
    assert portal.ratings == []


def test_rating_missing_a_required_field_is_rejected(portal: PortalEmulator) -> None:
    body = rating()
    del body["attempts"]
    with client_for(portal) as client, pytest.raises(PortalRejected) as caught:
        client.post_rating("REQ-1000001", body)
    assert caught.value.status == 422
    assert "attempts" in caught.value.body


def test_rejected_body_is_truncated_and_never_echoes_the_token(portal: PortalEmulator) -> None:
    portal.fail_next(1, 422, body=(f"token {TOKEN} " + "x" * 2000).encode())
    with client_for(portal) as client, pytest.raises(PortalRejected) as caught:
        client.post_rating("REQ-1000001", rating())
    assert len(caught.value.body) == 500
    assert TOKEN not in caught.value.body and TOKEN not in str(caught.value)


# -- unavailability -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "retry_after", "expected"),
    [(500, None, None), (502, None, None), (503, 30, 30.0), (429, 7, 7.0), (429, 0.5, 0.5)],
    ids=["500", "502", "503-retry-after", "429-retry-after", "429-fractional"],
)
@pytest.mark.parametrize("call", ["get", "post"])
def test_portal_trouble_is_unavailable_with_retry_after(
    portal: PortalEmulator,
    status: int,
    retry_after: float | None,
    expected: float | None,
    call: str,
) -> None:
    portal.fail_next(1, status, retry_after=retry_after)
    with client_for(portal) as client, pytest.raises(PortalUnavailable) as caught:
        if call == "get":
            list(client.iter_closed(DAY_START, DAY_END))
        else:
            client.post_rating("REQ-1000001", rating())
    assert caught.value.status == status
    assert caught.value.retry_after == expected


def test_client_recovers_when_the_fault_is_gone(portal: PortalEmulator) -> None:
    portal.fail_next(1, 503)
    with client_for(portal) as client:
        with pytest.raises(PortalUnavailable):
            client.post_rating("REQ-1000001", rating())
        assert client.post_rating("REQ-1000001", rating()) == 201
    assert portal.rating_posts == 2


def test_slow_portal_times_out_as_unavailable(portal: PortalEmulator) -> None:
    portal.stall_next(1, 10)
    with client_for(portal, timeout_s=0.2) as client, pytest.raises(PortalUnavailable) as caught:
        client.post_rating("REQ-1000001", rating())
    assert caught.value.status is None
    assert isinstance(caught.value.__cause__, requests.Timeout)


def test_server_that_never_answers_times_out_as_unavailable() -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()  # accepts at the kernel level, never reads or answers
        base = f"http://127.0.0.1:{silent.getsockname()[1]}/api/v1"
        with PortalClient(base, TOKEN, timeout_s=0.2, page_size=10) as client:
            with pytest.raises(PortalUnavailable) as caught:
                list(client.iter_closed(DAY_START, DAY_END))
    assert isinstance(caught.value.__cause__, requests.ReadTimeout)


def test_refused_connection_is_unavailable() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again before use: nobody listens there
    with PortalClient(f"http://127.0.0.1:{port}/api/v1", TOKEN, timeout_s=1, page_size=10) as c:
        with pytest.raises(PortalUnavailable) as caught:
            c.post_rating("REQ-1", rating())
    assert isinstance(caught.value.__cause__, requests.ConnectionError)


# -- the exception mapping ------------------------------------------------------------------


def _requests_exception_classes() -> list[type[requests.RequestException]]:
    return [
        value
        for value in vars(requests.exceptions).values()
        if isinstance(value, type) and issubclass(value, requests.RequestException)
    ]


def test_every_requests_exception_is_mapped_explicitly() -> None:
    unmapped = {cls.__name__ for cls in _requests_exception_classes()} - {
        cls.__name__ for cls in _REQUESTS_ERRORS
    }
    assert not unmapped, f"add these to ivr.portal.answers._REQUESTS_ERRORS: {sorted(unmapped)}"


@pytest.mark.parametrize("cls", _requests_exception_classes(), ids=lambda cls: cls.__name__)
def test_each_requests_exception_translates_to_its_mapped_portal_error(
    cls: type[requests.RequestException],
) -> None:
    try:
        exc = cls("boom")
    except TypeError:  # JSONDecodeError wants (msg, doc, pos)
        exc = cls("boom", "", 0)
    error = translate_requests_error(exc, "http://portal.example/x")
    assert type(error) is _REQUESTS_ERRORS[cls]
    assert error.url == "http://portal.example/x"
    assert cls.__name__ in str(error)


# -- the emulator's own contract checks and CLI -----------------------------------------------


@pytest.mark.parametrize(
    "query",
    ["limit=0", "limit=1001", "limit=x", "closed_to=2026-03-02T00:00:00", "cursor=bogus"],
    ids=["limit-0", "limit-too-big", "limit-not-int", "naive-bound", "bad-cursor"],
)
def test_emulator_answers_bad_queries_400(portal: PortalEmulator, query: str) -> None:
    params = {"closed_from": "2026-03-01T00:00:00+03:00", "closed_to": "2026-03-02T00:00:00+03:00"}
    key, value = query.split("=", 1)
    params[key] = value
    with requests.Session() as session:
        response = session.get(
            f"{portal.base_url}/requests/closed",
            params=params,
            headers={"Authorization": f"Bearer {TOKEN}"},
            timeout=2,
        )
    assert response.status_code == 400


def test_emulator_requires_the_token(portal: PortalEmulator) -> None:
    with requests.Session() as session:
        response = session.get(f"{portal.base_url}/requests/closed", timeout=2)
    assert response.status_code == 401


def test_emulator_cli_serves_and_dumps_ratings(tmp_path: Path) -> None:
    items_file = tmp_path / "items.json"
    items_file.write_text(json.dumps(make_items(DAY, "Europe/Minsk", PHONES[:2])))
    process = subprocess.Popen(
        [sys.executable, "-m", "lab.portal_emulator", "--port", "0",
         "--items", str(items_file), "--token", "cli-token"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
    )  # fmt: skip
    try:
        assert process.stderr is not None
        ready = process.stderr.readline()
        assert "listening at" in ready, ready
        base_url = ready.rsplit(" ", 1)[-1].strip()
        with PortalClient(base_url, "cli-token", timeout_s=2, page_size=1) as client:
            assert len(list(client.iter_closed(DAY_START, DAY_END))) == 2
            assert client.post_rating("REQ-1000002", rating("s-2")) == 201
        process.send_signal(signal.SIGTERM)
        out, _ = process.communicate(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0
    assert json.loads(out) == [
        {"request_id": "REQ-1000002", "idempotency_key": "s-2", "body": rating("s-2")}
    ]
