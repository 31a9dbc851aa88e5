"""``ivr-rating import --file F``: closed requests from a file, for portals that export files.

JSON: a list of items in the contract's ``ClosedRequest`` format (or a page object with
``items``). CSV: a header row with the same column names, comma, semicolon or tab separated,
UTF-8 with or without a BOM. In CSV an empty cell is an absent field; ``consent_to_calls``
reads true/false, 1/0, yes/no, да/нет, так/не (empty: absent, i.e. consent); the executor is
``executor_id``/``executor_name`` (or ``executor.id``/``executor.name``, or one ``executor``
cell with a JSON object or just a name).

Every item goes through the same validation as the portal import and is stored for its own
local day; bad rows are kept as rejected with the reason. Only a file that cannot be read at all
raises :class:`UnreadableFile`.
"""

from __future__ import annotations

import csv
import io
import re
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from ivr.campaign.importer import ImportSummary, store_items, summary_detail_lines
from ivr.core.intake import Rejected, shown_id
from ivr.core.untrusted import json_loads, printable
from ivr.core.windows import local_date
from storage.store import Store

_TRUE = frozenset({"true", "1", "yes", "y", "да", "так", "t"})
_FALSE = frozenset({"false", "0", "no", "n", "нет", "не", "f"})


class UnreadableFile(Exception):
    """The file is missing, not text, or neither a JSON list nor a CSV with a header."""


def read_items(path: Path) -> list[object]:
    """The raw items of a JSON or CSV file (unchecked: the importer validates each).

    A CSV row the reader cannot make into an item (cell count unlike the header's, a field
    over the size limit, bytes that are not UTF-8) comes back as a :class:`Rejected`."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UnreadableFile(f"{path}: {exc.strerror or exc}") from exc
    return items_of(data, path)


def items_of(data: bytes, path: Path) -> list[object]:
    """:func:`read_items` on a file's bytes (``path`` names it and tells JSON by suffix)."""
    json_like = path.suffix.lower() == ".json" or data.lstrip().startswith((b"[", b"{"))
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        if json_like:
            raise UnreadableFile(
                f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})"
            ) from exc
        # CSV: the rows holding such bytes are rejected one by one.
        text = data.decode("utf-8-sig", "surrogateescape")
    if json_like:
        return _json_items(path, text)
    return _csv_items(path, text)


def _json_items(path: Path, text: str) -> list[object]:
    try:
        data = json_loads(text)
    except ValueError as exc:  # TooDeep too
        raise UnreadableFile(f"{path}: not JSON: {exc}") from exc
    if isinstance(data, dict) and isinstance(data.get("items"), list):
        data = data["items"]
    if not isinstance(data, list):
        raise UnreadableFile(f"{path}: expected a JSON list of closed requests")
    items: list[object] = data
    return items


_UNDECODED = re.compile(r"[\udc80-\udcff]")  # bytes kept by surrogateescape
_SEPARATORS = (",", ";", "\t")
_QUOTED = re.compile(r'"(?:[^"]|"")*"?')


def _delimiter(header_line: str) -> str:
    """The separator of the header line: the most frequent of , ; and tab outside quotes.

    Only the delimiter is guessed: quoting stays standard (``"Дом ""Б"", кв. 5"`` is one
    cell), which csv.Sniffer would also try to guess, and sometimes get wrong."""
    bare = _QUOTED.sub("", header_line)
    counts = [(bare.count(sep), -index, sep) for index, sep in enumerate(_SEPARATORS)]
    best = max(counts)
    return best[2] if best[0] > 0 else ","


def _csv_items(path: Path, text: str) -> list[object]:
    first_line = text.split("\n", 1)[0]
    if _UNDECODED.search(first_line):
        raise UnreadableFile(f"{path}: not UTF-8 text (in the header line)")
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=_delimiter(first_line))
    try:
        header = [name.strip() for name in next(reader)]
    except (StopIteration, csv.Error):
        header = []
    if "id" not in header:
        raise UnreadableFile(f"{path}: neither a JSON list nor a CSV with an 'id' column")
    id_column = header.index("id")
    items: list[object] = []
    while True:
        line = reader.line_num + 1
        try:
            cells = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:  # e.g. a field over the size limit: this row only
            items.append(Rejected(None, f"csv: row at line {line}: {exc}", {"line": line}))
            continue
        if not any(cell.strip() for cell in cells):
            continue  # a blank line
        portal_id = shown_id(cells[id_column].strip()) if id_column < len(cells) else None
        kept = {"line": line, "cells": [printable(cell)[:1000] for cell in cells[:100]]}
        if any(_UNDECODED.search(cell) for cell in cells):
            items.append(Rejected(portal_id, f"csv: row at line {line} is not UTF-8 text", kept))
        elif len(cells) != len(header):
            reason = f"csv: row at line {line} has {len(cells)} cells, the header {len(header)}"
            items.append(Rejected(portal_id, reason, kept))
        else:
            items.append(_csv_item(dict(zip(header, cells, strict=True))))
    return items


def _csv_item(row: dict[str, str]) -> dict[str, Any]:
    item: dict[str, Any] = {}
    executor: dict[str, Any] = {}
    for key, raw_value in row.items():
        value = raw_value.strip()
        if not value:
            continue  # an empty cell is an absent field
        if key in ("executor_id", "executor.id"):
            executor["id"] = value
        elif key in ("executor_name", "executor.name"):
            executor["name"] = value
        elif key == "executor":
            executor.update(_executor_cell(value))
        elif key == "consent_to_calls":
            item[key] = _boolean(value)
        else:
            item[key] = value
    if executor:
        item["executor"] = executor
    return item


def _executor_cell(value: str) -> dict[str, Any]:
    if value.startswith("{"):
        try:
            parsed = json_loads(value)
        except ValueError:
            return {"name": value}
        if isinstance(parsed, dict):
            return parsed
    return {"name": value}


def _boolean(value: str) -> bool | str:
    """A CSV truth value; anything else stays a string for validation to reject by name."""
    lowered = value.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    return value


def import_file(path: Path, store: Store, tz: ZoneInfo, now: datetime) -> ImportSummary:
    """Validate and store every item of the file; raises only :class:`UnreadableFile`."""
    items = read_items(path)
    summary = ImportSummary(local_date(now, tz))
    store_items(items, summary.day, store, tz, now, summary)
    return summary


def format_file_summary(path: Path, summary: ImportSummary) -> str:
    lines = [
        f"{printable(str(path))}: {summary.seen} item(s): {summary.new} new, "
        f"{summary.known} already known, {summary.rejected} rejected, "
        f"{summary.not_called} not to be called"
    ]
    for reason, n in sorted(summary.not_called_reasons.items()):
        lines.append(f"  not called, {reason}: {n}")
    lines.extend(summary_detail_lines(summary, None))
    return "\n".join(lines)
