"""Live campaign settings: what operators edit in the console, over the configuration file.

Pure: a *live document* is a YAML-shaped mapping of the keys it overrides (windows as
``"09:00-13:00"``, durations as ``"20m"``, dates as ``"2026-12-31"``), stored in the database
(``live_settings``) and merged over the file's values by every node (the dialer re-reads it
within seconds). It is validated by the very rules of the configuration file (``Config``), so
an error names the same key ``config check`` would.

The console's form is a flat mapping of field names (``win_mon``, ``retry_busy``...) to text;
``document_from_form`` turns it into a live document and ``validate`` into errors per field.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from pydantic import ValidationError

from ivr.core.config import WEEKDAYS, Config, TimeRange, _key_of
from ivr.core.errors import ConfigError
from ivr.core.windows import CallCalendar

# Form field -> the configuration key it edits.
FIELDS: dict[str, str] = {
    **{f"win_{d}": f"call_windows.{d}" for d in WEEKDAYS},
    "blackout_dates": "calendar.blackout_dates",
    "holidays": "calendar.holidays",
    "holidays_as": "calendar.holidays_as",
    "working_weekends_as": "calendar.working_weekends_as",
    "channels": "dialing.channels",
    "calls_per_second": "dialing.calls_per_second",
    "max_attempts": "dialing.max_attempts",
    "survey_deadline": "dialing.survey_deadline",
    "retry_busy": "dialing.retry.busy",
    "retry_no_answer": "dialing.retry.no_answer",
    "retry_failed": "dialing.retry.failed",
    "no_input_retries": "dialing.retry.no_input_retries",
}
_LIST_SPLIT = re.compile(r"[,;\s]+")


def format_range(r: TimeRange) -> str:
    end = "24:00" if r.end is None else r.end.strftime("%H:%M")
    return f"{r.start.strftime('%H:%M')}-{end}"


def format_duration(d: timedelta) -> str:
    total = int(d.total_seconds())
    out = ""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if total >= size:
            out += f"{total // size}{unit}"
            total %= size
    return out or "0s"


def _file_shape(config: Config) -> dict[str, Any]:
    """The configuration as the file gave it (keys it left out stay out, so shorthands such as
    ``dialing.retry_delay`` keep their meaning), ready to be validated again."""
    data: dict[str, Any] = config.model_dump(by_alias=True, exclude_unset=True)
    if "call_windows" in data:
        data["call_windows"] = {
            d: [format_range(r) for r in rs] for d, rs in config.call_windows.items()
        }
    return data


def _merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        nested = isinstance(value, Mapping) and isinstance(out.get(key), Mapping)
        if nested and key != "call_windows":  # a day left out of the windows has none
            out[key] = _merge(dict(out[key]), value)
        else:
            out[key] = value
    return out


def _errors(doc: Mapping[str, Any], config: Config) -> tuple[Config | None, dict[str, str]]:
    try:
        return Config.model_validate(_merge(_file_shape(config), doc)), {}
    except ValidationError as exc:
        errors: dict[str, str] = {}
        for err in exc.errors():
            key = _key_of(tuple(err["loc"]))
            msg = err["msg"].removeprefix("Value error, ")
            errors.setdefault(key or "call_windows", msg)
        return None, errors


def apply(config: Config, doc: Mapping[str, Any] | None) -> Config:
    """The file's configuration with the live document over it (the same object when there
    is none). Raises ``ConfigError`` naming the key when the result is invalid."""
    if not doc:
        return config
    merged, errors = _errors(doc, config)
    if merged is None:
        key, msg = next(iter(errors.items()))
        raise ConfigError(key, msg)
    return merged


def field_of(key: str) -> str:
    """The form field showing the error of configuration key ``key``."""
    for name, prefix in FIELDS.items():
        if key == prefix or key.startswith(prefix + ".") or key.startswith(prefix + "["):
            return name
    return "win_mon" if key.startswith("call_windows") else "_form"


def _items(text: str) -> list[str]:
    return [part for part in _LIST_SPLIT.split(text.strip()) if part]


def document_from_form(form: Mapping[str, str]) -> dict[str, Any]:
    """The live document the form describes (types are checked by ``validate``)."""

    def num(name: str) -> Any:
        text = form.get(name, "").strip()
        return text if not re.fullmatch(r"-?\d+(\.\d+)?", text) else float(text)

    holidays = form.get("holidays", "").strip()
    return {
        "call_windows": {d: _items(form.get(f"win_{d}", "")) for d in WEEKDAYS},
        "calendar": {
            "blackout_dates": _items(form.get("blackout_dates", "")),
            "holidays": holidays or None,
            "holidays_as": form.get("holidays_as", "").strip(),
            "working_weekends_as": form.get("working_weekends_as", "").strip(),
        },
        "dialing": {
            "channels": num("channels"),
            "calls_per_second": num("calls_per_second"),
            "max_attempts": num("max_attempts"),
            "survey_deadline": form.get("survey_deadline", "").strip(),
            "retry": {
                "busy": _items(form.get("retry_busy", "")),
                "no_answer": _items(form.get("retry_no_answer", "")),
                "failed": _items(form.get("retry_failed", "")),
                "no_input_retries": num("no_input_retries"),
            },
        },
    }


def _integral(doc: dict[str, Any]) -> dict[str, Any]:
    """Whole numbers typed in the form as integers (pydantic refuses 4.5 channels itself)."""
    dialing = doc["dialing"]
    for key in ("channels", "max_attempts"):
        if isinstance(dialing[key], float) and dialing[key].is_integer():
            dialing[key] = int(dialing[key])
    retry = dialing["retry"]
    if isinstance(retry["no_input_retries"], float) and retry["no_input_retries"].is_integer():
        retry["no_input_retries"] = int(retry["no_input_retries"])
    return doc


@dataclass(frozen=True)
class Checked:
    """A form checked against the file's configuration."""

    document: dict[str, Any]
    config: Config | None  # the effective configuration, None when there are errors
    errors: dict[str, str]  # form field -> message (the configuration key's message)


