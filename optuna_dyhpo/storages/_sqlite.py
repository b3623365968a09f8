from __future__ import annotations

import os
import threading
from typing import Any

import optuna
from optuna.storages import RDBStorage
import sqlalchemy
from sqlalchemy import event
import sqlalchemy.exc

# Seconds a connection waits for SQLite's write lock before failing with "database is locked".
# Every transaction takes that lock up front, so workers queue on it; Optuna's own storage
# tests use 300 s, the sqlite3 default is 5 s.
_DEFAULT_BUSY_TIMEOUT = 60.0

# Settings that would undo the transaction handling installed below.
_FORBIDDEN_ENGINE_KWARGS = ("isolation_level",)
_FORBIDDEN_CONNECT_ARGS = ("isolation_level", "autocommit")

_install_lock = threading.Lock()


def _on_connect(dbapi_connection: Any, connection_record: Any) -> None:
    # Stop pysqlite from emitting BEGIN itself (it would skip it before SELECTs, so a read and
    # the following write were not one transaction) and from committing before DDL.
    dbapi_connection.isolation_level = None


def _on_begin(connection: sqlalchemy.engine.Connection) -> None:
    # Take the RESERVED (write) lock when the transaction starts, so that a read-then-write
    # such as a WAITING -> RUNNING claim cannot interleave with another writer.
    connection.exec_driver_sql("BEGIN IMMEDIATE")


def _install_begin_immediate(engine: sqlalchemy.engine.Engine) -> None:
    """Install SQLAlchemy's documented pysqlite recipe on ``engine``, with BEGIN IMMEDIATE."""
    if not event.contains(engine, "connect", _on_connect):
        event.listen(engine, "connect", _on_connect)
    if not event.contains(engine, "begin", _on_begin):
        event.listen(engine, "begin", _on_begin)
    # "connect" only fires for new DBAPI connections: drop those the pool already holds.
    engine.dispose()


def _on_connect_busy_timeout(dbapi_connection: Any, connection_record: Any) -> None:
    # sqlite3's default wait for the write lock (5 s) is too short once every transaction
    # takes it up front; the factory's default applies.
    dbapi_connection.execute(f"PRAGMA busy_timeout = {int(_DEFAULT_BUSY_TIMEOUT * 1000)}")


def _sqlite_rdb(storage: object) -> RDBStorage | None:
    """The on-disk SQLite :class:`RDBStorage` behind ``storage`` (unwrapping Optuna's
    ``_CachedStorage``), or ``None``."""
    backend = getattr(storage, "_backend", storage)
    if not isinstance(backend, RDBStorage):
        return None
    url = backend.engine.url
    if url.get_backend_name() != "sqlite" or url.get_driver_name() != "pysqlite":
        return None
    if url.database in (None, "", ":memory:") or url.query.get("mode") == "memory":
        return None  # one process only; disposing its pool would also drop the database
    return backend


def serialise_sqlite_transactions(storage: object) -> bool:
    """Give an SQLite storage made from a plain URL the factory's ``BEGIN IMMEDIATE``.

    ``optuna.create_study(storage="sqlite:///dyhpo.db")`` builds a plain
    :class:`~optuna.storages.RDBStorage` whose ``WAITING -> RUNNING`` claims are not atomic
    across processes. This installs :func:`create_sqlite_storage`'s transaction handling on
    that storage's engine (and a 60 s busy timeout unless ``connect_args`` sets ``timeout``).
    Idempotent; anything other than an on-disk SQLite ``RDBStorage`` is left alone.

    Args:
        storage: A study's storage (``study._storage``), possibly a ``_CachedStorage``.

    Returns:
        Whether the handling was installed by this call.
    """
    rdb = _sqlite_rdb(storage)
    if rdb is None:
        return False
    with _install_lock:  # threads of one process (n_jobs) start together
        if event.contains(rdb.engine, "begin", _on_begin):
            return False
        connect_args = (getattr(rdb, "engine_kwargs", None) or {}).get("connect_args") or {}
        if "timeout" not in connect_args:
            event.listen(rdb.engine, "connect", _on_connect_busy_timeout)
        _install_begin_immediate(rdb.engine)
    return True


class _ImmediateSQLiteRDBStorage(RDBStorage):
    """An :class:`~optuna.storages.RDBStorage` whose SQLite transactions are ``BEGIN IMMEDIATE``.

    The events are installed after :class:`RDBStorage` has finished its own set-up, both in
    ``__init__`` and after unpickling (``__setstate__``), because that set-up opens a second
    connection while a session is still open (schema-version check), which would wait on the
    session's own write lock.
    """

    def __init__(self, url: str, **kwargs: Any) -> None:
        super().__init__(url, **kwargs)
        _install_begin_immediate(self.engine)

    def __setstate__(self, state: dict[Any, Any]) -> None:
        super().__setstate__(state)
        _install_begin_immediate(self.engine)


