"""Delivery of N pending results from the outbox to the local portal emulator.

Fills the outbox with N final results (one import, in batches), then times ``deliver_due``
posting them all (one HTTP POST and one outbox update per result). Prints results per second
per database.

    .venv/bin/python bench/delivery_bench.py [--results 10000] [--no-postgres]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


from ivr.campaign.delivery import deliver_due  # noqa: E402
from ivr.campaign.importer import ImportSummary, store_items  # noqa: E402
from ivr.portal.client import PortalClient  # noqa: E402
from lab.pg import LOCAL_PG, temporary_schema
from lab.portal_emulator import PortalEmulator  # noqa: E402
from lab.sample_requests import make_items  # noqa: E402
from storage.db import make_engine, upgrade  # noqa: E402
from storage.store import Store  # noqa: E402

DAY = date(2026, 3, 1)
NOW = datetime(2026, 3, 2, 7, tzinfo=UTC)
PG_URL = LOCAL_PG


def run(name: str, db_url: str, items: list[dict[str, object]]) -> None:
    engine = make_engine(db_url)
    upgrade(engine)
    store = Store(engine)
    # Every item is final at once (the citizens refused calls): N pending outbox rows.
    store_items(items, DAY, store, ZoneInfo("Europe/Minsk"), NOW, ImportSummary(DAY))
    pending = store.delivery_counts().get("pending", 0)
    with PortalEmulator(items) as portal:
        with PortalClient(portal.base_url, "test-token", timeout_s=10, page_size=1000) as client:
            started = time.perf_counter()
            stats = deliver_due(store, client, NOW, limit=len(items))
            seconds = time.perf_counter() - started
        received = len(portal.ratings)
    engine.dispose()
    print(
        f"{name:<11} {stats.delivered} of {pending} results delivered in {seconds:6.1f} s: "
        f"{stats.delivered / seconds:,.0f} results/s ({seconds * 1000 / stats.delivered:.2f} ms "
        f"each); portal holds {received}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--results", type=int, default=10_000)
    parser.add_argument("--no-postgres", action="store_true")
    args = parser.parse_args()
    phones = [f"+37529{1000000 + i:07d}" for i in range(args.results)]
    items = make_items(DAY, "Europe/Minsk", phones)
    for item in items:
        item["consent_to_calls"] = False
    print(f"delivery of {args.results} pending results to the local portal emulator")
    with tempfile.TemporaryDirectory() as tmp:
        run("SQLite", f"sqlite:///{tmp}/bench.sqlite", items)  # type: ignore[arg-type]
    if not args.no_postgres:
        with temporary_schema(PG_URL, "ivr_bench") as url:
            run("PostgreSQL", url, items)  # type: ignore[arg-type]
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
