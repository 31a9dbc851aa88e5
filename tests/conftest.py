"""Shared fixtures. Storage tests run on SQLite and on the machine's real PostgreSQL through one
parametrized fixture (model: APScheduler's tests/conftest.py)."""

from __future__ import annotations

import os
import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings
from sqlalchemy import Engine, event
from sqlalchemy.engine import make_url

from lab.pg import LOCAL_PG, temporary_schema
from storage.db import create_private_file, make_engine, upgrade
from storage.store import Store

PG_URL = LOCAL_PG

# Property tests: thorough in CI (scripts/test.sh sets CI), fewer examples at a desk. Neither
# has a deadline: a loaded machine makes one example slow, which says nothing about the code.
settings.register_profile("ci", deadline=None, max_examples=100, print_blob=True)
settings.register_profile("dev", deadline=None, max_examples=25)
settings.load_profile("ci" if os.environ.get("CI") else "dev")


@event.listens_for(Engine, "connect")
def _no_fsync_on_throwaway_sqlite(dbapi_conn: object, _record: object) -> None:
    """The tests' SQLite files are thrown away: no fsync at each commit (``synchronous=OFF``).
    A test checks what the database holds, never that it outlives a power cut (a killed
    process loses nothing either way); the product keeps SQLite's default."""
    if isinstance(dbapi_conn, sqlite3.Connection):
        dbapi_conn.execute("PRAGMA synchronous=OFF")


@pytest.fixture
def pg_schema_url() -> Iterator[str]:
    """A fresh PostgreSQL schema for one test; dropped afterwards."""
    schema = temporary_schema(PG_URL, "ivr_test")
    try:
        url = schema.__enter__()
    except Exception as exc:  # a missing server fails the test run, it never skips
        pytest.fail(f"PostgreSQL at {PG_URL} is not usable: {exc}")
    try:
        yield url
    finally:
        schema.__exit__(None, None, None)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'ivr.sqlite'}"
    url: str = request.getfixturevalue("pg_schema_url")
    return url


@pytest.fixture(scope="session")
def sqlite_at_head(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file upgraded to head once per session: each test's ``engine`` starts from a
    copy of it (a second of alembic per test saved, the schema the same)."""
    path = tmp_path_factory.mktemp("template") / "ivr.sqlite"
    eng = make_engine(f"sqlite:///{path}")
    upgrade(eng)
    eng.dispose()  # the last connection closed folds the WAL into the file
    return path


@pytest.fixture
def engine(db_url: str, request: pytest.FixtureRequest) -> Iterator[Engine]:
    """An engine on a fresh database at head: a copy of the session's SQLite file, or a fresh
    PostgreSQL schema upgraded here."""
    database = make_url(db_url).database
    if make_url(db_url).get_backend_name() == "sqlite" and database:
        template: Path = request.getfixturevalue("sqlite_at_head")
        create_private_file(Path(database))  # 0600 as the product makes it; the copy keeps it
        shutil.copyfile(template, database)
        eng = make_engine(db_url)
    else:
        eng = make_engine(db_url)
        upgrade(eng)
    yield eng
    # No test may leave a connection checked out.
    assert eng.pool.checkedout() == 0  # type: ignore[attr-defined]
    eng.dispose()


@pytest.fixture
def store(engine: Engine) -> Store:
    return Store(engine)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """``-m "not peers and not postgres"`` runs with nothing but the virtualenv. A test that
    needs the PostgreSQL server is marked ``postgres``: the ``postgresql`` case of ``db_url``
    where it is declared, a test using ``pg_schema_url`` here. A test marked ``tools`` (espeak-ng,
    ffmpeg) is also ``peers``: like the SIP peers, a program the virtualenv does not hold."""
    for item in items:
        if "pg_schema_url" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.postgres)
        if item.get_closest_marker("tools") is not None:
            item.add_marker(pytest.mark.peers)
