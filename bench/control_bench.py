"""The console's control list on a year of Minsk in PostgreSQL: server time of the page and of
its streamed exports, through the real application (Starlette's TestClient, in process).

Fills a throwaway schema as ``analytics_bench.py`` does (default 1.7 M surveys, ~12 %
unsatisfied: ~200 k requests returned for rework in the year), then times, REPEAT times each,
the control page (last 30 days; one executor; unreviewed only; page 20) and once each the CSV
and XLSX exports of the first half-year's list (~100 k rows), with the process's peak RSS
growth (the page's rows are never all in memory: a server-side cursor feeds the writer).

    .venv/bin/python bench/control_bench.py [--surveys 1700000] [--repeat 20] [--no-xlsx]
        [--no-pages] [--keep SCHEMA]

``--keep SCHEMA`` fills that schema once (3.5 min here) and reuses it on the next runs
(migrations applied on each run): before/after figures on the same data. Drop it by hand.

Measured 2026-11-30 on the 2-core development machine while it ran other work (load average
about 10), 1.7 M surveys: the page, last 30 days p50 853 ms / p95 1000 ms (1679 / 2159 ms
before its counts and choices came from one query); one executor over the year p50 2.7 s;
unreviewed only p50 974 ms; page 20 of the year p50 4.4 s. Exports of the first half-year
(101,719 rows): CSV 22.3 MB in 30.8 s, XLSX 7.4 MB in 268 s; peak RSS of the whole process
164 MB. On that load the figures are several times what an idle machine gives.

Then with the partial covering index ``ix_surveys_control`` (migration 0012) and the
summary grouped in memory (``SUMMARY_WORK_MEM``), same data, load average about 4 both
times, p50 / p95 ms before -> after: last 30 days 357 / 407 -> 212 / 431; one executor over
the year 2267 / 2883 -> 676 / 784; unreviewed only 626 / 740 -> 180 / 301; page 20 of the year
3576 / 3853 -> 992 / 1334. CSV export of 101,719 rows: 21-35 s both before and after (the
query with its key path ~110 us a row, the Python formatting ~90 us a row; not changed yet).

Then with the control counts of the settled days and months (migration 0013), keyset pages
and export rows as plain tuples, main and this side by side on copies of the same data, load
average 4 to 7, p50 / p95 ms main -> now: last 30 days 60 / 138 -> 55 / 74; one executor over
the year 166 / 219 -> 27 / 45; unreviewed only 58 / 87 -> 44 / 63; page 20 by number 216 / 266
-> 143 / 158, by its mark (the "next" link, no OFFSET) 74 / 95. CSV of 101,719 rows 3.5-4.1 s
-> 2.8-3.3 s; XLSX 17.5 -> 17.0 s (openpyxl); peak RSS 149 MB. (docs/analytics.md)
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]

from analytics_bench import fill, timed  # noqa: E402
from sqlalchemy import create_engine, text  # noqa: E402
from starlette.testclient import TestClient  # noqa: E402

from ivr.console.app import COOKIE, Console, create_app  # noqa: E402
from ivr.console.security import Session, hash_fingerprint, hash_password, new_token  # noqa: E402
from ivr.core.config import parse_config  # noqa: E402
from lab.pg import LOCAL_PG, temporary_schema  # noqa: E402
from storage.admin import Actor, AdminStore  # noqa: E402
from storage.db import make_engine, upgrade  # noqa: E402

NOW = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)  # fixed date: the filled year ends here


class Clock:
    def now(self) -> datetime:
        return NOW

    def monotonic(self) -> float:
        return time.monotonic()


def client(url: str) -> TestClient:
    engine = make_engine(url)
    admin = AdminStore(engine)
    if admin.user("kira") is None:
        admin.add_user(Actor("bench"), "kira", "controller", hash_password("bench-password"),
                       NOW)  # fmt: skip
    config = parse_config({
        "database": url,
        "portal": {"base_url": "http://127.0.0.1:9/api/v1", "token": "t"},
        "sip": {"server": "127.0.0.1", "username": "d", "password": "p", "local_ip": "127.0.0.1"},
    })  # fmt: skip
    console = Console(engine, config, Clock(), "bench-secret")  # type: ignore[arg-type]
    user = console.admin.user("kira")
    assert user is not None
    c = TestClient(create_app(console))
    session = Session("kira", new_token(), hash_fingerprint(user.password_hash))
    c.cookies.set(COOKIE, console.codec.dumps(session))
    return c


def export(c: TestClient, query: str) -> None:
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    size = lines = 0
    with c.stream("GET", f"/control?{query}") as r:
        assert r.status_code == 200, r.status_code
        for chunk in r.iter_bytes():
            size += len(chunk)
            lines += chunk.count(b"\r\n")
    elapsed = time.perf_counter() - started
    rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(
        f"export {query}: {f'{lines - 5} rows, ' if 'csv' in query else ''}"
        f"{size / 1e6:.1f} MB in {elapsed:.2f} s, peak RSS growth "
        f"{(rss_after - rss_before) / 1024:.0f} MB (peak RSS {rss_after / 1024:.0f} MB)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--surveys", type=int, default=1_700_000)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--no-xlsx", action="store_true", help="skip the (slow) XLSX export")
    parser.add_argument("--no-pages", action="store_true", help="time the exports only")
    parser.add_argument("--keep", metavar="SCHEMA", help="fill SCHEMA once and keep it (reused "
                        "when it already holds surveys; drop it by hand afterwards)")  # fmt: skip
    args = parser.parse_args()
    with ExitStack() as stack:
        url = kept_schema(args.keep) if args.keep else stack.enter_context(
            temporary_schema(LOCAL_PG, "ivr_bench"))  # fmt: skip
        engine = make_engine(url)
        upgrade(engine)
        with engine.connect() as conn:
            empty = conn.scalar(text("SELECT count(*) FROM surveys")) == 0
        if empty:
            fill(engine, args.surveys)
        engine.dispose()
        c = client(url)
        run(c, args)


def kept_schema(schema: str) -> str:
    admin = create_engine(LOCAL_PG)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
    admin.dispose()
    return f"{LOCAL_PG}?options=-csearch_path%3D{schema}"


def page_by_mark(c: TestClient, numbered: str) -> str:
    """The link to the same page as ``numbered`` (``page=N``) that the list's "next" links
    give: found by following them from the first page."""
    import html
    import re

    base, _, wanted = numbered.rpartition("&page=")
    path = base
    for _ in range(int(wanted) - 1):
        page = c.get(path).text
        found = re.search(r'<a href="(/control\?[^"]*after=[^"]+)">', page)
        assert found is not None, "no next link"
        path = html.unescape(found.group(1))
    return path


def run(c: TestClient, args: argparse.Namespace) -> None:
    pages = {
        "control page, last 30 days": "/control",
        "one executor, the year": "/control?from=2025-12-01&to=2026-11-30&executor=EX-017",
        "unreviewed only, last 30 days": "/control?reviewed=no",
        "page 20 of the year": "/control?from=2025-12-01&to=2026-11-30&page=20",
    }
    if not args.no_pages:
        pages["page 20 of the year, by its mark (keyset)"] = page_by_mark(
            c, pages["page 20 of the year"]
        )
    print(f"{'page':45} {'p50 ms':>8} {'p95 ms':>8}")
    for name, path in pages.items() if not args.no_pages else ():

        def get(path: str = path) -> None:
            assert c.get(path).status_code == 200

        get()  # warm the cache
        p50, p95 = timed(get, args.repeat)
        print(f"{name:45} {p50 * 1000:8.0f} {p95 * 1000:8.0f}")
    half = "from=2025-12-01&to=2026-05-31"
    with c.stream("GET", f"/control?{half}") as r:
        r.read()
    export(c, f"{half}&format=csv")
    if not args.no_xlsx:
        export(c, f"{half}&format=xlsx")


if __name__ == "__main__":
    main()