def _describe(value: object) -> str:
    return f"{value!r} (type {type(value).__name__})"


def _to_sqlite_url(url_or_path: object) -> str:
    allowed = (
        "a filesystem path (str or os.PathLike) or an SQLAlchemy URL of the form "
        "'sqlite:///relative/path.db', 'sqlite:////absolute/path.db' or "
        "'sqlite+pysqlite:///...' naming an on-disk database"
    )
    if not isinstance(url_or_path, (str, os.PathLike)):
        raise ValueError(f"`url_or_path` must be {allowed}; received {_describe(url_or_path)}.")
    raw = os.fspath(url_or_path)
    if not isinstance(raw, str):
        raise ValueError(
            f"`url_or_path` must be {allowed}; received a bytes path {_describe(raw)}."
        )
    if raw.strip() == "":
        raise ValueError(f"`url_or_path` must be {allowed}; received an empty string.")

    if isinstance(url_or_path, str) and "://" in raw:
        try:
            url = sqlalchemy.engine.make_url(raw)
        except sqlalchemy.exc.ArgumentError as e:
            raise ValueError(
                f"`url_or_path` must be {allowed}; received {raw!r}, which is not a valid URL."
            ) from e
        if url.get_backend_name() != "sqlite" or url.get_driver_name() != "pysqlite":
            hint = ""
            if url.get_backend_name() in ("postgresql", "mysql"):
                hint = (
                    " For PostgreSQL or MySQL use optuna.storages.RDBStorage directly: their "
                    "claims are already atomic."
                )
            raise ValueError(
                f"`url_or_path` must be {allowed}; received {raw!r} (backend "
                f"{url.get_backend_name()!r}, driver {url.get_driver_name()!r}).{hint}"
            )
        database = url.database or ""
        if database in ("", ":memory:") or url.query.get("mode") == "memory":
            raise ValueError(
                f"`url_or_path` must be {allowed}; received the in-memory database {raw!r}, "
                "which other processes cannot share. Use optuna.storages.InMemoryStorage for "
                "a single process."
            )
        return raw

    if raw == ":memory:":
        raise ValueError(
            f"`url_or_path` must be {allowed}; received ':memory:', which other processes "
            "cannot share. Use optuna.storages.InMemoryStorage for a single process."
        )
    # An absolute path keeps the storage valid when it is unpickled in a process whose working
    # directory differs.
    path = os.path.abspath(os.path.expanduser(raw))
    return sqlalchemy.engine.URL.create("sqlite", database=path).render_as_string(
        hide_password=False
    )


def _check_positive_int(name: str, value: object) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(
            f"`{name}` must be a positive int (seconds) or None; received {_describe(value)}."
        )


def _prepare_engine_kwargs(engine_kwargs: object) -> dict[str, Any]:
    if engine_kwargs is None:
        engine_kwargs = {}
    if not isinstance(engine_kwargs, dict):
        raise ValueError(
            "`engine_kwargs` must be a dict of sqlalchemy.create_engine arguments or None; "
            f"received {_describe(engine_kwargs)}."
        )
    prepared: dict[str, Any] = dict(engine_kwargs)
    for key in _FORBIDDEN_ENGINE_KWARGS:
        if key in prepared:
            raise ValueError(
                f"`engine_kwargs` must not set {key!r}: create_sqlite_storage controls SQLite "
                f"transactions itself; received {key}={prepared[key]!r}."
            )
    connect_args = prepared.get("connect_args", {})
    if not isinstance(connect_args, dict):
        raise ValueError(
            "`engine_kwargs['connect_args']` must be a dict of sqlite3.connect arguments; "
            f"received {_describe(connect_args)}."
        )
    connect_args = dict(connect_args)
    for key in _FORBIDDEN_CONNECT_ARGS:
        if key in connect_args:
            raise ValueError(
                f"`engine_kwargs['connect_args']` must not set {key!r}: "
                "create_sqlite_storage controls SQLite transactions itself; "
                f"received {key}={connect_args[key]!r}."
            )
    timeout = connect_args.setdefault("timeout", _DEFAULT_BUSY_TIMEOUT)
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout < 0:
        raise ValueError(
            "`engine_kwargs['connect_args']['timeout']` must be a non-negative number of "
            f"seconds; received {_describe(timeout)}."
        )
    prepared["connect_args"] = connect_args
    return prepared