def validate(form: Mapping[str, str], file_config: Config) -> Checked:
    doc = _integral(document_from_form(form))
    config, errors = _errors(doc, file_config)
    by_field: dict[str, str] = {}
    for key, msg in errors.items():
        by_field.setdefault(field_of(key), f"{key}: {msg}")
    return Checked(doc, config, by_field)


def form_values(config: Config) -> dict[str, str]:
    """The form filled with ``config``'s effective values."""
    d, cal = config.dialing, config.calendar
    return {
        **{
            f"win_{day}": ", ".join(format_range(r) for r in config.call_windows[day])
            for day in WEEKDAYS
        },  # fmt: skip
        "blackout_dates": ", ".join(x.isoformat() for x in cal.blackout_dates),
        "holidays": cal.holidays or "",
        "holidays_as": cal.holidays_as,
        "working_weekends_as": cal.working_weekends_as,
        "channels": str(d.channels),
        "calls_per_second": f"{d.calls_per_second:g}",
        "max_attempts": str(d.max_attempts),
        "survey_deadline": format_duration(d.survey_deadline),
        "retry_busy": ", ".join(format_duration(x) for x in d.ladder("busy")),
        "retry_no_answer": ", ".join(format_duration(x) for x in d.ladder("no_answer")),
        "retry_failed": ", ".join(format_duration(x) for x in d.ladder("failed")),
        "no_input_retries": str(d.retry.no_input_retries),
    }


@dataclass(frozen=True)
class DayPreview:
    day: date
    kind: str  # normal, holiday, working_weekend, blackout
    windows: tuple[str, ...]


def preview(config: Config, today: date, days: int = 7) -> list[DayPreview]:
    """What the next ``days`` days look like: each date's windows, holidays applied."""
    cal = CallCalendar.from_config(config)
    out = []
    for offset in range(days):
        day = today + timedelta(days=offset)
        out.append(DayPreview(day, cal.kind(day), tuple(format_range(r) for r in cal.ranges(day))))
    return out
