"""A year of Minsk in PostgreSQL: server time of the analytics queries and of a streamed export.

Fills a throwaway schema with N surveys (default 1.7 M: one year, 300 executors, 40
categories, ~2 % unsatisfied again, one answered attempt per answered survey) by
``INSERT ... SELECT FROM generate_series`` (no Python row loop), then times, REPEAT times each:

- the figures behind the analytics page: by executor, category, district and day for one
  month, by month for the whole year, the total, and the first page of the control list;
- the page as a whole (all of those in sequence);
- a filtered export (the rows of one period and bucket, ~100 k rows) streamed to CSV,
  with the process's peak RSS growth.

Then the same through the console as a city controller uses it (``--console``, default on):
the one-time counting of the settled days (:mod:`storage.analytics_days`), the figures from
the daily counts, and the analytics page and the printable report as served (the Starlette
app in process: handler, queries and template; no network).

Prints p50/p95 per query and the export's rows, seconds and memory.

    .venv/bin/python bench/analytics_bench.py [--surveys 1700000] [--repeat 20]
        [--keep SCHEMA] [--console-only]

``--keep SCHEMA`` fills that schema once and reuses it (as ``control_bench.py``; the two share
it); ``--console-only`` times only the console's paths (the daily and monthly counts, pages).
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from contextlib import ExitStack  # noqa: E402

from sqlalchemy import Engine, create_engine, text  # noqa: E402

from ivr.console.analytics import export_rows  # noqa: E402
from ivr.core.exports import csv_chunks  # noqa: E402
from lab.pg import LOCAL_PG, temporary_schema  # noqa: E402
from storage.analytics import Filters, figures, ranking  # noqa: E402
from storage.analytics_rows import ROW_COLUMNS, rows_query  # noqa: E402
from storage.control_entries import control_list  # noqa: E402
from storage.db import make_engine, upgrade  # noqa: E402

YEAR_START = date(2025, 12, 1)
CATEGORIES = (
    "heating", "lift", "yard_cleaning", "water_supply", "stairwell_lighting", "sewerage", "roof",
    "electricity", "waste_removal",
) + tuple(f"category_{n:02d}" for n in range(31))  # fmt: skip
DISTRICTS = ("Заводской", "Ленинский", "Московский", "Октябрьский", "Партизанский",
             "Первомайский", "Советский", "Фрунзенский", "Центральный")  # fmt: skip

FILL = """
INSERT INTO surveys (id, portal_request_id, request_number, closed_at, local_date, phone_raw,
    phone, language, category, category_name, executor_id, executor_name, address, district,
    status, attempts, outcome, reason, digit, answered_at, completed_at, created_at,
    round_no, next_attempt_at)
SELECT
    lpad(to_hex(i), 36, '0'), 'R-' || i, i::text, t, (t AT TIME ZONE 'UTC'
        AT TIME ZONE 'Europe/Minsk')::date, '+37529' || lpad((i % 10000000)::text, 7, '0'),
    '+37529' || lpad((i % 10000000)::text, 7, '0'), CASE WHEN i % 4 = 3 THEN 'be' ELSE 'ru' END,
    c, c, 'EX-' || lpad((h % 300)::text, 3, '0'), 'ЖЭС № ' || (h % 300),
    'г. Минск, ' || d || ' р-н, ул. ' || (i % 997), d || ' р-н',
    'done', CASE WHEN o < 3 THEN 0 ELSE 1 + (i % 3) END,
    CASE WHEN o < 3 THEN 'not_called' WHEN o < 18 THEN 'no_answer' WHEN o < 78 THEN 'satisfied'
         WHEN o < 90 THEN 'unsatisfied' WHEN o < 96 THEN 'no_input' ELSE 'opted_out' END,
    CASE WHEN o < 3 THEN 'invalid_phone' WHEN o < 10 THEN 'no_answer' WHEN o < 18 THEN 'busy'
         WHEN o >= 78 AND o < 80 THEN 'unsatisfied_again' END,
    CASE WHEN o >= 18 AND o < 78 THEN '1' WHEN o >= 78 AND o < 90 THEN '2' END,
    CASE WHEN o >= 18 THEN t + interval '14 hours' END, t + interval '14 hours',
    t, CASE WHEN o >= 78 AND o < 80 THEN 2 ELSE 1 END, NULL
