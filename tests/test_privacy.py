"""Personal data at rest: the SQLite file and its folder are private, erased numbers are
overwritten on disk, retention runs at the end of ``night``, and ``purge --before`` erases the
numbers of finished surveys now."""

from __future__ import annotations

import stat
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from ivr.campaign.campaign import Campaign
from ivr.campaign.night import Night
from ivr.entry.cli import main
from storage.db import make_engine, upgrade
from storage.store import NewSurvey, Store
from tests.fakes import FakeClock, FakePhone, FakePrompts
from tests.helpers import config_data
from tests.test_dialer import cfg
from tests.test_import import InMemorySource

OLD = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)
NOW = datetime(2026, 11, 27, 7, 0, tzinfo=UTC)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def survey(store: Store, pid: str, phone: str, finished_at: datetime | None) -> None:
    closed = (finished_at or NOW) - timedelta(hours=2)
    store.add_survey(NewSurvey(pid, pid[-3:], closed, closed.date(), phone, phone, "ru", None),
                     closed)  # fmt: skip
    if finished_at is not None:
        (due,) = [s for s in store.due_surveys(NOW, 100) if s.portal_request_id == pid]
        store.record_outcome(due.id, "satisfied", "1", None, finished_at, finished_at)


def on_disk(database: Path) -> bytes:
    return b"".join(p.read_bytes() for p in database.parent.glob(database.name + "*"))


def test_a_new_sqlite_database_is_private(tmp_path: Path) -> None:
    database = tmp_path / "new" / "deeper" / "ivr.sqlite"
    engine = make_engine(f"sqlite:///{database}")
    upgrade(engine)
    survey(Store(engine), "R-001", "+375291234567", None)
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA secure_delete").scalar() == 1
    for folder in (tmp_path / "new", tmp_path / "new" / "deeper"):
        assert mode(folder) == 0o700
    files = list(database.parent.glob("ivr.sqlite*"))
    assert {p.name for p in files} >= {"ivr.sqlite", "ivr.sqlite-wal"}
    assert all(mode(p) == 0o600 for p in files), {p.name: oct(mode(p)) for p in files}
    engine.dispose()


def test_an_existing_folder_keeps_its_mode(tmp_path: Path) -> None:
    tmp_path.chmod(0o755)
    engine = make_engine(f"sqlite:///{tmp_path / 'ivr.sqlite'}")
    upgrade(engine)
    assert mode(tmp_path) == 0o755
    assert mode(tmp_path / "ivr.sqlite") == 0o600
    engine.dispose()


def test_purge_erases_finished_surveys_numbers_now_and_says_how_many(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    database = tmp_path / "ivr.sqlite"
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(config_data(database=f"sqlite:///{database}")))
    engine = make_engine(f"sqlite:///{database}")
    upgrade(engine)
    store = Store(engine)
    survey(store, "R-001", "+375291234567", OLD)  # finished long ago
    survey(store, "R-002", "+375297654321", NOW)  # finished after the cutoff
    survey(store, "R-003", "+375331112233", None)  # still open
    assert b"291234567" in on_disk(database)
    assert main(["--config", str(config), "purge", "--before", "2026-11-01"]) == 0
    assert "erased the phone numbers of 1 survey(s)" in capsys.readouterr().out
    phones = {r.portal_request_id: r.phone for r in store.report_rows()}
    assert phones == {"R-001": None, "R-002": "+375297654321", "R-003": "+375331112233"}
    engine.dispose()
    assert b"291234567" not in on_disk(database)  # overwritten, not just unlinked
    assert b"297654321" in on_disk(database)


class AcceptingSink:
    def __init__(self) -> None:
        self.posted: list[str] = []

    def post_rating(self, request_id: str, rating: dict[str, Any]) -> int:
        self.posted.append(request_id)
        return 201


def test_retention_runs_at_the_end_of_night(store: Store) -> None:
    survey(store, "R-001", "+375291234567", OLD)  # past node.retention_days (90)
    survey(store, "R-002", "+375297654321", NOW - timedelta(days=10))
    clock = FakeClock(NOW)
    night = Night(Campaign(cfg(), store, InMemorySource([]), AcceptingSink(), FakePhone([]),
                  FakePrompts(), clock))  # fmt: skip
    day = date(2026, 11, 26)
    night.finish(day, night.prepare(day), delivery_deadline_s=5)
    phones = {r.portal_request_id: r.phone for r in store.report_rows()}
    assert phones == {"R-001": None, "R-002": "+375297654321"}
