"""The analytics pages and the JSON API through Starlette's TestClient, on SQLite and
PostgreSQL: the numbers shown are the database's, each links to its rows, exports carry the
same rows and filters, the API needs a session or a live token and answers as its OpenAPI
description says."""

from __future__ import annotations

import io
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from openpyxl import load_workbook
from starlette.testclient import TestClient

from ivr.campaign.period_report import COLUMNS, figure_row
from ivr.console.app import Console, create_app
from ivr.console.openapi import SPEC
from ivr.core.config import parse_config
from storage.admin import Actor, AdminStore
from storage.analytics import figures, ranking
from storage.analytics_rows import ROW_COLUMNS
from storage.api_tokens import ApiTokens
from storage.store import Store
from tests.fakes import FakeClock
from tests.helpers import config_data, password_hash, read_csv
from tests.test_analytics import WEEK, week  # noqa: F401 - the fixture
from tests.test_console_routes import client_as

NOW = datetime(2026, 11, 30, 7, 0, tzinfo=UTC)
SELECT = "from=2026-11-01&to=2026-11-07"
pytestmark = pytest.mark.usefixtures("week")


@pytest.fixture
def console(store: Store) -> Console:
    admin = AdminStore(store.engine)
    for role in ("viewer", "admin"):
        admin.add_user(Actor("test"), role, role, password_hash(f"{role}-password"), NOW)
    return Console(store.engine, parse_config(config_data()), FakeClock(NOW), "test-secret")


def row_of(html: str, key: str) -> str:
    found = re.search(rf'<tr[^>]*data-key="{re.escape(key)}">(.*?)</tr>', html, re.S)
    assert found, key
    return found[1]


def test_figures_with_intervals_link_to_their_rows(console: Console) -> None:
    client, _ = client_as(console, "viewer")
    page = client.get(f"/analytics?{SELECT}&by=executor&min=1")
    assert page.status_code == 200
    a = row_of(page.text, "EX-A")
    assert "50.0 %" in a and "n=4" in a and "80.0 %" in a and "n=5" in a  # satisfaction, reach
    assert "[15.0–85.0]" in a  # Wilson 2 of 4
    link = re.search(r'href="(/analytics/rows\?[^"]*key=EX-A[^"]*bucket=satisfied)"', a)
    assert link
    rows = client.get(link[1].replace("&amp;", "&"))
    assert rows.status_code == 200
    assert "строк: 2" in rows.text and rows.text.count("data-survey=") == 2
    assert "+375291234567" not in rows.text and "+37529*****67" in rows.text
    unknown = row_of(page.text, "unknown")
    assert "100.0 %" in unknown and "n=1" in unknown


def test_ranking_only_holds_groups_above_the_least_count(console: Console) -> None:
    client, _ = client_as(console, "viewer")
    page = client.get(f"/analytics?{SELECT}&by=executor&min=2")
    ranked = re.search(r'<table id="ranking">(.*?)</table>', page.text, re.S)
    assert ranked and "ЖЭС № 1" in ranked[1] and "ЖЭС № 2" not in ranked[1]
    page = client.get(f"/analytics?{SELECT}&by=executor&min=5")
    assert 'id="ranking-empty"' in page.text
    assert client.get(f"/analytics?{SELECT}&min=zero").status_code == 400
    assert client.get("/analytics?from=2026-11-08&to=2026-11-01").status_code == 400


def test_charts_tables_show_the_database_numbers(console: Console) -> None:
    client, _ = client_as(console, "viewer")
    page = client.get(f"/analytics?{SELECT}&by=category")
    total = figures(console.engine, WEEK, "total")[0]
    for bucket in ("satisfied", "unsatisfied", "not_reached", "not_called", "pending"):
        assert f">{getattr(total, bucket)}</a>" in row_of(page.text, bucket)
    day = figures(console.engine, WEEK, "day")
    for f in day:
        cells = row_of(page.text, f.key or "")
        assert (f"n={f.rated}" in cells) == (f.rated > 0)
    assert '<script src="/static/chart.umd.min.js">' in page.text
    assert client.get("/static/chart.umd.min.js").status_code == 200


