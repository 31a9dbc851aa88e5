"""Configuration rules of issue 9: every error at once, unquoted times, bad dates, unreachable
addresses, database drivers, overlapping and too short windows, units on every duration key,
secrets out of reprs and YAML errors; and the ``config check`` summary."""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from ivr.core.config import config_warnings, load_config, parse_config
from ivr.core.errors import ConfigError
from ivr.core.windows import CallCalendar, format_local, next_daily, plan_days
from ivr.entry.config_check import summary_text
from ivr.sip.api import SipSettings
from tests.helpers import config_data

ENV = {"PORTAL_TOKEN": "tok-secret-1", "SIP_PASSWORD": "sip-secret-2"}
MINSK = ZoneInfo("Europe/Minsk")


def problems_of(data: dict[str, Any], env: dict[str, str] | None = None) -> dict[str, str]:
    with pytest.raises(ConfigError) as err:
        parse_config(data, env=env if env is not None else ENV)
    return dict(err.value.problems)


def load_text(tmp_path: Path, text: str, **kw: Any) -> Any:
    path = tmp_path / "config.yaml"
    path.write_text(text, encoding="utf-8")
    return load_config(path, env=ENV, **kw)


BASE_YAML = """\
portal: {base_url: "http://127.0.0.1:9/api/v1", token: "${PORTAL_TOKEN}"}
sip: {server: 127.0.0.1, username: d, password: "${SIP_PASSWORD}", local_ip: 127.0.0.1}
"""


def test_every_error_is_reported_at_once_each_with_its_key() -> None:
    data = config_data(
        portal={"base_url": "http://127.0.0.1:9/api/v1", "token": "${PORTAL_TOKEN}"},
        database="mysql://u@h/db",
        dialing={"channels": 0, "retry": {"busy": ["soon"]}},
        call_windows={"mon": ["13:00-09:00"]},
        schedule={"import_at": "25:00"},
        calendar={"blackout_dates": ["2026-02-30"]},
        ivr={"max_repeats": 99},
    )
    data["sip"] = {**data["sip"], "local_ip": "0.0.0.0"}
    found = problems_of(data, env={})
    assert set(found) == {
        "portal.token",  # its environment variable is unset
        "database",
        "sip.local_ip",
        "dialing.channels",
        "dialing.retry.busy[0]",
        "call_windows.mon[0]",
        "calendar.blackout_dates[0]",
        "schedule.import_at",
        "ivr.max_repeats",
    }
    assert "PORTAL_TOKEN is not set" in found["portal.token"]


def test_an_empty_week_is_reported_beside_other_errors() -> None:
    found = problems_of(config_data(call_windows={"mon": []}, dialing={"channels": 0}))
    assert set(found) == {"call_windows", "dialing.channels"}
    assert "no day has a call window" in found["call_windows"]


@pytest.mark.parametrize(
    ("yaml_text", "key", "hint"),
    [
        ("schedule:\n  import_at: 10:30\n", "schedule.import_at", '"10:30"'),
        ("schedule:\n  import_at: 8:05\n", "schedule.import_at", '"8:05"'),
        ('call_windows:\n  mon: ["09:00-13:00", 14:00]\n', "call_windows.mon[1]", '"14:00"'),
    ],
    ids=["import-at", "import-at-one-digit-hour", "inside-call-windows"],
)
def test_an_unquoted_time_is_an_error_naming_the_key(
    tmp_path: Path, yaml_text: str, key: str, hint: str
) -> None:
    with pytest.raises(ConfigError) as err:
        load_text(tmp_path, BASE_YAML + yaml_text)
    assert err.value.key == key
    assert "quotes" in err.value.message and hint in err.value.message


def test_a_quoted_time_and_a_leading_zero_time_are_read_as_written(tmp_path: Path) -> None:
    # 08:30 is not a YAML 1.1 number (no leading zero in base 60), so it stays a string.
    assert load_text(tmp_path, BASE_YAML + "schedule: {import_at: 08:30}\n").schedule.import_at == (
        time(8, 30)
    )
    quoted = load_text(tmp_path, BASE_YAML + 'schedule: {import_at: "10:30"}\n')
    assert quoted.schedule.import_at == time(10, 30)


