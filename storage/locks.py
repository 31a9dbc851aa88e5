"""Who may run against a database.

SQLite: one runner at a time. A second ``ivr-rating run`` or ``night`` on the same file refuses
to start (an exclusive ``flock`` on ``<database>.runner.lock``, released by the kernel when the
process dies, even by SIGKILL).
PostgreSQL: any number of runners share the work through claims (``Store.claim_due``); jobs
that must run once across nodes (the nightly import) take a session advisory lock.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine, text

from ivr.errors import RunnerLocked


@contextmanager
def runner_lock(engine: Engine) -> Iterator[None]:
    url = engine.url
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        yield
        return
    path = Path(url.database + ".runner.lock")
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
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
