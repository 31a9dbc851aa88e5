"""``ivr-rating analytics rebuild --from D --to D``: count a period's days again.

The console's figures and the control list's totals read the counts of settled days
(:mod:`storage.analytics_days`), which do not see a change made to a day once it is counted
(a day imported again, an outcome corrected by hand). After such a correction an operator
drops the counts of those days and of their months; the settled ones are counted again at
once (the others are read from the surveys until they settle). Audited as the OS user."""

from __future__ import annotations

import argparse
import sys
from datetime import datetime

from ivr.campaign.operator import cli_actor
from ivr.console.analytics_params import BadParam, arg_day, check_period
from ivr.core.config import Config
from storage.admin import AdminStore
from storage.analytics_days import forget_days, roll_up, settle, settle_days_for
from storage.store import Store


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    analytics = sub.add_parser("analytics", help="the counts behind the console's figures")
    analytics_sub = analytics.add_subparsers(dest="analytics_command", required=True)
    rebuild = analytics_sub.add_parser(
        "rebuild", help="forget the counts of local days --from..--to and count them again"
    )
    rebuild.add_argument("--from", dest="date_from", type=arg_day, required=True)
    rebuild.add_argument("--to", dest="date_to", type=arg_day, required=True)


def run(args: argparse.Namespace, config: Config, store: Store, now: datetime) -> int:
    first, last = args.date_from, args.date_to
    try:
        check_period(first, last, ("--from", "--to"))
    except BadParam as exc:
        print(f"analytics rebuild: {exc}", file=sys.stderr)
        return 2
    engine = store.engine
    forget_days(engine, first, last)
    today = now.astimezone(config.tz).date()
    counted = settle(
        engine, first, last, today, now, settle_days_for(config.dialing.survey_deadline)
    )
    months = roll_up(engine, first, last, now)
    AdminStore(engine).record(cli_actor(), now, "analytics.rebuild", f"{first}..{last}")
    print(f"analytics rebuild {first}..{last}: {len(counted)} settled days counted again, "
          f"{len(months)} whole months summed; the others are read from the surveys")  # fmt: skip
    return 0
