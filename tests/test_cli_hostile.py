"""Hostile arguments to ``ivr-rating analytics rebuild``, ``report``, ``purge`` and ``token``:
each is refused with exit code 2 and a message naming the argument, never a traceback, and
the days are read as the console reads them (:mod:`ivr.console.analytics_params`)."""

from __future__ import annotations

import pytest
import yaml

from ivr.entry.cli import main
from tests.helpers import config_data


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> str:
    folder = tmp_path_factory.mktemp("cli-hostile")
    path = folder / "config.yaml"
    data = config_data(database=f"sqlite:///{folder / 'ivr.sqlite'}")
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    assert main(["--config", str(path), "db", "upgrade"]) == 0
    return str(path)


def run(config: str, args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    capsys.readouterr()
    try:
        code = main([args[0], "--config", config, *args[1:]])
    except SystemExit as exc:  # argparse's usage errors
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, out + err


REBUILD = ["analytics", "rebuild"]
PERIOD = ["--from", "2026-11-01", "--to", "2026-11-30"]
CASES = [
    ([*REBUILD, "--from", "2026-02-30", "--to", "2026-03-01"], 2, "--from"),
    ([*REBUILD, "--from", "", "--to", "2026-03-01"], 2, "--from"),
    ([*REBUILD, "--from", "0001-01-01", "--to", "2026-03-01"], 2, "--from"),
    ([*REBUILD, "--from", "2026-11-01", "--to", "9999-12-31"], 2, "--to"),
    ([*REBUILD, "--from", "2026-11-02", "--to", "2026-11-01"], 2, "--from: after '--to'"),
    ([*REBUILD, "--from", "2020-01-01", "--to", "2026-11-01"], 2, "--from: a period is at most"),
    ([*REBUILD, "--from", "x\x01y", "--to", "2026-11-01"], 2, "--from"),
    ([*REBUILD, "--from", "2026-11-01", "--to", "2026-11-02"], 0, "2026-11-01..2026-11-02"),
    (["report", *PERIOD, "--by", "nope"], 2, "--by"),
    (["report", "--from", "9999-12-01", "--to", "9999-12-31", "--by", "week"], 2, "--from"),
    (["report", "--from", "0001-01-01", "--to", "0001-01-31"], 2, "--from"),
    (["report", "--from", "2020-01-01", "--to", "2026-11-01"], 2, "--from: a period is at most"),
    (["report", "--from", "2026-11-30", "--to", "2026-11-01"], 2, "--from: after '--to'"),
    (["report", "--from", "2026-11-01"], 2, "--from and --to"),
    (["report", "--date", "2026-02-30"], 2, "--date"),
    (["report", *PERIOD, "--executor", "%'_\\"], 0, "TOTAL"),
    (["report", *PERIOD, "--by", "week", "--category", "Лифт 😀"], 0, "TOTAL"),
    (["purge", "--before", "0001-01-01"], 2, "--before"),
    (["token", "add", ""], 2, "token add: a token name"),
    (["token", "add", "x" * 100_000], 2, "token add: a token name"),
    (["token", "add", "ok\x1b[31m"], 2, "token add: a token name"),
    (["token", "add", "a\u202eb"], 2, "token add: a token name"),
    (["token", "revoke", "nobody"], 2, "token revoke: no live token named 'nobody'"),
    (["token", "frobnicate"], 2, "token_command"),
]


@pytest.mark.parametrize(("args", "code", "said"), CASES, ids=[" ".join(c[0])[:60] for c in CASES])
def test_a_hostile_argument_is_a_usage_error_naming_it(
    config: str, args: list[str], code: int, said: str, capsys: pytest.CaptureFixture[str]
) -> None:
    got, text = run(config, args, capsys)
    assert got == code, text
    assert said in text, text


def test_a_token_is_shown_once_and_its_name_twice_is_refused(
    config: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, text = run(config, ["token", "add", "bi-hostile"], capsys)
    assert code == 0
    secret = text.strip().splitlines()[-1]
    code, again = run(config, ["token", "add", "bi-hostile"], capsys)
    assert code == 2 and "exists" in again and secret not in again
    code, listed = run(config, ["token", "list"], capsys)
    assert code == 0 and "bi-hostile" in listed and secret not in listed
