"""The sweep's Optuna storage: SQLite on one machine, an RDB such as PostgreSQL for many workers, reconnecting.

A database restart (an upgrade, a failover, ``pg_ctl restart``) cuts every worker's connections. Optuna's
`RDBStorage` turns the lost connection into `StorageInternalError`; raised while a worker asks for a trial or tells
its result, it kills the worker and leaves its trial RUNNING forever. `ReconnectingRDBStorage` retries a storage
call that failed on a lost or refused connection, on a fresh connection (``pool_pre_ping`` drops the dead ones),
until the database is back or `RECONNECT_WINDOW_S` has passed: the trial in flight goes on where it was.

Retrying is safe because each call is one transaction, rolled back when its connection died, and a second attempt
of Optuna's writes changes nothing more (params and attributes ignore a duplicate key, intermediate values are
upserted), with two exceptions whose first attempt may have committed just before the connection dropped:
`set_trial_state_values` (the retry finds the trial finished: accepted when it is in the requested state) and
`create_new_trial` (a lost acknowledgement of a committed insert would leave one extra RUNNING trial; a PostgreSQL
shutdown rolls back open transactions, so only a commit acknowledged in the instant of the cut could do that).
Errors that a retry cannot fix (a refused password, a missing database, bad SQL) are raised at once.

This module imports Optuna at import time: import it inside functions (`open_storage` does).
"""

from __future__ import annotations

import functools
import logging
import sqlite3
import threading
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import optuna
from optuna.exceptions import ExperimentalWarning, UpdateFinishedTrialError
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.trial import TrialState

log = logging.getLogger(__name__)

SQLITE_TIMEOUT_S = 60
#: How long a storage call waits for the database to come back before it fails.
RECONNECT_WINDOW_S = 60.0
#: SQLSTATE classes worth a retry: connection exception, transaction rollback (deadlock), operator intervention.
RETRIED_SQLSTATE_CLASSES = ("08", "40", "57")
#: What Optuna calls on an `RDBStorage` (through its cache layer too), retried on a lost connection.
RETRIED_METHODS = (
    "create_new_study", "delete_study", "set_study_user_attr", "set_study_system_attr", "get_study_id_from_name",
    "get_study_name_from_id", "get_study_directions", "get_study_user_attrs", "get_study_system_attrs",
    "get_all_studies", "create_new_trial", "_create_new_trial", "set_trial_param", "_set_trial_param",
    "get_trial_param", "set_trial_intermediate_value", "set_trial_user_attr", "set_trial_system_attr",
    "get_trial_id_from_study_id_trial_number", "get_trial", "get_all_trials", "_get_trials", "get_best_trial",
    "_get_best_trial_id", "get_trial_user_attrs", "get_trial_system_attrs", "record_heartbeat",
    "_get_stale_trial_ids",
)  # fmt: skip

T = TypeVar("T")


def open_storage(url: str, heartbeat_s: float = 0.0, max_retries: int = 1) -> optuna.storages.BaseStorage:
    """The study storage at `url`: SQLite files get a parent folder, WAL mode and a lock timeout; any other RDB
    URL a `ReconnectingRDBStorage`.

    With `heartbeat_s` > 0, running trials beat every `heartbeat_s` seconds; a trial silent for `2 x heartbeat_s`
    (its worker was killed) is marked FAIL by the next worker that starts a trial and enqueued again, with the
    same parameters, up to `max_retries` times (Optuna's `RetryHeartbeatStaleTrialCallback`; the retry carries the
    system attribute `failed_trial`, the number of the trial it repeats).
    """
    # Heartbeats are "experimental" in Optuna since 2.8; tests/unit/hlip/tuning/test_heartbeat.py pins the behaviour.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)
        heartbeat: dict[str, Any] = {}
        if heartbeat_s > 0:
            heartbeat = {
                "heartbeat_interval": max(1, round(heartbeat_s)),
                "grace_period": max(2, round(2 * heartbeat_s)),
                "heartbeat_stale_trial_callback": RetryHeartbeatStaleTrialCallback(max_retry=max_retries),
            }
        return _open(url, heartbeat)


