"""Live campaign settings: the console's form over the configuration file, validated by the
file's rules, and applied by a running dialer within seconds."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from ivr.campaign.dialer import Dialer
from ivr.core.config import parse_config
from ivr.core.errors import ConfigError
from ivr.core.live_settings import apply, form_values, preview, validate
from storage.admin import Actor, AdminStore
from storage.store import NewSurvey, Store
from tests.fakes import FakeCall, FakeClock, FakePhone, FakePrompts
from tests.helpers import config_data

INSIDE = datetime(2026, 11, 26, 7, 0, tzinfo=UTC)  # Thursday 10:00 in Minsk


def test_no_live_document_is_the_file_itself() -> None:
    config = parse_config(config_data())
    assert apply(config, None) is config and apply(config, {}) is config


@pytest.mark.parametrize(
    "file_extra",
    [
        {},
        {"dialing": {"retry_delay": "15m"}},
        {"dialing": {"retry": {"busy": ["5m"]}, "channels": 9}},
        {"call_windows": {"mon": ["08:00-24:00"]}, "calendar": {"holidays": None}},
    ],
    ids=["defaults", "retry-delay-shorthand", "explicit-ladder", "midnight-and-no-holidays"],
)
def test_the_form_of_a_configuration_gives_it_back(file_extra: dict[str, object]) -> None:
    config = parse_config(config_data(**file_extra))
    checked = validate(form_values(config), config)
    assert checked.errors == {}
    assert checked.config is not None
    for key in ("busy", "no_answer", "failed"):
        assert checked.config.dialing.ladder(key) == config.dialing.ladder(key)
    assert checked.config.call_windows == config.call_windows
    assert checked.config.calendar == config.calendar
    assert checked.config.sip == config.sip and checked.config.portal == config.portal


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("win_tue", "13:00-09:00", "range ends before it starts"),
        ("win_fri", "9-17", "expected HH:MM"),
        ("channels", "0", "greater than or equal to 1"),
        ("channels", "four", "valid integer"),
        ("calls_per_second", "-1", "greater than 0"),
        ("retry_busy", "soon", "expected a duration"),
        ("retry_failed", "", "at least one duration"),
        ("survey_deadline", "3 weeks", "expected a duration"),
        ("blackout_dates", "2026-13-01", "date"),
        ("holidays_as", "funday", "expected one of"),
        ("holidays", "XX", "no public holiday calendar"),
    ],
    ids=lambda v: str(v)[:20],
)
def test_an_invalid_field_is_reported_at_that_field(field: str, value: str, message: str) -> None:
    config = parse_config(config_data())
    form = {**form_values(config), field: value}
    checked = validate(form, config)
    assert checked.config is None
    assert list(checked.errors) == [field]
    assert message in checked.errors[field]


def test_no_window_on_any_day_is_refused() -> None:
    config = parse_config(config_data())
    form = {**form_values(config), **{f"win_{d}": "" for d in
            ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}}  # fmt: skip
    assert "nobody would ever be called" in " ".join(validate(form, config).errors.values())


def test_a_broken_document_raises_naming_the_key() -> None:
    with pytest.raises(ConfigError, match="dialing.channels"):
        apply(parse_config(config_data()), {"dialing": {"channels": 0}})


def test_the_preview_applies_holidays_and_blackouts() -> None:
    config = parse_config(config_data(calendar={"blackout_dates": ["2026-12-30"]}))
    days = {d.day: d for d in preview(config, date(2026, 12, 28), 7)}
    assert days[date(2026, 12, 30)].kind == "blackout" and days[date(2026, 12, 30)].windows == ()
    assert days[date(2027, 1, 1)].kind == "holiday"  # New Year: Sunday's windows (none)
    assert days[date(2027, 1, 1)].windows == ()
    assert days[date(2026, 12, 28)].windows == ("09:00-13:00", "14:00-20:00")


def test_a_running_dialer_applies_saved_settings_within_seconds(
    store: Store, tmp_path: Path
) -> None:
    config = parse_config(config_data())
    store.add_survey(
        NewSurvey("R1", "1", INSIDE, date(2026, 11, 25), "x", "+375291000001", "ru", None), INSIDE
    )
    clock = FakeClock(INSIDE)
    admin = AdminStore(store.engine)
    with Dialer(store, FakePhone([FakeCall(clock, answer_at=None, reject=486)]), FakePrompts(),
                config, clock) as dialer:  # fmt: skip
        form = {**form_values(config), "win_thu": "15:00-16:00", "channels": "7"}
        checked = validate(form, config)
        admin.save_live_settings(Actor("oleg", "10.0.0.5"), checked.document, INSIDE)
        clock.t += 2.5
        assert dialer.start_due(INSIDE) == 0  # Thursday 10:00 is outside the new window
        assert dialer.settings.channels == 7
        # A reload from the file keeps the live settings over it.
        dialer.reload(config)
        assert dialer.settings.channels == 7
        admin.reset_live_settings(Actor("oleg"), INSIDE)
        clock.t += 2.5
        assert dialer.start_due(INSIDE) == 1  # back to the file's 09:00-13:00
        assert dialer.settings.channels == 4
    rows, total = admin.audit_rows()
    assert [r.action for r in rows] == ["settings.reset", "settings.save"]
    assert rows[1].after["dialing"]["channels"] == 7 and rows[1].address == "10.0.0.5"
    assert rows[0].before == rows[1].after and rows[0].after is None


def test_cli_changes_are_audited_as_the_os_user(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import getpass
    import io

    from ivr.entry.cli import main
    from storage.db import make_engine

    path = tmp_path / "config.yaml"
    db = f"sqlite:///{tmp_path / 'ivr.sqlite'}"
    path.write_text(yaml.safe_dump(config_data(database=db)))
    monkeypatch.setattr(getpass, "getuser", lambda: "dispatcher")
    run = lambda *a: main(["--config", str(path), *a])  # noqa: E731
    monkeypatch.setattr("sys.stdin", io.StringIO("long-enough-pw\n"))
    assert run("user", "add", "anna", "--role", "admin", "--password-stdin") == 0
    assert run("user", "set-role", "anna", "operator") == 0
    assert run("user", "disable", "anna") == 0
    assert run("pause", "--reason", "night shift change") == 0
    assert run("resume") == 0
    assert run("dnc", "add", "8 029 123 45 67", "--note", "asked") == 0
    assert run("dnc", "remove", "+375291234567") == 0
    assert run("reload") == 0
    assert run("user", "list") == 0
    out = capsys.readouterr().out
    assert "anna" in out and "operator" in out and "disabled" in out
    monkeypatch.setattr("sys.stdin", io.StringIO("short\n"))
    assert run("user", "passwd", "anna", "--password-stdin") == 2  # too short: refused
    engine = make_engine(db)
    rows, _ = AdminStore(engine).audit_rows()
    engine.dispose()
    assert [(r.action, r.actor) for r in reversed(rows)] == [
        ("user.add", "cli:dispatcher"),
        ("user.role", "cli:dispatcher"),
        ("user.disable", "cli:dispatcher"),
        ("pause", "cli:dispatcher"),
        ("resume", "cli:dispatcher"),
        ("dnc.add", "cli:dispatcher"),
        ("dnc.remove", "cli:dispatcher"),
        ("reload", "cli:dispatcher"),
    ]
    assert all("long-enough-pw" not in str(r.after) for r in rows)
    assert rows[4].after == {"paused": True, "reason": "night shift change"}


def test_pause_state_and_dnc_added_by(store: Store) -> None:
    admin = AdminStore(store.engine)
    assert not admin.pause_state().paused
    with pytest.raises(ValueError):
        admin.pause(Actor("x"), "  ", INSIDE)
    admin.pause(Actor("oleg"), "trunk", INSIDE)
    state = admin.pause_state()
    assert (state.paused, state.by, state.reason, state.since) == (True, "oleg", "trunk", INSIDE)
    assert admin.dnc_add(Actor("oleg"), "+375291234567", "asked", INSIDE + timedelta(1))
    store.add_do_not_call("+375297654321", "ivr", INSIDE, note="key 9")
    rows = admin.dnc_rows()
    assert [(r.phone, r.added_by) for r in rows] == [
        ("+375291234567", "oleg"),
        ("+375297654321", None),
    ]
    assert [r.phone for r in admin.dnc_rows("765")] == ["+375297654321"]


def test_a_number_added_in_the_console_closes_its_open_surveys_audited(store: Store) -> None:
    store.add_survey(
        NewSurvey("R9", "9", INSIDE, date(2026, 11, 25), "x", "+375291112233", "ru", None), INSIDE
    )
    admin = AdminStore(store.engine)
    result = admin.dnc_add(Actor("oleg", "10.0.0.5"), "+375291112233", "asked", INSIDE)
    assert result.added and result.closed == ["R9"]
    assert store.due_surveys(INSIDE + timedelta(days=1), 10) == []
    (row,) = store.report_rows(date(2026, 11, 25))
    assert (row.outcome, row.reason) == ("not_called", "do_not_call")
    rows, _ = admin.audit_rows(action="dnc.add")
    assert rows[0].after == {"note": "asked", "closed": ["R9"]} and rows[0].actor == "oleg"
