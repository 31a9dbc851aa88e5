"""The console's commands: ``ivr-rating console`` (its process), ``user ...`` (its users),
``token ...`` (the bearer tokens of its JSON API) and ``analytics rebuild`` (the counts behind
its figures). Every change is audited as the OS user.

The web stack is imported only when the console starts, so the other commands stay light.

``token add`` prints a new token once (only its hash is stored).

``analytics rebuild --from D --to D`` counts a period's days again. The console's figures and
the control list's totals read the counts of settled days (:mod:`storage.analytics_days`),
which do not see a change made to a day once it is counted (a day imported again, an outcome
corrected by hand). After such a correction an operator drops the counts of those days and of
their months; the settled ones are counted again at once (the others are read from the surveys
until they settle).
"""

from __future__ import annotations

import argparse
import getpass
import logging
import os
import secrets
import sys
from datetime import datetime

from ivr.campaign.operator import cli_actor
from ivr.console.analytics_params import BadParam, arg_day, check_period
from ivr.core.config import Config
from storage.admin import ROLES, AdminStore
from storage.analytics_days import forget_days, roll_up, settle, settle_days_for
from storage.api_tokens import ApiTokens
from storage.store import Store

log = logging.getLogger(__name__)

COMMANDS = {"console", "user", "token", "analytics"}
SECRET_ENV = "IVR_CONSOLE_SECRET"


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    con = sub.add_parser("console", help="the web console (same database as the nodes)")
    con.add_argument("--listen", default="127.0.0.1:8080", help="HOST:PORT (default %(default)s)")
    con.add_argument(
        "--secure-cookies",
        action="store_true",
        help="mark the session cookie Secure (behind a reverse proxy with TLS)",
    )
    user = sub.add_parser("user", help="console users")
    user_sub = user.add_subparsers(dest="user_command", required=True)
    add = user_sub.add_parser("add", help="create a user (password asked)")
    add.add_argument("name")
    add.add_argument("--role", choices=ROLES, required=True)
    add.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    role = user_sub.add_parser("set-role", help="change a user's role")
    role.add_argument("name")
    role.add_argument("role", choices=ROLES)
    pw = user_sub.add_parser("passwd", help="set a user's password (asked)")
    pw.add_argument("name")
    pw.add_argument("--password-stdin", action="store_true")
    for verb, text in (("disable", "a user can no longer sign in"), ("enable", "undo disable")):
        p = user_sub.add_parser(verb, help=text)
        p.add_argument("name")
    user_sub.add_parser("list", help="every user, role and whether disabled")
    _add_token_commands(sub)
    _add_analytics_commands(sub)


def _password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass("password: ")
    if getpass.getpass("again: ") != first:
        raise ValueError("the two passwords differ")
    return first


def run(args: argparse.Namespace, config: Config, store: Store) -> int:
    from ivr.core.clock import SYSTEM_CLOCK

    if args.command == "console":
        return serve(args, config, store)
    if args.command == "token":
        return _run_token(args, store)
    if args.command == "analytics":
        return _run_analytics(args, config, store, SYSTEM_CLOCK.now())
    from ivr.console.security import hash_password

    admin, now, actor = AdminStore(store.engine), SYSTEM_CLOCK.now(), cli_actor()
    try:
        match args.user_command:
            case "add":
                admin.add_user(actor, args.name, args.role,
                               hash_password(_password(args.password_stdin)), now)  # fmt: skip
                print(f"user {args.name} added ({args.role})")
            case "set-role":
                admin.set_role(actor, args.name, args.role, now)
                print(f"user {args.name} is now {args.role}")
            case "passwd":
                admin.set_password(actor, args.name,
                                   hash_password(_password(args.password_stdin)), now)  # fmt: skip
                print(f"password of {args.name} changed; their sessions end")
            case "disable" | "enable":
                admin.set_disabled(actor, args.name, args.user_command == "disable", now)
                print(f"user {args.name} {args.user_command}d")
            case "list":
                for u in admin.users():
                    state = "disabled" if u.disabled else "active"
                    print(f"{u.name:<20} {u.role:<10} {state}")
    except ValueError as exc:
        print(f"user {args.user_command}: {exc}", file=sys.stderr)
        return 2
    return 0


def serve(args: argparse.Namespace, config: Config, store: Store) -> int:
    import uvicorn

    from ivr.console.app import Console, create_app
    from ivr.core.clock import SYSTEM_CLOCK

    secret = os.environ.get(SECRET_ENV, "")
    if not secret:
        secret = secrets.token_urlsafe(32)
        log.warning(
            "%s is not set: sessions are signed with a key made for this process only "
            "(everyone signs in again after a restart)",
            SECRET_ENV,
        )
    host, _, port = args.listen.rpartition(":")
    console = Console(store.engine, config, SYSTEM_CLOCK, secret, args.secure_cookies)
    app = create_app(console)
    log.info("console listening on http://%s:%s/", host or "127.0.0.1", port)
    uvicorn.run(app, host=host or "127.0.0.1", port=int(port), log_config=None,
                access_log=False, proxy_headers=True)  # fmt: skip
    return 0


def _add_token_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    token = sub.add_parser("token", help="bearer tokens of the console's JSON API (/api/)")
    token_sub = token.add_subparsers(dest="token_command", required=True)
    add = token_sub.add_parser("add", help="make a token (printed once)")
    add.add_argument("name", help="who or what uses it, e.g. portal or bi")
    revoke = token_sub.add_parser("revoke", help="the token no longer opens the API")
    revoke.add_argument("name")
    token_sub.add_parser("list", help="every token: made when and by whom, revoked, last used")


def _run_token(args: argparse.Namespace, store: Store) -> int:
    from ivr.core.clock import SYSTEM_CLOCK

    tokens, now, actor = ApiTokens(store.engine), SYSTEM_CLOCK.now(), cli_actor()
    try:
        match args.token_command:
            case "add":
                secret = tokens.add(actor, args.name, now)
                print(f"token {args.name} made; it is shown only now:")
                print(secret)
            case "revoke":
                tokens.revoke(actor, args.name, now)
                print(f"token {args.name} revoked")
            case "list":
                for t in tokens.rows():
                    state = f"revoked {t.revoked_at:%Y-%m-%d}" if t.revoked_at else "live"
                    used = f"{t.last_used_at:%Y-%m-%d %H:%M}" if t.last_used_at else "never"
                    print(f"{t.name:<20} {state:<18} made {t.created_at:%Y-%m-%d} by "
                          f"{t.created_by}, last used {used}")  # fmt: skip
    except ValueError as exc:
        print(f"token {args.token_command}: {exc}", file=sys.stderr)
        return 2
    return 0


def _add_analytics_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    analytics = sub.add_parser("analytics", help="the counts behind the console's figures")
    analytics_sub = analytics.add_subparsers(dest="analytics_command", required=True)
    rebuild = analytics_sub.add_parser(
        "rebuild", help="forget the counts of local days --from..--to and count them again"
    )
    rebuild.add_argument("--from", dest="date_from", type=arg_day, required=True)
    rebuild.add_argument("--to", dest="date_to", type=arg_day, required=True)


def _run_analytics(args: argparse.Namespace, config: Config, store: Store, now: datetime) -> int:
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
