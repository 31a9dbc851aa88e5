"""Contract-shaped closed requests for tests and the demo.

Deterministic: the same arguments give the same items. One item per phone,
closed at evenly spaced moments inside the given local day, with the local
offset written out as the portal does.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

CATEGORIES = ("Отопление", "Лифт", "Уборка двора", "Водоснабжение", "Освещение подъезда")
STREETS = ("ул. Немиги", "пр. Независимости", "ул. Сурганова", "ул. Кальварийская")
EXECUTORS = (
    {"id": "EX-01", "name": "ЖЭС № 3 Центрального района"},
    {"id": "EX-02", "name": "Лифтремонт"},
)


def make_items(
    day: date, tz: str, phones: list[str], start_number: int = 1_000_001
) -> list[dict[str, Any]]:
    """One closed request per phone, spread over ``day`` in ``tz``, oldest first.

    Ids are "REQ-<number>", numbers are digits counting up from ``start_number``,
    every fourth citizen speaks Belarusian, the rest Russian. Phones are used as
    given (they may be malformed on purpose)."""
    zone = ZoneInfo(tz)
    midnight = datetime.combine(day, time(0), tzinfo=zone)
    step = timedelta(days=1) / max(1, len(phones))
    items: list[dict[str, Any]] = []
    for index, phone in enumerate(phones):
        number = str(start_number + index)
        closed_at = (midnight + step * index + step / 2).replace(microsecond=0)
        items.append(
            {
                "id": f"REQ-{number}",
                "number": number,
                "phone": phone,
                "closed_at": closed_at.isoformat(),
                "language": "be" if index % 4 == 3 else "ru",
                "category": CATEGORIES[index % len(CATEGORIES)],
                "address": f"г. Минск, {STREETS[index % len(STREETS)]}, д. {index + 1}, "
                f"кв. {(index * 7) % 120 + 1}",
                "executor": dict(EXECUTORS[index % len(EXECUTORS)]),
            }
        )
    return items
