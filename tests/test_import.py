"""The batched import (portal and file), the do-not-call list, and the report's outbox view."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml

from ivr.campaign import importer
from ivr.campaign.delivery import deliver_due
from ivr.campaign.importer import ImportSummary, import_day
from ivr.core.errors import StorageRefused
from ivr.entry.cli import main
from ivr.portal.client import PortalClient
from lab.portal_emulator import PortalEmulator
from lab.sample_requests import make_items
from storage.store import Store

MINSK = ZoneInfo("Europe/Minsk")
DAY = date(2026, 3, 1)
NOW = datetime(2026, 3, 2, 7, 0, tzinfo=UTC)
PHONES = [f"+37529{n:07d}" for n in range(1000001, 1000011)]


def client(portal: PortalEmulator, page_size: int = 3) -> PortalClient:
    return PortalClient(portal.base_url, "test-token", timeout_s=5, page_size=page_size)


def test_do_not_call_is_checked_on_the_normalised_number_and_reported(store: Store) -> None:
    items = make_items(DAY, "Europe/Minsk", ["8 (029) 100-00-01", "+375 29 100 00 02"])
    store.add_do_not_call("+375291000001", "citizen", NOW)
    with PortalEmulator(items) as portal, client(portal) as c:
        summary = import_day(DAY, c, store, MINSK, NOW)
        assert (summary.new, summary.not_called) == (2, 1)
        assert summary.not_called_reasons == {"do_not_call": 1}
        deliver_due(store, c, NOW)
        ratings = {rid: body for rid, _, body in portal.ratings}
    assert ratings["REQ-1000001"]["outcome"] == "not_called"
    assert ratings["REQ-1000001"]["reason"] == "do_not_call"
    assert [s.portal_request_id for s in store.due_surveys(NOW, 10)] == ["REQ-1000002"]


def test_a_batch_with_a_listed_number_is_parsed_once_and_consent_comes_first(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    items = make_items(DAY, "Europe/Minsk", PHONES[:3])
    items[1]["consent_to_calls"] = False  # listed too: the citizen's own "no" is the reason
    for phone in PHONES[:2]:
        store.add_do_not_call(phone, "citizen", NOW)
    parsed: list[object] = []
    parse = importer.parse_item

    def counting(raw: object, *args: Any, **kwargs: Any) -> object:
        parsed.append(raw)
        return parse(raw, *args, **kwargs)

    monkeypatch.setattr(importer, "parse_item", counting)
    summary = ImportSummary(DAY)
    importer.store_items(items, DAY, store, MINSK, NOW, summary)
    assert len(parsed) == 3
    assert summary.not_called_reasons == {"do_not_call": 1, "no_consent": 1}
    assert [s.portal_request_id for s in store.due_surveys(NOW, 10)] == ["REQ-1000003"]


def test_a_page_repeating_the_previous_one_creates_no_duplicates(store: Store) -> None:
    items = make_items(DAY, "Europe/Minsk", PHONES)
    with PortalEmulator(items) as portal, client(portal, page_size=4) as c:
        portal.overlap_next_page(3)
        summary = import_day(DAY, c, store, MINSK, NOW)
    assert (summary.seen, summary.new, summary.known) == (13, 10, 3)
    assert len(store.report_rows(DAY)) == 10


@pytest.mark.parametrize("batch_size", [1, 4, 500], ids=lambda n: f"batch={n}")
def test_batches_give_the_same_result_as_one_by_one(store: Store, batch_size: int) -> None:
    items = make_items(DAY, "Europe/Minsk", [*PHONES, "+12025550123", "000"])
    items.append({"id": "REQ-BAD", "phone": 291234567, "closed_at": items[0]["closed_at"]})
    # The same request closed twice in one import: two linked rounds.
    items.append(dict(items[0], closed_at="2026-03-01T23:00:00+03:00"))
    with PortalEmulator(items) as portal, client(portal, page_size=5) as c:
        summary = import_day(DAY, c, store, MINSK, NOW, batch_size=batch_size)
        again = import_day(DAY, c, store, MINSK, NOW, batch_size=batch_size)
    assert (summary.new, summary.rejected, summary.not_called) == (13, 1, 2)
    assert (again.new, again.known, again.rejected) == (0, 13, 1)
    assert store.rejected(DAY) == [("REQ-BAD", "phone: expected a string, got int")]
    rounds = [r for r in store.report_rows(DAY) if r.portal_request_id == "REQ-1000001"]
    assert len(rounds) == 2


def test_a_request_closed_again_is_a_new_linked_round_marked_unsatisfied_again(
    store: Store,
) -> None:
    first = make_items(DAY, "Europe/Minsk", PHONES[:1])
    second = [dict(first[0], closed_at="2026-03-05T12:00:00+03:00")]
    with PortalEmulator(first + second) as portal, client(portal) as c:
        import_day(DAY, c, store, MINSK, NOW)
        (s1,) = store.due_surveys(NOW, 10)
        store.record_outcome(s1.id, "unsatisfied", "2", None, NOW, NOW)
        later = NOW + timedelta(days=5)
        import_day(date(2026, 3, 5), c, store, MINSK, later)
        (s2,) = store.due_surveys(later, 10)
        store.record_outcome(s2.id, "unsatisfied", "2", None, later, later)
        deliver_due(store, c, later)
        bodies = [body for _, _, body in portal.ratings]
    assert [b["reason"] for b in bodies] == [None, "unsatisfied_again"]
    assert all(b["return_for_rework"] for b in bodies)


def test_a_batch_the_database_refuses_is_stored_one_by_one(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*args: Any) -> list[bool]:
        raise StorageRefused("IntegrityError: duplicate key (a concurrent import)")

    monkeypatch.setattr(importer, "add_surveys", refuse)
    items = make_items(DAY, "Europe/Minsk", PHONES[:4])
    with PortalEmulator(items) as portal, client(portal) as c:
        summary = import_day(DAY, c, store, MINSK, NOW)
    assert (summary.new, summary.rejected) == (4, 0)
    assert store.import_completed(DAY)


# -- ivr-rating import --file and report ------------------------------------------------------


@pytest.fixture
def config_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PORTAL_TOKEN", "tok-secret")
    monkeypatch.setenv("SIP_PASSWORD", "sip-secret")
    path = tmp_path / "config.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "database": f"sqlite:///{tmp_path / 'ivr.sqlite'}",
                "portal": {"base_url": "http://127.0.0.1:9/api/v1", "token": "${PORTAL_TOKEN}"},
                "sip": {
                    "server": "127.0.0.1",
                    "username": "d",
                    "password": "${SIP_PASSWORD}",
                    "local_ip": "127.0.0.1",
                },
            }
        )
    )
    return path


CSV_TEXT = (
    "\ufeffid;number;phone;closed_at;language;category;executor_id;executor_name;consent_to_calls\n"
    "R-1;101;8 (029) 111-22-33;2026-03-01T10:00:00+03:00;be;Лифт;EX-1;ЖЭС № 3;да\n"
    "R-2;102;+375 29 111 22 34;2026-03-02T09:00:00+03:00;;;;;нет\n"
    "R-3;103;+7 916 123-45-67;2026-03-01T11:00:00+03:00;ru;;;;\n"
    ";104;+375291112235;2026-03-01T12:00:00+03:00;;;;;\n"
    "R-5;105;+375291112236;вчера;;;;;\n"
    "R-6;106;+375291112237;2026-03-01T13:00:00+03:00;;;;;maybe\n"
)


def test_import_csv_file(
    config_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "export.csv"
    path.write_text(CSV_TEXT, encoding="utf-8")
    assert main(["--config", str(config_path), "import", "--file", str(path)]) == 0
    out = capsys.readouterr().out
    assert "6 item(s): 3 new, 0 already known, 3 rejected, 2 not to be called" in out
    assert "not called, disallowed_number: 1" in out and "not called, no_consent: 1" in out
    assert "(no id): id: missing" in out
    assert "R-5: closed_at: not an RFC 3339 date-time" in out
    assert "R-6: consent_to_calls: expected true or false, got 'maybe'" in out
    # Each request is stored for its own local day.
    assert main(["--config", str(config_path), "report", "--date", "2026-03-02", "--csv"]) == 0
    rows = capsys.readouterr().out.strip().splitlines()[1:]
    assert [r.split(",")[0] for r in rows] == ["R-2"]
    # Importing the same file again changes nothing.
    assert main(["--config", str(config_path), "import", "--file", str(path)]) == 0
    assert "0 new, 3 already known, 3 rejected" in capsys.readouterr().out


def test_import_json_file_in_the_contract_format(
    config_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    items: list[Any] = make_items(DAY, "Europe/Minsk", PHONES[:3])
    items.append("not an object")
    path = tmp_path / "export.json"
    path.write_text(json.dumps(items, ensure_ascii=False), encoding="utf-8")
    assert main(["--config", str(config_path), "import", "--file", str(path)]) == 0
    out = capsys.readouterr().out
    assert "4 item(s): 3 new, 0 already known, 1 rejected, 0 not to be called" in out
    assert "item: expected an object, got str" in out


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "No such file"),
        (b"\xff\xfe\x00garbage", "not UTF-8"),
        (b'{"items": 5}', "expected a JSON list"),
        (b"[1, 2", "not JSON"),
        (b"name,phone\nx,y\n", "'id' column"),
    ],
    ids=["missing", "binary", "json-not-list", "json-broken", "csv-without-id"],
)
def test_an_unreadable_file_fails_clearly(
    config_path: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    content: bytes | None,
    message: str,
) -> None:
    path = tmp_path / "export.dat"
    if content is not None:
        path.write_bytes(content)
    assert main(["--config", str(config_path), "import", "--file", str(path)]) == 2
    err = capsys.readouterr().err
    assert "cannot read the file" in err and message in err


def test_report_shows_dead_letters_with_the_portal_answer(
    config_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from ivr.core.config import load_config
    from ivr.entry.app import make_store
    from storage.db import upgrade

    config = load_config(config_path)
    store = make_store(config)
    upgrade(store.engine)
    items = make_items(DAY, "Europe/Minsk", PHONES[:3])
    with PortalEmulator(items[:2]) as portal, client(portal) as c:  # REQ-1000003 unknown there
        import_day(DAY, InMemorySource(items), store, MINSK, NOW)
        for s in store.due_surveys(NOW, 10):
            store.record_outcome(s.id, "satisfied", "1", None, NOW, NOW)
        deliver_due(store, c, NOW)
    store.engine.dispose()
    assert main(["--config", str(config_path), "report", "--date", DAY.isoformat()]) == 0
    out = capsys.readouterr().out
    assert "delivery: pending 0, delivered 2, dead 1" in out
    assert "Dead letters" in out
    assert "request REQ-1000003" in out and "HTTP 404" in out and "no request" in out


class InMemorySource:
    """Serves the same items for any window (the request the portal does not know is in it)."""

    def __init__(self, items: list[dict[str, Any]]) -> None:
        self.items = items

    def iter_closed(self, closed_from: datetime, closed_to: datetime) -> Any:
        return iter(self.items)
