from __future__ import annotations

from collections.abc import Iterator
import doctest
from pathlib import Path
import pickle
import shutil
import sqlite3
import subprocess
import sys
import time
from typing import Any

import optuna
from optuna.storages import BaseStorage
from optuna.storages import RDBStorage
from optuna.testing.pytest_storages import StorageTestCase
from optuna.trial import TrialState
import pytest

from optuna_dyhpo.storages import create_sqlite_storage
import optuna_dyhpo.storages._sqlite as sqlite_module

from .claim_race import enqueue_waiting_trials
from .claim_race import run_claim_race
from .enqueued_race import run_enqueued_race

N_CLAIM_TRIALS = 200
N_CLAIM_WORKERS = 6


@pytest.fixture(scope="module")
def initialised_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty database whose schema the factory created; tests copy it (schema set-up costs
    ~0.5 s per database on this disk)."""
    path = tmp_path_factory.mktemp("template") / "template.db"
    create_sqlite_storage(path).engine.dispose()
    return path


def _fresh_storage(initialised_db: Path, tmp_path: Path) -> RDBStorage:
    path = tmp_path / "contract.db"
    shutil.copyfile(initialised_db, path)
    return create_sqlite_storage(path)


# Optuna's own storage contract: all 46 tests of optuna.testing.pytest_storages against the
# factory's storage.
class TestStorageContract(StorageTestCase):
    @pytest.fixture
    def storage(self, initialised_db: Path, tmp_path: Path) -> Iterator[BaseStorage]:
        rdb = _fresh_storage(initialised_db, tmp_path)
        yield rdb
        rdb.engine.dispose()


# The same storage wrapped in _CachedStorage, as optuna.create_study uses an RDBStorage: the
# trial-lifecycle part of the contract.
class TestCachedStorageContract:
    @pytest.fixture
    def storage(self, initialised_db: Path, tmp_path: Path) -> Iterator[BaseStorage]:
        rdb = _fresh_storage(initialised_db, tmp_path)
        yield optuna.storages._CachedStorage(rdb)
        rdb.engine.dispose()


for _name in [
    "test_create_new_trial",
    "test_create_new_trial_with_template_trial",
    "test_set_trial_state_values_for_state",
    "test_set_trial_state_values_for_values",
    "test_set_trial_intermediate_value",
    "test_set_trial_system_attr",
    "test_get_all_trials",
    "test_get_all_trials_state_option",
    "test_get_n_trials_state_option",
    "test_get_best_trial",
    "test_check_trial_is_updatable",
    "test_pickle_storage",
]:
    setattr(TestCachedStorageContract, _name, getattr(StorageTestCase, _name))


def _sqlite_database(storage: RDBStorage) -> str:
    database = storage.engine.url.database
    assert database
    return database


def _holds_write_lock_during_read(storage: RDBStorage) -> bool:
    """Whether a transaction that has only read already blocks other writers."""
    database = _sqlite_database(storage)
    with storage.engine.connect() as conn:
        with conn.begin():
            conn.exec_driver_sql("SELECT count(*) FROM trials").scalar()
            probe = sqlite3.connect(database, timeout=0, isolation_level=None)
            try:
                probe.execute("BEGIN IMMEDIATE")
                probe.execute("ROLLBACK")
                return False
            except sqlite3.OperationalError as e:
                assert "locked" in str(e)
                return True
            finally:
                probe.close()


def test_transactions_begin_immediate(tmp_path: Path) -> None:
    storage = create_sqlite_storage(tmp_path / "s.db")
    try:
        assert _holds_write_lock_during_read(storage)
    finally:
        storage.engine.dispose()


def test_default_rdbstorage_does_not_lock_on_read(tmp_path: Path) -> None:
    # The contrast that makes the probe above meaningful.
    storage = RDBStorage(f"sqlite:///{tmp_path / 's.db'}")
    try:
        assert not _holds_write_lock_during_read(storage)
    finally:
        storage.engine.dispose()


def test_begin_immediate_survives_pickling(tmp_path: Path) -> None:
    storage = create_sqlite_storage(tmp_path / "s.db")
    restored = pickle.loads(pickle.dumps(storage))
    try:
        assert type(restored) is type(storage)
        assert restored.engine is not storage.engine
        assert _holds_write_lock_during_read(restored)
        # The restored storage still works as a storage.
        study_id = restored.create_new_study([optuna.study.StudyDirection.MINIMIZE])
        trial_id = restored.create_new_trial(study_id)
        assert restored.get_trial(trial_id).state == TrialState.RUNNING
    finally:
        restored.engine.dispose()
        storage.engine.dispose()


def test_accepts_paths_and_urls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    cases: list[tuple[Any, Path]] = [
        (tmp_path / "a.db", tmp_path / "a.db"),
        (str(tmp_path / "b.db"), tmp_path / "b.db"),
        ("c.db", tmp_path / "c.db"),  # relative path: made absolute
        (f"sqlite:///{tmp_path / 'd.db'}", tmp_path / "d.db"),
        (f"sqlite+pysqlite:///{tmp_path / 'e.db'}", tmp_path / "e.db"),
    ]
    for arg, expected in cases:
        storage = create_sqlite_storage(arg)
        try:
            assert isinstance(storage, RDBStorage)
            assert Path(_sqlite_database(storage)).resolve() == expected.resolve()
            assert expected.exists()
            assert _holds_write_lock_during_read(storage)
        finally:
            storage.engine.dispose()


def test_busy_timeout_default_and_override(tmp_path: Path) -> None:
    storage = create_sqlite_storage(tmp_path / "a.db")
    assert storage.engine_kwargs["connect_args"]["timeout"] == 60.0
    storage.engine.dispose()
    storage = create_sqlite_storage(
        tmp_path / "b.db", engine_kwargs={"connect_args": {"timeout": 7}, "echo": False}
    )
    assert storage.engine_kwargs["connect_args"]["timeout"] == 7
    assert storage.engine_kwargs["echo"] is False
    storage.engine.dispose()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"url_or_path": 3}, r"`url_or_path` must be .*received 3 \(type int\)"),
        ({"url_or_path": None}, r"`url_or_path` must be .*received None"),
        ({"url_or_path": ""}, r"`url_or_path` must be .*empty string"),
        ({"url_or_path": ":memory:"}, r"`url_or_path` .*':memory:'"),
        ({"url_or_path": "sqlite://"}, r"`url_or_path` .*in-memory database 'sqlite://'"),
        ({"url_or_path": "sqlite:///:memory:"}, r"`url_or_path` .*in-memory"),
        (
            {"url_or_path": "postgresql://u@localhost/db"},
            r"`url_or_path` .*sqlite:///.*received 'postgresql://u@localhost/db' "
            r"\(backend 'postgresql'",
        ),
        ({"url_or_path": "sqlite+aiosqlite:///x.db"}, r"`url_or_path` .*driver 'aiosqlite'"),
        ({"heartbeat_interval": 0}, r"`heartbeat_interval` must be a positive int .*received 0"),
        ({"heartbeat_interval": 1.5}, r"`heartbeat_interval` .*received 1.5 \(type float\)"),
        ({"heartbeat_interval": True}, r"`heartbeat_interval` .*received True"),
        ({"grace_period": -1}, r"`grace_period` must be a positive int .*received -1"),
        ({"engine_kwargs": "x"}, r"`engine_kwargs` must be a dict .*received 'x'"),
        ({"engine_kwargs": {"isolation_level": "AUTOCOMMIT"}}, r"must not set 'isolation_level'"),
        (
            {"engine_kwargs": {"connect_args": {"isolation_level": "DEFERRED"}}},
            r"connect_args.*must not set 'isolation_level'",
        ),
        (
            {"engine_kwargs": {"connect_args": {"autocommit": False}}},
            r"connect_args.*must not set 'autocommit'",
        ),
        (
            {"engine_kwargs": {"connect_args": {"timeout": "long"}}},
            r"\['timeout'\]` must be a non-negative number .*received 'long'",
        ),
    ],
)
def test_rejects_invalid_arguments(tmp_path: Path, kwargs: dict[str, Any], match: str) -> None:
    kwargs = dict(kwargs)
    url_or_path = kwargs.pop("url_or_path", tmp_path / "x.db")
    with pytest.raises(ValueError, match=match):
        create_sqlite_storage(url_or_path, **kwargs)
    assert not (tmp_path / "x.db").exists()


@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")
@pytest.mark.filterwarnings("ignore:Heartbeat of storage:UserWarning")
def test_heartbeat_fails_stale_trials(tmp_path: Path) -> None:
    storage = create_sqlite_storage(tmp_path / "hb.db", heartbeat_interval=1, grace_period=1)
    try:
        assert storage.get_heartbeat_interval() == 1
        assert storage.grace_period == 1
        study = optuna.create_study(storage=storage)
        trial = study.ask()
        storage.record_heartbeat(trial._trial_id)
        optuna.storages.fail_stale_trials(study)
        assert storage.get_trial(trial._trial_id).state == TrialState.RUNNING  # fresh heartbeat
        # SQLite's CURRENT_TIMESTAMP has one-second resolution: staleness shows within ~2 s.
        deadline = time.monotonic() + 5
        while storage.get_trial(trial._trial_id).state == TrialState.RUNNING:
            assert time.monotonic() < deadline, "stale trial was not failed within 5 s"
            time.sleep(0.25)
            optuna.storages.fail_stale_trials(study)
        assert storage.get_trial(trial._trial_id).state == TrialState.FAIL
        # optimize() runs the heartbeat thread against this storage without deadlocking.
        study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
        assert len(study.get_trials(states=(TrialState.COMPLETE,))) == 2
    finally:
        storage.engine.dispose()


def test_multiprocess_claims_are_exclusive(tmp_path: Path) -> None:
    storage = create_sqlite_storage(tmp_path / "claims.db")
    try:
        trial_ids = enqueue_waiting_trials(storage, N_CLAIM_TRIALS)
        result = run_claim_race(storage, trial_ids, n_workers=N_CLAIM_WORKERS)
    finally:
        storage.engine.dispose()
    assert result.duplicates == 0, f"{result.duplicates} trials were claimed more than once"
    assert result.unclaimed == set()
    assert result.total_wins == N_CLAIM_TRIALS
    assert set(result.final_states) == set(trial_ids)
    assert set(result.final_states.values()) == {TrialState.RUNNING}


def test_plain_sqlite_url_runs_each_enqueued_trial_once(tmp_path: Path) -> None:
    """DyHPO workers on a plain ``sqlite:///`` URL (README's examples use one): the sampler
    gives the storage BEGIN IMMEDIATE before the first claim. Without it, the same race ran
    enqueued trials twice (10 duplicates of 60 with 5 processes; see enqueued_race.py)."""
    result = run_enqueued_race(tmp_path / "plain.db", tmp_path / "out", n_trials=40, n_workers=4)
    assert result.errors == []
    assert result.duplicates == 0, f"runs: {dict(result.runs)}"
    assert result.not_run == []
    assert set(result.states) == {"COMPLETE"}


def test_serialise_sqlite_transactions_is_idempotent_and_selective(tmp_path: Path) -> None:
    plain = RDBStorage(f"sqlite:///{tmp_path / 'p.db'}")
    try:
        assert not _holds_write_lock_during_read(plain)
        cached = optuna.storages._CachedStorage(plain)
        assert sqlite_module.serialise_sqlite_transactions(cached)
        assert not sqlite_module.serialise_sqlite_transactions(plain)  # already done
        assert _holds_write_lock_during_read(plain)
        with plain.engine.connect() as conn:  # sqlite3's 5 s default raised to 60 s
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 60000
    finally:
        plain.engine.dispose()
    factory = create_sqlite_storage(tmp_path / "f.db")
    try:
        assert not sqlite_module.serialise_sqlite_transactions(factory)
    finally:
        factory.engine.dispose()
    memory = RDBStorage("sqlite://")  # one process: left alone (disposing would drop it)
    assert not sqlite_module.serialise_sqlite_transactions(memory)
    assert not sqlite_module.serialise_sqlite_transactions(optuna.storages.InMemoryStorage())


def test_docstring_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    verbosity = optuna.logging.get_verbosity()
    try:
        failures, attempted = doctest.testmod(sqlite_module, raise_on_error=False, verbose=False)
    finally:
        optuna.logging.set_verbosity(verbosity)  # the example lowers it
    assert attempted > 0
    assert failures == 0


def test_storages_do_not_import_torch() -> None:
    code = (
        "import sys, optuna_dyhpo.storages; "
        "bad = [m for m in ('torch', 'gpytorch') if m in sys.modules]; "
        "print(','.join(bad))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert out == "", f"importing optuna_dyhpo.storages imported {out}"
