"""CSV for Excel in a Russian locale and XLSX: what a spreadsheet user opens."""

from __future__ import annotations

import io
from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from ivr.core.exports import csv_chunks, write_csv, write_xlsx
from tests.helpers import read_csv

HEADER = ("id", "name", "rate", "closed", "day", "n")
ROWS = [
    ("R-1", "=cmd|' /C calc'!A0", 0.5, datetime(2026, 11, 2, 21, 30, tzinfo=UTC),
     date(2026, 11, 3), 7),
    ("R-2", "ЖЭС; № 3 \"Центр\"\nкорпус 2", None, None, None, 0),
    ("R-3", "+375 29 ...", 1.0, datetime(2026, 11, 3, 6, 0, tzinfo=UTC), date(2026, 11, 3), 1),
]  # fmt: skip
FILTERS = [("from", "2026-11-01"), ("executor", "=1+1")]
MINSK = ZoneInfo("Europe/Minsk")


def test_csv_for_excel_in_a_russian_locale() -> None:
    out = io.BytesIO()
    write_csv(out, HEADER, ROWS, FILTERS, MINSK)
    data = out.getvalue()
    assert data.startswith("\ufeff#;from;2026-11-01\r\n".encode())
    filters, (header, *rows) = read_csv(data)
    assert filters == [("from", "2026-11-01"), ("executor", "'=1+1")]
    assert header == list(HEADER)
    assert rows[0] == ["R-1", "'=cmd|' /C calc'!A0", "0,5000", "2026-11-03 00:30:00",
                       "2026-11-03", "7"]  # fmt: skip
    assert rows[1] == ["R-2", 'ЖЭС; № 3 "Центр"\\nкорпус 2', "", "", "", "0"]
    assert rows[2][1] == "'+375 29 ..."


def test_csv_is_streamed_in_chunks() -> None:
    rows = ((f"R-{i}", "x", None, None, None, i) for i in range(1200))
    chunks = list(csv_chunks(HEADER, rows, rows_per_chunk=500))
    assert len(chunks) == 3
    _, (header, *back) = read_csv("".join(chunks).encode())
    assert len(back) == 1200 and back[-1][0] == "R-1199"


def test_xlsx_keeps_numbers_and_dates_and_never_a_formula(tmp_path: Path) -> None:
    from openpyxl import load_workbook

    path = tmp_path / "t.xlsx"
    write_xlsx(path, HEADER, ROWS, FILTERS, MINSK)
    book = load_workbook(path)
    header, *rows = list(book["data"].values)
    assert header == HEADER
    assert rows[0] == ("R-1", "'=cmd|' /C calc'!A0", 0.5, datetime(2026, 11, 3, 0, 30),
                       datetime(2026, 11, 3), 7)  # fmt: skip
    assert rows[1][2:] == (None, None, None, 0)
    assert all(cell.data_type != "f" for row in book["data"].iter_rows() for cell in row)
    assert list(book["filters"].values) == [
        ("filter", "value"),
        ("from", "2026-11-01"),
        ("executor", "'=1+1"),
    ]


@pytest.mark.parametrize("rows", [[], ROWS[:1]], ids=["no_rows", "one_row"])
def test_small_tables(rows: list[tuple[object, ...]], tmp_path: Path) -> None:
    out = io.BytesIO()
    write_csv(out, HEADER, rows)
    filters, table = read_csv(out.getvalue())
    assert filters == [] and len(table) == 1 + len(rows)
