"""Operator transfer settings (issue 14): validated with the key named, documented in the
example, known to `config check`, and the hours judged in the configured time zone."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from ivr.core.config import load_config, parse_config
from ivr.core.errors import ConfigError
from ivr.entry.config_check import summary_text
from tests.test_config import ENV, ROOT, minimal


def on(target: str = "sip:operator@127.0.0.1", **transfer: Any) -> dict[str, Any]:
    return minimal(ivr={"operator_transfer": True}, transfer={"target": target, **transfer})


def test_off_by_default_and_the_example_states_the_defaults() -> None:
    defaults = parse_config(minimal(), env=ENV)
    assert defaults.ivr.operator_transfer is False
    assert defaults.transfer.target == ""
    example = load_config(ROOT / "config.example.yaml", env=ENV)
    assert example.transfer == defaults.transfer


@pytest.mark.parametrize(
    ("data", "key", "message"),
    [
        (minimal(ivr={"operator_transfer": True}), "transfer.target", "required when"),
        (on("operator@pbx"), "transfer.target", "SIP URI"),
        (on("sip:an operator@pbx"), "transfer.target", "SIP URI"),
        (on(hours={"mon": ["9-18"]}), "transfer.hours.mon[0]", "HH:MM"),
        (on(hours={"monday": ["09:00-18:00"]}), "transfer.hours", "unknown weekday"),
        (on(hours={"mon": ["09:00-13:00", "12:00-18:00"]}), "transfer.hours", "overlap"),
        (on(hours={"mon": [900]}), "transfer.hours.mon[0]", "quote"),
        (minimal(transfer={"tagret": "sip:op@pbx"}), "transfer.tagret", "unknown key"),
        (minimal(ivr={"operator_transfer": "sometimes"}), "ivr.operator_transfer", "boolean"),
    ],
    ids=[
        "on-without-target", "target-not-uri", "target-with-space", "hours-format",
        "hours-weekday", "hours-overlap", "hours-unquoted", "unknown-key", "flag-not-bool",
    ],
)  # fmt: skip
def test_a_bad_setting_names_its_key(data: dict[str, Any], key: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(data, env=ENV)
    text = str(info.value)
    assert key in text and message.lower() in text.lower(), text


def test_a_target_is_fine_without_the_flag_and_uris_of_several_shapes_pass() -> None:
    for target in (
        "sip:operator@127.0.0.1",
        "sips:op@pbx.example;transport=tls",
        "sip:2000@[::1]:5070",
    ):
        cfg = parse_config(on(target), env=ENV)
        assert cfg.transfer.target == target


@pytest.mark.parametrize(
    ("utc", "expected"),
    [
        (datetime(2026, 11, 30, 5, 59, tzinfo=UTC), False),  # Mon 08:59 in Minsk
        (datetime(2026, 11, 30, 6, 0, tzinfo=UTC), True),  # Mon 09:00
        (datetime(2026, 11, 30, 14, 59, tzinfo=UTC), True),  # Mon 17:59
        (datetime(2026, 11, 30, 15, 0, tzinfo=UTC), False),  # Mon 18:00
        (datetime(2026, 12, 5, 10, 0, tzinfo=UTC), False),  # Saturday
    ],
    ids=["before", "opens", "last-minute", "closes", "saturday"],
)
def test_hours_are_read_in_the_configured_zone(utc: datetime, expected: bool) -> None:
    cfg = parse_config(on(), env=ENV)
    assert cfg.transfer.is_open(utc, cfg.tz) is expected


def test_config_check_tells_whether_and_where_a_citizen_is_transferred() -> None:
    now = datetime(2026, 11, 30, 7, 0, tzinfo=UTC)
    off = summary_text(parse_config(minimal(), env=ENV), Path("c.yaml"), now)
    assert "Operator transfer: off" in off
    text = summary_text(parse_config(on(), env=ENV), Path("c.yaml"), now)
    assert "key 3 to sip:operator@127.0.0.1 (open now)" in text
    assert "Mon 09:00-18:00" in text and "Sat" not in text.split("Operator transfer")[1]


def test_the_dialer_gets_the_operators_line_only_when_on() -> None:
    from ivr.campaign.dialer import DialerSettings

    assert DialerSettings.from_config(parse_config(minimal(), env=ENV)).runner.operator is None
    line = DialerSettings.from_config(parse_config(on(), env=ENV)).runner.operator
    assert line is not None and line.target == "sip:operator@127.0.0.1"
    assert line.is_open(datetime(2026, 11, 30, 7, 0, tzinfo=UTC))  # Mon 10:00 in Minsk
    assert not line.is_open(datetime(2026, 11, 29, 7, 0, tzinfo=UTC))  # Sunday


@pytest.mark.parametrize(
    ("utc", "expected"),
    [
        (datetime(2027, 1, 6, 7, 0, tzinfo=UTC), True),  # Wed 10:00 in Minsk, a working day
        (datetime(2027, 1, 7, 7, 0, tzinfo=UTC), False),  # Thu: Orthodox Christmas (BY)
        (datetime(2026, 12, 31, 7, 0, tzinfo=UTC), False),  # Thu: a blackout date
    ],
    ids=["working-day", "public-holiday", "blackout"],
)
def test_nobody_takes_a_transfer_on_a_holiday_or_blackout(utc: datetime, expected: bool) -> None:
    from ivr.campaign.dialer import operator_line

    data = on()
    data["calendar"] = {
        **data.get("calendar", {}),
        "holidays": "BY",
        "blackout_dates": ["2026-12-31"],
    }
    line = operator_line(parse_config(data, env=ENV))
    assert line is not None and line.is_open(utc) is expected