def test_exports_carry_the_rows_and_the_filters(console: Console) -> None:
    client, _ = client_as(console, "viewer")
    r = client.get(f"/analytics/export?{SELECT}&by=executor&table=figures&format=csv")
    assert r.headers["content-type"].startswith("text/csv")
    filters, lines = read_csv(r.content)
    assert ("from", "2026-11-01") in filters and ("by", "executor") in filters
    expected = [
        *figures(console.engine, WEEK, "executor"),
        figures(console.engine, WEEK, "total")[0],
    ]
    assert lines[0] == list(COLUMNS) and len(lines) == 1 + len(expected)
    assert lines[1][:3] == [str(v) for v in figure_row(expected[0])[:3]]
    r = client.get(f"/analytics/export?{SELECT}&by=executor&table=rows&format=xlsx&bucket=rated")
    book = load_workbook(io.BytesIO(r.content), read_only=True)
    data = list(book["data"].iter_rows(values_only=True))
    assert list(data[0]) == list(ROW_COLUMNS) and len(data) - 1 == total_rated(console)
    phones = {row[ROW_COLUMNS.index("phone")] for row in data[1:]}
    assert phones == {"'+37529*****67"}  # a leading + is made formula-safe
    described = dict(book["filters"].iter_rows(min_row=2, values_only=True))
    assert described["bucket"] == "rated" and described["to"] == "2026-11-07"
    r = client.get(f"/analytics/export?{SELECT}&by=executor&table=ranking&format=csv&min=2")
    assert [line[1] for line in read_csv(r.content)[1][1:]] == [
        f.label for f in ranking(figures(console.engine, WEEK, "executor"), min_count=2)
    ]


def total_rated(console: Console) -> int:
    return figures(console.engine, WEEK, "total")[0].rated


def test_printable_report_per_executor(console: Console) -> None:
    client, _ = client_as(console, "viewer")
    page = client.get(f"/analytics/report?{SELECT}")
    assert page.status_code == 200 and "@media print" in client.get("/static/analytics.css").text
    assert "ЖЭС № 1" in page.text and "50.0 %" in page.text and 'id="report"' in page.text


def test_api_needs_a_session_or_a_live_token(console: Console) -> None:
    anonymous = TestClient(create_app(console))
    assert anonymous.get(f"/api/figures?{SELECT}").status_code == 401
    token = ApiTokens(console.engine).add(Actor("cli:test"), "bi", NOW)
    auth = {"Authorization": f"Bearer {token}"}
    r = anonymous.get(f"/api/figures?{SELECT}&by=executor", headers=auth)
    assert r.status_code == 200
    assert r.json()["groups"] == [f.as_dict() for f in figures(console.engine, WEEK, "executor")]
    assert (
        anonymous.get(f"/api/figures?{SELECT}", headers={"Authorization": "Bearer x"}).status_code
        == 401
    )
    ApiTokens(console.engine).revoke(Actor("cli:test"), "bi", NOW)
    assert anonymous.get(f"/api/figures?{SELECT}", headers=auth).status_code == 401
    actions = [e.action for e in console.admin.audit_rows(action=None)[0]]
    assert {"token.add", "token.revoke"} <= set(actions)
    viewer, _ = client_as(console, "viewer")
    assert viewer.get(f"/api/ranking?{SELECT}&by=executor&min=1").status_code == 200


def test_api_answers_match_the_openapi_description(console: Console) -> None:
    from openapi_schema_validator import OAS31Validator
    from openapi_spec_validator import validate

    viewer, _ = client_as(console, "viewer")
    served = viewer.get("/api/openapi.json").json()
    validate(served)
    assert served == SPEC
    for path, query in (
        ("/api/figures", f"{SELECT}&by=category"),
        ("/api/ranking", f"{SELECT}&by=executor&min=1&measure=reach"),
        ("/api/rows", f"{SELECT}&by=executor&key=EX-A&bucket=called&limit=2"),
        ("/api/figures", "from=nonsense"),
    ):
        r = viewer.get(f"{path}?{query}")
        answer = SPEC["paths"][path]["get"]["responses"][str(r.status_code)]
        if "$ref" in answer:
            answer = SPEC["components"]["responses"][answer["$ref"].rsplit("/", 1)[1]]
        schema = {
            **answer["content"]["application/json"]["schema"],
            "components": SPEC["components"],
        }
        OAS31Validator(schema).validate(r.json())
    rows = viewer.get(f"/api/rows?{SELECT}&by=executor&key=EX-A&bucket=called&limit=2").json()
    assert rows["count"] == 5 and len(rows["rows"]) == 2
    assert {row["phone"] for row in rows["rows"]} == {"+37529*****67"}


def test_token_command_prints_the_token_once_and_audits(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import yaml

    from ivr.entry.cli import main

    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(config_data(database=f"sqlite:///{tmp_path / 'db.sqlite'}")))
    assert main(["--config", str(config), "db", "upgrade"]) == 0
    assert main(["--config", str(config), "token", "add", "portal"]) == 0
    token = capsys.readouterr().out.strip().splitlines()[-1]
    assert token.startswith("ivr_") and len(token) > 40
    assert main(["--config", str(config), "token", "list"]) == 0
    listed = capsys.readouterr().out
    assert "portal" in listed and token not in listed
    assert main(["--config", str(config), "token", "add", "portal"]) == 2
