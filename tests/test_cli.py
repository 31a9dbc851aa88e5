"""The command line as an operator meets it: in-process through ``main(argv)`` (its exit code,
stdout and stderr are what a shell sees), and run as a process only where the process itself is
the subject (a closed pipe), to keep the suite quick."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml

from ivr.entry.cli import main
from lab.sample_requests import make_items
from storage.db import current_revision, make_engine, upgrade
from tests.helpers import config_data

ROOT = Path(__file__).resolve().parent.parent
MINSK = ZoneInfo("Europe/Minsk")
TODAY = datetime.now(MINSK).date().isoformat()
SECRETS = {"PORTAL_TOKEN": "tok-secret-1", "SIP_PASSWORD": "sip-secret-2"}


def ivr(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """``ivr-rating ARGS`` in a fresh process; the environment has no secret unless given. For
    a test about the process; one about the command's behaviour calls :func:`run`."""
    base = {k: v for k, v in os.environ.items() if k not in SECRETS}
    return subprocess.run(
        [sys.executable, "-m", "ivr.entry.cli", *args],
        env={**base, "PYTHONPATH": str(ROOT), **(env or {})},
        cwd=cwd or ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def write_config(tmp_path: Path, **sections: Any) -> Path:
    data = config_data(**{"database": f"sqlite:///{tmp_path / 'ivr.sqlite'}", **sections})
    data["portal"]["token"] = "${PORTAL_TOKEN}"
    data["sip"]["password"] = "${SIP_PASSWORD}"
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


def run(
    *args: str, capsys: pytest.CaptureFixture[str], env: dict[str, str] | None = None
) -> tuple[int, str, str]:
    """``ivr-rating ARGS`` in this process, with only ``env``'s secrets set."""
    with pytest.MonkeyPatch.context() as mp:
        for name in SECRETS:
            mp.delenv(name, raising=False)
        for name, value in (env or {}).items():
            mp.setenv(name, value)
        code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_version_and_config_after_the_subcommand(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as version:
        main(["--version"])
    assert version.value.code == 0 and capsys.readouterr().out.startswith("ivr-rating 0.")
    path = write_config(tmp_path)
    code, out, err = run("config", "check", "--config", str(path), env=SECRETS, capsys=capsys)
    assert code == 0, err
    assert out.startswith(f"configuration OK: {path}")
    # Seven days of windows, starting today in Minsk, and no secret anywhere.
    today = datetime.now(MINSK).date()
    for offset in range(7):
        assert (today + timedelta(days=offset)).isoformat() in out
    assert "next import" in out
    for secret in SECRETS.values():
        assert secret not in out + err


def test_config_check_reports_every_error_at_once_with_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(
        """\
portal: {base_url: "http://127.0.0.1:9/api/v1", token: "${PORTAL_TOKEN}"}
sip: {server: 127.0.0.1, username: d, password: "${SIP_PASSWORD}", local_ip: 0.0.0.0}
database: "mysql://ivr:db-secret@db/ivr"
schedule: {import_at: 10:30}
calendar: {blackout_dates: [2030-12-31, 2030-02-30]}  # fixed date: not a day to run for
dialing: {max_call_s: 2m, ring_timeout_s: forever}
"""
    )
    code, _, err = run("--config", str(path), "config", "check", env=SECRETS, capsys=capsys)
    assert code == 2
    lines = err.splitlines()
    for key in (
        "sip.local_ip",
        "database",
        "schedule.import_at",
        "calendar.blackout_dates[1]",
        "dialing.ring_timeout_s",
    ):
        assert any(line.startswith(f"configuration error: {key}: ") for line in lines), key
    assert "db-secret" not in err
    assert not any("max_call_s" in line for line in lines)  # 2m is fine


def test_a_yaml_error_shows_where_but_not_the_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("portal:\n  token: 'hunter2\nsip: {}\n")
    code, _, err = run("config", "check", "--config", str(path), capsys=capsys)
    assert code == 2
    assert f"{path}, line 4, column 1: " in err and "line 2, column 10" in err
    assert "hunter2" not in err


def prepared_database(tmp_path: Path, revision: str = "head") -> Path:
    path = write_config(tmp_path)
    engine = make_engine(f"sqlite:///{tmp_path / 'ivr.sqlite'}")
    upgrade(engine, revision)
    engine.dispose()
    return path


def test_read_only_commands_need_no_secret_and_default_to_yesterday(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = prepared_database(tmp_path)
    yesterday = datetime.now(MINSK).date() - timedelta(days=1)
    items = make_items(yesterday, "Europe/Minsk", ["+375291234567", "+375291234568"])
    (tmp_path / "items.json").write_text(json.dumps(items), encoding="utf-8")
    cfg = ("--config", str(path))
    assert run("import", "--file", str(tmp_path / "items.json"), *cfg, capsys=capsys)[0] == 0
    code, out, err = run("report", *cfg, capsys=capsys)
    assert code == 0, err
    assert items[0]["id"] in out and items[1]["id"] in out
    assert f"2 request(s) closed on {yesterday.isoformat()}" in out
    assert "+37529*****67" in out
    _, older, _ = run(
        *cfg, "report", "--date", (yesterday - timedelta(1)).isoformat(), capsys=capsys
    )
    assert items[0]["id"] not in older and "0 request(s)" in older
    code, out, _ = run("status", *cfg, capsys=capsys)
    assert code == 0 and "pending surveys:    2" in out
    assert run("dnc", "add", "+375291234567", *cfg, capsys=capsys)[0] == 0
    code, listed, _ = run("dnc", "list", *cfg, capsys=capsys)
    assert code == 0 and "+37529*****67" in listed
    # The time it was added, in Minsk time, written the one way ("YYYY-MM-DD HH:MM:SS +03").
    line = next(x for x in listed.splitlines() if "+37529*****67" in x)
    shown = datetime.strptime(line.split("operator")[1].strip()[:19], "%Y-%m-%d %H:%M:%S")
    assert line.split("operator")[1].strip()[20:23] == "+03"
    assert abs(shown.replace(tzinfo=MINSK) - datetime.now(UTC)) < timedelta(minutes=10)


def test_a_read_only_command_never_changes_the_schema(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = prepared_database(tmp_path, "0002")
    for args in (["report"], ["status"], ["dnc", "list"]):
        code, _, err = run(*args, "--config", str(path), env=SECRETS, capsys=capsys)
        assert code == 8, (args, err)
        assert "run `ivr-rating db upgrade`" in err
        assert len(err.strip().splitlines()) == 1
    engine = make_engine(f"sqlite:///{tmp_path / 'ivr.sqlite'}")
    assert current_revision(engine) == "0002"
    engine.dispose()


def test_a_read_only_command_creates_no_database(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_config(tmp_path, database=f"sqlite:///{tmp_path / 'new' / 'ivr.sqlite'}")
    code, _, err = run("report", "--date", TODAY, "--config", str(path), capsys=capsys)
    assert code == 8 and "no database at" in err
    assert not (tmp_path / "new").exists()


def test_an_unreachable_database_is_one_line_and_exit_7(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_config(tmp_path, database="postgresql+psycopg://ivr:db-secret@127.0.0.1:1/ivr")
    for args in (["report"], ["night", "--date", TODAY]):
        code, _, err = run(*args, "--config", str(path), env=SECRETS, capsys=capsys)
        assert code == 7, err
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("database unreachable: ")
        assert "postgresql+psycopg://ivr:***@127.0.0.1:1/ivr" in lines[0]
        assert "db-secret" not in err


def test_a_closed_pipe_ends_quietly(tmp_path: Path) -> None:
    path = prepared_database(tmp_path)
    base = {k: v for k, v in os.environ.items() if k not in SECRETS}
    proc = subprocess.Popen(
        [sys.executable, "-m", "ivr.entry.cli", "--config", str(path), "report", "--date", TODAY],
        env={**base, "PYTHONPATH": str(ROOT)},
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    proc.stdout.close()  # `| head` that has read all it wanted (here: nothing)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 141, err
    assert "Traceback" not in err and "BrokenPipe" not in err and "Exception ignored" not in err


def test_config_check_json_is_the_full_redacted_dump(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_config(tmp_path, call_windows={"mon": ["09:00-09:01"]})
    code, out, err = run("config", "check", "--json", "--config", str(path), env=SECRETS,
                         capsys=capsys)  # fmt: skip
    assert code == 0, err
    dumped = json.loads(out)
    assert dumped["portal"]["token"] == dumped["sip"]["password"] == "***"
    assert dumped["call_windows"]["mon"] == [{"start": "09:00:00", "end": "09:01:00"}]
    assert "warning: call_windows.mon[0]: 09:00-09:01 is shorter" in err
    assert "tok-secret-1" not in out + err