@pytest.mark.parametrize("value", ["2026-02-30", "2026-13-01", "31.12.2026", '"tomorrow"'], ids=str)
def test_a_bad_blackout_date_is_an_error_naming_it(tmp_path: Path, value: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_text(tmp_path, BASE_YAML + f"calendar:\n  blackout_dates: [2026-12-31, {value}]\n")
    assert err.value.key == "calendar.blackout_dates[1]"
    assert "expected YYYY-MM-DD" in err.value.message or "valid date" in err.value.message


def test_good_blackout_dates_are_dates(tmp_path: Path) -> None:
    cfg = load_text(
        tmp_path, BASE_YAML + 'calendar: {blackout_dates: [2026-12-31, "2027-01-02"]}\n'
    )
    assert cfg.calendar.blackout_dates == (date(2026, 12, 31), date(2027, 1, 2))


@pytest.mark.parametrize("address", ["0.0.0.0", "::", " 0.0.0.0 "], ids=["v4", "v6", "spaces"])
def test_an_unspecified_local_ip_is_an_error(address: str) -> None:
    data = config_data()
    data["sip"] = {**data["sip"], "local_ip": address}
    found = problems_of(data)
    assert "not an address the SIP server can reach" in found["sip.local_ip"]


@pytest.mark.parametrize(
    ("url", "ok"),
    [
        ("sqlite:///var/x.sqlite", True),
        ("sqlite+pysqlite:///x.sqlite", True),
        ("postgresql+psycopg://ivr:pw-secret@db/ivr", True),
        ("postgresql://ivr:pw-secret@db/ivr", False),  # psycopg2, not installed
        ("mysql+pymysql://ivr:pw-secret@db/ivr", False),
        ("postgresql+asyncpg://ivr:pw-secret@db/ivr", False),
        ("not a url at all pw-secret", False),
    ],
    ids=["sqlite", "pysqlite", "psycopg", "psycopg2", "mysql", "asyncpg", "garbage"],
)
def test_only_supported_database_drivers(url: str, ok: bool) -> None:
    if ok:
        assert parse_config(config_data(database=url), env={}).database == url
        return
    found = problems_of(config_data(database=url))
    assert set(found) == {"database"}
    assert "postgresql+psycopg://" in found["database"]  # says what to write instead
    assert "pw-secret" not in found["database"]


def test_overlapping_windows_are_rejected_with_the_merged_range() -> None:
    found = problems_of(config_data(call_windows={"tue": ["12:00-15:00", "09:00-13:00"]}))
    assert "tue: 09:00-13:00 and 12:00-15:00 overlap" in found["call_windows"]
    assert "(09:00-15:00)" in found["call_windows"]
    midnight = problems_of(config_data(call_windows={"sat": ["18:00-24:00", "20:00-21:00"]}))
    assert "sat: 18:00-24:00 and 20:00-21:00 overlap" in midnight["call_windows"]


def test_adjacent_windows_are_fine_and_sorted() -> None:
    cfg = parse_config(config_data(call_windows={"mon": ["14:00-20:00", "09:00-14:00"]}), env={})
    assert [r.start for r in cfg.call_windows["mon"]] == [time(9), time(14)]


def test_a_window_shorter_than_the_longest_call_is_a_warning() -> None:
    cfg = parse_config(
        config_data(
            call_windows={"mon": ["09:00-13:00", "13:30-13:32"], "sun": ["23:59-24:00"]},
            dialing={"max_call_s": "3m"},
        ),
        env={},
    )
    assert config_warnings(cfg) == [
        "call_windows.mon[1]: 13:30-13:32 is shorter than dialing.max_call_s (180 s): "
        "no call fits in it",
        "call_windows.sun[0]: 23:59-24:00 is shorter than dialing.max_call_s (180 s): "
        "no call fits in it",
    ]
    assert config_warnings(parse_config(config_data(), env={})) == []


SECONDS_KEYS = [
    ("portal", "timeout_s"),
    ("portal", "retry_budget_s"),
    ("dialing", "ring_timeout_s"),
    ("dialing", "max_call_s"),
    ("ivr", "input_timeout_s"),
    ("ivr", "media_timeout_s"),
]


@pytest.mark.parametrize(("section", "key"), SECONDS_KEYS, ids=[k for _, k in SECONDS_KEYS])
@pytest.mark.parametrize(
    ("value", "seconds"), [("45s", 45.0), ("1m", 60.0), ("0m55s", 55.0), (50, 50.0), ("20", 20.0)],
    ids=["45s", "1m", "0m55s", "number", "numeric-string"],
)  # fmt: skip
def test_every_seconds_key_takes_units(
    section: str, key: str, value: object, seconds: float
) -> None:
    data = config_data()
    data[section] = {**data.get(section, {}), key: value}
    assert getattr(getattr(parse_config(data, env={}), section), key) == seconds


def test_duration_keys_name_themselves_when_wrong() -> None:
    found = problems_of(config_data(dialing={"ring_timeout_s": "half a minute"}))
    assert found == {"dialing.ring_timeout_s": "expected a duration like 20m, 1h30m or 45s"}
    assert problems_of(config_data(dialing={"max_call_s": "1h"}))["dialing.max_call_s"].startswith(
        "Input should be less than or equal to 1800"
    )


@pytest.mark.parametrize(
    ("value", "days"), [(30, 30), ("30d", 30), ("48h", 2)], ids=["number", "days", "hours"]
)
def test_retention_takes_days_or_units(value: object, days: int) -> None:
    cfg = parse_config(config_data(node={"retention_days": value}), env={})
    assert cfg.node.retention_days == days
    assert (
        "whole number of days"
        in problems_of(config_data(node={"retention_days": "36h"}))["node.retention_days"]
    )


def test_no_secret_in_the_repr_of_settings() -> None:
    cfg = parse_config(config_data(database="postgresql+psycopg://ivr:db-secret@h/ivr",
                                   portal={"base_url": "https://h/api", "token": "tok-secret"},
                                   sip={"server": "s", "username": "u", "password": "sip-secret",
                                        "local_ip": "127.0.0.1"}), env={})  # fmt: skip
    text = repr(cfg) + str(cfg) + repr(cfg.portal) + repr(cfg.sip)
    for secret in ("db-secret", "tok-secret", "sip-secret"):
        assert secret not in text
    settings = SipSettings("s", 5060, "u", "sip-secret", "127.0.0.1", 5062, 21000, 21099)
    assert "sip-secret" not in repr(settings)


def test_a_yaml_error_names_file_line_and_column_never_the_text(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        load_text(tmp_path, BASE_YAML + 'database: "postgresql+psycopg://u:hunter2@db/x\n')
    text = str(err.value)
    assert str(tmp_path / "config.yaml") in text and "line 3, column 11" in text
    assert "hunter2" not in text and "postgresql" not in text
    with pytest.raises(ConfigError) as err:
        load_text(tmp_path, BASE_YAML + "sip:\n  password: hunter2: x\n")
    assert "line 4" in str(err.value) and "hunter2" not in str(err.value)


def test_secrets_may_be_unset_only_when_not_needed(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(BASE_YAML)
    with pytest.raises(ConfigError, match="PORTAL_TOKEN is not set"):
        load_config(path, env={})
    cfg = load_config(path, env={}, need_secrets=False)
    assert cfg.portal.token.get_secret_value() == ""
    # Only the secrets: another unset variable is still an error.
    path.write_text(BASE_YAML + 'database: "sqlite:///${DB_DIR}/x.sqlite"\n')
    with pytest.raises(ConfigError, match="database: environment variable DB_DIR"):
        load_config(path, env={}, need_secrets=False)


@pytest.mark.parametrize(
    ("moment", "zone", "shown"),
    [
        (datetime(2026, 11, 30, 11, 5, 9, 123456, tzinfo=UTC), "Europe/Minsk",
         "2026-11-30 14:05:09 +03"),
        (datetime(2026, 11, 30, 23, 30), "Europe/Minsk", "2026-12-01 02:30:00 +03"),
        (datetime(2026, 7, 1, 0, 0, tzinfo=UTC), "Asia/Kolkata", "2026-07-01 05:30:00 +05:30"),
        (datetime(2026, 7, 1, 12, 0, tzinfo=UTC), "America/New_York", "2026-07-01 08:00:00 -04"),
    ],
    ids=["aware-utc", "naive-is-utc", "half-hour-zone", "west"],
)  # fmt: skip
def test_format_local(moment: datetime, zone: str, shown: str) -> None:
    assert format_local(moment, ZoneInfo(zone)) == shown


def test_log_lines_carry_the_same_local_time() -> None:
    from ivr.entry.cli import _LocalTimeFormatter

    formatter = _LocalTimeFormatter("%(asctime)s %(levelname)s %(message)s")
    formatter.tz = MINSK
    record = logging.LogRecord("ivr", logging.INFO, __file__, 1, "call ended", None, None)
    record.created = datetime(2026, 11, 30, 11, 5, 9, tzinfo=UTC).timestamp()
    assert formatter.format(record) == "2026-11-30 14:05:09 +03 INFO call ended"


def test_next_daily() -> None:
    at = time(8, 30)
    before = datetime(2026, 11, 30, 5, 0, tzinfo=UTC)  # 08:00 in Minsk
    assert next_daily(before, at, MINSK) == datetime(2026, 11, 30, 8, 30, tzinfo=MINSK)
    exactly = datetime(2026, 11, 30, 8, 30, tzinfo=MINSK)
    assert next_daily(exactly, at, MINSK) == datetime(2026, 12, 1, 8, 30, tzinfo=MINSK)


def test_the_week_plan_applies_holidays_working_saturdays_and_blackouts() -> None:
    cfg = parse_config(config_data(calendar={"blackout_dates": ["2026-04-22"]}), env={})
    plans = {p.day: p for p in plan_days(CallCalendar.from_config(cfg), date(2026, 4, 20))}
    assert len(plans) == 7
    assert plans[date(2026, 4, 22)].kind == "blackout" and plans[date(2026, 4, 22)].ranges == ()
    saturday = plans[date(2026, 4, 25)]  # a working Saturday in Belarus: Monday's windows
    assert (saturday.kind, saturday.uses) == ("working_weekend", "mon")
    assert saturday.ranges == cfg.call_windows["mon"]
    holiday = plan_days(CallCalendar.from_config(cfg), date(2027, 1, 1), 1)[0]
    assert (holiday.kind, holiday.uses, holiday.ranges) == ("holiday", "sun", ())
    assert holiday.holiday


def test_config_check_summary_fits_one_screen() -> None:
    cfg = parse_config(
        config_data(
            database="postgresql+psycopg://ivr:db-secret@db/ivr",
            calendar={"blackout_dates": ["2026-12-31"]},
            call_windows={"mon": ["09:00-20:00"], "tue": ["09:00-09:01"]},
        ),
        env={},
    )
    now = datetime(2026, 12, 29, 6, 0, tzinfo=UTC)  # Tuesday 09:00 in Minsk
    text = summary_text(cfg, Path("config.yaml"), now)
    lines = text.splitlines()
    assert len(lines) <= 24 and max(map(len, lines)) <= 100
    assert "  next import    2026-12-29 08:30:00 +03" not in text  # already past
    assert "next import    2026-12-30 08:30:00 +03" in text
    assert "now 2026-12-29 09:00:00 +03" in text
    assert "postgresql+psycopg://ivr:***@db/ivr" in text and "db-secret" not in text
    assert "  Tue 2026-12-29  09:00-09:01" in lines
    assert "  Thu 2026-12-31  no calls  [blackout date]" in lines
    friday = next(line for line in lines if "2027-01-01" in line)
    assert "no calls  [holiday" in friday and "(windows of Sun)" in friday
    assert "  Mon 2027-01-04  09:00-20:00" in lines
    assert "Warnings (1):" in lines
    assert any(line.startswith("  call_windows.tue[0]: 09:00-09:01 is shorter") for line in lines)
