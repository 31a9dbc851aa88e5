"""Operator commands: ``status``, ``pause`` / ``resume``, ``dnc add|remove|list``, ``reload``.

They act through the shared database, so they reach every node within seconds.
"""

from __future__ import annotations

import argparse
import getpass
import logging
from datetime import datetime
from zoneinfo import ZoneInfo

from ivr.campaign.dialer import describe_next_opening
from ivr.core.config import Config
from ivr.core.errors import ConfigError
from ivr.core.intake import mask_phone, normalize_phone
from ivr.core.live_settings import apply
from ivr.core.untrusted import printable
from ivr.core.windows import format_local
from ivr.sip.redact import mask_digits
from storage.admin import RELOAD, Actor, AdminStore
from storage.heartbeat import NodeStatus, list_nodes
from storage.store import Store

__all__ = ["RELOAD", "add_commands", "cli_actor", "effective_config", "run", "status_text"]

log = logging.getLogger(__name__)


def cli_actor() -> Actor:
    """Changes made through the CLI are audited as the OS user."""
    return Actor(f"cli:{getpass.getuser()}")


def effective_config(config: Config, store: Store) -> Config:
    """The file's configuration with the console's live settings over it."""
    doc, _ = store.live_document()
    try:
        return apply(config, doc)
    except ConfigError as exc:
        log.error("live settings ignored, the file's values apply: %s", exc)
        return config


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    sub.add_parser("status", help="calls in progress, pending, done by outcome, next window")
    pause = sub.add_parser(
        "pause", help="stop starting new calls, on every node (calls in progress end)"
    )
    pause.add_argument("--reason", required=True, help="why (shown in status and the console)")
    sub.add_parser("resume", help="start calling again after a pause")
    sub.add_parser("reload", help="every node re-reads its configuration (windows, pacing)")
    dnc = sub.add_parser("dnc", help="the do-not-call list")
    dnc_sub = dnc.add_subparsers(dest="dnc_command", required=True)
    add = dnc_sub.add_parser("add", help="never call this number")
    add.add_argument("phone")
    add.add_argument("--note", default=None)
    rm = dnc_sub.add_parser("remove", help="allow calls to this number again")
    rm.add_argument("phone")
    dnc_sub.add_parser("list", help="every number on the list (masked)")


COMMANDS = {"status", "pause", "resume", "reload", "dnc"}


def run(args: argparse.Namespace, config: Config, store: Store, now: datetime) -> tuple[int, str]:
    """Returns (exit code, text to print)."""
    if args.command == "status":
        return 0, status_text(config, store, now)
    admin = AdminStore(store.engine)
    if args.command == "pause":
        if not args.reason.strip():
            return 2, "pause: give a reason (--reason TEXT)"
        admin.pause(cli_actor(), args.reason, now)
        return 0, "paused: no node starts a new call; calls in progress finish"
    if args.command == "resume":
        admin.resume(cli_actor(), now)
        return 0, "resumed"
    if args.command == "reload":
        admin.request_reload(cli_actor(), now)
        return 0, "reload requested: every running node re-reads its configuration"
    return _dnc(args, config, store, admin, now)


def _dnc(
    args: argparse.Namespace, config: Config, store: Store, admin: AdminStore, now: datetime
) -> tuple[int, str]:
    if args.dnc_command == "list":
        rows = admin.dnc_rows(limit=10_000_000)[::-1]  # oldest first, each with who added it
        lines = [
            f"{mask_phone(r.phone)}  {r.source:<9} {format_local(r.added_at, config.tz)}  "
            f"by {printable(r.added_by or '?')}  {printable(r.note or '')}".rstrip()
            for r in rows
        ]
        return 0, "\n".join(lines + [f"{len(rows)} number(s) on the do-not-call list"])
    phone = normalize_phone(args.phone)
    if phone is None:
        return 2, f"not a valid phone number: {mask_digits(args.phone)!r}"
    if args.dnc_command == "add":
        result = admin.dnc_add(cli_actor(), phone, args.note, now)
        text = f"{mask_phone(phone)} " + ("added" if result.added else "was already on the list")
        if result.closed:
            text += (
                f"; {len(result.closed)} open survey(s) closed as not_called (do_not_call), "
                f"their results go to the portal: {', '.join(result.closed)}"
            )
        return 0, text
    removed = admin.dnc_remove(cli_actor(), phone, now)
    return 0, f"{mask_phone(phone)} " + ("removed" if removed else "was not on the list")


def status_text(config: Config, store: Store, now: datetime) -> str:
    counts = store.status_counts()
    deliveries = store.delivery_counts()
    done = {k.split(":", 1)[1]: v for k, v in counts.items() if k.startswith("done:")}
    pause = AdminStore(store.engine).pause_state()
    config = effective_config(config, store)
    nodes = list_nodes(store.engine, now)
    alive = [n for n in nodes if not n.silent]
    if not alive:
        state = "no node running"
    else:
        state = f"running ({len(alive)} node(s) alive)"
    if pause.paused:
        since = format_local(pause.since, config.tz) if pause.since else "?"
        state = (
            f"PAUSED; {state}; paused by {printable(pause.by or '?')} since {since}: "
            f"{printable(pause.reason or '(no reason)')}"
        )
    lines = [
        f"state:              {state}",
        f"calls in progress:  {counts.get('dialing', 0)}",
        f"pending surveys:    {counts.get('pending', 0)}",
        "done by outcome:    "
        + (", ".join(f"{k} {v}" for k, v in sorted(done.items())) or "none yet"),
        f"next call window:   {describe_next_opening(config, now)}",
        f"delivery backlog:   {deliveries.get('pending', 0)} pending, "
        f"{deliveries.get('dead', 0)} dead, {deliveries.get('delivered', 0)} delivered",
    ]
    lines.append("nodes:" + ("              none has ever run" if not nodes else ""))
    lines.extend(f"  {describe_node(n, now, config.tz)}" for n in nodes)
    return "\n".join(lines)


def describe_node(node: NodeStatus, now: datetime, tz: ZoneInfo) -> str:
    """One line per node: a silent one says so first, with how long it has been silent."""
    seen = node.silent_for_s(now)
    where = f"{node.host} pid {node.pid} v{node.version}"
    if node.silent:
        last = format_local(node.seen_at, tz)
        head = f"{node.name}: SILENT for {ago(seen)} (last seen {last})"
    else:
        head = f"{node.name}: alive, seen {ago(seen)} ago"
    text = (
        f"{head}; {where}; calls {node.calls_up}/{node.channel_cap}; SIP {node.registration}; "
        f"up since {format_local(node.started_at, tz)}"
    )
    if node.last_error:
        text += f"; last error: {printable(node.last_error)}"
    return text


def ago(seconds: float) -> str:
    s = int(seconds)
    if s < 120:
        return f"{s}s"
    if s < 7200:
        return f"{s // 60}m"
    return f"{s // 3600}h{(s % 3600) // 60:02d}m"
