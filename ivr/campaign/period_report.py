"""A period's figures as a table: for the terminal, CSV, XLSX (and the console's pages).

Rates are percentages with one decimal; each comes with its count (the n it is out of) and
its 95 % Wilson interval, so that a rate of 100 % out of 1 is seen for what it is.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from storage.analytics import Figures

COLUMNS = (
    "group",
    "name",
    "surveys",
    "called",
    "answered",
    "reach_%",
    "reach_low_%",
    "reach_high_%",
    "rated",
    "satisfied",
    "unsatisfied",
    "unsatisfied_again",
    "satisfaction_%",
    "satisfaction_low_%",
    "satisfaction_high_%",
    "not_reached",
    "not_reached_reasons",
    "not_called",
    "not_called_reasons",
    "pending",
)


def _pct(value: float | None) -> float | None:
    return None if value is None else round(100 * value, 1)


def figure_row(f: Figures) -> list[Any]:
    """One group as the values of :data:`COLUMNS` (None: no figure, e.g. nothing rated)."""
    sat, reach = f.satisfaction_ci, f.reach_ci
    return [
        f.key if f.key is not None else "",
        f.label,
        f.surveys,
        f.called,
        f.answered,
        _pct(f.reach),
        _pct(reach[0]) if reach else None,
        _pct(reach[1]) if reach else None,
        f.rated,
        f.satisfied,
        f.unsatisfied,
        f.unsatisfied_again,
        _pct(f.satisfaction),
        _pct(sat[0]) if sat else None,
        _pct(sat[1]) if sat else None,
        f.not_reached,
        _reasons(f.not_reached_reasons),
        f.not_called,
        _reasons(f.not_called_reasons),
        f.pending,
    ]


def _reasons(counts: dict[str, int]) -> str:
    return ", ".join(f"{reason} {n}" for reason, n in counts.items())


def _rate(value: float | None, low: float | None, high: float | None, n: int) -> str:
    if value is None or low is None or high is None:
        return "-"
    return f"{value:.1f}% [{low:.1f}-{high:.1f}] of {n}"


def text_table(groups: Sequence[Figures], total: Figures) -> list[str]:
    """Lines for a terminal: group, surveys, reach, satisfaction (each with interval and n),
    unsatisfied again, why not reached."""
    header = ["group", "surveys", "reach", "satisfaction", "again", "not reached"]
    rows = []
    for f in [*groups, total]:
        r = figure_row(f)
        rows.append(
            [
                f.label if f is not total else "TOTAL",
                str(f.surveys),
                _rate(r[5], r[6], r[7], f.called),
                _rate(r[12], r[13], r[14], f.rated),
                str(f.unsatisfied_again),
                _reasons(f.not_reached_reasons) or "-",
            ]
        )
    widths = [max([len(h), *(len(row[i]) for row in rows)]) for i, h in enumerate(header)]
    return [
        "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip()
        for row in [header, *rows]
    ]
