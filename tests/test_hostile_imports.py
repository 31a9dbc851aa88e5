"""One item never stops a batch, a night or the service: through storage (SQLite and
PostgreSQL), the real portal emulator, the dialer and the command line."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml
from hypothesis import HealthCheck, given, settings, strategies as st

from ivr.campaign import importer
from ivr.campaign.campaign import Campaign
from ivr.campaign.delivery import deliver_due
from ivr.campaign.dialer import Dialer
from ivr.campaign.importer import ImportSummary, import_day, store_items
from ivr.campaign.night import Night, NightSummary, format_summary, summarize
from ivr.core.errors import PortalError
from ivr.entry.cli import main
from ivr.portal.client import PortalClient
from lab.portal_emulator import PortalEmulator
from lab.sample_requests import make_items
from storage.store import NewSurvey, Store
from tests.fakes import FakeClock, FakePhone, FakePrompts
from tests.helpers import examples
from tests.test_dialer import INSIDE, cfg
from tests.test_hostile_items import any_items, json_values

MINSK = ZoneInfo("Europe/Minsk")
DAY = date(2026, 3, 1)
NOW = datetime(2026, 3, 2, 7, 0, tzinfo=UTC)
PHONES = [f"+37529{n:07d}" for n in range(1000001, 1000011)]


class ListSource:
    def __init__(self, items: list[Any]) -> None:
        self.items = items

    def iter_closed(self, closed_from: datetime, closed_to: datetime) -> Iterator[Any]:
        return iter(self.items)


def hostile_items() -> list[Any]:
    good = make_items(DAY, "Europe/Minsk", PHONES[:3])
    deep: Any = "x"
    for _ in range(30):
        deep = {"a": deep}
    return [
        good[0],
        dict(good[1], id="REQ-9999", closed_at="9999-12-31T23:59:59Z"),
        dict(good[1], id="REQ-YEAR-1", closed_at="0001-01-01T00:00:00+03:00"),
        dict(good[1], id="REQ-\x1b[2J\x00", phone="+375291000002"),
        dict(good[1], id="REQ-DEEP", executor=deep),
        dict(good[1], id="REQ-LETTERS", phone="+375 29 ABC-00-02"),
        dict(good[1], id="R" * 300),
        good[2],
    ]


def test_hostile_items_in_a_real_portal_page_are_rejected_one_by_one(store: Store) -> None:
    page = {"items": hostile_items(), "next_cursor": None}
    with PortalEmulator([]) as portal:
        portal.fail_next(1, 200, body=json.dumps(page).encode())
        with PortalClient(portal.base_url, "test-token", timeout_s=5, page_size=50) as c:
            # What `ivr-rating night` does before any call (no SIP needed).
            campaign = Campaign(cfg(), store, c, c, FakePhone([]), FakePrompts(), FakeClock(NOW))
            night = Night(campaign)
            summary = night.prepare(DAY)
    assert store.import_completed(DAY)
    text = format_summary(summarize(store, DAY, summary))
    assert "imported: 8 item(s) from the portal, 3 new, 0 already known, 5 rejected" in text
    assert "REQ-9999: closed_at_out_of_range" in text and "\x1b" not in text
    assert (summary.seen, summary.new, summary.rejected) == (8, 3, 5)
    assert summary.not_called_reasons == {"invalid_phone": 1}
    reasons = dict(store.rejected(DAY))
    assert reasons["REQ-9999"].startswith("closed_at_out_of_range")
    assert reasons["REQ-YEAR-1"].startswith("closed_at_out_of_range")
    assert reasons["REQ-\\x1b[2J\\x00"].startswith("id: contains control characters")
    assert reasons["REQ-DEEP"] == "item: nested deeper than 16 levels"
    assert reasons["R" * 200].startswith("id: longer than 200")
    due = sorted(s.portal_request_id for s in store.due_surveys(NOW, 10))
    assert due == ["REQ-1000001", "REQ-1000003"]


def test_a_deeply_nested_portal_page_is_a_malformed_page(store: Store) -> None:
    deep = b'{"items": [' + b"[" * 50_000 + b"]" * 50_000 + b'], "next_cursor": null}'
    with PortalEmulator([]) as portal:
        portal.fail_next(1, 200, body=deep)
        with PortalClient(portal.base_url, "test-token", timeout_s=5, page_size=50) as c:
            with pytest.raises(PortalError, match="portal page is not JSON") as info:
                import_day(DAY, c, store, MINSK, NOW)
    assert "nested" in str(info.value.__cause__)
    assert not store.import_completed(DAY)


def test_a_failed_batch_is_never_stored_again(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []

    def failing(raws: list[object], *args: Any) -> None:
        calls.append(len(raws))
        raise RuntimeError("database gone")

    monkeypatch.setattr(importer, "_store_batch", failing)
    items = make_items(DAY, "Europe/Minsk", PHONES[:4])
    with pytest.raises(RuntimeError, match="database gone"):
        store_items(items, DAY, store, MINSK, NOW, ImportSummary(DAY), batch_size=2)
    assert calls == [2]


def test_a_source_failing_half_way_keeps_what_was_received(store: Store) -> None:
    def source() -> Iterator[Any]:
        yield from make_items(DAY, "Europe/Minsk", PHONES[:3])
        raise PortalError("connection reset", url="http://127.0.0.1:9/x")

    summary = ImportSummary(DAY)
    with pytest.raises(PortalError):
        store_items(source(), DAY, store, MINSK, NOW, summary, batch_size=2)
    assert summary.new == 3 and len(store.report_rows(DAY)) == 3


def test_an_unforeseen_error_on_one_item_rejects_only_that_item(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = importer._new_survey

    def flaky(item: Any, tz: ZoneInfo) -> NewSurvey:
        if item.portal_id == "REQ-1000002":
            raise OverflowError("date value out of range")
        return real(item, tz)

    monkeypatch.setattr(importer, "_new_survey", flaky)
    items = make_items(DAY, "Europe/Minsk", PHONES[:3])
    summary = import_day(DAY, ListSource(items), store, MINSK, NOW)
    assert (summary.new, summary.rejected) == (2, 1)
    assert store.rejected(DAY) == [("REQ-1000002", "item: unreadable (OverflowError)")]


# -- the same request again ---------------------------------------------------------------------


def test_a_known_closing_with_other_data_shows_which_fields_changed(store: Store) -> None:
    first = make_items(DAY, "Europe/Minsk", PHONES[:2])
    again = [dict(first[0], phone=PHONES[5], category="Лифт"), dict(first[1])]
    import_day(DAY, ListSource(first), store, MINSK, NOW)
    summary = import_day(DAY, ListSource(again), store, MINSK, NOW)
    assert (summary.new, summary.known) == (0, 2)
    assert summary.changed == [("REQ-1000001", ("phone", "category"))]
    text = format_summary(NightSummary(DAY, summary))
    assert "REQ-1000001: phone, category changed" in text
    assert PHONES[5] not in text


def test_a_new_closing_supersedes_the_round_still_waiting_for_its_call(store: Store) -> None:
    first = make_items(DAY, "Europe/Minsk", PHONES[:2])
    import_day(DAY, ListSource(first), store, MINSK, NOW)
    reclosed = dict(first[0], closed_at="2026-03-02T09:00:00+03:00")
    later = NOW + timedelta(days=1)
    summary = import_day(date(2026, 3, 2), ListSource([reclosed]), store, MINSK, later)
    assert (summary.new, summary.superseded) == (1, 1)
    # One call per request: only the new round and the other request are due.
    due = sorted((s.portal_request_id, s.closed_on) for s in store.due_surveys(later, 10))
    assert due == [("REQ-1000001", date(2026, 3, 2)), ("REQ-1000002", DAY)]
    old = [r for r in store.report_rows(DAY) if r.portal_request_id == "REQ-1000001"]
    assert [(r.outcome, r.reason) for r in old] == [("not_called", "superseded")]
    # One rating per closing: the superseded round is reported too.
    with PortalEmulator(first) as portal:
        with PortalClient(portal.base_url, "test-token", timeout_s=5, page_size=50) as c:
            deliver_due(store, c, later)
        assert [(rid, body["reason"]) for rid, _, body in portal.ratings] == [
            ("REQ-1000001", "superseded")
        ]


def test_two_closings_in_one_batch_and_an_older_one_arriving_late(store: Store) -> None:
    first = make_items(DAY, "Europe/Minsk", PHONES[:1])[0]
    later = dict(first, closed_at="2026-03-01T23:00:00+03:00")
    older = dict(first, closed_at="2026-03-01T00:30:00+03:00")
    summary = import_day(DAY, ListSource([first, later]), store, MINSK, NOW)
    assert (summary.new, summary.superseded) == (2, 1)
    summary = import_day(DAY, ListSource([older]), store, MINSK, NOW)
    assert summary.new == 1
    rows = {r.reason for r in store.report_rows(DAY)}
    assert rows == {"superseded", None}
    assert [s.closed_at for s in store.due_surveys(NOW, 10)] == [
        datetime(2026, 3, 1, 20, 0, tzinfo=UTC)
    ]


# -- the dialer checks the number again ---------------------------------------------------------


def test_the_dialer_never_dials_a_stored_number_that_is_not_dialable(store: Store) -> None:
    for pid, phone in (("R0", "+3758011234567"), ("R1", "+37529ABC4567")):
        store.add_survey(
            NewSurvey(pid, "40", INSIDE - timedelta(hours=5), date(2026, 11, 26), "x", phone,
                      "ru", None),
            INSIDE,
        )  # fmt: skip
    phone = FakePhone([])
    with Dialer(store, phone, FakePrompts(), cfg(), FakeClock(INSIDE)) as dialer:
        dialer.start_due(INSIDE)
        dialer.drain(10)
    assert phone.dialled == []
    rows = {r.portal_request_id: (r.outcome, r.reason) for r in store.report_rows()}
    assert rows == {
        "R0": ("not_called", "disallowed_number"),
        "R1": ("not_called", "disallowed_number"),
    }


# -- the command line ---------------------------------------------------------------------------


@pytest.fixture
def config_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PORTAL_TOKEN", "tok-secret")
    monkeypatch.setenv("SIP_PASSWORD", "sip-secret")
    path = tmp_path / "config.yaml"
    data = {
        "database": f"sqlite:///{tmp_path / 'ivr.sqlite'}",
        "portal": {"base_url": "http://127.0.0.1:9/api/v1", "token": "${PORTAL_TOKEN}"},
        "sip": {"server": "127.0.0.1", "username": "d", "password": "${SIP_PASSWORD}",
                "local_ip": "127.0.0.1"},
    }  # fmt: skip
    path.write_text(yaml.safe_dump(data))
    return path


def cli(config_path: Path, *args: str) -> int:
    return main(["--config", str(config_path), *args])


CSV_HEADER = "id,number,phone,closed_at,category\n"


def test_a_file_with_an_out_of_range_closing_stores_the_other_rows(
    config_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "export.csv"
    path.write_text(
        CSV_HEADER
        + "R-1,1,+375291000001,2026-03-01T10:00:00+03:00,Лифт\n"
        + "R-2,2,+375291000002,9999-12-31T23:59:59Z,Лифт\n"
        + "R-3,3,+375291000003,0001-01-01T00:00:00Z,Лифт\n"
        + "R-4,4,+375291000004,2026-03-01T11:00:00+03:00,Лифт\n",
        encoding="utf-8",
    )
    assert cli(config_path, "import", "--file", str(path)) == 0
    out = capsys.readouterr().out
    assert "4 item(s): 2 new, 0 already known, 2 rejected" in out
    assert "R-2: closed_at_out_of_range: '9999-12-31T23:59:59Z'" in out
    assert cli(config_path, "report", "--date", "2026-03-01", "--csv") == 0
    rows = capsys.readouterr().out.strip().splitlines()[1:]
    assert [r.split(",")[0] for r in rows] == ["R-1", "R-4"]


def test_report_rejected_lists_every_row_and_the_summary_shows_fifty(
    config_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = "".join(f"R-{n},{n},+375291000001,вчера,\n" for n in range(60))
    path = tmp_path / "export.csv"
    path.write_text(CSV_HEADER + bad + "R-\x1b[31mX,1,+375291000001,2026,\n", encoding="utf-8")
    assert cli(config_path, "import", "--file", str(path)) == 0
    out = capsys.readouterr().out
    assert "61 item(s): 0 new, 0 already known, 61 rejected" in out
    assert "R-49: closed_at" in out and "R-50: closed_at" not in out
    assert "... and 11 more: `ivr-rating report --rejected --date D`" in out
    assert "\x1b" not in out
    day = datetime.now(MINSK).date().isoformat()  # undated rows: kept for the import's day
    assert cli(config_path, "report", "--rejected", "--date", day) == 0
    out = capsys.readouterr().out
    assert "61 rejected row(s)" in out
    assert all(f"R-{n} " in out for n in range(60))
    assert "R-\\x1b[31mX  id: contains control characters" in out and "\x1b" not in out


def test_night_summary_shows_fifty_rejected_and_how_to_list_them() -> None:
    summary = NightSummary(DAY, None, rejected=[(f"R-{n}", "phone: missing") for n in range(75)])
    text = format_summary(summary)
    assert "R-49: phone: missing" in text and "R-50:" not in text
    assert "... and 25 more: `ivr-rating report --rejected --date 2026-03-01`" in text


def test_report_csv_never_starts_a_cell_with_a_formula(
    config_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "export.csv"
    path.write_text(
        CSV_HEADER
        + '"=HYPERLINK(""http://x"")",1,+375291000001,2026-03-01T10:00:00+03:00,\n'
        + "@SUM(A1),2,+375 29 ABC,2026-03-01T11:00:00+03:00,\n",
        encoding="utf-8",
    )
    assert cli(config_path, "import", "--file", str(path)) == 0
    capsys.readouterr()
    assert cli(config_path, "report", "--date", "2026-03-01", "--csv") == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[1].startswith('"\'=HYPERLINK(""http://x"")",1,\'+37529*****01,')
    assert lines[2].startswith("'@SUM(A1),2,,0,not_called,invalid_phone")


def test_a_file_import_logs_nothing_unescaped(
    config_path: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "export.json"
    items = [dict(make_items(DAY, "Europe/Minsk", PHONES[:1])[0], id="A\x1b[2K\rB")]
    path.write_text(json.dumps(items), encoding="utf-8")
    with caplog.at_level(logging.INFO):
        assert cli(config_path, "import", "--file", str(path)) == 0
    assert "A\\x1b[2K\\rB" in caplog.text and "\x1b" not in caplog.text


def test_a_rejected_item_with_lone_surrogates_is_kept_with_its_content(store: Store) -> None:
    from sqlalchemy import select

    from storage.models import RejectedItem

    raw = json.loads('{"id": "REQ-\\ud800", "phone": "+375291000001", "address": "\\udcff",'
                     ' "closed_at": "2026-03-01T10:00:00+03:00"}')  # fmt: skip
    summary = import_day(DAY, ListSource([raw]), store, MINSK, NOW)
    assert summary.rejected == 1
    assert store.rejected(DAY) == [
        ("REQ-\\ud800", "id: contains control characters: 'REQ-\\ud800'")
    ]
    with store.engine.connect() as conn:
        kept = conn.scalar(select(RejectedItem.raw))
    assert kept["phone"] == "+375291000001" and kept["address"] == "?"


@settings(
    max_examples=examples(30),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(st.lists(st.one_of(any_items, json_values), max_size=6))
def test_any_batch_is_stored_or_rejected_item_by_item(store: Store, raws: list[Any]) -> None:
    summary = ImportSummary(DAY)
    store_items(raws, DAY, store, MINSK, NOW, summary, batch_size=4)
    assert summary.seen == len(raws) == summary.new + summary.known + summary.rejected


def test_a_deeply_nested_json_file_is_an_unreadable_file_not_a_traceback(
    config_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "export.json"
    path.write_text("[" * 100_000 + "]" * 100_000)
    assert cli(config_path, "import", "--file", str(path)) == 2
    err = capsys.readouterr().err
    assert "cannot read the file" in err and "not JSON: JSON nested deeper than 64 levels" in err
    assert "Traceback" not in err and "RecursionError" not in err
