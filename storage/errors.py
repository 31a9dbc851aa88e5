"""SQLAlchemy's errors mapped once, here, to the project's error tree (``ivr.core.errors``).

Above storage nobody imports ``sqlalchemy.exc``: a duplicate key is :class:`AlreadyStored`, a
lost or unreachable server :class:`DatabaseUnavailable`, anything else the database refuses
:class:`StorageRefused`. The original is kept as ``__cause__``."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import exc as sa

from ivr.core.errors import AlreadyStored, DatabaseUnavailable, StorageError, StorageRefused


def translate(error: sa.SQLAlchemyError) -> StorageError:
    """The project's error for one of SQLAlchemy's (its driver's message, shortened)."""
    reason = str(getattr(error, "orig", None) or error).strip().splitlines()
    text = f"{type(error).__name__}: {reason[0][:200] if reason else ''}"
    if isinstance(error, sa.IntegrityError) and _duplicate_key(error):
        return AlreadyStored(text)
    if isinstance(error, sa.OperationalError | sa.InterfaceError | sa.DisconnectionError):
        return DatabaseUnavailable(text)
    return StorageRefused(text)


def _duplicate_key(error: sa.IntegrityError) -> bool:
    """A unique key violated (PostgreSQL's SQLSTATE 23505, SQLite's UNIQUE constraint), not a
    NOT NULL or foreign key one."""
    orig = error.orig
    if getattr(orig, "sqlstate", None) == "23505":
        return True
    return "UNIQUE constraint failed" in str(orig)


@contextmanager
def mapped() -> Iterator[None]:
    """Run a block of storage work; SQLAlchemy's errors leave it as the project's."""
    try:
        yield
    except sa.SQLAlchemyError as exc:
        raise translate(exc) from exc
