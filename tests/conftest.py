"""Shared fixtures. Storage tests run on SQLite and on the machine's real PostgreSQL through one
parametrized fixture (model: APScheduler's tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from lab.pg import LOCAL_PG, temporary_schema
from storage.db import make_engine, upgrade
from storage.store import Store

PG_URL = LOCAL_PG


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


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
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
    """A test that needs the PostgreSQL server is marked ``postgres`` (so that
    ``-m "not peers and not postgres"`` runs with nothing but the virtualenv): the ``postgresql``
    case of ``db_url`` is marked where it is declared, a test using ``pg_schema_url`` here."""
    for item in items:
        if "pg_schema_url" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.postgres)
