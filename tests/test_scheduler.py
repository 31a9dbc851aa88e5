"""The service's scheduler and its jobs (plain functions, time as input)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

from apscheduler.triggers.cron import CronTrigger

from ivr.campaign.campaign import Campaign
from ivr.campaign.importer import days_to_import, import_missing_days as import_job
from ivr.core.config import parse_config
from ivr.portal.client import PortalClient
from lab.portal_emulator import PortalEmulator
from lab.sample_requests import make_items
from scheduler.service import build_scheduler
from storage.store import Store
from tests.fakes import FakeClock, FakePhone, FakePrompts
from tests.helpers import config_data

MINSK = ZoneInfo("Europe/Minsk")


def config(**over: object):  # type: ignore[no-untyped-def]
    return parse_config(config_data(schedule={"import_at": "02:15"}, **over), env={})


def test_import_job_is_a_coalesced_cron_in_the_configured_zone(store: Store) -> None:
    cfg = config()
    campaign = Campaign(cfg, store, None, None, FakePhone([]), FakePrompts(), FakeClock())  # type: ignore[arg-type]
    sched = build_scheduler(campaign)
    jobs = {j.id: j for j in sched.get_jobs()}
    assert set(jobs) == {"import", "import-retry", "dial", "deliver", "expire", "retention"}
    imp = jobs["import"]
    assert isinstance(imp.trigger, CronTrigger)
    assert str(imp.trigger.timezone) == "Europe/Minsk"
    fields = {f.name: str(f) for f in imp.trigger.fields}
    assert (fields["hour"], fields["minute"]) == ("2", "15")
    assert imp.coalesce and imp.max_instances == 1 and imp.misfire_grace_time >= 3600
    for job in jobs.values():
        assert job.max_instances == 1
    # The next import fires at 02:15 Minsk time, whatever the server's zone.
    nxt = imp.trigger.get_next_fire_time(None, datetime(2026, 11, 27, 0, 0, tzinfo=UTC))
    assert nxt is not None
    assert nxt.astimezone(MINSK).replace(tzinfo=None) == datetime(2026, 11, 28, 2, 15)
    campaign.drain()


def test_days_to_import_are_yesterday_and_the_missed_ones(store: Store) -> None:
    now = datetime(2026, 11, 27, 6, 0, tzinfo=UTC)  # 09:00 in Minsk
    assert days_to_import(store, now, MINSK, 3) == [
        date(2026, 11, 24),
        date(2026, 11, 25),
        date(2026, 11, 26),
    ]
    store.begin_import(date(2026, 11, 25), now)
    store.complete_import(date(2026, 11, 25), now, 0, 0)
    assert days_to_import(store, now, MINSK, 3) == [date(2026, 11, 24), date(2026, 11, 26)]


def test_import_job_catches_up_and_is_harmless_twice(store: Store) -> None:
    now = datetime(2026, 11, 27, 6, 0, tzinfo=UTC)
    items = make_items(date(2026, 11, 25), "Europe/Minsk", ["+375291000001"]) + make_items(
        date(2026, 11, 26), "Europe/Minsk", ["+375291000002"], start_number=2000001
    )
    with PortalEmulator(items) as portal:
        client = PortalClient(portal.base_url, "test-token", timeout_s=5, page_size=10)
        assert import_job(store, client, MINSK, now) == 3
        assert import_job(store, client, MINSK, now) == 0  # all three days are complete
        client.close()
    assert len(store.report_rows()) == 2


def test_failed_import_leaves_the_day_to_retry(store: Store) -> None:
    now = datetime(2026, 11, 27, 6, 0, tzinfo=UTC)
    items = make_items(date(2026, 11, 26), "Europe/Minsk", ["+375291000001", "+375291000002"])
    with PortalEmulator(items) as portal:
        client = PortalClient(portal.base_url, "test-token", timeout_s=5, page_size=1)
        portal.fail_next(1, 503)  # the first page of the day fails
        assert import_job(store, client, MINSK, now, lookback_days=1) == 0
        assert not store.import_completed(date(2026, 11, 26))
        assert import_job(store, client, MINSK, now, lookback_days=1) == 1
        client.close()
    assert len(store.report_rows(date(2026, 11, 26))) == 2


def test_the_catch_up_import_is_a_job_due_at_start_not_a_call_before_it(store: Store) -> None:
    cfg = config()
    clock = FakeClock()
    campaign = Campaign(cfg, store, None, None, FakePhone([]), FakePrompts(), clock)  # type: ignore[arg-type]
    sched = build_scheduler(campaign)
    retry = {j.id: j for j in sched.get_jobs()}["import-retry"]
    assert retry.next_run_time == clock.now()  # the first run is the catch-up, at start
    assert retry.max_instances == 1
    campaign.drain()
