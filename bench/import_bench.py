"""Import of N closed requests from the local portal emulator into SQLite and PostgreSQL.

Prints seconds, items per second and peak memory (ru_maxrss of a child process doing only the
import) per database, with the goal (under 30 s and under 200 MB for 50,000) and the ratio.

    .venv/bin/python bench/import_bench.py [--items 50000] [--page-size 1000] [--no-postgres]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


from lab.pg import LOCAL_PG, temporary_schema
from lab.portal_emulator import PortalEmulator  # noqa: E402
from lab.sample_requests import make_items  # noqa: E402

DAY = date(2026, 3, 1)
PG_URL = LOCAL_PG
GOAL_S, GOAL_MB = 30.0, 200.0


def child(db_url: str, base_url: str, page_size: int) -> None:
    from ivr.campaign.importer import import_day
    from ivr.portal.client import PortalClient
    from storage.db import make_engine, upgrade
    from storage.store import Store

    engine = make_engine(db_url)
    upgrade(engine)
    store = Store(engine)
    with PortalClient(base_url, "test-token", timeout_s=30, page_size=page_size) as client:
        started = time.perf_counter()
        summary = import_day(
            DAY, client, store, ZoneInfo("Europe/Minsk"), datetime(2026, 3, 2, 7, tzinfo=UTC)
        )
        seconds = time.perf_counter() - started
    engine.dispose()
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": seconds, "rss_mb": rss_mb, "new": summary.new}))


def run_child(db_url: str, base_url: str, page_size: int) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, __file__, "--child", db_url, base_url, str(page_size)],
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def report(name: str, n: int, r: dict[str, float]) -> None:
    print(
        f"{name:<11} {n} items: {r['seconds']:6.1f} s ({n / r['seconds']:,.0f} items/s, "
        f"{r['seconds'] / GOAL_S:.2f} of the 30 s goal), peak RSS {r['rss_mb']:.0f} MB "
        f"({r['rss_mb'] / GOAL_MB:.2f} of the 200 MB goal), new {int(r['new'])}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--items", type=int, default=50_000)
    parser.add_argument("--page-size", type=int, default=1000)
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--child", nargs=3, metavar=("DB_URL", "BASE_URL", "PAGE_SIZE"))
    args = parser.parse_args()
    if args.child:
        child(args.child[0], args.child[1], int(args.child[2]))
        return 0
    phones = [f"+37529{1000000 + i:07d}" for i in range(args.items)]
    items = make_items(DAY, "Europe/Minsk", phones)
    with PortalEmulator(items) as portal, tempfile.TemporaryDirectory() as tmp:
        print(f"import of {args.items} closed requests, page size {args.page_size}")
        report("SQLite", args.items, run_child(f"sqlite:///{tmp}/bench.sqlite", portal.base_url,
                                               args.page_size))  # fmt: skip
        if not args.no_postgres:
            with temporary_schema(PG_URL, "ivr_bench") as url:
                report("PostgreSQL", args.items, run_child(url, portal.base_url, args.page_size))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