def _open(url: str, heartbeat: dict[str, Any]) -> optuna.storages.BaseStorage:
    if url.startswith("sqlite"):
        path = url.removeprefix("sqlite:///")
        if path in ("", ":memory:") or path == url:
            raise ValueError(f"sweep storage {url!r}: an in-memory SQLite study cannot be shared by workers")
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        with sqlite3.connect(path, timeout=SQLITE_TIMEOUT_S) as connection:
            connection.execute("PRAGMA journal_mode=WAL")  # persistent: readers no longer block the writer
        return RDBStorage(url, engine_kwargs={"connect_args": {"timeout": SQLITE_TIMEOUT_S}}, **heartbeat)
    return ReconnectingRDBStorage(url, engine_kwargs={"pool_pre_ping": True}, **heartbeat)


def is_connection_loss(exc: BaseException) -> bool:
    """Whether `exc` (or what caused it) is a lost, refused or interrupted database connection, which a retry on a
    new connection can overcome, rather than an error that would repeat (authentication, missing table, bad SQL)."""
    import sqlalchemy.exc

    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, sqlalchemy.exc.DBAPIError) and current.connection_invalidated:
            return True
        if isinstance(current, sqlalchemy.exc.OperationalError | sqlalchemy.exc.InterfaceError):
            state = getattr(current.orig, "sqlstate", None)
            return state is None or str(state)[:2] in RETRIED_SQLSTATE_CLASSES
        current = current.__cause__ or current.__context__
    return False


class ReconnectingRDBStorage(RDBStorage):
    """An `RDBStorage` whose calls wait for a restarting database instead of failing (see the module docstring).

    Args:
        url, engine_kwargs, ...: As for `optuna.storages.RDBStorage`.
        reconnect_window_s: How long one call keeps retrying.
    """

    def __init__(self, url: str, *args: Any, reconnect_window_s: float = RECONNECT_WINDOW_S, **kwargs: Any) -> None:
        self.reconnect_window_s = reconnect_window_s
        super().__init__(url, *args, **kwargs)

    def __setstate__(self, state: dict[Any, Any]) -> None:
        state.setdefault("reconnect_window_s", RECONNECT_WINDOW_S)
        super().__setstate__(state)

    def _retrying(self, name: str, call: Callable[[], T]) -> T:
        """Run `call`, retrying it on a lost connection for up to `reconnect_window_s` seconds."""
        if getattr(_nesting, "active", False):  # an outer call of this storage already retries
            return call()
        _nesting.active = True
        try:
            deadline = time.monotonic() + self.reconnect_window_s
            delay, failures = 0.25, 0
            while True:
                try:
                    result = call()
                except Exception as exc:
                    if not is_connection_loss(exc) or time.monotonic() + delay > deadline:
                        raise
                    if failures == 0:
                        log.warning("optuna storage: %s lost its database connection (%s); retrying for up to %.0f s",
                                    name, _reason(exc), self.reconnect_window_s)  # fmt: skip
                    failures += 1
                    time.sleep(delay)
                    delay = min(delay * 2, 2.0)
                    continue
                if failures:
                    log.warning("optuna storage: %s succeeded after %d retries", name, failures)
                return result
        finally:
            _nesting.active = False

    def set_trial_state_values(self, trial_id: int, state: TrialState, values: Sequence[float] | None = None) -> bool:
        """Finish (or start) a trial; a retry that finds the trial already in `state` succeeded on the first try."""
        attempts = 0

        def call() -> bool:
            nonlocal attempts
            attempts += 1
            try:
                return bool(RDBStorage.set_trial_state_values(self, trial_id, state, values))
            except UpdateFinishedTrialError:
                if attempts > 1 and RDBStorage.get_trial(self, trial_id).state == state:
                    return True
                raise

        return self._retrying("set_trial_state_values", call)


_nesting = threading.local()


def _reason(exc: BaseException) -> str:
    """The first line of the innermost error (host and port at most: drivers never print the password)."""
    inner: BaseException = exc
    while inner.__cause__ is not None:
        inner = inner.__cause__
    first = str(inner).strip().splitlines()[0] if str(inner).strip() else ""
    return f"{type(inner).__name__}: {first[:200]}"


def _retried(name: str) -> Callable[..., Any]:
    method = getattr(RDBStorage, name)

    @functools.wraps(method)
    def wrapper(self: ReconnectingRDBStorage, *args: Any, **kwargs: Any) -> Any:
        return self._retrying(name, lambda: method(self, *args, **kwargs))

    return wrapper


for _name in RETRIED_METHODS:
    if hasattr(RDBStorage, _name):
        setattr(ReconnectingRDBStorage, _name, _retried(_name))
