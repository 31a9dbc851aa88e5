"""Hostile requests to the control list, the analytics pages and the JSON API, on SQLite and
PostgreSQL, as every role: a wrong parameter is a 400 naming it (a page, or JSON with
``parameter``), never a 500, a traceback, a default silently put in its place, a full phone
number or a secret; what is merely odd (SQL or LIKE characters, Unicode, a well-formed mark
of another selection) is answered normally."""

from __future__ import annotations

import base64
import logging
import re
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
from hypothesis import given, strategies as st
from starlette.testclient import TestClient

from ivr.console.app import Console, create_app
from ivr.console.openapi import SPEC
from ivr.console.security import hash_password
from ivr.core.config import parse_config
from lab.pg import LOCAL_PG, temporary_schema
from storage.admin import Actor, AdminStore
from storage.api_tokens import ApiTokens
from storage.control_entries import Mark
from storage.db import make_engine, upgrade
from storage.store import Store
from tests.control_seed import PHONE, Seeded, seed
from tests.fakes import FakeClock
from tests.helpers import config_data
from tests.test_console_routes import client_as

NOW = datetime(2026, 11, 26, 7, 0, tzinfo=UTC)
ROLES = ("viewer", "controller", "operator", "admin")
LONG = "x" * 60_000  # about what a URL can carry; 100 kB goes in a form body below
GARBAGE_B64 = base64.urlsafe_b64encode(b"\x00\xff garbage \x01").decode()
OTHER_MARK = Mark(True, datetime(2026, 11, 1, tzinfo=UTC), "not-an-entry").token()


@dataclass
class Site:
    console: Console
    seeded: Seeded
    token: str  # an API bearer token


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def site(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Site]:
    """One seeded console per database for the whole module (the requests change nothing a
    case reads: counts of settled days, audit rows)."""
    folder = tmp_path_factory.mktemp("hostile")
    with ExitStack() as stack:
        if request.param == "sqlite":
            url = f"sqlite:///{folder / 'ivr.sqlite'}"
        else:
            url = stack.enter_context(temporary_schema(LOCAL_PG, "ivr_hostile"))
        engine = make_engine(url)
        stack.callback(engine.dispose)
        upgrade(engine)
        admin, password = AdminStore(engine), hash_password("hostile-password")
        for role in ROLES:
            admin.add_user(Actor("test"), role, role, password, NOW)
        config = parse_config(config_data(ivr={"comment_dir": str(folder / "comments")}))
        seeded = seed(Store(engine), folder / "comments" / "2026-11-25", NOW)
        token = ApiTokens(engine).add(Actor("test"), "bi", NOW)
        yield Site(Console(engine, config, FakeClock(NOW), "test-secret"), seeded, token)


def numbers(html: str) -> list[str]:
    return re.findall(r'data-request="([^"]+)"', html)


def clean(text: str, site: Site) -> None:
    """No traceback, no full phone number, no secret in an answer."""
    assert "Traceback" not in text and PHONE not in text and site.token not in text


