"""The commands that work on the store alone: ``report``, ``purge``, ``import`` and ``deliver``
(``deliver`` also talks to the portal). Each takes the opened store, the parsed arguments and the
configuration, prints what a person reads, and returns the process's exit code."""

from __future__ import annotations

import argparse
import csv
import sys
from collections.abc import Callable
from datetime import date

from ivr.campaign import operator
from ivr.core.clock import SYSTEM_CLOCK
from ivr.core.config import Config
from ivr.core.windows import yesterday
from ivr.entry.cli_parser import EXIT_CONFIG, EXIT_ERROR, EXIT_OK, EXIT_UNDELIVERED
from storage.store import Store


def report(store: Store, args: argparse.Namespace, config: Config) -> int:
    if args.date_from is not None or args.date_to is not None:
        return _period_report(store, args, config)
    if args.xlsx is not None or args.csv not in (None, "-"):
        print(
            "report: give [--date D] (one row per request, --csv on stdout) or "
            "--from D --to D [--by ...] [--csv [FILE] | --xlsx FILE]",
            file=sys.stderr,
        )
        return EXIT_CONFIG
    day = args.date or yesterday(SYSTEM_CLOCK.now(), config.tz)
    return _report(store, args, day)


def purge(store: Store, args: argparse.Namespace, config: Config) -> int:
    from ivr.campaign.campaign import purge

    erased = purge(store, args.before, config.tz, SYSTEM_CLOCK.now())
    print(f"erased the phone numbers of {erased} survey(s) finished before {args.before}")
    return EXIT_OK


def import_file(store: Store, args: argparse.Namespace, config: Config) -> int:
    from ivr.campaign.file_import import UnreadableFile, format_file_summary, import_file

    try:
        summary = import_file(args.file, store, config.tz, SYSTEM_CLOCK.now())
    except UnreadableFile as exc:
        print(f"cannot read the file: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    print(format_file_summary(args.file, summary))
    return EXIT_OK


def deliver(store: Store, args: argparse.Namespace, config: Config) -> int:
    from ivr.campaign.delivery import deliver_due
    from ivr.campaign.dialer import node_name
    from ivr.entry import app
    from storage.admin import AdminStore

    if args.retry_dead is not None:
        try:  # audited as the OS user, in the transaction that re-queues
            requeued = AdminStore(store.engine).retry_dead(
                operator.cli_actor(), SYSTEM_CLOCK.now(), args.retry_dead
            )
        except ValueError as exc:
            print(f"{exc} (see `ivr-rating report`)", file=sys.stderr)
            return EXIT_ERROR
        print(f"re-queued {len(requeued)} dead letter(s): {', '.join(requeued) or '-'}")
    with app.make_portal(config) as portal:
        stats = deliver_due(store, portal, SYSTEM_CLOCK.now(), limit=100_000,
                            node=node_name(config))  # fmt: skip
    counts = store.delivery_counts()
    print(
        f"delivered {stats.delivered}, dead {stats.dead}, deferred {stats.deferred}; "
        f"outbox now: {counts}"
    )
    comments = store.comment_counts()
    if any(comments.values()):
        print(
            f"comments delivered {stats.comments_delivered}, dead {stats.comments_dead}"
            f"{' (waiting: 404 on the comment path)' if stats.comments_blocked else ''}; "
            f"comments now: {comments}"
        )
    waiting = counts.get("pending") or (comments["pending"] and not stats.comments_blocked)
    return EXIT_UNDELIVERED if waiting else EXIT_OK


def _report(store: Store, args: argparse.Namespace, day: date) -> int:
    from ivr.core.intake import mask_phone

    header: list[str]
    table: list[list[str]]
    if args.rejected:
        header = ["request_id", "reason"]
        table = [[pid or "", reason] for pid, reason in store.rejected(day)]
    else:
        rows = store.report_rows(day)
        header = ["request_id", "number", "phone", "attempts", "outcome", "reason", "key",
                  "delivered"]  # fmt: skip
        table = [
            [
                r.portal_request_id,
                r.request_number,
                (r.phone if args.show_phones else mask_phone(r.phone)) if r.phone else "",
                str(r.attempts),
                r.outcome or f"({r.status})",
                r.reason or "",
                r.digit or "",
                r.delivery or "",
            ]
            for r in rows
        ]
    if args.csv:
        from ivr.core.untrusted import csv_cell

        w = csv.writer(sys.stdout)
        w.writerow(header)
        w.writerows([csv_cell(cell) for cell in row] for row in table)
        return EXIT_OK
    from ivr.core.untrusted import printable

    table = [[printable(cell) for cell in row] for row in table]
    widths = [max([len(h), *(len(row[i]) for row in table)]) for i, h in enumerate(header)]
    for row in [header, *table]:
        print("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip())
    if args.rejected:
        print(f"\n{len(table)} rejected row(s)")
        return EXIT_OK
    from ivr.campaign.delivery import format_outbox

    print(f"\n{len(table)} request(s) closed on {day.isoformat()}")
    print(format_outbox(store, day))
    return EXIT_OK


def _period_report(store: Store, args: argparse.Namespace, config: Config) -> int:
    from ivr.campaign.period_report import COLUMNS, figure_row, text_table
    from ivr.console.analytics_params import BadParam, check_period
    from ivr.core.exports import write_csv, write_xlsx
    from storage.analytics import Filters, figures

    if args.date_from is None or args.date_to is None or args.date is not None:
        print("report: a period needs both --from and --to (and no --date)", file=sys.stderr)
        return EXIT_CONFIG
    try:
        check_period(args.date_from, args.date_to, ("--from", "--to"))
    except BadParam as exc:
        print(f"report: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    if args.csv is not None and args.xlsx is not None:
        print("report: either --csv or --xlsx", file=sys.stderr)
        return EXIT_CONFIG
    filters = Filters(args.date_from, args.date_to, args.executor, args.category, args.district)
    groups = figures(store.engine, filters, args.by)
    described = [*filters.described(), ("by", args.by), ("time zone", config.timezone)]
    rows = [figure_row(f) for f in groups]
    if args.xlsx is not None:
        write_xlsx(args.xlsx, COLUMNS, rows, described, config.tz)
        print(f"{len(rows)} group(s) written to {args.xlsx}")
        return EXIT_OK
    if args.csv == "-":
        write_csv(sys.stdout.buffer, COLUMNS, rows, described, config.tz)
        sys.stdout.flush()
        return EXIT_OK
    if args.csv is not None:
        with open(args.csv, "wb") as out:
            write_csv(out, COLUMNS, rows, described, config.tz)
        print(f"{len(rows)} group(s) written to {args.csv}")
        return EXIT_OK
    (total,) = figures(store.engine, filters, "total")
    print(
        f"Closed {filters.date_from}..{filters.date_to} ({config.timezone}), by {args.by}"
        + "".join(f", {k} {v}" for k, v in filters.described()[2:])
    )
    print("reach = answered/called, satisfaction = satisfied/rated: [95 % Wilson interval]")
    from ivr.core.untrusted import printable

    for line in text_table(groups, total):
        print(printable(line))
    return EXIT_OK


Command = Callable[[Store, argparse.Namespace, Config], int]
STORE_COMMANDS: dict[str, Command] = {
    "report": report,
    "purge": purge,
    "import": import_file,
    "deliver": deliver,
}
