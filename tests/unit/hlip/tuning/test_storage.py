"""The reconnecting Optuna storage: which database errors it waits out, and how long (the PostgreSQL restart itself is
exercised by tests/integration/flows/test_sweep_postgres.py)."""

from __future__ import annotations

import time
from pathlib import Path

import psycopg
import pytest
import sqlalchemy.exc
from optuna.exceptions import StorageInternalError

from hlip.tuning.storage import ReconnectingRDBStorage, is_connection_loss


def wrapped(orig: Exception) -> StorageInternalError:
    """What RDBStorage raises: StorageInternalError from SQLAlchemy's error from the driver's."""
    try:
        try:
            raise sqlalchemy.exc.OperationalError("SELECT 1", {}, orig) from orig
        except sqlalchemy.exc.SQLAlchemyError as exc:
            raise StorageInternalError("An exception is raised during the commit.") from exc
    except StorageInternalError as exc:
        return exc


@pytest.mark.parametrize(
    ("orig", "expected"),
    [
        (psycopg.OperationalError("server closed the connection unexpectedly"), True),  # no SQLSTATE: connection
        (psycopg.errors.AdminShutdown("terminating connection due to administrator command"), True),  # 57P01
        (psycopg.errors.CannotConnectNow("the database system is shutting down"), True),  # 57P03
        (psycopg.errors.DeadlockDetected("deadlock detected"), True),  # 40P01
        (psycopg.errors.InvalidPassword("password authentication failed"), False),  # 28P01: a retry cannot help
        (psycopg.errors.InvalidCatalogName('database "x" does not exist'), False),  # 3D000
    ],
)
def test_only_connection_losses_are_retried(orig: Exception, expected: bool) -> None:
    assert is_connection_loss(wrapped(orig)) is expected


def test_other_errors_are_not_connection_losses() -> None:
    assert not is_connection_loss(ValueError("bad value"))
    integrity = sqlalchemy.exc.IntegrityError("INSERT", {}, psycopg.errors.UniqueViolation("duplicate key"))
    assert not is_connection_loss(integrity)


@pytest.fixture
def storage(tmp_path: Path) -> ReconnectingRDBStorage:
    return ReconnectingRDBStorage(f"sqlite:///{tmp_path / 'optuna.db'}", reconnect_window_s=3.0)


def test_a_call_is_retried_until_the_database_is_back(storage: ReconnectingRDBStorage) -> None:
    calls = []

    def flaky() -> str:
        calls.append(time.monotonic())
        if len(calls) < 3:
            raise wrapped(psycopg.OperationalError("connection refused"))
        return "ok"

    assert storage._retrying("get_trial", flaky) == "ok"
    assert len(calls) == 3


def test_a_lasting_outage_or_another_error_is_raised(storage: ReconnectingRDBStorage) -> None:
    def down() -> None:
        raise wrapped(psycopg.OperationalError("connection refused"))

    t0 = time.monotonic()
    with pytest.raises(StorageInternalError):
        storage._retrying("get_trial", down)
    assert 1.5 < time.monotonic() - t0 < 3.5  # waited about the window, not forever

    calls = []

    def refused() -> None:
        calls.append(1)
        raise wrapped(psycopg.errors.InvalidPassword("password authentication failed"))

    with pytest.raises(StorageInternalError):
        storage._retrying("get_trial", refused)
    assert calls == [1]  # at once


def test_the_storage_still_works_as_an_optuna_storage(storage: ReconnectingRDBStorage) -> None:
    import optuna

    study = optuna.create_study(storage=storage, study_name="s")
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
    assert [t.state.name for t in study.trials] == ["COMPLETE", "COMPLETE"]
