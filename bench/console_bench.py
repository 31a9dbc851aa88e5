"""The console's Now page with a million surveys and 100 calls in progress, on PostgreSQL.

Fills a temporary schema with generate_series (1,000,000 surveys of the last 30 days: 1%
finished today, 2% still pending or waiting for a retry, 100 being dialled with their
attempts, the rest finished; an outbox row per finished survey, a few dead), then requests
the full Now page and its HTMX refresh through the real application (Starlette, in process)
and prints the server time p50/p95 of each, and the load on the database: statements and
database time per refresh, and what a refresh every 3 s per open browser adds.

    .venv/bin/python bench/console_bench.py [--surveys 1000000] [--requests 60]
        [--keep-schema NAME] [--explain]

Filling takes minutes on a loaded machine: ``--keep-schema NAME`` fills schema NAME once and
keeps it for the next runs (``DROP SCHEMA NAME CASCADE`` when done); ``--explain`` prints
``EXPLAIN (ANALYZE, BUFFERS)`` of every statement one refresh runs, slowest first.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import create_engine, event, text  # noqa: E402
from starlette.testclient import TestClient  # noqa: E402

from ivr.console.app import COOKIE, Console, create_app  # noqa: E402
from ivr.console.now import NOW_CACHE_S  # noqa: E402
from ivr.console.security import Session, hash_fingerprint, hash_password  # noqa: E402
from ivr.core.config import parse_config  # noqa: E402
from lab.pg import LOCAL_PG, temporary_schema  # noqa: E402
from storage.admin import Actor, AdminStore  # noqa: E402
from storage.db import make_engine, upgrade  # noqa: E402

NOW = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)  # Thursday 12:00 in Minsk: a window is open


class FixedClock:
    skew = 0.0  # moved on to play a page refreshing every 3 s without waiting for it

    def now(self) -> datetime:
        return NOW

    def monotonic(self) -> float:
        return time.monotonic() + self.skew

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


FILL = """
INSERT INTO surveys (id, portal_request_id, request_number, closed_at, local_date, phone_raw,
    phone, language, category, status, attempts, next_attempt_at, outcome, reason, digit,
    answered_at, completed_at, created_at, round_no, deadline_at)
SELECT
    md5(i::text), 'R' || i, i::text,
    TIMESTAMP '2026-11-26 06:00' - (i % 30) * INTERVAL '1 day',
    DATE '2026-11-25' - (i % 30),
    '+37529' || lpad((i % 10000000)::text, 7, '0'),
    '+37529' || lpad((i % 10000000)::text, 7, '0'),
    'ru', 'lift',
    CASE WHEN i <= :dialing THEN 'dialing' WHEN i % 100 >= 98 THEN 'pending' ELSE 'done' END,
    1 + i % 3,
    CASE WHEN i <= :dialing THEN NULL
         WHEN i % 100 = 98 THEN TIMESTAMP '2026-11-26 08:00'
         WHEN i % 100 = 99 THEN TIMESTAMP '2026-11-26 10:00' + (i % 120) * INTERVAL '1 minute'
    END,
    CASE WHEN i <= :dialing OR i % 100 >= 98 THEN NULL
         ELSE (ARRAY['satisfied', 'unsatisfied', 'no_answer', 'no_input'])[1 + i % 4] END,
    NULL, NULL, NULL,
    CASE WHEN i <= :dialing OR i % 100 >= 98 THEN NULL
         WHEN i % 100 < 1 THEN TIMESTAMP '2026-11-26 08:59' - (i % 3600) * INTERVAL '1 second'
         ELSE TIMESTAMP '2026-11-25 18:00' - (i % 30) * INTERVAL '1 day' END,
    TIMESTAMP '2026-11-26 06:00' - (i % 30) * INTERVAL '1 day',
    1, TIMESTAMP '2026-11-29 06:00'
FROM generate_series(1, :n) AS i
"""
ATTEMPTS = """
INSERT INTO call_attempts (survey_id, attempt_no, started_at, disposition, keys, node)
SELECT id, attempts,
    CASE WHEN status = 'dialing' THEN TIMESTAMP '2026-11-26 08:59:30' ELSE completed_at END,
    CASE WHEN status = 'dialing' THEN 'dialing' ELSE 'answered' END, '', 'node-a'
