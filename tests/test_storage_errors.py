"""Database errors are mapped once, in storage, to the project's error tree (issue 10)."""

from __future__ import annotations

import inspect
from datetime import UTC, datetime

import pytest
from sqlalchemy import exc as sa, insert, select

from ivr.core.errors import AlreadyStored, DatabaseUnavailable, StorageError, StorageRefused
from storage.db import mapped, translate
from storage.models import Survey
from storage.store import NewSurvey, Store

NOW = datetime(2026, 11, 27, 7, 0, tzinfo=UTC)

DBAPI_ERRORS = sorted(
    (
        cls
        for _, cls in inspect.getmembers(sa, inspect.isclass)
        if issubclass(cls, sa.DBAPIError) and cls is not sa.DBAPIError
    ),
    key=lambda cls: cls.__name__,
)


@pytest.mark.parametrize("cls", DBAPI_ERRORS, ids=lambda cls: cls.__name__)
def test_every_driver_error_becomes_a_storage_error(cls: type[sa.DBAPIError]) -> None:
    error = translate(cls("INSERT INTO surveys", {}, Exception("boom\nsecond line")))
    assert isinstance(error, StorageError)
    assert str(error) == f"{cls.__name__}: boom"  # one line, the driver's words


@pytest.mark.parametrize(
    ("cls", "expected"),
    [
        (sa.IntegrityError, StorageRefused),  # NOT NULL, foreign key: our data, not a race
        (sa.OperationalError, DatabaseUnavailable),
        (sa.InterfaceError, DatabaseUnavailable),
        (sa.DataError, StorageRefused),
        (sa.ProgrammingError, StorageRefused),
    ],
    ids=lambda v: v.__name__,
)
def test_whose_fault_decides_the_class(cls: type[sa.DBAPIError], expected: type) -> None:
    assert type(translate(cls("stmt", {}, Exception("x")))) is expected


def test_a_unique_key_is_already_stored_another_constraint_refused() -> None:
    def integrity(message: str) -> StorageError:
        return translate(sa.IntegrityError("INSERT", {}, Exception(message)))

    assert type(integrity("UNIQUE constraint failed: surveys.id")) is AlreadyStored
    assert type(integrity("NOT NULL constraint failed: surveys.phone")) is StorageRefused


def test_a_duplicate_row_written_through_storage_is_already_stored(store: Store) -> None:
    new = NewSurvey("r-1", "4071235", NOW, NOW.date(), "+375291234567", "+375291234567", "ru", None)
    store.add_survey(new, NOW)
    with store.engine.connect() as conn:
        row = dict(conn.execute(select(Survey.__table__)).mappings().one())
    with pytest.raises(AlreadyStored) as caught, mapped(), store.engine.begin() as conn:
        conn.execute(insert(Survey).values(**row))  # the same key again
    assert isinstance(caught.value.__cause__, sa.IntegrityError)
    assert "+375291234567" not in str(caught.value)  # the driver's first line names no values
