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
import json
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from ivr.importer import ImportSummary, store_items
from ivr.windows import local_date
from storage.store import Store

_TRUE = frozenset({"true", "1", "yes", "y", "да", "так", "t"})
_FALSE = frozenset({"false", "0", "no", "n", "нет", "не", "f"})
SHOWN_REJECTED = 50


class UnreadableFile(Exception):
    """The file is missing, not text, or neither a JSON list nor a CSV with a header."""


def read_items(path: Path) -> list[object]:
    """The raw items of a JSON or CSV file (unchecked: the importer validates each)."""
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except OSError as exc:
        raise UnreadableFile(f"{path}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise UnreadableFile(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    stripped = text.lstrip()
    if path.suffix.lower() == ".json" or stripped.startswith(("[", "{")):
        return _json_items(path, text)
    return _csv_items(path, text)


def _json_items(path: Path, text: str) -> list[object]:
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise UnreadableFile(f"{path}: not JSON: {exc}") from exc
    if isinstance(data, dict) and isinstance(data.get("items"), list):
        data = data["items"]
    if not isinstance(data, list):
        raise UnreadableFile(f"{path}: expected a JSON list of closed requests")
    items: list[object] = data
    return items


def _csv_items(path: Path, text: str) -> list[object]:
    first_line = text.split("\n", 1)[0]
    try:
        dialect: type[csv.Dialect] | csv.Dialect = csv.Sniffer().sniff(first_line, ",;\t")
    except csv.Error:
        dialect = csv.excel
    reader = csv.DictReader(io.StringIO(text, newline=""), dialect=dialect)
    try:
        header = reader.fieldnames
        rows = list(reader)
    except csv.Error as exc:
        raise UnreadableFile(f"{path}: not CSV: {exc}") from exc
    if not header or "id" not in [h.strip() for h in header]:
        raise UnreadableFile(f"{path}: neither a JSON list nor a CSV with an 'id' column")
    return [_csv_item(row) for row in rows]


def _csv_item(row: dict[str | Any, str | Any]) -> dict[str, Any]:
    item: dict[str, Any] = {}
    executor: dict[str, Any] = {}
    for raw_key, raw_value in row.items():
        if raw_key is None:  # more cells than columns
            continue
        key = raw_key.strip()
        value = raw_value.strip() if isinstance(raw_value, str) else ""
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
            parsed = json.loads(value)
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
        f"{path}: {summary.seen} item(s): {summary.new} new, {summary.known} already known, "
        f"{summary.rejected} rejected, {summary.not_called} not to be called"
    ]
    for reason, n in sorted(summary.not_called_reasons.items()):
        lines.append(f"  not called, {reason}: {n}")
    if summary.rejected_reasons:
        lines.append("  Rejected:")
        for pid, reason in summary.rejected_reasons[:SHOWN_REJECTED]:
            lines.append(f"    {pid or '(no id)'}: {reason}")
        hidden = len(summary.rejected_reasons) - SHOWN_REJECTED
        if hidden > 0:
            lines.append(f"    ... and {hidden} more")
    return "\n".join(lines)
