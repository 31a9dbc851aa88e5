"""SIGKILL the runner at random moments during a night of 50 calls, 20 times, restarting it
each time, against real peers. Afterwards: nobody was called twice within a retry interval,
no call started outside a window, and every outcome reached the portal exactly once."""

from __future__ import annotations

import os
import random
import signal
import subprocess
from collections import defaultdict
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from ivr.core.config import load_config
from ivr.core.windows import CallCalendar, can_start_call
from lab.night_lab import Citizen, LabSettings, NightLab, lab_day
from lab.readback import attempts_of
from storage.db import make_engine
from storage.models import Survey, SurveyStatus
from storage.store import Store
from tests.helpers import media_processes, wait_until

pytestmark = pytest.mark.peers

MIX = ["press:1"] * 6 + ["press:2"] * 2 + ["busy", "no_answer"]
ALLOWED = {
    # What each citizen may end as. A call cut by SIGKILL counts as an attempt
    # ("interrupted"), so a citizen killed on every try ends as no_answer/interrupted.
    # A citizen whose answered call was cut is not called again that day: see below.
    "press:1": {("satisfied", None), ("no_answer", "interrupted"), ("no_answer", "survey_expired")},
    "press:2": {
        ("unsatisfied", None),
        ("no_answer", "interrupted"),
        ("no_answer", "survey_expired"),
    },
    "busy": {("no_answer", "busy"), ("no_answer", "interrupted")},
    "no_answer": {("no_answer", "no_answer"), ("no_answer", "interrupted")},
}
RETRY_S = 5.0


def test_sigkill_twenty_times_loses_nothing_and_calls_nobody_twice(tmp_path: Path) -> None:
    seed = int(os.environ.get("IVR_CRASH_SEED", "20261127"))
    rng = random.Random(seed)
    citizens = [Citizen(f"+375293{i:06d}", MIX[i % len(MIX)]) for i in range(50)]
    # Two channels: the night needs well over a minute of dialing, so all twenty kills land
    # while it is in progress, however fast the machine is.
    settings = LabSettings(
        channels=2, ring_timeout_s=4, retry_delay=f"{RETRY_S:.0f}s", max_attempts=3
    )
    overrides = {"node": {"name": "crash-node"}, "dialing": {"calls_per_second": 10}}
    with NightLab(
        tmp_path, lab_day(), citizens, settings=settings, with_bad_items=False, overrides=overrides
    ) as lab:
        kills = 0
        media_before = media_processes()
        for _ in range(20):
            proc = lab.popen("night", "--date", lab.day.isoformat())
            try:  # the scenario: the night runs for a random while, then it is killed
                proc.wait(timeout=rng.uniform(1.5, 6.0))
            except subprocess.TimeoutExpired:
                proc.kill()
                kills += 1
            proc.wait(timeout=30)
        # the killed nights' media processes ended with them (their socket closed)
        wait_until(lambda: media_processes() <= media_before, 10, "no orphan media process")
        # The rest of the night: everyone is called who may be called today. A citizen whose
        # answered call was cut by a kill waits for tomorrow's window (one answered call a day),
        # so once only they are left, the night is stopped and finished with a deadline that
        # has passed: they end as no_answer (survey_expired), and everything is delivered.
        config = load_config(lab.config_path, env=lab.env())
        rest = lab.popen("night", "--date", lab.day.isoformat())
        engine = make_engine(config.database)
        wait_until(lambda: only_tomorrow_is_left(engine, config.tz), 400,
                   "no survey due before tomorrow", poll=0.5, process=rest)  # fmt: skip
        engine.dispose()
        rest.send_signal(signal.SIGTERM)
        rest.wait(timeout=120)
        expire = lab.config_variant("expire", {"dialing": {"survey_deadline": "1h"}})
        final = lab.popen("night", "--date", lab.day.isoformat(), config=expire)
        assert final.wait(timeout=400) == 0, (tmp_path / "runner-21.log").read_text()[-3000:]
        assert kills >= 15, f"only {kills} kills landed (seed {seed})"

        # Every outcome delivered exactly once, and what it should be.
        ratings = lab.ratings_by_request()  # asserts one stored rating per request
        assert len(ratings) == 50
        for item, citizen in zip(lab.items, citizens, strict=True):
            body = ratings[item["id"]]
            assert (body["outcome"], body["reason"]) in ALLOWED[citizen.behaviour], (citizen, body)
        keys_by_request = defaultdict(set)
        for request_id, key, _body in lab.portal.ratings:
            keys_by_request[request_id].add(key)
        assert all(len(k) == 1 for k in keys_by_request.values())

        # The database agrees, and says when every INVITE could have gone out.
        store = Store(make_engine(config.database))
        for item in lab.items:
            if ratings[item["id"]]["reason"] == "survey_expired":  # waited for tomorrow
                attempts = attempts_of(store, item["id"])
                assert any(
                    a.disposition == "interrupted" and a.answered_at is not None for a in attempts
                ), (item["id"], attempts)
        rows = store.report_rows(lab.day)
        assert {r.portal_request_id for r in rows} == set(ratings)
        assert all(r.delivery == "delivered" for r in rows)
        calendar = CallCalendar.from_config(config)
        max_call = timedelta(seconds=config.dialing.max_call_s)
        interrupted = 0
        for item in lab.items:
            attempts = attempts_of(store, item["id"])
            assert len(attempts) <= 3 + sum(a.disposition == "failed" for a in attempts)
            interrupted += sum(a.disposition == "interrupted" for a in attempts)
            starts = sorted(a.started_at for a in attempts)
            for earlier, later in zip(starts, starts[1:], strict=False):
                gap = (later - earlier).total_seconds()
                assert gap >= RETRY_S - 0.2, f"{item['id']} called again after {gap:.1f} s"
            for a in attempts:
                assert can_start_call(a.started_at, calendar, config.tz, max_call)
        store.engine.dispose()
        assert interrupted > 0, "no kill ever landed during a call: the test proved nothing"


def only_tomorrow_is_left(engine: Engine, tz: ZoneInfo) -> bool:
    """No survey is being dialled or due before tomorrow's first local hour."""
    tomorrow = datetime.combine(
        datetime.now(tz).date() + timedelta(days=1), datetime.min.time(), tzinfo=tz
    )
    with Session(engine) as s:
        left = s.scalar(
            select(func.count())
            .select_from(Survey)
            .where(
                (Survey.status == SurveyStatus.DIALING)
                | ((Survey.status == SurveyStatus.PENDING) & (Survey.next_attempt_at < tomorrow))
            )
        )
    return not left
