"""The database underneath the store: the engine, short transactions, the errors, the schema.

- :func:`make_engine` creates the engine (a SQLite file private, its transactions IMMEDIATE).
- :class:`StoreBase`, what every part of the store shares: the engine it was given and short
  transactions.
- SQLAlchemy's errors mapped once, here, to the project's error tree (``ivr.core.errors``).
  Above storage nobody imports ``sqlalchemy.exc``: a duplicate key is :class:`AlreadyStored`,
  a lost or unreachable server :class:`DatabaseUnavailable`, anything else the database refuses
  :class:`StorageRefused`. The original is kept as ``__cause__``.
- Schema upgrades (alembic, configured in code: no alembic.ini needed).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import Engine, create_engine, event, exc as sa
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from ivr.core.errors import AlreadyStored, DatabaseUnavailable, StorageError, StorageRefused

MIGRATIONS = Path(__file__).with_name("migrations")


def make_engine(url: str) -> Engine:
    """An engine for ``url``; SQLite waits on locks, and a SQLite file (it holds citizens'
    phone numbers) is created private: its folder 0700 if we create it, the file 0600 (the
    WAL and shared-memory files SQLite adds take the file's mode), deleted content zeroed."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            create_private_file(Path(parsed.database))
        engine = create_engine(url, connect_args={"timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):  # type: ignore[no-untyped-def]
            # pysqlite's own transaction handling starts transactions late and DEFERRED: two
            # claimers could read the same due rows before either writes. Take it over
            # (SQLAlchemy's documented recipe) and begin every transaction IMMEDIATE.
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            # Erased phone numbers (retention, purge) are overwritten on disk, not just unlinked.
            cur.execute("PRAGMA secure_delete=ON")
            cur.close()

        @event.listens_for(engine, "begin")
        def _begin_immediate(conn):  # type: ignore[no-untyped-def]
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    return create_engine(url, pool_pre_ping=True)


def create_private_file(path: Path) -> None:
    """Create ``path`` (mode 0600) and its missing folders (mode 0700); an existing file or
    folder is left as it is."""
    missing = [d for d in (path.parent, *path.parent.parents) if not d.exists()]
    for folder in reversed(missing):
        folder.mkdir(mode=0o700, exist_ok=True)
    try:
        os.close(os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        pass


def compact_erased(engine: Engine) -> None:
    """After erasing personal data: on SQLite, fold the write-ahead log into the database and
    truncate it, so no copy of the erased pages stays in the WAL file."""
    if engine.url.get_backend_name() == "sqlite":
        raw = engine.raw_connection()  # outside any transaction (autocommit, see above)
        try:
            cur = raw.cursor()
            cur.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            cur.close()
        finally:
            raw.close()


class StoreBase:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)

    @contextmanager
    def _tx(self) -> Iterator[Session]:
        """One transaction: committed when the block ends, rolled back if it raises."""
        with self._sessions.begin() as session:
            yield session


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


def alembic_config(engine: Engine) -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["engine"] = engine
    return cfg


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to ``revision`` (``ivr-rating db upgrade``)."""
    command.upgrade(alembic_config(engine), revision)


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def schema_revisions(engine: Engine) -> tuple[str | None, str]:
    """(the database's revision, this version's head). Connects (so it raises when the
    database is unreachable) but changes nothing."""
    from alembic.script import ScriptDirectory

    head = ",".join(sorted(ScriptDirectory.from_config(alembic_config(engine)).get_heads()))
    return current_revision(engine), head