# (query, status, parameter named or None): every role gets the same answer.
PAGES = [
    ("/control?from=2026-02-30", 400, "from"),
    ("/control?from=yesterday", 400, "from"),
    ("/control?to=0001-01-01", 400, "to"),
    ("/control?to=9999-12-31", 400, "to"),
    ("/control?from=0001-01-01", 400, "from"),
    ("/control?from=2026-11-24&to=2026-11-23", 400, "from"),
    ("/control?from=2023-01-01&to=2026-11-26", 400, "from"),  # over three years
    ("/control?from=2026-11-01&from=2026-11-02", 400, "from"),
    ("/control?from=%00", 400, "from"),
    (f"/control?from={LONG}", 400, "from"),
    ("/control?executor=%00", 400, "executor"),
    (f"/control?executor={LONG}", 400, "executor"),
    ("/control?category=a%0Db", 400, "category"),
    ("/control?round=bogus", 400, "round"),
    ("/control?round=%3Cscript%3E", 400, "round"),
    ("/control?reviewed=maybe", 400, "reviewed"),
    ("/control?page=-1", 400, "page"),
    ("/control?page=0", 400, "page"),
    (f"/control?page={10**30}", 400, "page"),
    ("/control?page=abc", 400, "page"),
    ("/control?page=2.5", 400, "page"),
    ("/control?page=%D9%A3", 400, "page"),  # an Arabic-Indic 3
    ("/control?after=garbage", 400, "after"),
    (f"/control?after={GARBAGE_B64}", 400, "after"),
    ("/control?before=1,2026-11-01T00:00:00,x", 400, "before"),  # no time zone
    ("/control?after=2,2026-11-01T00:00:00%2B00:00,x", 400, "after"),
    ("/control?after=1,2026-11-01T00:00:00%2B00:00,%00", 400, "after"),
    ("/control?after=1,0001-01-01T00:00:00%2B14:00,x", 400, "after"),  # before year 1 in UTC
    ("/control?before=0,9999-12-31T23:59:59-12:00,x", 400, "before"),  # after year 9999
    ("/control?after=0,2026-11-01T00:00:00%2B23:59,x", 200, None),
    ("/control?format=pdf", 400, "format"),
    ("/control?executor=%25", 200, None),  # LIKE and SQL characters are plain text
    ("/control?executor=_", 200, None),
    ("/control?category=%27%20OR%201%3D1%20--", 200, None),
    ("/control?executor=%5C", 200, None),
    ("/control?executor=%D0%96%D0%AD%D0%A1%20%F0%9F%98%80", 200, None),
    ("/control?page=2", 400, "page"),  # an old link past the end: which pages there are
    ("/control?page=1", 200, None),
    ("/control?format=csv", 200, None),
    ("/control?format=xlsx", 200, None),
    ("/analytics?by=nope", 400, "by"),
    ("/analytics?min=0", 400, "min"),
    ("/analytics?min=-1", 400, "min"),
    (f"/analytics?min={10**30}", 400, "min"),
    ("/analytics?min=1e3", 400, "min"),
    ("/analytics?to=0001-01-01", 400, "to"),
    ("/analytics?to=9999-12-31", 400, "to"),
    ("/analytics?from=9999-12-01&to=9999-12-31", 400, "to"),
    ("/analytics?from=2026-11-08&to=2026-11-01", 400, "from"),
    ("/analytics?from=2020-01-01&to=2026-11-01", 400, "from"),
    ("/analytics?measure=speed", 400, "measure"),
    ("/analytics?round=0", 400, "round"),
    ("/analytics?bucket=all", 400, "bucket"),
    ("/analytics?district=%00", 400, "district"),
    ("/analytics?key=%00", 400, "key"),
    ("/analytics?by=day&by=week", 400, "by"),
    ("/analytics?executor=%25%27_%5C", 200, None),
    ("/analytics?from=2026-11-01&to=2026-11-25&by=day&min=1", 200, None),
    (f"/analytics/rows?page={10**30}", 400, "page"),
    ("/analytics/rows?page=-1", 400, "page"),
    ("/analytics/rows?page=0", 400, "page"),
    ("/analytics/rows?by=executor&key=%00", 400, "key"),
    ("/analytics/rows?by=day&key=garbage", 400, "key"),  # a drill-down to a forged period
    ("/analytics/rows?by=week&key=garbage", 400, "key"),
    ("/analytics/rows?by=week&key=2026-W99", 400, "key"),
    ("/analytics/rows?by=month&key=2026-13", 400, "key"),
    ("/analytics/rows?by=month&key=9999-12", 400, "key"),
    ("/analytics/rows?by=day&key=0001-01-01", 400, "key"),
    ("/analytics/rows?by=month&key=2026-11&bucket=unsatisfied", 200, None),
    ("/analytics/rows?by=week&key=2026-W47", 200, None),
    ("/analytics/rows?by=executor&key=%25&bucket=called", 200, None),
    ("/analytics/rows?page=999", 400, "page"),  # past the end
    ("/analytics/rows?page=1", 200, None),
    ("/analytics/export?format=pdf", 400, "format"),
    ("/analytics/export?table=users", 400, "table"),
    ("/analytics/export?table=rows&to=9999-12-31", 400, "to"),
    ("/analytics/export?table=rows&format=csv", 200, None),
    ("/analytics/export?table=ranking&format=xlsx&min=1", 200, None),
    ("/analytics/report?to=9999-12-31", 400, "to"),
    ("/analytics/report?from=2026-02-30", 400, "from"),
    ("/analytics/report?from=2026-11-01&to=2026-11-25", 200, None),
]


