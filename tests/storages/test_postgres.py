from __future__ import annotations

from collections.abc import Iterator
import itertools

import optuna
from optuna.storages import BaseStorage
from optuna.storages import RDBStorage
from optuna.testing.pytest_storages import StorageTestCase
from optuna.trial import TrialState
import pytest

from .claim_race import enqueue_waiting_trials
from .claim_race import run_claim_race
from .postgres import PostgresCluster
from .postgres import _unavailable

N_CLAIM_TRIALS = 200
N_CLAIM_WORKERS = 6

_TEMPLATE = "optuna_template"
_counter = itertools.count()


@pytest.fixture(scope="module")
def template_database(postgres_cluster: PostgresCluster) -> str:
    """A database holding Optuna's empty schema, copied for each contract test."""
    storage = RDBStorage(postgres_cluster.create_database(_TEMPLATE))
    storage.engine.dispose()  # CREATE DATABASE ... TEMPLATE needs no open connection to it
    return _TEMPLATE


# A representative subset of Optuna's storage contract (optuna.testing.pytest_storages) on
# PostgreSQL with the plain RDBStorage: each test needs an empty database of its own.
class TestPostgresStorageContract:
    @pytest.fixture
    def storage(
        self, postgres_cluster: PostgresCluster, template_database: str
    ) -> Iterator[BaseStorage]:
        name = f"contract_{next(_counter)}"
        storage = RDBStorage(postgres_cluster.create_database(name, template=template_database))
        try:
            yield storage
        finally:
            storage.engine.dispose()
            postgres_cluster.drop_database(name)


for _name in [
    "test_create_new_study",
    "test_create_new_study_with_name",
    "test_delete_study",
    "test_set_and_get_study_system_attrs",
    "test_create_new_trial",
    "test_create_new_trial_with_template_trial",
    "test_set_trial_state_values_for_state",
    "test_set_trial_state_values_for_values",
    "test_set_trial_intermediate_value",
    "test_set_trial_system_attr",
    "test_get_all_trials",
    "test_get_all_trials_state_option",
    "test_get_best_trial",
    "test_check_trial_is_updatable",
    "test_pickle_storage",
]:
    setattr(TestPostgresStorageContract, _name, getattr(StorageTestCase, _name))


def test_url_uses_psycopg2(postgres_url: str) -> None:
    storage = RDBStorage(postgres_url)
    try:
        assert storage.engine.dialect.name == "postgresql"
        assert storage.engine.dialect.driver == "psycopg2"
    finally:
        storage.engine.dispose()


def test_multiprocess_claims_are_exclusive(postgres_url: str) -> None:
    storage = RDBStorage(postgres_url)
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


def test_study_optimize_on_postgres(postgres_url: str) -> None:
    storage = RDBStorage(postgres_url)
    try:
        study = optuna.create_study(storage=storage)
        study.optimize(lambda t: t.suggest_float("x", -1, 1) ** 2, n_trials=3)
        assert len(study.get_trials(states=(TrialState.COMPLETE,))) == 3
    finally:
        storage.engine.dispose()


def test_unavailable_fails_in_ci_and_skips_elsewhere(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="no initdb"):
        _unavailable("no initdb")
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception, match="no initdb"):
        _unavailable("no initdb")
