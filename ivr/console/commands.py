"""``ivr-rating console`` and ``ivr-rating user ...``: the console's process and its users.

The web stack is imported only when the console starts, so the other commands stay light.
"""

from __future__ import annotations

import argparse
import getpass
import logging
import os
import secrets
import sys

from ivr.campaign.operator import cli_actor
from ivr.console import analytics_commands, token_commands
from ivr.core.config import Config
from storage.admin import ROLES, AdminStore
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
    token_commands.add_commands(sub)
    analytics_commands.add_commands(sub)


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
        return token_commands.run(args, store)
    if args.command == "analytics":
        return analytics_commands.run(args, config, store, SYSTEM_CLOCK.now())
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
