"""``ivr-rating report --from D --to D --by ...``: the terminal table, CSV for Excel and XLSX."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml
from sqlalchemy import select

from ivr.entry.cli import main
from storage.db import make_engine
from storage.models import Survey
from storage.store import AttemptResult, Store
from tests.helpers import read_csv, start_attempt

NOW = datetime(2026, 3, 5, 7, 0, tzinfo=UTC)

FILE = (
    "id;number;phone;closed_at;category;executor_id;executor_name;address\n"
    "R-1;101;+375291000001;2026-03-01T10:00:00+03:00;Лифт;EX-1;ЖЭС № 3;Минск, Фрунзенский р-н\n"
    "R-2;102;+375291000002;2026-03-01T11:00:00+03:00;Лифт;EX-1;ЖЭС № 3;\n"
    'R-3;103;+375291000003;2026-03-02T00:30:00+03:00;Отопление;EX-2;=HYPERLINK("x");\n'
    'R-4;104;+375291000004;2026-03-02T09:00:00+03:00;Отопление;EX-2;=HYPERLINK("x");\n'
)


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
                "sip": {"server": "127.0.0.1", "username": "d", "password": "${SIP_PASSWORD}",
                        "local_ip": "127.0.0.1"},
            }
        )
    )  # fmt: skip
    return path


def cli(config: Path, *args: str) -> int:
    return main(["--config", str(config), *args])


@pytest.fixture
def imported(config_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    """Four requests: EX-1 two satisfied; EX-2 one unsatisfied, one busy and not reached."""
    path = tmp_path / "export.csv"
    path.write_text(FILE, encoding="utf-8")
    assert cli(config_path, "import", "--file", str(path)) == 0
    capsys.readouterr()
    engine = make_engine(f"sqlite:///{tmp_path / 'ivr.sqlite'}")
    store = Store(engine)
    with engine.connect() as conn:
        ids = dict(conn.execute(select(Survey.portal_request_id, Survey.id)).all())
    for pid, outcome, digit in (
        ("R-1", "satisfied", "1"),
        ("R-2", "satisfied", "1"),
        ("R-3", "unsatisfied", "2"),
        ("R-4", "no_answer", None),
    ):
        aid = start_attempt(store, ids[pid], NOW)
        answered = NOW if digit else None
        disposition = "answered" if digit else "busy"
        store.finish_attempt(
            aid,
            AttemptResult(
                None,
                200,
                None,
                answered,
                NOW,
                digit or "",
                disposition,
                None,
                "r" if digit else None,
            ),
        )
        store.record_outcome(ids[pid], outcome, digit, None if digit else "busy", answered, NOW)
    engine.dispose()
    return config_path


PERIOD = ("report", "--from", "2026-03-01", "--to", "2026-03-02")


def test_terminal_table_by_executor(imported: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(imported, *PERIOD, "--by", "executor") == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "Closed 2026-03-01..2026-03-02 (Europe/Minsk), by executor"
    table = {line.split("  ")[0]: line for line in lines[3:]}
    assert "100.0% [34.2-100.0] of 2" in table["ЖЭС № 3"]  # satisfied 2 of 2
    assert "50.0% [9.5-90.5] of 2" in table['=HYPERLINK("x")']  # reached 1 of 2
    assert "0.0% [0.0-79.3] of 1" in table['=HYPERLINK("x")']  # satisfied 0 of 1
    assert "busy 1" in table['=HYPERLINK("x")']
    assert "75.0% [30.1-95.4] of 4" in table["TOTAL"]


def test_by_day_counts_each_closing_on_its_local_day(
    imported: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli(imported, *PERIOD, "--by", "day", "--csv") == 0
    filters, table = read_csv(capsys.readouterr().out.encode())
    assert ("by", "day") in filters
    header, *rows = table
    surveys = header.index("surveys")
    # R-3 closed at 00:30 Minsk time on 2 March (21:30 UTC on 1 March): the 2nd.
    assert [(r[0], r[surveys]) for r in rows] == [("2026-03-01", "2"), ("2026-03-02", "2")]


def test_csv_file_for_excel(imported: Path, tmp_path: Path) -> None:
    out = tmp_path / "report.csv"
    assert cli(imported, *PERIOD, "--by", "executor", "--csv", str(out)) == 0
    data = out.read_bytes()
    assert data.startswith(b"\xef\xbb\xbf") and b"\r\n" in data
    filters, (header, *rows) = read_csv(data)
    assert filters[:2] == [("from", "2026-03-01"), ("to", "2026-03-02")]
    assert ("time zone", "Europe/Minsk") in filters
    assert header[:3] == ["group", "name", "surveys"]
    by_group = {r[0]: dict(zip(header, r, strict=True)) for r in rows}
    assert by_group["EX-1"]["satisfaction_%"] == "100,0000"  # a decimal comma
    assert by_group["EX-1"]["satisfaction_low_%"] == "34,2000"
    # The executor's name is text, never a formula.
    assert by_group["EX-2"]["name"] == '\'=HYPERLINK("x")'
    assert by_group["EX-2"]["not_reached_reasons"] == "busy 1"


def test_xlsx_file(imported: Path, tmp_path: Path) -> None:
    from openpyxl import load_workbook

    out = tmp_path / "report.xlsx"
    assert cli(imported, *PERIOD, "--by", "category", "--executor", "EX-2", "--xlsx",
               str(out)) == 0  # fmt: skip
    book = load_workbook(out)
    header, *rows = list(book["data"].values)
    assert header[:3] == ("group", "name", "surveys")
    assert [(r[0], r[1], r[2]) for r in rows] == [("heating", "Отопление", 2)]
    row = dict(zip(header, rows[0], strict=True))
    assert (row["reach_%"], row["satisfaction_%"], row["satisfaction_high_%"]) == (50.0, 0.0, 79.3)
    filters = dict(list(book["filters"].values)[1:])
    assert filters["executor"] == "EX-2" and filters["by"] == "category"


def test_day_report_is_unchanged(imported: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(imported, "report", "--date", "2026-03-01", "--csv") == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0] == "request_id,number,phone,attempts,outcome,reason,key,delivered"
    assert [line.split(",")[0] for line in lines[1:]] == ["R-1", "R-2"]


@pytest.mark.parametrize(
    "args",
    [
        ("report", "--from", "2026-03-01"),
        ("report", "--from", "2026-03-02", "--to", "2026-03-01"),
        ("report", "--date", "2026-03-01", "--xlsx", "x.xlsx"),
        (*PERIOD, "--csv", "a.csv", "--xlsx", "b.xlsx"),
    ],
    ids=["no_to", "to_before_from", "xlsx_for_a_day", "csv_and_xlsx"],
)
def test_bad_report_arguments(
    imported: Path, args: tuple[str, ...], capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli(imported, *args) == 2
    assert "report:" in capsys.readouterr().err


def test_period_report_with_nothing_in_it(
    imported: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli(imported, "report", "--from", "2026-04-01", "--to", "2026-04-02") == 0
    out = capsys.readouterr().out.splitlines()
    assert out[-1].split() == ["TOTAL", "0", "-", "-", "0", "-"]
