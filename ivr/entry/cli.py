"""``ivr-rating``: the command line. Logging handlers are set here and nowhere else.

Exit codes: 0 done; 1 unexpected error; 2 bad configuration or arguments; 3 portal
unreachable, refused the token or redirected, or the import was stopped by a signal (nothing is
lost: running again imports the rest); 4 SIP registration failed; 5 results left undelivered
(kept in the outbox; ``ivr-rating deliver`` or the service sends them later); 6 another runner
already works on this SQLite database; 7 the database cannot be reached; 8 the database schema
is not this version's (``ivr-rating db upgrade``); 141 the output pipe was closed (``| head``).

The arguments are parsed by ``ivr.entry.cli_parser``. The read-only commands (``report``,
``status``, ``dnc list``) change no schema; the commands that use neither the portal nor SIP do
not need their secrets.

Log formats (``logging.format``): readable text (the default) or JSON lines, one object a
line: time, level, logger, message, then any extra fields the call passed
(``log.info("...", extra={"request": rid})``) and the exception text. Messages are already
masked where they are written (phones); nothing is added here that a text line would not show.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from ivr.campaign import operator
from ivr.console import commands as console_commands
from ivr.core.clock import SYSTEM_CLOCK
from ivr.core.config import Config, config_warnings, load_config, redacted, safe_url
from ivr.core.errors import (
    ConfigError,
    DatabaseUnavailable,
    ImportStopped,
    PortalError,
    RegistrationFailed,
    RunnerLocked,
    SchemaMismatch,
)
from ivr.core.windows import format_local
from ivr.entry.cli_parser import (
    EXIT_CONFIG as EXIT_CONFIG,
    EXIT_DATABASE as EXIT_DATABASE,
    EXIT_ERROR as EXIT_ERROR,
    EXIT_LOCKED as EXIT_LOCKED,
    EXIT_OK as EXIT_OK,
    EXIT_PIPE as EXIT_PIPE,
    EXIT_PORTAL as EXIT_PORTAL,
    EXIT_SCHEMA as EXIT_SCHEMA,
    EXIT_SIP as EXIT_SIP,
    EXIT_UNDELIVERED as EXIT_UNDELIVERED,
    build_parser,
)
from ivr.entry.store_commands import STORE_COMMANDS

if TYPE_CHECKING:
    from ivr.campaign.campaign import Campaign
    from storage.store import Store

log = logging.getLogger("ivr.entry.cli")

# Commands that use neither the portal nor SIP: they run without those secrets.
NO_SECRETS = frozenset(
    {"report", "status", "dnc", "pause", "resume", "reload", "db", "import", "purge"}
)


TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

# Attributes every LogRecord has; anything else on a record came from ``extra=``.
_STANDARD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {
    "message",
    "asctime",
    "taskName",
}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_") and key not in out:
                out[key] = value
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            out["stack"] = self.formatStack(record.stack_info)
        return json.dumps(out, ensure_ascii=False, default=str)


def use_format(fmt: str) -> None:
    """Give every handler of the root logger the configured format."""
    formatter = JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT)
    for handler in logging.getLogger().handlers:
        handler.setFormatter(formatter)


class _LocalTimeFormatter(logging.Formatter):
    """Log times in the configured zone, written as everywhere else (``format_local``)."""

    tz: ZoneInfo = ZoneInfo("UTC")

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802
        return format_local(datetime.fromtimestamp(record.created, self.tz), self.tz)


_FORMATTER = _LocalTimeFormatter(TEXT_FORMAT)


def _setup_logging(verbose: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_FORMATTER)
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, handlers=[handler])
    if not verbose:
        for noisy in ("apscheduler", "urllib3", "alembic", "pydub"):
            logging.getLogger(noisy).setLevel(logging.WARNING)


def _error(prefix: str, exc: BaseException) -> None:
    for line in str(exc).splitlines() or [""]:
        print(f"{prefix}: {line}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    try:
        code = _main(argv)
        sys.stdout.flush()
        return code
    except BrokenPipeError:
        # `ivr-rating report | head`: the reader is gone. Send what is left in our buffer
        # nowhere (so the flush at exit cannot fail again) and end quietly.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_PIPE


def _main(argv: list[str] | None) -> int:
    from sqlalchemy.exc import InterfaceError, OperationalError

    args = build_parser().parse_args(argv)
    _setup_logging(args.verbose)
    try:
        config = load_config(args.config, need_secrets=args.command not in NO_SECRETS)
    except ConfigError as exc:
        _error("configuration error", exc)
        return EXIT_CONFIG
    _FORMATTER.tz = config.tz
    if config.logging.format != "text":
        use_format(config.logging.format)
    try:
        return _dispatch(args, config)
    except PortalError as exc:
        print(f"portal error: {exc}", file=sys.stderr)
        return EXIT_PORTAL
    except ImportStopped as exc:
        print(
            f"stopped: {exc}; what was fetched is stored, run again to import the rest",
            file=sys.stderr,
        )
        return EXIT_PORTAL
    except RegistrationFailed as exc:
        print(f"SIP registration failed: {exc}", file=sys.stderr)
        return EXIT_SIP
    except ConfigError as exc:
        _error("configuration error", exc)
        return EXIT_CONFIG
    except RunnerLocked as exc:
        print(f"not started: {exc}", file=sys.stderr)
        return EXIT_LOCKED
    except DatabaseUnavailable as exc:
        print(f"database unreachable: {exc}", file=sys.stderr)
        return EXIT_DATABASE
    except SchemaMismatch as exc:
        print(f"database schema: {exc}", file=sys.stderr)
        return EXIT_SCHEMA
    except (OperationalError, InterfaceError) as exc:  # the database went away mid-command
        print(f"database error: {safe_url(config.database)}: {_db_reason(exc)}", file=sys.stderr)
        return EXIT_DATABASE


def _db_reason(exc: BaseException) -> str:
    """The driver's first line (psycopg's "connection refused"), never the SQL or its values."""
    orig = getattr(exc, "orig", None) or exc
    return (str(orig).strip().splitlines() or [type(orig).__name__])[0]


def _read_only(args: argparse.Namespace) -> bool:
    return args.command in ("report", "status") or (
        args.command == "dnc" and args.dnc_command == "list"
    )


def open_store(config: Config, *, read_only: bool) -> Store:
    """The store, reachable and on this version's schema: upgraded, or for a read-only command
    checked (a read-only command changes nothing, not even the schema)."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import DBAPIError

    from ivr.entry import app
    from storage.db import schema_revisions, upgrade

    url = make_url(config.database)
    if (
        read_only
        and url.get_backend_name() == "sqlite"
        and url.database not in (None, "", ":memory:")
    ):
        if not Path(url.database).exists():
            raise SchemaMismatch(
                f"no database at {url.database}: run `ivr-rating db upgrade` (or a night) first"
            )
    store = app.make_store(config)
    try:
        current, head = schema_revisions(store.engine)
    except DBAPIError as exc:
        raise DatabaseUnavailable(f"{safe_url(config.database)}: {_db_reason(exc)}") from None
    if not read_only:
        upgrade(store.engine)  # every other command works on an up-to-date schema
    elif current != head:
        raise SchemaMismatch(
            f"the database is at revision {current or '(empty)'}, this version needs {head}: "
            "run `ivr-rating db upgrade`"
        )
    return store


