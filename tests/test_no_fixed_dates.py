"""The guard against a fixed date in a real-clock test (issue 8).

The product reads the wall clock (survey deadlines, "one answered call a day"), so a test that
runs it as a process, or that uses the lab's night, must derive its dates from the clock
(``lab_day()``). A literal date there passes in the week it is written and fails afterwards.
Tests of the pure core inject ``now`` and may use any date they like."""

from __future__ import annotations

import re
from datetime import date, timedelta
from pathlib import Path

import pytest

from lab.night_lab import NightLab, check_lab_day, lab_day

TESTS = Path(__file__).parent
# What makes a test module real-clock: it runs the product or the lab on the wall clock.
# (A test that only sleeps on SYSTEM_CLOCK but passes ``now`` explicitly is not one of them.)
REAL_CLOCK = re.compile(r"\bNightLab\b|\blab\.(cli|popen)\(|\"ivr\.entry\.cli\"|\blab_day\(")
DATE_LITERAL = re.compile(r"\bdate(?:time)?\(\s*(?:19|20)\d\d\s*,|\b(?:19|20)\d\d-[01]\d-[0-3]\d\b")
ALLOWED = "# fixed date:"  # a literal that is not a day to run for (e.g. a spoken date)


def real_clock_modules() -> list[Path]:
    return [
        p
        for p in sorted(TESTS.glob("test_*.py"))
        if p.name != Path(__file__).name and REAL_CLOCK.search(p.read_text())
    ]


def test_real_clock_modules_are_found() -> None:
    names = {p.name for p in real_clock_modules()}
    assert {"test_night_e2e.py", "test_crash_e2e.py", "test_service_e2e.py"} <= names


@pytest.mark.parametrize("module", real_clock_modules(), ids=lambda p: p.name)
def test_no_literal_date_in_a_real_clock_test(module: Path) -> None:
    offending = [
        f"{module.name}:{n}: {line.strip()}"
        for n, line in enumerate(module.read_text().splitlines(), 1)
        if DATE_LITERAL.search(line) and ALLOWED not in line
    ]
    assert not offending, "derive the day from the clock (lab_day()):\n" + "\n".join(offending)


def test_the_pattern_catches_the_forms_that_broke_ci() -> None:
    for line in ('DAY = date(2026, 11, 26)', 'lab.cli("night", "--date", "2026-11-26")',
                 "now = datetime(2026, 11, 27, 7, 0, tzinfo=UTC)"):  # fmt: skip
        assert DATE_LITERAL.search(line), line
    assert not DATE_LITERAL.search("day = lab_day()")


def test_a_lab_night_for_a_day_the_product_would_not_call_is_refused(tmp_path: Path) -> None:
    yesterday = lab_day()
    check_lab_day(yesterday)
    check_lab_day(yesterday - timedelta(days=1))
    for stale in (
        yesterday - timedelta(days=3),
        date(2026, 11, 26) - timedelta(days=400),
    ):  # fixed date: stale on purpose
        with pytest.raises(ValueError, match="real clock"):
            NightLab(tmp_path, stale).__enter__()
    with pytest.raises(ValueError, match="real clock"):
        check_lab_day(yesterday + timedelta(days=2))
    assert not list(tmp_path.iterdir())  # refused before anything was started