@pytest.mark.parametrize(("url", "status", "name"), PAGES, ids=[p[0][:70] for p in PAGES])
def test_a_page_answers_a_hostile_query(
    site: Site, url: str, status: int, name: str | None, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    for role in ROLES:
        client, _ = client_as(site.console, role)
        r = client.get(url)
        assert r.status_code == status, (role, r.text[:300])
        if name is not None:
            assert f"{name}: " in r.text, r.text[:300]
        if not r.headers["content-type"].startswith("application/vnd"):
            clean(r.text, site)
    clean(caplog.text, site)


def test_a_well_formed_mark_of_another_selection_is_a_place_in_the_order(site: Site) -> None:
    """A mark names a place (unsatisfied again, closed, id), not a row: one made for another
    filter, or for no entry, gives the entries after that place, never an error or a loop."""
    client, _ = client_as(site.console, "viewer")
    everything = numbers(client.get("/control").text)
    after = client.get("/control", params={"after": OTHER_MARK, "page": "2"})
    assert after.status_code == 200
    shown = numbers(after.text)
    assert shown and shown == everything[len(everything) - len(shown) :]
    before = client.get("/control", params={"before": OTHER_MARK, "executor": "EX-B"})
    assert before.status_code == 200


API = [
    ("/api/figures?from=x", 400, "from"),
    ("/api/figures?to=0001-01-01", 400, "to"),
    ("/api/figures?to=9999-12-31", 400, "to"),
    ("/api/figures?from=2026-11-02&to=2026-11-01", 400, "from"),
    ("/api/figures?by=nope", 400, "by"),
    ("/api/figures?by=day&by=week", 400, "by"),
    ("/api/figures?executor=%00", 400, "executor"),
    ("/api/ranking?by=day", 400, "by"),
    ("/api/ranking?min=0", 400, "min"),
    (f"/api/ranking?min={10**30}", 400, "min"),
    ("/api/rows?limit=0", 400, "limit"),
    ("/api/rows?limit=-1", 400, "limit"),
    ("/api/rows?limit=1001", 400, "limit"),
    ("/api/rows?limit=abc", 400, "limit"),
    ("/api/rows?offset=-1", 400, "offset"),
    (f"/api/rows?offset={10**30}", 400, "offset"),
    ("/api/rows?key=%00&by=executor", 400, "key"),
    ("/api/rows?key=2026-02-30&by=day", 400, "key"),
    ("/api/rows?key=2026-W00&by=week", 400, "key"),
    ("/api/rows?key=1999-W51&by=week", 400, "key"),
    ("/api/rows?key=2099-W53&by=week", 200, None),  # shown by a trend of December 2099
    ("/api/rows?key=1999-W52&by=week", 200, None),  # ends on 2000-01-02
    (f"/api/rows?category={LONG}", 400, "category"),
    ("/api/figures?executor=%25%27_%5C", 200, None),
    ("/api/ranking?by=category&min=1", 200, None),
    ("/api/rows?offset=1000000000&limit=1000", 200, None),
]


@pytest.mark.parametrize(("url", "status", "name"), API, ids=[a[0][:70] for a in API])
def test_the_api_answers_a_hostile_query_as_its_description_says(
    site: Site, url: str, status: int, name: str | None, caplog: pytest.LogCaptureFixture
) -> None:
    from openapi_schema_validator import OAS31Validator

    caplog.set_level(logging.DEBUG)
    bearer = TestClient(create_app(site.console), follow_redirects=False)
    bearer.headers["Authorization"] = f"Bearer {site.token}"
    session, _ = client_as(site.console, "viewer")
    for client in (bearer, session):
        r = client.get(url)
        assert r.status_code == status, r.text[:300]
        body = r.json()
        if name is not None:
            assert body["parameter"] == name and body["error"].startswith(f"{name}: ")
        path = url.split("?")[0]
        answer = SPEC["paths"][path]["get"]["responses"][str(status)]
        if "$ref" in answer:
            answer = SPEC["components"]["responses"][answer["$ref"].rsplit("/", 1)[1]]
        schema = answer["content"]["application/json"]["schema"]
        OAS31Validator({**schema, "components": SPEC["components"]}).validate(body)
        clean(r.text, site)
    clean(caplog.text, site)


def test_the_openapi_description_bounds_what_the_api_refuses() -> None:
    params = {p["name"]: p["schema"] for p in SPEC["paths"]["/api/rows"]["get"]["parameters"]}
    assert params["limit"]["maximum"] == 1000 and params["offset"]["maximum"] == 10**9
    assert params["executor"]["maxLength"] == 300
    ranking = SPEC["paths"]["/api/ranking"]["get"]["parameters"]
    assert {p["name"]: p["schema"] for p in ranking}["by"]["enum"] == [
        "executor",
        "category",
        "district",
    ]
    assert "parameter" in SPEC["components"]["schemas"]["Error"]["properties"]


REVIEWS = [
    ({}, 400, "survey"),
    ({"survey": ""}, 400, "survey"),
    ({"survey": "\x00"}, 400, "survey"),
    ({"survey": "x" * 10_000}, 400, "survey"),
    ({"survey": "101", "note": "n" * 100_000}, 400, "note"),
    ({"survey": "00000000-0000-0000-0000-000000000000"}, 303, None),  # forged: not found
    ({"survey": "%' OR '1'='1"}, 303, None),
    ({"survey": "101", "note": "ok " * 100}, 303, None),
    ({"survey": "101", "note": "a\x00b\u202ec"}, 303, None),  # cleaned, stored (PostgreSQL too)
]


@pytest.mark.parametrize(
    ("form", "status", "name"), REVIEWS, ids=[str(i) for i in range(len(REVIEWS))]
)
def test_a_hostile_review_is_refused_and_names_the_field(
    site: Site, form: dict[str, str], status: int, name: str | None
) -> None:
    client, csrf = client_as(site.console, "controller")
    data = {**form, "csrf": csrf}
    if data.get("survey") == "101":
        data["survey"] = site.seeded.ids["101"]
    r = client.post("/control/review", data=data)
    assert r.status_code == status, r.text[:300]
    if name is not None:
        assert f"{name}: " in r.text
    clean(r.text, site)


def test_a_review_without_csrf_or_by_a_viewer_is_refused(site: Site) -> None:
    survey = site.seeded.ids["102"]
    client, _ = client_as(site.console, "controller")
    assert client.post("/control/review", data={"survey": survey}).status_code == 403
    forged = client.post("/control/review", data={"survey": survey, "csrf": "forged"})
    assert forged.status_code == 403
    viewer, csrf = client_as(site.console, "viewer")
    assert viewer.post("/control/review", data={"survey": survey, "csrf": csrf}).status_code == 403


@pytest.mark.parametrize(
    "survey_id",
    ["%00", "x" * 1000, "..%2F..%2Fetc%2Fpasswd", "%27%20OR%201%3D1", "00000000-0000"],
    ids=["nul", "long", "traversal", "sql", "unknown"],
)
def test_a_bad_recording_id_is_not_found(site: Site, survey_id: str) -> None:
    client, _ = client_as(site.console, "controller")
    r = client.get(f"/control/comment/{survey_id}")
    assert r.status_code == 404 and not r.headers["content-type"].startswith("audio")
    clean(r.text, site)


def test_a_secret_is_in_no_answer_of_the_token_check(site: Site) -> None:
    client = TestClient(create_app(site.console), follow_redirects=False)
    for header in (f"Bearer {site.token}x", "Bearer", "Basic abc", f"bearer  {site.token}"):
        r = client.get("/api/figures", headers={"Authorization": header})
        assert r.status_code in (200, 401)
        clean(r.text, site)


@pytest.mark.parametrize(
    "back",
    [
        "/control?" + "x" * 100_000,
        "//evil.example/control?",
        "https://evil.example/",
        "/control?\r\nX: y",
    ],
    ids=["huge", "other-site", "absolute", "crlf"],
)
def test_a_review_goes_back_to_the_list_only(site: Site, back: str) -> None:
    client, csrf = client_as(site.console, "controller")
    form = {"survey": site.seeded.ids["102"], "csrf": csrf, "back": back}
    r = client.post("/control/review", data=form)
    location = r.headers["location"]
    assert r.status_code == 303 and location.startswith("/control") and len(location) < 3000
    assert "\r" not in location and "\n" not in location and "evil" not in location


def test_the_400_page_says_it_in_the_page_language(site: Site) -> None:
    client, _ = client_as(site.console, "viewer")
    russian = client.get("/analytics?min=0").text
    assert "min: ожидается целое число от 1 до 1000000" in russian
    client.cookies.set("ivr_lang", "en")
    english = client.get("/analytics?min=0").text
    assert "min: expected a whole number from 1 to 1000000" in english


@pytest.mark.parametrize(
    ("wanted", "status"),
    [
        ("bytes=abc", 400),
        ("bytes=10-5", 400),
        ("items=0-1", 400),
        ("bytes=99999999999999999999-", 416),
    ],
    ids=["garbage", "backwards", "unit", "huge"],
)
def test_a_bad_range_of_a_recording_is_refused(site: Site, wanted: str, status: int) -> None:
    client, _ = client_as(site.console, "controller")
    r = client.get(f"/control/comment/{site.seeded.ids['101']}", headers={"range": wanted})
    assert r.status_code == status and not r.headers["content-type"].startswith("audio")


def test_the_forms_show_the_bounds_the_server_checks(site: Site) -> None:
    client, _ = client_as(site.console, "viewer")
    for url in ("/control", "/analytics"):
        page = client.get(url).text
        assert 'name="from" min="2000-01-01" max="2099-12-31"' in page
    assert 'name="executor" maxlength="300"' in client.get("/analytics").text


ATOMS = ["", "0", "-1", "99999999999999", "2026-11-01", "2099-12-31", "2099-W53", "2026-11",
         "day", "week", "total", "unknown", "EX-A", "%", "_", "'", "\\", "\x00", "\u202e", "😀",
         "csv", "xlsx", "yes", "again", "satisfied", "called", "rows", "reach", GARBAGE_B64,
         "1,2026-11-20T00:00:00+00:00,z", OTHER_MARK]  # fmt: skip
NAMES = ["from", "to", "executor", "category", "district", "round", "by", "min", "measure",
         "key", "bucket", "page", "after", "before", "format", "table", "limit", "offset",
         "reviewed"]  # fmt: skip
PATHS = ["/control", "/analytics", "/analytics/rows", "/analytics/export", "/analytics/report",
         "/api/figures", "/api/ranking", "/api/rows"]  # fmt: skip


@given(
    path=st.sampled_from(PATHS),
    params=st.lists(
        st.tuples(st.sampled_from(NAMES), st.lists(st.sampled_from(ATOMS), min_size=1, max_size=2)),
        max_size=6,
    ),
)
def test_no_combination_of_parameters_is_a_server_error(
    site: Site, path: str, params: list[tuple[str, list[str]]]
) -> None:
    """Any mix of the values above, a parameter possibly twice: an answer or a 400,
    never a 500 (TestClient raises the server's exception)."""
    client, _ = client_as(site.console, "viewer")
    r = client.get(path, params=[(name, "".join(parts)) for name, parts in params])
    assert r.status_code in (200, 400), r.text[:300]
