"""Operator commands through the CLI, and their effect on a running dialer."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from ivr.campaign.dialer import Dialer
from ivr.core.config import load_config
from ivr.entry.cli import main
from storage.db import make_engine, upgrade
from storage.store import NewSurvey, Store
from tests.fakes import FakeCall, FakeClock, FakePhone, FakePrompts
from tests.helpers import config_data

INSIDE = datetime(2026, 11, 26, 7, 0, tzinfo=UTC)  # Thursday 10:00 in Minsk


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config_data(database=f"sqlite:///{tmp_path / 'ivr.sqlite'}")))
    return path


def cli(config_path: Path, *args: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(["--config", str(config_path), *args])
    return code, capsys.readouterr().out


def test_pause_and_resume_reach_a_running_dialer(
    config_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli(config_path, "db", "upgrade", capsys=capsys)[0] == 0
    config = load_config(config_path)
    store = Store(make_engine(config.database))
    store.add_survey(
        NewSurvey(
            "R1",
            "401",
            INSIDE - timedelta(hours=3),
            date(2026, 11, 26),
            "x",
            "+375291000001",
            "ru",
            None,
        ),
        INSIDE,
    )
    clock = FakeClock(INSIDE)
    phone = FakePhone([FakeCall(clock, answer_at=None, reject=486)])
    with Dialer(store, phone, FakePrompts(), config, clock) as dialer:
        code, out = cli(config_path, "pause", "--reason", "trunk maintenance", capsys=capsys)
        assert code == 0 and "paused" in out
        assert dialer.start_due(INSIDE) == 0
        status = cli(config_path, "status", capsys=capsys)[1]
        assert "PAUSED; " in status and "paused by cli:" in status and "trunk maintenance" in status
        cli(config_path, "resume", capsys=capsys)
        assert "PAUSED" not in cli(config_path, "status", capsys=capsys)[1]
        clock.t += 1.5  # the flag is re-read at most once a second
        assert dialer.start_due(INSIDE) == 1
    store.engine.dispose()


def test_status_shows_the_campaign(config_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = load_config(config_path)
    engine = make_engine(config.database)
    upgrade(engine)
    store = Store(engine)
    for i in range(3):
        store.add_survey(
            NewSurvey(
                f"R{i}", "4", INSIDE, date(2026, 11, 26), "x", f"+37529100000{i}", "ru", None
            ),
            INSIDE,
        )
    (first, *_) = store.due_surveys(INSIDE, 10)
    store.record_outcome(first.id, "unsatisfied", "2", None, INSIDE, INSIDE)
    engine.dispose()
    code, out = cli(config_path, "status", capsys=capsys)
    assert code == 0
    assert "pending surveys:    2" in out
    assert "unsatisfied 1" in out
    assert "1 pending" in out  # the unsatisfied result waits for delivery
    assert "next call window:" in out


def test_do_not_call_list(config_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = cli(
        config_path, "dnc", "add", "8 (029) 123-45-67", "--note", "asked by phone", capsys=capsys
    )
    assert code == 0 and "+37529*****67 added" in out
    assert "already" in cli(config_path, "dnc", "add", "+375291234567", capsys=capsys)[1]
    listing = cli(config_path, "dnc", "list", capsys=capsys)[1]
    assert "+37529*****67" in listing and "operator" in listing and "1 number(s)" in listing
    assert "by cli:" in listing and "asked by phone" in listing
    assert "1234567" not in listing  # masked
    assert "removed" in cli(config_path, "dnc", "remove", "80291234567", capsys=capsys)[1]
    assert cli(config_path, "dnc", "add", "12", capsys=capsys)[0] == 2


def test_reload_is_requested_through_the_database(
    config_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = cli(config_path, "reload", capsys=capsys)
    assert code == 0 and "reload requested" in out
    store = Store(make_engine(load_config(config_path).database))
    assert store.get_flag("reload_requested_at") is not None
    store.engine.dispose()