FROM surveys WHERE status <> 'pending'
"""
OUTBOX = """
INSERT INTO deliveries (survey_id, portal_request_id, payload, state, priority, tries,
    next_try_at, http_status, last_error, created_at)
SELECT id, portal_request_id, '{}',
    CASE WHEN row_number() OVER () % 5000 = 0 THEN 'dead'
         WHEN completed_at > TIMESTAMP '2026-11-26 08:50' THEN 'pending' ELSE 'delivered' END,
    1, 1, completed_at, 200, NULL, completed_at
FROM surveys WHERE status = 'done'
"""


def fill(engine: Any, n: int, dialing: int) -> None:
    started = time.perf_counter()
    with engine.begin() as conn:
        conn.execute(text(FILL), {"n": n, "dialing": dialing})
        conn.execute(text(ATTEMPTS))
        conn.execute(text(OUTBOX))
    with engine.connect() as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT").execute(text("VACUUM ANALYZE"))
    print(f"filled {n:,} surveys ({dialing} dialling) in {time.perf_counter() - started:.0f} s")


def pct(values: list[float], q: float) -> float:
    if len(values) < 2:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--surveys", type=int, default=1_000_000)
    p.add_argument("--dialing", type=int, default=100)
    p.add_argument("--requests", type=int, default=60)
    p.add_argument("--keep-schema", default=None, help="fill this schema once, keep it")
    p.add_argument("--explain", action="store_true", help="EXPLAIN ANALYZE each statement")
    args = p.parse_args()
    config_data = {
        "portal": {"base_url": "http://127.0.0.1:9/api", "token": "t"},
        "sip": {"server": "127.0.0.1", "username": "d", "password": "p", "local_ip": "127.0.0.1"},
    }
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    with _schema(args.keep_schema) as (url, fresh):
        engine = make_engine(url)
        upgrade(engine)
        if fresh:
            fill(engine, args.surveys, args.dialing)
        admin = AdminStore(engine)
        if admin.user("boss") is None:
            admin.add_user(Actor("bench"), "boss", "admin", hash_password("bench-password"), NOW)
        user = admin.user("boss")
        assert user is not None
        console = Console(engine, parse_config({**config_data, "database": url}), FixedClock(),
                          "bench-secret")  # fmt: skip
        client = TestClient(create_app(console))
        session = Session("boss", "t", hash_fingerprint(user.password_hash))
        client.cookies.set(COOKIE, console.codec.dumps(session))
        stats: dict[str, Any] = {"statements": 0, "db_s": 0.0, "by": {}, "sql": {}}

        @event.listens_for(engine, "before_cursor_execute")
        def _before(conn, cursor, statement, params, context, executemany):  # type: ignore[no-untyped-def]
            conn.info["t0"] = time.perf_counter()

        @event.listens_for(engine, "after_cursor_execute")
        def _after(conn, cursor, statement, params, context, executemany):  # type: ignore[no-untyped-def]
            took = time.perf_counter() - conn.info.pop("t0")
            stats["statements"] += 1
            stats["db_s"] += took
            key = " ".join(statement.split())[:90]
            stats["by"][key] = stats["by"].get(key, 0.0) + took
            stats["sql"][key] = (statement, params)

        page = client.get("/")
        assert page.status_code == 200 and "Звонки сейчас (100)" in page.text, page.text[:500]
        for path, name in (("/", "Now (full page)"), ("/now/live", "Now refresh (HTMX)")):
            times, server, cpu = [], [], []
            stats.update(statements=0, db_s=0.0, by={})
            for _ in range(args.requests):
                console.recent_now.clear()  # every request computes: the worst case
                started = time.perf_counter()
                r = client.get(path)
                times.append((time.perf_counter() - started) * 1000)
                assert r.status_code == 200
                server.append(server_ms(r))
                cpu.append(server_ms(r, "cpu"))
            per = stats["statements"] / args.requests
            db_ms = stats["db_s"] / args.requests * 1000
            print(
                f"{name:<20} server p50 {pct(server, 50):6.1f} ms  p95 {pct(server, 95):6.1f} ms"
                f"  max {max(server):6.1f} ms | CPU p50 {pct(cpu, 50):5.1f} ms  p95 "
                f"{pct(cpu, 95):5.1f} ms | client p50 {pct(times, 50):6.1f} ms  "
                f"p95 {pct(times, 95):6.1f} ms  ({args.requests} requests; "
                f"{per:.0f} statements, {db_ms:.1f} ms of database time each)"
            )
        slowest = sorted(stats["by"].items(), key=lambda kv: -kv[1])
        for sql, total in slowest[:4]:
            print(f"  {total / args.requests * 1000:6.1f} ms/refresh  {sql}")
        print(stats_while_shared(client, console, stats, args.requests))
        print(
            f"database load of one open Now page (refresh every 3 s): {per / 3:.1f} statements/s, "
            f"{db_ms / 3:.1f} ms of database time per second ({db_ms / 30:.2f}% of one core); "
            f"of any number of open pages: at most one computation per {NOW_CACHE_S:g} s, "
            f"{per / NOW_CACHE_S:.1f} statements/s ({db_ms / NOW_CACHE_S / 10:.2f}% of one core)"
        )
        if args.explain:
            explain(engine, [stats["sql"][key] for key, _ in slowest])
        engine.dispose()
    return 0


def stats_while_shared(client: Any, console: Any, stats: dict[str, Any], n: int) -> str:
    """A page refreshing every 3 s as served: the figures of the last refresh at once, the
    next computed in the background (the clock is moved 3 s on before each request)."""
    console.recent_now.clear()
    client.get("/now/live")
    stats.update(statements=0, db_s=0.0, by={})
    server, cpu = [], []
    for _ in range(n):
        console.clock.skew += 3.0
        r = client.get("/now/live")
        server.append(server_ms(r))
        cpu.append(server_ms(r, "cpu"))
    time.sleep(1.0)  # the last background computation
    return (
        f"Now refresh as served (figures computed in the background): server p50 "
        f"{pct(server, 50):.1f} ms, p95 {pct(server, 95):.1f} ms, max {max(server):.1f} ms, "
        f"CPU p50 {pct(cpu, 50):.1f} ms, p95 {pct(cpu, 95):.1f} ms "
        f"({stats['statements'] / n:.1f} statements per refresh)"
    )


def server_ms(response: Any, metric: str = "app") -> float:
    """The console's own time for a request (its Server-Timing header): ``app`` the wall-clock
    time, ``cpu`` the CPU time of the thread that served it (what a loaded machine does not
    stretch: the wall-clock time there includes waiting for a core)."""
    timings = dict(
        part.strip().split(";dur=") for part in response.headers["Server-Timing"].split(",")
    )
    return float(timings[metric])


@contextmanager
def _schema(keep: str | None) -> Iterator[tuple[str, bool]]:
    """(URL, whether the schema is new): a throwaway schema, or ``keep`` made once and kept."""
    if keep is None:
        with temporary_schema(LOCAL_PG, "ivr_bench") as url:
            yield url, True
        return
    admin = create_engine(LOCAL_PG)
    with admin.begin() as conn:
        exists = conn.scalar(
            text("SELECT count(*) FROM pg_namespace WHERE nspname = :n"), {"n": keep}
        )
        if not exists:
            conn.execute(text(f'CREATE SCHEMA "{keep}"'))
    admin.dispose()
    yield f"{LOCAL_PG}?options=-csearch_path%3D{keep}", not exists


def explain(engine: Any, statements: list[tuple[str, Any]]) -> None:
    """The plan and timing of each statement, as PostgreSQL ran it."""
    with engine.connect() as conn:
        raw = conn.connection.dbapi_connection
        for sql, params in statements:
            with raw.cursor() as cur:
                cur.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql, params)
                plan = "\n".join(f"    {row[0]}" for row in cur.fetchall())
            print("\n" + " ".join(sql.split())[:300] + "\n" + plan)
        raw.rollback()


if __name__ == "__main__":
    sys.exit(main())
