"""The command line's interface: ``ivr-rating``'s parser, its subcommands and its exit codes
(``ivr.entry.cli``'s docstring says what each code means).

``--config`` and ``-v`` are taken before or after the subcommand (every subparser, including
ones added later, inherits them through :class:`_Parser`). The operator's and the console's
commands are added by their own modules (``ivr.campaign.operator``, ``ivr.console.commands``).
"""

from __future__ import annotations

import argparse
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

from ivr.campaign import operator
from ivr.console import commands as console_commands

if TYPE_CHECKING:
    Subparsers: TypeAlias = argparse._SubParsersAction[argparse.ArgumentParser]

EXIT_OK, EXIT_ERROR, EXIT_CONFIG, EXIT_PORTAL, EXIT_SIP, EXIT_UNDELIVERED = 0, 1, 2, 3, 4, 5
EXIT_LOCKED, EXIT_DATABASE, EXIT_SCHEMA, EXIT_PIPE = 6, 7, 8, 141


def _date(text: str) -> date:
    from ivr.console.analytics_params import arg_day  # the console's reader of a day

    return arg_day(text)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("ivr-rating")
    except PackageNotFoundError:
        return "unknown"


class _Parser(argparse.ArgumentParser):
    """Every subparser (argparse makes them of the parent's class) also takes ``--config`` and
    ``-v``, so they work after the subcommand too. Its defaults are SUPPRESS: a subparser
    never overwrites what was given before the subcommand."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        default: Any = argparse.SUPPRESS
        self.add_argument(
            "--config", type=Path, default=default, help="YAML configuration (config.yaml)"
        )
        self.add_argument("-v", "--verbose", action="store_true", default=default,
                          help="debug logging")  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = _Parser(
        prog="ivr-rating",
        description="Phones citizens after their request is closed and records their rating.",
    )
    p.set_defaults(config=Path("config.yaml"), verbose=False)
    p.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = p.add_subparsers(dest="command", required=True)
    _add_tools(sub)
    _add_night(sub)
    sub.add_parser("run", help="the long-running service (nightly import, dialing, delivery)")
    operator.add_commands(sub)
    console_commands.add_commands(sub)
    _add_report(sub)
    _add_outbox(sub)
    _add_prompts(sub)
    return p


def _add_tools(sub: Subparsers) -> None:
    """``config check`` and ``db upgrade``."""
    cfg = sub.add_parser("config", help="configuration tools")
    cfg_sub = cfg.add_subparsers(dest="config_command", required=True)
    check = cfg_sub.add_parser(
        "check", help="validate the configuration; a summary (secrets are not shown)"
    )
    check.add_argument("--json", action="store_true", help="the whole configuration as JSON")

    db = sub.add_parser("db", help="database tools")
    db_sub = db.add_subparsers(dest="db_command", required=True)
    db_sub.add_parser("upgrade", help="create or upgrade the schema (alembic)")


def _add_night(sub: Subparsers) -> None:
    night = sub.add_parser("night", help="import one local day, call everyone, deliver, summarise")
    night.add_argument("--date", type=_date, required=True, help="local date the requests closed")
    night.add_argument(
        "--delivery-deadline",
        type=float,
        default=60.0,
        help="seconds to keep retrying delivery at the end (default 60)",
    )


def _add_report(sub: Subparsers) -> None:
    report = sub.add_parser(
        "report",
        help="one row per request of a day (--date), or a period's figures by group (--from/--to)",
    )
    report.add_argument(
        "--date", type=_date, help="one local day: one row per request (default: yesterday)"
    )
    report.add_argument("--from", dest="date_from", type=_date, help="first local closing day")
    report.add_argument("--to", dest="date_to", type=_date, help="last local closing day")
    report.add_argument(
        "--by",
        choices=("executor", "category", "district", "day", "week", "month"),
        default="executor",
        help="period report: one row per executor, category, district, day, week or month",
    )
    report.add_argument("--executor", help="period report: only this executor id (or unknown)")
    report.add_argument("--category", help="period report: only this category (or unknown)")
    report.add_argument("--district", help="period report: only this district (or unknown)")
    report.add_argument(
        "--csv",
        nargs="?",
        const="-",
        metavar="FILE",
        help="CSV (--date: on stdout; a period: for Excel, into FILE or on stdout)",
    )
    report.add_argument("--xlsx", type=Path, metavar="FILE", help="period report as XLSX")
    report.add_argument("--show-phones", action="store_true", help="do not mask phone numbers")
    report.add_argument(
        "--rejected", action="store_true", help="every rejected portal or file row with its reason"
    )


def _add_outbox(sub: Subparsers) -> None:
    """``deliver``, ``purge`` and ``import``: the outbox, retention and a file import."""
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


def _add_prompts(sub: Subparsers) -> None:
    prompts = sub.add_parser("prompts", help="prompt recordings")
    prompts_sub = prompts.add_subparsers(dest="prompts_command", required=True)
    prompts_sub.add_parser("check", help="every clip present, decodable and not too long")
    build = prompts_sub.add_parser("build", help="synthesise placeholder clips with espeak-ng")
    build.add_argument("--out", type=Path, default=None, help="folder (default: prompts.dir)")
