"""Configuration: defaults, errors that name the key, secrets from the environment."""

from __future__ import annotations

import json
from datetime import time, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from ivr.core.config import load_config, parse_config, parse_duration
from ivr.core.errors import ConfigError
from ivr.entry.cli import main

ROOT = Path(__file__).resolve().parent.parent
ENV = {"PORTAL_TOKEN": "tok-secret-1", "SIP_PASSWORD": "sip-secret-2"}


def minimal(**over: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "portal": {"base_url": "http://127.0.0.1:1/api/v1", "token": "${PORTAL_TOKEN}"},
        "sip": {
            "server": "127.0.0.1",
            "username": "dialer",
            "password": "${SIP_PASSWORD}",
            "local_ip": "127.0.0.1",
        },
    }
    data.update(over)
    return data


def test_example_config_is_valid_and_matches_the_defaults() -> None:
    example = load_config(ROOT / "config.example.yaml", env=ENV)
    defaults = parse_config(minimal(), env=ENV)
    # Everything the example does not have to state equals the built-in default.
    assert example.dialing == defaults.dialing
    assert example.ivr == defaults.ivr
    assert example.schedule == defaults.schedule
    assert example.call_windows == defaults.call_windows
    assert example.timezone == defaults.timezone == "Europe/Minsk"


def test_secrets_come_from_the_environment() -> None:
    cfg = parse_config(minimal(), env=ENV)
    assert cfg.portal.token.get_secret_value() == "tok-secret-1"
    assert "tok-secret-1" not in repr(cfg) and "sip-secret-2" not in str(cfg)


@pytest.mark.parametrize(
    ("patch", "key", "message"),
    [
        ({"dialing": {"retry_delay": "soon"}}, "dialing.retry_delay", "duration like 20m"),
        ({"dialing": {"channels": 0}}, "dialing.channels", "greater than or equal to 1"),
        ({"dialing": {"chanels": 2}}, "dialing.chanels", "unknown key"),
        ({"call_windows": {"mon": ["9-13"]}}, "call_windows.mon[0]", "HH:MM"),
        ({"call_windows": {"mon": ["13:00-09:00"]}}, "call_windows.mon[0]", "ends before"),
        ({"call_windows": {"monday": ["09:00-13:00"]}}, "call_windows", "unknown weekday"),
        ({"call_windows": {"mon": []}}, "call_windows", "no day has a call window"),
        ({"timezone": "Mars/Olympus"}, "timezone", "unknown time zone"),
        ({"schedule": {"import_at": "25:00"}}, "schedule.import_at", "not a time of day"),
        ({"ivr": {"default_language": "en"}}, "ivr.default_language", "'ru' or 'be'"),
        ({"sip": {"server": "x"}}, "sip.username", "required key is missing"),
        ({"portal": {"base_url": "ftp://x", "token": "t"}}, "portal.base_url", "http"),
    ],
    ids=[
        "bad-duration",
        "zero-channels",
        "typo-key",
        "bad-window",
        "reversed-window",
        "bad-weekday",
        "no-window",
        "bad-timezone",
        "bad-import-time",
        "bad-language",
        "missing-key",
        "bad-url",
    ],
)
def test_errors_name_the_key(patch: dict[str, Any], key: str, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(minimal(**patch), env=ENV)
    assert err.value.key == key
    assert message in str(err.value)


def test_missing_environment_variable_names_the_key_and_variable() -> None:
    with pytest.raises(ConfigError, match=r"portal\.token: environment variable PORTAL_TOKEN"):
        parse_config(minimal(), env={"SIP_PASSWORD": "x"})


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("20m", timedelta(minutes=20)),
        ("1h30m", timedelta(minutes=90)),
        ("45s", timedelta(seconds=45)),
        ("2d", timedelta(days=2)),
        (90, timedelta(seconds=90)),
    ],
    ids=["minutes", "hours-minutes", "seconds", "days", "number"],
)
def test_durations(text: object, expected: timedelta) -> None:
    assert parse_duration(text) == expected


def test_windows_accept_midnight_end_and_missing_days() -> None:
    cfg = parse_config(minimal(call_windows={"sat": ["18:00-24:00"]}), env=ENV)
    assert cfg.call_windows["sat"][0].end is None
    assert cfg.call_windows["mon"] == ()
    assert cfg.schedule.import_at == time(8, 30)


def test_config_check_prints_no_secret(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for k, v in ENV.items():
        monkeypatch.setenv(k, v)
    path = tmp_path / "c.yaml"
    db = "postgresql+psycopg://ivr:db-secret-3@127.0.0.1/ivr"
    path.write_text(yaml.safe_dump(minimal(database=db)))
    assert main(["--config", str(path), "config", "check", "--json"]) == 0
    out, err = capsys.readouterr()
    for secret in ("tok-secret-1", "sip-secret-2", "db-secret-3"):
        assert secret not in out + err
    dumped = json.loads(out)
    assert dumped["portal"]["token"] == dumped["sip"]["password"] == "***"
    assert dumped["database"] == "postgresql+psycopg://ivr:***@127.0.0.1/ivr"
    assert main(["--config", str(path), "config", "check"]) == 0
    out, err = capsys.readouterr()
    assert "postgresql+psycopg://ivr:***@127.0.0.1/ivr" in out
    for secret in ("tok-secret-1", "sip-secret-2", "db-secret-3"):
        assert secret not in out + err


def test_config_check_fails_with_the_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for k, v in ENV.items():
        monkeypatch.setenv(k, v)
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(minimal(dialing={"retry_delay": "later"})))
    assert main(["--config", str(path), "config", "check"]) == 2
    assert "dialing.retry_delay: expected a duration like 20m" in capsys.readouterr().err
