"""Operator commands: ``status``, ``pause`` / ``resume``, ``dnc add|remove|list``, ``reload``.

They act through the shared database, so they reach every node within seconds.
"""

from __future__ import annotations

import argparse
from datetime import datetime

from ivr.config import Config
from ivr.dialer import describe_next_opening
from ivr.intake import mask_phone, normalize_phone
from ivr.sip.redact import mask_digits
from storage.heartbeat import NodeStatus, list_nodes
from storage.store import Store

PAUSED = "paused"
RELOAD = "reload_requested_at"


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    sub.add_parser("status", help="calls in progress, pending, done by outcome, next window")
    sub.add_parser("pause", help="stop starting new calls, on every node (calls in progress end)")
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
    if args.command == "pause":
        store.set_flag(PAUSED, "1", now)
        return 0, "paused: no node starts a new call; calls in progress finish"
    if args.command == "resume":
        store.set_flag(PAUSED, "0", now)
        return 0, "resumed"
    if args.command == "reload":
        store.set_flag(RELOAD, now.isoformat(), now)
        return 0, "reload requested: every running node re-reads its configuration"
    return _dnc(args, store, now)


def _dnc(args: argparse.Namespace, store: Store, now: datetime) -> tuple[int, str]:
    if args.dnc_command == "list":
        rows = store.list_do_not_call()
        lines = [
            f"{mask_phone(phone)}  {source:<9} {added.isoformat(timespec='minutes')}  {note or ''}"
            for phone, source, added, note in rows
        ]
        return 0, "\n".join(lines + [f"{len(rows)} number(s) on the do-not-call list"])
    phone = normalize_phone(args.phone)
    if phone is None:
        return 2, f"not a valid phone number: {mask_digits(args.phone)!r}"
    if args.dnc_command == "add":
        result = store.add_do_not_call(phone, "operator", now, args.note)
        text = f"{mask_phone(phone)} " + ("added" if result.added else "was already on the list")
        if result.closed:
            text += (
                f"; {len(result.closed)} open survey(s) closed as not_called (do_not_call), "
                f"their results go to the portal: {', '.join(result.closed)}"
            )
        return 0, text
    removed = store.remove_do_not_call(phone)
    return 0, f"{mask_phone(phone)} " + ("removed" if removed else "was not on the list")


def status_text(config: Config, store: Store, now: datetime) -> str:
    counts = store.status_counts()
    deliveries = store.delivery_counts()
    done = {k.split(":", 1)[1]: v for k, v in counts.items() if k.startswith("done:")}
    paused = store.get_flag(PAUSED) == "1"
    nodes = list_nodes(store.engine, now)
    alive = [n for n in nodes if not n.silent]
    if not alive:
        state = "no node running"
    else:
        state = f"running ({len(alive)} node(s) alive)"
    if paused:
        state = f"PAUSED; {state}"
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
    lines.extend(f"  {describe_node(n, now)}" for n in nodes)
    return "\n".join(lines)


def describe_node(node: NodeStatus, now: datetime) -> str:
    """One line per node: a silent one says so first, with how long it has been silent."""
    seen = node.silent_for_s(now)
    where = f"{node.host} pid {node.pid} v{node.version}"
    if node.silent:
        last = node.seen_at.isoformat(timespec="seconds")
        head = f"{node.name}: SILENT for {_ago(seen)} (last seen {last})"
    else:
        head = f"{node.name}: alive, seen {_ago(seen)} ago"
    text = (
        f"{head}; {where}; calls {node.calls_up}/{node.channel_cap}; SIP {node.registration}; "
        f"up since {node.started_at.isoformat(timespec='seconds')}"
    )
    if node.last_error:
        text += f"; last error: {node.last_error}"
    return text


def _ago(seconds: float) -> str:
    s = int(seconds)
    if s < 120:
        return f"{s}s"
    if s < 7200:
        return f"{s // 60}m"
    return f"{s // 3600}h{(s % 3600) // 60:02d}m"
