"""Tables as files people open in a spreadsheet: CSV for Excel in a Russian locale, and XLSX.

CSV: UTF-8 with a byte order mark (Excel otherwise reads it as cp1251), ``;`` between cells
(the list separator of a Russian locale, where ``,`` is the decimal comma), numbers with a
decimal comma, and every text cell formula-safe (:func:`ivr.core.untrusted.csv_cell`). The filters
come first, one ``#;name;value`` row each, then an empty row, then the header and the rows.

XLSX (openpyxl, write-only: rows go to disk as they come): sheet "data" holds the header
and the rows, with numbers as numbers; sheet "filters" holds the filters.

Both take rows as an iterator, so an export of any size is streamed, never held in memory.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator, Sequence
from datetime import date, datetime
from pathlib import Path
from typing import IO, Any
from zoneinfo import ZoneInfo

from ivr.core.untrusted import _FORMULA_START, csv_cell, printable

BOM = "\ufeff"
SEPARATOR = ";"
FILTER_MARK = "#"


def _text(value: Any, tz: ZoneInfo | None) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float):
        return f"{value:.4f}".replace(".", ",")
    if isinstance(value, datetime):
        moment = value.astimezone(tz) if tz is not None else value
        return moment.isoformat(sep=" ", timespec="seconds")[:19]  # as %Y-%m-%d %H:%M:%S, faster
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, dict):
        return ", ".join(f"{k}: {v}" for k, v in value.items())
    return str(value)


def _cell(value: Any, tz: ZoneInfo | None) -> str:
    """One CSV cell (:func:`_text`, formula-safe); the common cases first, as an export of
    100 k rows spends its time here."""
    kind = type(value)
    if kind is int:
        return str(value)
    if kind is str and value.isprintable() and not value.startswith(_FORMULA_START):
        return str(value)
    return csv_cell(_text(value, tz))


def csv_chunks(
    header: Sequence[str],
    rows: Iterable[Sequence[Any]],
    filters: Sequence[tuple[str, str]] = (),
    tz: ZoneInfo | None = None,
    rows_per_chunk: int = 500,
) -> Iterator[str]:
    """The CSV file as text chunks (for a streamed HTTP response or a file)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=SEPARATOR, lineterminator="\r\n")
    buffer.write(BOM)
    for name, value in filters:
        writer.writerow([FILTER_MARK, csv_cell(name), csv_cell(value)])
    if filters:
        writer.writerow([])
    writer.writerow([csv_cell(h) for h in header])
    for n, row in enumerate(rows, 1):
        writer.writerow([_cell(v, tz) for v in row])
        if n % rows_per_chunk == 0:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


def write_csv(
    out: IO[bytes],
    header: Sequence[str],
    rows: Iterable[Sequence[Any]],
    filters: Sequence[tuple[str, str]] = (),
    tz: ZoneInfo | None = None,
) -> None:
    for chunk in csv_chunks(header, rows, filters, tz):
        out.write(chunk.encode("utf-8"))


def _xlsx_value(value: Any, tz: ZoneInfo | None) -> Any:
    if value is None or isinstance(value, int | float) and not isinstance(value, bool):
        return value
    if isinstance(value, datetime):
        moment = value.astimezone(tz) if tz is not None else value
        return moment.replace(tzinfo=None)  # Excel has no time zones: local time
    if isinstance(value, date):
        return value
    text = _text(value, tz)
    # openpyxl writes "=..." as a formula: keep every text a text.
    return csv_cell(text) if text else text


def write_xlsx(
    path: Path | IO[bytes],
    header: Sequence[str],
    rows: Iterable[Sequence[Any]],
    filters: Sequence[tuple[str, str]] = (),
    tz: ZoneInfo | None = None,
) -> None:
    from openpyxl import Workbook

    book = Workbook(write_only=True)
    data = book.create_sheet("data")
    data.append([printable(h) for h in header])
    for row in rows:
        data.append([_xlsx_value(v, tz) for v in row])
    sheet = book.create_sheet("filters")
    sheet.append(["filter", "value"])
    for name, value in filters:
        sheet.append([csv_cell(name), csv_cell(value)])
    book.save(path)
