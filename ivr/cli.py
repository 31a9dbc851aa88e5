"""``ivr-rating``: the command line. Logging handlers are set here and nowhere else.

Exit codes: 0 done; 1 unexpected error; 2 bad configuration or arguments; 3 portal
unreachable or refused the token; 4 SIP registration failed; 5 results left undelivered
(kept in the outbox; ``ivr-rating deliver`` or the service sends them later); 6 another runner
already works on this SQLite database.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import sys
from datetime import date
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from ivr import operator
from ivr.clock import SYSTEM_CLOCK
from ivr.config import Config, load_config, redacted
from ivr.errors import ConfigError, PortalError, RegistrationFailed, RunnerLocked

if TYPE_CHECKING:
    from ivr.heartbeat import NodeProbe
    from ivr.metrics import CountingPortal
    from ivr.sip.api import SipPhone
    from prompts.library import PromptLibrary
    from storage.store import Store

log = logging.getLogger("ivr.cli")

EXIT_OK, EXIT_ERROR, EXIT_CONFIG, EXIT_PORTAL, EXIT_SIP, EXIT_UNDELIVERED = 0, 1, 2, 3, 4, 5
EXIT_LOCKED = 6


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a date like 2026-11-26, got {text!r}") from None


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="ivr-rating",
        description="Phones citizens after their request is closed and records their rating.",
    )
    p.add_argument("--config", type=Path, default=Path("config.yaml"), help="YAML configuration")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = p.add_subparsers(dest="command", required=True)

    cfg = sub.add_parser("config", help="configuration tools")
    cfg_sub = cfg.add_subparsers(dest="config_command", required=True)
    cfg_sub.add_parser("check", help="validate the configuration (secrets are not shown)")

    db = sub.add_parser("db", help="database tools")
    db_sub = db.add_subparsers(dest="db_command", required=True)
    db_sub.add_parser("upgrade", help="create or upgrade the schema (alembic)")

    night = sub.add_parser("night", help="import one local day, call everyone, deliver, summarise")
    night.add_argument("--date", type=_date, required=True, help="local date the requests closed")
    night.add_argument(
        "--delivery-deadline",
        type=float,
        default=60.0,
        help="seconds to keep retrying delivery at the end (default 60)",
    )

    sub.add_parser("run", help="the long-running service (nightly import, dialing, delivery)")
    operator.add_commands(sub)

    report = sub.add_parser("report", help="one row per request")
    report.add_argument("--date", type=_date, required=True)
    report.add_argument("--csv", action="store_true", help="CSV on stdout")
    report.add_argument("--show-phones", action="store_true", help="do not mask phone numbers")
    report.add_argument(
        "--rejected", action="store_true", help="every rejected portal or file row with its reason"
    )

    deliver = sub.add_parser("deliver", help="post pending results to the portal now")
    deliver.add_argument(
        "--retry-dead",
        nargs="*",
        metavar="ID",
        help="first send dead letters again, once what the portal refused is fixed: all of "
        "them, or those of these request (or survey) ids",
    )

    purge = sub.add_parser("purge", help="erase phone numbers of finished surveys now")
    purge.add_argument("--before", type=_date, required=True,
                       help="surveys finished before this local date")  # fmt: skip

    imp = sub.add_parser("import", help="import closed requests from a JSON or CSV file")
    imp.add_argument("--file", type=Path, required=True, help="JSON list or CSV with a header")

    prompts = sub.add_parser("prompts", help="prompt recordings")
    prompts_sub = prompts.add_subparsers(dest="prompts_command", required=True)
    prompts_sub.add_parser("check", help="every clip present, decodable and not too long")
    build = prompts_sub.add_parser("build", help="synthesise placeholder clips with espeak-ng")
    build.add_argument("--out", type=Path, default=None, help="folder (default: prompts.dir)")
    return p


def _setup_logging(verbose: bool) -> None:
    from ivr.logs import TEXT_FORMAT

    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO, format=TEXT_FORMAT, stream=sys.stderr
    )
    if not verbose:
        for noisy in ("apscheduler", "urllib3", "alembic", "pydub"):
            logging.getLogger(noisy).setLevel(logging.WARNING)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _setup_logging(args.verbose)
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    if config.logging.format != "text":
        from ivr.logs import use_format

        use_format(config.logging.format)
    try:
        return _dispatch(args, config)
    except PortalError as exc:
        print(f"portal error: {exc}", file=sys.stderr)
        return EXIT_PORTAL
    except RegistrationFailed as exc:
        print(f"SIP registration failed: {exc}", file=sys.stderr)
        return EXIT_SIP
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except RunnerLocked as exc:
        print(f"not started: {exc}", file=sys.stderr)
        return EXIT_LOCKED


def _dispatch(args: argparse.Namespace, config: Config) -> int:
    from ivr import app

    if args.command == "config":
        print(json.dumps(redacted(config), indent=2, ensure_ascii=False))
        print("configuration OK", file=sys.stderr)
        return EXIT_OK
    if args.command == "prompts":
        return _prompts(args, config)

    store = app.make_store(config)
    from storage.db import upgrade

    upgrade(store.engine)  # every command works on an up-to-date schema
    if args.command == "db":
        print("database schema is up to date")
        return EXIT_OK
    if args.command in operator.COMMANDS:
        code, text = operator.run(args, config, store, SYSTEM_CLOCK.now())
        print(text)
        return code
    if args.command == "report":
        return _report(store, args)
    if args.command == "purge":
        from ivr.retention import purge

        erased = purge(store, args.before, config.tz)
        print(f"erased the phone numbers of {erased} survey(s) finished before {args.before}")
        return EXIT_OK
    if args.command == "import":
        from ivr.file_import import UnreadableFile, format_file_summary, import_file

        try:
            summary = import_file(args.file, store, config.tz, SYSTEM_CLOCK.now())
        except UnreadableFile as exc:
            print(f"cannot read the file: {exc}", file=sys.stderr)
            return EXIT_CONFIG
        print(format_file_summary(args.file, summary))
        return EXIT_OK
    if args.command == "deliver":
        from ivr.delivery import deliver_due, requeue_dead_letters
        from ivr.dialer import node_name

        if args.retry_dead is not None:
            try:
                requeued = requeue_dead_letters(store, args.retry_dead, SYSTEM_CLOCK.now())
            except ValueError as exc:
                print(str(exc), file=sys.stderr)
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

    prompts = app.make_prompts(config)
    problems = prompts.check()
    if problems:
        raise ConfigError("prompts", "; ".join(problems))
    from ivr.sip.pyvoip_adapter import PyVoipPhone
    from storage.locks import runner_lock

    phone = PyVoipPhone(app.sip_settings(config))
    from ivr.dialer import node_name
    from storage.locks import node_presence

    with (
        runner_lock(store.engine),
        node_presence(store.engine, node_name(config)),
        app.make_portal(config) as portal,
        app.runner_edges(config, store, phone, SYSTEM_CLOCK) as probe,
    ):
        from ivr.metrics import CountingPortal

        counted = CountingPortal(portal)  # failed portal operations counted by kind
        if args.command == "night":
            return _night(config, store, counted, phone, prompts, args, probe)
        phone.start()
        try:
            from scheduler.service import run_service

            def reload_config() -> Config:
                return load_config(args.config)

            return run_service(
                config, store, counted, counted, phone, prompts, SYSTEM_CLOCK, reload_config, probe
            )
        finally:
            phone.stop()


def _night(
    config: Config,
    store: Store,
    portal: CountingPortal,
    phone: SipPhone,
    prompts: PromptLibrary,
    args: argparse.Namespace,
    probe: NodeProbe,
) -> int:
    import signal

    from ivr.night import Night, format_summary

    night = Night(config, store, portal, portal, phone, prompts, SYSTEM_CLOCK, probe)

    def on_signal(signum: int, frame: FrameType | None) -> None:
        log.info("signal %s: no new calls; finishing the calls in progress", signum)
        night.request_stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    imported = night.prepare(args.date)  # the portal first: no SIP needed to find it down
    if store.unfinished(args.date):
        phone.start()
        try:
            summary = night.finish(args.date, imported, args.delivery_deadline)
        finally:
            phone.stop()
    else:
        summary = night.finish(args.date, imported, args.delivery_deadline)
    print(format_summary(summary))
    if summary.undelivered:
        print(
            f"{summary.undelivered} result(s) not yet delivered; they are kept and sent by "
            "`ivr-rating deliver` or the service",
            file=sys.stderr,
        )
        return EXIT_UNDELIVERED
    return EXIT_OK if summary.unfinished == 0 else EXIT_ERROR


def _report(store: Store, args: argparse.Namespace) -> int:
    from ivr.intake import mask_phone

    header: list[str]
    table: list[list[str]]
    if args.rejected:
        header = ["request_id", "reason"]
        table = [[pid or "", reason] for pid, reason in store.rejected(args.date)]
    else:
        rows = store.report_rows(args.date)
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
        from ivr.untrusted import csv_cell

        w = csv.writer(sys.stdout)
        w.writerow(header)
        w.writerows([csv_cell(cell) for cell in row] for row in table)
        return EXIT_OK
    from ivr.untrusted import printable

    table = [[printable(cell) for cell in row] for row in table]
    widths = [max([len(h), *(len(row[i]) for row in table)]) for i, h in enumerate(header)]
    for row in [header, *table]:
        print("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip())
    if args.rejected:
        print(f"\n{len(table)} rejected row(s)")
        return EXIT_OK
    from ivr.delivery import format_outbox

    print(f"\n{len(table)} request(s)")
    print(format_outbox(store, args.date))
    return EXIT_OK


def _prompts(args: argparse.Namespace, config: Config) -> int:
    from ivr import app

    if args.prompts_command == "build":
        from prompts.build import build_placeholders

        out = args.out or config.prompts.dir or app.PACKAGED_PROMPTS
        paths = build_placeholders(out, config.prompts.languages)
        print(f"built {len(paths)} placeholder clip(s) under {out}")
        return EXIT_OK
    problems = app.make_prompts(config).check()
    for p in problems:
        print(p, file=sys.stderr)
    print("prompts OK" if not problems else f"{len(problems)} problem(s)")
    return EXIT_OK if not problems else EXIT_CONFIG


if __name__ == "__main__":
    sys.exit(main())
