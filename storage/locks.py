"""Who may run against a database.

SQLite: one runner at a time. A second ``ivr-rating run`` or ``night`` on the same file refuses
to start (an exclusive ``flock`` on ``<database>.runner.lock``, released by the kernel when the
process dies, even by SIGKILL).
PostgreSQL: any number of runners share the work through claims (``Store.claim_due``); jobs
that must run once across nodes (the nightly import) take a session advisory lock.

Node presence: a runner holds a lock named after its node for its whole life (PostgreSQL: a
session advisory lock; SQLite: a ``flock`` on ``<database>.node-<hash>.lock``), released by the
server or the kernel when the process dies, even by SIGKILL. So "is node X live?" has an exact
answer: a second runner under a live runner's name refuses to start, and a starting runner
takes back at once the claims of every node that is not live (its own earlier life included).
"""

from __future__ import annotations

import fcntl
import hashlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine, text

from ivr.core.errors import RunnerLocked


@contextmanager
def runner_lock(engine: Engine) -> Iterator[None]:
    url = engine.url
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        yield
        return
    path = Path(url.database + ".runner.lock")
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 100, 0).decode(errors="replace").strip() or "unknown"
            raise RunnerLocked(
                f"another ivr-rating runner (pid {holder}) already works on {url.database}; "
                "two runners on one SQLite database could call a citizen twice: stop it first, "
                "or use PostgreSQL to run several nodes"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the lock


def _key(name: str) -> int:
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


@contextmanager
def run_once(engine: Engine, name: str) -> Iterator[bool]:
    """True if this process holds ``name`` across all nodes (PostgreSQL advisory lock) for the
    duration of the block; False if another node holds it. Always True on SQLite."""
    if engine.url.get_backend_name() != "postgresql":
        yield True
        return
    with engine.connect() as conn:
        got = bool(
            conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": _key(name)}).scalar()
        )
        conn.commit()
        try:
            yield got
        finally:
            if got:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _key(name)})
                conn.commit()


def _node_file(engine: Engine, node: str) -> Path | None:
    url = engine.url
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return None
    digest = hashlib.sha256(node.encode()).hexdigest()[:16]
    return Path(f"{url.database}.node-{digest}.lock")


def _node_key(node: str) -> int:
    return _key("ivr-rating node " + node)


@contextmanager
def node_presence(engine: Engine, node: str) -> Iterator[None]:
    """Mark ``node`` live for the duration of the block; RunnerLocked if a live runner already
    uses that name (two runners under one name would close each other's calls)."""
    refused = RunnerLocked(
        f"another ivr-rating runner is live as node {node!r}; give each runner its own "
        "node.name (or leave it unset: the default is unique per process)"
    )
    if engine.url.get_backend_name() == "postgresql":
        conn = engine.connect()
        try:
            key = {"k": _node_key(node)}
            got = bool(conn.execute(text("SELECT pg_try_advisory_lock(:k)"), key).scalar())
            conn.commit()
            if not got:
                raise refused
            try:
                yield
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), key)
                conn.commit()
        finally:
            conn.close()
        return
    path = _node_file(engine, node)
    if path is None:
        yield
        return
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise refused from None
        try:
            same = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)  # unlinked by its last holder as we opened it: take the new file
    try:
        yield
    finally:
        path.unlink(missing_ok=True)  # default names are per process: leave no litter
        os.close(fd)


def node_is_live(engine: Engine, node: str) -> bool:
    """True if a running process (this one included) holds ``node_presence`` for ``node``."""
    if engine.url.get_backend_name() == "postgresql":
        key = {"k": _node_key(node)}
        with engine.connect() as conn:
            free = bool(conn.execute(text("SELECT pg_try_advisory_lock(:k)"), key).scalar())
            if free:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), key)
            conn.commit()
        return not free
    path = _node_file(engine, node)
    if path is None:
        return False
    try:
        fd = os.open(path, os.O_RDWR)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)