def create_sqlite_storage(
    url_or_path: str | os.PathLike[str],
    *,
    heartbeat_interval: int | None = None,
    grace_period: int | None = None,
    **kwargs: Any,
) -> optuna.storages.RDBStorage:
    """Create an SQLite :class:`~optuna.storages.RDBStorage` that several processes can share.

    With Optuna's default SQLite storage, a trial's ``WAITING -> RUNNING`` claim
    (``storage.set_trial_state_values(trial_id, TrialState.RUNNING)``) reads and writes in
    separate transactions, so two processes can both claim the same enqueued trial (Optuna
    issues #4002 and #4621). The storage returned here starts every SQLite transaction with
    ``BEGIN IMMEDIATE`` (SQLAlchemy's documented pysqlite recipe: a ``"connect"`` event that
    sets ``isolation_level = None`` and a ``"begin"`` event that emits the ``BEGIN``), so each
    storage call is serialised against other writers and a claim succeeds for exactly one
    process. The events are installed again whenever the storage is unpickled, as happens when
    it is sent to worker processes.

    Writers queue on SQLite's single write lock; each connection waits up to 60 seconds for
    it (override with ``engine_kwargs={"connect_args": {"timeout": seconds}}``). The database
    must be on a local file system: SQLite locking is unreliable on network file systems.
    For many workers or several machines, prefer PostgreSQL with a plain
    :class:`~optuna.storages.RDBStorage`.

    Args:
        url_or_path: Path of the database file (``str`` or ``os.PathLike``; made absolute, and
            created if missing), or an SQLAlchemy URL ``"sqlite:///relative.db"`` /
            ``"sqlite:////absolute.db"`` (driver ``pysqlite``). In-memory databases are
            rejected: other processes cannot see them.
        heartbeat_interval: Seconds between heartbeats of a running trial, or ``None`` to
            disable heartbeats. Passed to :class:`~optuna.storages.RDBStorage`.
        grace_period: Seconds without a heartbeat after which a running trial is failed as
            stale, or ``None`` for Optuna's default (twice ``heartbeat_interval``). Passed to
            :class:`~optuna.storages.RDBStorage`.
        **kwargs: Other keyword arguments of :class:`~optuna.storages.RDBStorage`
            (``engine_kwargs``, ``skip_compatibility_check``,
            ``heartbeat_stale_trial_callback``, ``skip_table_creation``). ``engine_kwargs``
            must not set ``isolation_level``, nor ``connect_args`` ``isolation_level`` or
            ``autocommit``.

    Returns:
        An :class:`~optuna.storages.RDBStorage` to pass to :func:`optuna.create_study` or
        :func:`optuna.load_study` in every worker. Pass this object (or call this function in
        each worker), not its URL: a URL string gives a plain RDBStorage, which
        :class:`~optuna_dyhpo.DyHPOSampler` fixes only when ``study.optimize`` starts (or at
        its first decision with ``study.ask()``), and other samplers not at all.

    Raises:
        ValueError: If ``url_or_path`` is not a path or an on-disk SQLite URL, if
            ``heartbeat_interval`` or ``grace_period`` is not a positive int or ``None``, or if
            ``engine_kwargs`` would change SQLite's transaction handling.

    Example:
        >>> import os, tempfile
        >>> import optuna
        >>> from optuna.trial import TrialState
        >>> from optuna_dyhpo.storages import create_sqlite_storage
        >>> optuna.logging.set_verbosity(optuna.logging.WARNING)
        >>> tmp = tempfile.TemporaryDirectory()
        >>> storage = create_sqlite_storage(os.path.join(tmp.name, "study.db"))
        >>> study = optuna.create_study(storage=storage, study_name="demo")
        >>> study.enqueue_trial({"x": 1.0})
        >>> trial_id = study.get_trials(deepcopy=False)[0]._trial_id
        >>> storage.set_trial_state_values(trial_id, TrialState.RUNNING)  # this worker wins
        True
        >>> storage.set_trial_state_values(trial_id, TrialState.RUNNING)  # already claimed
        False
        >>> storage.engine.dispose()
        >>> tmp.cleanup()
    """
    url = _to_sqlite_url(url_or_path)
    _check_positive_int("heartbeat_interval", heartbeat_interval)
    _check_positive_int("grace_period", grace_period)
    kwargs["engine_kwargs"] = _prepare_engine_kwargs(kwargs.get("engine_kwargs"))
    return _ImmediateSQLiteRDBStorage(
        url,
        heartbeat_interval=heartbeat_interval,
        grace_period=grace_period,
        **kwargs,
    )
