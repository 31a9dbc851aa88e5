"""``ivr-rating token add|list|revoke``: bearer tokens of the console's JSON API.

A new token is printed once (only its hash is stored); making and revoking one is audited as
the OS user, like every CLI change."""

from __future__ import annotations

import argparse
import sys

from ivr.campaign.operator import cli_actor
from storage.api_tokens import ApiTokens
from storage.store import Store


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    token = sub.add_parser("token", help="bearer tokens of the console's JSON API (/api/)")
    token_sub = token.add_subparsers(dest="token_command", required=True)
    add = token_sub.add_parser("add", help="make a token (printed once)")
    add.add_argument("name", help="who or what uses it, e.g. portal or bi")
    revoke = token_sub.add_parser("revoke", help="the token no longer opens the API")
    revoke.add_argument("name")
    token_sub.add_parser("list", help="every token: made when and by whom, revoked, last used")


def run(args: argparse.Namespace, store: Store) -> int:
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
