"""Numbers that must not be called, against real peers (Kamailio, SIPp citizens, the portal
emulator, ``ivr-rating`` as separate processes): a number put on the do-not-call list after
the import gets no INVITE; key 9 ends every other open survey of the number; a runner killed
right after a 200 OK does not call that citizen again the same day."""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from lab.night_lab import Citizen, LabSettings, NightLab, lab_day
from lab.readback import attempts_of
from storage.db import make_engine
from storage.models import CallAttempt
from storage.store import Store
from tests.helpers import wait_until

pytestmark = pytest.mark.peers

LISTED = Citizen("+375291000021", "press:1")  # put on the list after the import
NINE = Citizen("+375291000022", "press:9")  # presses 9 at the first question
CONTROL = Citizen("+375291000023", "press:1")  # proves the night did call
SILENT = Citizen("+375291000031", "silent")  # answers, never presses a key


@pytest.fixture(scope="module")
def prompt_cache(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One converted prompt cache for both labs of this module (converting takes a while)."""
    return {"prompts": {"cache_dir": str(tmp_path_factory.mktemp("prompt-cache"))}}


def invites_to(lab: NightLab, citizen: Citizen) -> int:
    return sum(s.messages().count(f"INVITE sip:{citizen.user}@") for s in lab.sipps)


def item(rid: str, number: str, phone: str, closed: datetime) -> dict[str, Any]:
    return {"id": rid, "number": number, "phone": phone, "closed_at": closed.isoformat(),
            "language": "ru"}  # fmt: skip


def test_listed_and_opted_out_numbers_get_no_invite(
    tmp_path: Path, prompt_cache: dict[str, Any]
) -> None:
    day = lab_day()
    tz = ZoneInfo("Europe/Minsk")
    midnight = datetime.combine(day, datetime.min.time(), tz)
    extra = [  # asked in the same call; open from the day before
        item("REQ-NINE-SECOND", "900101", NINE.phone, midnight + timedelta(hours=23)),
        item("REQ-NINE-EARLIER", "900102", NINE.phone, midnight - timedelta(hours=12)),
    ]
    with NightLab(tmp_path, day, (LISTED, NINE, CONTROL), with_bad_items=False,
                  extra_items=extra, settings=LabSettings(ring_timeout_s=6),
                  overrides=prompt_cache) as lab:  # fmt: skip
        items_file = tmp_path / "items.json"
        items_file.write_text(json.dumps(lab.items, ensure_ascii=False))
        imported = lab.cli("import", "--file", str(items_file))
        assert imported.returncode == 0, imported.stderr[-2000:]
        added = lab.cli("dnc", "add", LISTED.phone)
        assert added.returncode == 0, added.stderr[-2000:]
        assert "1 open survey(s) closed as not_called" in added.stdout
        night = lab.cli("night", "--date", day.isoformat())
        assert night.returncode == 0, night.stderr[-3000:]
        assert invites_to(lab, CONTROL) >= 1  # the night did call
        assert invites_to(lab, LISTED) == 0
        assert invites_to(lab, NINE) >= 1  # the one call in which 9 was pressed

        ratings = lab.ratings_by_request()
        by_phone = {i["id"]: i["phone"] for i in lab.items}
        listed_id = next(r for r, p in by_phone.items() if p == LISTED.phone)
        nine_first = next(r for r, p in by_phone.items() if p == NINE.phone
                          and r.startswith("REQ-1"))  # fmt: skip
        wanted = (listed_id, nine_first, "REQ-NINE-SECOND", "REQ-NINE-EARLIER")
        got = {r: (ratings[r]["outcome"], ratings[r]["reason"], ratings[r]["attempts"])
               for r in wanted}  # fmt: skip
        assert got == {
            listed_id: ("not_called", "do_not_call", 0),
            nine_first: ("opted_out", None, 1),
            "REQ-NINE-SECOND": ("not_called", "do_not_call", 1),
            "REQ-NINE-EARLIER": ("not_called", "do_not_call", 0),
        }
        for out in (added.stdout, night.stdout, night.stderr):
            assert "291000021" not in out and "291000022" not in out  # numbers masked


def test_a_runner_killed_after_the_answer_does_not_call_again_that_day(
    tmp_path: Path, prompt_cache: dict[str, Any]
) -> None:
    settings = LabSettings(ring_timeout_s=6, retry_delay="3s", input_timeout_s=8, max_repeats=2)
    with NightLab(tmp_path, lab_day(), (SILENT,), with_bad_items=False, settings=settings,
                  overrides=prompt_cache) as lab:  # fmt: skip
        store = Store(make_engine(f"sqlite:///{lab.database}"))

        def attempts() -> list[CallAttempt]:
            try:
                return attempts_of(store, lab.items[0]["id"])
            except Exception:  # the schema is not there yet
                return []

        first = lab.popen("night", "--date", lab.day.isoformat())
        try:
            wait_until(lambda: any(a.answered_at is not None and a.disposition == "dialing"
                                   for a in attempts()),
                       120, "the answer in the database")  # fmt: skip
        finally:
            first.kill()  # SIGKILL, in the middle of the answered call
            first.wait(timeout=30)
        assert invites_to(lab, SILENT) == 1

        second = lab.popen("night", "--date", lab.day.isoformat())
        try:
            wait_until(lambda: [a.disposition for a in attempts()] == ["interrupted"], 60,
                       "the restarted night to close the killed attempt")  # fmt: skip
            # The scenario: well past the retry delay (3 s) the restarted night still has not
            # called again, checked throughout.
            settle = time.monotonic() + 8
            while time.monotonic() < settle:
                assert invites_to(lab, SILENT) == 1 and len(attempts()) == 1
                time.sleep(0.5)
        finally:
            second.terminate()
            second.wait(timeout=60)
        (attempt,) = attempts()
        assert attempt.answered_at is not None and attempt.disposition == "interrupted"
        (row,) = store.report_rows(lab.day)
        assert row.attempts == 1 and row.outcome is None  # waits for tomorrow's window
        store.engine.dispose()