FROM (
    SELECT i,
           timestamp '2025-11-30 21:00' + (i * (365.0 * 86400 / :n)) * interval '1 second' AS t,
           (i * 7919) % 100 AS o,
           (i * 104729 + i / 7) AS h,
           (ARRAY[{cats}])[1 + (i * 31) % 40] AS c,
           (ARRAY[{dists}])[1 + (i * 13) % 9] AS d
    FROM generate_series(1::bigint, CAST(:n AS bigint)) AS i
) AS g
"""

ATTEMPTS = """
INSERT INTO call_attempts (survey_id, attempt_no, started_at, answered_at, ended_at, keys,
    disposition, key_sources)
SELECT id, attempts, answered_at, answered_at, answered_at + interval '20 seconds',
    coalesce(digit, ''), 'answered', CASE WHEN digit IS NULL THEN '' ELSE 'r' END
FROM surveys WHERE answered_at IS NOT NULL
"""


def fill(engine: Engine, n: int) -> None:
    cats = ", ".join(f"'{c}'" for c in CATEGORIES)
    dists = ", ".join(f"'{d}'" for d in DISTRICTS)
    started = time.perf_counter()
    with engine.begin() as conn:
        conn.execute(text(FILL.format(cats=cats, dists=dists)), {"n": n})
        conn.execute(text(ATTEMPTS))
    with engine.connect() as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT").execute(text("VACUUM ANALYZE"))
    print(f"filled {n} surveys in {time.perf_counter() - started:.0f} s")


def timed(fn: Callable[[], object], repeat: int) -> tuple[float, float]:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    times.sort()
    p95 = times[min(len(times) - 1, int(round(0.95 * (len(times) - 1))))]
    return statistics.median(times), p95


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--surveys", type=int, default=1_700_000)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--keep", metavar="SCHEMA", help="fill SCHEMA once and keep it")
    parser.add_argument("--console-only", action="store_true", help="the console's paths only")
    args = parser.parse_args()
    with ExitStack() as stack:
        url = kept_schema(args.keep) if args.keep else stack.enter_context(
            temporary_schema(LOCAL_PG, "ivr_bench"))  # fmt: skip
        engine = make_engine(url)
        upgrade(engine)
        with engine.connect() as conn:
            if conn.scalar(text("SELECT count(*) FROM surveys")) == 0:
                fill(engine, args.surveys)
        if args.console_only:
            console_figures(engine, args.repeat)
            engine.dispose()
            return
        month = Filters(date(2026, 10, 1), date(2026, 10, 31))
        year = Filters(YEAR_START, date(2026, 11, 30))
        one_executor = Filters(YEAR_START, date(2026, 11, 30), executor="EX-017")
        queries: dict[str, Callable[[], object]] = {
            "month by executor (+ranking)": lambda: ranking(figures(engine, month, "executor")),
            "month by category": lambda: figures(engine, month, "category"),
            "month by district": lambda: figures(engine, month, "district"),
            "month by day": lambda: figures(engine, month, "day"),
            "month total": lambda: figures(engine, month, "total"),
            "year by month": lambda: figures(engine, year, "month"),
            "year by executor": lambda: figures(engine, year, "executor"),
            "one executor, year by week": lambda: figures(engine, one_executor, "week"),
            "control list, first 50": lambda: control_list(engine, month, limit=50),
        }
        page = ("month by executor (+ranking)", "month by day", "month total",
                "control list, first 50")  # fmt: skip

        def whole_page() -> None:
            for name in page:
                queries[name]()

        queries["analytics page (" + ", ".join(page) + ")"] = whole_page
        print(f"{'query':70} {'p50 ms':>8} {'p95 ms':>8}")
        for name, fn in queries.items():
            fn()  # warm the cache
            p50, p95 = timed(fn, args.repeat)
            print(f"{name:70} {p50 * 1000:8.0f} {p95 * 1000:8.0f}")

        # The export: one month's rated surveys (~100 k rows), streamed to CSV.
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        started = time.perf_counter()
        rows = 0
        size = 0
        q = rows_query(month, bucket="rated")
        for chunk in csv_chunks(ROW_COLUMNS, export_rows(engine, q), month.described()):
            size += len(chunk.encode())
            rows += chunk.count("\r\n")
        elapsed = time.perf_counter() - started
        rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(
            f"export: {rows - 4} rows, {size / 1e6:.1f} MB of CSV in {elapsed:.2f} s, "
            f"peak RSS growth {(rss_after - rss_before) / 1024:.0f} MB "
            f"(peak RSS {rss_after / 1024:.0f} MB)"
        )
        console_figures(engine, args.repeat)
        engine.dispose()


def kept_schema(schema: str) -> str:
    """A URL whose connections use ``schema`` (made if missing; kept afterwards)."""
    admin = create_engine(LOCAL_PG)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
    admin.dispose()
    return f"{LOCAL_PG}?options=-csearch_path%3D{schema}"


def console_figures(engine: Engine, repeat: int) -> None:
    """The console's paths: daily counts, then the pages as served (today: 2026-12-01)."""
    from datetime import UTC, datetime

    from starlette.testclient import TestClient

    from ivr.console.app import COOKIE, Console, create_app
    from ivr.console.security import Session, hash_fingerprint, hash_password, new_token
    from ivr.core.config import parse_config
    from storage.admin import Actor, AdminStore
    from storage.analytics_days import forget_days, quick_figures

    now = datetime(2026, 12, 1, 7, 0, tzinfo=UTC)
    today = date(2026, 12, 1)
    forget_days(engine, YEAR_START, date(2026, 11, 30))  # a kept schema: counted again
    started = time.perf_counter()
    quick_figures(engine, Filters(YEAR_START, date(2026, 11, 30)), "total", today, now)
    print(f"daily counts of the settled days of the year: {time.perf_counter() - started:.1f} s"
          " (once; then one day a day)")  # fmt: skip
    month = Filters(date(2026, 10, 1), date(2026, 10, 31))
    year = Filters(YEAR_START, date(2026, 11, 30))
    quick: dict[str, Callable[[], object]] = {
        "counts: month by executor": lambda: quick_figures(engine, month, "executor", today, now),
        "counts: month by day": lambda: quick_figures(engine, month, "day", today, now),
        "counts: year by month": lambda: quick_figures(engine, year, "month", today, now),
        "counts: year by executor": lambda: quick_figures(engine, year, "executor", today, now),
    }
    admin = AdminStore(engine)
    if admin.user("bench") is None:
        admin.add_user(Actor("bench"), "bench", "viewer", hash_password("bench-password"), now)
    user = admin.user("bench")
    assert user is not None
    config = parse_config({
        "portal": {"base_url": "http://127.0.0.1:9/api/v1", "token": "t"},
        "sip": {"server": "127.0.0.1", "username": "d", "password": "p", "local_ip": "127.0.0.1"},
    })  # fmt: skip

    class Clock:
        def now(self) -> datetime:
            return now

        def monotonic(self) -> float:
            return time.monotonic()

    console = Console(engine, config, Clock(), "bench-secret")  # type: ignore[arg-type]
    client = TestClient(create_app(console))
    session = Session("bench", new_token(), hash_fingerprint(user.password_hash))
    client.cookies.set(COOKIE, console.codec.dumps(session))
    pages = {
        "page /analytics (last 30 days, by executor)": "/analytics",
        "page /analytics October by executor": "/analytics?from=2026-10-01&to=2026-10-31",
        "page /analytics October by category, one executor":
            "/analytics?from=2026-10-01&to=2026-10-31&by=category&executor=EX-017",
        "page /analytics year by month": "/analytics?from=2025-12-01&to=2026-11-30&by=month",
        "page /analytics/report October": "/analytics/report?from=2026-10-01&to=2026-10-31",
    }  # fmt: skip

    def get(path: str) -> Callable[[], object]:
        def fetch() -> object:
            response = client.get(path)
            assert response.status_code == 200, response.text[:200]
            return response

        return fetch

    quick.update({name: get(path) for name, path in pages.items()})
    print(f"{'console path':70} {'p50 ms':>8} {'p95 ms':>8}")
    for name, fn in quick.items():
        fn()
        p50, p95 = timed(fn, repeat)
        print(f"{name:70} {p50 * 1000:8.0f} {p95 * 1000:8.0f}")


if __name__ == "__main__":
    main()