def _dispatch(args: argparse.Namespace, config: Config) -> int:
    if args.command == "config":
        return _config_check(args, config)
    if args.command == "prompts":
        return _prompts(args, config)
    store = open_store(config, read_only=_read_only(args))
    try:
        return _with_store(args, config, store)
    finally:
        store.engine.dispose()  # run in-process (tests, an embedding program): no pool left open


def _with_store(args: argparse.Namespace, config: Config, store: Store) -> int:
    if args.command == "db":
        print("database schema is up to date")
        return EXIT_OK
    if args.command in operator.COMMANDS:
        code, text = operator.run(args, config, store, SYSTEM_CLOCK.now())
        print(text)
        return code
    if args.command in console_commands.COMMANDS:
        return console_commands.run(args, config, store)
    if args.command in STORE_COMMANDS:
        return STORE_COMMANDS[args.command](store, args, config)
    return _run_node(args, config, store)


def _run_node(args: argparse.Namespace, config: Config, store: Store) -> int:
    """``night`` or ``run``: one campaign, built by the composition root, driven by either."""
    from ivr.entry.app import campaign_node

    with campaign_node(config, store, SYSTEM_CLOCK) as campaign:
        if args.command == "night":
            return _night(campaign, args)
        campaign.phone.start()
        try:
            from scheduler.service import run_service

            def reload_config() -> Config:
                return load_config(args.config)

            return run_service(campaign, reload_config)
        finally:
            campaign.phone.stop()


def _config_check(args: argparse.Namespace, config: Config) -> int:
    if args.json:
        print(json.dumps(redacted(config), indent=2, ensure_ascii=False))
        for warning in config_warnings(config):
            print(f"warning: {warning}", file=sys.stderr)
        return EXIT_OK
    from ivr.entry.config_check import summary_text

    print(summary_text(config, args.config, SYSTEM_CLOCK.now()))
    return EXIT_OK


def _night(campaign: Campaign, args: argparse.Namespace) -> int:
    import signal

    from ivr.campaign.night import Night, format_summary

    night = Night(campaign)
    store, phone = campaign.store, campaign.phone

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


def _prompts(args: argparse.Namespace, config: Config) -> int:
    from ivr.entry import app

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
